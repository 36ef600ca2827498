//! Why an IOMMU group holds more than one device, following the kernel's grouping walk.
//!
//! The kernel (`drivers/iommu/iommu.c`, `pci_device_group()`) puts a PCI function in the group of
//! the first upstream bridge whose ACS path to the root is not fully enabled (source validation,
//! request and completion redirect, upstream forwarding), then merges functions of one
//! multifunction device that lack ACS, then devices that share a DMA alias (conventional PCI
//! behind a PCIe-to-PCI bridge all use the bridge's requester ID). This module reads the same
//! facts back from the inventory and names the one that explains each group, in words a person can
//! act on. Where sysfs does not show the cause, it says so instead of guessing.

use serde::Serialize;

use crate::address::PciAddress;
use crate::config::PcieType;
use crate::device::{Inventory, PciDevice, driver_is_vfio_compatible};

/// The kind of reason a group is shared. The JSON names are part of the stable schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonKind {
    /// The group has one device.
    Single,
    /// A bridge or port above the members does not enable ACS.
    AcsMissingUpstream,
    /// Functions of one multifunction device without ACS.
    MultifunctionWithoutAcs,
    /// Conventional PCI devices behind a PCIe-to-PCI (or PCI) bridge share its requester ID.
    PciBridgeAlias,
    /// A device quirk makes functions use another function's requester ID.
    DmaAlias,
    /// Nothing in sysfs explains the grouping.
    Unexplained,
}

/// Why one group holds the devices it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupReason {
    /// The kind of reason.
    pub kind: ReasonKind,
    /// The device the reason is about (the bridge without ACS, the multifunction device, ...).
    pub device: Option<PciAddress>,
    /// One sentence a person acts on.
    pub text: String,
}

/// Vendor:device IDs whose functions the kernel aliases to another function's requester ID
/// (`quirk_dma_func0_alias` and friends in `drivers/pci/quirks.c`), so they share a group even
/// with ACS everywhere. Small on purpose: it only turns "unexplained" into a named reason.
const DMA_ALIAS_QUIRKS: &[(u16, u16, &str)] = &[
    (0x1180, 0xe832, "Ricoh R5C832 functions alias to function 0"),
    (
        0x1180,
        0xe476,
        "Ricoh R5CE476 functions alias to function 0",
    ),
    (
        0x1b4b,
        0x9120,
        "Marvell 88SE9120 uses function 1's requester ID",
    ),
    (
        0x1b4b,
        0x9123,
        "Marvell 88SE9123 uses function 1's requester ID",
    ),
    (
        0x1b4b,
        0x9128,
        "Marvell 88SE9128 uses function 1's requester ID",
    ),
    (
        0x1b4b,
        0x9130,
        "Marvell 88SE9130 uses function 1's requester ID",
    ),
    (
        0x1b4b,
        0x9172,
        "Marvell 88SE9172 uses function 1's requester ID",
    ),
    (
        0x1b4b,
        0x917a,
        "Marvell 88SE917A uses function 1's requester ID",
    ),
    (
        0x1b4b,
        0x9182,
        "Marvell 88SE9182 uses function 1's requester ID",
    ),
    (
        0x1b4b,
        0x91a0,
        "Marvell 88SE91A0 uses function 1's requester ID",
    ),
    (
        0x1b4b,
        0x9220,
        "Marvell 88SE9220 uses function 1's requester ID",
    ),
    (
        0x1b4b,
        0x9230,
        "Marvell 88SE9230 uses function 1's requester ID",
    ),
    (
        0x1b4b,
        0x9235,
        "Marvell 88SE9235 uses function 1's requester ID",
    ),
];

/// The known DMA-alias quirk of a device, if any.
pub fn dma_alias_quirk(device: &PciDevice) -> Option<&'static str> {
    DMA_ALIAS_QUIRKS
        .iter()
        .find(|(v, d, _)| *v == device.id.vendor && *d == device.id.device)
        .map(|(_, _, text)| *text)
}

fn join(addresses: &[PciAddress]) -> String {
    match addresses {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", crate::comma_list(rest)),
    }
}

fn is_conventional_bridge_alias(bridge: &PciDevice) -> bool {
    matches!(bridge.config.pcie_type, Some(PcieType::PcieToPciBridge))
        || (bridge.config.pcie_type.is_none()
            && bridge.config.header_type.is_some()
            && bridge.is_bridge())
}

/// The sentence tail naming what must travel together.
pub(crate) fn consequence(inv: &Inventory, members: &[PciAddress]) -> String {
    let endpoints: Vec<PciAddress> = members
        .iter()
        .filter(|a| inv.get(a).is_some_and(|d| !d.is_bridge()))
        .copied()
        .collect();
    match endpoints.as_slice() {
        [] => "the group holds only bridges".to_owned(),
        [one] => format!(
            "{one} is its only endpoint, so it can go to a VM while the bridges stay on their port driver"
        ),
        many => format!("{} must go to the same VM", join(many)),
    }
}

/// Explains why the group with these members is shared (or says it is not).
pub fn explain_group(inv: &Inventory, members: &[PciAddress]) -> GroupReason {
    if members.len() <= 1 {
        return GroupReason {
            kind: ReasonKind::Single,
            device: members.first().copied(),
            text: "alone in its group".to_owned(),
        };
    }
    // Top-level members: those with no other member above them.
    let top: Vec<&PciDevice> = members
        .iter()
        .filter_map(|a| inv.get(a))
        .filter(|d| {
            !inv.ancestors(&d.address)
                .iter()
                .any(|anc| members.contains(&anc.address))
        })
        .collect();
    let tail = consequence(inv, members);

    if let [anchor] = top.as_slice() {
        if is_conventional_bridge_alias(anchor) {
            return GroupReason {
                kind: ReasonKind::PciBridgeAlias,
                device: Some(anchor.address),
                text: format!(
                    "{} ({}) forwards conventional PCI devices under its own requester ID, so the \
                     IOMMU cannot tell them apart and they share its group: {tail}",
                    anchor.address,
                    anchor.role()
                ),
            };
        }
        return acs_reason(anchor, &tail);
    }

    if top.len() > 1 && top.iter().all(|d| d.address.same_slot(&top[0].address)) {
        if let Some(quirk) = top.iter().find_map(|d| dma_alias_quirk(d)) {
            return GroupReason {
                kind: ReasonKind::DmaAlias,
                device: Some(top[0].address),
                text: format!(
                    "{quirk} (a kernel DMA-alias quirk), so its functions share one group: {tail}"
                ),
            };
        }
        if top.iter().any(|d| d.acs_isolates() != Some(true)) {
            let functions: Vec<PciAddress> = top.iter().map(|d| d.address).collect();
            let only_these = members.len() == functions.len() && top.iter().all(|d| !d.is_bridge());
            let text = if only_these {
                format!(
                    "{} are functions of one multifunction device without ACS, so the IOMMU cannot \
                     keep them apart: they must go to the same VM",
                    join(&functions)
                )
            } else {
                format!(
                    "{} are functions of one multifunction device without ACS, so the IOMMU cannot \
                     keep them (and what is below them) apart: {tail}",
                    join(&functions)
                )
            };
            return GroupReason {
                kind: ReasonKind::MultifunctionWithoutAcs,
                device: Some(top[0].address),
                text,
            };
        }
    }

    // Siblings below a bridge that is not itself in the group (some platforms leave bridges
    // ungrouped).
    if let Some(parent) = top.first().and_then(|d| d.parent)
        && top.iter().all(|d| d.parent == Some(parent))
        && let Some(bridge) = inv.get(&parent)
    {
        if is_conventional_bridge_alias(bridge) {
            return GroupReason {
                kind: ReasonKind::PciBridgeAlias,
                device: Some(bridge.address),
                text: format!(
                    "the devices behind {} ({}) share its requester ID, so they share a group: {tail}",
                    bridge.address,
                    bridge.role()
                ),
            };
        }
        if bridge.acs_isolates() != Some(true) {
            return acs_reason(bridge, &tail);
        }
    }

    GroupReason {
        kind: ReasonKind::Unexplained,
        device: None,
        text: format!(
            "nothing in sysfs explains why {} share a group (a platform rule, a DMA alias the kernel \
             does not expose, or an ACS override); {tail}",
            join(members)
        ),
    }
}

fn acs_reason(bridge: &PciDevice, tail: &str) -> GroupReason {
    let what = match bridge.acs_isolates() {
        None => "may not enable ACS (its ACS capability could not be read: run as root to know)",
        Some(_) => match bridge.config.acs {
            Some(_) => "does not enable ACS",
            None => "has no ACS capability",
        },
    };
    GroupReason {
        kind: ReasonKind::AcsMissingUpstream,
        device: Some(bridge.address),
        text: format!(
            "{} ({}) {what}, so every function below it shares its group: {tail}",
            bridge.address,
            bridge.role()
        ),
    }
}

/// One group member that keeps the group from being usable by VFIO.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    /// The member.
    pub device: PciAddress,
    /// Its driver.
    pub driver: String,
    /// True when binding to vfio cannot fix it: a bridge on a driver that does DMA of its own
    /// (e.g. `shpchp`), which vfio-pci cannot take because it refuses bridges.
    pub permanent: bool,
}

/// Whether a group can be opened by VFIO now, and what stands in the way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Viability {
    /// Every member is driverless, on a vfio driver, or on a DMA-safe port driver.
    pub viable: bool,
    /// Members on host drivers.
    pub blockers: Vec<Blocker>,
}

/// The kernel's viability rule (5.19+ DMA ownership): every member is driverless, bound to a
/// vfio driver, or bound to a driver that does no DMA of its own (`pcieport`, `pci-stub`).
pub fn viability(inv: &Inventory, members: &[PciAddress]) -> Viability {
    let blockers: Vec<Blocker> = members
        .iter()
        .filter_map(|a| inv.get(a))
        .filter_map(|d| {
            let driver = d.driver.as_deref()?;
            (!driver_is_vfio_compatible(driver)).then(|| Blocker {
                device: d.address,
                driver: driver.to_owned(),
                permanent: d.is_bridge(),
            })
        })
        .collect();
    Viability {
        viable: blockers.is_empty(),
        blockers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Acs, ConfigInfo};
    use crate::device::tests::addr;
    use crate::ids::ClassCode;
    use std::collections::BTreeMap;

    fn dev(
        a: &str,
        parent: Option<&str>,
        pcie: Option<PcieType>,
        bridge: bool,
        acs: Option<u16>,
    ) -> PciDevice {
        let mut d = PciDevice::new(
            addr(a),
            "1234:5678".parse().unwrap(),
            ClassCode(if bridge { 0x060400 } else { 0x020000 }),
        );
        d.parent = parent.map(addr);
        d.config = ConfigInfo {
            header_type: Some(u8::from(bridge)),
            multifunction: Some(false),
            pcie_type: pcie,
            extended_readable: pcie.is_some(),
            acs: acs.map(|control| Acs {
                offset: 0x148,
                capability: 0x5f,
                control,
            }),
            ..ConfigInfo::default()
        };
        d
    }

    fn inv(devices: Vec<PciDevice>, groups: &[(u32, &[&str])]) -> Inventory {
        let groups: BTreeMap<u32, Vec<PciAddress>> = groups
            .iter()
            .map(|(g, m)| (*g, m.iter().map(|a| addr(a)).collect()))
            .collect();
        Inventory::new(devices, true, groups)
    }

    #[test]
    fn switch_behind_root_port_without_acs_names_the_root_port() {
        let i = inv(
            vec![
                dev(
                    "0001:00:00.0",
                    None,
                    Some(PcieType::RootPort),
                    true,
                    Some(0),
                ),
                dev(
                    "0001:01:00.0",
                    Some("0001:00:00.0"),
                    Some(PcieType::Upstream),
                    true,
                    None,
                ),
                dev(
                    "0001:02:01.0",
                    Some("0001:01:00.0"),
                    Some(PcieType::Downstream),
                    true,
                    None,
                ),
                dev(
                    "0001:02:02.0",
                    Some("0001:01:00.0"),
                    Some(PcieType::Downstream),
                    true,
                    None,
                ),
                dev(
                    "0001:03:00.0",
                    Some("0001:02:01.0"),
                    Some(PcieType::Endpoint),
                    false,
                    None,
                ),
                dev(
                    "0001:04:00.0",
                    Some("0001:02:02.0"),
                    Some(PcieType::Endpoint),
                    false,
                    None,
                ),
            ],
            &[],
        );
        let members: Vec<PciAddress> = i.devices().iter().map(|d| d.address).collect();
        let r = explain_group(&i, &members);
        assert_eq!(r.kind, ReasonKind::AcsMissingUpstream);
        assert_eq!(r.device, Some(addr("0001:00:00.0")));
        assert!(
            r.text
                .contains("0001:03:00.0 and 0001:04:00.0 must go to the same VM"),
            "{}",
            r.text
        );
    }

    #[test]
    fn functions_of_one_slot_without_acs_are_multifunction() {
        let mut a = dev("0000:01:00.0", None, Some(PcieType::Endpoint), false, None);
        let mut b = dev("0000:01:00.1", None, Some(PcieType::Endpoint), false, None);
        a.config.multifunction = Some(true);
        b.config.multifunction = Some(true);
        let i = inv(vec![a, b], &[]);
        let r = explain_group(&i, &[addr("0000:01:00.0"), addr("0000:01:00.1")]);
        assert_eq!(r.kind, ReasonKind::MultifunctionWithoutAcs);
    }

    #[test]
    fn conventional_devices_behind_pcie_to_pci_bridge_alias() {
        let i = inv(
            vec![
                dev(
                    "0000:01:00.0",
                    None,
                    Some(PcieType::PcieToPciBridge),
                    true,
                    None,
                ),
                dev("0000:02:01.0", Some("0000:01:00.0"), None, false, None),
                dev("0000:02:02.0", Some("0000:01:00.0"), None, false, None),
            ],
            &[],
        );
        let members: Vec<PciAddress> = i.devices().iter().map(|d| d.address).collect();
        assert_eq!(explain_group(&i, &members).kind, ReasonKind::PciBridgeAlias);
    }

    #[test]
    fn unrelated_devices_are_unexplained() {
        let i = inv(
            vec![
                dev("0000:01:00.0", None, Some(PcieType::Endpoint), false, None),
                dev("0000:05:00.0", None, Some(PcieType::Endpoint), false, None),
            ],
            &[],
        );
        let r = explain_group(&i, &[addr("0000:01:00.0"), addr("0000:05:00.0")]);
        assert_eq!(r.kind, ReasonKind::Unexplained);
    }

    #[test]
    fn bridge_on_shpchp_blocks_viability_for_good() {
        let mut b = dev(
            "0000:01:00.0",
            None,
            Some(PcieType::PcieToPciBridge),
            true,
            None,
        );
        b.driver = Some("shpchp".into());
        let mut n = dev("0000:02:01.0", Some("0000:01:00.0"), None, false, None);
        n.driver = Some("vfio-pci".into());
        let i = inv(vec![b, n], &[]);
        let v = viability(&i, &[addr("0000:01:00.0"), addr("0000:02:01.0")]);
        assert!(!v.viable);
        assert!(v.blockers[0].permanent);
    }
}
