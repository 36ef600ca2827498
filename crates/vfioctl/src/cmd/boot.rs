//! `vfioctl boot install|remove|status`: early binding through a udev rule and the initramfs.
//! The host layer plans, writes and reads; this module renders and picks the exit code.

use serde::Serialize;

use vfioctl_core::boot::BootDevice;
use vfioctl_core::boot::initramfs::{FileKind, Generator};
use vfioctl_host::boot::status::{BootStatus, RuleState};
use vfioctl_host::boot::{self, BootError, Change, InstallPlan, PlannedFile};
use vfioctl_host::vms;

use crate::cli::{BootArgs, BootCommand, BootInstallArgs, BootRemoveArgs, StatusArgs};
use crate::cmd::inventory::JSON_VERSION;
use crate::context::Context;
use crate::error::{CliError, chain};
use crate::exit::Exit;

/// `vfioctl boot ...`.
pub(crate) fn boot(ctx: &mut Context, args: &BootArgs) -> Result<Exit, CliError> {
    match &args.command {
        BootCommand::Install(a) => install(ctx, a),
        BootCommand::Remove(a) => remove(ctx, a),
        BootCommand::Status(a) => status(ctx, a),
    }
}

fn cli_error(e: &BootError) -> CliError {
    let exit = match e {
        BootError::Read { source, .. } | BootError::Write { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            Exit::Privileges
        }
        BootError::Write { .. } | BootError::Regenerate { .. } => Exit::Failed,
        _ => Exit::Usage,
    };
    CliError::new(exit, chain(e)).hint(e.remedy())
}

/// What happened to the initramfs.
#[derive(Serialize)]
struct Regeneration {
    command: Vec<String>,
    ran: bool,
}

/// Runs the generator on the real root when allowed; otherwise says what to run.
fn regenerate(
    ctx: &mut Context,
    generator: Option<Generator>,
    changed: bool,
    dry_run: bool,
    no_regenerate: bool,
) -> Result<Option<Regeneration>, CliError> {
    let Some(g) = generator else {
        return Ok(None);
    };
    let command: Vec<String> = g.regenerate().iter().map(|s| (*s).to_owned()).collect();
    let run = changed && !dry_run && !no_regenerate && ctx.root.is_real_root();
    if run {
        let output = boot::regenerate(g).map_err(|e| cli_error(&e))?;
        if ctx.verbose > 0 {
            ctx.note(output);
        }
    } else if changed && !dry_run && !ctx.json {
        let why = if ctx.root.is_real_root() {
            String::new()
        } else {
            format!(
                " inside {} (it is not this system's root)",
                ctx.root.path().display()
            )
        };
        ctx.note(format!(
            "run '{}'{why} to rebuild the initramfs",
            command.join(" ")
        ));
    }
    Ok(Some(Regeneration { command, ran: run }))
}

fn change_word(c: Change) -> &'static str {
    match c {
        Change::Create => "create",
        Change::Update => "update",
        Change::Unchanged => "unchanged",
        Change::Remove => "remove",
    }
}

fn render_devices(ctx: &mut Context, devices: &[BootDevice]) {
    ctx.line("Taken for vfio-pci when added, by address and identity:");
    for d in devices {
        ctx.line(format!(
            "  {}  {:<32}  VM {}",
            d.address,
            d.expected(),
            d.vm
        ));
    }
}

fn render_file(ctx: &mut Context, f: &PlannedFile, dry_run: bool) {
    let block = if f.kind == FileKind::Block {
        " (block of lines)"
    } else {
        ""
    };
    ctx.line(format!("  {:<9} {}{block}", change_word(f.change), f.path));
    if dry_run && f.change != Change::Unchanged && f.change != Change::Remove {
        for line in f.content.lines() {
            ctx.line(format!("      | {line}"));
        }
    }
}

#[derive(Serialize)]
struct InstallDoc<'a> {
    version: u32,
    operation: &'static str,
    dry_run: bool,
    #[serde(flatten)]
    plan: &'a InstallPlan,
    regeneration: Option<Regeneration>,
}

fn install(ctx: &mut Context, args: &BootInstallArgs) -> Result<Exit, CliError> {
    let dir = vms::vms_dir(&ctx.root, args.config.config.as_deref());
    let plan = boot::plan_install(&ctx.root, &dir, args.initramfs).map_err(|e| cli_error(&e))?;
    if !args.dry_run {
        boot::install(&ctx.root, &plan).map_err(|e| cli_error(&e))?;
    }
    let changed = plan.files.iter().any(|f| f.change != Change::Unchanged);
    let regeneration = regenerate(
        ctx,
        plan.generator,
        changed,
        args.dry_run,
        args.no_regenerate,
    )?;
    if ctx.json {
        ctx.json_document(&InstallDoc {
            version: JSON_VERSION,
            operation: "boot-install",
            dry_run: args.dry_run,
            plan: &plan,
            regeneration,
        })?;
        return Ok(Exit::Success);
    }
    render_devices(ctx, &plan.devices);
    match plan.generator {
        Some(g) => ctx.line(format!("Files (initramfs: {g}):")),
        None => {
            ctx.line(
                "Files (no initramfs generator: the rule acts once the real root's udev runs):",
            );
            ctx.note(
                "without the rule in the initramfs, a host driver that is in it can take a device \
                 first; name the generator with --initramfs",
            );
        }
    }
    for f in &plan.files {
        render_file(ctx, f, args.dry_run);
    }
    if let Some(r) = &regeneration {
        let what = if r.ran {
            "ran"
        } else if args.dry_run && ctx.root.is_real_root() && !args.no_regenerate {
            "would run"
        } else if !changed {
            "not needed (nothing changed)"
        } else {
            "to run"
        };
        ctx.line(format!("Regenerate ({what}): {}", r.command.join(" ")));
    }
    if args.dry_run {
        ctx.line("Dry run: nothing was written.");
    }
    Ok(Exit::Success)
}

fn remove(ctx: &mut Context, args: &BootRemoveArgs) -> Result<Exit, CliError> {
    let manifest = boot::remove(&ctx.root, !args.dry_run).map_err(|e| cli_error(&e))?;
    let Some(manifest) = manifest else {
        if ctx.json {
            ctx.json_document(&serde_json::json!({
                "version": JSON_VERSION, "operation": "boot-remove", "dry_run": args.dry_run,
                "files": [], "regeneration": null,
            }))?;
        } else {
            ctx.line("Nothing to remove: boot install has not written anything here.");
        }
        return Ok(Exit::Success);
    };
    let generator = boot::manifest_generator(&manifest);
    let regeneration = regenerate(ctx, generator, true, args.dry_run, args.no_regenerate)?;
    if ctx.json {
        ctx.json_document(&serde_json::json!({
            "version": JSON_VERSION, "operation": "boot-remove", "dry_run": args.dry_run,
            "files": manifest.files.iter().map(|f| &f.path).collect::<Vec<_>>(),
            "regeneration": regeneration,
        }))?;
        return Ok(Exit::Success);
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for f in &manifest.files {
        let what = if f.block {
            " (vfioctl's block of lines only)"
        } else {
            ""
        };
        ctx.line(format!("  {verb} {}{what}", f.path));
    }
    ctx.line(format!("  {verb} /{}", boot::MANIFEST));
    if let Some(r) = &regeneration {
        let what = if r.ran { "ran" } else { "to run" };
        ctx.line(format!("Regenerate ({what}): {}", r.command.join(" ")));
    }
    Ok(Exit::Success)
}

fn status(ctx: &mut Context, args: &StatusArgs) -> Result<Exit, CliError> {
    let inventory = ctx.inventory()?;
    let dir = vms::vms_dir(&ctx.root, args.config.config.as_deref());
    let status = boot::status::status(&ctx.root, &dir, &inventory).map_err(|e| cli_error(&e))?;
    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            #[serde(flatten)]
            status: &'a BootStatus,
        }
        ctx.json_document(&Doc {
            version: JSON_VERSION,
            status: &status,
        })?;
    } else {
        render_status(ctx, &status);
    }
    Ok(if status.ok {
        Exit::Success
    } else {
        Exit::Problems
    })
}

fn render_status(ctx: &mut Context, status: &BootStatus) {
    let rule = match status.rule {
        RuleState::Missing => "not installed (vfioctl boot install)",
        RuleState::Current => "installed, as the definitions say",
        RuleState::Stale => "installed, but the definitions changed since (vfioctl boot install)",
    };
    ctx.line(format!("Rule {}: {rule}", status.rule_path));
    if let Some(g) = &status.generator {
        ctx.line(format!("Initramfs: {g}"));
    }
    if status.devices.is_empty() {
        ctx.line("No VM has boot = true.");
    }
    for d in &status.devices {
        let state = serde_json::to_value(d.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        ctx.line(format!(
            "  {}  VM {:<12} {:<8} {}",
            d.device.address, d.device.vm, state, d.detail
        ));
    }
}
