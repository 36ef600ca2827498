//! DPAA2 containers: binding `dprc.N` to vfio-fsl-mc.

use vfioctl_core::fslmc::{DprcName, plan_container_bind};
use vfioctl_core::plan::Step;
use vfioctl_host::fslmc::{read_fslmc, vfio_fslmc_loaded};
use vfioctl_host::journal::{Journal, Lock};
use vfioctl_host::usage::HostUsage;

use crate::cli::BindArgs;
use crate::cmd::bind::{LOCK_WAIT, apply_error, lock_error, timeouts};
use crate::context::Context;
use crate::error::CliError;
use crate::exit::Exit;

/// Binds one container.
pub fn bind_container(
    ctx: &mut Context,
    args: &BindArgs,
    dprc: DprcName,
) -> Result<Exit, CliError> {
    let _lock = if args.dry_run {
        None
    } else {
        Some(Lock::acquire(&ctx.root, LOCK_WAIT).map_err(lock_error)?)
    };
    let inventory = read_fslmc(&ctx.root)?;
    if inventory.is_empty() {
        return Err(
            CliError::new(Exit::Usage, format!("{dprc}: this host has no fsl-mc bus"))
                .hint("DPAA2 containers exist on NXP Layerscape hosts (LS1088A, LS2088A, LX2160A)"),
        );
    }
    let usage = HostUsage::read(&ctx.root)?;
    let net_uses = vfioctl_host::fslmc::fslmc_host_uses(&ctx.root, &inventory, &usage);
    let plan = plan_container_bind(&inventory, dprc, &net_uses, vfio_fslmc_loaded(&ctx.root))
        .map_err(|e| {
            CliError::new(Exit::Usage, e.to_string())
                .hint("run 'vfioctl list' to see the containers")
        })?;

    ctx.line(format!(
        "{}: {} -> vfio-fsl-mc{}",
        plan.container,
        plan.current_driver.as_deref().unwrap_or("(no driver)"),
        if plan.already_bound { " (already)" } else { "" }
    ));
    for (child, driver) in &plan.children {
        ctx.line(format!(
            "  {child}  {}",
            driver.as_deref().unwrap_or("(no driver)")
        ));
    }
    if args.dry_run || ctx.verbose > 0 {
        for step in &plan.steps {
            match step {
                Step::LoadModule { module } => ctx.line(format!("  modprobe {module}")),
                Step::Write(w)
                | Step::UnbindObject { write: w, .. }
                | Step::Unbind { write: w, .. } => {
                    ctx.line(format!("  {} <- {}", w.path, w.value));
                }
                _ => {}
            }
        }
    }
    for w in &plan.warnings {
        ctx.note(w.clone());
    }
    let blocking: Vec<_> = plan
        .refusals
        .iter()
        .filter(|r| !(args.force && r.overridable))
        .collect();
    for r in &plan.refusals {
        let status = if args.force && r.overridable {
            "overridden by --force"
        } else {
            "refused"
        };
        ctx.line(format!("{status}: {}", r.text));
    }
    if let Some(first) = blocking.first() {
        return Err(
            CliError::new(Exit::Refused, format!("refused: {}", first.text))
                .hint(first.remedy.clone()),
        );
    }
    if plan.already_bound {
        ctx.line("Nothing to do: the container is already on vfio-fsl-mc.");
        return Ok(Exit::Success);
    }
    if args.dry_run {
        ctx.line("Dry run: nothing was changed.");
        return Ok(Exit::Success);
    }
    let executor = crate::kernel::executor(ctx, timeouts(args.timeout));
    let mut journal = Journal::load(&ctx.root).map_err(lock_error)?;
    executor
        .bind_container(&plan, &mut journal, args.owner.as_deref())
        .map_err(apply_error)?;
    // The objects appear once vfio-fsl-mc scans the container; anything a host driver took
    // instead will not reach the VM.
    if let Ok(after) = read_fslmc(&ctx.root) {
        for child in after.children(dprc) {
            if child
                .driver
                .as_deref()
                .is_some_and(|d| d != vfioctl_core::fslmc::VFIO_FSL_MC)
            {
                ctx.note(format!(
                    "{} is on {}, not vfio-fsl-mc: the VM will not get it",
                    child.name,
                    child.driver.as_deref().unwrap_or_default()
                ));
            }
        }
    }
    ctx.line(format!(
        "Bound {dprc} to vfio-fsl-mc. Give it to QEMU with: -device vfio-fsl-mc,host={dprc}"
    ));
    Ok(Exit::Success)
}
