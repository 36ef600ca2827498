//! `bind`, `restore` and `recover`: parse, call the library's use case, render its report.

use std::time::Duration;

use serde::Serialize;

use vfioctl_core::plan::{BindOptions, Disposition, Plan, PlannedDevice, Refusal, Step, Write};
use vfioctl_core::{Bus, DeviceRef, DriverName, GroupId, Owner, PciAddress};
use vfioctl_host::apply::Timeouts;
use vfioctl_host::ops::bind::{BindOutcome, BindReport, BindRequest};
use vfioctl_host::ops::restore::{
    RestoreReport, RestoreRequest, RestoreResult, RestoreTargets, Source,
};

use crate::cli::{BindArgs, RecoverArgs, RestoreArgs};
use crate::cmd::inventory::JSON_VERSION;
use crate::context::Context;
use crate::error::CliError;
use crate::exit::Exit;
use crate::term::Tone;

/// Refuses to change the real host without root, before anything is read or written.
pub(crate) fn require_privileges(ctx: &Context, dry_run: bool) -> Result<(), CliError> {
    if dry_run || !ctx.root.is_real_root() {
        return Ok(());
    }
    if rustix::process::geteuid().is_root() {
        return Ok(());
    }
    Err(CliError::new(
        Exit::Privileges,
        "changing device drivers needs root; nothing was changed",
    )
    .hint("run it with sudo, or add --dry-run to see the plan"))
}

/// The timeouts of a command with `--timeout SECONDS` for unbinds.
pub(crate) fn timeouts(unbind_secs: Option<u64>) -> Timeouts {
    let mut t = Timeouts::default();
    if let Some(secs) = unbind_secs {
        t.unbind = Duration::from_secs(secs);
    }
    t
}

/// One device of a plan document.
#[derive(Serialize)]
struct PlanDevice<'a> {
    device: &'a DeviceRef,
    bus: Bus,
    /// Kept for scripts written against PCI-only documents.
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<PciAddress>,
    iommu_group: Option<GroupId>,
    current_driver: Option<&'a DriverName>,
    target_driver: Option<&'a DriverName>,
    disposition: Disposition,
    why: &'a str,
}

/// The `bind --json` document.
#[derive(Serialize)]
struct PlanDoc<'a> {
    version: u32,
    operation: &'static str,
    dry_run: bool,
    devices: Vec<PlanDevice<'a>>,
    writes: Vec<Write>,
    refusals: &'a [Refusal],
    warnings: &'a [String],
    groups: &'a [GroupId],
    result: &'static str,
    error: Option<String>,
}

fn plan_devices(plan: &Plan) -> Vec<PlanDevice<'_>> {
    plan.devices
        .iter()
        .map(|d| PlanDevice {
            device: &d.device,
            bus: d.device.bus(),
            address: d.device.pci(),
            iommu_group: d.iommu_group,
            current_driver: d.current_driver.as_ref(),
            target_driver: d.target_driver.as_ref(),
            disposition: d.disposition,
            why: &d.why,
        })
        .collect()
}

/// The plan as people read it: each group with its devices, each container with its objects,
/// and (dry run or -v) the writes in order.
pub(crate) fn render_plan(ctx: &mut Context, plan: &Plan, dry_run: bool) {
    if ctx.quiet && !dry_run {
        return;
    }
    let pci: Vec<&PlannedDevice> = plan
        .devices
        .iter()
        .filter(|d| d.device.bus() == Bus::Pci)
        .collect();
    for group in &plan.groups {
        let members: Vec<&&PlannedDevice> = pci
            .iter()
            .filter(|d| d.iommu_group == Some(*group))
            .collect();
        if members.is_empty() {
            continue;
        }
        ctx.line(format!("IOMMU group {group}:"));
        for d in members {
            render_device(ctx, d);
        }
    }
    for d in pci.iter().filter(|d| d.iommu_group.is_none()) {
        ctx.line("No IOMMU group:");
        render_device(ctx, d);
    }
    for d in plan.devices.iter().filter(|d| d.device.bus() == Bus::FslMc) {
        if d.disposition == Disposition::InContainer {
            ctx.line(format!(
                "  {}  {}",
                d.device,
                d.current_driver
                    .as_ref()
                    .map_or("(no driver)", DriverName::as_str)
            ));
        } else {
            let group = d
                .iommu_group
                .map_or(String::new(), |g| format!(" (IOMMU group {g})"));
            ctx.line(format!(
                "{}: {} -> vfio-fsl-mc{}{group}",
                d.device,
                d.current_driver
                    .as_ref()
                    .map_or("(no driver)", DriverName::as_str),
                if d.disposition == Disposition::AlreadyBound {
                    " (already)"
                } else {
                    ""
                }
            ));
        }
    }
    if dry_run || ctx.verbose > 0 {
        if plan.steps.iter().any(|s| s.write().is_some()) {
            ctx.line("Writes, in order:");
        }
        for line in plan.steps.iter().filter_map(Step::describe) {
            ctx.line(format!("  {line}"));
        }
    }
}

fn render_device(ctx: &mut Context, d: &PlannedDevice) {
    let from = d
        .current_driver
        .as_ref()
        .map_or("(no driver)", DriverName::as_str);
    let action = match d.disposition {
        Disposition::Bind => format!("{from} -> vfio-pci"),
        Disposition::AlreadyBound => "already on vfio-pci".to_owned(),
        Disposition::StaysOnPortDriver => format!("{from} (stays)"),
        Disposition::LeftOut => format!("{from} (left out)"),
        Disposition::InContainer => format!("{from} (with its container)"),
    };
    ctx.line(format!("  {}  {action}  [{}]", d.device, d.why));
}

/// Prints the refusals `--force` overrode, with the plan, and the warnings. The refusals that
/// stand are the error the command ends with (see [`refused_error`]): printed once, on standard
/// error.
pub(crate) fn render_refusals(ctx: &mut Context, plan: &Plan, force: bool) {
    for r in plan.refusals.iter().filter(|r| force && r.overridable) {
        ctx.tone_line(
            Tone::Warning,
            "overridden by --force:",
            &format!(" {}", r.text),
        );
    }
    for w in &plan.warnings {
        ctx.note(w.clone());
    }
}

/// The error a refused plan ends with: every refusal that stands, each on its own line, and the
/// remedy of the first. `takes_force`: the command has a `--force` to name in the hint (the hooks
/// have none).
pub(crate) fn refused_error(plan: &Plan, force: bool, takes_force: bool) -> CliError {
    let blocking = plan.blocking_refusals(force);
    let Some(first) = blocking.first() else {
        return CliError::new(Exit::Refused, "refused");
    };
    CliError::new(Exit::Refused, format!("refused: {}", first.text))
        .also(blocking[1..].iter().map(|r| format!("refused: {}", r.text)))
        .hint(if takes_force {
            crate::cmd::select::remedy_with_force(first)
        } else {
            first.remedy.clone()
        })
}

/// `vfioctl bind`: PCI functions and DPAA2 containers, in one plan and one transaction.
pub(crate) fn bind(ctx: &mut Context, args: &BindArgs) -> Result<Exit, CliError> {
    require_privileges(ctx, args.dry_run)?;
    let user = args
        .user
        .as_deref()
        .map(|u| vfioctl_host::ops::lookup_user(&ctx.root, u))
        .transpose()?;
    let request = BindRequest {
        names: args.devices.clone(),
        options: BindOptions {
            only: args.only,
            force: args.force,
        },
        dry_run: args.dry_run,
        owner: args
            .owner
            .as_deref()
            .map_or(Owner::Manual, |o| o.parse().unwrap_or(Owner::Manual)),
        user,
        timeouts: timeouts(args.timeout),
    };
    let report = vfioctl_host::ops::bind::bind(&crate::kernel::host(ctx), &request)?;
    render_bind(ctx, &report, args.dry_run, true)
}

/// Renders a bind report and turns its outcome into the exit code.
pub(crate) fn render_bind(
    ctx: &mut Context,
    report: &BindReport,
    dry_run: bool,
    takes_force: bool,
) -> Result<Exit, CliError> {
    let plan = &report.plan;
    report.framebuffer.iter().for_each(|w| ctx.note(w.clone()));
    let error = match &report.outcome {
        BindOutcome::Refused => Some(refused_error(plan, report.forced, takes_force)),
        BindOutcome::Failed(e) => Some(CliError::from_op(e)),
        BindOutcome::NothingToDo | BindOutcome::Planned | BindOutcome::Bound => None,
    };
    if ctx.json {
        let doc = PlanDoc {
            version: JSON_VERSION,
            operation: "bind",
            dry_run,
            devices: plan_devices(plan),
            writes: plan.writes(),
            refusals: &plan.refusals,
            warnings: &plan.warnings,
            groups: &plan.groups,
            result: match &report.outcome {
                BindOutcome::Refused => "refused",
                BindOutcome::Failed(_) => "failed",
                BindOutcome::NothingToDo => "nothing_to_do",
                BindOutcome::Planned => "planned",
                BindOutcome::Bound => "bound",
            },
            error: error.as_ref().map(|e| e.message.clone()),
        };
        ctx.json_document(&doc)?;
    } else {
        render_plan(ctx, plan, dry_run);
        render_refusals(ctx, plan, report.forced);
        match &report.outcome {
            BindOutcome::NothingToDo => {
                ctx.line("Nothing to do: every device is already on its vfio driver.");
            }
            BindOutcome::Planned => ctx.line("Dry run: nothing was changed."),
            BindOutcome::Bound => render_bound(ctx, plan),
            BindOutcome::Refused | BindOutcome::Failed(_) => {}
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(Exit::Success),
    }
}

fn render_bound(ctx: &mut Context, plan: &Plan) {
    let bound: Vec<&PlannedDevice> = plan.to_bind().collect();
    let pci: Vec<String> = bound
        .iter()
        .filter(|d| d.device.bus() == Bus::Pci)
        .map(|d| d.device.to_string())
        .collect();
    if !pci.is_empty() {
        ctx.line(format!("Bound {} to vfio-pci.", pci.join(", ")));
    }
    for d in bound.iter().filter(|d| d.device.bus() == Bus::FslMc) {
        ctx.line(format!(
            "Bound {0} to vfio-fsl-mc. Give it to QEMU with: -device vfio-fsl-mc,host={0}",
            d.device
        ));
    }
    for g in plan.vfio_groups() {
        ctx.line(format!("/dev/vfio/{g} is ready."));
    }
    // On a kernel with iommufd each device also has its own file (QEMU's iommufd backend).
    for d in bound.iter().filter_map(|d| d.device.pci()) {
        if let Some(cdev) = vfioctl_host::iommufd::cdev_of(&ctx.root, &d) {
            ctx.line(format!(
                "/dev/vfio/devices/{cdev} ({d}) is ready for iommufd."
            ));
        }
    }
    let all: Vec<String> = bound.iter().map(|d| d.device.to_string()).collect();
    ctx.line(format!(
        "Give them back with: vfioctl restore {}",
        all.join(" ")
    ));
}

#[derive(Serialize)]
struct RestoreDevice<'a> {
    device: &'a DeviceRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<PciAddress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<String>,
    from_driver: Option<&'a DriverName>,
    to_driver: Option<&'a DriverName>,
    source: &'static str,
    result: String,
}

fn source_word(source: Source) -> &'static str {
    match source {
        Source::Journal => "journal",
        Source::Default => "default",
        Source::None => "none",
    }
}

/// `vfioctl restore`.
pub(crate) fn restore(ctx: &mut Context, args: &RestoreArgs) -> Result<Exit, CliError> {
    require_privileges(ctx, args.dry_run)?;
    if let Some(name) = &args.vm {
        let name: vfioctl_core::vm::VmName = name.parse().map_err(|e| {
            CliError::new(Exit::Usage, format!("{e}"))
                .hint("name a VM by its definition's file stem ('vfioctl vm list')")
        })?;
        let request = RestoreRequest {
            targets: RestoreTargets::Owned(Vec::new()),
            on_behalf: Some(vfioctl_core::Owner::Vm(name.to_string())),
            force: args.force,
            dry_run: args.dry_run,
            timeouts: timeouts(args.timeout),
        };
        let report = vfioctl_host::ops::restore::restore(&crate::kernel::host(ctx), &request)?;
        return render_restore(ctx, &report, args.dry_run);
    }
    if !args.all && args.devices.is_empty() {
        return Err(CliError::new(
            Exit::Usage,
            "name the devices to restore, or pass --all or --vm NAME",
        )
        .hint("'vfioctl restore --all' gives back every device vfioctl bound"));
    }
    let targets = if args.all {
        RestoreTargets::All
    } else {
        RestoreTargets::Named(args.devices.clone())
    };
    run_restore(ctx, targets, args.dry_run, args.force, args.timeout)
}

/// `vfioctl recover`: give back everything the journal holds.
pub(crate) fn recover(ctx: &mut Context, args: &RecoverArgs) -> Result<Exit, CliError> {
    require_privileges(ctx, args.dry_run)?;
    run_restore(
        ctx,
        RestoreTargets::All,
        args.dry_run,
        args.force,
        args.timeout,
    )
}

fn run_restore(
    ctx: &mut Context,
    targets: RestoreTargets,
    dry_run: bool,
    force: bool,
    timeout: Option<u64>,
) -> Result<Exit, CliError> {
    let request = RestoreRequest {
        targets,
        on_behalf: None,
        force,
        dry_run,
        timeouts: timeouts(timeout),
    };
    let report = vfioctl_host::ops::restore::restore(&crate::kernel::host(ctx), &request)?;
    render_restore(ctx, &report, dry_run)
}

/// Renders a restore report and turns it into the exit code.
pub(crate) fn render_restore(
    ctx: &mut Context,
    report: &RestoreReport,
    dry_run: bool,
) -> Result<Exit, CliError> {
    let failed = report.failed();
    for why in report.left() {
        ctx.note(why.to_owned());
    }
    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            operation: &'static str,
            dry_run: bool,
            devices: Vec<RestoreDevice<'a>>,
            destroyed: Vec<String>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            sriov: Vec<serde_json::Value>,
            result: &'static str,
        }
        let devices = report
            .devices
            .iter()
            .map(|d| RestoreDevice {
                device: &d.device,
                address: d.device.pci(),
                object: d.device.fslmc().map(ToString::to_string),
                from_driver: d.from_driver.as_ref(),
                to_driver: d.to_driver.as_ref(),
                source: source_word(d.source),
                result: d.result.describe(),
            })
            .collect();
        let sriov = report
            .sriov
            .iter()
            .map(|g| {
                serde_json::json!({
                    "change": g.given.describe(),
                    "ok": g.result.is_ok(),
                    "result": match &g.result { Ok(t) | Err(t) => t },
                })
            })
            .collect();
        ctx.json_document(&Doc {
            version: JSON_VERSION,
            operation: "restore",
            dry_run,
            devices,
            destroyed: report.destroyed.iter().map(ToString::to_string).collect(),
            sriov,
            result: if failed {
                "failed"
            } else if report.refused() {
                "refused"
            } else if report.devices.is_empty()
                && report.destroyed.is_empty()
                && report.sriov.is_empty()
            {
                "nothing_to_do"
            } else {
                "restored"
            },
        })?;
    } else {
        if report.devices.is_empty() && report.destroyed.is_empty() && report.sriov.is_empty() {
            ctx.line("Nothing to restore: the journal is empty.");
        }
        for d in report
            .devices
            .iter()
            .filter(|d| !matches!(d.result, RestoreResult::Left(_) | RestoreResult::Refused(_)))
        {
            let fallback = if d.source == Source::Journal {
                "(no driver)"
            } else {
                "(default)"
            };
            ctx.line(format!(
                "  {}  {} -> {}  [{}]",
                d.device,
                d.from_driver
                    .as_ref()
                    .map_or("(no driver)", DriverName::as_str),
                d.to_driver.as_ref().map_or(fallback, DriverName::as_str),
                d.result.describe()
            ));
        }
        for c in &report.destroyed {
            ctx.line(if dry_run {
                format!("  {c}  would be taken apart with restool: made for a VM")
            } else {
                format!("  {c}  taken apart: made for a VM, its objects are back with the MC")
            });
        }
        if let Some(why) = &report.destroy_failed {
            ctx.line(format!("  taking a made container apart failed: {why}"));
        }
        for g in &report.sriov {
            let (Ok(t) | Err(t)) = &g.result;
            let failed = if g.result.is_err() { "failed: " } else { "" };
            ctx.line(format!("  {}  [{failed}{t}]", g.given.describe()));
        }
        if dry_run {
            ctx.line("Dry run: nothing was changed.");
        }
    }
    // A refused device's reason is the error (standard error), not a line of the report too.
    let mut refused = report.devices.iter().filter_map(|d| match &d.result {
        RestoreResult::Refused(why) => Some(format!("refused: {why}")),
        _ => None,
    });
    if let Some(first) = refused.next() {
        return Err(CliError::new(Exit::Refused, first).also(refused).hint(
            "stop the VM (its QEMU) first; 'vfioctl restore --force' gives the devices back from \
             under it",
        ));
    }
    if failed {
        return Err(CliError::new(
            Exit::Failed,
            "some devices could not be restored (see above); the journal still lists them",
        )
        .hint("fix the cause (see 'dmesg') and run 'vfioctl restore --all' again"));
    }
    Ok(Exit::Success)
}
