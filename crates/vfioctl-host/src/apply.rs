//! Facts the planner needs about how the host uses its devices, and handing group nodes to users.
//!
//! Carrying out plans lives in [`crate::executor`] and [`crate::transaction`]; their types are
//! re-exported here for the callers that knew them from this module.

use std::collections::BTreeMap;
use std::path::Path;

use vfioctl_core::PciAddress;

use crate::read::device_dir;
use crate::{HostError, HostRoot};

pub use crate::executor::{Executor, StepError, Timeouts, WRITE_HELPER_OTHER_ERROR, chain};
pub use crate::transaction::{ApplyError, Rollback};

/// Facts about how the host uses each device, for the planner's refusals.
pub fn host_uses(
    root: &HostRoot,
    inventory: &vfioctl_core::Inventory,
    usage: &crate::usage::HostUsage,
) -> BTreeMap<PciAddress, Vec<vfioctl_core::plan::HostUse>> {
    use vfioctl_core::plan::HostUse;
    let consoles = framebuffer_console(root);
    let mut uses = BTreeMap::new();
    for dev in inventory.devices() {
        let mut list = Vec::new();
        if let Ok(dir) = device_dir(root, &dev.address) {
            for m in usage.mounts_under(&dir) {
                for mp in &m.mount_points {
                    list.push(HostUse::Mount {
                        block: m.block.clone(),
                        mount_point: mp.clone(),
                    });
                }
            }
        }
        list.extend(
            dev.net_interfaces
                .iter()
                .filter_map(|iface| net_host_use(root, usage, iface)),
        );
        if dev.boot_vga && dev.driver.is_some() && consoles {
            list.push(HostUse::Console);
        }
        if !list.is_empty() {
            uses.insert(dev.address, list);
        }
    }
    uses
}

/// How the host uses network interface `iface`, when it does: it carries the default route, is
/// up with addresses, or is enslaved to a bond or bridge. Shared by PCI functions and DPAA2
/// objects, so both buses refuse the same things.
pub fn net_host_use(
    root: &HostRoot,
    usage: &crate::usage::HostUsage,
    iface: &str,
) -> Option<vfioctl_core::plan::HostUse> {
    let net = usage.net(root, iface);
    let mut facts = Vec::new();
    if net.default_route {
        facts.push("carries the default route".to_owned());
    } else if net.up && net.has_addresses {
        facts.push("is up with addresses".to_owned());
    }
    if let Some(master) = &net.master {
        facts.push(format!("is enslaved to {master}"));
    }
    (!facts.is_empty()).then(|| vfioctl_core::plan::HostUse::Network {
        interface: iface.to_owned(),
        detail: facts.join(" and "),
    })
}

/// True when a virtual-terminal console is bound to a framebuffer (`vtcon*/bind` is 1 and names a
/// frame buffer device), so the boot VGA device carries the console.
fn framebuffer_console(root: &HostRoot) -> bool {
    let Ok(entries) = std::fs::read_dir(root.join("sys/class/vtconsole")) else {
        return false;
    };
    entries.flatten().any(|e| {
        let dir = e.path();
        let bound = std::fs::read_to_string(dir.join("bind")).is_ok_and(|b| b.trim() == "1");
        let fb =
            std::fs::read_to_string(dir.join("name")).is_ok_and(|n| n.contains("frame buffer"));
        bound && fb
    })
}

/// True when the `vfio-pci` driver is registered (module loaded or built in).
pub fn vfio_pci_loaded(root: &HostRoot) -> bool {
    Path::new(&root.join("sys/bus/pci/drivers/vfio-pci")).is_dir()
}

/// Gives `/dev/vfio/<group>` to `uid:gid` with mode 0600: only that user (and root) may open it,
/// never wider than the kernel's default.
pub fn give_group_node(root: &HostRoot, group: u32, uid: u32, gid: u32) -> Result<(), HostError> {
    use std::os::unix::fs::PermissionsExt;
    let node = root.join(format!("dev/vfio/{group}"));
    let meta = std::fs::symlink_metadata(&node).map_err(|source| HostError::Read {
        path: node.clone(),
        source,
    })?;
    if meta.file_type().is_symlink() {
        return Err(HostError::BadLink { path: node });
    }
    std::os::unix::fs::lchown(&node, Some(uid), Some(gid)).map_err(|source| HostError::Write {
        path: node.clone(),
        value: format!("owner {uid}:{gid}"),
        source,
    })?;
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        HostError::Write {
            path: node.clone(),
            value: "mode 0600".to_owned(),
            source,
        }
    })
}
