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
    // A failed read makes every device unhealthy (gone), which is what the kubelet must hear.
    crate::around::read_around(root, &seeds, Depth::Summary).unwrap_or_default()
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
