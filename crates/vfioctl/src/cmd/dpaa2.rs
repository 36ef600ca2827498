//! `vfioctl dpaa2 create|destroy`: DPAA2 containers made for VMs with restool.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;
use vfioctl_core::dpaa2::{Link, Made};
use vfioctl_core::{FslMcName, Owner};
use vfioctl_host::ops::dpaa2::{self, CreateRequest, Dpaa2Error};

use crate::cmd::inventory::JSON_VERSION;
use crate::context::Context;
use crate::error::CliError;
use crate::exit::Exit;
use crate::kernel::KernelSource;

// `vfioctl dpaa2 ...`.
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

/// The `dpaa2 create|destroy --json` document.
#[derive(Serialize)]
struct Doc {
    version: u32,
    operation: &'static str,
    dry_run: bool,
    /// The container made or taken apart (`null` in a create's dry run).
    container: Option<String>,
    /// Who it is for (create only).
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    /// The objects moved into it, plugged (create only).
    #[serde(skip_serializing_if = "Option::is_none")]
    objects: Option<Vec<String>>,
    /// Its DPNI, once connected, and what to (create only).
    #[serde(skip_serializing_if = "Option::is_none")]
    connected: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<Option<String>>,
    /// The restool commands run (or a dry run's, new names as `<type>.<new>`), argv after
    /// `restool`.
    restool: Vec<Vec<String>>,
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
                if ctx.json {
                    return json(ctx, &created(&request, &Made::default(), true));
                }
                return Ok(commands(ctx, &dpaa2::create_plan(&request)));
            }
            let record = dpaa2::create(&ctx.root, restool.as_ref(), &request).map_err(error)?;
            if ctx.json {
                return json(ctx, &created(&request, &record.made, false));
            }
            let container = record
                .made
                .container
                .as_ref()
                .map_or_else(String::new, ToString::to_string);
            let link = request.link.as_ref().map(Link::endpoint);
            ctx.line(format!("created {container} for {}", record.owner));
            for o in &record.made.assigned {
                ctx.line(format!("  {o} (plugged)"));
            }
            if let (Some(dpni), Some(link)) = (&record.made.connected, &link) {
                ctx.line(format!("  {dpni} connected to {link}"));
            }
            ctx.line(format!(
                "next: vfioctl bind {container}; vfioctl dpaa2 destroy {container} to give it back"
            ));
            Ok(Exit::Success)
        }
        Dpaa2Command::Destroy(a) => {
            let plan = dpaa2::destroy_plan(&ctx.root, &a.container).map_err(error)?;
            if !a.dry_run {
                dpaa2::destroy(&ctx.root, restool.as_ref(), &a.container).map_err(error)?;
            }
            if ctx.json {
                return json(
                    ctx,
                    &Doc {
                        version: JSON_VERSION,
                        operation: "dpaa2_destroy",
                        dry_run: a.dry_run,
                        container: Some(a.container.to_string()),
                        owner: None,
                        objects: None,
                        connected: None,
                        link: None,
                        restool: plan,
                    },
                );
            }
            if a.dry_run {
                return Ok(commands(ctx, &plan));
            }
            ctx.line(format!(
                "destroyed {}: its objects are back with the MC",
                a.container
            ));
            Ok(Exit::Success)
        }
    }
}

/// The document of a create that made `made` (nothing yet, in a dry run).
fn created(request: &CreateRequest, made: &Made, dry_run: bool) -> Doc {
    Doc {
        version: JSON_VERSION,
        operation: "dpaa2_create",
        dry_run,
        container: made.container.as_ref().map(ToString::to_string),
        owner: Some(request.owner.to_string()),
        objects: Some(made.assigned.iter().map(ToString::to_string).collect()),
        connected: Some(made.connected.as_ref().map(ToString::to_string)),
        link: Some(request.link.as_ref().map(Link::endpoint)),
        restool: dpaa2::create_commands(request, made),
    }
}

fn json(ctx: &mut Context, doc: &Doc) -> Result<Exit, CliError> {
    ctx.json_document(doc)?;
    Ok(Exit::Success)
}

fn commands(ctx: &mut Context, plan: &[Vec<String>]) -> Exit {
    for argv in plan {
        ctx.line(format!("restool {}", argv.join(" ")));
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
