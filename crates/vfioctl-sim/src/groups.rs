//! An independent emulation of the kernel's `pci_device_group()` (drivers/iommu/iommu.c).
//!
//! Written from the kernel source, not from `vfioctl-core`'s explanation code, so that tests can
//! cross-check the two. Devices are added in address order, which is the kernel's enumeration
//! order when bus numbers are assigned depth-first (as firmware and Linux do): a bridge always
//! gets its group before the devices behind it.

use std::collections::{BTreeMap, HashMap};

use vfioctl_core::PciAddress;
use vfioctl_core::config::{ACS_EC, REQ_ACS_FLAGS};

use crate::spec::{DeviceSpec, GroupRule, HostSpec, PciKind};

/// The shape of the PCI hierarchy: who sits behind which bridge.
#[derive(Debug)]
pub struct Hierarchy<'a> {
    devices: BTreeMap<PciAddress, &'a DeviceSpec>,
    bridge_of_bus: HashMap<(u32, u8), PciAddress>,
}

impl<'a> Hierarchy<'a> {
    /// Indexes `devices`.
    pub fn new(devices: &'a [DeviceSpec]) -> Self {
        let devices: BTreeMap<_, _> = devices.iter().map(|d| (d.address, d)).collect();
        let bridge_of_bus = devices
            .values()
            .filter_map(|d| Some(((d.address.domain, d.secondary_bus?), d.address)))
            .collect();
        Self {
            devices,
            bridge_of_bus,
        }
    }

    /// The device at `address`.
    pub fn get(&self, address: &PciAddress) -> Option<&'a DeviceSpec> {
        self.devices.get(address).copied()
    }

    /// All devices in address order.
    pub fn devices(&self) -> impl Iterator<Item = &'a DeviceSpec> + '_ {
        self.devices.values().copied()
    }

    /// The upstream bridge (`pdev->bus->self`, skipping the virtual buses SR-IOV creates for VFs
    /// beyond the PF's bus: those have no `self`, and the kernel's walks continue to the parent).
    pub fn parent(&self, address: &PciAddress) -> Option<PciAddress> {
        if let Some(bridge) = self.bridge_of_bus.get(&(address.domain, address.bus)) {
            return Some(*bridge);
        }
        let pf = self.get(address)?.physfn?;
        if pf.bus == address.bus {
            return None;
        }
        self.parent(&pf)
    }

    /// Upstream bridges, nearest first.
    pub fn ancestors(&self, address: &PciAddress) -> Vec<PciAddress> {
        let mut chain = Vec::new();
        let mut next = self.parent(address);
        while let Some(p) = next {
            if chain.len() > self.devices.len() {
                break;
            }
            chain.push(p);
            next = self.parent(&p);
        }
        chain
    }
}

/// The kernel's `pci_acs_enabled(dev, REQ_ACS_FLAGS)` (without device-specific quirks).
pub fn acs_enabled(dev: &DeviceSpec, host: &HostSpec) -> bool {
    let flags_enabled = || match (dev.acs, dev.acs_control_at_boot(host)) {
        // pci_acs_flags_enabled(): features the port lacks count as hard-wired on, except EC.
        (Some(acs), Some(ctrl)) => {
            let required = REQ_ACS_FLAGS & (acs.capability | ACS_EC);
            ctrl & required == required
        }
        _ => false,
    };
    match dev.kind {
        // Conventional PCI: every device on the bus sees every transaction.
        PciKind::PciFunction | PciKind::PciBridge => false,
        // "ACS is never applicable" to PCIe-to-PCI bridges; taken conservatively.
        PciKind::PcieToPciBridge | PciKind::RcEventCollector => false,
        PciKind::RootPort | PciKind::Downstream => flags_enabled(),
        PciKind::Endpoint | PciKind::RcEndpoint | PciKind::Upstream => {
            !dev.multifunction || flags_enabled()
        }
    }
}

/// The kernel's `pci_acs_path_enabled(start, NULL, REQ_ACS_FLAGS)`.
fn acs_path_enabled(h: &Hierarchy<'_>, host: &HostSpec, start: PciAddress) -> bool {
    let mut cur = start;
    for _ in 0..=h.devices.len() {
        let Some(dev) = h.get(&cur) else { return false };
        if !acs_enabled(dev, host) {
            return false;
        }
        match h.parent(&cur) {
            None => return true,
            Some(p) => cur = p,
        }
    }
    false
}

/// True when VFs of the PF at `pf` each get a group of their own: a VF is a single function, so
/// what decides is the ACS path from the PF's upstream bridge to the root (a PF on the root bus
/// has none to cross).
pub fn vfs_isolated(h: &Hierarchy<'_>, host: &HostSpec, pf: PciAddress) -> bool {
    h.parent(&pf)
        .is_none_or(|bridge| acs_path_enabled(h, host, bridge))
}

/// Computes every device's group number (`None`: no group), as the kernel would.
pub fn compute_groups(
    devices: &[DeviceSpec],
    host: &HostSpec,
) -> BTreeMap<PciAddress, Option<u32>> {
    let h = Hierarchy::new(devices);
    let mut assigned: BTreeMap<PciAddress, Option<u32>> = BTreeMap::new();
    // Fixed numbers are reserved up front so computed groups never collide with them.
    let fixed: Vec<u32> = h
        .devices()
        .filter_map(|d| match d.group {
            GroupRule::Fixed(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut next = 0u32;
    let mut alloc = || {
        while fixed.contains(&next) {
            next += 1;
        }
        next += 1;
        next - 1
    };
    for dev in h.devices() {
        let group = match dev.group {
            GroupRule::None => None,
            GroupRule::Fixed(n) => Some(n),
            GroupRule::Computed => {
                Some(device_group(&h, host, dev, &assigned).unwrap_or_else(&mut alloc))
            }
        };
        assigned.insert(dev.address, group);
    }
    assigned
}

/// `pci_device_group()`: the existing group `dev` joins, or `None` for a new one.
fn device_group(
    h: &Hierarchy<'_>,
    host: &HostSpec,
    dev: &DeviceSpec,
    assigned: &BTreeMap<PciAddress, Option<u32>>,
) -> Option<u32> {
    let group_of = |a: &PciAddress| assigned.get(a).copied().flatten();

    // pci_for_each_dma_alias(): conventional PCI behind a PCIe-to-PCI or PCI bridge is seen with
    // the bridge's requester ID; the topmost such bridge is the alias. PCIe ports pass through.
    let mut pdev = dev.address;
    for bridge in h.ancestors(&dev.address) {
        let Some(b) = h.get(&bridge) else { break };
        match b.kind {
            PciKind::RootPort | PciKind::Upstream | PciKind::Downstream => continue,
            _ => {
                pdev = bridge;
                if let Some(g) = group_of(&bridge) {
                    return Some(g);
                }
            }
        }
    }

    // Walk up from the alias to the first bridge whose ACS path to the root is enabled; every
    // bridge passed on the way shares its group.
    for bridge in h.ancestors(&pdev) {
        if acs_path_enabled(h, host, bridge) {
            break;
        }
        pdev = bridge;
        if let Some(g) = group_of(&bridge) {
            return Some(g);
        }
    }

    // get_pci_alias_group(): the alias itself may already have a group.
    if let Some(g) = group_of(&pdev) {
        return Some(g);
    }

    // get_pci_function_alias_group(): functions of one slot without ACS share.
    let p = h.get(&pdev)?;
    if !p.multifunction || acs_enabled(p, host) {
        return None;
    }
    (0..8u8)
        .filter_map(|f| pdev.with_function(f))
        .filter(|a| *a != pdev)
        .filter_map(|a| h.get(&a))
        .filter(|t| !acs_enabled(t, host))
        .find_map(|t| group_of(&t.address))
}

/// Groups as `sys/kernel/iommu_groups` lists them: number → sorted members.
pub fn group_members(
    assigned: &BTreeMap<PciAddress, Option<u32>>,
) -> BTreeMap<u32, Vec<PciAddress>> {
    let mut groups: BTreeMap<u32, Vec<PciAddress>> = BTreeMap::new();
    for (addr, g) in assigned {
        if let Some(g) = g {
            groups.entry(*g).or_default().push(*addr);
        }
    }
    groups
}
