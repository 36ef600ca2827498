//! `vfioctl show`: one device (or DPAA2 container) in detail.

use serde::Serialize;

use vfioctl_core::{PciAddress, PciDevice};
use vfioctl_host::usage::{HostUsage, MountedBlock, NetUse};

use crate::cli::ShowArgs;
use crate::cmd::select::resolve_for_reading;
use crate::context::{Context, describe};
use crate::error::CliError;
use crate::exit::Exit;
use crate::json::JSON_VERSION;

use super::common::{IOMMU_OFF_NOTE, object_line};
use super::groups::{GroupDoc, group_docs, viability_line};
use super::list::{ListedDevice, listed};

/// `vfioctl show`.
pub(crate) fn show(ctx: &mut Context, args: &ShowArgs) -> Result<Exit, CliError> {
    if let Ok(dprc) = args.device.parse::<vfioctl_core::fslmc::DprcName>() {
        return show_container(ctx, dprc);
    }
    let inventory = ctx.inventory_around(std::slice::from_ref(&args.device))?;
    let dev = resolve_for_reading(ctx, &inventory, &args.device)?.clone();
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
        ctx.json_document(&doc)?;
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
    out.extend(driver_lines(
        dev.driver.as_deref(),
        dev.driver_override.as_deref(),
    ));
    if let Some(cdev) = vfioctl_host::iommufd::cdev_of(&ctx.root, &dev.address) {
        out.push(format!(
            "  VFIO device:      /dev/vfio/devices/{cdev} (iommufd)"
        ));
    }
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
        ctx.json_document(&Doc {
            version: JSON_VERSION,
            container: &obj,
            root_container: inv.is_root_container(dprc),
            objects: inv.children(dprc).collect(),
        })?;
        return Ok(Exit::Success);
    }
    ctx.line(format!("{dprc}  DPAA2 container"));
    for line in driver_lines(obj.driver.as_deref(), obj.driver_override.as_deref()) {
        ctx.line(line);
    }
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
        ctx.line(format!("  object:           {}", object_line(&child, " ")));
    }
    Ok(Exit::Success)
}

/// The `driver:` and `driver_override:` lines, alike for a PCI device and a DPAA2 container.
fn driver_lines(driver: Option<&str>, driver_override: Option<&str>) -> [String; 2] {
    [
        format!("  driver:           {}", driver.unwrap_or("(none)")),
        format!(
            "  driver_override:  {}",
            driver_override.unwrap_or("(unset)")
        ),
    ]
}
