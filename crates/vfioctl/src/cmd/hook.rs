//! `hook`: vfioctl inside libvirt's and Proxmox VE's VM life cycle (the library's hook handlers,
//! rendered like `bind` and `restore`).

use std::io::Read;

use vfioctl_host::ops::hooks::{self, HookAction};

use crate::cli::{HookArgs, HookTarget};
use crate::cmd::bind::{render_bind, render_restore, timeouts};
use crate::context::Context;
use crate::error::CliError;
use crate::exit::Exit;

/// The most domain XML we read from libvirt.
const MAX_XML: u64 = 16 * 1024 * 1024;

/// `vfioctl hook`.
pub(crate) fn hook(ctx: &mut Context, args: &HookArgs) -> Result<Exit, CliError> {
    let host = crate::kernel::host(ctx);
    let action = match &args.target {
        HookTarget::Libvirt {
            domain,
            operation,
            sub_operation,
            ..
        } => hooks::libvirt(
            &host,
            domain,
            operation,
            sub_operation,
            || {
                let mut xml = String::new();
                std::io::stdin()
                    .take(MAX_XML)
                    .read_to_string(&mut xml)
                    .map(|_| xml)
            },
            timeouts(args.timeout),
        )?,
        HookTarget::Proxmox { vmid, phase } => {
            hooks::proxmox(&host, vmid, phase, timeouts(args.timeout))?
        }
    };
    match action {
        HookAction::Ignored => Ok(Exit::Success),
        HookAction::Bound(report) => render_bind(ctx, &report, false, false),
        HookAction::Restored(report) => {
            // The hook scripts run with --quiet, which drops notes; a device left to its holder
            // is worth one sentence in libvirt's or Proxmox's log all the same.
            if ctx.quiet {
                for why in report.left() {
                    eprintln!("vfioctl: {why}");
                }
            }
            render_restore(ctx, &report, false)
        }
    }
}
