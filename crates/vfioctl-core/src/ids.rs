//! Vendor, device and class identifiers as sysfs and users write them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `vendor:device` pair such as `10de:2684` (lspci's `-d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VendorDevice {
    /// PCI vendor ID.
    pub vendor: u16,
    /// PCI device ID.
    pub device: u16,
}

/// Why a string is not a `vendor:device` pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a vendor:device ID (expected four hex digits each, e.g. 10de:2684)")]
pub struct VendorDeviceError(pub String);

fn hex16(text: &str) -> Option<u16> {
    (text.len() == 4 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u16::from_str_radix(text, 16).ok())
        .flatten()
}

impl FromStr for VendorDevice {
    type Err = VendorDeviceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || VendorDeviceError(text.to_owned());
        let (v, d) = text.split_once(':').ok_or_else(err)?;
        Ok(Self {
            vendor: hex16(v).ok_or_else(err)?,
            device: hex16(d).ok_or_else(err)?,
        })
    }
}

impl fmt::Display for VendorDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor, self.device)
    }
}

impl Serialize for VendorDevice {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for VendorDevice {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A 24-bit PCI class code: base class, subclass, programming interface (`0x060400`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClassCode(pub u32);

impl ClassCode {
    /// Base class (`0x06` bridge, `0x03` display, ...).
    pub fn base(self) -> u8 {
        (self.0 >> 16) as u8
    }
    /// Subclass within the base class.
    pub fn subclass(self) -> u8 {
        (self.0 >> 8) as u8
    }
    /// Programming interface.
    pub fn prog_if(self) -> u8 {
        self.0 as u8
    }
    /// True for PCI-to-PCI bridges (class 0x0604) and CardBus bridges (0x0607).
    pub fn is_pci_bridge(self) -> bool {
        self.base() == 0x06 && matches!(self.subclass(), 0x04 | 0x07 | 0x09)
    }
    /// True for display controllers (class 0x03).
    pub fn is_display(self) -> bool {
        self.base() == 0x03
    }
    /// The kernel's `pci_is_vga()`: a VGA controller (0x0300), or a pre-2.0 device that says it
    /// is VGA-compatible (0x0001).
    pub fn is_vga(self) -> bool {
        matches!(self.0 >> 8, 0x0300 | 0x0001)
    }
}

impl fmt::Display for ClassCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06x}", self.0 & 0x00ff_ffff)
    }
}

impl Serialize for ClassCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Parses a sysfs hex attribute such as `0x168c\n` (vendor, device, class).
///
/// Returns `None` for anything the kernel would never write, so a garbage tree is reported rather
/// than misread.
pub fn parse_sysfs_hex(text: &str) -> Option<u32> {
    let t = text.trim_end_matches('\n').trim();
    let digits = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X"))?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_device_round_trips() {
        let id: VendorDevice = "10de:2684".parse().unwrap();
        assert_eq!(id.to_string(), "10de:2684");
        assert_eq!(id.vendor, 0x10de);
    }

    #[test]
    fn vendor_device_rejects_short_and_garbage() {
        for bad in [
            "10de",
            "10de:",
            "10de:268",
            "xyz1:2684",
            "10de:2684:1",
            "+0de:2684",
        ] {
            assert!(bad.parse::<VendorDevice>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sysfs_hex_accepts_kernel_format_only() {
        assert_eq!(parse_sysfs_hex("0x168c\n"), Some(0x168c));
        assert_eq!(parse_sysfs_hex("0x060400\n"), Some(0x060400));
        assert_eq!(parse_sysfs_hex("168c"), None);
        assert_eq!(parse_sysfs_hex("0x"), None);
        assert_eq!(parse_sysfs_hex("0xzz"), None);
        assert_eq!(parse_sysfs_hex(""), None);
    }

    #[test]
    fn bridge_class_is_detected() {
        assert!(ClassCode(0x060400).is_pci_bridge());
        assert!(!ClassCode(0x020000).is_pci_bridge());
        assert_eq!(ClassCode(0x028000).to_string(), "028000");
    }
}
