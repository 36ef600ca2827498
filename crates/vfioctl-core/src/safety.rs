//! What must never leave the host, decided in one place: every command that moves devices or
//! says whether they can move (`bind`, `doctor`, `qemu-args`, `libvirt-xml`, `vm check`, the
//! hooks) takes its refusals from [`refusals`], so they never disagree.
//!
//! The host layer gathers the facts ([`HostUse`] per device: mounts, swap, network, console,
//! host-critical functions, each with the chain of devices that leads to it); this module turns
//! them into refusals with the sentence the user reads.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::address::PciAddress;
use crate::device::{Inventory, PciDevice};
use crate::devref::DeviceRef;
use crate::plan::{HostUses, Refusal, RefusalKind, VFIO_PCI};

/// How the host itself uses a device; any of these makes binding it take something away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HostUse {
    /// A block device on it, or one built on it, is mounted.
    Mount {
        /// The block device that is mounted (a partition, or a dm/md device built on one).
        block: String,
        /// Where it is mounted.
        mount_point: String,
        /// The devices between the PCI function and `block` ("usb 2-1", "sda", "sda2").
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        via: Vec<String>,
    },
    /// A block device on it is swap.
    Swap {
        /// The swap device.
        block: String,
        /// The devices between the PCI function and `block`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        via: Vec<String>,
    },
    /// A network interface on it (or an upper built on it) is up with addresses, carries the
    /// default route, or is enslaved to a bond or bridge.
    Network {
        /// Interface name.
        interface: String,
        /// What the host does with it, in words.
        detail: String,
        /// The devices between the PCI function and the interface that is used ("virtio2",
        /// "eth0" when `interface` is the bridge `br0` built on it).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        via: Vec<String>,
        /// The root filesystem comes over it (NFS or iSCSI root): `--force` cannot override.
        #[serde(default)]
        essential: bool,
    },
    /// A block device on it (or one built on it) is a member of an imported ZFS pool, which
    /// the kernel does not show in `holders/`.
    ZfsMember {
        /// The member block device.
        block: String,
        /// The pool it belongs to.
        pool: String,
        /// Where the pool's datasets are mounted.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mount_points: Vec<String>,
        /// The devices between the PCI function and `block`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        via: Vec<String>,
    },
    /// It is the boot VGA device and a console is bound to its framebuffer.
    Console,
    /// It is a function the platform needs (host bridge, LPC bridge, SMBus, IOMMU), per the
    /// host-critical table.
    Platform {
        /// What it is, in the table's words ("LPC bridge").
        what: String,
    },
}

/// Mount points whose loss stops the running host (and vfioctl with it), whatever `--force` says.
pub const ESSENTIAL_MOUNTS: &[&str] = &["/", "/usr"];

impl HostUse {
    /// True when `--force` may not override it: the root filesystem, what vfioctl runs from,
    /// the network the root comes over, and platform functions.
    pub fn essential(&self) -> bool {
        match self {
            Self::Mount { mount_point, .. } => ESSENTIAL_MOUNTS.contains(&mount_point.as_str()),
            Self::Network { essential, .. } => *essential,
            Self::ZfsMember { mount_points, .. } => mount_points
                .iter()
                .any(|m| ESSENTIAL_MOUNTS.contains(&m.as_str())),
            Self::Platform { .. } => true,
            Self::Swap { .. } | Self::Console => false,
        }
    }

    /// The use in words, after the chain that leads to it.
    pub fn describe(&self) -> String {
        let chain = |via: &[String], last: &str| {
            via.iter()
                .map(String::as_str)
                .chain(std::iter::once(last))
                .collect::<Vec<_>>()
                .join(" -> ")
        };
        match self {
            Self::Mount {
                block,
                mount_point,
                via,
            } => format!("{} mounted on {mount_point}", chain(via, block)),
            Self::Swap { block, via } => format!("{} is in use as swap", chain(via, block)),
            Self::Network {
                interface,
                detail,
                via,
                ..
            } => format!("{} {detail}", chain(via, interface)),
            Self::ZfsMember {
                block,
                pool,
                mount_points,
                via,
            } => {
                let mounted = if mount_points.is_empty() {
                    " (imported)".to_owned()
                } else {
                    format!(" mounted on {}", mount_points.join(", "))
                };
                format!("{} -> ZFS pool {pool}{mounted}", chain(via, block))
            }
            Self::Console => "the boot console".to_owned(),
            Self::Platform { what } => format!("the {what} the host needs"),
        }
    }

    fn remedy(&self) -> String {
        match self {
            Self::Mount { mount_point, .. } if self.essential() => format!(
                "{mount_point} is what the running host (and vfioctl) runs from: it cannot be \
                 given away while the host runs; boot from another disk to pass this one"
            ),
            Self::Mount { mount_point, .. } => format!("unmount {mount_point} first"),
            Self::Swap { block, .. } => format!("swapoff /dev/{block} first"),
            Self::ZfsMember { .. } if self.essential() => "the root filesystem is on this ZFS \
                 pool: it cannot be given away while the host runs; boot from another pool to \
                 pass this disk"
                .to_owned(),
            Self::ZfsMember { pool, .. } => format!("export the pool first (zpool export {pool})"),
            Self::Network { .. } if self.essential() => "the root filesystem comes over this \
                 network: it cannot be given away while the host runs"
                .to_owned(),
            Self::Network { .. } => "move the host's network off it first".to_owned(),
            Self::Console => "move the console to another device first".to_owned(),
            Self::Platform { .. } => "it never leaves the host; name another device".to_owned(),
        }
    }
}

/// "0000:00:14.0 (xhci_hcd)": the address and, when bound, the driver.
fn named_device(dev: &PciDevice) -> String {
    match &dev.driver {
        Some(driver) => format!("{} ({driver})", dev.address),
        None => dev.address.to_string(),
    }
}

/// Words for what a device is, for sentences about groups ("onboard audio").
fn kind_words(inv: &Inventory, dev: &PciDevice) -> String {
    let what = match (dev.class.base(), dev.class.subclass()) {
        (0x04, 0x01 | 0x03) => "audio",
        (0x04, _) => "multimedia controller",
        (0x02, _) => "network controller",
        (0x0d, _) => "wireless controller",
        (0x03, _) => "GPU",
        (0x01, _) => "storage controller",
        (0x0c, 0x03) => "USB controller",
        _ => "device",
    };
    // A function on a root bus, with no bridge above it, is part of the board.
    let onboard = dev.parent.is_none_or(|p| inv.get(&p).is_none());
    if onboard {
        format!("onboard {what}")
    } else {
        what.to_owned()
    }
}

fn group_remedy(dev: &PciDevice) -> &'static str {
    match (dev.class.base(), dev.class.subclass()) {
        (0x04, _) => "use a USB or PCIe sound card",
        (0x02 | 0x0d, _) => "use a USB or PCIe network card",
        (0x0c, 0x03) => "use a PCIe USB card",
        (0x01, _) => "use a PCIe storage controller",
        _ => "use a PCIe card in a slot whose IOMMU group holds nothing else",
    }
}

fn uses_of<'a>(uses: &'a HostUses, address: &PciAddress) -> &'a [HostUse] {
    uses.get(&DeviceRef::Pci(*address))
        .map_or(&[], Vec::as_slice)
}

fn platform_what(uses: &HostUses, address: &PciAddress) -> Option<String> {
    uses_of(uses, address).iter().find_map(|u| match u {
        HostUse::Platform { what } => Some(what.clone()),
        _ => None,
    })
}

/// Every refusal that stands in the way of moving `moving` off their host drivers (`named`: the
/// devices the user named; `moving`: those that would change driver, usually whole groups).
///
/// - A named host-critical function, or a group holding one, is refused for good.
/// - A use of the host (disk, swap, network, console) anywhere below a moving device is refused;
///   `--force` overrides it unless the host cannot run without it.
/// - An SR-IOV PF whose VFs are not in their default state is refused: unbinding the PF destroys
///   them.
pub fn refusals(
    inv: &Inventory,
    uses: &HostUses,
    named: &[PciAddress],
    moving: &[PciAddress],
) -> Vec<Refusal> {
    let mut out = Vec::new();
    out.extend(platform_refusals(inv, uses, named));
    let named_set: BTreeSet<&PciAddress> = named.iter().collect();
    for address in moving {
        let Some(dev) = inv.get(address) else {
            continue;
        };
        for host_use in uses_of(uses, address) {
            if matches!(host_use, HostUse::Platform { .. }) {
                continue;
            }
            let shared = if named_set.contains(address) {
                String::new()
            } else {
                " (it shares an IOMMU group with the device you named)".to_owned()
            };
            out.push(Refusal {
                kind: if host_use.essential() {
                    RefusalKind::HostEssential
                } else {
                    RefusalKind::HostCritical
                },
                device: (*address).into(),
                text: format!("{} -> {}{shared}", named_device(dev), host_use.describe()),
                remedy: host_use.remedy(),
                overridable: !host_use.essential(),
            });
        }
        out.extend(sriov_refusal(inv, uses, dev));
    }
    out
}

/// The named functions that are host-critical, and the groups of named devices that hold one.
pub fn platform_refusals(inv: &Inventory, uses: &HostUses, named: &[PciAddress]) -> Vec<Refusal> {
    let mut out = Vec::new();
    let mut groups_done = BTreeSet::new();
    for address in named {
        let Some(dev) = inv.get(address) else {
            continue;
        };
        if let Some(what) = platform_what(uses, address) {
            out.push(Refusal {
                kind: RefusalKind::PlatformFunction,
                device: (*address).into(),
                text: format!("{address} is the {what} the host needs; it never leaves the host"),
                remedy: "name another device (see 'vfioctl groups' for what each group holds)"
                    .to_owned(),
                overridable: false,
            });
            continue;
        }
        let Some(group) = dev.iommu_group else {
            continue;
        };
        if !groups_done.insert(group) {
            continue;
        }
        let critical: Vec<String> = inv
            .group_members(address)
            .iter()
            .filter_map(|m| platform_what(uses, m).map(|what| format!("{what} {m}")))
            .collect();
        if critical.is_empty() {
            continue;
        }
        let named_here: Vec<String> = named
            .iter()
            .filter_map(|n| inv.get(n))
            .filter(|n| n.iommu_group == Some(group))
            .map(|n| format!("the {} {}", kind_words(inv, n), n.address))
            .collect();
        out.push(Refusal {
            kind: RefusalKind::PlatformFunction,
            device: (*address).into(),
            text: format!(
                "group {group} holds the {} the host needs; {} cannot go to a VM on this board",
                and_list(&critical),
                and_list(&named_here)
            ),
            remedy: group_remedy(dev).to_owned(),
            overridable: false,
        });
    }
    out
}

fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A PF whose VFs are bound to something other than their default state (vfio-pci, an override,
/// or a use of the host) cannot be unbound: its driver destroys every VF on the way out.
fn sriov_refusal(inv: &Inventory, uses: &HostUses, pf: &PciDevice) -> Option<Refusal> {
    if pf.virtfns.is_empty() || pf.driver.is_none() {
        return None;
    }
    let held = held_vfs(inv, uses, pf);
    if held.is_empty() {
        return None;
    }
    Some(Refusal {
        kind: RefusalKind::SriovVfsInUse,
        device: pf.address.into(),
        text: format!(
            "{} is an SR-IOV PF: unbinding it destroys its {} VFs, and {}",
            named_device(pf),
            pf.virtfns.len(),
            and_list(&held)
        ),
        remedy: "give those VFs back first (vfioctl restore, or stop their VM)".to_owned(),
        overridable: false,
    })
}

/// The VFs of `pf` that are not in their default state (on vfio-pci, under an override, used by
/// the host), each as `"<address> <what holds it>"`: removing them would take something away.
pub fn held_vfs(inv: &Inventory, uses: &HostUses, pf: &PciDevice) -> Vec<String> {
    pf.virtfns
        .iter()
        .filter_map(|vf| inv.get(vf))
        .filter_map(|vf| {
            let holder = if vf.driver.as_deref() == Some(VFIO_PCI) {
                Some("on vfio-pci (a VM may be using it)".to_owned())
            } else if let Some(o) = &vf.driver_override {
                Some(format!("has driver_override {o}"))
            } else {
                uses_of(uses, &vf.address).first().map(HostUse::describe)
            }?;
            Some(format!("{} {holder}", vf.address))
        })
        .collect()
}

/// The warning a plan carries for a PF whose VFs are free: they go away with its driver.
pub fn sriov_warning(pf: &PciDevice) -> Option<String> {
    (!pf.virtfns.is_empty() && pf.driver.is_some()).then(|| {
        format!(
            "{} is an SR-IOV PF: unbinding it from {} removes its {} VFs ({})",
            pf.address,
            pf.driver.as_deref().unwrap_or("its driver"),
            pf.virtfns.len(),
            crate::comma_list(&pf.virtfns)
        )
    })
}

#[cfg(test)]
#[path = "safety_tests.rs"]
mod tests;
