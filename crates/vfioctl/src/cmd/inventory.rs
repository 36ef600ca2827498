//! `list`, `groups` and `show`: reading the host, never changing it.

use serde::Serialize;

use vfioctl_core::groups::{GroupReason, Viability, explain_group, viability};
use vfioctl_core::{Inventory, PciAddress, PciDevice, VendorDevice};
use vfioctl_host::read::Depth;
use vfioctl_host::usage::{HostUsage, MountedBlock, NetUse};

use crate::cli::{GroupsArgs, ListArgs, ShowArgs};
use crate::context::{Context, describe, resolve_device};
use crate::error::CliError;
use crate::exit::Exit;

/// Version of every JSON document vfioctl prints.
pub const JSON_VERSION: u32 = 1;

const IOMMU_OFF_NOTE: &str = "the IOMMU is off on this host: no device has an IOMMU group, so \
none can be passed to a VM; enable VT-d/AMD-Vi (x86) or the SMMU (arm64) in the firmware and boot \
with intel_iommu=on (Intel) or amd_iommu=on (AMD); 'vfioctl doctor' checks the rest";

#[derive(Serialize)]
struct ListedDevice<'a> {
    address: PciAddress,
    vendor_id: String,
    device_id: String,
    class: String,
    vendor_name: Option<&'a str>,
    device_name: Option<&'a str>,
    class_name: Option<&'a str>,
    subsystem_vendor_id: Option<String>,
    subsystem_device_id: Option<String>,
    revision: Option<String>,
    driver: Option<&'a str>,
    driver_override: Option<&'a str>,
    iommu_group: Option<u32>,
    is_bridge: bool,
    parent: Option<PciAddress>,
    net_interfaces: &'a [String],
}

fn listed<'a>(ctx: &'a Context, d: &'a PciDevice) -> ListedDevice<'a> {
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
    }
}

/// `vfioctl list`.
pub fn list(ctx: &mut Context, args: &ListArgs) -> Result<Exit, CliError> {
    let inventory = ctx.inventory_at(Depth::Summary)?;
    let slot = match &args.slot {
        Some(text) => Some(resolve_device(ctx, &inventory, text)?.address),
        None => None,
    };
    let id: Option<VendorDevice> =
        match &args.id {
            Some(text) => Some(text.parse().map_err(
                |e: vfioctl_core::ids::VendorDeviceError| CliError::new(Exit::Usage, e.to_string()),
            )?),
            None => None,
        };
    let filtered = args.slot.is_some() || args.id.is_some() || args.driver.is_some();
    let fslmc = vfioctl_host::fslmc::read_fslmc(&ctx.root)?;
    let selected: Vec<&PciDevice> = inventory
        .devices()
        .iter()
        .filter(|d| slot.is_none_or(|s| d.address == s))
        .filter(|d| id.is_none_or(|i| d.id == i))
        .filter(|d| match args.driver.as_deref() {
            None => true,
            Some("none") => d.driver.is_none(),
            Some(name) => d.driver.as_deref() == Some(name),
        })
        .collect();

    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            iommu_enabled: bool,
            devices: Vec<ListedDevice<'a>>,
            fsl_mc: &'a [vfioctl_core::fslmc::FslMcObject],
        }
        let devices = selected.iter().map(|d| listed(ctx, d)).collect();
        let doc = Doc {
            version: JSON_VERSION,
            iommu_enabled: inventory.iommu_enabled,
            devices,
            fsl_mc: if filtered { &[] } else { fslmc.objects() },
        };
        let text = crate::context::to_json(&doc)?;
        ctx.line(text);
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
        for line in align(&header, &rows) {
            ctx.line(line);
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
    if selected.is_empty() && (args.slot.is_some() || args.id.is_some() || args.driver.is_some()) {
        ctx.note("no device matches the filter");
    }
    Ok(Exit::Success)
}

/// Pads columns so the table reads like lspci; the last column is not padded.
fn align<const N: usize>(header: &[String; N], rows: &[[String; N]]) -> Vec<String> {
    let mut widths = [0usize; N];
    for row in std::iter::once(header).chain(rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    std::iter::once(header)
        .chain(rows)
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == N {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                }
            }
            line.trim_end().to_owned()
        })
        .collect()
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

#[derive(Serialize)]
struct GroupMember<'a> {
    address: PciAddress,
    driver: Option<&'a str>,
    is_bridge: bool,
    role: &'static str,
}

#[derive(Serialize)]
struct GroupDoc<'a> {
    id: u32,
    devices: Vec<PciAddress>,
    shared: bool,
    reason: GroupReason,
    viable: bool,
    viability: Viability,
    members: Vec<GroupMember<'a>>,
}

/// Builds the explained view of the groups (shared with `show` and `doctor`).
fn group_docs<'a>(inventory: &'a Inventory, ids: &[u32]) -> Vec<GroupDoc<'a>> {
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
pub fn groups(ctx: &mut Context, args: &GroupsArgs) -> Result<Exit, CliError> {
    if args.predict {
        return super::predict::groups(ctx, args);
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
            let dev = resolve_device(ctx, &inventory, text)?;
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
        let text = crate::context::to_json(&doc)?;
        ctx.line(text);
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

fn viability_line(v: &Viability) -> String {
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

/// `vfioctl show`.
pub fn show(ctx: &mut Context, args: &ShowArgs) -> Result<Exit, CliError> {
    if let Ok(dprc) = args.device.parse::<vfioctl_core::fslmc::DprcName>() {
        return show_container(ctx, dprc);
    }
    let inventory = ctx.inventory()?;
    let dev = resolve_device(ctx, &inventory, &args.device)?.clone();
    let usage = HostUsage::read(&ctx.root)?;
    let dir = vfioctl_host::read::device_dir(&ctx.root, &dev.address)?;
    let mounts: Vec<MountedBlock> = usage.mounts_under(&dir).into_iter().cloned().collect();
    let nets: Vec<NetUse> = dev
        .net_interfaces
        .iter()
        .map(|n| usage.net(&ctx.root, n))
        .collect();
    let chain: Vec<&PciDevice> = inventory.ancestors(&dev.address);
    let group = dev
        .iommu_group
        .map(|g| group_docs(&inventory, &[g]))
        .and_then(|mut v| v.pop());

    if ctx.json {
        #[derive(Serialize)]
        struct Upstream {
            address: PciAddress,
            role: &'static str,
            driver: Option<String>,
            acs_isolates: Option<bool>,
            acs: Option<vfioctl_core::config::Acs>,
        }
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            device: ListedDevice<'a>,
            role: &'static str,
            config: &'a vfioctl_core::config::ConfigInfo,
            group: Option<GroupDoc<'a>>,
            upstream: Vec<Upstream>,
            reset_method: Option<&'a [String]>,
            power_state: Option<&'a str>,
            d3cold_allowed: Option<bool>,
            numa_node: Option<i32>,
            boot_vga: bool,
            physfn: Option<PciAddress>,
            virtfns: &'a [PciAddress],
            sriov_numvfs: Option<u32>,
            sriov_totalvfs: Option<u32>,
            net: Vec<NetUse>,
            mounts: Vec<MountedBlock>,
        }
        let doc = Doc {
            version: JSON_VERSION,
            device: listed(ctx, &dev),
            role: dev.role(),
            config: &dev.config,
            group,
            upstream: chain
                .iter()
                .map(|b| Upstream {
                    address: b.address,
                    role: b.role(),
                    driver: b.driver.clone(),
                    acs_isolates: b.acs_isolates(),
                    acs: b.config.acs,
                })
                .collect(),
            reset_method: dev.reset_method.as_deref(),
            power_state: dev.power_state.as_deref(),
            d3cold_allowed: dev.d3cold_allowed,
            numa_node: dev.numa_node,
            boot_vga: dev.boot_vga,
            physfn: dev.physfn,
            virtfns: &dev.virtfns,
            sriov_numvfs: dev.sriov_numvfs,
            sriov_totalvfs: dev.sriov_totalvfs,
            net: nets,
            mounts,
        };
        let text = crate::context::to_json(&doc)?;
        ctx.line(text);
        return Ok(Exit::Success);
    }

    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let mut out: Vec<String> = Vec::new();
    out.push(format!("{}  {}", dev.address, describe(&ctx.names, &dev)));
    if let Some(sub) = dev.subsystem {
        out.push(format!("  subsystem:        {sub}"));
    }
    if let Some(rev) = dev.revision {
        out.push(format!("  revision:         {rev:02x}"));
    }
    out.push(format!("  kind:             {}", dev.role()));
    out.push(format!(
        "  driver:           {}",
        dev.driver.as_deref().unwrap_or("(none)")
    ));
    out.push(format!(
        "  driver_override:  {}",
        dev.driver_override.as_deref().unwrap_or("(unset)")
    ));
    match &group {
        Some(g) => {
            out.push(format!(
                "  IOMMU group:      {} ({})",
                g.id,
                if g.shared { "shared" } else { "alone" }
            ));
            if g.shared {
                out.push(format!("    why shared:     {}", g.reason.text));
                for m in &g.members {
                    out.push(format!(
                        "    member:         {} {} ({})",
                        m.address,
                        m.driver.unwrap_or("(no driver)"),
                        m.role
                    ));
                }
            }
            out.push(viability_line(&g.viability).replacen("  ", "    ", 1));
        }
        None => out.push("  IOMMU group:      none (cannot be passed to a VM)".to_owned()),
    }
    if chain.is_empty() {
        out.push("  upstream:         on a root bus".to_owned());
    }
    for b in &chain {
        let acs = match (b.acs_isolates(), b.config.acs) {
            (Some(true), _) => "ACS isolates".to_owned(),
            (Some(false), Some(a)) => format!("ACS off (ctrl {:#06x})", a.control),
            (Some(false), None) => "no ACS".to_owned(),
            (None, _) => "ACS unknown (run as root)".to_owned(),
        };
        out.push(format!(
            "  upstream:         {} {} on {} [{acs}]",
            b.address,
            b.role(),
            b.driver.as_deref().unwrap_or("(no driver)")
        ));
    }
    out.push(format!(
        "  reset_method:     {}",
        match &dev.reset_method {
            Some(m) if !m.is_empty() => m.join(" "),
            Some(_) => "(none enabled)".to_owned(),
            None => "(no reset method)".to_owned(),
        }
    ));
    if let Some(flr) = dev.config.flr {
        out.push(format!("  FLR capable:      {}", yes_no(flr)));
    }
    out.push(format!(
        "  power_state:      {}",
        dev.power_state.as_deref().unwrap_or("(unknown)")
    ));
    if let Some(d3) = dev.d3cold_allowed {
        out.push(format!("  d3cold_allowed:   {}", yes_no(d3)));
    }
    out.push(format!(
        "  NUMA node:        {}",
        dev.numa_node.map_or("(none)".to_owned(), |n| n.to_string())
    ));
    if dev.boot_vga {
        out.push("  boot VGA:         yes (the firmware console may be on it)".to_owned());
    }
    if let Some(pf) = dev.physfn {
        out.push(format!("  SR-IOV:           virtual function of {pf}"));
    }
    if let Some(total) = dev.sriov_totalvfs {
        out.push(format!(
            "  SR-IOV:           physical function, {} of {total} VFs enabled",
            dev.sriov_numvfs.unwrap_or(0)
        ));
        for vf in &dev.virtfns {
            out.push(format!("    VF:             {vf}"));
        }
    }
    for n in &nets {
        let mut facts = vec![if n.up { "up" } else { "down" }.to_owned()];
        if n.has_addresses {
            facts.push("has addresses".to_owned());
        }
        if n.default_route {
            facts.push("carries the default route".to_owned());
        }
        if let Some(m) = &n.master {
            facts.push(format!("enslaved to {m}"));
        }
        out.push(format!(
            "  network:          {} ({})",
            n.interface,
            facts.join(", ")
        ));
    }
    for m in &mounts {
        out.push(format!(
            "  block device:     {} mounted on {}",
            m.block,
            m.mount_points.join(", ")
        ));
    }
    for line in out {
        ctx.line(line);
    }
    if !inventory.iommu_enabled {
        ctx.note(IOMMU_OFF_NOTE);
    }
    Ok(Exit::Success)
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
                    out.push(format!(
                        "{indent}  {}  {}{}",
                        child.name,
                        child.driver.as_deref().unwrap_or("(no driver)"),
                        if child.net_interfaces.is_empty() {
                            String::new()
                        } else {
                            format!("  ({})", child.net_interfaces.join(", "))
                        }
                    ));
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

/// `vfioctl show dprc.N`.
fn show_container(
    ctx: &mut Context,
    dprc: vfioctl_core::fslmc::DprcName,
) -> Result<Exit, CliError> {
    let inv = vfioctl_host::fslmc::read_fslmc(&ctx.root)?;
    let Some(obj) = inv.get(&dprc.to_string()).cloned() else {
        return Err(CliError::new(
            Exit::Usage,
            format!("no DPAA2 container {dprc} on this host"),
        )
        .hint("run 'vfioctl list' to see the containers"));
    };
    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            container: &'a vfioctl_core::fslmc::FslMcObject,
            root_container: bool,
            objects: Vec<&'a vfioctl_core::fslmc::FslMcObject>,
        }
        let text = crate::context::to_json(&Doc {
            version: JSON_VERSION,
            container: &obj,
            root_container: inv.is_root_container(dprc),
            objects: inv.children(dprc).collect(),
        })?;
        ctx.line(text);
        return Ok(Exit::Success);
    }
    ctx.line(format!("{dprc}  DPAA2 container"));
    ctx.line(format!(
        "  driver:           {}",
        obj.driver.as_deref().unwrap_or("(none)")
    ));
    ctx.line(format!(
        "  driver_override:  {}",
        obj.driver_override.as_deref().unwrap_or("(unset)")
    ));
    ctx.line(format!(
        "  IOMMU group:      {}",
        obj.iommu_group.map_or("none".to_owned(), |g| g.to_string())
    ));
    ctx.line(format!(
        "  parent:           {}",
        obj.container.map_or(
            "none (root container: the host runs on it)".to_owned(),
            |c| c.to_string()
        )
    ));
    let children: Vec<_> = inv.children(dprc).cloned().collect();
    if children.is_empty() {
        ctx.line("  objects:          none visible (objects appear only while a driver holds the container)");
    }
    for child in children {
        ctx.line(format!(
            "  object:           {} {}{}",
            child.name,
            child.driver.as_deref().unwrap_or("(no driver)"),
            if child.net_interfaces.is_empty() {
                String::new()
            } else {
                format!(" ({})", child.net_interfaces.join(", "))
            }
        ));
    }
    Ok(Exit::Success)
}
