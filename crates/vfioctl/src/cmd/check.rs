//! `check`: is an IOMMU group usable by a VM right now? Asks the kernel (VFIO_GROUP_GET_STATUS)
//! when it can, and otherwise applies the kernel's rule to what sysfs shows.

use serde::Serialize;

use vfioctl_core::groups::viability;
use vfioctl_host::vfio::{GroupStatus, VfioError, group_status};

use crate::cli::CheckArgs;
use crate::cmd::inventory::JSON_VERSION;
use crate::context::{Context, resolve_device};
use crate::error::CliError;
use crate::exit::Exit;
use crate::term::Tone;

#[derive(Serialize)]
struct GroupCheck {
    group: u32,
    viable: bool,
    /// `kernel` (VFIO_GROUP_GET_STATUS) or `sysfs` (the kernel's rule applied to sysfs).
    source: &'static str,
    detail: String,
}

/// `vfioctl check`.
pub(crate) fn check(ctx: &mut Context, args: &CheckArgs) -> Result<Exit, CliError> {
    // A group's members, a device's group and the bridges above are all a verdict reads.
    let names: Vec<String> = args
        .targets
        .iter()
        .flat_map(|t| match t.parse::<u32>() {
            Ok(group) => vfioctl_host::around::group_members(&ctx.root, group)
                .iter()
                .map(ToString::to_string)
                .collect(),
            Err(_) => vec![t.clone()],
        })
        .collect();
    let inventory = ctx.inventory_around(&names)?;
    let fslmc = vfioctl_host::fslmc::read_fslmc(&ctx.root)?;
    let mut groups = Vec::new();
    // Containers' groups: every object in one must be on vfio-fsl-mc or have no driver.
    let mut container_blockers: std::collections::BTreeMap<u32, Vec<String>> =
        std::collections::BTreeMap::new();
    for text in &args.targets {
        if let Ok(name) = text.parse::<vfioctl_core::FslMcName>() {
            vfioctl_core::select::select_container(&fslmc, &name)?;
            let container = fslmc.get(text);
            let Some(group) = container.and_then(|c| c.iommu_group) else {
                return Err(CliError::new(
                    Exit::Problems,
                    format!("{name} has no IOMMU group, so no VM can use it"),
                )
                .hint(format!(
                    "bind it first ('vfioctl bind {name}'): fsl-mc gives a container its group \
                     when a driver probes it"
                )));
            };
            let blockers = container
                .and_then(vfioctl_core::fslmc::FslMcObject::as_dprc)
                .map(|dprc| {
                    fslmc
                        .children(dprc)
                        .filter_map(|o| {
                            o.driver
                                .as_deref()
                                .filter(|d| *d != vfioctl_core::fslmc::VFIO_FSL_MC)
                                .map(|d| format!("{} is on {d}", o.name))
                        })
                        .collect()
                })
                .unwrap_or_default();
            container_blockers.insert(group, blockers);
            groups.push(group);
        } else if let Ok(group) = text.parse::<u32>() {
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
        let mut rule = viability(&inventory, &members);
        if let Some(blockers) = container_blockers.get(&group) {
            rule.viable = blockers.is_empty();
        }
        let from_sysfs = |why: String| {
            let detail = if rule.viable {
                why
            } else {
                let blockers: Vec<String> = rule
                    .blockers
                    .iter()
                    .map(|b| format!("{} is on {}", b.device, b.driver))
                    .collect();
                let mut blockers = blockers;
                blockers.extend(container_blockers.get(&group).cloned().unwrap_or_default());
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
                detail: format!(
                    "/dev/vfio/{group} does not exist: no member is bound to a vfio driver"
                ),
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
        ctx.json_document(&Doc {
            version: JSON_VERSION,
            groups: &results,
        })?;
    } else {
        for r in &results {
            let (tone, verdict) = if r.viable {
                (Tone::Good, "viable")
            } else {
                (Tone::Bad, "not viable")
            };
            ctx.line_parts(&[
                (None, &format!("group {}: ", r.group)),
                (Some(tone), verdict),
                (None, &format!(" ({})", r.detail)),
            ]);
        }
    }
    Ok(if all_viable {
        Exit::Success
    } else {
        Exit::Problems
    })
}
