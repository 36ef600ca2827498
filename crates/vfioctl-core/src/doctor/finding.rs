//! What `doctor` reports: a [`Finding`] and its [`Severity`].

use std::fmt;

use serde::Serialize;

use crate::address::PciAddress;

/// How bad a finding is. Errors and warnings make `doctor` exit 4; infos do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Passthrough will fail (or is unsafe) until this is fixed.
    Error,
    /// Passthrough may fail, or works with a risk worth knowing.
    Warning,
    /// Worth knowing; nothing is wrong.
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
        })
    }
}

/// One thing `doctor` found. The field names are part of the versioned JSON schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable kebab-case identifier of the check (`iommu-off`).
    pub id: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// The device it is about, when it is about one.
    pub device: Option<PciAddress>,
    /// What was read to find it, as on `/`.
    pub path: String,
    /// What is wrong, in one sentence.
    pub message: String,
    /// What to do about it.
    pub remedy: String,
}

impl Finding {
    pub(super) fn new(
        id: &'static str,
        severity: Severity,
        device: Option<PciAddress>,
        path: impl Into<String>,
        message: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Self {
        Self {
            id,
            severity,
            device,
            path: path.into(),
            message: message.into(),
            remedy: remedy.into(),
        }
    }

    /// Errors and warnings are problems; infos are not.
    pub fn is_problem(&self) -> bool {
        self.severity != Severity::Info
    }
}
