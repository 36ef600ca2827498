//! iommufd and the VFIO device cdev as the kernel shows them: `vfio-dev/vfioN` under a device
//! bound to a vfio driver (its `/dev/vfio/devices/vfioN`), `/dev/iommu`, and the kernel's
//! configuration (`CONFIG_IOMMUFD`, `CONFIG_VFIO_DEVICE_CDEV`).

use std::io::Read as _;

use vfioctl_core::PciAddress;
use vfioctl_core::doctor::IommufdFacts;

use crate::HostError;
use crate::read::{read_attr, read_bytes};
use crate::root::HostRoot;

/// A kernel config is a few hundred KiB; compressed, a tenth of it.
const MAX_CONFIG: u64 = 16 * 1024 * 1024;

/// The name of the VFIO device file of `address` (`vfio3`: `/dev/vfio/devices/vfio3`), from
/// the `vfio-dev` directory the kernel makes under a device while a vfio driver holds it.
pub fn cdev_of(root: &HostRoot, address: &PciAddress) -> Option<String> {
    let dir = root.pci_device(address).join("vfio-dev");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .find(|n| {
            n.strip_prefix("vfio")
                .is_some_and(|d| d.parse::<u32>().is_ok())
        })
}

/// [`cdev_of`] for a device read from sysfs: without a vfio driver it has no `vfio-dev`, so the
/// directory is not looked for (on hosts with thousands of functions, a lookup each).
pub fn cdev_of_device(root: &HostRoot, device: &vfioctl_core::PciDevice) -> Option<String> {
    device
        .driver
        .as_deref()
        .is_some_and(vfioctl_core::plan::is_vfio_pci_driver)
        .then(|| cdev_of(root, &device.address))
        .flatten()
}

/// The device files of every member of `groups` that has one, in group then address order.
pub fn group_cdevs(root: &HostRoot, groups: &[vfioctl_core::GroupId]) -> Vec<String> {
    let mut out = Vec::new();
    for group in groups {
        let dir = root.join(format!("sys/kernel/iommu_groups/{}/devices", group.0));
        let mut members: Vec<PciAddress> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        members.sort_unstable();
        out.extend(members.iter().filter_map(|a| cdev_of(root, a)));
    }
    out
}

/// What the kernel under `root` offers of iommufd: `/dev/iommu`, and its configuration read from
/// `boot/config-RELEASE` or, failing that, `proc/config.gz`.
pub fn read_facts(root: &HostRoot) -> Result<IommufdFacts, HostError> {
    let mut facts = IommufdFacts {
        dev_iommu: root.join("dev/iommu").exists(),
        ..IommufdFacts::default()
    };
    let release = read_attr(&root.join("proc/sys/kernel/osrelease"))?;
    let boot = release.map(|r| format!("boot/config-{}", r.trim()));
    let config = match boot.as_deref().map(|b| (b, read_attr_big(root, b))) {
        Some((path, Ok(Some(text)))) => Some((path.to_owned(), text)),
        _ => read_config_gz(root)?.map(|t| ("proc/config.gz".to_owned(), t)),
    };
    if let Some((path, text)) = config {
        facts.config_source = format!("/{path}");
        facts.config_iommufd = Some(config_enabled(&text, "CONFIG_IOMMUFD"));
        facts.config_cdev = Some(config_enabled(&text, "CONFIG_VFIO_DEVICE_CDEV"));
    }
    Ok(facts)
}

fn read_attr_big(root: &HostRoot, rel: &str) -> Result<Option<String>, HostError> {
    Ok(read_bytes(&root.join(rel), MAX_CONFIG)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// `/proc/config.gz` (CONFIG_IKCONFIG_PROC), decompressed; `None` when absent or not gzip.
fn read_config_gz(root: &HostRoot) -> Result<Option<String>, HostError> {
    let Some(bytes) = read_bytes(&root.join("proc/config.gz"), MAX_CONFIG)? else {
        return Ok(None);
    };
    let mut text = String::new();
    let decoded = flate2::read::GzDecoder::new(bytes.as_slice())
        .take(MAX_CONFIG)
        .read_to_string(&mut text);
    Ok(decoded.ok().map(|_| text))
}

/// `NAME=y` or `NAME=m` in a kernel config (`# NAME is not set` and absence are off).
fn config_enabled(text: &str, name: &str) -> bool {
    text.lines().any(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
            .is_some_and(|v| v == "y" || v == "m")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(files: &[(&str, &[u8])]) -> (tempfile::TempDir, HostRoot) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("sys/bus/pci/devices")).expect("sysfs");
        for (rel, bytes) in files {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, bytes).expect("write");
        }
        let root = HostRoot::open(dir.path()).expect("root");
        (dir, root)
    }

    #[test]
    fn the_boot_config_of_the_running_release_is_read_first() {
        let (_d, root) = root_with(&[
            ("proc/sys/kernel/osrelease", b"6.12.9-amd64\n"),
            (
                "boot/config-6.12.9-amd64",
                b"CONFIG_IOMMUFD=m\n# CONFIG_VFIO_DEVICE_CDEV is not set\nCONFIG_IOMMUFD_TEST=y\n",
            ),
            ("dev/iommu", b""),
        ]);
        let f = read_facts(&root).expect("facts");
        assert_eq!(
            f,
            IommufdFacts {
                dev_iommu: true,
                config_iommufd: Some(true),
                config_cdev: Some(false),
                config_source: "/boot/config-6.12.9-amd64".into(),
            }
        );
    }

    #[test]
    fn proc_config_gz_is_read_when_boot_has_none() {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"CONFIG_IOMMUFD=y\nCONFIG_VFIO_DEVICE_CDEV=y\n")
            .expect("gzip");
        let bytes = gz.finish().expect("gzip");
        let (_d, root) = root_with(&[
            ("proc/sys/kernel/osrelease", b"6.6.52\n"),
            ("proc/config.gz", &bytes),
        ]);
        let f = read_facts(&root).expect("facts");
        assert_eq!(f.config_source, "/proc/config.gz");
        assert_eq!((f.config_iommufd, f.config_cdev), (Some(true), Some(true)));
        assert!(!f.dev_iommu);
    }

    #[test]
    fn no_config_is_unknown_not_off() {
        let (_d, root) = root_with(&[("proc/sys/kernel/osrelease", b"6.1.0\n")]);
        let f = read_facts(&root).expect("facts");
        assert_eq!((f.config_iommufd, f.config_cdev), (None, None));
        assert!(f.config_source.is_empty());
    }
}
