//! The PCI functions a host cannot give away (host bridges, LPC bridges, SMBus, the IOMMU), by
//! class, from a small table that a host may extend or override.
//!
//! vfioctl ships `data/host-critical.toml` (embedded) and reads `/etc/vfioctl/host-critical.toml`
//! on top of it:
//!
//! ```toml
//! version = 1
//!
//! [[function]]
//! class = "0601"
//! what = "LPC bridge"
//! ```

use serde::Deserialize;

use crate::ids::ClassCode;
use crate::known::KnownDevicesError;

/// The table vfioctl ships, as people read it.
pub const BUILTIN_HOST_CRITICAL: &str = include_str!("../../../data/host-critical.toml");

/// [`BUILTIN_HOST_CRITICAL`]'s entries (class, mask, words), which a test keeps equal to the
/// file: parsing the file took a tenth of every bind's instructions.
const BUILTIN_CLASSES: [(u32, u32, &str); 5] = [
    (0x060000, 0xffff00, "host bridge"),
    (0x060100, 0xffff00, "LPC bridge"),
    (0x0c0500, 0xffff00, "SMBus"),
    (0x080600, 0xffff00, "IOMMU"),
    (0x080000, 0xffff00, "interrupt controller"),
];

/// The table format this vfioctl reads.
pub const HOST_CRITICAL_VERSION: u32 = 1;

/// One class of host-critical functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriticalClass {
    /// The class bits that must match.
    pub class: u32,
    /// Which bits of the 24-bit class code `class` gives (`0xffff00` for base and subclass).
    pub mask: u32,
    /// The words refusals use ("LPC bridge").
    pub what: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    class: String,
    #[serde(default)]
    what: Option<String>,
    #[serde(default = "yes")]
    critical: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    version: u32,
    #[serde(default)]
    function: Vec<Entry>,
}

/// The host-critical classes, and the classes an override took off the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CriticalFunctions {
    classes: Vec<CriticalClass>,
    removed: Vec<(u32, u32)>,
}

fn parse_class(text: &str) -> Option<(u32, u32)> {
    let digits = text.trim().trim_start_matches("0x");
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let value = u32::from_str_radix(digits, 16).ok()?;
    match digits.len() {
        4 => Some((value << 8, 0xffff00)),
        6 => Some((value, 0xffffff)),
        _ => None,
    }
}

impl CriticalFunctions {
    /// The table shipped with vfioctl.
    pub fn builtin() -> Self {
        Self {
            classes: BUILTIN_CLASSES
                .iter()
                .map(|&(class, mask, what)| CriticalClass {
                    class,
                    mask,
                    what: what.to_owned(),
                })
                .collect(),
            removed: Vec::new(),
        }
    }

    /// Parses a table; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, KnownDevicesError> {
        let error = |message: String| KnownDevicesError {
            file: file.to_owned(),
            line: 1,
            column: 1,
            message,
        };
        let table: TableFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let before = &text[..offset.min(text.len())];
            KnownDevicesError {
                file: file.to_owned(),
                line: before.matches('\n').count() + 1,
                column: before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
                message: e.message().trim().to_owned(),
            }
        })?;
        if table.version != HOST_CRITICAL_VERSION {
            return Err(error(format!(
                "version {} is not one this vfioctl reads (it reads {HOST_CRITICAL_VERSION})",
                table.version
            )));
        }
        let mut out = Self::default();
        for entry in table.function {
            let (class, mask) = parse_class(&entry.class).ok_or_else(|| {
                error(format!(
                    "class {:?} is not 4 or 6 hex digits (e.g. \"0601\")",
                    entry.class
                ))
            })?;
            if entry.critical {
                out.classes.push(CriticalClass {
                    class,
                    mask,
                    what: entry.what.unwrap_or_else(|| "platform function".to_owned()),
                });
            } else {
                out.removed.push((class, mask));
            }
        }
        Ok(out)
    }

    /// This table with `local`'s entries: an entry for the same class replaces ours, and
    /// `critical = false` removes it.
    pub fn merged(mut self, local: Self) -> Self {
        let replaced = |c: &CriticalClass| {
            local
                .classes
                .iter()
                .map(|l| (l.class, l.mask))
                .chain(local.removed.iter().copied())
                .any(|(class, mask)| class == c.class && mask == c.mask)
        };
        self.classes.retain(|c| !replaced(c));
        self.classes.extend(local.classes);
        self.removed.extend(local.removed);
        self
    }

    /// What the host needs a function of `class` for, when it does.
    pub fn what(&self, class: ClassCode) -> Option<&str> {
        // The most specific entry wins, so a 6-digit override beats a 4-digit one.
        self.classes
            .iter()
            .filter(|c| class.0 & c.mask == c.class)
            .max_by_key(|c| c.mask)
            .map(|c| c.what.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_is_the_shipped_file() {
        let file = CriticalFunctions::parse(BUILTIN_HOST_CRITICAL, "<built-in>").unwrap();
        assert_eq!(CriticalFunctions::builtin(), file);
    }

    #[test]
    fn builtin_table_names_the_chipset_functions() {
        let table = CriticalFunctions::builtin();
        assert_eq!(table.what(ClassCode(0x060100)), Some("LPC bridge"));
        assert_eq!(table.what(ClassCode(0x0c0500)), Some("SMBus"));
        assert_eq!(table.what(ClassCode(0x060000)), Some("host bridge"));
        assert_eq!(table.what(ClassCode(0x080600)), Some("IOMMU"));
        assert_eq!(table.what(ClassCode(0x040300)), None);
        assert_eq!(table.what(ClassCode(0x060400)), None);
    }

    #[test]
    fn a_local_table_can_remove_and_add_classes() {
        let local = CriticalFunctions::parse(
            "version = 1\n[[function]]\nclass = \"0c05\"\ncritical = false\n\
             [[function]]\nclass = \"088000\"\nwhat = \"board controller\"\n",
            "/etc/vfioctl/host-critical.toml",
        )
        .unwrap();
        let table = CriticalFunctions::builtin().merged(local);
        assert_eq!(table.what(ClassCode(0x0c0500)), None);
        assert_eq!(table.what(ClassCode(0x088000)), Some("board controller"));
        assert_eq!(table.what(ClassCode(0x060100)), Some("LPC bridge"));
    }

    #[test]
    fn bad_class_and_version_are_errors() {
        let bad = CriticalFunctions::parse("version = 1\n[[function]]\nclass = \"06\"\n", "f");
        assert!(bad.unwrap_err().message.contains("4 or 6 hex digits"));
        assert!(CriticalFunctions::parse("version = 9\n", "f").is_err());
        let unknown =
            CriticalFunctions::parse("version = 1\n[[function]]\nclass = \"0601\"\nx = 1\n", "f")
                .unwrap_err();
        assert_eq!(unknown.line, 4);
    }
}
