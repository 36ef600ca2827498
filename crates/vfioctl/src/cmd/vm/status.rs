//! `status`: every VM's devices compared with the host: bound, not bound, drifted, missing.

use serde::Serialize;

use vfioctl_core::fslmc::DprcName;
use vfioctl_core::plan::VFIO_PCI;
use vfioctl_core::vm::{check_devices, group_coverage};
use vfioctl_core::{PciAddress, VendorDevice};
use vfioctl_host::ops::vm_dpaa2::{made_for, owner};
use vfioctl_host::vms::{self, DprcState, VFIO_FSL_MC, VmFileError};

use super::{definitions_dir, list_all, not_bound};
use crate::cli::StatusArgs;
use crate::cmd::inventory::JSON_VERSION;
use crate::context::Context;
use crate::error::{CliError, chain};
use crate::exit::Exit;

#[derive(Serialize)]
struct StatusDevice {
    address: PciAddress,
    /// In the definition, or an unlisted member of one of its groups.
    listed: bool,
    expected_id: Option<VendorDevice>,
    expected_subsystem: Option<VendorDevice>,
    found_id: Option<VendorDevice>,
    found_subsystem: Option<VendorDevice>,
    driver: Option<String>,
    state: &'static str,
    detail: Option<String>,
}

#[derive(Serialize)]
struct StatusDprc {
    dprc: DprcName,
    driver: Option<String>,
    state: &'static str,
}

/// One `[[dpaa2]]` entry: the container made for it, if one is.
#[derive(Serialize)]
struct StatusMade {
    container: Option<String>,
    link: Option<String>,
    driver: Option<String>,
    /// `bound`, `not_bound`, `missing` (made, then gone) or `not_made`.
    state: &'static str,
}

#[derive(Serialize)]
struct StatusVm {
    name: String,
    boot: bool,
    valid: bool,
    error: Option<String>,
    /// Everything is as configured (all bound, for a boot VM).
    as_configured: bool,
    devices: Vec<StatusDevice>,
    dprc: Vec<StatusDprc>,
    dpaa2: Vec<StatusMade>,
    /// Its `vf` entries: made or not, bound or not, their MACs.
    vfs: Vec<vfioctl_host::ops::vm_sriov::VfStatus>,
}

/// `vfioctl status`.
pub(crate) fn status(ctx: &mut Context, args: &StatusArgs) -> Result<Exit, CliError> {
    let all = list_all(ctx, &args.config)?;
    // Every answer is about a device some definition names, its group or its bridges.
    let names: Vec<String> = all
        .iter()
        .flatten()
        .flat_map(|vm| vm.definition.addresses())
        .map(|a| a.to_string())
        .collect();
    let inventory = ctx.inventory_around(&names)?;
    let journal = vfioctl_host::journal::Journal::load(&ctx.root)
        .map_err(|e| CliError::from_op(&e.into()))?;
    let host = crate::kernel::host(ctx);
    let mut vms_status = Vec::new();
    for entry in &all {
        let vm = match entry {
            Ok(vm) => vm,
            Err(e) => {
                vms_status.push(StatusVm {
                    name: match e {
                        VmFileError::Invalid { path, .. }
                        | VmFileError::Read { path, .. }
                        | VmFileError::IgnoredName { path, .. } => path
                            .file_stem()
                            .map_or(String::new(), |s| s.to_string_lossy().into_owned()),
                        _ => String::new(),
                    },
                    boot: false,
                    valid: false,
                    error: Some(chain(e)),
                    as_configured: false,
                    devices: Vec::new(),
                    dprc: Vec::new(),
                    dpaa2: Vec::new(),
                    vfs: Vec::new(),
                });
                continue;
            }
        };
        let mut devices: Vec<StatusDevice> = check_devices(&vm.definition, &inventory)
            .into_iter()
            .map(|c| {
                let found = inventory.get(&c.device.address);
                StatusDevice {
                    address: c.device.address,
                    listed: true,
                    expected_id: Some(c.device.id),
                    expected_subsystem: c.device.subsystem,
                    found_id: found.map(|d| d.id),
                    found_subsystem: found.and_then(|d| d.subsystem),
                    driver: found.and_then(|d| d.driver.clone()),
                    state: c.state.word(),
                    detail: c.drift_message(),
                }
            })
            .collect();
        for g in group_coverage(&vm.definition, &inventory) {
            for address in g.unlisted {
                let found = inventory.get(&address);
                let driver = found.and_then(|d| d.driver.clone());
                devices.push(StatusDevice {
                    address,
                    listed: false,
                    expected_id: None,
                    expected_subsystem: None,
                    found_id: found.map(|d| d.id),
                    found_subsystem: found.and_then(|d| d.subsystem),
                    state: if driver.as_deref() == Some(VFIO_PCI) {
                        "bound"
                    } else {
                        "not_bound"
                    },
                    driver,
                    detail: Some(format!("shares IOMMU group {} (not listed)", g.group)),
                });
            }
        }
        let mut dprc = Vec::new();
        for &d in &vm.definition.dprc {
            let (driver, state) = match vms::dprc_state(&ctx.root, d)? {
                DprcState::Missing => (None, "missing"),
                DprcState::Present(driver) => {
                    let bound = driver.as_deref() == Some(VFIO_FSL_MC);
                    (driver, if bound { "bound" } else { "not_bound" })
                }
            };
            dprc.push(StatusDprc {
                dprc: d,
                driver,
                state,
            });
        }
        let made = made_for(&journal, &owner(vm));
        let mut dpaa2 = Vec::new();
        for (i, entry) in vm.definition.dpaa2.iter().enumerate() {
            let container = made.get(i);
            let (driver, state) = match container {
                None => (None, "not_made"),
                Some(c) => match vms::dprc_state(&ctx.root, DprcName::new(c.id()))? {
                    DprcState::Missing => (None, "missing"),
                    DprcState::Present(driver) => {
                        let bound = driver.as_deref() == Some(VFIO_FSL_MC);
                        (driver, if bound { "bound" } else { "not_bound" })
                    }
                },
            };
            dpaa2.push(StatusMade {
                container: container.map(ToString::to_string),
                link: entry.link().map(|l| l.endpoint()),
                driver,
                state,
            });
        }
        let vfs = vfioctl_host::ops::vm_sriov::status(&host, vm);
        let all_bound = vfs.iter().all(|v| v.state == "bound")
            && devices.iter().all(|d| d.state == "bound")
            && dprc.iter().all(|d| d.state == "bound")
            && dpaa2.iter().all(|d| d.state == "bound");
        let identities_ok = devices
            .iter()
            .all(|d| d.state == "bound" || d.state == "not_bound")
            && dprc.iter().all(|d| d.state != "missing")
            && dpaa2.iter().all(|d| d.state != "missing");
        vms_status.push(StatusVm {
            name: vm.name.to_string(),
            boot: vm.definition.boot,
            valid: true,
            error: None,
            as_configured: if vm.definition.boot {
                all_bound
            } else {
                identities_ok
            },
            devices,
            dprc,
            dpaa2,
            vfs,
        });
    }
    let problems = vms_status
        .iter()
        .any(|v| !v.valid || (v.boot && !v.as_configured));
    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            ok: bool,
            vms: &'a [StatusVm],
        }
        ctx.json_document(&Doc {
            version: JSON_VERSION,
            ok: !problems,
            vms: &vms_status,
        })?;
    } else {
        if vms_status.is_empty() {
            ctx.line(format!(
                "No VM definitions in {}.",
                definitions_dir(ctx, &args.config).display()
            ));
        }
        for v in &vms_status {
            if let Some(e) = &v.error {
                ctx.line(format!("VM {}: invalid: {e}", v.name));
                continue;
            }
            let mark = match (v.boot, v.as_configured) {
                (true, true) => "boot, as configured",
                (true, false) => "boot, NOT as configured",
                (false, _) => "not bound at boot",
            };
            ctx.line(format!("VM {} ({mark})", v.name));
            for d in &v.devices {
                let id = d.found_id.map_or("----:----".to_owned(), |i| i.to_string());
                let state = match d.state {
                    "not_bound" => not_bound(d.driver.as_deref()),
                    other => other.to_owned(),
                };
                let detail = d
                    .detail
                    .as_deref()
                    .map_or(String::new(), |t| format!("  {t}"));
                ctx.line(format!("  {}  {id}  {state}{detail}", d.address));
            }
            for d in &v.dprc {
                ctx.line(format!("  {}  {}", d.dprc, d.state.replace('_', " ")));
            }
            for vf in &v.vfs {
                let at = vf
                    .address
                    .map_or_else(|| "not made".to_owned(), |a| a.to_string());
                let state = match vf.state {
                    "not_bound" => not_bound(vf.driver.as_deref()),
                    "not_made" => "('vfioctl apply' or 'vfioctl run' makes it)".to_owned(),
                    other => other.to_owned(),
                };
                let mac = match (vf.mac, vf.link_mac) {
                    (Some(want), Some(now)) if want == now => format!(", mac {now}"),
                    (Some(want), Some(now)) => format!(", mac {now} (the definition's: {want})"),
                    (Some(want), None) => format!(", mac to be {want}"),
                    (None, _) => String::new(),
                };
                ctx.line(format!(
                    "  vf {} of {}  {at}  {state}{mac}",
                    vf.index, vf.pf
                ));
            }
            for d in &v.dpaa2 {
                let link = d
                    .link
                    .as_deref()
                    .map_or(String::new(), |l| format!(", connected to {l}"));
                let (name, made) = match d.container.as_deref() {
                    Some(c) => (c, "made for [[dpaa2]]"),
                    None => ("[[dpaa2]]", "a container"),
                };
                ctx.line(format!(
                    "  {name}  {} ({made}{link})",
                    d.state.replace('_', " ")
                ));
            }
        }
    }
    Ok(if problems {
        Exit::Problems
    } else {
        Exit::Success
    })
}
