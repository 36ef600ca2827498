//! The host's mounts, each with the kernel name of the block device under it, resolved as
//! findmnt does: `/proc/self/mountinfo` gives each mount's `st_dev` (`MAJ:MIN`), which
//! `/sys/dev/block/MAJ:MIN` names even when the source reads `/dev/root` (a root the kernel
//! mounted itself, without an initramfs). When that number is no block device (btrfs gives its
//! mounts an anonymous one), the source is read as a path: `/dev/sda2`, `/dev/mapper/<name>`, a
//! `/dev/disk/by-*` link, and `/dev/root` through the `root=` of `/proc/cmdline`.

use std::collections::HashMap;

use vfioctl_core::doctor::parse_cmdline;

use crate::HostRoot;
use crate::error::HostError;
use crate::read::{dir_names, link_name, read_attr};

/// One mounted filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// What the table names as the source (`/dev/root`, `rpool/ROOT/debian`, `10.0.0.1:/srv`).
    pub source: String,
    /// Where it is mounted, with the table's octal escapes undone.
    pub target: String,
    /// Filesystem type (`ext4`, `zfs`, `nfs4`).
    pub fstype: String,
    /// The kernel name of the block device it is on (`sda2`, `dm-0`), when it is on one.
    pub block: Option<String>,
}

/// The host's block devices and mounts: `/sys/class/block`, the mount table and the `root=` of
/// the kernel command line, read once per command for every question about its disks.
#[derive(Debug, Clone, Default)]
pub struct BlockTable {
    /// The kernel name of every block device (`/sys/class/block`), sorted.
    pub names: Vec<String>,
    /// Every mount, from `/proc/self/mountinfo` (or `/proc/mounts` on a tree that has only that).
    pub mounts: Vec<Mount>,
    /// `dm/name` of every device-mapper block, so `/dev/mapper/vg-root` is known as `dm-0`.
    mapper: HashMap<String, String>,
    /// The `root=` of the kernel command line.
    cmdline_root: Option<String>,
}

impl BlockTable {
    /// Reads the table; a tree without a mount table has no mounts.
    pub fn read(root: &HostRoot) -> Result<Self, HostError> {
        let class = root.join("sys/class/block");
        let names = dir_names(&class);
        let mapper = names
            .iter()
            .filter(|n| n.starts_with("dm-"))
            .filter_map(|n| {
                let name = read_attr(&class.join(n).join("dm/name")).ok().flatten()?;
                Some((name.trim().to_owned(), n.clone()))
            })
            .collect();
        let cmdline_root = read_attr(&root.join("proc/cmdline"))
            .ok()
            .flatten()
            .and_then(|c| {
                parse_cmdline(&c)
                    .into_iter()
                    .rev()
                    .find(|p| p.name == "root")
                    .map(|p| p.value)
            });
        let mut table = Self {
            names,
            mounts: Vec::new(),
            mapper,
            cmdline_root,
        };
        table.mounts = read_mounts(&table.resolver(root))?;
        Ok(table)
    }

    /// The kernel name of the block device a path names (`/dev/sda1`, `/dev/mapper/vg-swap`, a
    /// `/dev/disk/by-*` link), as for a mount source; for `/proc/swaps`.
    pub(crate) fn block_of_source(&self, root: &HostRoot, source: &str) -> Option<String> {
        self.resolver(root).by_source(source)
    }

    fn resolver<'a>(&'a self, root: &'a HostRoot) -> Resolver<'a> {
        Resolver { root, table: self }
    }
}

fn read_mounts(resolver: &Resolver<'_>) -> Result<Vec<Mount>, HostError> {
    let root = resolver.root;
    if let Some(text) = read_attr(&root.join("proc/self/mountinfo"))? {
        return Ok(text
            .lines()
            .filter_map(|l| parse_mountinfo(l, resolver))
            .collect());
    }
    let text = read_attr(&root.join("proc/mounts"))?.unwrap_or_default();
    Ok(text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [source, target, fstype, ..] = fields.as_slice() else {
                return None;
            };
            Some(Mount {
                block: resolver.by_source(source),
                source: unescape(source),
                target: unescape(target),
                fstype: (*fstype).to_owned(),
            })
        })
        .collect())
}

/// `36 25 8:2 / / rw,relatime shared:1 - ext4 /dev/root rw`: the optional fields end at `-`.
fn parse_mountinfo(line: &str, resolver: &Resolver<'_>) -> Option<Mount> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let dash = fields.iter().position(|f| *f == "-")?;
    let (Some(dev), Some(target), Some(fstype), Some(source)) = (
        fields.get(2),
        fields.get(4),
        fields.get(dash + 1),
        fields.get(dash + 2),
    ) else {
        return None;
    };
    let block = resolver
        .by_number(dev)
        .or_else(|| resolver.by_source(source));
    Some(Mount {
        source: unescape(source),
        target: unescape(target),
        fstype: (*fstype).to_owned(),
        block,
    })
}

/// The kernel escapes space, tab, newline and backslash in mount tables as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let text = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Turns device numbers and source paths into kernel block names.
struct Resolver<'a> {
    root: &'a HostRoot,
    table: &'a BlockTable,
}

impl Resolver<'_> {
    /// `/sys/dev/block/MAJ:MIN` links to the block device's directory; an anonymous device
    /// (major 0) has no entry.
    fn by_number(&self, dev: &str) -> Option<String> {
        let (major, minor) = dev.split_once(':')?;
        if major == "0" || !minor.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        link_name(&self.root.join("sys/dev/block").join(dev))
            .ok()
            .flatten()
    }

    fn by_source(&self, source: &str) -> Option<String> {
        if source == "/dev/root" {
            return self
                .table
                .cmdline_root
                .as_deref()
                .and_then(|r| self.by_root_arg(r));
        }
        let rest = source.strip_prefix("/dev/")?;
        if let Some(name) = rest.strip_prefix("mapper/") {
            return Some(
                self.table
                    .mapper
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| name.to_owned()),
            );
        }
        if rest.starts_with("disk/") {
            return link_name(&self.root.join("dev").join(rest)).ok().flatten();
        }
        Some(rest.to_owned())
    }

    /// `root=` as the kernel and initramfs read it: a path, `UUID=`, `PARTUUID=` (lower case in
    /// `/dev/disk/by-partuuid`), `LABEL=` or `PARTLABEL=`.
    fn by_root_arg(&self, arg: &str) -> Option<String> {
        let by = |dir: &str, key: &str| {
            link_name(&self.root.join("dev/disk").join(dir).join(key))
                .ok()
                .flatten()
        };
        if let Some(uuid) = arg.strip_prefix("UUID=") {
            return by("by-uuid", uuid);
        }
        if let Some(uuid) = arg.strip_prefix("PARTUUID=") {
            return by("by-partuuid", &uuid.to_ascii_lowercase());
        }
        if let Some(label) = arg.strip_prefix("LABEL=") {
            return by("by-label", label);
        }
        if let Some(label) = arg.strip_prefix("PARTLABEL=") {
            return by("by-partlabel", label);
        }
        (arg != "/dev/root").then(|| self.by_source(arg)).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn octal_escapes_are_undone_and_a_lone_backslash_kept() {
        assert_eq!(unescape("/mnt/my\\040disk"), "/mnt/my disk");
        assert_eq!(unescape("/a\\134b"), "/a\\b");
        assert_eq!(unescape("/a\\9"), "/a\\9");
    }
}
