//! Which block devices are members of an imported ZFS pool, read without `zpool`.
//!
//! ZFS opens its vdevs exclusively but links no `holders/`, and the kernel module lists no
//! vdevs in sysfs. What is there: the label blkid reads from each member, which udev keeps in
//! its database (`/run/udev/data/b<MAJ:MIN>`: `ID_FS_TYPE=zfs_member`, `ID_FS_LABEL=<pool>`) and
//! links as `/dev/disk/by-label/<pool>` (for one member of each pool), and one
//! `/proc/spl/kstat/zfs/<pool>/` directory per imported pool. A member of a pool that is not
//! imported is an unused disk as far as the host is concerned.

use std::collections::{BTreeMap, BTreeSet};

use crate::HostRoot;
use crate::mounts::BlockTable;
use crate::read::{dir_names, link_name, read_attr};

/// Members of imported pools, and where each pool's datasets are mounted.
#[derive(Debug, Default)]
pub(crate) struct ZfsPools {
    /// Block name to pool name.
    members: BTreeMap<String, String>,
    /// Pool name to the mount points of its datasets.
    mounts: BTreeMap<String, Vec<String>>,
}

impl ZfsPools {
    pub(crate) fn read(root: &HostRoot, table: &BlockTable) -> Self {
        let imported: BTreeSet<String> = dir_names(&root.join("proc/spl/kstat/zfs"))
            .into_iter()
            .filter(|n| root.join("proc/spl/kstat/zfs").join(n).is_dir())
            .collect();
        if imported.is_empty() {
            return Self::default();
        }
        let class = root.join("sys/class/block");
        let mut members = BTreeMap::new();
        for name in &table.names {
            let Some(dev) = read_attr(&class.join(name).join("dev")).ok().flatten() else {
                continue;
            };
            if let Some(pool) = udev_pool(root, dev.trim())
                && imported.contains(&pool)
            {
                members.insert(name.clone(), pool);
            }
        }
        for pool in &imported {
            if let Some(name) = link_name(&root.join("dev/disk/by-label").join(pool))
                .ok()
                .flatten()
            {
                members.entry(name).or_insert_with(|| pool.clone());
            }
        }
        let mut by_pool: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in table.mounts.iter().filter(|m| m.fstype == "zfs") {
            let pool = m.source.split('/').next().unwrap_or_default();
            if imported.contains(pool) {
                by_pool
                    .entry(pool.to_owned())
                    .or_default()
                    .push(m.target.clone());
            }
        }
        Self {
            members,
            mounts: by_pool,
        }
    }

    /// The pool `block` is a member of, and where that pool is mounted.
    pub(crate) fn pool_of(&self, block: &str) -> Option<(&str, &[String])> {
        let pool = self.members.get(block)?;
        let mounts = self.mounts.get(pool).map_or(&[][..], Vec::as_slice);
        Some((pool, mounts))
    }
}

/// The pool named by the ZFS label udev recorded for block device `dev` (`MAJ:MIN`).
fn udev_pool(root: &HostRoot, dev: &str) -> Option<String> {
    let text = read_attr(&root.join("run/udev/data").join(format!("b{dev}")))
        .ok()
        .flatten()?;
    let prop = |key: &str| {
        text.lines()
            .filter_map(|l| l.strip_prefix("E:"))
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
    };
    (prop("ID_FS_TYPE") == Some("zfs_member"))
        .then(|| prop("ID_FS_LABEL").map(str::to_owned))
        .flatten()
}
