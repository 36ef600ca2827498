//! What the user named, resolved against the inventories of both buses: PCI addresses (full or
//! short), `vendor:device` IDs (every match), network interface names, and DPAA2 containers.

use std::collections::BTreeSet;

use crate::address::{AddressError, PciSelector, SelectorError};
use crate::device::{Inventory, PciDevice};
use crate::devref::{DeviceRef, FslMcName};
use crate::fslmc::FslMcInventory;
use crate::ids::VendorDevice;

/// Why a name selects nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// An ID no device has.
    #[error("no PCI device has ID {0}")]
    NoSuchId(VendorDevice),
    /// An address that selects no device, or more than one.
    #[error(transparent)]
    Selector(#[from] SelectorError),
    /// Text that looks like an interface name, but no PCI device has that interface.
    #[error("'{0}' is neither a PCI address nor a network interface of a PCI device")]
    NotAnInterface(String),
    /// Text that is no address.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// A DPAA2 name on a host without the fsl-mc bus.
    #[error("{0}: this host has no fsl-mc bus")]
    NoFslMc(FslMcName),
    /// A DPAA2 name the host does not have.
    #[error("no DPAA2 container {0} on this host")]
    NoSuchObject(FslMcName),
    /// A DPAA2 object that is not a container: vfio-fsl-mc takes containers only.
    #[error("{0} is a DPAA2 object, not a container; vfio-fsl-mc takes whole containers (dprc.N)")]
    NotAContainer(FslMcName),
}

impl SelectError {
    /// What the user can do.
    pub fn remedy(&self) -> &'static str {
        match self {
            Self::NoSuchId(_) => "run 'vfioctl list' to see the IDs on this host",
            Self::Selector(SelectorError::NotFound(_)) => {
                "run 'vfioctl list' to see the addresses this host has"
            }
            Self::Selector(SelectorError::Ambiguous { .. }) => {
                "write the full address with its domain, e.g. 0001:03:00.0"
            }
            Self::NotAnInterface(_) => {
                "name a device as DDDD:BB:DD.F (see 'vfioctl list') or by its interface name"
            }
            Self::Address(_) => {
                "name a device as DDDD:BB:DD.F, e.g. 0001:03:00.0 (see 'vfioctl list')"
            }
            Self::NoFslMc(_) => {
                "DPAA2 containers exist on NXP Layerscape hosts (LS1088A, LS2088A, LX2160A)"
            }
            Self::NoSuchObject(_) | Self::NotAContainer(_) => {
                "run 'vfioctl list' to see the containers"
            }
        }
    }
}

/// Resolves one PCI device: an address (full or short) or a network interface name.
pub fn select_pci<'a>(inventory: &'a Inventory, text: &str) -> Result<&'a PciDevice, SelectError> {
    match text.parse::<PciSelector>() {
        Ok(selector) => Ok(inventory.resolve(&selector)?),
        Err(parse_error) => {
            if let Some(dev) = inventory
                .devices()
                .iter()
                .find(|d| d.net_interfaces.iter().any(|n| n == text))
            {
                return Ok(dev);
            }
            let looks_like_interface = !text.contains(':') && !text.is_empty() && text.len() <= 15;
            if looks_like_interface {
                Err(SelectError::NotAnInterface(text.to_owned()))
            } else {
                Err(SelectError::Address(parse_error))
            }
        }
    }
}

/// Resolves a DPAA2 container by name.
pub fn select_container(
    fslmc: &FslMcInventory,
    name: &FslMcName,
) -> Result<DeviceRef, SelectError> {
    if fslmc.is_empty() {
        return Err(SelectError::NoFslMc(name.clone()));
    }
    if !name.is_container() {
        return Err(SelectError::NotAContainer(name.clone()));
    }
    match fslmc.get(&name.to_string()) {
        Some(_) => Ok(DeviceRef::FslMc(name.clone())),
        None => Err(SelectError::NoSuchObject(name.clone())),
    }
}

/// Resolves everything the user named, in device order without repeats.
pub fn select(
    pci: &Inventory,
    fslmc: &FslMcInventory,
    names: &[String],
) -> Result<Vec<DeviceRef>, SelectError> {
    let mut selected = BTreeSet::new();
    for name in names {
        if let Ok(object) = name.parse::<FslMcName>() {
            selected.insert(select_container(fslmc, &object)?);
        } else if let Ok(id) = name.parse::<VendorDevice>() {
            let before = selected.len();
            selected.extend(pci.by_id(id).map(|d| DeviceRef::Pci(d.address)));
            if selected.len() == before && pci.by_id(id).next().is_none() {
                return Err(SelectError::NoSuchId(id));
            }
        } else {
            selected.insert(DeviceRef::Pci(select_pci(pci, name)?.address));
        }
    }
    Ok(selected.into_iter().collect())
}
