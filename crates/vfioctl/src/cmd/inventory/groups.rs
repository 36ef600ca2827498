//! `vfioctl groups`: every IOMMU group, why it is shared, and whether a VM can have it.

use serde::Serialize;

use vfioctl_core::groups::{GroupReason, Viability, explain_group, viability};
use vfioctl_core::{Inventory, PciAddress};
use vfioctl_host::read::Depth;

use crate::cli::GroupsArgs;
use crate::cmd::select::resolve_for_reading;
use crate::context::{Context, describe};
use crate::error::CliError;
use crate::exit::Exit;
use crate::json::JSON_VERSION;

use super::common::{IOMMU_OFF_NOTE, align};

#[derive(Serialize)]
pub(super) struct GroupMember<'a> {
    pub(super) address: PciAddress,
    pub(super) driver: Option<&'a str>,
    pub(super) is_bridge: bool,
    pub(super) role: &'static str,
}

#[derive(Serialize)]
pub(super) struct GroupDoc<'a> {
    pub(super) id: u32,
    pub(super) devices: Vec<PciAddress>,
    pub(super) shared: bool,
    pub(super) reason: GroupReason,
    pub(super) viable: bool,
    pub(super) viability: Viability,
    pub(super) members: Vec<GroupMember<'a>>,
}

/// Builds the explained view of the groups (shared with `show` and `doctor`).
pub(super) fn group_docs<'a>(inventory: &'a Inventory, ids: &[u32]) -> Vec<GroupDoc<'a>> {
    ids.iter()
        .filter_map(|id| Some((*id, inventory.groups.get(id)?)))
        .map(|(id, members)| {
            let v = viability(inventory, members);
            GroupDoc {
                id,
                devices: members.clone(),
                shared: members.len() > 1,
                reason: explain_group(inventory, members),
                viable: v.viable,
                viability: v,
                members: members
                    .iter()
                    .filter_map(|a| inventory.get(a))
                    .map(|d| GroupMember {
                        address: d.address,
                        driver: d.driver.as_deref(),
                        is_bridge: d.is_bridge(),
                        role: d.role(),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// `vfioctl groups`.
pub(crate) fn groups(ctx: &mut Context, args: &GroupsArgs) -> Result<Exit, CliError> {
    if args.predict {
        return crate::cmd::predict::groups(ctx, args);
    }
    let inventory = ctx.inventory_at(Depth::Summary)?;
    let mut ids: Vec<u32> = Vec::new();
    if args.filter.is_empty() {
        ids.extend(inventory.groups.keys());
    } else {
        for text in &args.filter {
            if let Ok(id) = text.parse::<u32>() {
                if !inventory.groups.contains_key(&id) {
                    return Err(CliError::new(
                        Exit::Usage,
                        format!("there is no IOMMU group {id}"),
                    )
                    .hint("run 'vfioctl groups' to see the groups this host has"));
                }
                ids.push(id);
                continue;
            }
            let dev = resolve_for_reading(ctx, &inventory, text)?;
            match dev.iommu_group {
                Some(id) => ids.push(id),
                None => {
                    return Err(CliError::new(
                        Exit::Usage,
                        format!("{} has no IOMMU group", dev.address),
                    )
                    .hint(if inventory.iommu_enabled {
                        "the IOMMU does not cover this device (see 'vfioctl doctor')"
                    } else {
                        IOMMU_OFF_NOTE
                    }));
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
    }
    let docs = group_docs(&inventory, &ids);
    let ungrouped: Vec<PciAddress> = inventory
        .devices()
        .iter()
        .filter(|d| d.iommu_group.is_none())
        .map(|d| d.address)
        .collect();
    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            iommu_enabled: bool,
            groups: Vec<GroupDoc<'a>>,
            ungrouped: Vec<PciAddress>,
        }
        let doc = Doc {
            version: JSON_VERSION,
            iommu_enabled: inventory.iommu_enabled,
            groups: docs,
            ungrouped: if inventory.iommu_enabled {
                ungrouped
            } else {
                Vec::new()
            },
        };
        ctx.json_document(&doc)?;
    } else {
        for (i, doc) in docs.iter().enumerate() {
            if i > 0 {
                ctx.line("");
            }
            let head = if doc.shared {
                format!("IOMMU group {} (shared): {}", doc.id, doc.reason.text)
            } else {
                format!("IOMMU group {}", doc.id)
            };
            ctx.line(head);
            let verbose = ctx.verbose > 0;
            let rows: Vec<[String; 4]> = doc
                .members
                .iter()
                .filter_map(|m| inventory.get(&m.address))
                .map(|d| {
                    let role = if verbose {
                        let acs = match d.acs_isolates() {
                            Some(true) => "isolates",
                            Some(false) => "does not isolate",
                            None => "isolation unknown",
                        };
                        format!("{}, {acs}", d.role())
                    } else if d.is_bridge() {
                        "bridge".to_owned()
                    } else {
                        String::new()
                    };
                    [
                        format!("  {}", d.address),
                        d.driver.clone().unwrap_or_else(|| "(no driver)".to_owned()),
                        role,
                        describe(&ctx.names, d),
                    ]
                })
                .collect();
            for line in align(
                &[String::new(), String::new(), String::new(), String::new()],
                &rows,
            )
            .into_iter()
            .skip(1)
            {
                ctx.line(line);
            }
            ctx.line(viability_line(&doc.viability));
        }
        if inventory.iommu_enabled && !ungrouped.is_empty() && args.filter.is_empty() {
            ctx.line("");
            ctx.line(format!(
                "No IOMMU group (cannot be passed to a VM): {}",
                vfioctl_core::comma_list(ungrouped)
            ));
        }
    }
    if !inventory.iommu_enabled {
        ctx.note(IOMMU_OFF_NOTE);
    }
    Ok(Exit::Success)
}

pub(super) fn viability_line(v: &Viability) -> String {
    if v.viable {
        return "  usable by VFIO now: yes".to_owned();
    }
    let parts: Vec<String> = v
        .blockers
        .iter()
        .map(|b| {
            if b.permanent {
                format!(
                    "{} is a bridge on {}, which vfio cannot take over (never usable while it stays bound)",
                    b.device, b.driver
                )
            } else {
                format!("{} is on {}", b.device, b.driver)
            }
        })
        .collect();
    format!("  usable by VFIO now: no ({})", parts.join("; "))
}
