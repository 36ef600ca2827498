//! `vfioctl list`: every device, as a table, a tree or JSON, and the DPAA2 objects.

use serde::Serialize;

use vfioctl_core::{Inventory, PciAddress, PciDevice};
use vfioctl_host::read::Depth;

use crate::cli::ListArgs;
use crate::cmd::select::{IdFilter, resolve_for_reading};
use crate::context::{Context, describe};
use crate::error::CliError;
use crate::exit::Exit;
use crate::json::JSON_VERSION;

use super::common::{IOMMU_OFF_NOTE, align, object_line};
use super::detail;

#[derive(Serialize)]
pub(super) struct ListedDevice<'a> {
    pub(super) address: PciAddress,
    pub(super) vendor_id: String,
    pub(super) device_id: String,
    pub(super) class: String,
    pub(super) vendor_name: Option<&'a str>,
    pub(super) device_name: Option<&'a str>,
    pub(super) class_name: Option<&'a str>,
    pub(super) subsystem_vendor_id: Option<String>,
    pub(super) subsystem_device_id: Option<String>,
    pub(super) revision: Option<String>,
    pub(super) driver: Option<&'a str>,
    pub(super) driver_override: Option<&'a str>,
    pub(super) iommu_group: Option<u32>,
    pub(super) is_bridge: bool,
    pub(super) parent: Option<PciAddress>,
    pub(super) net_interfaces: &'a [String],
    /// The VFIO device (cdev) name under `/dev/vfio/devices`, while on a vfio driver on a
    /// kernel with `CONFIG_VFIO_DEVICE_CDEV`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) vfio_device: Option<String>,
    /// `list -k`: the modules whose aliases match the device's modalias.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) kernel_modules: Option<Vec<String>>,
}

pub(super) fn listed<'a>(ctx: &'a Context, d: &'a PciDevice) -> ListedDevice<'a> {
    ListedDevice {
        address: d.address,
        vendor_id: format!("{:04x}", d.id.vendor),
        device_id: format!("{:04x}", d.id.device),
        class: d.class.to_string(),
        vendor_name: ctx.names.vendor(d.id.vendor),
        device_name: ctx.names.device(d.id.vendor, d.id.device),
        class_name: ctx.names.class(d.class.0),
        subsystem_vendor_id: d.subsystem.map(|s| format!("{:04x}", s.vendor)),
        subsystem_device_id: d.subsystem.map(|s| format!("{:04x}", s.device)),
        revision: d.revision.map(|r| format!("{r:02x}")),
        driver: d.driver.as_deref(),
        driver_override: d.driver_override.as_deref(),
        iommu_group: d.iommu_group,
        is_bridge: d.is_bridge(),
        parent: d.parent,
        net_interfaces: &d.net_interfaces,
        vfio_device: vfioctl_host::iommufd::cdev_of_device(&ctx.root, d),
        kernel_modules: None,
    }
}

/// `vfioctl list`.
pub(crate) fn list(ctx: &mut Context, args: &ListArgs) -> Result<Exit, CliError> {
    // Power state, NUMA node and reset methods are not part of the summary read.
    let depth = if ctx.verbose > 0 {
        Depth::Full
    } else {
        Depth::Summary
    };
    let inventory = ctx.inventory_at(depth)?;
    let mut slots = Vec::new();
    for text in &args.slot {
        slots.push(resolve_for_reading(ctx, &inventory, text)?.address);
    }
    let id: Option<IdFilter> = args.id.as_deref().map(str::parse).transpose()?;
    let filtered = !args.slot.is_empty() || args.id.is_some() || args.driver.is_some();
    let fslmc = vfioctl_host::fslmc::read_fslmc(&ctx.root)?;
    let selected: Vec<&PciDevice> = inventory
        .devices()
        .iter()
        .filter(|d| slots.is_empty() || slots.contains(&d.address))
        .filter(|d| id.is_none_or(|i| i.matches(d)))
        .filter(|d| match args.driver.as_deref() {
            None => true,
            Some("none") => d.driver.is_none(),
            Some(name) => d.driver.as_deref() == Some(name),
        })
        .collect();
    let modules = if args.kernel {
        vfioctl_host::modalias::kernel_modules(&ctx.root, selected.iter().map(|d| d.address))?
    } else {
        std::collections::BTreeMap::new()
    };

    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            iommu_enabled: bool,
            devices: Vec<ListedDevice<'a>>,
            fsl_mc: &'a [vfioctl_core::fslmc::FslMcObject],
        }
        let devices = selected
            .iter()
            .map(|d| ListedDevice {
                kernel_modules: modules.get(&d.address).cloned(),
                ..listed(ctx, d)
            })
            .collect();
        let doc = Doc {
            version: JSON_VERSION,
            iommu_enabled: inventory.iommu_enabled,
            devices,
            fsl_mc: if filtered { &[] } else { fslmc.objects() },
        };
        ctx.json_document(&doc)?;
    } else if args.tree {
        render_tree(ctx, &inventory, &selected);
    } else {
        let rows: Vec<[String; 5]> = selected
            .iter()
            .map(|d| {
                [
                    d.address.to_string(),
                    d.iommu_group.map_or("-".to_owned(), |g| g.to_string()),
                    d.driver.clone().unwrap_or_else(|| "(none)".to_owned()),
                    d.driver_override
                        .as_ref()
                        .map_or("-".to_owned(), |o| format!("override={o}")),
                    describe(&ctx.names, d) + if d.is_bridge() { " (bridge)" } else { "" },
                ]
            })
            .collect();
        let header = ["ADDRESS", "GROUP", "DRIVER", "OVERRIDE", "DEVICE"].map(str::to_owned);
        let mut lines = align(&header, &rows).into_iter();
        lines.next().into_iter().for_each(|h| ctx.line(h));
        for (d, line) in selected.iter().zip(lines) {
            ctx.line(line);
            if ctx.verbose > 0 {
                detail::verbose_lines(d)
                    .into_iter()
                    .for_each(|l| ctx.line(l));
            }
            if args.kernel {
                let cdev = vfioctl_host::iommufd::cdev_of_device(&ctx.root, d);
                let modules = modules.get(&d.address).map_or(&[][..], Vec::as_slice);
                for l in detail::kernel_lines(d, modules, cdev.as_deref()) {
                    ctx.line(l);
                }
            }
        }
    }
    if !ctx.json && !filtered && !fslmc.is_empty() {
        ctx.line("");
        ctx.line("DPAA2 (fsl-mc):");
        for line in fslmc_lines(&fslmc) {
            ctx.line(line);
        }
    }
    if !inventory.iommu_enabled {
        ctx.note(IOMMU_OFF_NOTE);
    }
    if selected.is_empty() && filtered {
        ctx.note("no device matches the filter");
    }
    Ok(Exit::Success)
}

fn render_tree(ctx: &mut Context, inventory: &Inventory, selected: &[&PciDevice]) {
    let shown: std::collections::BTreeSet<PciAddress> =
        selected.iter().map(|d| d.address).collect();
    // Show the ancestors of selected devices too, so a filtered tree keeps its shape.
    let mut visible = shown.clone();
    for d in selected {
        visible.extend(inventory.ancestors(&d.address).iter().map(|a| a.address));
    }
    let roots: Vec<&PciDevice> = inventory
        .devices()
        .iter()
        .filter(|d| visible.contains(&d.address))
        .filter(|d| d.parent.is_none_or(|p| inventory.get(&p).is_none()))
        .collect();
    let mut lines = Vec::new();
    for (i, root) in roots.iter().enumerate() {
        tree_node(
            ctx,
            inventory,
            &visible,
            root,
            "",
            i + 1 == roots.len(),
            true,
            &mut lines,
        );
    }
    for line in lines {
        ctx.line(line);
    }
}

#[expect(clippy::too_many_arguments, reason = "recursive renderer state")]
fn tree_node(
    ctx: &Context,
    inventory: &Inventory,
    visible: &std::collections::BTreeSet<PciAddress>,
    dev: &PciDevice,
    prefix: &str,
    last: bool,
    top: bool,
    lines: &mut Vec<String>,
) {
    let branch = if top {
        ""
    } else if last {
        "`-- "
    } else {
        "|-- "
    };
    let group = dev
        .iommu_group
        .map_or("group -".to_owned(), |g| format!("group {g}"));
    let driver = dev.driver.as_deref().unwrap_or("(none)");
    lines.push(format!(
        "{prefix}{branch}{} [{group}] {driver}: {}",
        dev.address,
        describe(&ctx.names, dev)
    ));
    let children: Vec<&PciDevice> = inventory
        .children(&dev.address)
        .filter(|c| visible.contains(&c.address))
        .collect();
    let child_prefix = if top {
        prefix.to_owned()
    } else if last {
        format!("{prefix}    ")
    } else {
        format!("{prefix}|   ")
    };
    for (i, child) in children.iter().enumerate() {
        tree_node(
            ctx,
            inventory,
            visible,
            child,
            &child_prefix,
            i + 1 == children.len(),
            false,
            lines,
        );
    }
}

/// The fsl-mc objects as an indented tree: each container with its objects below it.
fn fslmc_lines(inv: &vfioctl_core::fslmc::FslMcInventory) -> Vec<String> {
    fn container(
        inv: &vfioctl_core::fslmc::FslMcInventory,
        obj: &vfioctl_core::fslmc::FslMcObject,
        depth: usize,
        out: &mut Vec<String>,
    ) {
        let indent = "  ".repeat(depth + 1);
        out.push(format!(
            "{indent}{}  group {}  {}{}{}",
            obj.name,
            obj.iommu_group.map_or("-".to_owned(), |g| g.to_string()),
            obj.driver.as_deref().unwrap_or("(no driver)"),
            obj.driver_override
                .as_deref()
                .map_or(String::new(), |o| format!("  override={o}")),
            if obj.container.is_none() {
                "  (root container: the host's)"
            } else {
                ""
            }
        ));
        if let Some(dprc) = obj.as_dprc() {
            for child in inv.children(dprc) {
                if child.obj_type == "dprc" {
                    container(inv, child, depth + 1, out);
                } else {
                    out.push(format!("{indent}  {}", object_line(child, "  ")));
                }
            }
        }
    }
    let mut out = Vec::new();
    for root in inv.containers().filter(|c| c.container.is_none()) {
        container(inv, root, 0, &mut out);
    }
    // Containers whose parent is not visible (a damaged or partial tree) are still shown.
    for orphan in inv.containers().filter(|c| {
        c.container
            .is_some_and(|p| inv.get(&p.to_string()).is_none())
    }) {
        container(inv, orphan, 0, &mut out);
    }
    out
}
