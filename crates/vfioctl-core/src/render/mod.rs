//! Renderers: what to give a VMM so it takes over the devices vfioctl bound to VFIO.
//!
//! Both renderers share one layout ([`layout`]): the requested PCI functions are gathered into
//! physical devices (slots), because the functions of a multifunction device belong together in
//! the guest as they are on the host, and ordered one IOMMU group at a time, in ascending group
//! number, because a group is the unit VFIO assigns. The order is fully determined by the
//! inventory, so the same request always renders the same text and guest topology.

pub mod backend;
pub mod libvirt;
pub mod qemu;

use std::collections::{BTreeMap, BTreeSet};

use crate::address::PciAddress;
use crate::device::{Inventory, PciDevice};
use crate::fslmc::DprcName;

/// What to pass to a guest: PCI functions and DPAA2 containers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Passthrough {
    /// PCI functions, in any order; duplicates are ignored.
    pub pci: Vec<PciAddress>,
    /// DPAA2 containers, in any order; duplicates are ignored.
    pub dprc: Vec<DprcName>,
}

/// Why a request cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The address is not a device of the inventory.
    #[error("no PCI device {0} on this host")]
    UnknownDevice(PciAddress),
    /// The device is a bridge or port, which vfio-pci refuses to bind.
    #[error("{0} is a bridge: vfio-pci does not take bridges, so it cannot be passed to a guest")]
    Bridge(PciAddress),
    /// DPAA2 containers exist only on Layerscape (aarch64) hosts and need the `virt` machine.
    #[error(
        "{dprc} is a DPAA2 container: QEMU's {machine} machine cannot take vfio-fsl-mc devices"
    )]
    FslMcNeedsVirt {
        /// The container.
        dprc: DprcName,
        /// The machine type asked for.
        machine: &'static str,
    },
    /// libvirt has no `<hostdev>` type for `fsl-mc` containers.
    #[error("{0} is a DPAA2 container: libvirt has no hostdev type for the fsl-mc bus")]
    FslMcUnsupportedByLibvirt(DprcName),
    /// libvirt's `<address domain=...>` holds 16 bits; Intel VMD domains (`10000:`) do not fit.
    #[error("{0} has a PCI domain wider than 16 bits, which a libvirt address cannot express")]
    DomainTooWide(PciAddress),
    /// The guest buses asked for run past 0xff, the last bus number.
    #[error("{slots} guest slots from bus {first:#04x} run past bus 0xff")]
    GuestBusOverflow {
        /// The first guest bus.
        first: u8,
        /// How many slots (one bus each) the devices need.
        slots: usize,
    },
    /// The XML writer failed (it writes to memory, so this is not expected).
    #[error("failed to write libvirt XML")]
    Xml(#[source] std::io::Error),
}

impl RenderError {
    /// What the user can do about it, printed after the error.
    pub fn remedy(&self) -> Option<&'static str> {
        match self {
            Self::UnknownDevice(_) => Some("run `vfioctl list` to see this host's PCI addresses"),
            Self::Bridge(_) => {
                Some("pass the endpoints below the bridge; the bridge stays on its port driver")
            }
            Self::FslMcNeedsVirt { .. } => {
                Some("render for the virt machine (qemu-system-aarch64 -machine virt)")
            }
            Self::FslMcUnsupportedByLibvirt(_) => Some(
                "pass the container with QEMU arguments instead (<qemu:commandline> in the domain XML)",
            ),
            Self::DomainTooWide(_) => Some(
                "disable VMD in the firmware so the device appears in a 16-bit domain, or pass it \
                 with QEMU arguments",
            ),
            Self::GuestBusOverflow { .. } => {
                Some("start from a lower --guest-bus, or pass fewer devices at once")
            }
            Self::Xml(_) => None,
        }
    }
}

/// One host function and the function number it gets in the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionPlan {
    /// The host function.
    pub host: PciAddress,
    /// Its function number in the guest slot.
    pub guest_function: u8,
}

/// The requested functions of one physical device (slot), placed together in one guest slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotPlan {
    /// The lowest IOMMU group among the functions, `None` when none has a group.
    pub group: Option<u32>,
    /// The functions, in host function order.
    pub functions: Vec<FunctionPlan>,
}

impl SlotPlan {
    /// True when the guest slot holds more than one function, so function 0 must announce it.
    pub fn is_multifunction(&self) -> bool {
        self.functions.len() > 1
    }
}

/// Places the requested PCI functions into guest slots, in render order.
///
/// Slots are ordered by IOMMU group (ascending; functions without a group last), then by host
/// address. A slot keeps the host function numbers, so a GPU's audio function stays function 1
/// next to its display function 0. When the request leaves out function 0 of a slot, its
/// functions are numbered from 0 instead, because a guest enumerates a slot only through its
/// function 0 and would not see them otherwise.
///
/// # Errors
///
/// [`RenderError::UnknownDevice`] for an address not in the inventory and
/// [`RenderError::Bridge`] for a bridge, which vfio-pci refuses.
pub fn layout(inv: &Inventory, devices: &[PciAddress]) -> Result<Vec<SlotPlan>, RenderError> {
    let wanted: BTreeSet<PciAddress> = devices.iter().copied().collect();
    // A host slot is one physical device, except for SR-IOV VFs: they share slots by routing-ID
    // arithmetic only, each is a device of its own (own group, own reset, own hot-unplug), so
    // each gets a slot (and a root port) of its own.
    let mut slots: BTreeMap<(u32, u8, u8, Option<u8>), Vec<&PciDevice>> = BTreeMap::new();
    for address in &wanted {
        let device = inv
            .get(address)
            .ok_or(RenderError::UnknownDevice(*address))?;
        if device.is_bridge() {
            return Err(RenderError::Bridge(*address));
        }
        let own = device.physfn.is_some().then_some(address.function);
        slots
            .entry((address.domain, address.bus, address.device, own))
            .or_default()
            .push(device);
    }
    let mut plans: Vec<(PciAddress, SlotPlan)> = slots
        .into_values()
        .filter_map(|functions| {
            let first = functions.first()?.address;
            let keep_numbers = first.function == 0;
            let functions = functions
                .iter()
                .zip(0u8..)
                .map(|(d, n)| FunctionPlan {
                    host: d.address,
                    guest_function: if keep_numbers { d.address.function } else { n },
                })
                .collect();
            let group = slot_group(inv, &first);
            Some((first, SlotPlan { group, functions }))
        })
        .collect();
    // `None` sorts before `Some` in Option's order; ungrouped slots go last instead.
    plans.sort_by_key(|(first, plan)| (plan.group.is_none(), plan.group, *first));
    Ok(plans.into_iter().map(|(_, plan)| plan).collect())
}

/// The lowest group of the functions of `first`'s slot that the inventory knows (a VF's own).
fn slot_group(inv: &Inventory, first: &PciAddress) -> Option<u32> {
    if let Some(vf) = inv.get(first).filter(|d| d.physfn.is_some()) {
        return vf.iommu_group;
    }
    inv.devices()
        .iter()
        .filter(|d| d.address.same_slot(first))
        .filter_map(|d| d.iommu_group)
        .min()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::PcieType;
    use crate::ids::ClassCode;

    fn addr(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    fn device(a: &str, id: &str, class: u32, group: Option<u32>, bridge: bool) -> PciDevice {
        let mut d = PciDevice::new(addr(a), id.parse().unwrap(), ClassCode(class));
        d.iommu_group = group;
        d.config.header_type = Some(u8::from(bridge));
        d.config.pcie_type = Some(if bridge {
            PcieType::Downstream
        } else {
            PcieType::Endpoint
        });
        d
    }

    pub(crate) fn inventory(devices: Vec<PciDevice>) -> Inventory {
        let mut groups: BTreeMap<u32, Vec<PciAddress>> = BTreeMap::new();
        for d in &devices {
            if let Some(g) = d.iommu_group {
                groups.entry(g).or_default().push(d.address);
            }
        }
        Inventory::new(devices, true, groups)
    }

    /// The Ten64 from `seed-ten64-vfio.txt`: the two miniPCIe cards sit behind a Pericom switch
    /// whose root port lacks ACS, so the switch and both cards share group 3.
    pub(crate) fn ten64() -> Inventory {
        let mut wifi = device("0001:03:00.0", "168c:003e", 0x028000, Some(3), false);
        wifi.revision = Some(0x32);
        wifi.driver = Some("ath10k_pci".into());
        inventory(vec![
            device("0000:00:00.0", "1957:80c0", 0x060400, Some(0), true),
            device("0001:00:00.0", "1957:80c0", 0x060400, Some(3), true),
            device("0001:01:00.0", "12d8:b304", 0x060400, Some(3), true),
            device("0001:02:01.0", "12d8:b304", 0x060400, Some(3), true),
            device("0001:02:02.0", "12d8:b304", 0x060400, Some(3), true),
            wifi,
            device("0001:04:00.0", "1ac1:089a", 0x088000, Some(3), false),
            device("0002:00:00.0", "1957:80c0", 0x060400, Some(6), true),
            device("0002:01:00.0", "c0a9:2263", 0x010802, Some(6), false),
        ])
    }

    /// An x86 desktop: an RTX 4090 (display and HDMI audio functions in group 14), an I210 NIC
    /// in group 15, and a Marvell SATA controller in group 12.
    pub(crate) fn desktop() -> Inventory {
        let mut gpu = device("0000:01:00.0", "10de:2684", 0x030000, Some(14), false);
        gpu.boot_vga = true;
        gpu.config.multifunction = Some(true);
        let mut audio = device("0000:01:00.1", "10de:22ba", 0x040300, Some(14), false);
        audio.config.multifunction = Some(true);
        inventory(vec![
            device("0000:00:01.0", "8086:a70d", 0x060400, Some(2), true),
            gpu,
            audio,
            device("0000:03:00.0", "1b4b:9230", 0x010601, Some(12), false),
            device("0000:05:00.0", "8086:1533", 0x020000, Some(15), false),
            device("10000:e1:00.0", "c0a9:2263", 0x010802, Some(20), false),
        ])
    }

    #[test]
    fn multifunction_device_stays_in_one_slot_with_host_numbers() {
        let plans = layout(&desktop(), &[addr("0000:01:00.1"), addr("0000:01:00.0")]).unwrap();
        assert_eq!(plans.len(), 1);
        assert!(plans[0].is_multifunction());
        let guest: Vec<u8> = plans[0]
            .functions
            .iter()
            .map(|f| f.guest_function)
            .collect();
        assert_eq!(guest, [0, 1]);
    }

    #[test]
    fn slots_come_in_ascending_group_order() {
        let plans = layout(
            &desktop(),
            &[
                addr("0000:05:00.0"),
                addr("0000:01:00.0"),
                addr("0000:03:00.0"),
            ],
        )
        .unwrap();
        let groups: Vec<Option<u32>> = plans.iter().map(|p| p.group).collect();
        assert_eq!(groups, [Some(12), Some(14), Some(15)]);
    }

    #[test]
    fn ungrouped_devices_come_last() {
        let mut inv = desktop().devices().to_vec();
        inv[1].iommu_group = None;
        inv[2].iommu_group = None;
        let inv = inventory(inv);
        let plans = layout(&inv, &[addr("0000:01:00.0"), addr("0000:05:00.0")]).unwrap();
        assert_eq!(plans[0].group, Some(15));
        assert_eq!(plans[1].group, None);
    }

    #[test]
    fn lone_function_one_becomes_guest_function_zero() {
        let plans = layout(&desktop(), &[addr("0000:01:00.1")]).unwrap();
        assert_eq!(plans[0].functions[0].guest_function, 0);
        assert!(!plans[0].is_multifunction());
    }

    #[test]
    fn unknown_device_and_bridge_are_refused() {
        assert!(matches!(
            layout(&ten64(), &[addr("0001:05:00.0")]),
            Err(RenderError::UnknownDevice(_))
        ));
        let err = layout(&ten64(), &[addr("0001:02:01.0")]).unwrap_err();
        assert!(matches!(err, RenderError::Bridge(_)));
        assert!(err.remedy().is_some());
    }

    #[test]
    fn each_vf_gets_a_slot_of_its_own_and_a_pfs_functions_stay_together() {
        let pf = addr("0000:3b:00.0");
        let mut devices = desktop().devices().to_vec();
        for (a, g) in [
            ("0000:3b:02.0", 40),
            ("0000:3b:02.1", 41),
            ("0000:3b:02.2", 42),
        ] {
            let mut vf = device(a, "8086:154c", 0x020000, Some(g), false);
            vf.physfn = Some(pf);
            devices.push(vf);
        }
        let inv = inventory(devices);
        let vfs = [
            addr("0000:3b:02.2"),
            addr("0000:3b:02.0"),
            addr("0000:3b:02.1"),
        ];
        let plans = layout(&inv, &vfs).unwrap();
        assert_eq!(plans.len(), 3);
        let groups: Vec<Option<u32>> = plans.iter().map(|p| p.group).collect();
        assert_eq!(groups, [Some(40), Some(41), Some(42)]);
        assert!(plans.iter().all(|p| !p.is_multifunction()));
        assert!(plans.iter().all(|p| p.functions[0].guest_function == 0));
        // The GPU's two functions are one physical device still.
        let mixed = layout(&inv, &[addr("0000:01:00.0"), addr("0000:01:00.1"), vfs[0]]).unwrap();
        assert_eq!(mixed.len(), 2);
        assert!(mixed[0].is_multifunction());
    }

    #[test]
    fn duplicates_are_ignored() {
        let a = addr("0001:03:00.0");
        let plans = layout(&ten64(), &[a, a]).unwrap();
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].functions.len(), 1);
    }
}
