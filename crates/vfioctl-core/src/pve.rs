//! Proxmox VE's cluster resource mappings (`/etc/pve/mapping/pci.cfg`), resolved for one node as
//! `qemu-server` does before it starts a VM with `hostpciN: mapping=NAME`.
//!
//! The file is a section config: a line with the mapping's name, then indented `key value`
//! lines. Each `map` line is one alternative device for one node:
//! `node=pve1,path=0000:01:00.0;0000:01:00.1,id=10de:2684,subsystem-id=1043:889c,iommugroup=12`.
//! The paths of one alternative are the functions of one device (a path without a function is
//! every function of the slot); Proxmox takes the first alternative it can reserve. Before it uses
//! an alternative it checks each path's `vendor:device` against `id`, its subsystem against
//! `subsystem-id` (which must be given exactly when the device has one), and the first path's
//! IOMMU group against `iommugroup`: a mismatch means the hardware changed, and the VM does not
//! start.

use crate::device::Inventory;
use crate::{PciAddress, VendorDevice};

/// One `map` line: an alternative device of a mapping, on one node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MapEntry {
    /// The node it is on.
    pub node: String,
    /// Its functions (`0000:01:00.0`, or `0000:01:00` for every function of the slot).
    pub paths: Vec<String>,
    /// The expected `vendor:device`.
    pub id: Option<String>,
    /// The expected subsystem `vendor:device`.
    pub subsystem_id: Option<String>,
    /// The expected IOMMU group of the first path.
    pub iommugroup: Option<u32>,
}

/// One mapping of `pci.cfg`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PciMapping {
    /// Its name.
    pub name: String,
    /// It provides mediated devices.
    pub mdev: bool,
    /// Its alternatives, on every node.
    pub map: Vec<MapEntry>,
}

fn parse_map(value: &str) -> MapEntry {
    let mut entry = MapEntry::default();
    for option in value.split(',') {
        let Some((key, val)) = option.split_once('=') else {
            continue;
        };
        let val = val.trim();
        match key.trim() {
            "node" => val.clone_into(&mut entry.node),
            "path" => {
                entry.paths = val
                    .split(';')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "id" => entry.id = Some(val.to_owned()),
            "subsystem-id" => entry.subsystem_id = Some(val.to_owned()),
            "iommugroup" => entry.iommugroup = val.parse().ok(),
            _ => {}
        }
    }
    entry
}

/// Parses `pci.cfg`.
pub fn parse_pci_cfg(text: &str) -> Vec<PciMapping> {
    let mut mappings: Vec<PciMapping> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indented = line.starts_with([' ', '\t']);
        if !indented {
            mappings.push(PciMapping {
                name: line.trim().to_owned(),
                ..PciMapping::default()
            });
            continue;
        }
        let Some(current) = mappings.last_mut() else {
            continue;
        };
        let line = line.trim();
        let (key, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match key {
            "map" => current.map.push(parse_map(value.trim())),
            "mdev" => current.mdev = matches!(value.trim(), "1" | "true"),
            _ => {}
        }
    }
    mappings
}

/// Why a mapping does not resolve on this node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// No mapping of that name, or none of its alternatives is on this node.
    #[error("the resource mapping '{name}' has no device on node '{node}'")]
    NotOnNode {
        /// The mapping.
        name: String,
        /// This node.
        node: String,
    },
    /// A path names no device of this host.
    #[error("the resource mapping '{name}' names {path}, which is not on this host")]
    NoDevice {
        /// The mapping.
        name: String,
        /// The path.
        path: String,
    },
    /// The device does not match what the mapping expects: the hardware changed.
    #[error("the resource mapping '{name}' expects {what} {expected} at {path}, found {found}")]
    Changed {
        /// The mapping.
        name: String,
        /// The path.
        path: String,
        /// `id`, `subsystem-id` or `iommugroup`.
        what: &'static str,
        /// What the mapping says.
        expected: String,
        /// What the device has.
        found: String,
    },
}

fn same_id(expected: Option<&str>, found: Option<VendorDevice>) -> bool {
    let clean = |t: &str| t.replace("0x", "").to_ascii_lowercase();
    match (expected, found) {
        (None, None) => true,
        (Some(e), Some(f)) => clean(e) == f.to_string(),
        _ => false,
    }
}

/// The functions of one alternative, checked as Proxmox checks them.
pub fn alternative_functions(
    name: &str,
    entry: &MapEntry,
    inventory: &Inventory,
) -> Result<Vec<PciAddress>, MappingError> {
    let mut functions = Vec::new();
    for (i, path) in entry.paths.iter().enumerate() {
        let whole_slot = !path.contains('.');
        let first = if whole_slot {
            format!("{path}.0")
        } else {
            path.clone()
        };
        let no_device = || MappingError::NoDevice {
            name: name.to_owned(),
            path: path.clone(),
        };
        let address: PciAddress = first.parse().map_err(|_| no_device())?;
        let device = inventory.get(&address).ok_or_else(no_device)?;
        let changed = |what, expected: String, found: String| MappingError::Changed {
            name: name.to_owned(),
            path: path.clone(),
            what,
            expected,
            found,
        };
        let none = || "none".to_owned();
        if !same_id(entry.id.as_deref(), Some(device.id)) {
            return Err(changed(
                "id",
                entry.id.clone().unwrap_or_else(none),
                device.id.to_string(),
            ));
        }
        if !same_id(entry.subsystem_id.as_deref(), device.subsystem) {
            return Err(changed(
                "subsystem-id",
                entry.subsystem_id.clone().unwrap_or_else(none),
                device.subsystem.map_or_else(none, |s| s.to_string()),
            ));
        }
        if i == 0 && entry.iommugroup.is_some() && entry.iommugroup != device.iommu_group {
            return Err(changed(
                "iommugroup",
                entry.iommugroup.map_or_else(none, |g| g.to_string()),
                device.iommu_group.map_or_else(none, |g| g.to_string()),
            ));
        }
        if whole_slot {
            functions.extend(
                inventory
                    .devices()
                    .iter()
                    .filter(|d| d.address.same_slot(&address))
                    .map(|d| d.address),
            );
        } else {
            functions.push(address);
        }
    }
    Ok(functions)
}

/// The alternatives of mapping `name` on `node`, each as its functions, in file order.
pub fn resolve(
    mappings: &[PciMapping],
    name: &str,
    node: &str,
    inventory: &Inventory,
) -> Result<Vec<Vec<PciAddress>>, MappingError> {
    let entries: Vec<&MapEntry> = mappings
        .iter()
        .filter(|m| m.name == name)
        .flat_map(|m| m.map.iter())
        .filter(|e| e.node == node)
        .collect();
    if entries.is_empty() {
        return Err(MappingError::NotOnNode {
            name: name.to_owned(),
            node: node.to_owned(),
        });
    }
    entries
        .into_iter()
        .map(|e| alternative_functions(name, e, inventory))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "nic\n\tmap node=pve2,path=0000:09:00.0,id=8086:1533\n\tmap node=pve1,path=0000:04:00.0,id=8086:1533,iommugroup=7\n\tdescription spare NIC\n\ngpu\n\tmdev 1\n\tmap node=pve1,path=0000:01:00,id=10de:2684,subsystem-id=1043:889c\n";

    #[test]
    fn parses_sections_and_map_lines() {
        let m = parse_pci_cfg(CFG);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name, "nic");
        assert_eq!(m[0].map.len(), 2);
        assert_eq!(m[0].map[1].node, "pve1");
        assert_eq!(m[0].map[1].iommugroup, Some(7));
        assert!(m[1].mdev);
        assert_eq!(m[1].map[0].paths, ["0000:01:00"]);
    }

    #[test]
    fn a_mapping_for_another_node_only_does_not_resolve() {
        let m = parse_pci_cfg(CFG);
        assert!(matches!(
            resolve(&m, "nic", "pve3", &Inventory::default()),
            Err(MappingError::NotOnNode { .. })
        ));
        assert!(matches!(
            resolve(&m, "nic", "pve1", &Inventory::default()),
            Err(MappingError::NoDevice { .. })
        ));
    }
}
