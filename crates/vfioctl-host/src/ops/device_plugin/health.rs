//! What the plugin knows of its devices now: a fresh read around their members, and each
//! device's health from it.

use vfioctl_core::deviceplugin::{Advertised, Unhealthy, health};
use vfioctl_core::{Inventory, PciAddress};
use vfioctl_kubelet_api::v1beta1::Device;
use vfioctl_kubelet_api::{HEALTHY, UNHEALTHY};

use crate::HostRoot;
use crate::read::Depth;

/// Reads the members of `devices`, their groups and the bridges above them: what health and
/// `Allocate` need, without reading the rest of a host that may have thousands of functions.
pub(super) fn read(root: &HostRoot, devices: &[Advertised]) -> Inventory {
    let seeds: Vec<PciAddress> = devices.iter().flat_map(|d| d.group.addresses()).collect();
    if let Ok(inv) = crate::around::read_around(root, &seeds, Depth::Summary) {
        return inv;
    }
    // A member is gone or unreadable: read the others one by one, so that the device it belongs
    // to is reported unhealthy naming that member, and the other devices keep their health.
    let mut found = Vec::new();
    let mut groups = std::collections::BTreeMap::new();
    let mut queue = seeds;
    let mut seen = std::collections::BTreeSet::new();
    while let Some(address) = queue.pop() {
        if !seen.insert(address) {
            continue;
        }
        // Health needs neither driver_override nor sriov_numvfs: leaving them unread ("locked")
        // means a stuck unbind elsewhere can never block the poll.
        let Ok(device) = crate::read::device_dir(root, &address)
            .and_then(|dir| crate::read::read_device_at(address, &dir, Depth::Summary, true))
        else {
            continue;
        };
        if let Some(group) = device.iommu_group {
            groups.entry(group).or_insert_with(|| {
                let members = crate::around::group_members(root, group);
                queue.extend(members.iter().copied());
                members
            });
        }
        found.push(device);
    }
    let iommu = !groups.is_empty();
    Inventory::new(found, iommu, groups)
}

/// The health of each device of `devices`, in order.
pub(super) fn check(inv: &Inventory, devices: &[Advertised]) -> Vec<Result<(), Unhealthy>> {
    devices.iter().map(|d| health(inv, &d.group)).collect()
}

/// The `ListAndWatch` list.
pub(super) fn list(devices: &[Advertised], health: &[Result<(), Unhealthy>]) -> Vec<Device> {
    devices
        .iter()
        .zip(health)
        .map(|(d, h)| Device {
            id: d.group.id.clone(),
            health: if h.is_ok() { HEALTHY } else { UNHEALTHY }.to_owned(),
            topology: None,
        })
        .collect()
}
