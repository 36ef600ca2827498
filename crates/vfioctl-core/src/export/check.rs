//! `export --check`: which entries of an exported file no longer match this node.
//!
//! Each format is read back into recorded sets: the functions an engine was told belong
//! together (a Proxmox `iommugroup`, a Nova resource class, a KubeVirt resource name), each with
//! the address and identity it was recorded with. A set has drifted when a function moved to
//! another address, when the device at its address changed identity, when its functions are now
//! in several groups (split), when its group now holds endpoints it does not list (merged), when
//! Proxmox's recorded group number changed, or when the bind planner now refuses the group.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{ReadyGroup, kubevirt};
use crate::{Inventory, PciAddress, VendorDevice};

/// One function as a file recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedFunction {
    /// Its address; `None` when the format selects by identity only (KubeVirt).
    pub address: Option<PciAddress>,
    /// The address names every function of its slot (a Proxmox path without a function).
    pub whole_slot: bool,
    /// The `vendor:device` recorded.
    pub id: Option<VendorDevice>,
    /// The subsystem recorded, when the format records one (`Some(None)`: recorded as none).
    pub subsystem: Option<Option<VendorDevice>>,
}

/// Functions recorded as belonging together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedSet {
    /// The entry's name, for messages.
    pub name: String,
    /// Its functions.
    pub functions: Vec<RecordedFunction>,
    /// The group number recorded (Proxmox's `iommugroup`).
    pub iommugroup: Option<u32>,
}

/// How an entry drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftKind {
    /// No device at the address, and none of that identity elsewhere.
    Missing,
    /// The device is now at another address.
    Moved,
    /// Another device is at the address.
    ChangedIdentity,
    /// The functions are now in several groups.
    Split,
    /// The group now holds endpoints the entry does not list.
    Merged,
    /// The recorded group number is not the group's number now.
    Renumbered,
    /// The bind planner refuses the group now (the host uses a member).
    NotReady,
}

/// One entry that no longer matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// The entry.
    pub entry: String,
    /// How.
    pub kind: DriftKind,
    /// One sentence.
    pub text: String,
}

/// Why a file could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// A Nova value is not the JSON object Nova takes.
    #[error("line {line}: {source}")]
    Nova {
        /// The line.
        line: usize,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The KubeVirt document is not YAML or JSON with `permittedHostDevices`.
    #[error(transparent)]
    Kubevirt(#[from] serde_yaml_ng::Error),
}

/// Proxmox's mappings for `node`, one set per recorded group (or per mapping without one).
pub fn from_proxmox(text: &str, node: &str) -> Vec<RecordedSet> {
    let mut sets: BTreeMap<String, RecordedSet> = BTreeMap::new();
    for mapping in crate::pve::parse_pci_cfg(text) {
        for entry in mapping.map.iter().filter(|e| e.node == node) {
            let key = entry
                .iommugroup
                .map_or_else(|| mapping.name.clone(), |g| format!("group {g}"));
            let set = sets.entry(key).or_insert_with(|| RecordedSet {
                name: String::new(),
                functions: Vec::new(),
                iommugroup: entry.iommugroup,
            });
            if !set.name.is_empty() {
                set.name.push_str(", ");
            }
            set.name.push_str(&mapping.name);
            for path in &entry.paths {
                let whole_slot = !path.contains('.');
                let full = if whole_slot {
                    format!("{path}.0")
                } else {
                    path.clone()
                };
                set.functions.push(RecordedFunction {
                    address: full.parse().ok(),
                    whole_slot,
                    id: entry.id.as_deref().and_then(|i| i.parse().ok()),
                    subsystem: Some(entry.subsystem_id.as_deref().and_then(|s| s.parse().ok())),
                });
            }
        }
    }
    sets.into_values().collect()
}

#[derive(serde::Deserialize)]
struct NovaSpec {
    address: Option<String>,
    vendor_id: Option<String>,
    product_id: Option<String>,
    resource_class: Option<String>,
}

/// Nova's `device_spec` values, one set per resource class (or per address without one).
pub fn from_nova(text: &str) -> Result<Vec<RecordedSet>, ParseError> {
    let mut sets: BTreeMap<String, RecordedSet> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key != "device_spec" && key != "passthrough_whitelist" {
            continue;
        }
        let spec: NovaSpec =
            serde_json::from_str(value.trim()).map_err(|source| ParseError::Nova {
                line: n + 1,
                source,
            })?;
        let id = match (&spec.vendor_id, &spec.product_id) {
            (Some(v), Some(p)) => format!("{v}:{p}").parse().ok(),
            _ => None,
        };
        let address = spec.address.as_deref().and_then(|a| a.parse().ok());
        let name = spec
            .resource_class
            .clone()
            .or_else(|| spec.address.clone())
            .unwrap_or_else(|| format!("device_spec on line {}", n + 1));
        sets.entry(name.clone())
            .or_insert_with(|| RecordedSet {
                name,
                functions: Vec::new(),
                iommugroup: None,
            })
            .functions
            .push(RecordedFunction {
                address,
                whole_slot: false,
                id,
                subsystem: None,
            });
    }
    Ok(sets.into_values().collect())
}

/// KubeVirt's `pciHostDevices`, one set per resource name.
pub fn from_kubevirt(text: &str) -> Result<Vec<RecordedSet>, ParseError> {
    let permitted = kubevirt::parse(text)?;
    let mut sets: BTreeMap<String, RecordedSet> = BTreeMap::new();
    for d in permitted.pci_host_devices {
        let id = d.pci_vendor_selector.to_ascii_lowercase().parse().ok();
        sets.entry(d.resource_name.clone())
            .or_insert_with(|| RecordedSet {
                name: d.resource_name.clone(),
                functions: Vec::new(),
                iommugroup: None,
            })
            .functions
            .push(RecordedFunction {
                address: None,
                whole_slot: false,
                id,
                subsystem: None,
            });
    }
    Ok(sets.into_values().collect())
}

fn id_text(id: Option<VendorDevice>) -> String {
    id.map_or_else(|| "unknown".to_owned(), |i| i.to_string())
}

fn subsystem_text(s: Option<VendorDevice>) -> String {
    s.map_or_else(|| "none".to_owned(), |s| s.to_string())
}

fn endpoints(inv: &Inventory, group: u32) -> Vec<PciAddress> {
    inv.groups
        .get(&group)
        .into_iter()
        .flatten()
        .filter(|a| inv.get(a).is_some_and(|d| !d.is_bridge()))
        .copied()
        .collect()
}

/// The entries of `sets` that no longer match `inv`; `ready` are the groups the planner would
/// bind now.
pub fn check(sets: &[RecordedSet], inv: &Inventory, ready: &[ReadyGroup]) -> Vec<Drift> {
    let recorded: BTreeMap<PciAddress, &str> = sets
        .iter()
        .flat_map(|s| {
            s.functions
                .iter()
                .filter_map(|f| f.address)
                .map(|a| (a, s.name.as_str()))
        })
        .collect();
    let ready_numbers: BTreeSet<u32> = ready.iter().map(|g| g.group).collect();
    let mut drifts = Vec::new();
    for set in sets {
        let mut push = |kind, text: String| {
            drifts.push(Drift {
                entry: set.name.clone(),
                kind,
                text,
            });
        };
        if set.functions.iter().all(|f| f.address.is_none()) {
            check_by_identity(set, inv, &ready_numbers, &mut push);
            continue;
        }
        let mut resolved: Vec<PciAddress> = Vec::new();
        for f in &set.functions {
            let Some(address) = f.address else { continue };
            let device = inv.get(&address);
            let same = device.is_some_and(|d| {
                f.id.is_none_or(|id| id == d.id) && f.subsystem.is_none_or(|s| s == d.subsystem)
            });
            if same {
                if f.whole_slot {
                    resolved.extend(
                        inv.devices()
                            .iter()
                            .filter(|d| d.address.same_slot(&address))
                            .map(|d| d.address),
                    );
                } else {
                    resolved.push(address);
                }
                continue;
            }
            let elsewhere = inv.devices().iter().find(|d| {
                Some(d.id) == f.id
                    && f.subsystem.is_none_or(|s| s == d.subsystem)
                    && !recorded.contains_key(&d.address)
            });
            match (elsewhere, device) {
                (Some(moved), _) => {
                    resolved.push(moved.address);
                    push(
                        DriftKind::Moved,
                        format!("{address} ({}) is now at {}", id_text(f.id), moved.address),
                    );
                }
                (None, None) => push(
                    DriftKind::Missing,
                    format!(
                        "{address} ({}) is gone: no device there or elsewhere",
                        id_text(f.id)
                    ),
                ),
                (None, Some(d)) if Some(d.id) != f.id => push(
                    DriftKind::ChangedIdentity,
                    format!("{address} should be {} but is {}", id_text(f.id), d.id),
                ),
                (None, Some(d)) => push(
                    DriftKind::ChangedIdentity,
                    format!(
                        "{address} ({}) should have subsystem {} but has {}",
                        d.id,
                        subsystem_text(f.subsystem.flatten()),
                        subsystem_text(d.subsystem)
                    ),
                ),
            }
        }
        resolved.sort_unstable();
        resolved.dedup();
        let groups: BTreeSet<u32> = resolved
            .iter()
            .filter_map(|a| inv.get(a).and_then(|d| d.iommu_group))
            .collect();
        if groups.len() > 1 {
            push(
                DriftKind::Split,
                format!(
                    "{} were one IOMMU group and are now in groups {}",
                    crate::comma_list(&resolved),
                    crate::comma_list(&groups)
                ),
            );
            continue;
        }
        let Some(&group) = groups.iter().next() else {
            continue;
        };
        let extra: Vec<String> = endpoints(inv, group)
            .into_iter()
            .filter(|a| !resolved.contains(a))
            .map(|a| match recorded.get(&a) {
                Some(other) if *other != set.name => format!("{a} (entry {other})"),
                _ => a.to_string(),
            })
            .collect();
        if !extra.is_empty() {
            push(
                DriftKind::Merged,
                format!(
                    "IOMMU group {group} now also holds {}: the group goes to a VM whole",
                    extra.join(", ")
                ),
            );
        } else if let Some(old) = set.iommugroup.filter(|g| *g != group) {
            push(
                DriftKind::Renumbered,
                format!(
                    "recorded as IOMMU group {old}, it is group {group} now (Proxmox refuses to \
                     start a VM on a mismatch)"
                ),
            );
        }
        if !ready_numbers.contains(&group) {
            push(
                DriftKind::NotReady,
                format!(
                    "IOMMU group {group} cannot go to a VM now: the bind planner refuses a member \
                     (see 'vfioctl bind --dry-run {}')",
                    resolved
                        .first()
                        .map(ToString::to_string)
                        .unwrap_or_default()
                ),
            );
        }
    }
    drifts
}

/// KubeVirt selects by identity: every group holding a device of the resource's identities must
/// hold exactly those identities.
fn check_by_identity(
    set: &RecordedSet,
    inv: &Inventory,
    ready: &BTreeSet<u32>,
    push: &mut dyn FnMut(DriftKind, String),
) {
    let ids: BTreeSet<VendorDevice> = set.functions.iter().filter_map(|f| f.id).collect();
    let mut groups: BTreeSet<u32> = BTreeSet::new();
    for id in &ids {
        let found: Vec<_> = inv.by_id(*id).collect();
        if found.is_empty() {
            push(DriftKind::Missing, format!("no {id} on this node any more"));
        }
        groups.extend(found.iter().filter_map(|d| d.iommu_group));
    }
    for group in groups {
        let held: BTreeSet<VendorDevice> = endpoints(inv, group)
            .iter()
            .filter_map(|a| inv.get(a))
            .map(|d| d.id)
            .collect();
        let lacking: Vec<_> = ids.difference(&held).collect();
        let extra: Vec<_> = held.difference(&ids).collect();
        if !extra.is_empty() {
            push(
                DriftKind::Merged,
                format!(
                    "IOMMU group {group} now also holds {}, which the resource does not list",
                    crate::comma_list(extra)
                ),
            );
        } else if !lacking.is_empty() {
            push(
                DriftKind::Split,
                format!(
                    "IOMMU group {group} holds {} without {}: the resource's devices are in \
                     several groups now",
                    crate::comma_list(ids.intersection(&held)),
                    crate::comma_list(lacking)
                ),
            );
        } else if !ready.contains(&group) {
            push(
                DriftKind::NotReady,
                format!(
                    "IOMMU group {group} cannot go to a VM now: the bind planner refuses a member"
                ),
            );
        }
    }
}
