//! `run`: the library's supervisor, with its progress on stderr and QEMU's status as ours.

use serde::Serialize;

use vfioctl_core::DeviceRef;
use vfioctl_core::render::qemu::shell_join;
use vfioctl_core::vm::VmName;
use vfioctl_host::ops::run::{RunEvent, prepare, supervise};

use super::load;
use super::qemu::pasteable;
use crate::cli::RunArgs;
use crate::cmd::bind::{render_plan, require_privileges, timeouts};
use crate::cmd::inventory::JSON_VERSION;
use crate::context::Context;
use crate::error::CliError;
use crate::exit::Exit;

fn say(ctx: &Context, text: impl AsRef<str>) {
    if !ctx.quiet {
        eprintln!("vfioctl: {}", text.as_ref());
    }
}

/// Ends vfioctl with QEMU's status, after writing what was gathered.
fn exit_with(ctx: &mut Context, code: i32) -> ! {
    let _ = ctx.flush();
    std::process::exit(code)
}

/// `vfioctl run`.
pub(crate) fn run(ctx: &mut Context, args: &RunArgs) -> Result<Exit, CliError> {
    require_privileges(ctx, args.dry_run)?;
    let vm = load(ctx, &args.config, &args.name)?;
    let host = crate::kernel::host(ctx);
    let prepared = prepare(&host, &vm, args.dry_run)?;
    for w in &prepared.preflight.warnings {
        ctx.note(w.clone());
    }
    if args.dry_run {
        let plan = &prepared.preflight.plan;
        if ctx.json {
            #[derive(Serialize)]
            struct Doc<'a> {
                version: u32,
                name: &'a VmName,
                dry_run: bool,
                bind: Vec<&'a DeviceRef>,
                groups: Vec<vfioctl_core::GroupId>,
                argv: &'a [String],
                restool: &'a [Vec<String>],
                sriov: &'a [String],
            }
            ctx.json_document(&Doc {
                version: JSON_VERSION,
                name: &vm.name,
                dry_run: true,
                bind: plan.to_bind().map(|d| &d.device).collect(),
                groups: plan.vfio_groups(),
                argv: &prepared.argv,
                restool: &prepared.restool,
                sriov: &prepared.sriov,
            })?;
        } else {
            if !prepared.restool.is_empty() {
                ctx.line("DPAA2 containers to make first (then bound and passed as vfio-fsl-mc):");
                for argv in &prepared.restool {
                    ctx.line(format!("  restool {}", argv.join(" ")));
                }
            }
            if !prepared.sriov.is_empty() {
                ctx.line(
                    "SR-IOV changes first (the VFs made then are bound and passed too, each on a \
                     root port of its own):",
                );
                for change in &prepared.sriov {
                    ctx.line(format!("  {change}"));
                }
            }
            render_plan(ctx, plan, true);
            ctx.line("QEMU command line:");
            for line in pasteable(&prepared.argv) {
                ctx.line(format!("  {line}"));
            }
            ctx.line("Dry run: nothing was changed.");
        }
        return Ok(Exit::Success);
    }
    let code = {
        let mut events = |event: RunEvent| match event {
            RunEvent::Made(containers) => say(
                ctx,
                format!(
                    "made {} with restool",
                    vfioctl_core::comma_list(&containers)
                ),
            ),
            RunEvent::VfsSetUp(changes) => {
                say(ctx, format!("set up the VM's VFs: {}", changes.join("; ")));
            }
            RunEvent::Bound(devices) => say(
                ctx,
                format!("bound {} to vfio", vfioctl_core::comma_list(&devices)),
            ),
            RunEvent::SignalBeforeStart(signal) => say(
                ctx,
                format!("signal {signal} before QEMU started; giving the devices back"),
            ),
            RunEvent::Starting(argv) => say(ctx, format!("starting {}", shell_join(&argv))),
            RunEvent::Exited { code, forwarded } => {
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
            }
            RunEvent::GaveBack(devices) => say(
                ctx,
                format!("gave back {}", vfioctl_core::comma_list(&devices)),
            ),
        };
        supervise(&host, prepared, timeouts(args.timeout), &mut events)?
    };
    if code == 0 {
        Ok(Exit::Success)
    } else {
        exit_with(ctx, code)
    }
}
