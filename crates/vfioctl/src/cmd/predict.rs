//! `groups --predict` and `slots`: the groups the kernel would form, from config space alone.

use serde::Serialize;

use vfioctl_core::groups::{GroupReason, Viability, viability};
use vfioctl_core::predict::{
    Difference, Fact, FactKind, Platform, Prediction, SlotPrediction, SlotSite, compare, predict,
    predict_slots,
};
use vfioctl_core::{Inventory, PciAddress};
use vfioctl_host::platform::read_platform;
use vfioctl_host::read::Depth;

use crate::cli::{GroupsArgs, SlotsArgs};
use crate::context::{Context, describe, resolve_device};
use crate::error::CliError;
use crate::exit::Exit;

use crate::json::JSON_VERSION;

/// The platform the prediction models, and the physical slots.
fn platform(ctx: &Context, kernel: Option<&str>) -> Result<(Platform, Vec<SlotSite>), CliError> {
    let facts = read_platform(&ctx.root)?;
    let kernel = match kernel {
        Some(text) => text
            .parse()
            .map_err(|e: vfioctl_core::predict::KernelVersionError| {
                CliError::new(Exit::Usage, e.to_string())
                    .hint("give the kernel as MAJOR.MINOR, e.g. --kernel 6.12")
            })?,
        None => facts.kernel.ok_or_else(|| {
            CliError::new(
                Exit::Usage,
                format!(
                    "the kernel release under {} is unreadable ({})",
                    ctx.root.path().display(),
                    facts
                        .release
                        .as_deref()
                        .unwrap_or("no proc/sys/kernel/osrelease")
                ),
            )
            .hint("name the kernel to model with --kernel X.Y")
        })?,
    };
    Ok((
        Platform {
            kernel,
            arch: facts.arch,
            firmware: facts.firmware,
            iommu: facts.iommu,
        },
        facts.slots,
    ))
}

#[derive(Serialize)]
struct Member<'a> {
    address: PciAddress,
    driver: Option<&'a str>,
    is_bridge: bool,
    role: &'static str,
}

/// One group in the schema of `groups`, plus the facts it rests on.
#[derive(Serialize)]
struct GroupDoc<'a> {
    id: u32,
    devices: Vec<PciAddress>,
    shared: bool,
    reason: &'a GroupReason,
    viable: bool,
    viability: Viability,
    members: Vec<Member<'a>>,
    facts: &'a [Fact],
    awaiting_driver: &'a [PciAddress],
}

fn platform_line(p: &Platform) -> String {
    let arch = match p.arch {
        vfioctl_core::predict::CpuArch::X86_64 => "x86-64",
        vfioctl_core::predict::CpuArch::Aarch64 => "arm64",
        vfioctl_core::predict::CpuArch::Unknown => "unknown architecture",
    };
    let firmware = match p.firmware {
        vfioctl_core::predict::Firmware::Acpi => "ACPI",
        vfioctl_core::predict::Firmware::DeviceTree => "device tree",
        vfioctl_core::predict::Firmware::Unknown => "boot method unknown",
    };
    let iommu = match p.iommu {
        vfioctl_core::predict::IommuKind::IntelVtd => "Intel VT-d",
        vfioctl_core::predict::IommuKind::AmdVi => "AMD-Vi",
        vfioctl_core::predict::IommuKind::SmmuV3 => "SMMUv3",
        vfioctl_core::predict::IommuKind::Smmu => "SMMU",
        vfioctl_core::predict::IommuKind::Other => "IOMMU",
        vfioctl_core::predict::IommuKind::Off => "IOMMU off",
    };
    format!("kernel {}, {arch}, {firmware}, {iommu}", p.kernel)
}

fn selected(
    ctx: &Context,
    inv: &Inventory,
    prediction: &Prediction,
    filter: &[String],
) -> Result<Vec<u32>, CliError> {
    let mut ids = Vec::new();
    for text in filter {
        if let Ok(id) = text.parse::<u32>() {
            if !prediction.groups.iter().any(|g| g.id == id) {
                return Err(CliError::new(
                    Exit::Usage,
                    format!("there is no predicted group {id}"),
                )
                .hint("run 'vfioctl groups --predict' to see the predicted groups"));
            }
            ids.push(id);
            continue;
        }
        let dev = resolve_device(ctx, inv, text)?;
        match prediction.group_of(&dev.address) {
            Some(g) => ids.push(g.id),
            None => {
                return Err(CliError::new(
                    Exit::Usage,
                    format!("{} would get no IOMMU group", dev.address),
                )
                .hint("run 'vfioctl groups --predict' to see why"));
            }
        }
    }
    if filter.is_empty() {
        ids.extend(prediction.groups.iter().map(|g| g.id));
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

fn align(rows: &[[String; 4]]) -> Vec<String> {
    let mut width = [0usize; 4];
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  ", w = width[i]));
                }
            }
            line.trim_end().to_owned()
        })
        .collect()
}

/// `vfioctl groups --predict`.
pub(crate) fn groups(ctx: &mut Context, args: &GroupsArgs) -> Result<Exit, CliError> {
    let inventory = ctx.inventory_at(Depth::Summary)?;
    let (platform, _) = platform(ctx, args.kernel.as_deref())?;
    let prediction = predict(&inventory, &platform);
    let ids = selected(ctx, &inventory, &prediction, &args.filter)?;
    let differences: Vec<Difference> = if inventory.iommu_enabled {
        compare(&inventory, &prediction)
    } else {
        Vec::new()
    };
    let docs: Vec<GroupDoc<'_>> = prediction
        .groups
        .iter()
        // `ids` is sorted: a linear search per group would be quadratic on SR-IOV hosts.
        .filter(|g| ids.binary_search(&g.id).is_ok())
        .map(|g| {
            let v = viability(&inventory, &g.devices);
            GroupDoc {
                id: g.id,
                devices: g.devices.clone(),
                shared: g.devices.len() > 1,
                reason: &g.reason,
                viable: v.viable,
                viability: v,
                members: g
                    .devices
                    .iter()
                    .filter_map(|a| inventory.get(a))
                    .map(|d| Member {
                        address: d.address,
                        driver: d.driver.as_deref(),
                        is_bridge: d.is_bridge(),
                        role: d.role(),
                    })
                    .collect(),
                facts: &g.facts,
                awaiting_driver: &g.awaiting_driver,
            }
        })
        .collect();
    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            predicted: bool,
            iommu_enabled: bool,
            platform: Platform,
            complete: bool,
            groups: Vec<GroupDoc<'a>>,
            ungrouped: Vec<PciAddress>,
            ungrouped_facts: Vec<&'a Fact>,
            differences: &'a [Difference],
        }
        let doc = Doc {
            version: JSON_VERSION,
            predicted: true,
            iommu_enabled: inventory.iommu_enabled,
            platform,
            complete: prediction.complete,
            groups: docs,
            ungrouped: prediction.ungrouped.iter().map(|u| u.device).collect(),
            ungrouped_facts: prediction.ungrouped.iter().map(|u| &u.fact).collect(),
            differences: &differences,
        };
        ctx.json_document(&doc)?;
        return Ok(Exit::Success);
    }
    ctx.line(format!(
        "Predicted IOMMU groups ({}), from config space and topology:",
        platform_line(&platform)
    ));
    for doc in &docs {
        ctx.line("");
        ctx.line(if doc.shared {
            format!("Predicted group {} (shared): {}", doc.id, doc.reason.text)
        } else {
            format!("Predicted group {}", doc.id)
        });
        let rows: Vec<[String; 4]> = doc
            .devices
            .iter()
            .filter_map(|a| inventory.get(a))
            .map(|d| {
                [
                    format!("  {}", d.address),
                    d.driver.clone().unwrap_or_else(|| "(no driver)".to_owned()),
                    if d.is_bridge() {
                        "bridge".to_owned()
                    } else {
                        String::new()
                    },
                    describe(&ctx.names, d),
                ]
            })
            .collect();
        for line in align(&rows) {
            ctx.line(line);
        }
        let shown: Vec<&Fact> = doc
            .facts
            .iter()
            .filter(|f| ctx.verbose > 0 || f.kind != FactKind::AcsNotRequired)
            .collect();
        for (i, fact) in shown.iter().enumerate() {
            let lead = if i == 0 {
                "  rests on: "
            } else {
                "            "
            };
            ctx.line(format!("{lead}{}", fact.text));
        }
    }
    if args.filter.is_empty() && !prediction.ungrouped.is_empty() {
        ctx.line("");
        ctx.line("No IOMMU group predicted:");
        for u in &prediction.ungrouped {
            ctx.line(format!("  {}", u.fact.text));
        }
    }
    if inventory.iommu_enabled && args.filter.is_empty() {
        ctx.line("");
        if differences.is_empty() {
            ctx.line("The kernel's groups match the prediction.");
        } else {
            ctx.line("The kernel's groups differ from the prediction:");
            for d in &differences {
                let group = d
                    .kernel_group
                    .map_or_else(String::new, |g| format!(" (kernel group {g})"));
                ctx.line(format!(
                    "  {}{group}: {}",
                    vfioctl_core::comma_list(&d.devices),
                    d.text
                ));
            }
        }
    }
    if !prediction.complete {
        ctx.note(
            "some ACS capabilities could not be read (extended config space needs root), so \
             some predicted groups may be too large: run as root for a complete prediction",
        );
    }
    Ok(Exit::Success)
}

/// `vfioctl slots`.
pub(crate) fn slots(ctx: &mut Context, args: &SlotsArgs) -> Result<Exit, CliError> {
    let inventory = ctx.inventory_at(Depth::Summary)?;
    let (platform, sites) = platform(ctx, args.kernel.as_deref())?;
    let prediction = predict(&inventory, &platform);
    let (ports, unplaced) = predict_slots(&inventory, &platform, &prediction, &sites);
    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            predicted: bool,
            platform: Platform,
            ports: &'a [SlotPrediction],
            unplaced_slots: &'a [SlotSite],
        }
        ctx.json_document(&Doc {
            version: JSON_VERSION,
            predicted: true,
            platform,
            ports: &ports,
            unplaced_slots: &unplaced,
        })?;
        return Ok(Exit::Success);
    }
    ctx.line(format!(
        "Where a card would get an IOMMU group of its own ({}):",
        platform_line(&platform)
    ));
    for p in &ports {
        let kind = match p.kind {
            vfioctl_core::predict::SlotKind::RootPort => "root port",
            vfioctl_core::predict::SlotKind::DownstreamPort => "switch downstream port",
        };
        let slot = if p.slots.is_empty() {
            String::new()
        } else {
            format!(", slot {}", p.slots.join(", "))
        };
        let verdict = if p.isolates {
            "isolates"
        } else {
            "does not isolate"
        };
        ctx.line("");
        ctx.line(format!("{} ({kind}{slot}): {verdict}", p.port));
        ctx.line(format!("  {}", p.text));
        if !p.occupants.is_empty() {
            ctx.line(format!(
                "  now holds {}",
                vfioctl_core::comma_list(&p.occupants)
            ));
        }
    }
    for s in &unplaced {
        ctx.line("");
        ctx.line(format!(
            "slot {} ({:04x}:{:02x}:{:02x}): no port leads to it",
            s.name, s.domain, s.bus, s.device
        ));
    }
    Ok(Exit::Success)
}
