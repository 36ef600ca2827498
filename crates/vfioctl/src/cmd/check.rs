//! `check`: is an IOMMU group usable by a VM right now? Asks the kernel (VFIO_GROUP_GET_STATUS)
//! when it can, and otherwise applies the kernel's rule to what sysfs shows.

use serde::Serialize;

use vfioctl_core::groups::viability;
use vfioctl_host::vfio::{GroupStatus, VfioError, group_status};

use crate::cli::CheckArgs;
use crate::cmd::inventory::JSON_VERSION;
use crate::context::{Context, resolve_device, to_json};
use crate::error::CliError;
use crate::exit::Exit;

#[derive(Serialize)]
struct GroupCheck {
    group: u32,
    viable: bool,
    /// `kernel` (VFIO_GROUP_GET_STATUS) or `sysfs` (the kernel's rule applied to sysfs).
    source: &'static str,
    detail: String,
}

/// `vfioctl check`.
pub fn check(ctx: &mut Context, args: &CheckArgs) -> Result<Exit, CliError> {
    let inventory = ctx.inventory()?;
    let mut groups = Vec::new();
    for text in &args.targets {
        if let Ok(group) = text.parse::<u32>() {
            if !inventory.groups.contains_key(&group) {
                return Err(
                    CliError::new(Exit::Usage, format!("there is no IOMMU group {group}"))
                        .hint("run 'vfioctl groups' to see the groups this host has"),
                );
            }
            groups.push(group);
        } else {
            let dev = resolve_device(ctx, &inventory, text)?;
            let group = dev.iommu_group.ok_or_else(|| {
                CliError::new(
                    Exit::Problems,
                    format!("{} has no IOMMU group, so no VM can use it", dev.address),
                )
                .hint("see 'vfioctl doctor' for why the IOMMU does not cover it")
            })?;
            groups.push(group);
        }
    }
    groups.sort_unstable();
    groups.dedup();
    let mut results = Vec::new();
    for group in groups {
        let members = inventory.groups.get(&group).cloned().unwrap_or_default();
        let rule = viability(&inventory, &members);
        let from_sysfs = |why: String| {
            let detail = if rule.viable {
                why
            } else {
                let blockers: Vec<String> = rule
                    .blockers
                    .iter()
                    .map(|b| format!("{} is on {}", b.device, b.driver))
                    .collect();
                format!("{why}; {}", blockers.join(", "))
            };
            GroupCheck {
                group,
                viable: rule.viable,
                source: "sysfs",
                detail,
            }
        };
        let result = match group_status(&ctx.root, group) {
            Ok(status) => GroupCheck {
                group,
                viable: status == GroupStatus::Viable,
                source: "kernel",
                detail: match status {
                    GroupStatus::Viable => "VFIO_GROUP_GET_STATUS says viable".to_owned(),
                    GroupStatus::NotViable => {
                        let blockers: Vec<String> = rule
                            .blockers
                            .iter()
                            .map(|b| format!("{} is on {}", b.device, b.driver))
                            .collect();
                        format!(
                            "VFIO_GROUP_GET_STATUS says not viable; {}",
                            blockers.join(", ")
                        )
                    }
                },
            },
            Err(VfioError::NoNode { .. }) => GroupCheck {
                group,
                viable: false,
                source: "sysfs",
                detail: format!("/dev/vfio/{group} does not exist: no member is bound to vfio-pci"),
            },
            Err(VfioError::Busy { .. }) => GroupCheck {
                group,
                viable: rule.viable,
                source: "sysfs",
                detail: format!("/dev/vfio/{group} is open elsewhere (a running VM?)"),
            },
            Err(e @ VfioError::NotVfio { .. }) => from_sysfs(format!("{e} (simulated tree?)")),
            Err(e @ VfioError::Io { .. }) => from_sysfs(crate::error::chain(&e)),
        };
        results.push(result);
    }
    let all_viable = results.iter().all(|r| r.viable);
    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            groups: &'a [GroupCheck],
        }
        let text = to_json(&Doc {
            version: JSON_VERSION,
            groups: &results,
        })?;
        ctx.line(text);
    } else {
        for r in &results {
            ctx.line(format!(
                "group {}: {} ({})",
                r.group,
                if r.viable { "viable" } else { "not viable" },
                r.detail
            ));
        }
    }
    Ok(if all_viable {
        Exit::Success
    } else {
        Exit::Problems
    })
}
