//! Plans: what binding or restoring a set of devices will do, decided before anything is done.
//!
//! A plan is built from the inventories of both buses, the devices the user named, and facts about
//! how the host uses its devices. It names every device that moves (a whole IOMMU group unless
//! `--only`, a DPAA2 container with its objects), what driver each has and will have, the typed
//! steps in order, and the refusals that stop it. One command makes one plan, whatever buses it
//! touches, so a refusal of any device refuses all of it and one rollback undoes all of it.

mod fslmc;
mod pci;
pub mod step;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::address::PciAddress;
use crate::device::Inventory;
use crate::devref::{Bus, DeviceRef, DriverName, GroupId};
use crate::fslmc::FslMcInventory;

pub use step::{DeviceState, Step, Write, restore_steps};

/// The driver vfioctl binds PCI devices to.
pub const VFIO_PCI: &str = "vfio-pci";
/// The module that provides it.
pub const VFIO_PCI_MODULE: &str = "vfio-pci";

/// Whether `driver` is vfio-pci or one of its vendor variants (`mlx5_vfio_pci`,
/// `nvgrace_gpu_vfio_pci`): the drivers that give a PCI function to VFIO.
pub fn is_vfio_pci_driver(driver: &str) -> bool {
    driver == VFIO_PCI || driver.ends_with("_vfio_pci")
}

pub use crate::safety::HostUse;

/// How the host uses each device (PCI functions and fsl-mc objects alike).
pub type HostUses = BTreeMap<DeviceRef, Vec<HostUse>>;

/// Options of a bind.
#[derive(Debug, Clone, Default)]
pub struct BindOptions {
    /// Bind only the named functions, not their whole groups.
    pub only: bool,
    /// Override the host-safety refusals.
    pub force: bool,
}

/// What a bind plan is made from.
#[derive(Debug, Clone, Copy)]
pub struct BindInput<'a> {
    /// The PCI functions.
    pub pci: &'a Inventory,
    /// The fsl-mc objects (empty on hosts without the bus).
    pub fslmc: &'a FslMcInventory,
    /// What the user named, already resolved.
    pub named: &'a [DeviceRef],
    /// How the host uses its devices.
    pub host_uses: &'a HostUses,
    /// The vfio drivers that are registered already (no module load needed).
    pub loaded: &'a [Bus],
}

/// What happens to one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// It moves to its bus's vfio driver.
    Bind,
    /// It is on the vfio driver already.
    AlreadyBound,
    /// A bridge or port that stays on its (DMA-safe) driver.
    StaysOnPortDriver,
    /// A group member left on its driver because of `--only`.
    LeftOut,
    /// An object of a DPAA2 container: it goes to the VM with its container.
    InContainer,
}

/// One device in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedDevice {
    /// The device.
    pub device: DeviceRef,
    /// Its IOMMU group.
    pub iommu_group: Option<GroupId>,
    /// Its driver now.
    pub current_driver: Option<DriverName>,
    /// Its `driver_override` now.
    pub current_override: Option<DriverName>,
    /// The driver it will have.
    pub target_driver: Option<DriverName>,
    /// What happens to it.
    pub disposition: Disposition,
    /// Why, in words.
    pub why: String,
}

impl PlannedDevice {
    /// What the device looked like before the plan: what restore returns it to.
    pub fn original(&self) -> OriginalState {
        OriginalState {
            device: self.device.clone(),
            state: DeviceState {
                driver: self.current_driver.clone(),
                driver_override: self.current_override.clone(),
            },
            iommu_group: self.iommu_group,
        }
    }
}

/// Why a plan may not go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    /// A device backs the host's disk, network or console, or is the host's own container.
    HostCritical,
    /// A bridge or port was named directly; vfio-pci does not take bridges.
    NotEndpoint,
    /// The group can never become usable (a bridge on a driver vfio cannot replace).
    NeverViable,
    /// The host has no IOMMU, so vfio-pci cannot bind anything.
    NoIommu,
    /// A device backs what the running host cannot lose (its root filesystem, the network
    /// that carries it); `--force` does not override it.
    HostEssential,
    /// A host-critical function (host bridge, LPC bridge, SMBus, IOMMU) or its group.
    PlatformFunction,
    /// An SR-IOV PF whose VFs are in use: unbinding it would destroy them.
    SriovVfsInUse,
    /// Another owner holds the device (see [`crate::ownership`]).
    Held,
}

/// A reason the plan may not go ahead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// The kind.
    pub kind: RefusalKind,
    /// The device it is about.
    pub device: DeviceRef,
    /// One sentence naming the device and the reason.
    pub text: String,
    /// What to do.
    pub remedy: String,
    /// `--force` overrides it.
    pub overridable: bool,
}

/// A bind plan, for any mix of PCI functions and DPAA2 containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Every device considered: PCI functions in address order, then containers and their
    /// objects.
    pub devices: Vec<PlannedDevice>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// What stops the plan.
    pub refusals: Vec<Refusal>,
    /// Things the user should know that do not stop it.
    pub warnings: Vec<String>,
    /// The IOMMU groups the plan touches.
    pub groups: Vec<GroupId>,
}

impl Plan {
    /// The writes alone, in order (for `--dry-run --json`).
    pub fn writes(&self) -> Vec<Write> {
        self.steps.iter().filter_map(Step::write).collect()
    }

    /// The devices that will change driver.
    pub fn to_bind(&self) -> impl Iterator<Item = &PlannedDevice> {
        self.devices
            .iter()
            .filter(|d| d.disposition == Disposition::Bind)
    }

    /// Refusals that still stand given `force`.
    pub fn blocking_refusals(&self, force: bool) -> Vec<&Refusal> {
        self.refusals
            .iter()
            .filter(|r| !(force && r.overridable))
            .collect()
    }

    /// The modules the steps load.
    pub fn modules(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().filter_map(|s| match s {
            Step::LoadModule { module } => Some(module.as_str()),
            _ => None,
        })
    }

    /// The groups that hold a device this plan binds or finds bound: the ones a VM gets.
    pub fn vfio_groups(&self) -> Vec<GroupId> {
        let mut groups: Vec<GroupId> = self
            .devices
            .iter()
            .filter(|d| matches!(d.disposition, Disposition::Bind | Disposition::AlreadyBound))
            .filter_map(|d| d.iommu_group)
            .collect();
        groups.sort_unstable();
        groups.dedup();
        groups
    }
}

/// Plans binding what `input.named` names to the vfio drivers: PCI functions with (unless
/// `--only`) every endpoint of their groups, DPAA2 containers with their objects.
pub fn plan_bind(input: &BindInput<'_>, options: &BindOptions) -> Plan {
    let mut plan = Plan {
        devices: Vec::new(),
        steps: Vec::new(),
        refusals: Vec::new(),
        warnings: Vec::new(),
        groups: Vec::new(),
    };
    let pci: Vec<PciAddress> = input.named.iter().filter_map(DeviceRef::pci).collect();
    if !pci.is_empty() {
        pci::plan_pci(input, &pci, options, &mut plan);
    }
    for dprc in input.named.iter().filter_map(DeviceRef::fslmc) {
        fslmc::plan_container(input, dprc, &mut plan);
    }
    plan.groups.sort_unstable();
    plan.groups.dedup();
    plan
}

/// What a device looked like before vfioctl touched it: what restore returns it to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OriginalState {
    /// The device.
    pub device: DeviceRef,
    /// Its driver and override then.
    #[serde(flatten)]
    pub state: DeviceState,
    /// Its IOMMU group then.
    pub iommu_group: Option<GroupId>,
}

#[cfg(test)]
mod tests;
