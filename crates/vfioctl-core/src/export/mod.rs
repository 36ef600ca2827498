//! Exports of this node's passthrough-ready IOMMU groups in the formats of the engines that hand
//! PCI devices out per device (Proxmox VE cluster mappings, OpenStack Nova, KubeVirt), and the
//! check of an exported file against the node as it is now.
//!
//! A group is passthrough-ready when it has endpoints and the bind planner refuses none of its
//! members (host disk, network, console, host-critical functions); the host layer decides that
//! and hands the refused addresses in. Bridges are never exported: they stay on `pcieport`.

pub mod check;
pub mod kubevirt;
pub mod nova;
pub mod proxmox;

use std::collections::BTreeSet;
use std::hash::Hasher as _;

use serde::Serialize;

use crate::{ClassCode, Inventory, PciAddress, VendorDevice};

/// How a function takes part in SR-IOV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SriovRole {
    /// Neither a physical nor a virtual function.
    None,
    /// A physical function that can make VFs.
    Pf,
    /// A virtual function.
    Vf,
}

/// One endpoint of a ready group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadyMember {
    /// Its address.
    pub address: PciAddress,
    /// Its `vendor:device`.
    pub id: VendorDevice,
    /// Its subsystem `vendor:device`, when it has one.
    pub subsystem: Option<VendorDevice>,
    /// Its class code.
    pub class: ClassCode,
    /// Its SR-IOV role.
    pub sriov: SriovRole,
}

/// An IOMMU group every endpoint of which can go to a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadyGroup {
    /// Stable across reboots: derived from the members' addresses and identities, never from
    /// the group number, which the kernel hands out in probe order.
    pub id: String,
    /// The group number now.
    pub group: u32,
    /// Its endpoints, in address order.
    pub members: Vec<ReadyMember>,
}

impl ReadyGroup {
    /// The members' addresses.
    pub fn addresses(&self) -> impl Iterator<Item = PciAddress> + '_ {
        self.members.iter().map(|m| m.address)
    }
}

/// The ID of a group with these members: `vfio-` and 16 hex digits of a 64-bit FNV-1a hash over
/// each member's address, `vendor:device` and subsystem. Two identical cards in two slots get two
/// IDs; the same card in the same slot gets the same ID on every boot. At most 63 characters, as
/// the kubelet requires of device IDs.
pub fn stable_id(members: &[ReadyMember]) -> String {
    let mut hasher = fnv::FnvHasher::default();
    for m in members {
        let subsystem = m.subsystem.map(|s| s.to_string()).unwrap_or_default();
        hasher.write(format!("{} {} {subsystem};", m.address, m.id).as_bytes());
    }
    format!("vfio-{:016x}", hasher.finish())
}

/// The endpoints of group `group` as export members, `None` when a member is a bridge-less
/// group without endpoints.
fn members_of(inv: &Inventory, addresses: &[PciAddress]) -> Vec<ReadyMember> {
    let mut members: Vec<ReadyMember> = addresses
        .iter()
        .filter_map(|a| inv.get(a))
        .filter(|d| !d.is_bridge())
        .map(|d| ReadyMember {
            address: d.address,
            id: d.id,
            subsystem: d.subsystem,
            class: d.class,
            sriov: if d.physfn.is_some() {
                SriovRole::Vf
            } else if d.sriov_totalvfs.is_some() {
                SriovRole::Pf
            } else {
                SriovRole::None
            },
        })
        .collect();
    members.sort_by_key(|m| m.address);
    members
}

/// Every group of `inv` that has endpoints and no member in `refused`, in group order.
pub fn ready_groups(inv: &Inventory, refused: &BTreeSet<PciAddress>) -> Vec<ReadyGroup> {
    inv.groups
        .iter()
        .filter(|(_, addresses)| !addresses.iter().any(|a| refused.contains(a)))
        .filter_map(|(&group, addresses)| {
            let members = members_of(inv, addresses);
            (!members.is_empty()).then(|| ReadyGroup {
                id: stable_id(&members),
                group,
                members,
            })
        })
        .collect()
}

/// The engine an export is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Proxmox VE `/etc/pve/mapping/pci.cfg`.
    ProxmoxMapping,
    /// OpenStack Nova's `[pci]` section of `nova.conf`.
    Nova,
    /// KubeVirt's `permittedHostDevices`.
    Kubevirt,
}

impl Format {
    /// Tells an exported file's format from its text: KubeVirt's key, Nova's option names, or
    /// else Proxmox's section config.
    pub fn detect(text: &str) -> Self {
        if text.contains("permittedHostDevices") || text.contains("pciHostDevices") {
            Self::Kubevirt
        } else if text.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("[pci]") || l.starts_with("device_spec") || l.starts_with("alias")
        }) {
            Self::Nova
        } else {
            Self::ProxmoxMapping
        }
    }
}

#[cfg(test)]
mod tests;
