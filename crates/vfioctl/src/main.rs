//! The vfioctl command: parses the command line, runs one command, renders, exits.
#![forbid(unsafe_code)]

mod cli;
mod cmd;
mod context;
mod error;
mod exit;
mod kernel;
mod names;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::context::Context;
use crate::error::CliError;
use crate::exit::Exit;

fn dispatch(ctx: &mut Context, command: &Command) -> Result<Exit, CliError> {
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
        Command::Apply(args) => cmd::vm::apply(ctx, args),
        Command::Status(args) => cmd::vm::status(ctx, args),
        Command::Run(args) => cmd::vm::run(ctx, args),
        Command::Slots(args) => cmd::predict::slots(ctx, args),
        Command::Recover(args) => cmd::bind::recover(ctx, args),
    }
}

fn report(error: &CliError) -> Exit {
    eprintln!("error: {}", error.message);
    if let Some(hint) = &error.hint {
        eprintln!("hint: {hint}");
    }
    error.exit
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Documentation needs no host: it must build on a packaging machine without sysfs.
    if let Command::GenerateDocs(args) = &cli.command {
        return match cmd::docs::generate(&args.out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => ExitCode::from(report(&e) as u8),
        };
    }
    let exit = match Context::new(&cli.global) {
        Err(error) => report(&error),
        Ok(mut ctx) => {
            let result = dispatch(&mut ctx, &cli.command);
            // Output gathered before a failure (a partial plan, notes) is still shown.
            if let Err(e) = ctx.flush() {
                eprintln!("error: cannot write output: {e}");
                return ExitCode::from(Exit::Failed as u8);
            }
            match result {
                Ok(exit) => exit,
                Err(error) => report(&error),
            }
        }
    };
    ExitCode::from(exit as u8)
}
