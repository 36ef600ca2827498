//! Finding the disks and interfaces that sit below PCI functions, by either walk.

use std::path::{Path, PathBuf};

use vfioctl_core::PciAddress;

use crate::HostRoot;
use crate::read::{dir_names, resolve_link, subdir_names};

/// How [`host_uses`](super::host_uses) finds the disks and interfaces below the inventory's
/// functions. Both find the same ones; they differ in what they cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Walk {
    /// Resolve every entry of `/sys/class/block` and `/sys/class/net`, one link each: for an
    /// inventory of the whole host.
    #[default]
    Classes,
    /// Walk each function's directory down to the next function: for an inventory of a few
    /// functions, whose cost then follows what they hold, not how many interfaces the host has
    /// (a host with thousands of VFs on their own driver has as many).
    Subtrees,
}

/// A disk or interface and its directory in the device tree.
pub(super) struct Located {
    /// The entry's name in its class.
    pub(super) name: String,
    /// Its directory, or for a disk reached through another, the directory of the one below
    /// a PCI function.
    pub(super) dir: PathBuf,
    /// The disks between `dir` and this one, when they differ.
    pub(super) through: Vec<String>,
}

impl Located {
    fn at(name: String, dir: PathBuf) -> Self {
        Self {
            name,
            dir,
            through: Vec::new(),
        }
    }
}

/// Where the entries of `/sys/class/block` (named in `blocks`) and `/sys/class/net` that can
/// belong to a function of `inventory` sit in the device tree.
pub(super) fn locate(
    root: &HostRoot,
    inventory: &vfioctl_core::Inventory,
    walk: Walk,
    blocks: &[String],
) -> (Vec<Located>, Vec<Located>) {
    let block_class = root.join("sys/class/block");
    let net_class = root.join("sys/class/net");
    let resolve = |class: &Path, name: &String| {
        resolve_link(root.path(), &class.join(name))
            .ok()
            .map(|dir| Located::at(name.clone(), dir))
    };
    if walk == Walk::Classes {
        let found = blocks
            .iter()
            .filter_map(|n| resolve(&block_class, n))
            .collect();
        return (
            with_multipath_heads(root, blocks, found),
            dir_names(&net_class)
                .iter()
                .filter_map(|n| resolve(&net_class, n))
                .collect(),
        );
    }
    let (mut found_blocks, mut found_nets) = (Vec::new(), Vec::new());
    for dev in inventory.devices() {
        let Ok(dir) = crate::read::device_dir(root, &dev.address) else {
            continue;
        };
        subtree_entries(&dir, blocks, 0, &mut found_blocks, &mut found_nets);
    }
    // A directory that only shares a class entry's name is not that entry: keep the ones whose
    // class link leads to them, as the class walk would have found them.
    let confirm = |class: &Path, found: Vec<Located>| -> Vec<Located> {
        found
            .into_iter()
            .filter(|f| resolve(class, &f.name).is_some_and(|r| r.dir == f.dir))
            .collect()
    };
    (
        with_multipath_heads(root, blocks, confirm(&block_class, found_blocks)),
        confirm(&net_class, found_nets),
    )
}

/// `found` and, for each NVMe path disk among them, the disk the host uses instead and its
/// partitions. With native NVMe multipath (a subsystem that allows several controllers, as
/// enterprise drives do), the kernel hides the path disk `nvme<S>c<C>n<N>` below each controller
/// (`C` its instance, or its controller ID before Linux 5.x) and gives the host `nvme<S>n<N>`
/// below `virtual/nvme-subsystem/nvme-subsys<S>`, under no PCI function: it is reached through
/// the path disks, as their names say.
fn with_multipath_heads(
    root: &HostRoot,
    blocks: &[String],
    mut found: Vec<Located>,
) -> Vec<Located> {
    let class = root.join("sys/class/block");
    let mut heads = Vec::new();
    for path_disk in &found {
        let Some((subsystem, head)) = multipath_head(&path_disk.name) else {
            continue;
        };
        if blocks.binary_search(&head).is_err() {
            continue;
        }
        let Ok(head_dir) = resolve_link(root.path(), &class.join(&head)) else {
            continue;
        };
        let in_subsystem = head_dir
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|n| *n == *format!("nvme-subsys{subsystem}"));
        if !in_subsystem {
            continue;
        }
        for part in subdir_names(&head_dir) {
            if blocks.binary_search(&part).is_ok() {
                heads.push(Located {
                    name: part,
                    dir: path_disk.dir.clone(),
                    through: vec![path_disk.name.clone(), head.clone()],
                });
            }
        }
        heads.push(Located {
            name: head,
            dir: path_disk.dir.clone(),
            through: vec![path_disk.name.clone()],
        });
    }
    found.extend(heads);
    found
}

/// The subsystem instance and the multipath disk of NVMe path disk `nvme<S>c<C>n<N>`.
pub(crate) fn multipath_head(name: &str) -> Option<(u32, String)> {
    let rest = name.strip_prefix("nvme")?;
    let (subsystem, rest) = rest.split_once('c')?;
    let (controller, namespace) = rest.split_once('n')?;
    let number = |s: &str| (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then_some(());
    number(subsystem)?;
    number(controller)?;
    number(namespace)?;
    Some((
        subsystem.parse().ok()?,
        format!("nvme{subsystem}n{namespace}"),
    ))
}

/// Sysfs nests no deeper below a PCI function than this (`usb2/2-1/2-1:1.0/host0/target0:0:0/
/// 0:0:0:0/block/sda/sda1` is ten); a deeper tree is not followed.
const MAX_SUBTREE_DEPTH: usize = 16;

/// The directories below `dir` that are disks (named as a `blocks` entry) or interfaces (in a
/// `net/` directory: the net class has a namespace, so the kernel always puts an interface in
/// that glue directory, where a disk below another class device sits directly below it), not
/// descending into other PCI functions (they own what is below them), nor into a disk further
/// than its partitions, nor into an interface.
fn subtree_entries(
    dir: &Path,
    blocks: &[String],
    depth: usize,
    found_blocks: &mut Vec<Located>,
    found_nets: &mut Vec<Located>,
) {
    if depth >= MAX_SUBTREE_DEPTH {
        return;
    }
    for name in subdir_names(dir) {
        let sub = dir.join(&name);
        if function_dir(&sub).is_some() {
            continue;
        }
        if name == "net" {
            found_nets.extend(
                subdir_names(&sub)
                    .into_iter()
                    .map(|name| Located::at(name.clone(), sub.join(name))),
            );
        } else if blocks.binary_search(&name).is_ok() {
            // A disk's only block children are its partitions (`sda/sda1`, `nvme0n1/nvme0n1p1`).
            for part in subdir_names(&sub) {
                if blocks.binary_search(&part).is_ok() {
                    found_blocks.push(Located::at(part.clone(), sub.join(part)));
                }
            }
            found_blocks.push(Located::at(name, sub));
        } else {
            subtree_entries(&sub, blocks, depth + 1, found_blocks, found_nets);
        }
    }
}

/// The PCI function whose directory `dir` is: sysfs names it by its address (`pci_name()`).
pub(super) fn function_dir(dir: &Path) -> Option<PciAddress> {
    let name = dir.file_name()?.to_str()?;
    let address: PciAddress = name.parse().ok()?;
    (address.to_string() == name).then_some(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_disk_names_its_multipath_disk() {
        assert_eq!(multipath_head("nvme0c1n2"), Some((0, "nvme0n2".to_owned())));
        assert_eq!(
            multipath_head("nvme12c3n1"),
            Some((12, "nvme12n1".to_owned()))
        );
        for other in [
            "nvme0n1",
            "nvme0n1p1",
            "nvmec0n1",
            "nvme0c0n",
            "nvme0c0n1p1",
            "sda",
        ] {
            assert_eq!(multipath_head(other), None, "{other}");
        }
    }
}
