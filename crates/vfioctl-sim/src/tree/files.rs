//! File operations the tree is made of: device directories, relative links, attributes.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};

use vfioctl_core::PciAddress;

use crate::groups::Hierarchy;

/// The device's real directory relative to the root:
/// `sys/devices/pci<domain>:<root bus>/<bridge>/.../<address>`.
pub(crate) fn device_rel_dir(h: &Hierarchy<'_>, address: PciAddress) -> PathBuf {
    let mut chain = h.ancestors(&address);
    chain.reverse();
    let root_bus = chain.first().map_or(address.bus, |a| a.bus);
    let mut dir = PathBuf::from(format!(
        "sys/devices/pci{:04x}:{root_bus:02x}",
        address.domain
    ));
    for a in chain {
        dir.push(a.to_string());
    }
    dir.push(address.to_string());
    dir
}

/// Creates a symlink at `link` (relative to `root`) pointing at `target` (relative to `root`) with
/// a relative target, as sysfs links are.
pub(crate) fn rel_symlink(root: &Path, link: &Path, target: &Path) -> io::Result<()> {
    let from: Vec<Component<'_>> = link
        .parent()
        .map_or(Vec::new(), |p| p.components().collect());
    let to: Vec<Component<'_>> = target.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for c in &to[common..] {
        rel.push(c.as_os_str());
    }
    let full = root.join(link);
    if let Some(parent) = full.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::symlink_metadata(&full) {
        Ok(_) => fs::remove_file(&full)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    symlink(rel, full)
}

/// Writes `content` to `rel` under `root`, creating parent directories.
pub(crate) fn put(root: &Path, rel: impl AsRef<Path>, content: impl AsRef<[u8]>) -> io::Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, content)
}

/// Removes a file or link if it exists.
pub(crate) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes a directory tree if it exists.
pub(crate) fn remove_dir_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Resolves `sys/bus/pci/devices/<address>` to the device's directory relative to the root.
pub(crate) fn device_dir(root: &Path, address: PciAddress) -> io::Result<PathBuf> {
    resolve_link(
        root,
        &PathBuf::from("sys/bus/pci/devices").join(address.to_string()),
    )
}

/// Where the relative symlink `link` (relative to the root) points, relative to the root,
/// resolved lexically as the sysfs links are written.
pub(crate) fn resolve_link(root: &Path, link: &Path) -> io::Result<PathBuf> {
    let target = fs::read_link(root.join(link))?;
    let mut parts: Vec<std::ffi::OsString> = link
        .parent()
        .map(|p| p.iter().map(|c| c.to_owned()).collect())
        .unwrap_or_default();
    for c in target.components() {
        match c {
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(n) => parts.push(n.to_owned()),
            _ => {}
        }
    }
    Ok(parts.iter().collect())
}

pub(crate) fn read_hex(path: &Path) -> u32 {
    fs::read_to_string(path)
        .ok()
        .and_then(|t| vfioctl_core::ids::parse_sysfs_hex(&t))
        .unwrap_or(0)
}

/// The device's IOMMU group number, read from its `iommu_group` link.
pub(crate) fn group_of(root: &Path, dir: &Path) -> Option<u32> {
    fs::read_link(root.join(dir).join("iommu_group"))
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}
