//! `vm list`: every definition, and whether its file is valid.

use serde::Serialize;

use vfioctl_core::fslmc::DprcName;
use vfioctl_core::{PciAddress, VendorDevice};
use vfioctl_host::vms::VmFileError;

use super::{definitions_dir, list_all};
use crate::cli::VmListArgs;
use crate::cmd::inventory::JSON_VERSION;
use crate::context::Context;
use crate::error::{CliError, chain};
use crate::exit::Exit;

#[derive(Serialize)]
struct ListedDevice {
    address: PciAddress,
    id: VendorDevice,
    subsystem: Option<VendorDevice>,
}

#[derive(Serialize)]
struct ListedVm {
    name: String,
    file: String,
    valid: bool,
    error: Option<String>,
    boot: bool,
    description: Option<String>,
    user: Option<String>,
    devices: Vec<ListedDevice>,
    dprc: Vec<DprcName>,
    /// The `[[dpaa2]]` containers made for each run.
    dpaa2: Vec<vfioctl_core::vm::MadeContainer>,
    /// The `vf` entries, their PFs by address where the host has them.
    vfs: Vec<vfioctl_core::vm::vf::VmVf>,
    /// The `[[sriov]]` tables, likewise.
    sriov: Vec<vfioctl_core::vm::vf::VmSriov>,
    qemu: bool,
}

pub(super) fn list(ctx: &mut Context, args: &VmListArgs) -> Result<Exit, CliError> {
    let dir = definitions_dir(ctx, &args.config);
    let all = list_all(ctx, &args.config)?;
    let listed: Vec<ListedVm> = all
        .iter()
        .map(|entry| match entry {
            Ok(vm) => ListedVm {
                name: vm.name.to_string(),
                file: vm.path.display().to_string(),
                valid: true,
                error: None,
                boot: vm.definition.boot,
                description: vm.definition.description.clone(),
                user: vm.definition.user.clone(),
                devices: vm
                    .definition
                    .devices
                    .iter()
                    .map(|d| ListedDevice {
                        address: d.address,
                        id: d.id,
                        subsystem: d.subsystem,
                    })
                    .collect(),
                dprc: vm.definition.dprc.clone(),
                dpaa2: vm.definition.dpaa2.clone(),
                vfs: vm.definition.vfs.clone(),
                sriov: vm.definition.sriov.clone(),
                qemu: vm.definition.qemu.is_some(),
            },
            Err(e) => {
                let (name, file) = match e {
                    VmFileError::Invalid { path, .. }
                    | VmFileError::Read { path, .. }
                    | VmFileError::NotFound { path, .. }
                    | VmFileError::IgnoredName { path, .. } => (
                        path.file_stem()
                            .map_or(String::new(), |s| s.to_string_lossy().into_owned()),
                        path.display().to_string(),
                    ),
                    VmFileError::BadName(_) | VmFileError::NoConfigDir { .. } => {
                        (String::new(), String::new())
                    }
                };
                ListedVm {
                    name,
                    file,
                    valid: false,
                    error: Some(chain(e)),
                    boot: false,
                    description: None,
                    user: None,
                    devices: Vec::new(),
                    dprc: Vec::new(),
                    dpaa2: Vec::new(),
                    vfs: Vec::new(),
                    sriov: Vec::new(),
                    qemu: false,
                }
            }
        })
        .collect();
    let invalid = listed.iter().any(|v| !v.valid);
    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            dir: String,
            vms: &'a [ListedVm],
        }
        ctx.json_document(&Doc {
            version: JSON_VERSION,
            dir: dir.display().to_string(),
            vms: &listed,
        })?;
    } else if listed.is_empty() {
        ctx.line(format!("No VM definitions in {}.", dir.display()));
    } else {
        let width = listed
            .iter()
            .map(|v| v.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        ctx.line(format!("{:<width$}  BOOT  DEVICES", "NAME"));
        for v in &listed {
            let what = match &v.error {
                Some(e) => format!("invalid: {e}"),
                None => {
                    let mut items: Vec<String> = v
                        .devices
                        .iter()
                        .map(|d| format!("{} [{}]", d.address, d.id))
                        .collect();
                    items.extend(v.dprc.iter().map(ToString::to_string));
                    items.extend(
                        v.dpaa2
                            .iter()
                            .map(|m| format!("[[dpaa2]] {}", m.describe())),
                    );
                    items.extend(
                        v.sriov
                            .iter()
                            .map(|t| format!("[[sriov]] {} ({} VFs)", t.pf, t.count(&v.vfs))),
                    );
                    items.join(", ")
                }
            };
            let boot = if v.boot { "yes" } else { "no" };
            ctx.line(format!("{:<width$}  {boot:<4}  {what}", v.name));
        }
    }
    Ok(if invalid {
        Exit::Problems
    } else {
        Exit::Success
    })
}
