//! Which IOMMU groups of this node can go to a VM now: the groups whose endpoints the bind
//! planner would bind without a refusal. Exports and the device plugin advertise only these.

use std::collections::BTreeSet;

use vfioctl_core::export::{ReadyGroup, ready_groups};
use vfioctl_core::plan::BindOptions;
use vfioctl_core::{DeviceRef, PciAddress};

use super::bind::{HostState, plan};
use super::{Host, OpError};

/// The members of every group a refusal (one `--force` would not override either) touches.
pub fn refused_members(host: &Host, state: &HostState) -> Result<BTreeSet<PciAddress>, OpError> {
    let endpoints: Vec<DeviceRef> = state
        .pci
        .groups
        .values()
        .flatten()
        .filter(|a| state.pci.get(a).is_some_and(|d| !d.is_bridge()))
        .map(|a| DeviceRef::Pci(*a))
        .collect();
    let plan = plan(host, state, &endpoints, &BindOptions::default())?;
    let mut refused = BTreeSet::new();
    for refusal in plan.blocking_refusals(false) {
        if let DeviceRef::Pci(address) = &refusal.device {
            refused.insert(*address);
            refused.extend(state.pci.group_members(address));
        }
    }
    Ok(refused)
}

/// The ready groups of the host as it is now, with the state they were read from.
pub fn read_ready(host: &Host) -> Result<(HostState, Vec<ReadyGroup>), OpError> {
    let state = HostState::read(host)?;
    let refused = refused_members(host, &state)?;
    let groups = ready_groups(&state.pci, &refused);
    Ok((state, groups))
}
