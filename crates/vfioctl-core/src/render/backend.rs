//! Which kernel interface QEMU uses for the passed devices: the legacy group and container
//! (`/dev/vfio/GROUP`, `/dev/vfio/vfio`), or iommufd with the VFIO device cdev (`/dev/iommu`,
//! `/dev/vfio/devices/vfioN`; kernel 6.6+ with `CONFIG_IOMMUFD` and `CONFIG_VFIO_DEVICE_CDEV`,
//! QEMU 8.2+).
//!
//! QEMU (`docs/devel/vfio-iommufd.rst`) takes one iommufd object that every device names:
//!
//! ```text
//! -object iommufd,id=iommufd0
//! -device vfio-pci,host=0000:02:00.0,iommufd=iommufd0
//! ```
//!
//! libvirt's equivalent is `<driver iommufd='yes'/>` in each `<hostdev>`.

use serde::{Deserialize, Serialize};

/// The id of the one iommufd object every vfio-pci device of a guest shares.
pub const IOMMUFD_ID: &str = "iommufd0";

/// The VFIO backend of a guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `/dev/vfio/GROUP` and the type1 container: every kernel with VFIO.
    #[default]
    Legacy,
    /// `/dev/iommu` and `/dev/vfio/devices/vfioN`. QEMU does not map one device's BARs into
    /// another's IOMMU domain with it, so peer-to-peer DMA between passed devices is lost.
    Iommufd,
}

impl Backend {
    /// True for the default, which a definition need not spell out.
    pub fn is_legacy(&self) -> bool {
        *self == Self::Legacy
    }

    /// `argv` (the arguments of `qemu_args`) for this backend: with iommufd, the object first and
    /// `iommufd=` on every `vfio-pci` device; unchanged for the legacy backend, or when no
    /// `vfio-pci` device is passed (vfio-fsl-mc has no iommufd support).
    pub fn apply(self, argv: Vec<String>) -> Vec<String> {
        let has_pci = argv.iter().any(|a| a.starts_with("vfio-pci,"));
        if self == Self::Legacy || !has_pci {
            return argv;
        }
        let mut out = vec!["-object".to_owned(), format!("iommufd,id={IOMMUFD_ID}")];
        out.extend(argv.into_iter().map(|arg| {
            if arg.starts_with("vfio-pci,") {
                format!("{arg},iommufd={IOMMUFD_ID}")
            } else {
                arg
            }
        }));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iommufd_adds_one_object_and_names_it_on_each_vfio_pci() {
        let argv: Vec<String> = [
            "-device",
            "pcie-root-port,id=rp1,chassis=1,slot=1,bus=pcie.0",
            "-device",
            "vfio-pci,host=0000:01:00.0,id=hostdev0,bus=rp1,addr=00.0,multifunction=on",
            "-device",
            "vfio-pci,host=0000:01:00.1,id=hostdev1,bus=rp1,addr=00.1",
        ]
        .map(str::to_owned)
        .into();
        let out = Backend::Iommufd.apply(argv.clone());
        assert_eq!(out[..2], ["-object", "iommufd,id=iommufd0"]);
        assert_eq!(
            out[5],
            "vfio-pci,host=0000:01:00.0,id=hostdev0,bus=rp1,addr=00.0,multifunction=on,iommufd=iommufd0"
        );
        assert_eq!(
            out[7],
            "vfio-pci,host=0000:01:00.1,id=hostdev1,bus=rp1,addr=00.1,iommufd=iommufd0"
        );
        assert_eq!(out[3], argv[1], "root ports are not vfio devices");
        assert_eq!(Backend::Legacy.apply(argv.clone()), argv);
        let fsl: Vec<String> = ["-device", "vfio-fsl-mc,host=dprc.2"]
            .map(str::to_owned)
            .into();
        assert_eq!(Backend::Iommufd.apply(fsl.clone()), fsl);
    }
}
