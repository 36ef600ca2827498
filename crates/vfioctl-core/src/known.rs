//! Devices known to work, or to misbehave, under VFIO passthrough.
//!
//! The table is data, not code: vfioctl ships `data/known-devices.toml` (embedded in the binary)
//! and a host may override or extend it with `/etc/vfioctl/devices.toml`. An entry for an ID that
//! the shipped table already has replaces it, so a site that knows better can say so.
//!
//! ```toml
//! version = 1
//!
//! [[device]]
//! id = "1b4b:9230"
//! name = "Marvell 88SE9230 SATA controller"
//! status = "misbehaves"
//! note = "can make the guest panic at boot"
//! source = "https://ten64doc.traverse.com.au/software/vfio/"
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::VendorDevice;

/// The table format this vfioctl reads.
pub const KNOWN_DEVICES_VERSION: u32 = 1;

/// What is known about a device under passthrough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KnownStatus {
    /// Reported to work.
    Works,
    /// Works in some setups and fails in others (guest panics, resets that hang).
    Misbehaves,
    /// Does not work.
    Broken,
}

/// One entry of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownDevice {
    /// Vendor and device ID.
    pub id: VendorDevice,
    /// What the device is, for messages (pci.ids names may be missing).
    #[serde(default)]
    pub name: Option<String>,
    /// What is known.
    pub status: KnownStatus,
    /// One sentence: what happens, and when.
    pub note: String,
    /// Where this comes from (a URL).
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    version: u32,
    #[serde(default)]
    device: Vec<KnownDevice>,
}

/// Why a table file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct KnownDevicesError {
    /// The file, as on `/` (or `<built-in>`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// The known-devices table, by ID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownDevices {
    entries: BTreeMap<VendorDevice, KnownDevice>,
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl KnownDevices {
    /// Parses a table; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, KnownDevicesError> {
        let error_at = |offset: usize, message: String| {
            let (line, column) = line_column(text, offset);
            KnownDevicesError {
                file: file.to_owned(),
                line,
                column,
                message,
            }
        };
        let table: TableFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            error_at(offset, e.message().trim().to_owned())
        })?;
        if table.version != KNOWN_DEVICES_VERSION {
            let offset = text.find("version").unwrap_or(0);
            return Err(error_at(
                offset,
                format!(
                    "version {} is not one this vfioctl reads (it reads {KNOWN_DEVICES_VERSION})",
                    table.version
                ),
            ));
        }
        let mut entries = BTreeMap::new();
        for entry in table.device {
            if entries.contains_key(&entry.id) {
                let needle = format!("\"{}\"", entry.id);
                let offset = text.rfind(&needle).unwrap_or(0);
                return Err(error_at(offset, format!("{} is listed twice", entry.id)));
            }
            entries.insert(entry.id, entry);
        }
        Ok(Self { entries })
    }

    /// This table with `other`'s entries added, replacing entries for the same ID.
    pub fn merged(mut self, other: Self) -> Self {
        self.entries.extend(other.entries);
        self
    }

    /// The entry for `id`.
    pub fn get(&self, id: VendorDevice) -> Option<&KnownDevice> {
        self.entries.get(&id)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_overrides() {
        let base = KnownDevices::parse(
            "version = 1\n[[device]]\nid = \"1b4b:9230\"\nstatus = \"misbehaves\"\nnote = \"panics\"\n",
            "a",
        )
        .unwrap();
        let local = KnownDevices::parse(
            "version = 1\n[[device]]\nid = \"1b4b:9230\"\nstatus = \"works\"\nnote = \"fine with a BIOS update\"\n",
            "b",
        )
        .unwrap();
        let id: VendorDevice = "1b4b:9230".parse().unwrap();
        assert_eq!(
            base.clone().merged(local).get(id).unwrap().status,
            KnownStatus::Works
        );
        assert_eq!(base.get(id).unwrap().status, KnownStatus::Misbehaves);
    }

    #[test]
    fn the_packaged_host_table_parses_and_changes_nothing() {
        // The Debian package installs it as /etc/vfioctl/devices.toml, a conffile.
        let text = include_str!("../../../packaging/etc/devices.toml");
        let table = KnownDevices::parse(text, "/etc/vfioctl/devices.toml").expect("parses");
        assert!(table.is_empty());
    }

    #[test]
    fn unknown_field_is_reported_with_line_and_column() {
        let err = KnownDevices::parse(
            "version = 1\n[[device]]\nid = \"1b4b:9230\"\nstatus = \"works\"\nnote = \"x\"\ncolour = \"red\"\n",
            "/etc/vfioctl/devices.toml",
        )
        .unwrap_err();
        assert_eq!((err.line, err.column), (6, 1), "{err}");
        assert!(
            err.to_string()
                .starts_with("/etc/vfioctl/devices.toml:6:1: ")
        );
        assert!(err.message.contains("colour"), "{err}");
    }

    #[test]
    fn bad_id_status_and_version_are_errors() {
        let bad_id = KnownDevices::parse(
            "version = 1\n[[device]]\nid = \"1b4b\"\nstatus = \"works\"\nnote = \"x\"\n",
            "f",
        )
        .unwrap_err();
        assert_eq!(bad_id.line, 3);
        let bad_status = KnownDevices::parse(
            "version = 1\n[[device]]\nid = \"1b4b:9230\"\nstatus = \"great\"\nnote = \"x\"\n",
            "f",
        )
        .unwrap_err();
        assert_eq!(bad_status.line, 4);
        let bad_version = KnownDevices::parse("version = 2\n", "f").unwrap_err();
        assert_eq!(bad_version.line, 1);
        let twice = KnownDevices::parse(
            "version = 1\n[[device]]\nid = \"1b4b:9230\"\nstatus = \"works\"\nnote = \"x\"\n\
             [[device]]\nid = \"1b4b:9230\"\nstatus = \"works\"\nnote = \"y\"\n",
            "f",
        )
        .unwrap_err();
        assert_eq!(twice.line, 7);
    }
}
