//! VM definitions: which devices a VM gets, named by address *and* identity, and how QEMU runs it.
//!
//! A definition lives in `/etc/vfioctl/vms/<name>.toml`:
//!
//! ```toml
//! version = 1
//! boot = true             # bound at boot by `vfioctl apply`
//! user = "qemu"           # owns /dev/vfio/<group>
//!
//! [[device]]
//! address = "0001:03:00.0"
//! id = "168c:003e"        # what must be found at that address
//! subsystem = "1a56:143a" # optional, stricter
//!
//! dprc = ["dprc.2"]       # DPAA2 containers
//!
//! [[dpaa2]]               # a DPAA2 container made for each run, taken apart after
//! dpmac = "dpmac.2"       # its DPNI's link (or dpdmux = "dpdmux.0")
//!
//! [qemu]
//! machine = "virt"
//! memory = "2G"
//! ```
//!
//! A device is named by its address because that is what the kernel binds, and by its identity
//! because addresses move: a firmware update renumbers buses, a new card takes a slot. When the
//! device at an address is not the one the definition expects, vfioctl refuses it and names both,
//! instead of silently handing the host's NVMe disk to a guest.
//!
//! Parsing and validation are pure: the host layer reads the file, this module turns its text into
//! a [`VmDefinition`] or an error with a line and column, compares it with an [`Inventory`](crate::Inventory), and
//! renders the QEMU command line.

mod cmdline;
mod definition;
mod disk;
mod dpaa2;
mod host;
#[cfg(test)]
mod tests;
pub mod vf;

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::Serialize;

pub use cmdline::{CommandLineError, command_line, qemu_escape};
pub use definition::{MemorySize, QemuConfig, VmDefinition, VmDevice};
pub use disk::{Disk, Media};
pub use dpaa2::{DEFAULT_ROOT_CONTAINER, MadeContainer};
pub use host::{
    Claim, DeviceCheck, DeviceState, GroupCoverage, check_devices, claims, group_coverage,
    passthrough,
};

/// The version of the definition format this vfioctl reads and writes.
pub const VM_FORMAT_VERSION: u32 = 1;

/// The name of a VM: the stem of its `<name>.toml`, so never a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VmName(String);

/// Why a string is not a VM name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a VM name (letters, digits, '_', '.' and '-', not starting with '.' or '-', \
     at most 64 characters)"
)]
pub struct VmNameError(pub String);

impl VmName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for VmName {
    type Err = VmNameError;

    /// Accepts `[A-Za-z0-9_.-]+`: no `/`, so a name can never leave the definitions directory, and
    /// no leading `.` (hidden files, `..`) or `-` (it would read as an option).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && !text.starts_with(['.', '-'])
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(VmNameError(text.to_owned()))
        }
    }
}

impl fmt::Display for VmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for VmName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A position in a definition file, both 1-based; the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Location {
    /// Line.
    pub line: usize,
    /// Column.
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `text`.
    pub fn of(text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Self { line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Why a definition's text is not a valid definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct VmParseError {
    /// Where the problem is, when known.
    pub location: Option<Location>,
    /// What is wrong, as one lowercase sentence.
    pub message: String,
}

impl VmParseError {
    pub(crate) fn at(text: &str, span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        Self {
            location: span.map(|s| Location::of(text, s.start)),
            message: message.into(),
        }
    }

    /// The error as compilers print it: `file:line:column: message`.
    pub fn render(&self, file: &str) -> String {
        match self.location {
            Some(l) => format!("{file}:{}:{}: {}", l.line, l.column, self.message),
            None => format!("{file}: {}", self.message),
        }
    }
}
