//! What the host itself uses: mounted block devices, network interfaces with addresses or the
//! default route, the boot console. Binding a device that backs one of these takes the host's
//! root filesystem, network or console away, so the planner refuses it.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::mounts::BlockTable;
use crate::read::{read_attr, resolve_link};
use crate::{HostError, HostRoot};

/// A block device and where it is mounted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MountedBlock {
    /// Kernel name of the block device (`nvme0n1p2`).
    pub block: String,
    /// Mount points using it.
    pub mount_points: Vec<String>,
    /// The sysfs directory of the block device (as on `/`).
    pub sys_path: String,
}

/// A network interface and what the host does with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NetUse {
    /// Interface name.
    pub interface: String,
    /// `operstate` is `up`.
    pub up: bool,
    /// It has IPv4 routes (so addresses) or global IPv6 addresses.
    pub has_addresses: bool,
    /// It carries the IPv4 default route.
    pub default_route: bool,
    /// It is enslaved to a bond or bridge (`master` link).
    pub master: Option<String>,
}

/// Facts about how the host uses its devices, read once per command.
#[derive(Debug, Clone, Default)]
pub struct HostUsage {
    /// Mounted block devices, by the real sysfs path of their directory.
    blocks: Vec<(std::path::PathBuf, MountedBlock)>,
    routes: BTreeMap<String, bool>,
    inet6: BTreeMap<String, bool>,
    /// The block devices and the mount table, for the host-use refusals as well.
    pub(crate) table: BlockTable,
}

/// The native NVMe multipath disk (`nvme<S>n<N>`) that `dir` is, or holds as a partition: a
/// directory below `virtual/nvme-subsystem/nvme-subsys<S>/`.
fn multipath_disk_of(dir: &Path) -> Option<String> {
    let mut parts = dir.iter().map(|c| c.to_string_lossy());
    parts.find(|c| c == "nvme-subsystem")?;
    parts.next()?;
    parts.next().map(|disk| disk.into_owned())
}

impl HostUsage {
    /// Reads the mount table (`/proc/self/mountinfo` or `/proc/mounts`), `/sys/class/block`, `/proc/net/route` and `/proc/net/if_inet6`.
    pub fn read(root: &HostRoot) -> Result<Self, HostError> {
        let mut usage = Self {
            table: BlockTable::read(root)?,
            ..Self::default()
        };
        let mut by_block: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in &usage.table.mounts {
            if let Some(block) = &m.block {
                by_block
                    .entry(block.clone())
                    .or_default()
                    .push(m.target.clone());
            }
        }
        let class_block = root.join("sys/class/block");
        for (block, mount_points) in by_block {
            if usage.table.names.binary_search(&block).is_err() {
                continue;
            }
            let link = class_block.join(&block);
            let Ok(dir) = resolve_link(root.path(), &link) else {
                continue;
            };
            // A mounted device-mapper volume sits on slaves; follow them so an LVM root on NVMe
            // still protects the NVMe.
            let mut dirs = vec![dir.clone()];
            if let Ok(slaves) = fs::read_dir(dir.join("slaves")) {
                for slave in slaves.flatten() {
                    if let Ok(d) = resolve_link(root.path(), &slave.path()) {
                        dirs.push(d);
                    }
                }
            }
            // A native NVMe multipath disk sits under its subsystem; its path disks, under the
            // controllers.
            if let Some(head) = multipath_disk_of(&dir) {
                for name in &usage.table.names {
                    if crate::hostuse::multipath_head(name).is_some_and(|(_, h)| h == head)
                        && let Ok(d) = resolve_link(root.path(), &class_block.join(name))
                    {
                        dirs.push(d);
                    }
                }
            }
            for d in dirs {
                usage.blocks.push((
                    d.clone(),
                    MountedBlock {
                        block: block.clone(),
                        mount_points: mount_points.clone(),
                        sys_path: root.display_path(&d).display().to_string(),
                    },
                ));
            }
        }
        let route = read_attr(&root.join("proc/net/route"))?.unwrap_or_default();
        for line in route.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [
                iface,
                destination,
                _gateway,
                _flags,
                _refcnt,
                _use,
                _metric,
                mask,
                ..,
            ] = fields.as_slice()
            {
                let default = *destination == "00000000" && *mask == "00000000";
                let entry = usage.routes.entry((*iface).to_owned()).or_insert(false);
                *entry |= default;
            }
        }
        let inet6 = read_attr(&root.join("proc/net/if_inet6"))?.unwrap_or_default();
        for line in inet6.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [_addr, _idx, _plen, scope, _flags, iface] = fields.as_slice() {
                // Scope 0x00 is global; link-local (0x20) addresses exist on every up link and
                // say nothing about use.
                let global = *scope == "00";
                let entry = usage.inet6.entry((*iface).to_owned()).or_insert(false);
                *entry |= global;
            }
        }
        Ok(usage)
    }

    /// Mounted block devices backed by the device whose sysfs directory is `device_dir`.
    pub fn mounts_under(&self, device_dir: &Path) -> Vec<&MountedBlock> {
        self.blocks
            .iter()
            .filter(|(dir, _)| dir.starts_with(device_dir))
            .map(|(_, m)| m)
            .collect()
    }

    /// How the host uses interface `name`.
    pub fn net(&self, root: &HostRoot, name: &str) -> NetUse {
        let (has_addresses, default_route) = self.addressing(name);
        NetUse {
            interface: name.to_owned(),
            up: self.is_up(root, name),
            has_addresses,
            default_route,
            master: self.master(root, name),
        }
    }

    /// Whether interface `name` has addresses (IPv4 routes or global IPv6 addresses), and
    /// whether it carries the IPv4 default route: from the tables read once.
    pub fn addressing(&self, name: &str) -> (bool, bool) {
        let has_addresses =
            self.routes.contains_key(name) || self.inet6.get(name).copied().unwrap_or(false);
        (
            has_addresses,
            self.routes.get(name).copied().unwrap_or(false),
        )
    }

    /// Interface `name`'s `operstate` is `up`.
    pub fn is_up(&self, root: &HostRoot, name: &str) -> bool {
        read_attr(&root.join("sys/class/net").join(name).join("operstate"))
            .ok()
            .flatten()
            .is_some_and(|s| s.trim() == "up")
    }

    /// The bond or bridge interface `name` is enslaved to (its `master` link).
    pub fn master(&self, root: &HostRoot, name: &str) -> Option<String> {
        crate::read::link_name(&root.join("sys/class/net").join(name).join("master"))
            .ok()
            .flatten()
    }
}
