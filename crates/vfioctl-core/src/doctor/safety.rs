//! What the safety rules say about the named devices, in the same words `bind` uses, and the
//! devices the reader had to skip.

use crate::device::Inventory;

use super::ctx::{Ctx, sys_dev};
use super::finding::{Finding, Severity};

/// Devices the reader had to skip: every command ignores them, and the user should know.
pub(super) fn check_skipped(inv: &Inventory, out: &mut Vec<Finding>) {
    for s in &inv.skipped {
        out.push(Finding::new(
            "device-unreadable",
            Severity::Warning,
            None,
            s.path.clone(),
            format!(
                "PCI device {} was skipped: {}; vfioctl ignores it, as lspci does",
                s.name, s.reason
            ),
            "if it is being hot-removed, wait and run again; otherwise the device or its driver \
             is in a bad state (see dmesg)",
        ));
    }
}

/// The same refusal `bind` gives for a host-critical function or its group (one place decides).
pub(super) fn check_platform(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let uses: crate::plan::HostUses = ctx
        .facts
        .host_uses
        .iter()
        .map(|(a, list)| ((*a).into(), list.clone()))
        .collect();
    for r in crate::safety::platform_refusals(ctx.inv, &uses, ctx.named) {
        let Some(device) = r.device.pci() else {
            continue;
        };
        out.push(Finding::new(
            "group-host-critical",
            Severity::Error,
            Some(device),
            sys_dev(&device, "iommu_group"),
            r.text,
            r.remedy,
        ));
    }
}
