//! VM definitions: `vm list|check|qemu-args`, `apply` at boot, `status`, and the managed `run`.
//!
//! Every command that binds calls the library's VM use cases, which go through the same plan,
//! journal and transaction as `bind`, with the VM as the journal's owner, so `restore`,
//! `recover` and rollback treat its devices like any others.

mod apply;
mod check;
mod list;
mod qemu;
mod run;
mod status;

use std::path::PathBuf;

use vfioctl_host::vms::{self, VmFile, VmFileError};

use crate::cli::{ConfigArgs, VmArgs, VmCommand};
use crate::context::Context;
use crate::error::CliError;
use crate::exit::Exit;

pub(crate) use apply::apply;
pub(crate) use run::run;
pub(crate) use status::status;

/// `vfioctl vm ...`.
pub(crate) fn vm(ctx: &mut Context, args: &VmArgs) -> Result<Exit, CliError> {
    match &args.command {
        VmCommand::List(a) => list::list(ctx, a),
        VmCommand::Check(a) => check::check(ctx, a),
        VmCommand::QemuArgs(a) => qemu::qemu_args(ctx, a),
    }
}

fn definitions_dir(ctx: &Context, config: &ConfigArgs) -> PathBuf {
    vms::vms_dir(&ctx.root, config.config.as_deref())
}

fn load(ctx: &Context, config: &ConfigArgs, name: &str) -> Result<VmFile, CliError> {
    vms::load_at(
        &ctx.root,
        ctx.kernel.vf_links(),
        config.config.as_deref(),
        name,
    )
    .map_err(|e| CliError::from_op(&e.into()))
}

fn list_all(
    ctx: &Context,
    config: &ConfigArgs,
) -> Result<Vec<Result<VmFile, VmFileError>>, CliError> {
    vms::list_at(&ctx.root, ctx.kernel.vf_links(), config.config.as_deref())
        .map_err(|e| CliError::from_op(&e.into()))
}

fn not_bound(driver: Option<&str>) -> String {
    match driver {
        Some(driver) => format!("not bound (on {driver})"),
        None => "not bound (no driver)".to_owned(),
    }
}
