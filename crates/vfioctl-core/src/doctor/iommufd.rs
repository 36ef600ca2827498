//! The iommufd / VFIO device cdev check: whether the kernel offers the device-centric interface
//! (`/dev/iommu`, `/dev/vfio/devices/vfioN`), and what a VM gives up by using it.
//!
//! Kernel references: `Documentation/driver-api/vfio.rst` ("VFIO Device cdev"; `CONFIG_IOMMUFD`,
//! `CONFIG_VFIO_DEVICE_CDEV`), `Documentation/userspace-api/iommufd.rst`; QEMU's
//! `docs/devel/vfio-iommufd.rst` ("Caveats": P2P DMA).

use super::ctx::Ctx;
use super::facts::IommufdFacts;
use super::finding::{Finding, Severity};

fn set(value: Option<bool>) -> &'static str {
    if value == Some(true) {
        "set"
    } else {
        "not set"
    }
}

pub(super) fn check_iommufd(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let f: &IommufdFacts = &ctx.facts.iommufd;
    let offered = f.dev_iommu && (ctx.facts.vfio_cdev || f.config_cdev == Some(true));
    if offered {
        out.push(Finding::new(
            "iommufd-available",
            Severity::Info,
            None,
            "/dev/iommu",
            "this kernel offers iommufd and VFIO device files (/dev/iommu, /dev/vfio/devices/vfioN): \
             QEMU 8.2+ can use them ('vfioctl qemu-args --iommufd', backend = \"iommufd\" in a VM \
             definition, libvirt <driver iommufd='yes'/>); peer-to-peer DMA between devices passed \
             to the same VM is lost with iommufd (QEMU does not map one device's BARs for another)",
            "keep the legacy group backend for a VM whose devices talk to each other (GPU and NIC \
             with GPUDirect, multi-GPU); use iommufd for the rest",
        ));
        return;
    }
    out.push(Finding::new(
        "iommufd-unavailable",
        Severity::Info,
        None,
        if f.config_source.is_empty() {
            "/dev/iommu"
        } else {
            f.config_source.as_str()
        },
        format!(
            "no iommufd here (/dev/iommu {}; {}): VMs use the legacy group interface \
             (/dev/vfio/GROUP), as on Debian's 6.1 and 6.12 kernels",
            if f.dev_iommu { "exists" } else { "missing" },
            if f.config_source.is_empty() {
                "the kernel's config is readable neither at /boot/config-RELEASE nor at \
                 /proc/config.gz"
                    .to_owned()
            } else {
                format!(
                    "CONFIG_IOMMUFD {}, CONFIG_VFIO_DEVICE_CDEV {}",
                    set(f.config_iommufd),
                    set(f.config_cdev)
                )
            },
        ),
        "nothing to do: passthrough works through /dev/vfio/GROUP; for iommufd, boot a kernel \
         (6.6 or later) built with CONFIG_IOMMUFD and CONFIG_VFIO_DEVICE_CDEV",
    ));
}

#[cfg(test)]
mod tests {
    use crate::doctor::testkit::*;
    use crate::doctor::*;

    #[test]
    fn a_kernel_with_iommufd_says_so_and_warns_of_p2p() {
        let f = fires("iommufd-available", |f, _| {
            f.vfio_cdev = true;
            f.iommufd = IommufdFacts {
                dev_iommu: true,
                config_iommufd: Some(true),
                config_cdev: Some(true),
                config_source: "/boot/config-6.12.0".into(),
            };
        });
        assert!(f.message.contains("peer-to-peer DMA"), "{}", f.message);
    }

    #[test]
    fn a_debian_like_kernel_has_no_iommufd_and_says_what_it_read() {
        let f = fires("iommufd-unavailable", |f, _| {
            f.iommufd = IommufdFacts {
                dev_iommu: false,
                config_iommufd: Some(false),
                config_cdev: Some(false),
                config_source: "/boot/config-6.1.0-28-amd64".into(),
            };
        });
        assert!(
            f.message.contains("CONFIG_IOMMUFD not set"),
            "{}",
            f.message
        );
        assert_eq!(f.path, "/boot/config-6.1.0-28-amd64");
    }
}
