//! `vm check`: a definition against this host: identities, groups, the bind planner's refusals,
//! claims by other VMs, the user, and the QEMU binary.

use std::time::Duration;

use serde::Serialize;

use vfioctl_core::vm::{DeviceCheck, GroupCoverage, VmName, claims};
use vfioctl_host::ops::bind::HostState;
use vfioctl_host::ops::vm::{ContainerState, Finding, preflight};
use vfioctl_host::ops::vm_dpaa2::{made_for, owner, unmade, with_made};
use vfioctl_host::vms::{self, VFIO_FSL_MC, VmFile};

use super::{list_all, load, not_bound};
use crate::cli::VmNameArgs;
use crate::cmd::inventory::JSON_VERSION;
use crate::context::Context;
use crate::error::{CliError, chain};
use crate::exit::Exit;
use crate::term::Tone;

/// How long `<qemu> -device help` may take.
const QEMU_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Serialize)]
struct QemuReport {
    binary: String,
    path: Option<String>,
    /// `Some` when DPAA2 containers make vfio-fsl-mc necessary.
    vfio_fsl_mc: Option<bool>,
}

/// Containers listed or made for each run: either needs vfio-fsl-mc in QEMU.
fn has_containers(vm: &VmFile) -> bool {
    !vm.definition.dprc.is_empty() || !vm.definition.dpaa2.is_empty()
}

fn check_qemu(vm: &VmFile, problems: &mut Vec<Finding>) -> Option<QemuReport> {
    let qemu = vm.definition.qemu.as_ref()?;
    let binary = qemu.binary().to_owned();
    let Some(path) = vms::find_program(&binary) else {
        problems.push(Finding {
            text: format!("the QEMU binary {binary} is not installed (or not executable)"),
            hint: if !has_containers(vm) {
                "install it (Debian: apt install qemu-system), or set [qemu] binary".to_owned()
            } else {
                "DPAA2 containers need NXP's QEMU (vfio-fsl-mc is not in mainline QEMU): build \
                 it from NXP's qemu repository and set [qemu] binary to it"
                    .to_owned()
            },
        });
        return Some(QemuReport {
            binary,
            path: None,
            vfio_fsl_mc: None,
        });
    };
    let mut fsl = None;
    if has_containers(vm) {
        match vms::qemu_device_help(&path, QEMU_PROBE_TIMEOUT) {
            Ok(text) if text.contains(VFIO_FSL_MC) => fsl = Some(true),
            Ok(_) => {
                fsl = Some(false);
                problems.push(Finding {
                    text: format!(
                        "{} has no {VFIO_FSL_MC} device ('-device help' does not list it), so it \
                         cannot take DPAA2 containers",
                        path.display()
                    ),
                    hint: "mainline QEMU has no vfio-fsl-mc: use NXP's QEMU (its qemu repository, \
                           or the patch set in uVirt) and set [qemu] binary to it"
                        .to_owned(),
                });
            }
            Err(e) => problems.push(Finding {
                text: chain(&e),
                hint: "run it by hand to see why it does not answer".to_owned(),
            }),
        }
    }
    Some(QemuReport {
        binary,
        path: Some(path.display().to_string()),
        vfio_fsl_mc: fsl,
    })
}

pub(super) fn check(ctx: &mut Context, args: &VmNameArgs) -> Result<Exit, CliError> {
    let vm = load(ctx, &args.config, &args.name)?;
    // Other definitions that claim the same groups or containers.
    let others: Vec<VmFile> = list_all(ctx, &args.config)?
        .into_iter()
        .flatten()
        .filter(|o| o.name != vm.name)
        .collect();
    let host = crate::kernel::host(ctx);
    // Only the devices some definition names, their groups and bridges answer every check here;
    // an address the host lacks makes read_for read everything, as the whole host would show it.
    let names: Vec<String> = std::iter::once(&vm)
        .chain(&others)
        .flat_map(|v| v.definition.addresses())
        .map(|a| a.to_string())
        .collect();
    let state = HostState::read_for(&host, &names)?;
    let inventory = &state.pci;
    let pre = preflight(&host, &state, &vm)?;
    let mut problems = pre.refusals.clone();
    let mut warnings = pre.warnings.clone();
    for f in pre.unbound_containers() {
        warnings.push(format!("{} ({})", f.text, f.hint));
    }
    for other in &others {
        let pair = [
            (vm.name.clone(), &vm.definition),
            (other.name.clone(), &other.definition),
        ];
        for claim in claims(&pair, inventory) {
            let text = format!("{} is claimed by VM {} too", claim.what, other.name);
            if vm.definition.boot && other.definition.boot {
                problems.push(Finding {
                    text: format!("{text}, and both are bound at boot"),
                    hint: "set boot = false on one of them".to_owned(),
                });
            } else {
                warnings.push(format!("{text}: only one of them can run at a time"));
            }
        }
    }
    if let Some(user) = &vm.definition.user
        && let Err(e) = vfioctl_host::ops::lookup_user(&ctx.root, user)
    {
        problems.push(Finding {
            text: e.sentence(),
            hint: e.remedy().unwrap_or_default(),
        });
    }
    let qemu = check_qemu(&vm, &mut problems);
    if vm.definition.qemu.is_none() {
        warnings.push(
            "no [qemu] table: 'vfioctl run' and 'vfioctl vm qemu-args' need one (a VM started by \
             libvirt does not)"
                .to_owned(),
        );
    }
    let journal = vfioctl_host::journal::Journal::load(&ctx.root)
        .map_err(|e| CliError::from_op(&e.into()))?;
    let made = made_for(&journal, &owner(&vm));
    if ctx.json {
        /// One `[[dpaa2]]` entry: the container made for it, once made.
        #[derive(Serialize)]
        struct Made {
            container: Option<String>,
            link: Option<String>,
            root_container: String,
        }
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            name: &'a VmName,
            file: String,
            ok: bool,
            devices: &'a [DeviceCheck],
            groups: &'a [GroupCoverage],
            problems: &'a [Finding],
            warnings: &'a [String],
            qemu: Option<QemuReport>,
            dpaa2: Vec<Made>,
            sriov: &'a vfioctl_host::ops::vm_sriov::SriovPlan,
        }
        ctx.json_document(&Doc {
            version: JSON_VERSION,
            name: &vm.name,
            file: vm.path.display().to_string(),
            ok: problems.is_empty(),
            devices: &pre.checks,
            groups: &pre.coverage,
            problems: &problems,
            warnings: &warnings,
            qemu,
            dpaa2: vm
                .definition
                .dpaa2
                .iter()
                .enumerate()
                .map(|(i, entry)| Made {
                    container: made.get(i).map(ToString::to_string),
                    link: entry.link().map(|l| l.endpoint()),
                    root_container: entry.root_container.to_string(),
                })
                .collect(),
            sriov: &pre.sriov,
        })?;
    } else {
        ctx.line(format!("VM {} ({})", vm.name, vm.path.display()));
        for c in &pre.checks {
            let state = match c.drift_message() {
                Some(m) => format!("DRIFTED: {m}"),
                None => state_words(&c.state),
            };
            ctx.line(format!(
                "  {}  {}  {state}",
                c.device.address,
                c.device.expected()
            ));
        }
        for g in &pre.coverage {
            let unlisted = if g.unlisted.is_empty() {
                String::new()
            } else {
                format!("; not listed: {}", vfioctl_core::comma_list(&g.unlisted))
            };
            ctx.line(format!(
                "  IOMMU group {}: {}{unlisted}",
                g.group,
                vfioctl_core::comma_list(&g.listed)
            ));
        }
        for &d in &with_made(&vm, &made).definition.dprc {
            let state = match pre.container_state(d) {
                ContainerState::Missing => "missing",
                ContainerState::NotBound => "not bound",
                ContainerState::Bound => "bound",
            };
            let made = if made.iter().any(|m| m.id() == d.id()) {
                " (made for this VM)"
            } else {
                ""
            };
            ctx.line(format!("  {d}  {state}{made}"));
        }
        for entry in unmade(&vm, &journal) {
            ctx.line(format!(
                "  [[dpaa2]] {} in {}: made by 'vfioctl apply' or 'vfioctl run'",
                entry.describe(),
                entry.root_container
            ));
        }
        sriov_lines(ctx, &pre.sriov);
        if let Some(q) = &qemu {
            ctx.line(format!(
                "  QEMU: {}{}",
                q.path.as_deref().unwrap_or(&q.binary),
                match q.vfio_fsl_mc {
                    Some(true) => " (has vfio-fsl-mc)",
                    _ => "",
                }
            ));
        }
        for w in &warnings {
            ctx.tone_line(Tone::Warning, "warning:", &format!(" {w}"));
        }
        for p in &problems {
            ctx.tone_line(Tone::Refused, "problem:", &format!(" {}", p.text));
            ctx.line(format!("  fix: {}", p.hint));
        }
        if problems.is_empty() {
            ctx.tone_line(Tone::Good, &format!("VM {} is ready.", vm.name), "");
        } else {
            ctx.tone_line(
                Tone::Bad,
                &format!("VM {}: {} problem(s).", vm.name, problems.len()),
                "",
            );
        }
    }
    Ok(if pre.refused_by_plan {
        Exit::Refused
    } else if problems.is_empty() {
        Exit::Success
    } else {
        Exit::Problems
    })
}

/// What the VM's `[[sriov]]` tables and VF MACs would change, as `apply` and `run` do it.
fn sriov_lines(ctx: &mut Context, plan: &vfioctl_host::ops::vm_sriov::SriovPlan) {
    for p in &plan.pfs {
        let steps: Vec<String> = p
            .steps
            .iter()
            .filter_map(vfioctl_core::plan::Step::describe)
            .collect();
        if steps.is_empty() {
            ctx.line(format!(
                "  [[sriov]] {}: has {} VFs, at least the {} it needs",
                p.pf, p.numvfs, p.count
            ));
        } else {
            ctx.line(format!(
                "  [[sriov]] {}: has {} VFs; 'vfioctl apply' and 'vfioctl run' make {}:",
                p.pf, p.numvfs, p.count
            ));
            for step in steps {
                ctx.line(format!("    {step}"));
            }
        }
    }
    for l in plan.links.iter() {
        let change = l.step.describe().unwrap_or_default();
        let vf =
            l.vf.map_or_else(|| "to be made".to_owned(), |a| a.to_string());
        ctx.line(format!(
            "  VF {} of {} ({vf}): 'vfioctl apply' and 'vfioctl run' set {change}",
            l.index, l.pf
        ));
    }
}

fn state_words(state: &vfioctl_core::vm::DeviceState) -> String {
    use vfioctl_core::vm::DeviceState as S;
    match state {
        S::Bound => "bound to vfio-pci".to_owned(),
        S::NotBound { driver } => not_bound(driver.as_deref()),
        S::Drifted { .. } => "drifted".to_owned(),
        S::Missing { .. } => "missing".to_owned(),
    }
}
