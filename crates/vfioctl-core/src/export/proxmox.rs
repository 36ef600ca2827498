//! Proxmox VE cluster resource mappings (`/etc/pve/mapping/pci.cfg`, `PVE::Mapping::PCI`): one
//! mapping per device of a ready group, each with one `map` line for this node.
//!
//! A mapping is one `hostpciN` of a VM, and a `map` line carries one `id` and `subsystem-id` that
//! every path must match, so a group of several devices becomes several mappings (`<id>-1`,
//! `<id>-2`) whose descriptions name each other: Proxmox checks only the first path's IOMMU
//! group and would start a VM with part of a group. The functions of one slot that are all in the
//! group are one path without a function (`0000:01:00`, Proxmox's "all functions"), checked
//! against function 0's identity, as Proxmox checks it.

use serde::Serialize;

use super::ReadyGroup;
use crate::{PciAddress, VendorDevice};

/// One mapping of `pci.cfg` with its `map` line for this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mapping {
    /// The mapping's name.
    pub name: String,
    /// Its description: the group and the other mappings that go with it.
    pub description: String,
    /// The node the `map` line is for.
    pub node: String,
    /// The paths (`0000:01:00.0`, or `0000:01:00` for every function of the slot).
    pub paths: Vec<String>,
    /// `id`.
    pub id: VendorDevice,
    /// `subsystem-id`.
    pub subsystem_id: Option<VendorDevice>,
    /// `iommugroup`.
    pub iommugroup: u32,
}

fn slot_path(address: PciAddress) -> String {
    format!(
        "{:04x}:{:02x}:{:02x}",
        address.domain, address.bus, address.device
    )
}

/// The mappings of `groups` for `node`.
///
/// `slot_functions` counts the functions each slot has on the host, so a slot is named whole only
/// when the group holds all of them.
pub fn mappings(
    groups: &[ReadyGroup],
    node: &str,
    slot_functions: &dyn Fn(PciAddress) -> usize,
) -> Vec<Mapping> {
    let mut out = Vec::new();
    for group in groups {
        let mut devices: Vec<(Vec<String>, &super::ReadyMember)> = Vec::new();
        let mut i = 0;
        while i < group.members.len() {
            let first = &group.members[i];
            let slot: Vec<_> = group.members[i..]
                .iter()
                .take_while(|m| m.address.same_slot(&first.address))
                .collect();
            let whole = slot.len() > 1
                && slot.len() == slot_functions(first.address)
                && first.address.function == 0;
            if whole {
                devices.push((vec![slot_path(first.address)], first));
            } else {
                devices.extend(slot.iter().map(|m| (vec![m.address.to_string()], *m)));
            }
            i += slot.len();
        }
        let names: Vec<String> = if devices.len() == 1 {
            vec![group.id.clone()]
        } else {
            (1..=devices.len())
                .map(|n| format!("{}-{n}", group.id))
                .collect()
        };
        for (n, (paths, member)) in devices.into_iter().enumerate() {
            let others: Vec<&str> = names
                .iter()
                .enumerate()
                .filter(|(k, _)| *k != n)
                .map(|(_, name)| name.as_str())
                .collect();
            let description = if others.is_empty() {
                format!("vfioctl: IOMMU group {} (whole)", group.group)
            } else {
                format!(
                    "vfioctl: IOMMU group {} with {}: assign them to the same VM",
                    group.group,
                    others.join(", ")
                )
            };
            out.push(Mapping {
                name: names[n].clone(),
                description,
                node: node.to_owned(),
                paths,
                id: member.id,
                subsystem_id: member.subsystem,
                iommugroup: group.group,
            });
        }
    }
    out
}

/// `pci.cfg` text: each mapping's name, then its indented `description` and `map` lines with
/// the keys in the order Proxmox writes them (sorted).
pub fn render(mappings: &[Mapping]) -> String {
    let mut text = String::new();
    for (i, m) in mappings.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        text.push_str(&m.name);
        text.push('\n');
        text.push_str(&format!("\tdescription {}\n", m.description));
        let mut map = format!(
            "id={},iommugroup={},node={},path={}",
            m.id,
            m.iommugroup,
            m.node,
            m.paths.join(";")
        );
        if let Some(s) = m.subsystem_id {
            map.push_str(&format!(",subsystem-id={s}"));
        }
        text.push_str(&format!("\tmap {map}\n"));
    }
    text
}
