//! Paths under the root vfioctl works on.

use std::path::{Path, PathBuf};

use vfioctl_core::PciAddress;

use crate::HostError;

/// A root directory under which `sys`, `proc`, `dev`, `run` and `etc` are found.
#[derive(Debug, Clone)]
pub struct HostRoot {
    root: PathBuf,
}

impl HostRoot {
    /// Uses `root`, checking that it holds a PCI sysfs tree.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, HostError> {
        let root = root.into();
        if !root.join("sys/bus/pci").is_dir() {
            return Err(HostError::BadRoot { path: root });
        }
        Ok(Self { root })
    }

    /// The root directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// True when this is the real root of the machine, however it was spelled (`/`, `//`,
    /// `/usr/..`, a symlink to `/`): the privilege check and the choice of kernel depend on it.
    pub fn is_real_root(&self) -> bool {
        self.root == Path::new("/")
            || std::fs::canonicalize(&self.root).is_ok_and(|p| p == Path::new("/"))
    }

    /// `rel` (written as on `/`, e.g. `sys/bus/pci`) under the root.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        let rel = rel.as_ref();
        self.root.join(rel.strip_prefix("/").unwrap_or(rel))
    }

    /// The path as it would be on `/`, for messages and dry-run plans.
    pub fn display_path(&self, path: &Path) -> PathBuf {
        match path.strip_prefix(&self.root) {
            Ok(rel) => Path::new("/").join(rel),
            Err(_) => path.to_path_buf(),
        }
    }

    /// `/sys/bus/pci/devices/<address>`.
    pub fn pci_device(&self, address: &PciAddress) -> PathBuf {
        self.join(format!("sys/bus/pci/devices/{address}"))
    }
}
