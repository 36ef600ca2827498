//! Planning PCI functions: whole IOMMU groups through `driver_override`, never `new_id`.

use std::collections::BTreeSet;

use super::step::{DeviceState, Step, override_steps};
use super::{BindInput, BindOptions, Disposition, Plan, PlannedDevice, Refusal, RefusalKind};
use crate::address::PciAddress;
use crate::device::PciDevice;
use crate::devref::{Bus, DeviceRef, GroupId, driver_name};
use crate::groups::viability;

/// A PCI function's binding as the plan sees it.
pub(super) fn pci_state(dev: &PciDevice) -> DeviceState {
    DeviceState {
        driver: driver_name(dev.driver.as_deref()),
        driver_override: driver_name(dev.driver_override.as_deref()),
    }
}

fn no_iommu(first: PciAddress) -> Refusal {
    Refusal {
        kind: RefusalKind::NoIommu,
        device: first.into(),
        text: "the IOMMU is off on this host, so vfio-pci cannot bind any device".to_owned(),
        remedy: "enable VT-d/AMD-Vi or the SMMU in the firmware and boot with intel_iommu=on \
                 (Intel) or amd_iommu=on (AMD); see 'vfioctl doctor'"
            .to_owned(),
        overridable: false,
    }
}

fn bridge_named(address: PciAddress, dev: &PciDevice) -> Refusal {
    Refusal {
        kind: RefusalKind::NotEndpoint,
        device: address.into(),
        text: format!(
            "{address} is a {} (a bridge); vfio-pci only takes endpoints",
            dev.role()
        ),
        remedy: "name the devices below it; bridges stay on their port driver".to_owned(),
        overridable: false,
    }
}

fn disposition(
    dev: &PciDevice,
    named: &BTreeSet<PciAddress>,
    options: &BindOptions,
) -> (Disposition, String) {
    if dev.is_bridge() {
        return (
            Disposition::StaysOnPortDriver,
            format!(
                "{} stays on {}: bridges do not go to VMs",
                dev.role(),
                dev.driver.as_deref().unwrap_or("no driver")
            ),
        );
    }
    if dev.driver.as_deref() == Some(super::VFIO_PCI) {
        return (Disposition::AlreadyBound, "already on vfio-pci".to_owned());
    }
    if named.contains(&dev.address) {
        return (Disposition::Bind, "named".to_owned());
    }
    if options.only {
        return (
            Disposition::LeftOut,
            "left on its driver (--only): the group stays unusable until it follows".to_owned(),
        );
    }
    (
        Disposition::Bind,
        format!(
            "shares IOMMU group {} with a named device",
            dev.iommu_group.map_or("-".to_owned(), |g| g.to_string())
        ),
    )
}

/// Adds the PCI part of a bind to `plan`.
pub(super) fn plan_pci(
    input: &BindInput<'_>,
    named: &[PciAddress],
    options: &BindOptions,
    plan: &mut Plan,
) {
    let inventory = input.pci;
    let named_set: BTreeSet<PciAddress> = named.iter().copied().collect();
    if !inventory.iommu_enabled
        && let Some(first) = named.first()
    {
        plan.refusals.push(no_iommu(*first));
    }

    // Which devices the plan covers: the named ones and, unless --only, their groups.
    let mut covered: BTreeSet<PciAddress> = BTreeSet::new();
    let mut groups: BTreeSet<u32> = BTreeSet::new();
    for address in named {
        let Some(dev) = inventory.get(address) else {
            continue;
        };
        if dev.is_bridge() {
            plan.refusals.push(bridge_named(*address, dev));
            continue;
        }
        covered.insert(*address);
        if let Some(group) = dev.iommu_group {
            groups.insert(group);
            covered.extend(inventory.group_members(address));
        } else if inventory.iommu_enabled {
            plan.warnings.push(format!(
                "{address} has no IOMMU group: the IOMMU does not cover it, and the kernel will \
                 refuse to bind it to vfio-pci"
            ));
        }
    }

    // The module is loaded only when something will bind to it.
    let load_at = plan.steps.len();
    let vfio = Bus::Pci.vfio_driver();
    let mut planned = Vec::new();
    for address in &covered {
        let Some(dev) = inventory.get(address) else {
            continue;
        };
        let device = DeviceRef::Pci(*address);
        let (disposition, why) = disposition(dev, &named_set, options);
        let state = pci_state(dev);
        if disposition == Disposition::Bind {
            plan.warnings.extend(crate::safety::sriov_warning(dev));
            plan.steps.extend(override_steps(&device, &state, &vfio));
        }
        planned.push(PlannedDevice {
            device,
            iommu_group: dev.iommu_group.map(GroupId),
            target_driver: match disposition {
                Disposition::Bind | Disposition::AlreadyBound => Some(vfio.clone()),
                _ => state.driver.clone(),
            },
            current_driver: state.driver,
            current_override: state.driver_override,
            disposition,
            why,
        });
    }

    // The refusals, and which functions move, come from the one place every command asks.
    let set = crate::passthrough::vm_set(inventory, input.host_uses, named, options.only);
    debug_assert_eq!(
        set.moving,
        planned
            .iter()
            .filter(|d| d.disposition == Disposition::Bind)
            .filter_map(|d| d.device.pci())
            .collect::<Vec<_>>(),
        "the plan moves what passthrough::vm_set says"
    );
    plan.refusals.extend(set.refusals);
    for group in &groups {
        let members = inventory.groups.get(group).cloned().unwrap_or_default();
        for blocker in viability(inventory, &members)
            .blockers
            .iter()
            .filter(|b| b.permanent)
        {
            plan.refusals
                .push(never_viable(*group, &blocker.device, &blocker.driver));
        }
        let gid = Some(GroupId(*group));
        if options.only {
            let left: Vec<String> = planned
                .iter()
                .filter(|d| d.iommu_group == gid && d.disposition == Disposition::LeftOut)
                .map(|d| d.device.to_string())
                .collect();
            if !left.is_empty() {
                let verb = if left.len() == 1 {
                    "leaves its"
                } else {
                    "leave their"
                };
                plan.warnings.push(format!(
                    "IOMMU group {group} stays unusable by a VM until {} also {verb} host \
                     drivers",
                    left.join(", ")
                ));
            }
        }
        if planned
            .iter()
            .any(|d| d.iommu_group == gid && d.disposition == Disposition::Bind)
        {
            plan.steps.push(Step::AwaitGroupNode {
                group: GroupId(*group),
            });
        }
    }
    if !input.loaded.contains(&Bus::Pci)
        && planned.iter().any(|d| d.disposition == Disposition::Bind)
    {
        plan.steps.insert(
            load_at,
            Step::LoadModule {
                module: super::VFIO_PCI_MODULE.to_owned(),
            },
        );
    }
    plan.devices.extend(planned);
    plan.groups.extend(groups.into_iter().map(GroupId));
}

fn never_viable(group: u32, device: &PciAddress, driver: &str) -> Refusal {
    Refusal {
        kind: RefusalKind::NeverViable,
        device: (*device).into(),
        text: format!(
            "IOMMU group {group} can never be used by a VM while {device} stays on {driver}: it \
             is a bridge, vfio-pci cannot take it, and {driver} is not a driver VFIO trusts to do \
             no DMA"
        ),
        remedy: format!(
            "unbind {device} from {driver} (it then has no driver, which VFIO accepts)"
        ),
        overridable: true,
    }
}
