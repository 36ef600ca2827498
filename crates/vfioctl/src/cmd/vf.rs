//! `vfioctl vf list|create|set`: SR-IOV virtual functions, created, configured and given back.

use clap::{Args, Subcommand};
use serde::Serialize;
use vfioctl_core::Owner;
use vfioctl_core::sriov::{MacAddress, PfEntry, SriovError, VfLinkChange};
use vfioctl_host::ops::vf::{self, CreateRequest, SetRequest, VfError};
use vfioctl_host::transaction::Rollback;

use crate::cmd::bind::{require_privileges, timeouts};
use crate::context::Context;
use crate::error::{CliError, chain};
use crate::exit::Exit;
use crate::json::JSON_VERSION;

// `vfioctl vf ...`.
#[derive(Debug, Args)]
pub(crate) struct VfArgs {
    #[command(subcommand)]
    pub command: VfCommand,
}

/// The VF commands.
#[derive(Debug, Subcommand)]
pub(crate) enum VfCommand {
    /// Every SR-IOV capable device (or one) with sriov_totalvfs, sriov_numvfs,
    /// sriov_drivers_autoprobe, and each VF's index, address, driver, holder and link settings.
    List(ListArgs),
    /// Set a PF's VF count (through 0 when it must change), with autoprobe off by default so new
    /// VFs land on no host driver; journaled, so 'restore' puts it back.
    Create(CreateArgs),
    /// Set a VF's MAC, VLAN, trust or spoof checking through netlink on its PF's interface;
    /// journaled and given back with the VF.
    Set(SetArgs),
}

// `vf list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only this PF.
    pub pf: Option<String>,
}

/// `vf create`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The PF.
    pub pf: String,
    /// How many VFs (0 removes them).
    pub count: u32,
    /// Leave sriov_drivers_autoprobe at 1: new VFs probe host drivers as they appear.
    #[arg(long)]
    pub autoprobe: bool,
    /// Leave sriov_drivers_autoprobe at 0 (the default; kept for scripts that say it).
    #[arg(long, conflicts_with = "autoprobe")]
    pub no_autoprobe: bool,
    /// Who the VFs are for (its restore gives the PF back).
    #[arg(long, value_name = "NAME")]
    pub owner: Option<String>,
    /// Print the writes without making them.
    #[arg(long)]
    pub dry_run: bool,
}

fn on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!(
            "{} is neither on nor off",
            vfioctl_core::echoed(other)
        )),
    }
}

/// `vf set`.
#[derive(Debug, Args)]
pub(crate) struct SetArgs {
    /// The PF.
    pub pf: String,
    /// The VF's index (virtfnN).
    pub index: u32,
    /// The MAC the PF gives the VF.
    #[arg(long)]
    pub mac: Option<MacAddress>,
    /// The VLAN id the PF tags the VF's traffic with (0: none).
    #[arg(long, value_parser = clap::value_parser!(u16).range(0..4095))]
    pub vlan: Option<u16>,
    /// Trust the VF (it may change its MAC, go promiscuous).
    #[arg(long, value_parser = on_off, value_name = "on|off")]
    pub trust: Option<bool>,
    /// MAC/VLAN spoof checking.
    #[arg(long, value_parser = on_off, value_name = "on|off")]
    pub spoofchk: Option<bool>,
    /// Who the VF is set up for.
    #[arg(long, value_name = "NAME")]
    pub owner: Option<String>,
    /// Print the change without making it.
    #[arg(long)]
    pub dry_run: bool,
}

fn owner(name: Option<&String>) -> Owner {
    name.map_or(Owner::Manual, |n| Owner::Other(n.clone()))
}

/// The CLI's error for a VF use case's.
fn error(e: VfError) -> CliError {
    match e {
        VfError::Op(op) => CliError::from(op),
        VfError::Sriov(s) => {
            let exit = match s {
                SriovError::VfsInUse(_) => Exit::Refused,
                SriovError::NoPfDriver(_) => Exit::Failed,
                _ => Exit::Usage,
            };
            CliError::new(exit, format!("{s}; nothing was changed")).hint(s.remedy())
        }
        VfError::NotPci(_) => CliError::new(Exit::Usage, e.to_string())
            .hint("name the PF by its PCI address ('vfioctl vf list' lists them)"),
        VfError::Step { source, rollback } => {
            let exit = if source.is_permission() {
                Exit::Privileges
            } else {
                Exit::Failed
            };
            let (said, hint) = match &rollback {
                Rollback::Clean => (
                    "the PF was put back as it was",
                    "see 'dmesg' for the kernel's reason",
                ),
                Rollback::Incomplete(_) => (
                    "putting it back failed; the journal keeps what to undo",
                    "run 'vfioctl recover' once the cause is fixed",
                ),
            };
            let mut message = format!("{}; {said}", chain(&source));
            if let Rollback::Incomplete(f) = &rollback {
                message.push_str(&format!(" ({})", f.join("; ")));
            }
            CliError::new(exit, message).hint(hint)
        }
    }
}

/// Runs a `vf` command.
pub(crate) fn vf(ctx: &mut Context, args: &VfArgs) -> Result<Exit, CliError> {
    match &args.command {
        VfCommand::List(a) => list(ctx, a),
        VfCommand::Create(a) => create(ctx, a),
        VfCommand::Set(a) => set(ctx, a),
    }
}

fn list(ctx: &mut Context, args: &ListArgs) -> Result<Exit, CliError> {
    let host = crate::kernel::host(ctx);
    let pfs = vf::list(&host, args.pf.as_deref()).map_err(error)?;
    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            pfs: &'a [PfEntry],
        }
        ctx.json_document(&Doc {
            version: JSON_VERSION,
            pfs: &pfs,
        })?;
        return Ok(Exit::Success);
    }
    if pfs.is_empty() {
        ctx.line("No SR-IOV capable devices.");
    }
    for pf in &pfs {
        let auto = match pf.drivers_autoprobe {
            Some(true) => "on",
            Some(false) => "off",
            None => "?",
        };
        ctx.line(format!(
            "{}  {}{}  VFs {}/{}  autoprobe {auto}",
            pf.pf,
            pf.driver.as_deref().unwrap_or("(no driver)"),
            pf.interface
                .as_ref()
                .map_or_else(String::new, |i| format!(" ({i})")),
            pf.numvfs,
            pf.totalvfs,
        ));
        for v in &pf.vfs {
            let mut line = format!(
                "  vf {:<3} {}  {}  group {}",
                v.index,
                v.address,
                v.driver.as_deref().unwrap_or("(no driver)"),
                v.iommu_group
                    .map_or_else(|| "-".to_owned(), |g| g.to_string())
            );
            if let Some(l) = &v.link {
                line.push_str(&format!("  mac {}", l.mac));
                if l.vlan != 0 {
                    line.push_str(&format!(" vlan {}", l.vlan));
                }
                if let Some(t) = l.trust {
                    line.push_str(&format!(" trust {}", if t { "on" } else { "off" }));
                }
                if let Some(s) = l.spoofchk {
                    line.push_str(&format!(" spoofchk {}", if s { "on" } else { "off" }));
                }
            }
            if let Some(h) = &v.holder {
                line.push_str(&format!("  held by {h}"));
            }
            ctx.line(line);
        }
    }
    Ok(Exit::Success)
}

fn create(ctx: &mut Context, args: &CreateArgs) -> Result<Exit, CliError> {
    require_privileges(ctx, args.dry_run)?;
    let request = CreateRequest {
        pf: args.pf.clone(),
        count: args.count,
        autoprobe: args.autoprobe && !args.no_autoprobe,
        owner: owner(args.owner.as_ref()),
        dry_run: args.dry_run,
        timeouts: timeouts(None),
    };
    let report = vf::create(&crate::kernel::host(ctx), &request).map_err(error)?;
    let writes: Vec<String> = report.steps.iter().filter_map(|s| s.describe()).collect();
    if ctx.json {
        ctx.json_document(&serde_json::json!({
            "version": JSON_VERSION,
            "operation": "vf-create",
            "dry_run": args.dry_run,
            "pf": report.pf,
            "count": args.count,
            "autoprobe": request.autoprobe,
            "writes": report.steps.iter().filter_map(|s| s.write()).collect::<Vec<_>>(),
            "vfs": report.vfs,
            "result": if args.dry_run { "planned" } else if writes.is_empty() { "nothing_to_do" } else { "created" },
        }))?;
        return Ok(Exit::Success);
    }
    if writes.is_empty() {
        ctx.line(format!(
            "{} has {} VFs with autoprobe {} already; nothing to do.",
            report.pf,
            args.count,
            if request.autoprobe { "on" } else { "off" }
        ));
        return Ok(Exit::Success);
    }
    for w in &writes {
        ctx.line(format!("  {w}"));
    }
    if args.dry_run {
        ctx.line("Dry run: nothing was changed.");
    } else {
        ctx.line(format!(
            "{} now has {} VFs: {}",
            report.pf,
            report.vfs.len(),
            vfioctl_core::comma_list(&report.vfs)
        ));
        ctx.line(format!(
            "Give the PF back with: vfioctl restore {}",
            report.pf
        ));
    }
    Ok(Exit::Success)
}

fn set(ctx: &mut Context, args: &SetArgs) -> Result<Exit, CliError> {
    require_privileges(ctx, args.dry_run)?;
    let change = VfLinkChange {
        mac: args.mac,
        vlan: args.vlan,
        trust: args.trust,
        spoofchk: args.spoofchk,
    };
    if change.is_empty() {
        return Err(CliError::new(Exit::Usage, "nothing to set")
            .hint("give --mac, --vlan, --trust or --spoofchk"));
    }
    let request = SetRequest {
        pf: args.pf.clone(),
        index: args.index,
        change,
        owner: owner(args.owner.as_ref()),
        dry_run: args.dry_run,
    };
    let report = vf::set(&crate::kernel::host(ctx), &request).map_err(error)?;
    if ctx.json {
        ctx.json_document(&serde_json::json!({
            "version": JSON_VERSION,
            "operation": "vf-set",
            "dry_run": args.dry_run,
            "vf": report.vf,
            "index": args.index,
            "change": request.change,
            "before": report.before,
            "after": report.after,
        }))?;
        return Ok(Exit::Success);
    }
    if let Some(d) = report.step.describe() {
        ctx.line(format!("  {d}"));
    }
    if args.dry_run {
        ctx.line("Dry run: nothing was changed.");
    } else {
        ctx.line(format!(
            "VF {} ({}) now has mac {} vlan {}; 'vfioctl restore {}' puts it back.",
            args.index, report.vf, report.after.mac, report.after.vlan, report.vf
        ));
    }
    Ok(Exit::Success)
}
