//! The kernel's own view, read from sysfs without vfioctl.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::{Check, fail};

/// The kernel's view, read straight from sysfs under `root`.
pub(crate) struct Sysfs {
    pub root: PathBuf,
}

impl Sysfs {
    pub(crate) fn from_env() -> Self {
        let root = std::env::var_os("VFIOCTL_GUEST_ROOT")
            .map_or_else(|| PathBuf::from("/"), PathBuf::from);
        Self { root }
    }

    pub(crate) fn pci_dir(&self) -> PathBuf {
        self.root.join("sys/bus/pci/devices")
    }

    pub(crate) fn devices(&self) -> Check<Vec<String>> {
        let mut out = Vec::new();
        for name in read_dir_names(&self.pci_dir())? {
            out.push(name);
        }
        out.sort();
        Ok(out)
    }

    /// Group id → member addresses.
    pub(crate) fn groups(&self) -> Check<BTreeMap<u64, BTreeSet<String>>> {
        let base = self.root.join("sys/kernel/iommu_groups");
        let mut out = BTreeMap::new();
        if !base.exists() {
            return Ok(out);
        }
        for name in read_dir_names(&base)? {
            let Ok(id) = name.parse::<u64>() else {
                continue;
            };
            let members = read_dir_names(&base.join(&name).join("devices"))?;
            out.insert(id, members.into_iter().collect());
        }
        Ok(out)
    }

    pub(crate) fn link_name(&self, addr: &str, attr: &str) -> Check<Option<String>> {
        let path = self.pci_dir().join(addr).join(attr);
        match fs::read_link(&path) {
            Ok(target) => Ok(target.file_name().map(|n| n.to_string_lossy().into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.pci_dir().join(addr).exists() {
                    Ok(None)
                } else {
                    fail(format!("no PCI device {addr} in sysfs"))
                }
            }
            Err(e) => fail(format!("cannot read {}: {e}", path.display())),
        }
    }

    pub(crate) fn driver(&self, addr: &str) -> Check<Option<String>> {
        self.link_name(addr, "driver")
    }

    pub(crate) fn group_of(&self, addr: &str) -> Check<Option<u64>> {
        match self.link_name(addr, "iommu_group")? {
            None => Ok(None),
            Some(name) => match name.parse() {
                Ok(id) => Ok(Some(id)),
                Err(_) => fail(format!("{addr}: odd iommu_group link {name}")),
            },
        }
    }

    pub(crate) fn driver_override(&self, addr: &str) -> Check<Option<String>> {
        let path = self.pci_dir().join(addr).join("driver_override");
        let text = read_trim(&path)?;
        Ok(if text.is_empty() || text == "(null)" {
            None
        } else {
            Some(text)
        })
    }

    pub(crate) fn id_attr(&self, addr: &str, attr: &str) -> Check<String> {
        read_trim(&self.pci_dir().join(addr).join(attr)).map(|s| normalize_hex(&s))
    }
}

pub(crate) fn read_dir_names(dir: &Path) -> Check<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => return fail(format!("cannot list {}: {e}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => names.push(entry.file_name().to_string_lossy().into_owned()),
            Err(e) => return fail(format!("cannot list {}: {e}", dir.display())),
        }
    }
    names.sort();
    Ok(names)
}

pub(crate) fn read_trim(path: &Path) -> Check<String> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(s.trim().to_owned()),
        Err(e) => fail(format!("cannot read {}: {e}", path.display())),
    }
}

/// `0x8086`, `8086` and `0X8086` all become `8086`.
pub(crate) fn normalize_hex(s: &str) -> String {
    let s = s.trim().to_ascii_lowercase();
    s.strip_prefix("0x").unwrap_or(&s).to_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::vfioctl::show;
    use std::os::unix::fs::symlink;

    /// A fake tree: two NICs in group 4 (one bound to e1000e), one bridge in group 3.
    pub(crate) fn fake_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (addr, group, driver) in [
            ("0000:01:00.0", 3, None),
            ("0000:02:01.0", 4, Some("e1000e")),
            ("0000:02:02.0", 4, None),
        ] {
            let dev = root.join("sys/devices/pci0000:00").join(addr);
            fs::create_dir_all(&dev).unwrap();
            fs::write(dev.join("vendor"), "0x8086\n").unwrap();
            fs::write(dev.join("device"), "0x10d3\n").unwrap();
            fs::write(dev.join("driver_override"), "(null)\n").unwrap();
            let gdir = root.join(format!("sys/kernel/iommu_groups/{group}/devices"));
            fs::create_dir_all(&gdir).unwrap();
            symlink(&dev, gdir.join(addr)).unwrap();
            symlink(
                root.join(format!("sys/kernel/iommu_groups/{group}")),
                dev.join("iommu_group"),
            )
            .unwrap();
            if let Some(d) = driver {
                let ddir = root.join("sys/bus/pci/drivers").join(d);
                fs::create_dir_all(&ddir).unwrap();
                symlink(&ddir, dev.join("driver")).unwrap();
            }
            fs::create_dir_all(root.join("sys/bus/pci/devices")).unwrap();
            symlink(&dev, root.join("sys/bus/pci/devices").join(addr)).unwrap();
        }
        dir
    }

    #[test]
    fn reads_groups_drivers_and_overrides() {
        let dir = fake_tree();
        let sys = Sysfs {
            root: dir.path().to_owned(),
        };
        let groups = sys.groups().ok().unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(show(&groups[&4]), "0000:02:01.0 0000:02:02.0");
        assert_eq!(
            sys.driver("0000:02:01.0").ok().unwrap().as_deref(),
            Some("e1000e")
        );
        assert_eq!(sys.driver("0000:02:02.0").ok().unwrap(), None);
        assert_eq!(sys.group_of("0000:01:00.0").ok().unwrap(), Some(3));
        assert_eq!(sys.driver_override("0000:01:00.0").ok().unwrap(), None);
        assert_eq!(sys.id_attr("0000:01:00.0", "vendor").ok().unwrap(), "8086");
        assert!(sys.driver("0000:09:00.0").is_err());
    }

    #[test]
    fn normalizes_hex_ids() {
        assert_eq!(normalize_hex("0x8086"), "8086");
        assert_eq!(normalize_hex("10D3"), "10d3");
    }
}
