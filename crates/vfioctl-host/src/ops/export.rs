//! `export`: this node's ready groups in an engine's format, and `export --check` of a file
//! written earlier.

use std::path::{Path, PathBuf};

use vfioctl_core::PciAddress;
use vfioctl_core::deviceplugin::{PluginConfig, advertised};
use vfioctl_core::export::check::{self, Drift, ParseError, RecordedSet};
use vfioctl_core::export::nova::NovaConfig;
use vfioctl_core::export::proxmox::Mapping;
use vfioctl_core::export::{Format, ReadyGroup, kubevirt, nova, proxmox};

use super::ready::read_ready;
use super::{Host, OpError, hooks::node_name};

/// Why an export or a check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the host failed.
    #[error(transparent)]
    Op(#[from] OpError),
    /// Proxmox names nodes, and this one has no name.
    #[error("{path} does not name this node")]
    NoNodeName {
        /// `/etc/hostname` under the root.
        path: PathBuf,
    },
    /// The file to check cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file to check is not in the format it looks like.
    #[error("{path} is not a {format:?} export")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The format it was read as.
        format: Format,
        /// Why.
        source: ParseError,
    },
    /// The device plugin's configuration cannot be used.
    #[error(transparent)]
    PluginConfig(#[from] super::plugin_config::PluginConfigError),
    /// Encoding the document failed.
    #[error("cannot encode the export")]
    Encode(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ExportError {
    /// What to do.
    pub fn remedy(&self) -> Option<String> {
        match self {
            Self::Op(e) => e.remedy(),
            Self::NoNodeName { .. } => Some("write this node's name to /etc/hostname".to_owned()),
            Self::Read { .. } => Some("name a file this user can read".to_owned()),
            Self::Parse { .. } => Some(
                "name a file that 'vfioctl export' wrote (pci.cfg, nova.conf's [pci], or \
                 KubeVirt's permittedHostDevices)"
                    .to_owned(),
            ),
            Self::PluginConfig(e) => Some(e.remedy().to_owned()),
            Self::Encode(_) => None,
        }
    }
}

/// The document of one format.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum ExportDocument {
    /// Proxmox mappings for this node.
    ProxmoxMapping(Vec<Mapping>),
    /// Nova's `[pci]` options.
    Nova(NovaConfig),
    /// KubeVirt's `permittedHostDevices`.
    Kubevirt(kubevirt::PermittedHostDevices),
}

/// An export.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The groups exported.
    pub groups: Vec<ReadyGroup>,
    /// The document.
    pub document: ExportDocument,
    /// The document as the engine reads it.
    pub text: String,
    /// Groups the format cannot express, each with its sentence.
    pub refused: Vec<String>,
}

fn node(host: &Host) -> Result<String, ExportError> {
    node_name(host).ok_or_else(|| ExportError::NoNodeName {
        path: host.root().display_path(&host.root().join("etc/hostname")),
    })
}

fn encode(e: impl std::error::Error + Send + Sync + 'static) -> ExportError {
    ExportError::Encode(Box::new(e))
}

/// The ready groups in `format`. For KubeVirt, `plugin` (the device plugin's configuration)
/// gives the resource names and which groups are advertised; without it every ready group is,
/// as `vfioctl.io/<id>`.
pub fn export(
    host: &Host,
    format: Format,
    plugin: Option<&PluginConfig>,
) -> Result<ExportReport, ExportError> {
    let (state, groups) = read_ready(host)?;
    let (document, text, refused) = match format {
        Format::ProxmoxMapping => {
            let node = node(host)?;
            let slot_functions = |a: PciAddress| {
                state
                    .pci
                    .devices()
                    .iter()
                    .filter(|d| d.address.same_slot(&a))
                    .count()
            };
            let mappings = proxmox::mappings(&groups, &node, &slot_functions);
            let text = proxmox::render(&mappings);
            (ExportDocument::ProxmoxMapping(mappings), text, Vec::new())
        }
        Format::Nova => {
            let config = nova::config(&groups);
            let text = nova::render(&config).map_err(encode)?;
            let refused = config.refused.iter().map(|r| r.reason.clone()).collect();
            (ExportDocument::Nova(config), text, refused)
        }
        Format::Kubevirt => {
            let permitted = match plugin {
                Some(config) => {
                    let advertised = advertised(config, &groups);
                    let exported: Vec<ReadyGroup> =
                        advertised.iter().map(|a| a.group.clone()).collect();
                    let name = |g: &ReadyGroup| {
                        advertised
                            .iter()
                            .find(|a| a.group.id == g.id)
                            .map(|a| a.resource.clone())
                            .unwrap_or_else(|| kubevirt::default_resource(g))
                    };
                    kubevirt::permitted(&exported, &name)
                }
                None => kubevirt::permitted(&groups, &kubevirt::default_resource),
            };
            let text = kubevirt::render(&permitted).map_err(encode)?;
            (ExportDocument::Kubevirt(permitted), text, Vec::new())
        }
    };
    Ok(ExportReport {
        groups,
        document,
        text,
        refused,
    })
}

/// What `--check` found.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The format the file was read as.
    pub format: Format,
    /// How many recorded sets it has (for this node).
    pub entries: usize,
    /// The entries that no longer match.
    pub drifts: Vec<Drift>,
}

/// Checks the export `path` against the host as it is now.
pub fn check_file(host: &Host, path: &Path) -> Result<CheckReport, ExportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ExportError::Read {
        path: path.to_owned(),
        source,
    })?;
    let format = Format::detect(&text);
    let parse_error = |source| ExportError::Parse {
        path: path.to_owned(),
        format,
        source,
    };
    let sets: Vec<RecordedSet> = match format {
        Format::ProxmoxMapping => check::from_proxmox(&text, &node(host)?),
        Format::Nova => check::from_nova(&text).map_err(parse_error)?,
        Format::Kubevirt => check::from_kubevirt(&text).map_err(parse_error)?,
    };
    let (state, ready) = read_ready(host)?;
    Ok(CheckReport {
        format,
        entries: sets.len(),
        drifts: check::check(&sets, &state.pci, &ready),
    })
}
