//! `vfioctl export`: this node's passthrough-ready groups for Proxmox VE, Nova or KubeVirt, and
//! `--check` of a file written earlier.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;
use vfioctl_core::export::Format;
use vfioctl_host::ops::export::{self as ops, ExportError};

use crate::cmd::inventory::JSON_VERSION;
use crate::context::Context;
use crate::error::{CliError, chain};
use crate::exit::Exit;

/// The engines.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ExportFormat {
    /// Proxmox VE cluster mappings (/etc/pve/mapping/pci.cfg entries for this node).
    ProxmoxMapping,
    /// OpenStack Nova's [pci] device_spec and alias options.
    Nova,
    /// KubeVirt's permittedHostDevices (a merge patch for the KubeVirt resource).
    Kubevirt,
}

// `vfioctl export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The engine to write for.
    #[arg(required_unless_present = "check", conflicts_with = "check")]
    pub format: Option<ExportFormat>,
    /// Say which entries of FILE (an earlier export, any format) no longer match this node:
    /// moved, changed identity, split or merged group (exit 4 when one does).
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
    /// For kubevirt: the device plugin's configuration, for its resource names (default:
    /// /etc/vfioctl/device-plugin.toml when it exists; else vfioctl.io/<group id>).
    #[arg(long, value_name = "FILE")]
    pub plugin_config: Option<PathBuf>,
}

fn error(e: &ExportError) -> CliError {
    if let ExportError::Op(op) = e {
        return CliError::from_op(op);
    }
    let exit = match e {
        ExportError::Read { .. } | ExportError::Parse { .. } | ExportError::PluginConfig(_) => {
            Exit::Usage
        }
        _ => Exit::Failed,
    };
    let mut err = CliError::new(exit, chain(e));
    if let Some(hint) = e.remedy() {
        err = err.hint(hint);
    }
    err
}

/// Runs `export`.
pub(crate) fn export(ctx: &mut Context, args: &ExportArgs) -> Result<Exit, CliError> {
    let host = crate::kernel::host(ctx);
    if let Some(file) = &args.check {
        return check(ctx, &host, file);
    }
    let format = match args.format {
        Some(ExportFormat::ProxmoxMapping) => Format::ProxmoxMapping,
        Some(ExportFormat::Nova) => Format::Nova,
        Some(ExportFormat::Kubevirt) | None => Format::Kubevirt,
    };
    let default_config = std::path::Path::new("/etc/vfioctl/device-plugin.toml");
    let plugin = match (&args.plugin_config, format) {
        (Some(path), _) => Some(vfioctl_host::ops::plugin_config::load(path)),
        (None, Format::Kubevirt) if ctx.root.is_real_root() && default_config.exists() => {
            Some(vfioctl_host::ops::plugin_config::load(default_config))
        }
        _ => None,
    }
    .transpose()
    .map_err(|e| error(&ExportError::PluginConfig(e)))?;
    let report = ops::export(&host, format, plugin.as_ref()).map_err(|e| error(&e))?;
    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            format: Format,
            groups: &'a [vfioctl_core::export::ReadyGroup],
            document: &'a ops::ExportDocument,
            refused: &'a [String],
        }
        ctx.json_document(&Doc {
            version: JSON_VERSION,
            format,
            groups: &report.groups,
            document: &report.document,
            refused: &report.refused,
        })?;
    } else {
        ctx.line(report.text.trim_end());
    }
    for reason in &report.refused {
        ctx.note(reason.clone());
    }
    Ok(if report.refused.is_empty() {
        Exit::Success
    } else {
        Exit::Refused
    })
}

fn check(
    ctx: &mut Context,
    host: &vfioctl_host::ops::Host,
    file: &std::path::Path,
) -> Result<Exit, CliError> {
    let report = ops::check_file(host, file).map_err(|e| error(&e))?;
    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            format: Format,
            entries: usize,
            ok: bool,
            drifts: &'a [vfioctl_core::export::check::Drift],
        }
        ctx.json_document(&Doc {
            version: JSON_VERSION,
            format: report.format,
            entries: report.entries,
            ok: report.drifts.is_empty(),
            drifts: &report.drifts,
        })?;
    } else {
        for d in &report.drifts {
            let kind = serde_json::to_value(d.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            ctx.line(format!("{}: {kind}: {}", d.entry, d.text));
        }
        let drifted: std::collections::BTreeSet<&str> =
            report.drifts.iter().map(|d| d.entry.as_str()).collect();
        ctx.line(format!(
            "{} of {} entries no longer match this node",
            drifted.len(),
            report.entries
        ));
    }
    Ok(if report.drifts.is_empty() {
        Exit::Success
    } else {
        Exit::Problems
    })
}
