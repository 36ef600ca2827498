//! The CLI's one error type: a sentence, a hint, and an exit code.

use std::fmt;

use vfioctl_host::HostError;

use crate::exit::Exit;

/// An error the CLI reports to the user and exits with.
#[derive(Debug)]
pub(crate) struct CliError {
    /// What went wrong, as one sentence.
    pub message: String,
    /// Further sentences of the same kind (every refusal that stands), each on its own line.
    pub more: Vec<String>,
    /// What to do about it.
    pub hint: Option<String>,
    /// The exit code.
    pub exit: Exit,
}

impl CliError {
    /// An error with an exit code and no hint.
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            more: Vec::new(),
            hint: None,
            exit,
        }
    }

    /// Adds further sentences, printed after the first as errors of their own.
    pub(crate) fn also(mut self, more: impl IntoIterator<Item = String>) -> Self {
        self.more.extend(more);
        self
    }

    /// Adds a hint.
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub(crate) use vfioctl_host::executor::chain;

impl CliError {
    /// The CLI's error for a use case's: its sentence, its remedy, and the exit code of its
    /// kind.
    pub(crate) fn from_op(error: &vfioctl_host::ops::OpError) -> Self {
        use vfioctl_host::ops::ErrorKind;
        let exit = match error.kind() {
            ErrorKind::Failed => Exit::Failed,
            ErrorKind::Usage => Exit::Usage,
            ErrorKind::Refused => Exit::Refused,
            ErrorKind::Privileges => Exit::Privileges,
        };
        Self {
            message: error.sentence(),
            more: Vec::new(),
            hint: error.remedy(),
            exit,
        }
    }
}

impl From<vfioctl_host::ops::OpError> for CliError {
    fn from(error: vfioctl_host::ops::OpError) -> Self {
        Self::from_op(&error)
    }
}

impl From<HostError> for CliError {
    fn from(error: HostError) -> Self {
        let exit = match &error {
            HostError::Read { source, .. } | HostError::Write { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                Exit::Privileges
            }
            HostError::Write { .. } => Exit::Failed,
            _ => Exit::Usage,
        };
        Self {
            message: error.os_words(),
            more: Vec::new(),
            hint: error.remedy(),
            exit,
        }
    }
}

impl From<vfioctl_core::select::SelectError> for CliError {
    fn from(error: vfioctl_core::select::SelectError) -> Self {
        Self::new(Exit::Usage, error.to_string()).hint(error.remedy())
    }
}

impl From<vfioctl_core::SelectorError> for CliError {
    fn from(error: vfioctl_core::SelectorError) -> Self {
        let hint = match &error {
            vfioctl_core::SelectorError::NotFound(_) => {
                "run 'vfioctl list' to see the addresses this host has"
            }
            vfioctl_core::SelectorError::Ambiguous { .. } => {
                "write the full address with its domain, e.g. 0001:03:00.0"
            }
        };
        Self::new(Exit::Usage, error.to_string()).hint(hint)
    }
}

/// The `--json` error document: `{"version": 1, "error": {"message", "hint", "exit"}}`.
pub(crate) fn json_document(error: &CliError) -> String {
    serde_json::json!({
        "version": crate::json::JSON_VERSION,
        "error": {
            "message": error.message,
            "hint": error.hint,
            "exit": error.exit as u8,
        }
    })
    .to_string()
}
