//! IOMMU groups and the named devices: viable, shared, half bound, or backing the host.

use crate::address::PciAddress;
use crate::groups::{explain_group, viability};
use crate::plan::HostUse;

use super::ctx::{Ctx, is_endpoint, join, sys_dev};
use super::finding::{Finding, Severity};

fn describe_uses(uses: &[HostUse]) -> String {
    let parts: Vec<String> = uses
        .iter()
        .map(|u| match u {
            HostUse::Mount {
                block, mount_point, ..
            } => format!("{block} is mounted on {mount_point}"),
            HostUse::Network {
                interface, detail, ..
            } => format!("{interface} {detail}"),
            HostUse::Console => "it carries the console".to_owned(),
            other => other.describe(),
        })
        .collect();
    join(&parts)
}

/// The uses other than platform functions, which `safety.rs` turns into group refusals.
fn not_platform(uses: Option<&Vec<HostUse>>) -> Vec<HostUse> {
    uses.into_iter()
        .flatten()
        .filter(|u| !matches!(u, HostUse::Platform { .. }))
        .cloned()
        .collect()
}

pub(super) fn check_groups(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let inv = ctx.inv;
    for (group, members) in &inv.groups {
        if !members.iter().any(|m| ctx.in_scope(m)) {
            continue;
        }
        let endpoints: Vec<PciAddress> = members
            .iter()
            .filter(|a| inv.get(a).is_some_and(is_endpoint))
            .copied()
            .collect();
        let rule = viability(inv, members);
        for blocker in rule.blockers.iter().filter(|b| b.permanent) {
            out.push(Finding::new(
                "group-never-viable",
                Severity::Error,
                Some(blocker.device),
                sys_dev(&blocker.device, "driver"),
                format!(
                    "IOMMU group {group} can never be given to a VM while bridge {} is on {}: that \
                     driver does DMA of its own, and vfio-pci does not take bridges",
                    blocker.device, blocker.driver
                ),
                format!(
                    "unbind it (echo {} > /sys/bus/pci/drivers/{}/unbind) and keep {} from \
                     binding it again (blacklist {} in /etc/modprobe.d), or move the card to a \
                     slot behind another bridge",
                    blocker.device, blocker.driver, blocker.driver, blocker.driver
                ),
            ));
        }
        let focus = ctx
            .named
            .iter()
            .find(|a| members.contains(a))
            .copied()
            .or_else(|| endpoints.first().copied());
        let fixable: Vec<String> = rule
            .blockers
            .iter()
            .filter(|b| !b.permanent)
            .map(|b| format!("{} is on {}", b.device, b.driver))
            .collect();
        let on_vfio: Vec<PciAddress> = members
            .iter()
            .filter(|a| {
                inv.get(a)
                    .and_then(|d| d.driver.as_deref())
                    .is_some_and(crate::plan::is_vfio_pci_driver)
            })
            .copied()
            .collect();
        if !fixable.is_empty() && !on_vfio.is_empty() {
            out.push(Finding::new(
                "group-not-viable",
                Severity::Error,
                on_vfio.first().copied(),
                format!("/sys/kernel/iommu_groups/{group}/devices"),
                format!(
                    "IOMMU group {group} is half bound: {} {} on vfio-pci but {}; QEMU fails with \
                     'group {group} is not viable'",
                    join(&on_vfio),
                    if on_vfio.len() == 1 { "is" } else { "are" },
                    join(&fixable)
                ),
                format!(
                    "vfioctl bind {} (moves the rest of the group to vfio-pci), or vfioctl \
                     restore {} (gives it all back to the host)",
                    on_vfio[0], on_vfio[0]
                ),
            ));
        } else if !fixable.is_empty()
            && let Some(named) = ctx.named.iter().find(|a| members.contains(a))
        {
            out.push(Finding::new(
                "group-not-bound",
                Severity::Info,
                Some(*named),
                format!("/sys/kernel/iommu_groups/{group}/devices"),
                format!(
                    "IOMMU group {group} is not usable by a VM yet: {}",
                    join(&fixable)
                ),
                format!("vfioctl bind {named} (moves the whole group to vfio-pci)"),
            ));
        }
        if endpoints.len() > 1 {
            let reason = explain_group(inv, members);
            let functions: Vec<PciAddress> = members
                .iter()
                .filter(|a| inv.get(a).is_some_and(|d| !d.is_bridge()))
                .copied()
                .collect();
            out.push(Finding::new(
                "group-shared",
                Severity::Info,
                focus,
                format!("/sys/kernel/iommu_groups/{group}/devices"),
                format!(
                    "IOMMU group {group} holds {}: {}",
                    join(&functions),
                    reason.text
                ),
                "give them to the same VM together ('vfioctl bind' takes the whole group)",
            ));
            for user in &endpoints {
                // Platform functions are refused by group, for the devices named (safety.rs).
                let uses = not_platform(ctx.facts.host_uses.get(user));
                if uses.is_empty() {
                    continue;
                }
                let others: Vec<PciAddress> =
                    endpoints.iter().filter(|a| *a != user).copied().collect();
                out.push(Finding::new(
                    "group-member-host-uses",
                    Severity::Error,
                    Some(*user),
                    format!("/sys/kernel/iommu_groups/{group}/devices"),
                    format!(
                        "{user} backs the host ({}) and shares IOMMU group {group} with {}: none \
                         of them can go to a VM without taking it from the host",
                        describe_uses(&uses),
                        join(&others)
                    ),
                    format!(
                        "move {user}'s work elsewhere first, or put the card(s) in a slot with \
                         its own IOMMU group"
                    ),
                ));
            }
        }
    }
    if inv.iommu_enabled {
        for d in ctx.endpoints().filter(|d| d.iommu_group.is_none()) {
            out.push(Finding::new(
                "device-no-group",
                Severity::Error,
                Some(d.address),
                sys_dev(&d.address, "iommu_group"),
                format!(
                    "{} has no IOMMU group although the IOMMU is on: the IOMMU does not cover it, \
                     so VFIO cannot take it ('no iommu_group found')",
                    d.address
                ),
                "check the firmware's IOMMU description (DMAR/IVRS/IORT or the device tree's \
                 iommu-map) for this PCIe controller; dmesg shows which devices the IOMMU \
                 driver added",
            ));
        }
    }
}

pub(super) fn check_named(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    for address in ctx.named {
        let Some(d) = ctx.inv.get(address) else {
            continue;
        };
        if d.is_bridge() {
            out.push(Finding::new(
                "device-is-bridge",
                Severity::Error,
                Some(*address),
                sys_dev(address, "config"),
                format!(
                    "{address} is a {} (a bridge): vfio-pci only takes endpoints",
                    d.role()
                ),
                "name the devices behind it instead ('vfioctl list --tree')",
            ));
        }
        let uses = not_platform(ctx.facts.host_uses.get(address));
        if !uses.is_empty() {
            out.push(Finding::new(
                "host-device",
                Severity::Error,
                Some(*address),
                sys_dev(address, "driver"),
                format!("{address} backs the host: {}", describe_uses(&uses)),
                if uses.iter().any(HostUse::essential) {
                    "the running host cannot lose it (its root filesystem, or the network that \
                     carries it): pass another device, or boot the host from elsewhere"
                } else {
                    "move the host's use of it elsewhere first ('vfioctl bind --force' overrides, \
                     at your own risk)"
                },
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::PcieType;
    use crate::device::tests::addr;
    use crate::doctor::testkit::*;
    use crate::doctor::*;
    use crate::plan::HostUse;

    #[test]
    fn groups() {
        let f = fires("group-shared", shared_group);
        assert!(
            f.message.contains("0000:01:00.0 and 0000:01:00.1"),
            "{}",
            f.message
        );
        quiet("group-shared", |_, _| {});
        let f = fires("group-never-viable", |_, d| {
            let mut b = bridge("0000:02:00.0", Some(1), "shpchp");
            b.config.pcie_type = Some(PcieType::PcieToPciBridge);
            d.push(b);
        });
        assert_eq!(f.device, Some(addr("0000:02:00.0")));
        assert!(f.remedy.contains("shpchp/unbind"));
        quiet("group-never-viable", |_, _| {});
        let f = fires("group-member-host-uses", |f, d| {
            shared_group(f, d);
            f.host_uses.insert(
                addr("0000:01:00.1"),
                vec![HostUse::Mount {
                    block: "sda1".into(),
                    mount_point: "/".into(),
                    via: Vec::new(),
                }],
            );
        });
        assert!(f.message.contains("sda1 is mounted on /"));
        quiet("group-member-host-uses", |f, _| {
            // Used by the host but alone in its group: nothing else is held back.
            f.host_uses
                .insert(addr("0000:01:00.0"), vec![HostUse::Console]);
        });
        let f = fires("group-not-viable", |f, d| {
            shared_group(f, d);
            d[2].driver = Some("apex".into());
        });
        assert!(
            f.message.contains("0000:01:00.1 is on apex"),
            "{}",
            f.message
        );
        assert_eq!(f.severity, Severity::Error);
        quiet("group-not-viable", shared_group);
        quiet("group-not-viable", |f, d| {
            // Nothing bound yet: nothing is half done.
            shared_group(f, d);
            d[1].driver = Some("e1000e".into());
            d[2].driver = Some("apex".into());
        });
        fires("device-no-group", |_, d| {
            d.push(endpoint("0000:03:00.0", "8086:1533", None, Some("igb")));
        });
        quiet("device-no-group", |_, _| {});
    }
}
