//! The vfioctl command: parses the command line, runs one command, renders, exits.
//!
//! The binary is [`run`] on the running kernel. Tests build another binary from the same entry
//! point with a [`KernelSource`] that serves simulated trees, so the shipped one holds no simulator.
#![forbid(unsafe_code)]

mod cli;
mod cmd;
mod context;
mod error;
mod exit;
mod json;
mod kernel;
mod names;
mod term;

pub use kernel::{KernelSource, RealKernelSource};

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};

use crate::cli::{Cli, Command, DefinitionsCommand, PluginCommand};
use crate::context::Context;
use crate::error::CliError;
use crate::exit::Exit;

fn dispatch(
    ctx: &mut Context,
    command: &Command,
    kernels: &dyn KernelSource,
) -> Result<Exit, CliError> {
    match command {
        Command::List(args) => cmd::inventory::list(ctx, args),
        Command::Groups(args) => cmd::inventory::groups(ctx, args),
        Command::Show(args) => cmd::inventory::show(ctx, args),
        Command::Bind(args) => cmd::bind::bind(ctx, args),
        Command::Restore(args) => cmd::bind::restore(ctx, args),
        Command::Check(args) => cmd::check::check(ctx, args),
        Command::GenerateDocs(_) => Ok(Exit::Success),
        Command::WriteAttr(args) => Ok(kernel::write_attr_helper(ctx, args)),
        Command::Hook(args) => cmd::hook::hook(ctx, args),
        Command::Doctor(args) => cmd::doctor::doctor(ctx, args),
        Command::QemuArgs(args) => cmd::render::qemu(ctx, args),
        Command::LibvirtXml(args) => cmd::render::libvirt(ctx, args),
        Command::Vm(args) => cmd::vm::vm(ctx, args),
        Command::Definitions(DefinitionsCommand::Apply(args)) => cmd::vm::apply(ctx, args),
        Command::Definitions(DefinitionsCommand::Status(args)) => cmd::vm::status(ctx, args),
        Command::Definitions(DefinitionsCommand::Run(args)) => cmd::vm::run(ctx, args),
        Command::Slots(args) => cmd::predict::slots(ctx, args),
        Command::Boot(args) => cmd::boot::boot(ctx, args),
        Command::Recover(args) => cmd::bind::recover(ctx, args),
        Command::Dpaa2(args) => cmd::dpaa2::dpaa2(ctx, args, kernels),
        Command::Vf(args) => cmd::vf::vf(ctx, args),
        Command::Export(args) => cmd::export::export(ctx, args),
        Command::Plugin(PluginCommand::DevicePlugin(args)) => {
            cmd::device_plugin::device_plugin(ctx, args)
        }
    }
}

/// Says what went wrong: one sentence and a hint on stderr and, for `--json`, an error document
/// on stdout (scripts parse stdout), unless the command already printed its own document.
fn report(error: &CliError, json: bool, color: term::ColorWhen) -> Exit {
    use std::io::Write as _;
    use term::{Tone, paint};
    let mut stderr = context::stderr(color, json);
    for sentence in std::iter::once(&error.message).chain(&error.more) {
        let _ = writeln!(
            stderr,
            "{} {}",
            paint(Tone::Refused, "error:"),
            vfioctl_core::escape_controls(sentence)
        );
    }
    if let Some(hint) = &error.hint {
        let _ = writeln!(
            stderr,
            "{} {}",
            paint(Tone::Hint, "hint:"),
            vfioctl_core::escape_controls(hint)
        );
    }
    if json {
        println!("{}", error::json_document(error));
    }
    error.exit
}

/// Parses the command line; a usage error under `--json` is a JSON error document too.
fn parse() -> Result<Cli, ExitCode> {
    let mut command = Cli::command();
    let parsed = command
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|mut matches| {
            let cli = Cli::from_arg_matches_mut(&mut matches);
            std::mem::forget(matches);
            cli
        })
        .map_err(|e| e.format(&mut command));
    // Freeing clap's command tree and matches took a fifth of a start-up, and the memory is the
    // process's until it exits anyway: both are left to the exit.
    std::mem::forget(command);
    match parsed {
        Ok(cli) => Ok(cli),
        Err(e) if e.use_stderr() && std::env::args_os().any(|a| a == "--json") => {
            let message = e
                .kind()
                .as_str()
                .map_or_else(|| "the command line is not valid".to_owned(), str::to_owned);
            let error = CliError::new(Exit::Usage, message)
                .hint("run 'vfioctl --help' (or 'vfioctl <command> --help')");
            let _ = e.print();
            println!("{}", error::json_document(&error));
            Err(ExitCode::from(Exit::Usage as u8))
        }
        Err(e) => e.exit(),
    }
}

/// Runs the command line of this process with the kernel `kernels` gives for its root, and
/// returns the exit status.
pub fn run(kernels: &dyn KernelSource) -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let json = cli.global.json;
    let color = if json {
        term::ColorWhen::Never
    } else {
        cli.global.color
    };
    // Documentation needs no host: it must build on a packaging machine without sysfs.
    if let Command::GenerateDocs(args) = &cli.command {
        return match cmd::docs::generate(&args.out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => ExitCode::from(report(&e, json, color) as u8),
        };
    }
    let exit = match Context::new(&cli.global, kernels) {
        Err(error) => report(&error, json, color),
        Ok(mut ctx) => {
            let result = dispatch(&mut ctx, &cli.command, kernels);
            // Output gathered before a failure (a partial plan, notes) is still shown.
            if let Err(e) = ctx.flush() {
                eprintln!("error: cannot write output: {e}");
                return ExitCode::from(Exit::Failed as u8);
            }
            match result {
                Ok(exit) => exit,
                Err(error) => report(&error, json && !ctx.printed_document(), color),
            }
        }
    };
    ExitCode::from(exit as u8)
}
