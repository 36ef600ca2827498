//! What the safety rules say about the named devices, in the same words `bind` uses, and the
//! devices the reader had to skip.

use crate::device::Inventory;
use crate::plan::RefusalKind;

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

/// The refusals `bind` gives for the named devices' functions, in its words (one place
/// decides, [`crate::passthrough::vm_set`]): a host-critical function or its group, and a PF
/// whose VFs are in use. The host's disks and networks are the `host-device` and
/// `group-member-host-uses` findings, which say what to move first.
pub(super) fn check_platform(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let uses: crate::plan::HostUses = ctx
        .facts
        .host_uses
        .iter()
        .map(|(a, list)| ((*a).into(), list.clone()))
        .collect();
    let set = crate::passthrough::vm_set(ctx.inv, &uses, ctx.named, false);
    for r in set.refusals {
        let (id, attr) = match r.kind {
            RefusalKind::PlatformFunction => ("group-host-critical", "iommu_group"),
            RefusalKind::SriovVfsInUse => ("sriov-vfs-in-use", "sriov_numvfs"),
            _ => continue,
        };
        let Some(device) = r.device.pci() else {
            continue;
        };
        out.push(Finding::new(
            id,
            Severity::Error,
            Some(device),
            sys_dev(&device, attr),
            r.text,
            r.remedy,
        ));
    }
}
