//! `bind` and `restore`: moving devices to vfio-pci and giving them back.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use vfioctl_core::fslmc::DprcName;
use vfioctl_core::plan::{
    BindOptions, BindPlan, Disposition, OriginalState, Refusal, Step, Write, plan_bind,
    restore_steps,
};
use vfioctl_core::{Inventory, PciAddress, VendorDevice};
use vfioctl_host::apply::{ApplyError, Rollback, StepError, Timeouts, chain};
use vfioctl_host::journal::{Journal, Lock};
use vfioctl_host::read::{device_dir, read_device};
use vfioctl_host::usage::HostUsage;

use crate::cli::{BindArgs, RestoreArgs};
use crate::cmd::inventory::JSON_VERSION;
use crate::context::{Context, resolve_device, to_json};
use crate::error::CliError;
use crate::exit::Exit;

/// How long to wait for another vfioctl holding the lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Resolves what the user named: addresses, `vendor:device` IDs (every match), interface names.
pub fn select(
    ctx: &Context,
    inventory: &Inventory,
    names: &[String],
) -> Result<Vec<PciAddress>, CliError> {
    let mut selected = BTreeSet::new();
    for name in names {
        if let Ok(id) = name.parse::<VendorDevice>() {
            let matches: Vec<PciAddress> = inventory.by_id(id).map(|d| d.address).collect();
            if matches.is_empty() {
                return Err(
                    CliError::new(Exit::Usage, format!("no PCI device has ID {id}"))
                        .hint("run 'vfioctl list' to see the IDs on this host"),
                );
            }
            selected.extend(matches);
        } else {
            selected.insert(resolve_device(ctx, inventory, name)?.address);
        }
    }
    Ok(selected.into_iter().collect())
}

/// Refuses to change the real host without root, before anything is read or written.
pub fn require_privileges(ctx: &Context, dry_run: bool) -> Result<(), CliError> {
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

pub fn lock_error(e: vfioctl_host::journal::JournalError) -> CliError {
    let exit = match &e {
        vfioctl_host::journal::JournalError::Io { source, .. }
        | vfioctl_host::journal::JournalError::Dir { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            Exit::Privileges
        }
        _ => Exit::Failed,
    };
    CliError::new(exit, chain(&e)).hint(e.remedy())
}

#[derive(Serialize)]
struct PlanDevice<'a> {
    address: PciAddress,
    iommu_group: Option<u32>,
    current_driver: Option<&'a str>,
    target_driver: Option<&'a str>,
    disposition: Disposition,
    why: &'a str,
}

#[derive(Serialize)]
struct PlanDoc<'a> {
    version: u32,
    operation: &'static str,
    dry_run: bool,
    devices: Vec<PlanDevice<'a>>,
    writes: Vec<&'a Write>,
    refusals: &'a [Refusal],
    warnings: &'a [String],
    groups: &'a [u32],
    result: &'static str,
    error: Option<String>,
}

pub(crate) fn render_plan(ctx: &mut Context, plan: &BindPlan, dry_run: bool) {
    if ctx.quiet && !dry_run {
        return;
    }
    for group in &plan.groups {
        ctx.line(format!("IOMMU group {group}:"));
        for d in plan
            .devices
            .iter()
            .filter(|d| d.iommu_group == Some(*group))
        {
            render_device(ctx, d);
        }
    }
    for d in plan.devices.iter().filter(|d| d.iommu_group.is_none()) {
        ctx.line("No IOMMU group:");
        render_device(ctx, d);
    }
    if dry_run || ctx.verbose > 0 {
        let writes = plan.writes();
        if !writes.is_empty() {
            ctx.line("Writes, in order:");
        }
        for step in &plan.steps {
            match step {
                Step::LoadModule { module } => ctx.line(format!("  modprobe {module}")),
                Step::Write(w)
                | Step::Unbind { write: w, .. }
                | Step::UnbindObject { write: w, .. } => {
                    ctx.line(format!("  {} <- {}", w.path, shown_value(&w.value)));
                }
                Step::AwaitDriver { .. }
                | Step::AwaitObjectDriver { .. }
                | Step::AwaitGroupNode { .. } => {}
            }
        }
    }
}

fn shown_value(value: &str) -> String {
    if value == "\n" {
        "(newline: clears it)".to_owned()
    } else {
        value.to_owned()
    }
}

fn render_device(ctx: &mut Context, d: &vfioctl_core::plan::PlannedDevice) {
    let from = d.current_driver.as_deref().unwrap_or("(no driver)");
    let action = match d.disposition {
        Disposition::Bind => format!("{from} -> vfio-pci"),
        Disposition::AlreadyBound => "already on vfio-pci".to_owned(),
        Disposition::StaysOnPortDriver => format!("{from} (stays)"),
        Disposition::LeftOut => format!("{from} (left out)"),
    };
    ctx.line(format!("  {}  {action}  [{}]", d.address, d.why));
}

/// `vfioctl bind`: PCI devices, then DPAA2 containers.
pub fn bind(ctx: &mut Context, args: &BindArgs) -> Result<Exit, CliError> {
    require_privileges(ctx, args.dry_run)?;
    let (dprcs, pci): (Vec<String>, Vec<String>) = args
        .devices
        .iter()
        .cloned()
        .partition(|n| n.parse::<DprcName>().is_ok());
    if !pci.is_empty() {
        bind_pci(ctx, args, &pci)?;
    }
    for dprc in &dprcs {
        let dprc: DprcName = dprc
            .parse()
            .map_err(|e: vfioctl_core::fslmc::DprcNameError| {
                CliError::new(Exit::Usage, e.to_string())
            })?;
        crate::cmd::fslmc::bind_container(ctx, args, dprc)?;
    }
    Ok(Exit::Success)
}

fn bind_pci(ctx: &mut Context, args: &BindArgs, names: &[String]) -> Result<Exit, CliError> {
    let uid_gid = match &args.user {
        Some(user) => Some(lookup_user(ctx, user)?),
        None => None,
    };
    // Plan under the lock: the state the plan is built from must not change before it is applied.
    let _lock = if args.dry_run {
        None
    } else {
        Some(Lock::acquire(&ctx.root, LOCK_WAIT).map_err(lock_error)?)
    };
    if !args.dry_run {
        let journal = Journal::load(&ctx.root).map_err(lock_error)?;
        let interrupted: Vec<PciAddress> =
            journal.interrupted().map(|e| e.original.address).collect();
        if !interrupted.is_empty() {
            return Err(apply_error(ApplyError::Interrupted(interrupted)));
        }
    }
    let inventory = ctx.inventory()?;
    let named = select(ctx, &inventory, names)?;
    let usage = HostUsage::read(&ctx.root)?;
    let uses = vfioctl_host::apply::host_uses(&ctx.root, &inventory, &usage);
    let options = BindOptions {
        only: args.only,
        force: args.force,
    };
    let plan = plan_bind(
        &inventory,
        &named,
        &uses,
        vfioctl_host::apply::vfio_pci_loaded(&ctx.root),
        &options,
    );
    let blocking: Vec<&Refusal> = plan.blocking_refusals(args.force);
    let nothing_to_do = plan.to_bind().next().is_none();
    let fb = vfioctl_host::boot::facts::framebuffer_warnings(
        &ctx.root,
        plan.to_bind().map(|d| d.address),
    );
    fb.into_iter().for_each(|w| ctx.note(w));

    let result: Result<&'static str, CliError> = if !blocking.is_empty() {
        let first = blocking[0];
        let more = if blocking.len() > 1 {
            format!(" (and {} more refusal(s) above)", blocking.len() - 1)
        } else {
            String::new()
        };
        let error = CliError::new(Exit::Refused, format!("refused: {}{more}", first.text))
            .hint(first.remedy.clone());
        Err(error)
    } else if nothing_to_do {
        Ok("nothing_to_do")
    } else if args.dry_run {
        Ok("planned")
    } else {
        let executor = crate::kernel::executor(&ctx.root, timeouts(args.timeout));
        let mut journal = Journal::load(&ctx.root).map_err(lock_error)?;
        match executor.bind(&plan, &mut journal, args.owner.as_deref()) {
            Ok(()) => {
                if let Some((uid, gid)) = uid_gid {
                    for group in &plan.groups {
                        vfioctl_host::apply::give_group_node(&ctx.root, *group, uid, gid)
                            .map_err(CliError::from)?;
                    }
                }
                Ok("bound")
            }
            Err(e) => Err(apply_error(e)),
        }
    };

    if ctx.json {
        let doc = PlanDoc {
            version: JSON_VERSION,
            operation: "bind",
            dry_run: args.dry_run,
            devices: plan
                .devices
                .iter()
                .map(|d| PlanDevice {
                    address: d.address,
                    iommu_group: d.iommu_group,
                    current_driver: d.current_driver.as_deref(),
                    target_driver: d.target_driver.as_deref(),
                    disposition: d.disposition,
                    why: &d.why,
                })
                .collect(),
            writes: plan.writes(),
            refusals: &plan.refusals,
            warnings: &plan.warnings,
            groups: &plan.groups,
            result: match &result {
                Ok(r) => r,
                Err(e) if e.exit == Exit::Refused => "refused",
                Err(_) => "failed",
            },
            error: result.as_ref().err().map(|e| e.message.clone()),
        };
        let text = to_json(&doc)?;
        ctx.line(text);
    } else {
        render_plan(ctx, &plan, args.dry_run);
        for r in &plan.refusals {
            let status = if args.force && r.overridable {
                "overridden by --force"
            } else {
                "refused"
            };
            ctx.line(format!("{status}: {}", r.text));
        }
        for w in &plan.warnings {
            ctx.note(w.clone());
        }
        match &result {
            Ok("nothing_to_do") => ctx.line("Nothing to do: every device is already on vfio-pci."),
            Ok("planned") => ctx.line("Dry run: nothing was changed."),
            Ok(_) => {
                let bound: Vec<String> = plan.to_bind().map(|d| d.address.to_string()).collect();
                ctx.line(format!("Bound {} to vfio-pci.", bound.join(", ")));
                for g in &plan.groups {
                    ctx.line(format!("/dev/vfio/{g} is ready."));
                }
                ctx.line("Give them back with: vfioctl restore ".to_owned() + &bound.join(" "));
            }
            Err(_) => {}
        }
    }
    result.map(|_| Exit::Success)
}

pub fn timeouts(unbind_secs: Option<u64>) -> Timeouts {
    let mut t = Timeouts::default();
    if let Some(secs) = unbind_secs {
        t.unbind = Duration::from_secs(secs);
    }
    t
}

pub fn apply_error(e: ApplyError) -> CliError {
    match e {
        ApplyError::Journal(j) => {
            CliError::new(Exit::Failed, format!("{}; nothing was changed", chain(&j)))
                .hint(j.remedy())
        }
        ApplyError::Interrupted(devices) => CliError::new(
            Exit::Failed,
            format!(
                "a previous vfioctl run was interrupted while binding {}; nothing was changed",
                vfioctl_core::comma_list(devices)
            ),
        )
        .hint("run 'vfioctl recover' to give those devices back first"),
        ApplyError::Step { source, rollback } => {
            let hint = step_hint(&source);
            match rollback {
                Rollback::Clean => CliError::new(
                    Exit::Failed,
                    format!("{}; every device was put back as it was", chain(&source)),
                )
                .hint(hint),
                Rollback::Incomplete(failures) => CliError::new(
                    Exit::Failed,
                    format!(
                        "{}; rolling back failed for {}",
                        chain(&source),
                        failures.join("; ")
                    ),
                )
                .hint(
                    "the journal still lists them: run 'vfioctl recover' once the cause is fixed",
                ),
            }
        }
    }
}

fn step_hint(e: &StepError) -> String {
    match e {
        StepError::UnbindTimeout { device, driver, .. } => format!(
            "something still uses {device} through {driver} (a mounted filesystem, a network \
             interface, a display server, a process holding its device node); stop it and retry"
        ),
        StepError::WrongDriver { device, .. } => format!(
            "the kernel did not bind {device} to vfio-pci; check 'dmesg' and 'vfioctl doctor {device}' \
             (a device without an IOMMU group, or a vfio-pci that refuses it)"
        ),
        StepError::NoGroupNode { .. } => {
            "check that udev/devtmpfs creates /dev/vfio nodes ('vfioctl doctor')".to_owned()
        }
        StepError::Module(m) => match m {
            vfioctl_host::ModuleError::Blacklisted(name) => format!(
                "remove the 'blacklist {name}' line from /etc/modprobe.d, or load it by hand"
            ),
            vfioctl_host::ModuleError::NotFound(_) => {
                "this kernel has no vfio-pci module: install a kernel built with CONFIG_VFIO_PCI"
                    .to_owned()
            }
            vfioctl_host::ModuleError::Failed { .. } => {
                "see 'dmesg' for why the module failed".to_owned()
            }
        },
        StepError::Write { .. } => "see 'dmesg' for the kernel's reason".to_owned(),
        StepError::Host(h) => h
            .remedy()
            .unwrap_or_else(|| "see 'vfioctl list'".to_owned()),
    }
}

pub(crate) fn lookup_user(ctx: &Context, user: &str) -> Result<(u32, u32), CliError> {
    let passwd = ctx.root.join("etc/passwd");
    let text = std::fs::read_to_string(&passwd).unwrap_or_default();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if let [name, _, uid, gid, ..] = fields.as_slice()
            && (*name == user || *uid == user)
            && let (Ok(uid), Ok(gid)) = (uid.parse(), gid.parse())
        {
            return Ok((uid, gid));
        }
    }
    Err(CliError::new(
        Exit::Usage,
        format!(
            "no user '{user}' in {}",
            ctx.root.display_path(&passwd).display()
        ),
    )
    .hint("name an existing user (the one that runs QEMU)"))
}

#[derive(Serialize)]
struct RestoreDevice {
    address: Option<PciAddress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<String>,
    from_driver: Option<String>,
    to_driver: Option<String>,
    source: &'static str,
    result: String,
}

/// `vfioctl restore` (and `recover`, which is `restore --all`).
pub fn restore(ctx: &mut Context, args: &RestoreArgs) -> Result<Exit, CliError> {
    require_privileges(ctx, args.dry_run)?;
    let _lock = if args.dry_run {
        None
    } else {
        Some(Lock::acquire(&ctx.root, LOCK_WAIT).map_err(lock_error)?)
    };
    let mut journal = Journal::load(&ctx.root).map_err(lock_error)?;
    let inventory = ctx.inventory()?;
    if !args.all && args.devices.is_empty() {
        return Err(
            CliError::new(Exit::Usage, "name the devices to restore, or pass --all")
                .hint("'vfioctl restore --all' gives back every device vfioctl bound"),
        );
    }
    // Which devices: everything journaled (--all), or the named ones and their groups' journaled
    // members (they were bound together, so they go back together).
    let (dprc_names, pci_names): (Vec<String>, Vec<String>) = args
        .devices
        .iter()
        .cloned()
        .partition(|n| n.parse::<DprcName>().is_ok());
    let mut targets: BTreeSet<PciAddress> = BTreeSet::new();
    if args.all {
        targets.extend(journal.entries.iter().map(|e| e.original.address));
    } else {
        for address in select(ctx, &inventory, &pci_names)? {
            targets.insert(address);
            let group = inventory.get(&address).and_then(|d| d.iommu_group);
            targets.extend(
                journal
                    .entries
                    .iter()
                    .filter(|e| group.is_some() && e.original.iommu_group == group)
                    .map(|e| e.original.address),
            );
        }
    }
    let executor = crate::kernel::executor(&ctx.root, timeouts(args.timeout));
    let mut report: Vec<RestoreDevice> = Vec::new();
    let mut restored: Vec<PciAddress> = Vec::new();
    let mut failed = false;
    // Restore in reverse binding order, as a rollback would.
    let mut ordered: Vec<PciAddress> = journal
        .entries
        .iter()
        .rev()
        .map(|e| e.original.address)
        .filter(|a| targets.contains(a))
        .collect();
    ordered.extend(targets.iter().filter(|a| journal.entry(a).is_none()));
    for address in ordered {
        let current = device_dir(&ctx.root, &address).and_then(|dir| read_device(address, &dir));
        let from_driver = current.as_ref().ok().and_then(|d| d.driver.clone());
        match journal.entry(&address).cloned() {
            Some(entry) => {
                let original: OriginalState = entry.original.clone();
                let outcome = if args.dry_run {
                    match &current {
                        Ok(dev) => {
                            let steps = restore_steps(dev, &original);
                            if steps.is_empty() {
                                "already as it was".to_owned()
                            } else {
                                describe_steps(&steps)
                            }
                        }
                        Err(e) => format!("cannot read it: {}", chain(e)),
                    }
                } else {
                    match executor.restore_device(&original) {
                        Ok(()) => {
                            restored.push(address);
                            "restored".to_owned()
                        }
                        Err(e) => {
                            failed = true;
                            format!("failed: {}", chain(&e))
                        }
                    }
                };
                report.push(RestoreDevice {
                    address: Some(address),
                    object: None,
                    from_driver,
                    to_driver: original.driver.clone(),
                    source: "journal",
                    result: outcome,
                });
            }
            None => {
                let Ok(dev) = current else {
                    failed = true;
                    report.push(RestoreDevice {
                        address: Some(address),
                        object: None,
                        from_driver,
                        to_driver: None,
                        source: "none",
                        result: "cannot read the device".to_owned(),
                    });
                    continue;
                };
                if dev.driver.as_deref() != Some("vfio-pci")
                    && dev.driver_override.as_deref() != Some("vfio-pci")
                {
                    report.push(RestoreDevice {
                        address: Some(address),
                        object: None,
                        from_driver,
                        to_driver: dev.driver.clone(),
                        source: "none",
                        result: "not bound to vfio-pci; nothing to do".to_owned(),
                    });
                    continue;
                }
                let outcome = if args.dry_run {
                    "would clear driver_override and let the kernel pick its default driver"
                        .to_owned()
                } else {
                    match executor.release_to_default(address) {
                        Ok(()) => {
                            let now = executor.current_driver(&address).ok().flatten();
                            format!(
                                "no journal entry: cleared driver_override and reprobed; now on {}",
                                now.as_deref().unwrap_or("no driver")
                            )
                        }
                        Err(e) => {
                            failed = true;
                            format!("failed: {}", chain(&e))
                        }
                    }
                };
                report.push(RestoreDevice {
                    address: Some(address),
                    object: None,
                    from_driver,
                    to_driver: None,
                    source: "default",
                    result: outcome,
                });
            }
        }
    }
    let executor_ref = &executor;
    let containers: Vec<String> = if args.all {
        journal
            .fsl_mc
            .iter()
            .map(|e| e.original.object.clone())
            .collect()
    } else {
        dprc_names
    };
    for name in containers {
        let entry = journal
            .fsl_mc
            .iter()
            .find(|e| e.original.object == name)
            .cloned();
        let Some(entry) = entry else {
            report.push(RestoreDevice {
                address: None,
                object: Some(name.clone()),
                from_driver: None,
                to_driver: None,
                source: "none",
                result: "not in the journal: vfioctl did not bind it; nothing to do".to_owned(),
            });
            continue;
        };
        let outcome = if args.dry_run {
            "would be given back".to_owned()
        } else {
            match executor_ref.restore_object(&entry.original) {
                Ok(()) => {
                    journal.fsl_mc.retain(|e| e.original.object != name);
                    "restored".to_owned()
                }
                Err(e) => {
                    failed = true;
                    format!("failed: {}", chain(&e))
                }
            }
        };
        report.push(RestoreDevice {
            address: None,
            object: Some(name.clone()),
            from_driver: Some(vfioctl_core::fslmc::VFIO_FSL_MC.to_owned()),
            to_driver: entry.original.driver.clone(),
            source: "journal",
            result: outcome,
        });
    }
    if !args.dry_run {
        journal.remove(&restored);
        executor.unload_unused(&mut journal);
        journal.save(&ctx.root).map_err(lock_error)?;
    }
    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            operation: &'static str,
            dry_run: bool,
            devices: &'a [RestoreDevice],
            result: &'static str,
        }
        let text = to_json(&Doc {
            version: JSON_VERSION,
            operation: "restore",
            dry_run: args.dry_run,
            devices: &report,
            result: if failed {
                "failed"
            } else if report.is_empty() {
                "nothing_to_do"
            } else {
                "restored"
            },
        })?;
        ctx.line(text);
    } else {
        if report.is_empty() {
            ctx.line("Nothing to restore: the journal is empty.");
        }
        for r in &report {
            ctx.line(format!(
                "  {}  {} -> {}  [{}]",
                r.address
                    .map_or_else(|| r.object.clone().unwrap_or_default(), |a| a.to_string()),
                r.from_driver.as_deref().unwrap_or("(no driver)"),
                r.to_driver.as_deref().unwrap_or(if r.source == "journal" {
                    "(no driver)"
                } else {
                    "(default)"
                }),
                r.result
            ));
        }
        if args.dry_run {
            ctx.line("Dry run: nothing was changed.");
        }
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

fn describe_steps(steps: &[Step]) -> String {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Write(w) | Step::Unbind { write: w, .. } => {
                Some(format!("{} <- {}", w.path, shown_value(&w.value)))
            }
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("; ")
}
