//! `vm qemu-args`: a definition's QEMU command line, one option per line to paste.

use serde::Serialize;

use vfioctl_core::render::qemu::shell_join;
use vfioctl_core::vm::VmName;
use vfioctl_host::ops::bind::HostState;
use vfioctl_host::ops::run::render_command;
use vfioctl_host::ops::vm::preflight;
use vfioctl_host::ops::vm_dpaa2;

use super::load;
use crate::cli::VmNameArgs;
use crate::cmd::inventory::JSON_VERSION;
use crate::context::Context;
use crate::error::CliError;
use crate::exit::Exit;

/// The command line as lines to paste: one option and its value per line, continued with `\`.
pub(super) fn pasteable(argv: &[String]) -> Vec<String> {
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

pub(super) fn qemu_args(ctx: &mut Context, args: &VmNameArgs) -> Result<Exit, CliError> {
    let vm = load(ctx, &args.config, &args.name)?;
    let host = crate::kernel::host(ctx);
    // The VM's devices, their groups and bridges are all its command line depends on.
    let names: Vec<String> = vm
        .definition
        .addresses()
        .iter()
        .map(ToString::to_string)
        .collect();
    let state = HostState::read_for(&host, &names)?;
    let pre = preflight(&host, &state, &vm)?;
    let journal = vfioctl_host::journal::Journal::load(&ctx.root)
        .map_err(|e| CliError::from_op(&e.into()))?;
    let unmade = vm_dpaa2::unmade(&vm, &journal).len();
    // The containers made for the VM are handed to QEMU like those it lists.
    let vm = vm_dpaa2::with_made(&vm, &vm_dpaa2::made_for(&journal, &vm_dpaa2::owner(&vm)));
    let argv = render_command(&vm, &state, &pre).map_err(|e| CliError::from_op(&e.into()))?;
    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            name: &'a VmName,
            argv: &'a [String],
        }
        ctx.json_document(&Doc {
            version: JSON_VERSION,
            name: &vm.name,
            argv: &argv,
        })?;
    } else {
        for line in pasteable(&argv) {
            ctx.line(line);
        }
    }
    if unmade > 0 {
        ctx.note(format!(
            "{unmade} [[dpaa2]] container(s) are not made yet: 'vfioctl run' makes them and adds \
             their -device vfio-fsl-mc"
        ));
    }
    if !vm.definition.dprc.is_empty() || unmade > 0 {
        ctx.note(
            "vfio-fsl-mc exists only in NXP's QEMU (mainline QEMU has no such device); 'vfioctl \
             vm check' asks the binary",
        );
    }
    Ok(Exit::Success)
}
