//! Where the kernel's groups differ from the prediction, and what may explain it.

use std::collections::BTreeSet;

use serde::Serialize;

use super::quirks;
use super::walk::Prediction;
use crate::address::PciAddress;
use crate::config::PcieType;
use crate::device::Inventory;

/// How the kernel's grouping differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// A kernel group holds devices the prediction keeps apart.
    KernelMerged,
    /// The prediction puts together devices the kernel keeps apart.
    KernelSplit,
    /// The kernel gave no group to a device the prediction groups.
    KernelUngrouped,
    /// The kernel grouped a device the prediction leaves without a group.
    PredictedUngrouped,
}

/// One difference between the kernel's groups and the prediction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// Its kind.
    pub kind: DifferenceKind,
    /// The devices involved.
    pub devices: Vec<PciAddress>,
    /// The kernel's group, when there is one.
    pub kernel_group: Option<u32>,
    /// What may explain it.
    pub text: String,
}

fn probe_order(inv: &Inventory, devices: &[PciAddress]) -> Option<String> {
    devices.iter().find_map(|a| {
        let g = inv.get(a)?.iommu_group?;
        let parent = inv.get(a)?.parent?;
        let pg = inv.get(&parent)?.iommu_group?;
        (g < pg).then(|| {
            format!(
                "probe order: {a} got group {g} before its upstream bridge {parent} got {pg}, so the \
                 IOMMU attached it before the bridge it should have joined (an IOMMU driver that \
                 registered after the PCI devices were probed, as on the HiSilicon D05)"
            )
        })
    })
}

fn explain(inv: &Inventory, devices: &[PciAddress], kind: DifferenceKind) -> String {
    if let Some(text) = probe_order(inv, devices) {
        return text;
    }
    let path: BTreeSet<PciAddress> = devices
        .iter()
        .flat_map(|a| inv.ancestors(a).into_iter().map(|d| d.address))
        .chain(devices.iter().copied())
        .collect();
    let pch = path.iter().filter_map(|a| inv.get(a)).find(|d| {
        d.id.vendor == 0x8086
            && d.config.pcie_type == Some(PcieType::RootPort)
            && quirks::intel_pch_family(d.id.device).is_some()
    });
    if let (Some(d), DifferenceKind::KernelMerged) = (pch, kind) {
        return format!(
            "the kernel's Intel PCH ACS workaround did not isolate {}: a kernel with the 5.9 \
             regression (pass --kernel 5.9 to predict it), or firmware that disabled the LPC's RCBA",
            d.address
        );
    }
    let off = path.iter().filter_map(|a| inv.get(a)).find(|d| {
        d.config.acs.is_some_and(|acs| {
            acs.capability & crate::config::REQ_ACS_FLAGS != 0 && acs.control == 0
        })
    });
    match (kind, off) {
        (DifferenceKind::KernelMerged, Some(d)) => format!(
            "the kernel left ACS off on {} (control 0): a device-tree boot ordering problem \
             (pass --kernel or check the boot method), pci=disable_acs_redir=, or config_acs=",
            d.address
        ),
        (DifferenceKind::KernelMerged, None) => "a quirk or platform rule vfioctl does not model \
             (an IOMMU driver grouping by its own rules, or a kernel older than a quirk)"
            .to_owned(),
        (DifferenceKind::KernelSplit, _) => "the kernel isolates more than config space shows: an \
             ACS override patch (pcie_acs_override=), a quirk newer than vfioctl's table, or \
             ACS this prediction could not read (run as root)"
            .to_owned(),
        (DifferenceKind::KernelUngrouped, _)
            if devices
                .iter()
                .filter_map(|a| inv.get(a))
                .all(|d| d.driver.is_none()) =>
        {
            "no driver has probed these devices, and some kernels (arm64 with an SMMU) attach a \
             device to the IOMMU only when a driver probes it: it gets the predicted group once \
             bound, e.g. to vfio-pci"
                .to_owned()
        }
        (DifferenceKind::KernelUngrouped, _) => "the IOMMU does not cover these devices (no \
             iommu-map/IORT entry, or the IOMMU driver rejected them)"
            .to_owned(),
        (DifferenceKind::PredictedUngrouped, _) => "the IOMMU accepted a shared stream ID \
             (an SMMU that is not v3, or a kernel that knows the bridge does not alias)"
            .to_owned(),
    }
}

/// Compares the kernel's groups (`inv.groups`) with `prediction`, by membership.
pub fn compare(inv: &Inventory, prediction: &Prediction) -> Vec<Difference> {
    let mut out = Vec::new();
    let ungrouped: BTreeSet<PciAddress> = prediction.ungrouped.iter().map(|u| u.device).collect();
    // Looking each member up among all predicted groups would be quadratic on SR-IOV hosts.
    let predicted_of: std::collections::HashMap<PciAddress, u32> = prediction
        .groups
        .iter()
        .flat_map(|g| g.devices.iter().map(|a| (*a, g.id)))
        .collect();
    for (id, members) in &inv.groups {
        let predicted: BTreeSet<u32> = members
            .iter()
            .filter_map(|a| predicted_of.get(a).copied())
            .collect();
        let lost: Vec<PciAddress> = members
            .iter()
            .filter(|a| ungrouped.contains(a))
            .copied()
            .collect();
        if !lost.is_empty() {
            out.push(Difference {
                kind: DifferenceKind::PredictedUngrouped,
                text: explain(inv, &lost, DifferenceKind::PredictedUngrouped),
                devices: lost,
                kernel_group: Some(*id),
            });
        }
        if predicted.len() > 1 {
            out.push(Difference {
                kind: DifferenceKind::KernelMerged,
                devices: members.clone(),
                kernel_group: Some(*id),
                text: explain(inv, members, DifferenceKind::KernelMerged),
            });
        }
    }
    for g in &prediction.groups {
        let kernel: BTreeSet<Option<u32>> = g
            .devices
            .iter()
            .filter_map(|a| inv.get(a))
            .map(|d| d.iommu_group)
            .collect();
        let grouped: BTreeSet<u32> = kernel.iter().flatten().copied().collect();
        if grouped.len() > 1 {
            out.push(Difference {
                kind: DifferenceKind::KernelSplit,
                devices: g.devices.clone(),
                kernel_group: None,
                text: explain(inv, &g.devices, DifferenceKind::KernelSplit),
            });
        }
        let missing: Vec<PciAddress> = g
            .devices
            .iter()
            .filter(|a| !g.awaiting_driver.contains(a))
            .filter(|a| inv.get(a).is_some_and(|d| d.iommu_group.is_none()))
            .copied()
            .collect();
        if !missing.is_empty() && inv.iommu_enabled {
            out.push(Difference {
                kind: DifferenceKind::KernelUngrouped,
                text: explain(inv, &missing, DifferenceKind::KernelUngrouped),
                devices: missing,
                kernel_group: None,
            });
        }
    }
    out
}
