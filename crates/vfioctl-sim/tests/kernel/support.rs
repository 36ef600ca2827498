//! What every test of the simulated kernel reads and writes with.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use vfioctl_core::PciAddress;
use vfioctl_sim::{SimKernel, SimTree};

pub(crate) fn a(text: &str) -> PciAddress {
    text.parse().unwrap()
}

pub(crate) fn read(tree: &SimTree, rel: &str) -> String {
    fs::read_to_string(tree.root().join(rel)).unwrap()
}

pub(crate) fn driver(tree: &SimTree, addr: &str) -> Option<String> {
    fs::read_link(
        tree.root()
            .join("sys/bus/pci/devices")
            .join(addr)
            .join("driver"),
    )
    .ok()
    .map(|t| t.file_name().unwrap().to_string_lossy().into_owned())
}

pub(crate) fn exists(tree: &SimTree, rel: &str) -> bool {
    fs::symlink_metadata(tree.root().join(rel)).is_ok()
}

pub(crate) fn dev_attr(addr: &str, attr: &str) -> PathBuf {
    PathBuf::from(format!("/sys/bus/pci/devices/{addr}/{attr}"))
}

pub(crate) fn drv_attr(drv: &str, attr: &str) -> PathBuf {
    PathBuf::from(format!("/sys/bus/pci/drivers/{drv}/{attr}"))
}

pub(crate) fn errno_of(r: io::Result<()>) -> i32 {
    r.unwrap_err().raw_os_error().unwrap()
}

pub(crate) fn w(k: &SimKernel, path: impl AsRef<Path>, value: &str) -> io::Result<()> {
    k.write(path.as_ref(), value)
}

pub(crate) const EBUSY: i32 = 16;
pub(crate) const EEXIST: i32 = 17;
pub(crate) const ENODEV: i32 = 19;
pub(crate) const EINVAL: i32 = 22;
pub(crate) const ENOENT: i32 = 2;
