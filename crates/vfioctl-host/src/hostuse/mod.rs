//! How the host uses each device (mounts, swap, network, console, platform functions), gathered
//! for the planner's refusals. Kept apart from carrying out plans so that the safety checks can
//! grow without touching the executor.
//!
//! Interfaces and disks can sit at any depth below a PCI function (`virtio2/net/eth0`, an
//! auxiliary device, `usb2/2-1/.../block/sda`, `nvme/nvme0/nvme0n1`), and what the host uses may
//! be built on them (dm/LVM/md `holders/`, btrfs members, bond/bridge/VLAN uppers). The nearest
//! PCI function above a disk or interface in the device tree is its owner. Two walks find them
//! ([`Walk`]): for the whole host, `/sys/class/block` and `/sys/class/net` once (one link each);
//! for a few functions (a plan read around its devices), each function's own directory down to
//! the next function, so the cost follows what they hold, not how many interfaces the host has.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use vfioctl_core::PciAddress;
use vfioctl_core::critical::CriticalFunctions;
use vfioctl_core::plan::HostUse;

use crate::HostRoot;
use crate::mounts::BlockTable;
use crate::read::{dir_names, read_attr, resolve_link};
use crate::usage::HostUsage;
use crate::zfs::ZfsPools;

mod locate;

pub use locate::Walk;
pub(crate) use locate::multipath_head;
use locate::{Located, function_dir, locate};

/// The host's own additions to the host-critical table.
pub const HOST_CRITICAL_FILE: &str = "/etc/vfioctl/host-critical.toml";

/// Stacks deeper than this (dm on md on dm ...) are not followed further; no real host has one.
const MAX_STACK: usize = 8;

/// The host-critical table: the built-in one, extended by [`HOST_CRITICAL_FILE`] when that parses.
/// A local file that does not parse is ignored (the built-in table is the safe side);
/// `vfioctl doctor` reports it.
pub fn critical_functions(root: &HostRoot) -> CriticalFunctions {
    let builtin = CriticalFunctions::builtin();
    let local = read_attr(&root.join(HOST_CRITICAL_FILE.trim_start_matches('/')))
        .ok()
        .flatten()
        .and_then(|text| CriticalFunctions::parse(&text, HOST_CRITICAL_FILE).ok());
    match local {
        Some(local) => builtin.merged(local),
        None => builtin,
    }
}

/// What the mount table, `/proc/swaps` and the ZFS pools say, by block device name.
#[derive(Default)]
struct BlockUse {
    mounts: BTreeMap<String, Vec<String>>,
    swaps: BTreeSet<String>,
    zfs: ZfsPools,
    /// The root filesystem comes over the network (NFS, or an iSCSI disk).
    network_root: bool,
}

fn read_block_use(root: &HostRoot, table: &BlockTable) -> BlockUse {
    let mut out = BlockUse::default();
    for m in &table.mounts {
        if m.target == "/" && m.fstype.starts_with("nfs") {
            out.network_root = true;
        }
        if let Some(block) = &m.block {
            out.mounts
                .entry(block.clone())
                .or_default()
                .push(m.target.clone());
        }
    }
    out.zfs = ZfsPools::read(root, table);
    // A mounted btrfs lists one member in the mount table; every member holds the filesystem.
    let btrfs = root.join("sys/fs/btrfs");
    for fs_id in dir_names(&btrfs) {
        let members = dir_names(&btrfs.join(&fs_id).join("devices"));
        let mut points: Vec<String> = members
            .iter()
            .filter_map(|m| out.mounts.get(m))
            .flatten()
            .cloned()
            .collect();
        points.sort();
        points.dedup();
        for m in members {
            out.mounts.insert(m, points.clone());
        }
    }
    // A root on an iSCSI disk comes over the network too: the disk sits under the session.
    let class = root.join("sys/class/block");
    out.network_root |= out
        .mounts
        .iter()
        .filter(|(_, points)| points.iter().any(|p| p == "/"))
        .filter_map(|(name, _)| resolve_link(root.path(), &class.join(name)).ok())
        .any(|dir| {
            dir.components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with("session"))
        });
    let swaps = read_attr(&root.join("proc/swaps"))
        .ok()
        .flatten()
        .unwrap_or_default();
    for line in swaps.lines().skip(1) {
        if let Some(source) = line.split_whitespace().next()
            && let Some(block) = table.block_of_source(root, source)
        {
            out.swaps.insert(block);
        }
    }
    out
}

/// The PCI functions of the inventory, to find the nearest one above a path. sysfs names a PCI
/// function's directory by its address (`pci_name()`), so the names on the path tell, without
/// resolving every function's link first.
struct Owners<'a> {
    root: &'a Path,
    inventory: &'a vfioctl_core::Inventory,
}

impl<'a> Owners<'a> {
    fn new(root: &'a HostRoot, inventory: &'a vfioctl_core::Inventory) -> Self {
        Self {
            root: root.path(),
            inventory,
        }
    }

    /// The nearest PCI function above `path` when it is in the inventory, and the names between
    /// it and `path` that say how it is reached ("usb 2-1", "virtio2", "nvme0"), without the
    /// sysfs plumbing in between.
    fn owner(&self, path: &Path) -> Option<(PciAddress, Vec<String>)> {
        let mut below = Vec::new();
        let mut at = path.parent();
        while let Some(dir) = at.filter(|d| d.starts_with(self.root) && *d != self.root) {
            if let Some(address) = function_dir(dir) {
                below.reverse();
                return self
                    .inventory
                    .get(&address)
                    .is_some()
                    .then_some((address, below));
            }
            if let Some(name) = dir.file_name().and_then(|n| n.to_str())
                && let Some(step) = chain_step(name)
            {
                below.push(step);
            }
            at = dir.parent();
        }
        None
    }
}

/// How one directory on the way down reads in a chain, or `None` for plumbing (`block`, `net`,
/// `host0`, `target0:0:0`, USB root hubs and interfaces).
fn chain_step(name: &str) -> Option<String> {
    let is_usb_device = name.split_once('-').is_some_and(|(bus, port)| {
        !bus.is_empty()
            && bus.bytes().all(|b| b.is_ascii_digit())
            && !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    });
    if is_usb_device {
        return Some(format!("usb {name}"));
    }
    let plumbing = matches!(name, "block" | "net" | "nvme" | "virtio" | "usb")
        || name.contains(':')
        || (name.starts_with("usb") && name[3..].bytes().all(|b| b.is_ascii_digit()))
        || (name.starts_with("host") && name[4..].bytes().all(|b| b.is_ascii_digit()))
        || name.starts_with("target")
        || name.starts_with("port-")
        || name.starts_with("end_device-");
    (!plumbing).then(|| name.to_owned())
}

/// The uses of block device `name` and of everything stacked on it, each with the chain from
/// `name` to the block that is used.
fn block_uses(
    class: &Path,
    name: &str,
    facts: &BlockUse,
    via: &mut Vec<String>,
    out: &mut Vec<HostUse>,
) {
    for mount_point in facts.mounts.get(name).into_iter().flatten() {
        out.push(HostUse::Mount {
            block: name.to_owned(),
            mount_point: mount_point.clone(),
            via: via.clone(),
        });
    }
    if let Some((pool, mount_points)) = facts.zfs.pool_of(name) {
        out.push(HostUse::ZfsMember {
            block: name.to_owned(),
            pool: pool.to_owned(),
            mount_points: mount_points.to_vec(),
            via: via.clone(),
        });
    }
    if facts.swaps.contains(name) {
        out.push(HostUse::Swap {
            block: name.to_owned(),
            via: via.clone(),
        });
    }
    if via.len() >= MAX_STACK {
        return;
    }
    for holder in dir_names(&class.join(name).join("holders")) {
        via.push(name.to_owned());
        block_uses(class, &holder, facts, via, out);
        via.pop();
    }
}

/// For each disk or interface in `located` whose owner is in the inventory, the uses that
/// `uses_from` finds from it, added to its owner's, each with the chain to it.
fn collect(
    owners: &Owners,
    located: &[Located],
    uses: &mut BTreeMap<PciAddress, Vec<HostUse>>,
    mut uses_from: impl FnMut(&str, &mut Vec<String>, &mut Vec<HostUse>),
) {
    for entry in located {
        let Some((address, mut via)) = owners.owner(&entry.dir) else {
            continue;
        };
        via.extend(entry.through.iter().cloned());
        let mut found = Vec::new();
        uses_from(&entry.name, &mut via, &mut found);
        if !found.is_empty() {
            uses.entry(address).or_default().extend(found);
        }
    }
}

/// The uses of interface `name` and of the uppers built on it (VLANs, macvlans, bonds,
/// bridges), each with the chain from `name` to the interface that is used.
fn net_uses(
    root: &HostRoot,
    usage: &HostUsage,
    class: &Path,
    name: &str,
    network_root: bool,
    via: &mut Vec<String>,
    out: &mut Vec<HostUse>,
) {
    // One listing of the interface's directory says whether it has a master and which uppers.
    let entries = dir_names(&class.join(name));
    if let Some(HostUse::Network {
        interface, detail, ..
    }) = net_use_listed(root, usage, name, Some(&entries))
    {
        let essential = network_root && !detail.starts_with("is enslaved");
        let detail = if essential {
            format!("{detail} (the root filesystem comes over it)")
        } else {
            detail
        };
        out.push(HostUse::Network {
            interface,
            detail,
            via: via.clone(),
            essential,
        });
    }
    if via.len() >= MAX_STACK {
        return;
    }
    for entry in &entries {
        if let Some(upper) = entry.strip_prefix("upper_") {
            via.push(name.to_owned());
            net_uses(root, usage, class, upper, network_root, via, out);
            via.pop();
        }
    }
}

/// Facts about how the host uses each device of `inventory`, for the planner's refusals, the
/// disks and interfaces found by `walk`.
pub fn host_uses(
    root: &HostRoot,
    inventory: &vfioctl_core::Inventory,
    usage: &HostUsage,
    walk: Walk,
) -> BTreeMap<PciAddress, Vec<HostUse>> {
    let owners = Owners::new(root, inventory);
    let (blocks, nets) = locate(root, inventory, walk, &usage.table.names);
    let facts = read_block_use(root, &usage.table);
    let mut uses: BTreeMap<PciAddress, Vec<HostUse>> = BTreeMap::new();
    let block_class = root.join("sys/class/block");
    collect(&owners, &blocks, &mut uses, |name, via, found| {
        block_uses(&block_class, name, &facts, via, found);
    });
    let net_class = root.join("sys/class/net");
    collect(&owners, &nets, &mut uses, |name, via, found| {
        net_uses(
            root,
            usage,
            &net_class,
            name,
            facts.network_root,
            via,
            found,
        );
    });
    // Only a boot VGA device can carry the console: the consoles are read for none other.
    let mut consoles = None;
    let critical = critical_functions(root);
    for dev in inventory.devices() {
        if dev.boot_vga
            && dev.driver.is_some()
            && *consoles.get_or_insert_with(|| framebuffer_console(root))
        {
            uses.entry(dev.address).or_default().push(HostUse::Console);
        }
        if let Some(what) = critical.what(dev.class) {
            uses.entry(dev.address)
                .or_default()
                .push(HostUse::Platform {
                    what: what.to_owned(),
                });
        }
    }
    uses
}

/// How the host uses network interface `iface`, when it does: it carries the default route, is
/// up with addresses, or is enslaved to a bond or bridge. Shared by PCI functions and DPAA2
/// objects, so both buses refuse the same things.
pub fn net_host_use(root: &HostRoot, usage: &HostUsage, iface: &str) -> Option<HostUse> {
    net_use_listed(root, usage, iface, None)
}

/// [`net_host_use`], with the names in the interface's directory when the caller has listed
/// them: an interface without a `master` link is then not asked for one. Whether it is up is
/// read only when it has addresses, the one case where that matters.
fn net_use_listed(
    root: &HostRoot,
    usage: &HostUsage,
    iface: &str,
    entries: Option<&[String]>,
) -> Option<HostUse> {
    let (has_addresses, default_route) = usage.addressing(iface);
    let mut facts = Vec::new();
    if default_route {
        facts.push("carries the default route".to_owned());
    } else if has_addresses && usage.is_up(root, iface) {
        facts.push("is up with addresses".to_owned());
    }
    let may_have_master =
        entries.is_none_or(|e| e.binary_search_by(|n| n.as_str().cmp("master")).is_ok());
    if may_have_master && let Some(master) = usage.master(root, iface) {
        facts.push(format!("is enslaved to {master}"));
    }
    (!facts.is_empty()).then(|| HostUse::Network {
        interface: iface.to_owned(),
        detail: facts.join(" and "),
        via: Vec::new(),
        essential: false,
    })
}

/// True when a virtual-terminal console is bound to a framebuffer (`vtcon*/bind` is 1 and names a
/// frame buffer device), so the boot VGA device carries the console.
fn framebuffer_console(root: &HostRoot) -> bool {
    let class = root.join("sys/class/vtconsole");
    dir_names(&class).iter().any(|name| {
        let attr = |a: &str| read_attr(&class.join(name).join(a)).ok().flatten();
        let bound = attr("bind").is_some_and(|b| b.trim() == "1");
        bound && attr("name").is_some_and(|n| n.contains("frame buffer"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_keep_the_devices_and_drop_the_plumbing() {
        let steps: Vec<String> = [
            "usb2",
            "2-1",
            "2-1:1.0",
            "host0",
            "target0:0:0",
            "0:0:0:0",
            "block",
            "sda",
            "virtio2",
            "net",
            "nvme",
            "nvme0",
            "ata1",
            "mlx5_core.eth.0",
            "1-2.4",
        ]
        .iter()
        .filter_map(|n| chain_step(n))
        .collect();
        assert_eq!(
            steps,
            [
                "usb 2-1",
                "sda",
                "virtio2",
                "nvme0",
                "ata1",
                "mlx5_core.eth.0",
                "usb 1-2.4"
            ]
        );
    }
}
