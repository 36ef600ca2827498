//! Errors of the host layer: each names the path involved and carries a remedy.

use std::io;
use std::path::PathBuf;

/// Something went wrong reading or writing the host's kernel interfaces.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The root directory given with `--root` does not exist or holds no `sys`.
    #[error("{path} is not a usable root: it has no sys/bus/pci")]
    BadRoot {
        /// The root that was given.
        path: PathBuf,
    },
    /// Reading a file or link failed.
    #[error("failed to read {path}")]
    Read {
        /// What was read.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A sysfs attribute holds something the kernel never writes.
    #[error("{path} holds {found:?}, which is not a valid {what}")]
    Garbage {
        /// The attribute.
        path: PathBuf,
        /// What it should have held.
        what: &'static str,
        /// What it held (cut short).
        found: String,
    },
    /// A symlink points outside the root, or loops.
    #[error("{path} links outside the root or loops")]
    BadLink {
        /// The link.
        path: PathBuf,
    },
    /// Writing an attribute failed.
    #[error("failed to write {value:?} to {path}")]
    Write {
        /// The attribute.
        path: PathBuf,
        /// What was written.
        value: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl HostError {
    /// What the user can do about it.
    pub fn remedy(&self) -> Option<String> {
        match self {
            Self::BadRoot { .. } => Some(
                "pass --root a directory that holds a sysfs tree (sys/bus/pci), or omit --root to read /"
                    .to_owned(),
            ),
            Self::Read { source, .. } | Self::Write { source, .. }
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                Some("run vfioctl as root (sudo vfioctl ...)".to_owned())
            }
            Self::Garbage { .. } | Self::BadLink { .. } => Some(
                "the sysfs tree is damaged or not a kernel's; check the --root you gave".to_owned(),
            ),
            _ => None,
        }
    }

    /// The path the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Self::BadRoot { path }
            | Self::Read { path, .. }
            | Self::Garbage { path, .. }
            | Self::BadLink { path }
            | Self::Write { path, .. } => path,
        }
    }
}

impl HostError {
    /// The message and its cause in the OS's words ("failed to read X: No such file or
    /// directory"), without the errno number Rust appends.
    pub fn os_words(&self) -> String {
        let mut text = self.to_string();
        if let Some(source) = std::error::Error::source(self) {
            text.push_str(": ");
            text.push_str(&os_words(&source.to_string()));
        }
        text
    }
}

/// An I/O error's text without Rust's " (os error N)" suffix.
pub(crate) fn os_words(text: &str) -> String {
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text.to_owned(),
    }
}

/// Cuts a possibly huge or binary value down to something printable.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned();
    if bytes.len() > 40 {
        format!("{text}...")
    } else {
        text
    }
}
