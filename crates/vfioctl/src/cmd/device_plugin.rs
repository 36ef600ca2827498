//! `vfioctl device-plugin`: the kubelet device plugin, logging what it does on standard error.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use vfioctl_host::ops::device_plugin::{self, Event, Events, PluginError, PluginRequest};
use vfioctl_host::ops::plugin_config;

use crate::context::Context;
use crate::error::{CliError, chain};
use crate::exit::Exit;

/// `vfioctl device-plugin`.
#[derive(Debug, Args)]
pub(crate) struct DevicePluginArgs {
    /// The plugin's configuration: its resources, each named by selectors (default:
    /// /etc/vfioctl/device-plugin.toml; a path on this system, not under --root).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the kubelet's kubelet.sock is and the plugin's sockets go.
    #[arg(long, value_name = "DIR", default_value = device_plugin::DEVICE_PLUGIN_PATH)]
    pub plugin_dir: PathBuf,
    /// Seconds an unbind may block at start or stop before vfioctl gives up on it (positive).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    /// Read the configuration, print its resources and exit (0 when it is valid, 2 when not).
    #[arg(long)]
    pub check_config: bool,
}

fn describe(event: &Event) -> String {
    match event {
        Event::Advertised {
            resource,
            id,
            group,
            members,
        } => format!(
            "advertising {id} as {resource}: IOMMU group {group} ({})",
            members.join(", ")
        ),
        Event::Skipped {
            resource,
            id,
            reason,
        } => format!("not advertising {id} as {resource}: {reason}"),
        Event::Registered { resource, socket } => format!(
            "registered {resource} with the kubelet (serving {})",
            socket.display()
        ),
        Event::RegisterFailed { resource, reason } => {
            format!("registering {resource} failed, trying again: {reason}")
        }
        Event::Health {
            resource,
            id,
            problem: Some(why),
        } => format!("{id} ({resource}) is unhealthy: {why}"),
        Event::Health {
            resource,
            id,
            problem: None,
        } => format!("{id} ({resource}) is healthy"),
        Event::Allocated { resource, devices } => {
            format!("allocated {} of {resource}", devices.join(", "))
        }
        Event::AllocateRefused { resource, reason } => {
            format!("refused an allocation of {resource}: {reason}")
        }
        Event::Stopping => "stopping: giving the devices back".to_owned(),
    }
}

/// Runs the plugin until SIGTERM or SIGINT.
pub(crate) fn device_plugin(ctx: &mut Context, args: &DevicePluginArgs) -> Result<Exit, CliError> {
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("/etc/vfioctl/device-plugin.toml"));
    let config = plugin_config::load(&path).map_err(|e| {
        let exit = if e.is_permission() {
            Exit::Privileges
        } else {
            Exit::Usage
        };
        CliError::new(exit, chain(&e)).hint(e.remedy())
    })?;
    if args.check_config {
        for r in &config.resources {
            ctx.line(format!("{}: {} selector(s)", r.name, r.select.len()));
        }
        return Ok(Exit::Success);
    }
    let host = crate::kernel::host(ctx);
    // A daemon's log: each line as it happens, not gathered until the command ends.
    let events: Events = Arc::new(|event: Event| {
        let line = vfioctl_core::escape_controls(&describe(&event)).into_owned();
        let _ = writeln!(std::io::stderr().lock(), "vfioctl device-plugin: {line}");
    });
    let request = PluginRequest {
        config,
        plugin_dir: args.plugin_dir.clone(),
        timeouts: crate::cmd::bind::timeouts(args.timeout),
    };
    match device_plugin::serve(&host, &request, &events) {
        Ok(_) => Ok(Exit::Success),
        Err(PluginError::Op(e)) => Err(CliError::from_op(&e)),
        Err(e @ PluginError::GiveBack(_)) => Err(CliError::new(Exit::Failed, chain(&e))
            .hint("the journal still lists them: run 'vfioctl recover' once the cause is fixed")),
        Err(e) => Err(CliError::new(Exit::Failed, chain(&e))
            .hint("check that the plugin directory exists and is writable")),
    }
}
