//! PCI addresses (`DDDD:BB:DD.F`) and the selectors users type.
//!
//! The kernel names a PCI function `<domain>:<bus>:<device>.<function>` in sysfs. The domain is at
//! least four hex digits but may be wider (Intel VMD uses `10000:`), and on the Ten64 it is not
//! zero (`0001:03:00.0`), so the domain is always kept and always printed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The address of one PCI function, as the kernel names it in `/sys/bus/pci/devices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    /// PCI segment (domain); up to 32 bits wide.
    pub domain: u32,
    /// Bus number.
    pub bus: u8,
    /// Device (slot) number, 0..=31.
    pub device: u8,
    /// Function number, 0..=7.
    pub function: u8,
}

/// Why a string is not a PCI address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The text does not have the `[DDDD:]BB:DD.F` shape.
    #[error("'{0}' is not a PCI address (expected DDDD:BB:DD.F, e.g. 0001:03:00.0)")]
    Malformed(String),
    /// A field is out of its range.
    #[error("'{text}' is not a PCI address: {field} {value:#x} is out of range (max {max:#x})")]
    OutOfRange {
        /// The text that was parsed.
        text: String,
        /// Which field is out of range.
        field: &'static str,
        /// The value found.
        value: u64,
        /// The largest allowed value.
        max: u64,
    },
}

impl PciAddress {
    /// Builds an address, checking the device and function ranges.
    pub fn new(domain: u32, bus: u8, device: u8, function: u8) -> Option<Self> {
        (device < 32 && function < 8).then_some(Self {
            domain,
            bus,
            device,
            function,
        })
    }

    /// The same slot with another function number.
    pub fn with_function(self, function: u8) -> Option<Self> {
        Self::new(self.domain, self.bus, self.device, function)
    }

    /// True when both addresses name functions of the same physical device (slot).
    pub fn same_slot(&self, other: &Self) -> bool {
        self.domain == other.domain && self.bus == other.bus && self.device == other.device
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

fn hex_field(text: &str, part: &str, field: &'static str, max: u64) -> Result<u64, AddressError> {
    // from_str_radix accepts a leading '+', which no kernel name has.
    if part.is_empty() || part.len() > 8 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AddressError::Malformed(crate::echoed(text)));
    }
    let value =
        u64::from_str_radix(part, 16).map_err(|_| AddressError::Malformed(crate::echoed(text)))?;
    if value > max {
        return Err(AddressError::OutOfRange {
            text: crate::echoed(text),
            field,
            value,
            max,
        });
    }
    Ok(value)
}

/// Parses `BB:DD.F` into (bus, device, function).
fn parse_bdf(text: &str, bdf: &str) -> Result<(u8, u8, u8), AddressError> {
    let (bus, rest) = bdf
        .split_once(':')
        .ok_or_else(|| AddressError::Malformed(crate::echoed(text)))?;
    let (dev, func) = rest
        .split_once('.')
        .ok_or_else(|| AddressError::Malformed(crate::echoed(text)))?;
    let bus = hex_field(text, bus, "bus", 0xff)?;
    let dev = hex_field(text, dev, "device", 0x1f)?;
    let func = hex_field(text, func, "function", 0x7)?;
    Ok((bus as u8, dev as u8, func as u8))
}

impl FromStr for PciAddress {
    type Err = AddressError;

    /// Parses the full form only (`DDDD:BB:DD.F`); use [`PciSelector`] for user input.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (domain, bdf) = text
            .split_once(':')
            .filter(|(_, rest)| rest.contains(':'))
            .ok_or_else(|| AddressError::Malformed(crate::echoed(text)))?;
        let domain = hex_field(text, domain, "domain", u64::from(u32::MAX))? as u32;
        let (bus, device, function) = parse_bdf(text, bdf)?;
        Ok(Self {
            domain,
            bus,
            device,
            function,
        })
    }
}

impl Serialize for PciAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PciAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An address as a user typed it: the full form, or `BB:DD.F` meaning domain 0 (lspci's `-s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciSelector {
    /// `DDDD:BB:DD.F`.
    Full(PciAddress),
    /// `BB:DD.F`, with the domain left out.
    Short {
        /// Bus number.
        bus: u8,
        /// Device number.
        device: u8,
        /// Function number.
        function: u8,
    },
}

impl FromStr for PciSelector {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.matches(':').count() {
            2 => text.parse().map(Self::Full),
            1 => {
                let (bus, device, function) = parse_bdf(text, text)?;
                Ok(Self::Short {
                    bus,
                    device,
                    function,
                })
            }
            _ => Err(AddressError::Malformed(crate::echoed(text))),
        }
    }
}

impl PciSelector {
    /// The address the selector means when the host has it: itself, or for a short selector
    /// its function in domain 0, which a short address names before any other domain.
    pub fn first_choice(&self) -> PciAddress {
        match *self {
            Self::Full(full) => full,
            Self::Short {
                bus,
                device,
                function,
            } => PciAddress {
                domain: 0,
                bus,
                device,
                function,
            },
        }
    }

    /// True when `address` is one the selector may mean.
    pub fn matches(&self, address: &PciAddress) -> bool {
        match *self {
            Self::Full(full) => full == *address,
            Self::Short {
                bus,
                device,
                function,
            } => address.bus == bus && address.device == device && address.function == function,
        }
    }

    /// Picks the one address this selector means among `candidates`.
    ///
    /// A short selector names domain 0 only. When domain 0 has no such function but other
    /// domains do (VMD's `10000:`, Hyper-V's and multi-segment servers' `ffff:`), guessing one
    /// would bind a device the user did not mean, so it is an error that names them.
    pub fn resolve<'a, I>(&self, candidates: I) -> Result<PciAddress, SelectorError>
    where
        I: IntoIterator<Item = &'a PciAddress>,
    {
        let matches: Vec<PciAddress> = candidates
            .into_iter()
            .filter(|a| self.matches(a))
            .copied()
            .collect();
        match self {
            Self::Full(a) if matches.contains(a) => Ok(*a),
            Self::Short { .. } => match matches.iter().find(|a| **a == self.first_choice()) {
                Some(a) => Ok(*a),
                None if matches.is_empty() => Err(SelectorError::NotFound(self.to_string())),
                None => Err(SelectorError::Ambiguous {
                    selector: self.to_string(),
                    candidates: matches,
                }),
            },
            Self::Full(_) => Err(SelectorError::NotFound(self.to_string())),
        }
    }
}

impl fmt::Display for PciSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(a) => a.fmt(f),
            Self::Short {
                bus,
                device,
                function,
            } => write!(f, "{bus:02x}:{device:02x}.{function:x}"),
        }
    }
}

/// Why a selector does not name exactly one device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// No device has this address.
    #[error("no PCI device {0} on this host")]
    NotFound(String),
    /// A short address names domain 0, which has no such device, but other domains have one.
    #[error(
        "no PCI device {selector} in domain 0000 (a short address names domain 0): did you mean {}? name the domain",
        candidates.iter().map(ToString::to_string).collect::<Vec<_>>().join(" or ")
    )]
    Ambiguous {
        /// What the user typed.
        selector: String,
        /// The addresses in other domains that it matches.
        candidates: Vec<PciAddress>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_full_address_with_nonzero_domain() {
        let a: PciAddress = "0001:03:00.0".parse().unwrap();
        assert_eq!(a, PciAddress::new(1, 3, 0, 0).unwrap());
        assert_eq!(a.to_string(), "0001:03:00.0");
    }

    #[test]
    fn parses_vmd_domain_wider_than_four_digits() {
        let a: PciAddress = "10000:e1:00.0".parse().unwrap();
        assert_eq!(a.domain, 0x10000);
        assert_eq!(a.to_string(), "10000:e1:00.0");
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for bad in [
            "",
            "zz:zz",
            "0000:00:20.0",
            "0000:00:00.8",
            "0000:100:00.0",
            "+1:00:00.0",
            "0000:00:00",
            "::.",
            "0000:00:00.0.1",
            "123456789:00:00.0",
            "ä:00:00.0",
        ] {
            assert!(bad.parse::<PciAddress>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn short_selector_names_domain_zero_only() {
        let a: PciAddress = "0000:01:00.0".parse().unwrap();
        let b: PciAddress = "0002:01:00.0".parse().unwrap();
        let sel: PciSelector = "01:00.0".parse().unwrap();
        assert_eq!(sel.resolve([&a, &b]).unwrap(), a);
        assert_eq!(sel.resolve([&b, &a]).unwrap(), a);
    }

    #[test]
    fn short_selector_in_another_domain_only_asks_for_the_domain() {
        let vmd: PciAddress = "10000:e1:00.0".parse().unwrap();
        let hv: PciAddress = "ffff:e1:00.0".parse().unwrap();
        let sel: PciSelector = "e1:00.0".parse().unwrap();
        let err = sel.resolve([&vmd]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no PCI device e1:00.0 in domain 0000 (a short address names domain 0): did you mean \
             10000:e1:00.0? name the domain"
        );
        let two = sel.resolve([&vmd, &hv]).unwrap_err().to_string();
        assert!(
            two.contains("did you mean 10000:e1:00.0 or ffff:e1:00.0?"),
            "{two}"
        );
        let full: PciSelector = "0000:e1:00.0".parse().unwrap();
        assert!(matches!(
            full.resolve([&vmd]),
            Err(SelectorError::NotFound(_))
        ));
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(d in any::<u32>(), b in any::<u8>(), s in 0u8..32, f in 0u8..8) {
            let a = PciAddress::new(d, b, s, f).unwrap();
            prop_assert_eq!(a.to_string().parse::<PciAddress>().unwrap(), a);
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in ".{0,40}") {
            let _ = text.parse::<PciAddress>();
            let _ = text.parse::<PciSelector>();
        }
    }
}
