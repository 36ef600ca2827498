//! VM definitions: `vm list|check|qemu-args`, `apply` at boot, `status`, and the managed `run`.
//!
//! Every command that binds goes through the same plan, journal and executor as `bind`, with the
//! VM's name as the journal's owner, so `restore`, `recover` and rollback treat its devices like
//! any others.

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;

use vfioctl_core::fslmc::DprcName;
use vfioctl_core::plan::{BindOptions, BindPlan, VFIO_PCI, plan_bind};
use vfioctl_core::render::qemu::shell_join;
use vfioctl_core::vm::{
    CommandLineError, DeviceCheck, GroupCoverage, VmName, check_devices, claims, command_line,
    group_coverage,
};
use vfioctl_core::{Inventory, PciAddress, VendorDevice};
use vfioctl_host::apply::{give_group_node, host_uses, vfio_pci_loaded};
use vfioctl_host::journal::{Journal, Lock};
use vfioctl_host::usage::HostUsage;
use vfioctl_host::vms::{self, DprcState, VFIO_FSL_MC, VmFile, VmFileError};

use crate::cli::{
    ApplyArgs, ConfigArgs, RestoreArgs, RunArgs, StatusArgs, VmArgs, VmCommand, VmListArgs,
    VmNameArgs,
};
use crate::cmd::bind::{
    apply_error, lock_error, lookup_user, render_plan, require_privileges, timeouts,
};
use crate::cmd::inventory::JSON_VERSION;
use crate::context::{Context, to_json};
use crate::error::{CliError, chain};
use crate::exit::Exit;

/// How long to wait for another vfioctl holding the lock.
const LOCK_WAIT: Duration = Duration::from_secs(30);
/// How long `<qemu> -device help` may take.
const QEMU_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The signals `run` passes on to QEMU instead of dying of them.
const FORWARDED: [i32; 4] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT];

/// `vfioctl vm ...`.
pub fn vm(ctx: &mut Context, args: &VmArgs) -> Result<Exit, CliError> {
    match &args.command {
        VmCommand::List(a) => list(ctx, a),
        VmCommand::Check(a) => check(ctx, a),
        VmCommand::QemuArgs(a) => qemu_args(ctx, a),
    }
}

fn definitions_dir(ctx: &Context, config: &ConfigArgs) -> PathBuf {
    vms::vms_dir(&ctx.root, config.config.as_deref())
}

fn file_error(e: &VmFileError) -> CliError {
    let exit = match e {
        VmFileError::Read { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            Exit::Privileges
        }
        _ => Exit::Usage,
    };
    CliError::new(exit, chain(e)).hint(e.remedy())
}

fn load(ctx: &Context, config: &ConfigArgs, name: &str) -> Result<VmFile, CliError> {
    vms::load_at(&ctx.root, config.config.as_deref(), name).map_err(|e| file_error(&e))
}

fn list_all(
    ctx: &Context,
    config: &ConfigArgs,
) -> Result<Vec<Result<VmFile, VmFileError>>, CliError> {
    vms::list_at(&ctx.root, config.config.as_deref()).map_err(|e| file_error(&e))
}

/// Something that stops a VM from getting its devices, and what to do about it.
#[derive(Debug, Clone, Serialize)]
struct Finding {
    text: String,
    hint: String,
}

/// A container that is there but not on vfio-fsl-mc.
#[derive(Debug, Clone, Serialize)]
struct UnboundDprc {
    dprc: DprcName,
    driver: Option<String>,
}

impl UnboundDprc {
    fn finding(&self) -> Finding {
        let d = self.dprc;
        let text = format!(
            "{d} is on {}, not on {VFIO_FSL_MC}",
            self.driver.as_deref().unwrap_or("no driver")
        );
        let unbind = match &self.driver {
            Some(driver) => format!("echo {d} > /sys/bus/fsl-mc/drivers/{driver}/unbind; "),
            None => String::new(),
        };
        Finding {
            text,
            hint: format!(
                "'vfioctl apply' and 'vfioctl run' bind it (or 'vfioctl bind {d}'); by hand: \
                 {unbind}echo {VFIO_FSL_MC} > /sys/bus/fsl-mc/devices/{d}/driver_override; echo \
                 {d} > /sys/bus/fsl-mc/drivers/{VFIO_FSL_MC}/bind"
            ),
        }
    }
}

/// What stands between a VM and its devices, found before anything changes.
struct Preflight {
    checks: Vec<DeviceCheck>,
    coverage: Vec<GroupCoverage>,
    plan: BindPlan,
    /// Drift, missing devices or containers, safety refusals: `apply` and `run` stop here.
    refusals: Vec<Finding>,
    /// Containers not on vfio-fsl-mc: `run` stops here, `apply` and `check` warn.
    unbound_dprc: Vec<UnboundDprc>,
    warnings: Vec<String>,
}

impl Preflight {
    fn dprc_state(&self, dprc: DprcName) -> &'static str {
        if self
            .refusals
            .iter()
            .any(|r| r.text.starts_with(&format!("{dprc} ")))
        {
            "missing"
        } else if self.unbound_dprc.iter().any(|u| u.dprc == dprc) {
            "not_bound"
        } else {
            "bound"
        }
    }
}

fn preflight(ctx: &Context, inventory: &Inventory, vm: &VmFile) -> Result<Preflight, CliError> {
    let def = &vm.definition;
    let checks = check_devices(def, inventory);
    let mut refusals = Vec::new();
    let mut warnings = Vec::new();
    for c in &checks {
        if let Some(text) = c.drift_message() {
            let line = c
                .device
                .location
                .map_or(String::new(), |l| format!(":{}", l.line));
            refusals.push(Finding {
                text,
                hint: format!(
                    "a firmware update or a new card moves addresses; check 'vfioctl list' and \
                     update {}{line} (vfioctl never binds a device it does not recognise)",
                    vm.path.display()
                ),
            });
        }
    }
    let coverage = group_coverage(def, inventory);
    for g in &coverage {
        if !g.unlisted.is_empty() {
            warnings.push(format!(
                "IOMMU group {} also holds {}, which {} does not list: it is bound and passed to \
                 the guest anyway, since a group goes to one VM whole; list it to make that explicit",
                g.group,
                vfioctl_core::comma_list(&g.unlisted),
                vm.name
            ));
        }
    }
    // Only devices whose identity matches reach the planner: a drifted address is never bound.
    let recognised: Vec<PciAddress> = checks
        .iter()
        .filter(|c| c.state.identity_ok())
        .map(|c| c.device.address)
        .collect();
    let usage = HostUsage::read(&ctx.root)?;
    let uses = host_uses(&ctx.root, inventory, &usage);
    let plan = plan_bind(
        inventory,
        &recognised,
        &uses,
        vfio_pci_loaded(&ctx.root),
        &BindOptions::default(),
    );
    for r in plan.blocking_refusals(false) {
        refusals.push(Finding {
            text: r.text.clone(),
            hint: r.remedy.clone(),
        });
    }
    warnings.extend(plan.warnings.iter().cloned());
    let mut unbound_dprc = Vec::new();
    for &dprc in &def.dprc {
        match vms::dprc_state(&ctx.root, dprc)? {
            DprcState::Missing => refusals.push(Finding {
                text: format!("{dprc} does not exist (no /sys/bus/fsl-mc/devices/{dprc})"),
                hint: "create the container with restool (ls-addni, restool dprc create), or \
                       remove it from the definition"
                    .to_owned(),
            }),
            DprcState::Present(driver) if driver.as_deref() == Some(VFIO_FSL_MC) => {}
            DprcState::Present(driver) => unbound_dprc.push(UnboundDprc { dprc, driver }),
        }
    }
    Ok(Preflight {
        checks,
        coverage,
        plan,
        refusals,
        unbound_dprc,
        warnings,
    })
}

fn refused(vm: &VmName, refusals: &[Finding]) -> CliError {
    let first = &refusals[0];
    let more = match refusals.len() {
        1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    CliError::new(
        Exit::Refused,
        format!("refused VM {vm}: {}{more}; nothing was changed", first.text),
    )
    .hint(first.hint.clone())
}

fn command_line_error(e: CommandLineError) -> CliError {
    let hint = match &e {
        CommandLineError::NoQemu => {
            Some("add a [qemu] table with at least machine = \"q35\" or \"virt\" (see the README)")
        }
        CommandLineError::Render(r) => r.remedy(),
    };
    let error = CliError::new(Exit::Usage, chain(&e));
    match hint {
        Some(h) => error.hint(h),
        None => error,
    }
}

// ---------------------------------------------------------------------------------------------
// vm list

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
    qemu: bool,
}

fn list(ctx: &mut Context, args: &VmListArgs) -> Result<Exit, CliError> {
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
        let text = to_json(&Doc {
            version: JSON_VERSION,
            dir: dir.display().to_string(),
            vms: &listed,
        })?;
        ctx.line(text);
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

// ---------------------------------------------------------------------------------------------
// vm check

#[derive(Serialize)]
struct QemuReport {
    binary: String,
    path: Option<String>,
    /// `Some` when DPAA2 containers make vfio-fsl-mc necessary.
    vfio_fsl_mc: Option<bool>,
}

fn check_qemu(vm: &VmFile, problems: &mut Vec<Finding>) -> Option<QemuReport> {
    let qemu = vm.definition.qemu.as_ref()?;
    let binary = qemu.binary().to_owned();
    let Some(path) = vms::find_program(&binary) else {
        problems.push(Finding {
            text: format!("the QEMU binary {binary} is not installed (or not executable)"),
            hint: if vm.definition.dprc.is_empty() {
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
    if !vm.definition.dprc.is_empty() {
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

fn check(ctx: &mut Context, args: &VmNameArgs) -> Result<Exit, CliError> {
    let vm = load(ctx, &args.config, &args.name)?;
    let inventory = ctx.inventory()?;
    let pre = preflight(ctx, &inventory, &vm)?;
    let mut problems = pre.refusals.clone();
    let mut warnings = pre.warnings.clone();
    for u in &pre.unbound_dprc {
        let f = u.finding();
        warnings.push(format!("{} ({})", f.text, f.hint));
    }
    // Other definitions that claim the same groups or containers.
    let others: Vec<VmFile> = list_all(ctx, &args.config)?
        .into_iter()
        .flatten()
        .filter(|o| o.name != vm.name)
        .collect();
    for other in &others {
        let pair = [
            (vm.name.clone(), &vm.definition),
            (other.name.clone(), &other.definition),
        ];
        for claim in claims(&pair, &inventory) {
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
        && let Err(e) = lookup_user(ctx, user)
    {
        problems.push(Finding {
            text: e.message,
            hint: e.hint.unwrap_or_default(),
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
    if ctx.json {
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
        }
        let text = to_json(&Doc {
            version: JSON_VERSION,
            name: &vm.name,
            file: vm.path.display().to_string(),
            ok: problems.is_empty(),
            devices: &pre.checks,
            groups: &pre.coverage,
            problems: &problems,
            warnings: &warnings,
            qemu,
        })?;
        ctx.line(text);
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
        for &d in &vm.definition.dprc {
            ctx.line(format!("  {d}  {}", pre.dprc_state(d).replace('_', " ")));
        }
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
            ctx.line(format!("warning: {w}"));
        }
        for p in &problems {
            ctx.line(format!("problem: {}", p.text));
            ctx.line(format!("  fix: {}", p.hint));
        }
        ctx.line(if problems.is_empty() {
            format!("VM {} is ready.", vm.name)
        } else {
            format!("VM {}: {} problem(s).", vm.name, problems.len())
        });
    }
    Ok(if problems.is_empty() {
        Exit::Success
    } else {
        Exit::Problems
    })
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

fn not_bound(driver: Option<&str>) -> String {
    match driver {
        Some(driver) => format!("not bound (on {driver})"),
        None => "not bound (no driver)".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// vm qemu-args

fn render_command(
    vm: &VmFile,
    inventory: &Inventory,
    pre: &Preflight,
) -> Result<Vec<String>, CliError> {
    // Never render a command line that would hand a guest a device it was not meant to have.
    let drift: Vec<Finding> = pre
        .checks
        .iter()
        .filter_map(DeviceCheck::drift_message)
        .map(|text| Finding {
            text,
            hint: format!(
                "check 'vfioctl list' and update {} (addresses move with firmware updates and new \
                 cards)",
                vm.path.display()
            ),
        })
        .collect();
    if !drift.is_empty() {
        return Err(refused(&vm.name, &drift));
    }
    command_line(&vm.name, &vm.definition, inventory).map_err(command_line_error)
}

/// The command line as lines to paste: one option and its value per line, continued with `\`.
fn pasteable(argv: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let take = match argv.get(i + 1) {
            Some(next) if i > 0 && argv[i].starts_with('-') && !next.starts_with('-') => 2,
            _ => 1,
        };
        let end = (i + take).min(argv.len());
        lines.push(shell_join(&argv[i..end]));
        i = end;
    }
    let last = lines.len().saturating_sub(1);
    lines
        .into_iter()
        .enumerate()
        .map(|(n, l)| {
            let indent = if n == 0 { "" } else { "  " };
            let cont = if n == last { "" } else { " \\" };
            format!("{indent}{l}{cont}")
        })
        .collect()
}

fn qemu_args(ctx: &mut Context, args: &VmNameArgs) -> Result<Exit, CliError> {
    let vm = load(ctx, &args.config, &args.name)?;
    let inventory = ctx.inventory()?;
    let pre = preflight(ctx, &inventory, &vm)?;
    let argv = render_command(&vm, &inventory, &pre)?;
    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            name: &'a VmName,
            argv: &'a [String],
        }
        let text = to_json(&Doc {
            version: JSON_VERSION,
            name: &vm.name,
            argv: &argv,
        })?;
        ctx.line(text);
    } else {
        for line in pasteable(&argv) {
            ctx.line(line);
        }
    }
    if !vm.definition.dprc.is_empty() {
        ctx.note(
            "vfio-fsl-mc exists only in NXP's QEMU (mainline QEMU has no such device); 'vfioctl \
             vm check' asks the binary",
        );
    }
    Ok(Exit::Success)
}

// ---------------------------------------------------------------------------------------------
// Binding a VM

/// Binds what the plan binds, journaled with the VM as owner, and gives `/dev/vfio/<group>` to
/// the VM's user. The caller holds the lock.
fn bind_vm(
    ctx: &Context,
    vm: &VmFile,
    plan: &BindPlan,
    containers: &[DprcName],
    owner_ids: Option<(u32, u32)>,
    timeout: Option<u64>,
) -> Result<(), CliError> {
    let executor = crate::kernel::executor(&ctx.root, timeouts(timeout));
    if plan.to_bind().next().is_some() {
        let mut journal = Journal::load(&ctx.root).map_err(lock_error)?;
        executor
            .bind(plan, &mut journal, Some(vm.name.as_str()))
            .map_err(apply_error)?;
    }
    for &dprc in containers {
        let fslmc = vfioctl_host::fslmc::read_fslmc(&ctx.root)?;
        let usage = vfioctl_host::usage::HostUsage::read(&ctx.root)?;
        let container_plan = vfioctl_core::fslmc::plan_container_bind(
            &fslmc,
            dprc,
            &vfioctl_host::fslmc::fslmc_host_uses(&ctx.root, &fslmc, &usage),
            vfioctl_host::fslmc::vfio_fslmc_loaded(&ctx.root),
        )
        .map_err(|e| CliError::new(Exit::Usage, e.to_string()))?;
        if let Some(refusal) = container_plan.refusals.first() {
            return Err(
                CliError::new(Exit::Refused, format!("refused: {}", refusal.text))
                    .hint(refusal.remedy.clone()),
            );
        }
        let mut journal = Journal::load(&ctx.root).map_err(lock_error)?;
        executor
            .bind_container(&container_plan, &mut journal, Some(vm.name.as_str()))
            .map_err(apply_error)?;
        if let (Some((uid, gid)), Some(group)) = (owner_ids, container_plan.iommu_group) {
            give_group_node(&ctx.root, group, uid, gid)?;
        }
    }
    if let Some((uid, gid)) = owner_ids {
        for group in &plan.groups {
            give_group_node(&ctx.root, *group, uid, gid)?;
        }
    }
    Ok(())
}

fn user_ids(ctx: &Context, vm: &VmFile) -> Result<Option<(u32, u32)>, CliError> {
    vm.definition
        .user
        .as_deref()
        .map(|user| lookup_user(ctx, user))
        .transpose()
}

// ---------------------------------------------------------------------------------------------
// apply

#[derive(Serialize)]
struct Applied {
    name: String,
    result: &'static str,
    devices: Vec<PciAddress>,
    groups: Vec<u32>,
    problems: Vec<Finding>,
    warnings: Vec<String>,
}

/// `vfioctl apply`.
pub fn apply(ctx: &mut Context, args: &ApplyArgs) -> Result<Exit, CliError> {
    require_privileges(ctx, args.dry_run)?;
    let _lock = if args.dry_run {
        None
    } else {
        Some(Lock::acquire(&ctx.root, LOCK_WAIT).map_err(lock_error)?)
    };
    let all = list_all(ctx, &args.config)?;
    let mut report: Vec<Applied> = Vec::new();
    let mut boot: Vec<&VmFile> = Vec::new();
    for entry in &all {
        match entry {
            Ok(vm) if vm.definition.boot => boot.push(vm),
            Ok(_) => {}
            Err(e) => report.push(Applied {
                name: match e {
                    VmFileError::Invalid { path, .. }
                    | VmFileError::Read { path, .. }
                    | VmFileError::IgnoredName { path, .. } => path
                        .file_stem()
                        .map_or(String::new(), |s| s.to_string_lossy().into_owned()),
                    _ => String::new(),
                },
                result: "invalid",
                devices: Vec::new(),
                groups: Vec::new(),
                problems: vec![Finding {
                    text: chain(e),
                    hint: e.remedy(),
                }],
                warnings: Vec::new(),
            }),
        }
    }
    // Two boot VMs cannot both have a group: both are refused.
    let inventory = ctx.inventory()?;
    let pairs: Vec<(VmName, &vfioctl_core::vm::VmDefinition)> = boot
        .iter()
        .map(|vm| (vm.name.clone(), &vm.definition))
        .collect();
    let conflicts = claims(&pairs, &inventory);

    for vm in boot {
        // Each VM is planned against the host as the VMs before it left it.
        let inventory = ctx.inventory()?;
        let pre = preflight(ctx, &inventory, vm)?;
        let mut problems = pre.refusals.clone();
        // Which of them the group is meant for is the user's call, not the file names': neither
        // is bound.
        for c in &conflicts {
            let other = if c.first == vm.name {
                &c.second
            } else if c.second == vm.name {
                &c.first
            } else {
                continue;
            };
            problems.push(Finding {
                text: format!("{} is claimed by boot VM {other} too", c.what),
                hint: "set boot = false on all but one of them".to_owned(),
            });
        }
        let warnings = pre.warnings.clone();
        let containers: Vec<DprcName> = pre.unbound_dprc.iter().map(|u| u.dprc).collect();
        let devices: Vec<PciAddress> = pre.plan.to_bind().map(|d| d.address).collect();
        let result = if !problems.is_empty() {
            "refused"
        } else if devices.is_empty() && containers.is_empty() {
            match user_ids(ctx, vm) {
                Ok(ids) if !args.dry_run => {
                    match bind_vm(ctx, vm, &pre.plan, &[], ids, args.timeout) {
                        Ok(()) => "already_bound",
                        Err(e) => {
                            problems.push(Finding {
                                text: e.message,
                                hint: e.hint.unwrap_or_default(),
                            });
                            "failed"
                        }
                    }
                }
                Ok(_) => "already_bound",
                Err(e) => {
                    problems.push(Finding {
                        text: e.message,
                        hint: e.hint.unwrap_or_default(),
                    });
                    "failed"
                }
            }
        } else if args.dry_run {
            "planned"
        } else {
            match user_ids(ctx, vm)
                .and_then(|ids| bind_vm(ctx, vm, &pre.plan, &containers, ids, args.timeout))
            {
                Ok(()) => "bound",
                Err(e) => {
                    problems.push(Finding {
                        text: e.message,
                        hint: e.hint.unwrap_or_default(),
                    });
                    "failed"
                }
            }
        };
        report.push(Applied {
            name: vm.name.to_string(),
            result,
            devices,
            groups: pre.plan.groups.clone(),
            problems,
            warnings,
        });
    }

    let exit = if report.iter().any(|r| r.result == "failed") {
        Exit::Failed
    } else if report.iter().any(|r| r.result == "refused") {
        Exit::Refused
    } else if report.iter().any(|r| r.result == "invalid") {
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
            vms: &'a [Applied],
        }
        let text = to_json(&Doc {
            version: JSON_VERSION,
            operation: "apply",
            dry_run: args.dry_run,
            vms: &report,
        })?;
        ctx.line(text);
    } else {
        if report.is_empty() {
            ctx.line(format!(
                "No VM is marked boot = true in {}; nothing to do.",
                definitions_dir(ctx, &args.config).display()
            ));
        }
        for r in &report {
            let what = match r.result {
                "bound" => format!("bound {} to vfio-pci", vfioctl_core::comma_list(&r.devices)),
                "planned" => format!(
                    "would bind {} to vfio-pci",
                    vfioctl_core::comma_list(&r.devices)
                ),
                "already_bound" => "already bound; nothing to do".to_owned(),
                other => other.replace('_', " "),
            };
            ctx.line(format!("{}: {what}", r.name));
            for p in &r.problems {
                ctx.line(format!("  problem: {}", p.text));
                ctx.line(format!("    fix: {}", p.hint));
            }
            for w in &r.warnings {
                ctx.note(format!("{}: {w}", r.name));
            }
        }
        if args.dry_run {
            ctx.line("Dry run: nothing was changed.");
        }
    }
    Ok(exit)
}

// ---------------------------------------------------------------------------------------------
// status

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
}

/// `vfioctl status`.
pub fn status(ctx: &mut Context, args: &StatusArgs) -> Result<Exit, CliError> {
    let all = list_all(ctx, &args.config)?;
    let inventory = ctx.inventory()?;
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
        let all_bound =
            devices.iter().all(|d| d.state == "bound") && dprc.iter().all(|d| d.state == "bound");
        let identities_ok = devices
            .iter()
            .all(|d| d.state == "bound" || d.state == "not_bound")
            && dprc.iter().all(|d| d.state != "missing");
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
        let text = to_json(&Doc {
            version: JSON_VERSION,
            ok: !problems,
            vms: &vms_status,
        })?;
        ctx.line(text);
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
        }
    }
    Ok(if problems {
        Exit::Problems
    } else {
        Exit::Success
    })
}

// ---------------------------------------------------------------------------------------------
// run

/// How QEMU ended, as a shell reports it: its exit code, or 128 + the signal that killed it.
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    }
}

/// Waits for the child and passes every forwarded signal on to it, until it has exited.
///
/// The child is waited for without being reaped first (`waitid(WNOWAIT)`), and only then marked
/// gone, so a signal is never sent to a PID the kernel may have given to another process.
fn wait_forwarding(
    child: &mut std::process::Child,
    mut signals: Signals,
) -> std::io::Result<(ExitStatus, Vec<i32>)> {
    use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process, waitid};
    let pid = Pid::from_child(child);
    let exited = Arc::new(Mutex::new(false));
    let handle = signals.handle();
    let forwarder = {
        let exited = Arc::clone(&exited);
        std::thread::spawn(move || {
            let mut forwarded = Vec::new();
            for signal in signals.forever() {
                let gone = exited.lock().map(|g| *g).unwrap_or(true);
                if gone {
                    break;
                }
                if let Some(sig) = Signal::from_named_raw(signal) {
                    let _ = kill_process(pid, sig);
                    forwarded.push(signal);
                }
            }
            forwarded
        })
    };
    loop {
        match waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
            Ok(_) => break,
        }
    }
    if let Ok(mut gone) = exited.lock() {
        *gone = true;
    }
    let status = child.wait()?;
    handle.close();
    let forwarded = forwarder.join().unwrap_or_default();
    Ok((status, forwarded))
}

/// Gives back what this run bound (and nothing it found bound already).
fn give_back(ctx: &mut Context, bound: &[String], timeout: Option<u64>) -> Result<(), CliError> {
    if bound.is_empty() {
        return Ok(());
    }
    crate::cmd::bind::restore(
        ctx,
        &RestoreArgs {
            devices: bound.to_vec(),
            all: false,
            dry_run: false,
            timeout,
        },
    )
    .map(|_| ())
}

/// Ends vfioctl with QEMU's status, after writing what was gathered.
fn exit_with(ctx: &mut Context, code: i32) -> ! {
    let _ = ctx.flush();
    std::process::exit(code)
}

fn say(ctx: &Context, text: impl AsRef<str>) {
    if !ctx.quiet {
        eprintln!("vfioctl: {}", text.as_ref());
    }
}

/// `vfioctl run`.
pub fn run(ctx: &mut Context, args: &RunArgs) -> Result<Exit, CliError> {
    require_privileges(ctx, args.dry_run)?;
    let vm = load(ctx, &args.config, &args.name)?;
    // From here on a SIGINT or SIGTERM is held for QEMU rather than killing vfioctl between a
    // bind and the restore that must follow it.
    let signals = if args.dry_run {
        None
    } else {
        Some(
            Signals::new(FORWARDED)
                .map_err(|e| CliError::new(Exit::Failed, format!("cannot handle signals: {e}")))?,
        )
    };
    let lock = if args.dry_run {
        None
    } else {
        Some(Lock::acquire(&ctx.root, LOCK_WAIT).map_err(lock_error)?)
    };
    let inventory = ctx.inventory()?;
    let pre = preflight(ctx, &inventory, &vm)?;
    let refusals = pre.refusals.clone();
    if !refusals.is_empty() {
        return Err(refused(&vm.name, &refusals));
    }
    let containers: Vec<DprcName> = pre.unbound_dprc.iter().map(|u| u.dprc).collect();
    for w in &pre.warnings {
        ctx.note(w.clone());
    }
    let argv = render_command(&vm, &inventory, &pre)?;
    let program = vms::find_program(&argv[0]).ok_or_else(|| {
        CliError::new(
            Exit::Usage,
            format!(
                "the QEMU binary {} is not installed (or not executable); nothing was changed",
                argv[0]
            ),
        )
        .hint("install QEMU, or set [qemu] binary in the definition")
    })?;
    let owner_ids = user_ids(ctx, &vm)?;

    if args.dry_run {
        if ctx.json {
            #[derive(Serialize)]
            struct Doc<'a> {
                version: u32,
                name: &'a VmName,
                dry_run: bool,
                bind: Vec<PciAddress>,
                groups: &'a [u32],
                argv: &'a [String],
            }
            let text = to_json(&Doc {
                version: JSON_VERSION,
                name: &vm.name,
                dry_run: true,
                bind: pre.plan.to_bind().map(|d| d.address).collect(),
                groups: &pre.plan.groups,
                argv: &argv,
            })?;
            ctx.line(text);
        } else {
            render_plan(ctx, &pre.plan, true);
            ctx.line("QEMU command line:");
            for line in pasteable(&argv) {
                ctx.line(format!("  {line}"));
            }
            ctx.line("Dry run: nothing was changed.");
        }
        return Ok(Exit::Success);
    }

    bind_vm(ctx, &vm, &pre.plan, &containers, owner_ids, args.timeout)?;
    let bound: Vec<String> = pre
        .plan
        .to_bind()
        .map(|d| d.address.to_string())
        .chain(containers.iter().map(ToString::to_string))
        .collect();
    // Other vfioctl commands may run while the VM does; the journal keeps what we bound.
    drop(lock);
    if !bound.is_empty() {
        say(
            ctx,
            format!("bound {} to vfio", vfioctl_core::comma_list(&bound)),
        );
    }
    let Some(mut signals) = signals else {
        return Ok(Exit::Success);
    };
    // Asked to stop while binding: give the devices back without starting QEMU.
    if let Some(signal) = signals.pending().next() {
        say(
            ctx,
            format!("signal {signal} before QEMU started; giving the devices back"),
        );
        give_back(ctx, &bound, args.timeout)?;
        exit_with(ctx, 128 + signal);
    }
    say(ctx, format!("starting {}", shell_join(&argv)));
    let child = Command::new(&program).args(&argv[1..]).spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            let restored = give_back(ctx, &bound, args.timeout);
            let error = CliError::new(
                Exit::Failed,
                format!("cannot start {}: {e}", program.display()),
            );
            return Err(match restored {
                Ok(()) => error.hint("the devices were given back; check the [qemu] binary"),
                Err(r) => error.hint(format!("giving the devices back failed too: {}", r.message)),
            });
        }
    };
    let waited = wait_forwarding(&mut child, signals);
    let (status, forwarded) = match waited {
        Ok(done) => done,
        Err(e) => {
            // We cannot tell whether QEMU is still running: leave the devices to `recover`.
            return Err(CliError::new(
                Exit::Failed,
                format!("lost track of QEMU (pid {}): {e}", child.id()),
            )
            .hint("once QEMU has exited, run 'vfioctl recover' to give the devices back"));
        }
    };
    // The handlers stay installed after the forwarder stops: a further SIGINT or SIGTERM now is
    // ignored, so the devices go back. Only SIGKILL interrupts that, and `recover` finishes it.
    let code = exit_code(status);
    let forwarded_text = if forwarded.is_empty() {
        String::new()
    } else {
        format!(
            " (after forwarding signal {})",
            vfioctl_core::comma_list(forwarded)
        )
    };
    say(
        ctx,
        format!("QEMU exited with status {code}{forwarded_text}"),
    );
    if let Err(e) = give_back(ctx, &bound, args.timeout) {
        return Err(CliError::new(
            e.exit,
            format!("QEMU exited with status {code}, then {}", e.message),
        )
        .hint(
            e.hint
                .unwrap_or_else(|| "run 'vfioctl recover' once the cause is fixed".to_owned()),
        ));
    }
    if !bound.is_empty() {
        say(
            ctx,
            format!("gave back {}", vfioctl_core::comma_list(&bound)),
        );
    }
    if code == 0 {
        Ok(Exit::Success)
    } else {
        exit_with(ctx, code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasteable_lines_pair_options_with_values() {
        let argv: Vec<String> = ["qemu", "-machine", "virt", "-nographic", "-append", "a b"]
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            pasteable(&argv),
            [
                "qemu \\",
                "  -machine virt \\",
                "  -nographic \\",
                "  -append 'a b'"
            ]
        );
    }

    #[test]
    fn signal_death_is_128_plus_the_signal() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 128 + 15);
        assert_eq!(exit_code(ExitStatus::from_raw(7 << 8)), 7);
    }
}
