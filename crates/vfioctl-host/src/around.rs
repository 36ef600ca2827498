//! Reading only what a question about a few devices needs: those functions, every member of
//! their IOMMU groups, and the bridges above them. `show`, a bind plan and its dry run then cost
//! the same on a host with 16 functions as on one with thousands of SR-IOV functions.

use std::collections::{BTreeMap, BTreeSet};

use vfioctl_core::{Inventory, PciAddress};

use crate::read::{Depth, device_dir, dir_names, read_device_at};
use crate::{HostError, HostRoot};

/// Every PCI address on the host, from one directory listing (no per-device reads).
pub fn addresses(root: &HostRoot) -> Vec<PciAddress> {
    let mut all: Vec<PciAddress> = dir_names(&root.join("sys/bus/pci/devices"))
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    all.sort_unstable();
    all
}

/// The PCI functions `names` select when every name is an address this host has (DPAA2 names
/// select none); `None` when some name needs every device to resolve (an ID, an interface, an
/// address that is not there, which the full selection then reports).
pub fn seeds(root: &HostRoot, names: &[String]) -> Option<Vec<PciAddress>> {
    let mut all: Option<Vec<PciAddress>> = None;
    let mut seeds = Vec::new();
    for name in names {
        if name.parse::<vfioctl_core::FslMcName>().is_ok() {
            continue;
        }
        let selector = name.parse::<vfioctl_core::PciSelector>().ok()?;
        // One stat answers for an address the host has; listing a large host's devices costs
        // more than the rest of a command.
        let direct = selector.first_choice();
        if root.pci_device(&direct).exists() {
            seeds.push(direct);
            continue;
        }
        let list = all.get_or_insert_with(|| addresses(root));
        seeds.push(selector.resolve(list.iter()).ok()?);
    }
    Some(seeds)
}

/// The members of IOMMU group `group`, as the kernel lists them (none when it does not exist).
pub fn group_members(root: &HostRoot, group: u32) -> Vec<PciAddress> {
    let mut members: Vec<PciAddress> =
        dir_names(&root.join(format!("sys/kernel/iommu_groups/{group}/devices")))
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
    members.sort_unstable();
    members
}

/// Reads `seeds`, the members of their groups and their upstream bridges, at `depth`: an
/// inventory that answers every question about those devices that the whole one would.
pub fn read_around(
    root: &HostRoot,
    seeds: &[PciAddress],
    depth: Depth,
) -> Result<Inventory, HostError> {
    read_around_with(
        root,
        seeds,
        depth,
        Reach::Plan,
        &crate::owners::stuck_devices(root),
    )
}

/// How far a read around some devices goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The devices, the members of their groups, their upstream bridges and a PF's VFs: all
    /// that a bind plan's safety rules look at.
    Plan,
    /// The devices and the members of their groups: all that naming devices to give back needs.
    Groups,
}

/// [`read_around`] as far as `reach`, with the devices whose unbind is stuck known already
/// ([`crate::owners::stuck_in`] of a journal the caller holds).
pub fn read_around_with(
    root: &HostRoot,
    seeds: &[PciAddress],
    depth: Depth,
    reach: Reach,
    locked: &BTreeSet<PciAddress>,
) -> Result<Inventory, HostError> {
    let mut queue: Vec<PciAddress> = seeds.to_vec();
    let mut seen: BTreeSet<PciAddress> = BTreeSet::new();
    let mut devices = Vec::new();
    let mut groups: BTreeMap<u32, Vec<PciAddress>> = BTreeMap::new();
    while let Some(address) = queue.pop() {
        if !seen.insert(address) {
            continue;
        }
        let dir = device_dir(root, &address)?;
        let dev = read_device_at(address, &dir, depth, locked.contains(&address))?;
        if reach == Reach::Plan {
            queue.extend(dev.parent);
            // Unbinding a PF destroys its VFs: the safety rules must see what each VF is on.
            queue.extend(dev.virtfns.iter().copied());
        }
        if let Some(group) = dev.iommu_group
            && !groups.contains_key(&group)
        {
            let members = group_members(root, group);
            queue.extend(members.iter().copied());
            groups.insert(group, members);
        }
        devices.push(dev);
    }
    let iommu_enabled = !groups.is_empty() || !dir_names(&root.join("sys/class/iommu")).is_empty();
    Ok(Inventory::new(devices, iommu_enabled, groups))
}
