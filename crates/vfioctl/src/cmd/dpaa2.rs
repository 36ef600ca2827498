//! `vfioctl dpaa2 create|destroy`: DPAA2 containers made for VMs with restool.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use vfioctl_core::dpaa2::Link;
use vfioctl_core::{FslMcName, Owner};
use vfioctl_host::ops::dpaa2::{self, CreateRequest, Dpaa2Error};

use crate::context::Context;
use crate::error::CliError;
use crate::exit::Exit;
use crate::kernel::KernelSource;

/// `vfioctl dpaa2 ...`.
#[derive(Debug, Args)]
pub(crate) struct Dpaa2Args {
    /// The restool program (default: `restool` from PATH).
    #[arg(long, value_name = "PATH", global = true)]
    pub restool: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Dpaa2Command,
}

/// The DPAA2 commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Dpaa2Command {
    /// Make a child container of the root container for a VM, with a DPNI and the DPBP, DPIO,
    /// DPCON and DPMCP its driver needs, wired to a DPMAC or DPDMUX.
    Create(CreateArgs),
    /// Take apart a container `dpaa2 create` made, giving its objects back.
    Destroy(DestroyArgs),
}

/// `dpaa2 create`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The VM the container is for (its owner: `vm:NAME`).
    #[arg(long, value_name = "NAME")]
    pub for_vm: String,
    /// Connect the DPNI to this physical port.
    #[arg(long, value_name = "dpmac.N", conflicts_with = "dpdmux")]
    pub dpmac: Option<FslMcName>,
    /// Connect the DPNI to this DPDMUX.
    #[arg(long, value_name = "dpdmux.N")]
    pub dpdmux: Option<FslMcName>,
    /// The host's root container.
    #[arg(long, value_name = "dprc.N", default_value = "dprc.1")]
    pub root_container: FslMcName,
    /// Print the restool commands without running them.
    #[arg(long)]
    pub dry_run: bool,
}

/// `dpaa2 destroy`.
#[derive(Debug, Args)]
pub(crate) struct DestroyArgs {
    /// The container.
    pub container: FslMcName,
    /// Print the restool commands without running them.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs a `dpaa2` command.
pub(crate) fn dpaa2(
    ctx: &mut Context,
    args: &Dpaa2Args,
    kernels: &dyn KernelSource,
) -> Result<Exit, CliError> {
    let restool = kernels.restool(&ctx.root, args.restool.clone());
    match &args.command {
        Dpaa2Command::Create(a) => {
            let request = CreateRequest {
                owner: Owner::Vm(a.for_vm.clone()),
                root: a.root_container.clone(),
                link: match (&a.dpmac, &a.dpdmux) {
                    (Some(m), _) => Some(Link::Dpmac(m.clone())),
                    (None, Some(d)) => Some(Link::Dpdmux(d.clone())),
                    (None, None) => None,
                },
            };
            if a.dry_run {
                return Ok(commands(ctx, &dpaa2::create_plan(&request)));
            }
            let record = dpaa2::create(&ctx.root, restool.as_ref(), &request).map_err(error)?;
            let container = record
                .made
                .container
                .as_ref()
                .map_or_else(String::new, ToString::to_string);
            if ctx.json {
                let objects: Vec<String> = record
                    .made
                    .assigned
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                ctx.line(format!(
                    "{}",
                    serde_json::json!({
                        "container": container,
                        "owner": record.owner.to_string(),
                        "objects": objects,
                        "connected": record.made.connected.as_ref().map(ToString::to_string),
                    })
                ));
            } else {
                ctx.line(format!("created {container} for {}", record.owner));
                for o in &record.made.assigned {
                    ctx.line(format!("  {o} (plugged)"));
                }
                if let (Some(dpni), Some(link)) = (&record.made.connected, &request.link) {
                    ctx.line(format!("  {dpni} connected to {}", link.endpoint()));
                }
                ctx.line(format!(
                    "next: vfioctl bind {container}; vfioctl dpaa2 destroy {container} to give it back"
                ));
            }
            Ok(Exit::Success)
        }
        Dpaa2Command::Destroy(a) => {
            if a.dry_run {
                let plan = dpaa2::destroy_plan(&ctx.root, &a.container).map_err(error)?;
                return Ok(commands(ctx, &plan));
            }
            dpaa2::destroy(&ctx.root, restool.as_ref(), &a.container).map_err(error)?;
            ctx.line(format!(
                "destroyed {}: its objects are back with the MC",
                a.container
            ));
            Ok(Exit::Success)
        }
    }
}

fn commands(ctx: &mut Context, plan: &[Vec<String>]) -> Exit {
    if ctx.json {
        ctx.line(format!("{}", serde_json::json!({ "restool": plan })));
    } else {
        for argv in plan {
            ctx.line(format!("restool {}", argv.join(" ")));
        }
    }
    Exit::Success
}

#[expect(clippy::needless_pass_by_value, reason = "used as a map_err function")]
fn error(e: Dpaa2Error) -> CliError {
    let exit = match e {
        Dpaa2Error::NotMade(_) | Dpaa2Error::InUse(_) => Exit::Refused,
        _ => Exit::Failed,
    };
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    CliError::new(exit, message).hint(e.remedy())
}
