//! Reading the device plugin's configuration file.

use std::path::{Path, PathBuf};

use vfioctl_core::deviceplugin::PluginConfig;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PluginConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid configuration; the text is `file:line:col: message`.
    #[error("{0}")]
    Invalid(String),
}

impl PluginConfigError {
    /// The file could not be read for want of privileges.
    pub fn is_permission(&self) -> bool {
        matches!(self, Self::Read { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied)
    }

    /// What to do.
    pub fn remedy(&self) -> &'static str {
        match self {
            // `vfioctl --config DIR device-plugin` lands here too: before the command, --config
            // is the VM definitions' directory, which clap gives the plugin's own option.
            Self::Read { source, .. } if source.kind() == std::io::ErrorKind::IsADirectory => {
                "device-plugin's --config names its configuration file (a TOML file such as \
                 packaging/kubernetes/device-plugin.toml), not the VM definitions' directory"
            }
            Self::Read { .. } if self.is_permission() => {
                "run as root, or make the file readable by the plugin's user"
            }
            Self::Read { .. } => "write the file (see packaging/kubernetes/device-plugin.toml)",
            Self::Invalid(_) => {
                "fix the file: 'version = 1' and [[resource]] tables with name and select"
            }
        }
    }
}

/// Reads and parses `path` (a path on the running system, not under the root: the DaemonSet
/// mounts it from a ConfigMap).
pub fn load(path: &Path) -> Result<PluginConfig, PluginConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| PluginConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    PluginConfig::parse(&text)
        .map_err(|e| PluginConfigError::Invalid(e.render(&path.display().to_string())))
}
