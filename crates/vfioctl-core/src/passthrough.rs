//! Which functions go to a VM with the devices a user names, and what stands in the way of
//! moving them: one answer for `doctor`, `bind` (and with it `vm check`, `apply`, `run` and the
//! hooks, which plan through it), `qemu-args` and `libvirt-xml`, so they never disagree.
//!
//! A group goes to one VM whole: every member that is not a bridge must leave its host driver
//! (the kernel lets bridges stay on their port driver), whatever its class, LPC bridges and
//! SMBus controllers included; [`crate::safety`] then refuses what the host needs.

use std::collections::BTreeSet;

use crate::address::PciAddress;
use crate::device::Inventory;
use crate::plan::{HostUses, Refusal, VFIO_PCI};

/// The functions that go to a VM with `address`: itself and, when it has an IOMMU group, every
/// member that is not a bridge, in address order.
pub fn goes_with(inv: &Inventory, address: &PciAddress) -> Vec<PciAddress> {
    let mut out: BTreeSet<PciAddress> = inv
        .group_members(address)
        .into_iter()
        .filter(|a| inv.get(a).is_some_and(|d| !d.is_bridge()))
        .collect();
    out.insert(*address);
    out.into_iter().collect()
}

/// What giving the named devices to a VM takes, and what refuses it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmSet {
    /// The named devices that can be passed at all (bridges are not: they are left out here
    /// and refused by `bind`'s plan).
    pub named: Vec<PciAddress>,
    /// The named devices and, unless only those were asked for, every function that must go
    /// with them ([`goes_with`]), in address order.
    pub functions: Vec<PciAddress>,
    /// The functions that would leave a host driver (all but those already on vfio-pci).
    pub moving: Vec<PciAddress>,
    /// Every refusal that stands in the way ([`crate::safety::refusals`]).
    pub refusals: Vec<Refusal>,
}

impl VmSet {
    /// The refusals `--force` cannot override.
    pub fn final_refusals(&self) -> impl Iterator<Item = &Refusal> {
        self.refusals.iter().filter(|r| !r.overridable)
    }
}

/// The set for `named` (`only`: the named devices without their group mates, as `--only`).
pub fn vm_set(inv: &Inventory, uses: &HostUses, named: &[PciAddress], only: bool) -> VmSet {
    let named: Vec<PciAddress> = named
        .iter()
        .filter(|a| inv.get(a).is_some_and(|d| !d.is_bridge()))
        .copied()
        .collect();
    let mut functions: BTreeSet<PciAddress> = named.iter().copied().collect();
    if !only {
        for address in &named {
            functions.extend(goes_with(inv, address));
        }
    }
    let functions: Vec<PciAddress> = functions.into_iter().collect();
    let moving: Vec<PciAddress> = functions
        .iter()
        .filter(|a| {
            inv.get(a)
                .is_some_and(|d| d.driver.as_deref() != Some(VFIO_PCI))
        })
        .copied()
        .collect();
    let refusals = crate::safety::refusals(inv, uses, &named, &moving);
    VmSet {
        named,
        functions,
        moving,
        refusals,
    }
}
