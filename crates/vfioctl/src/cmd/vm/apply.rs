//! `apply`: bind the devices of every boot VM (idempotent; `vfioctl-apply.service` runs it).

use serde::Serialize;

use vfioctl_host::ops::vm::{AppliedVm, ApplyRequest, VmOutcome};

use super::definitions_dir;
use crate::cli::ApplyArgs;
use crate::cmd::bind::{require_privileges, timeouts};
use crate::cmd::inventory::JSON_VERSION;
use crate::context::Context;
use crate::error::CliError;
use crate::exit::Exit;
use crate::term::Tone;

/// `vfioctl apply`.
pub(crate) fn apply(ctx: &mut Context, args: &ApplyArgs) -> Result<Exit, CliError> {
    require_privileges(ctx, args.dry_run)?;
    let dir = definitions_dir(ctx, &args.config);
    let request = ApplyRequest {
        dir: dir.clone(),
        dry_run: args.dry_run,
        timeouts: timeouts(args.timeout),
    };
    let report = vfioctl_host::ops::vm::apply(&crate::kernel::host(ctx), &request)?;
    let any = |outcome| report.vms.iter().any(|v| v.result == outcome);
    let exit = if any(VmOutcome::Failed) {
        Exit::Failed
    } else if any(VmOutcome::Refused) {
        Exit::Refused
    } else if any(VmOutcome::Invalid) {
        Exit::Usage
    } else {
        Exit::Success
    };
    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            operation: &'static str,
            dry_run: bool,
            vms: &'a [AppliedVm],
        }
        ctx.json_document(&Doc {
            version: JSON_VERSION,
            operation: "apply",
            dry_run: args.dry_run,
            vms: &report.vms,
        })?;
        return Ok(exit);
    }
    if report.vms.is_empty() {
        ctx.line(format!(
            "No VM is marked boot = true in {}; nothing to do.",
            dir.display()
        ));
    }
    for r in &report.vms {
        let devices = vfioctl_core::comma_list(&r.devices);
        let mut drivers: Vec<String> = r
            .devices
            .iter()
            .map(|d| d.bus().vfio_driver().to_string())
            .collect();
        drivers.dedup();
        let drivers = drivers.join(" and ");
        let what = match r.result {
            VmOutcome::Bound => format!("bound {devices} to {drivers}"),
            VmOutcome::Planned if r.devices.is_empty() && !r.restool.is_empty() => {
                "would make its DPAA2 containers, then bind them to vfio-fsl-mc".to_owned()
            }
            VmOutcome::Planned if r.devices.is_empty() => {
                "would set up its VFs, then bind those not on vfio-pci yet".to_owned()
            }
            VmOutcome::Planned if !r.sriov.is_empty() && r.restool.is_empty() => {
                format!("would set up its VFs, then bind them and {devices} to {drivers}")
            }
            VmOutcome::Planned if !r.restool.is_empty() => format!(
                "would make its DPAA2 containers, then bind them and {devices} to {drivers}"
            ),
            VmOutcome::Planned => format!("would bind {devices} to {drivers}"),
            VmOutcome::AlreadyBound => "already bound; nothing to do".to_owned(),
            VmOutcome::Refused => "refused".to_owned(),
            VmOutcome::Failed => "failed".to_owned(),
            VmOutcome::Invalid => "invalid".to_owned(),
        };
        let tone = match r.result {
            VmOutcome::Bound | VmOutcome::Planned | VmOutcome::AlreadyBound => Tone::Good,
            VmOutcome::Refused | VmOutcome::Failed | VmOutcome::Invalid => Tone::Bad,
        };
        ctx.line_parts(&[(None, &format!("{}: ", r.name)), (Some(tone), &what)]);
        for argv in &r.restool {
            ctx.line(format!("  would run: restool {}", argv.join(" ")));
        }
        let wrote = if args.dry_run { "would write" } else { "wrote" };
        for change in &r.sriov {
            ctx.line(format!("  {wrote}: {change}"));
        }
        for p in &r.problems {
            ctx.tone_line(Tone::Refused, "  problem:", &format!(" {}", p.text));
            ctx.line(format!("    fix: {}", p.hint));
        }
        for w in &r.warnings {
            ctx.note(format!("{}: {w}", r.name));
        }
    }
    if args.dry_run {
        ctx.line("Dry run: nothing was changed.");
    }
    match exit {
        Exit::Success => Ok(exit),
        // Scripts and the unit's journal see one sentence on stderr, as for every other command.
        _ => {
            let failed: Vec<&str> = report
                .vms
                .iter()
                .filter(|v| {
                    !matches!(
                        v.result,
                        VmOutcome::Bound | VmOutcome::Planned | VmOutcome::AlreadyBound
                    )
                })
                .map(|v| v.name.as_str())
                .collect();
            Err(CliError::new(
                exit,
                format!(
                    "{} of {} VM(s) did not get their devices: {}",
                    failed.len(),
                    report.vms.len(),
                    failed.join(", ")
                ),
            )
            .hint("see each VM's problem and fix above"))
        }
    }
}
