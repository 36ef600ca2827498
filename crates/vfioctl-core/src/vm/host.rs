//! A definition against this host: device identities, IOMMU groups, claims between VMs.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::address::PciAddress;
use crate::device::Inventory;
use crate::ids::VendorDevice;
use crate::plan::VFIO_PCI;
use crate::render::Passthrough;

use super::definition::identity;
use super::{VmDefinition, VmDevice, VmName};

/// How a configured device compares with what the host has at its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeviceState {
    /// The expected device, on vfio-pci.
    Bound,
    /// The expected device, on another driver or none.
    NotBound {
        /// Its driver.
        driver: Option<String>,
    },
    /// Another device is at the address.
    Drifted {
        /// What is there.
        found_id: VendorDevice,
        /// Its subsystem.
        found_subsystem: Option<VendorDevice>,
        /// Where devices with the expected identity are now.
        moved_to: Vec<PciAddress>,
    },
    /// No device at the address.
    Missing {
        /// Where devices with the expected identity are now.
        moved_to: Vec<PciAddress>,
    },
}

impl DeviceState {
    /// The state as one word for tables and JSON.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Bound => "bound",
            Self::NotBound { .. } => "not_bound",
            Self::Drifted { .. } => "drifted",
            Self::Missing { .. } => "missing",
        }
    }

    /// True when the host has the expected device at the address.
    pub fn identity_ok(&self) -> bool {
        matches!(self, Self::Bound | Self::NotBound { .. })
    }
}

/// One configured device checked against the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceCheck {
    /// The device as configured.
    pub device: VmDevice,
    /// What the host has.
    #[serde(flatten)]
    pub state: DeviceState,
}

impl DeviceCheck {
    /// One sentence about a device whose identity does not match, naming both identities and
    /// where the expected device went; `None` when the identity matches.
    pub fn drift_message(&self) -> Option<String> {
        let d = &self.device;
        let moved = |moved_to: &[PciAddress]| match moved_to {
            [] => String::new(),
            list => format!("; a {} is now at {}", d.expected(), crate::comma_list(list)),
        };
        match &self.state {
            DeviceState::Bound | DeviceState::NotBound { .. } => None,
            DeviceState::Drifted {
                found_id,
                found_subsystem,
                moved_to,
            } => Some(format!(
                "{} should be {} but is {}{}",
                d.address,
                d.expected(),
                identity(*found_id, *found_subsystem),
                moved(moved_to)
            )),
            DeviceState::Missing { moved_to } => Some(format!(
                "{} should be {} but there is no device at that address{}",
                d.address,
                d.expected(),
                moved(moved_to)
            )),
        }
    }
}

fn matches_identity(dev: &crate::PciDevice, expected: &VmDevice) -> bool {
    dev.id == expected.id && expected.subsystem.is_none_or(|s| dev.subsystem == Some(s))
}

/// Checks every configured device against the inventory: is the expected device at its address,
/// and is it on vfio-pci.
pub fn check_devices(def: &VmDefinition, inventory: &Inventory) -> Vec<DeviceCheck> {
    def.devices
        .iter()
        .map(|expected| {
            let moved_to = || {
                inventory
                    .devices()
                    .iter()
                    .filter(|d| d.address != expected.address && matches_identity(d, expected))
                    .map(|d| d.address)
                    .collect()
            };
            let state = match inventory.get(&expected.address) {
                None => DeviceState::Missing {
                    moved_to: moved_to(),
                },
                Some(dev) if !matches_identity(dev, expected) => DeviceState::Drifted {
                    found_id: dev.id,
                    found_subsystem: dev.subsystem,
                    moved_to: moved_to(),
                },
                Some(dev) if dev.driver.as_deref() == Some(VFIO_PCI) => DeviceState::Bound,
                Some(dev) => DeviceState::NotBound {
                    driver: dev.driver.clone(),
                },
            };
            DeviceCheck {
                device: expected.clone(),
                state,
            }
        })
        .collect()
}

/// The endpoints of one IOMMU group a definition touches: those it lists and those it does not
/// (which are bound with them anyway, since a group goes to one VM whole).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupCoverage {
    /// The group.
    pub group: u32,
    /// Endpoints the definition lists.
    pub listed: Vec<PciAddress>,
    /// Endpoints it does not list.
    pub unlisted: Vec<PciAddress>,
}

/// The IOMMU groups of the configured devices that exist on the host, in ascending order.
pub fn group_coverage(def: &VmDefinition, inventory: &Inventory) -> Vec<GroupCoverage> {
    let listed: BTreeSet<PciAddress> = def.addresses().into_iter().collect();
    let groups: BTreeSet<u32> = listed
        .iter()
        .filter_map(|a| inventory.get(a))
        .filter_map(|d| d.iommu_group)
        .collect();
    groups
        .into_iter()
        .map(|group| {
            let endpoints = inventory
                .groups
                .get(&group)
                .into_iter()
                .flatten()
                .filter(|a| inventory.get(a).is_some_and(|d| !d.is_bridge()));
            let (yes, no): (Vec<PciAddress>, Vec<PciAddress>) =
                endpoints.partition(|a| listed.contains(a));
            GroupCoverage {
                group,
                listed: yes,
                unlisted: no,
            }
        })
        .collect()
}

/// What the VM gets: its listed functions, every other endpoint of their groups, and its DPAA2
/// containers.
pub fn passthrough(def: &VmDefinition, inventory: &Inventory) -> Passthrough {
    let mut pci: BTreeSet<PciAddress> = def.addresses().into_iter().collect();
    for coverage in group_coverage(def, inventory) {
        pci.extend(coverage.unlisted);
    }
    Passthrough {
        pci: pci.into_iter().collect(),
        dprc: def.dprc.clone(),
    }
}

/// Two VMs that claim the same IOMMU group (or the same container): only one can have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claim {
    /// The VM that claims it first (in name order).
    pub first: VmName,
    /// The other VM.
    pub second: VmName,
    /// What both claim, in words (`IOMMU group 3`, `dprc.2`).
    pub what: String,
}

/// The groups and containers claimed by more than one of `vms`.
pub fn claims(vms: &[(VmName, &VmDefinition)], inventory: &Inventory) -> Vec<Claim> {
    let mut owner: BTreeMap<String, &VmName> = BTreeMap::new();
    let mut found = Vec::new();
    let mut sorted: Vec<&(VmName, &VmDefinition)> = vms.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, def) in sorted {
        let mut things: BTreeSet<String> = group_coverage(def, inventory)
            .into_iter()
            .map(|c| format!("IOMMU group {}", c.group))
            .collect();
        things.extend(def.dprc.iter().map(ToString::to_string));
        for thing in things {
            match owner.get(&thing) {
                Some(first) => found.push(Claim {
                    first: (*first).clone(),
                    second: name.clone(),
                    what: thing,
                }),
                None => {
                    owner.insert(thing, name);
                }
            }
        }
    }
    found
}
