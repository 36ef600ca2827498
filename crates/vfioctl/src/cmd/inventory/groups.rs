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
use crate::term::{Tone, wrap};

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
        let width = crate::term::width(args.width);
        let rows = member_rows(ctx, &inventory, &docs);
        let table = align(&[const { String::new() }; 4], &min_widths(rows.concat()));
        // One table for every group, so the columns line up from the first group to the last.
        let mut lines = table.into_iter().skip(1 + MIN_WIDTH_ROWS);
        for (i, (doc, members)) in docs.iter().zip(&rows).enumerate() {
            if i > 0 {
                ctx.line("");
            }
            if doc.shared {
                let head = format!("IOMMU group {} (shared): {}", doc.id, doc.reason.text);
                for line in wrap(&head, width, "", "    ") {
                    ctx.tone_line(Tone::Heading, &line, "");
                }
            } else {
                ctx.tone_line(Tone::Heading, &format!("IOMMU group {}", doc.id), "");
            }
            for line in lines.by_ref().take(members.len()) {
                ctx.line(line);
            }
            viability_lines(ctx, &doc.viability, width);
        }
        if inventory.iommu_enabled && !ungrouped.is_empty() && args.filter.is_empty() {
            ctx.line("");
            let text = format!(
                "No IOMMU group (cannot be passed to a VM): {}",
                vfioctl_core::comma_list(ungrouped)
            );
            for line in wrap(&text, width, "", "  ") {
                ctx.line(line);
            }
        }
    }
    if !inventory.iommu_enabled {
        ctx.note(IOMMU_OFF_NOTE);
    }
    Ok(Exit::Success)
}

/// The rows of each group's members: address, driver, role, description.
fn member_rows(
    ctx: &Context,
    inventory: &Inventory,
    docs: &[GroupDoc<'_>],
) -> Vec<Vec<[String; 4]>> {
    let verbose = ctx.verbose > 0;
    docs.iter()
        .map(|doc| {
            doc.members
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
                .collect()
        })
        .collect()
}

/// How many rows [`min_widths`] puts before the real ones.
const MIN_WIDTH_ROWS: usize = 1;

/// `rows` after a row of blanks as wide as the narrowest columns should be, so a filtered view
/// (`groups 3`) lines up with the whole one: a 16-character driver name, the word `bridge`.
fn min_widths(rows: Vec<[String; 4]>) -> Vec<[String; 4]> {
    let floor = [" ".repeat(14), " ".repeat(16), " ".repeat(6), String::new()];
    std::iter::once(floor).chain(rows).collect()
}

/// The verdict, wrapped to `width`, its yes or no coloured.
fn viability_lines(ctx: &mut Context, v: &Viability, width: Option<usize>) {
    const PREFIX: &str = "  usable by VFIO now: ";
    let text = viability_line(v);
    let (tone, word) = if v.viable {
        (Tone::Good, "yes")
    } else {
        (Tone::Bad, "no")
    };
    for (i, line) in wrap(text.trim_start(), width, "  ", "    ")
        .into_iter()
        .enumerate()
    {
        match line.strip_prefix(PREFIX).and_then(|l| l.strip_prefix(word)) {
            Some(rest) if i == 0 => {
                ctx.line_parts(&[(None, PREFIX), (Some(tone), word), (None, rest)]);
            }
            _ => ctx.line(line),
        }
    }
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
