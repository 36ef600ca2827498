//! NXP DPAA2 objects on the `fsl-mc` bus.
//!
//! On Layerscape SoCs (the Ten64's LS1088A) the network hardware is not PCI: the management
//! complex firmware carves it into objects (DPNI, DPMAC, DPIO, ...) grouped in containers called
//! DPRCs. A container is the unit of VFIO assignment, named `dprc.<n>` in
//! `/sys/bus/fsl-mc/devices`, bound to the `vfio-fsl-mc` driver and given to QEMU as
//! `-device vfio-fsl-mc,host=dprc.2`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The name of a DPAA2 resource container, `dprc.<n>` as the kernel names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DprcName(u32);

/// Why a string is not a DPRC name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a DPAA2 container name (expected dprc.<number>, e.g. dprc.2)")]
pub struct DprcNameError(pub String);

impl DprcName {
    /// The container with this number.
    pub fn new(id: u32) -> Self {
        Self(id)
    }

    /// The container number (`2` for `dprc.2`).
    pub fn id(self) -> u32 {
        self.0
    }
}

impl FromStr for DprcName {
    type Err = DprcNameError;

    /// Accepts the kernel's form only: `dprc.` and a decimal number without sign or leading
    /// zeros, so every accepted name prints back the same and matches a sysfs entry.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || DprcNameError(text.to_owned());
        let digits = text.strip_prefix("dprc.").ok_or_else(err)?;
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if !canonical {
            return Err(err());
        }
        digits.parse().map(Self).map_err(|_| err())
    }
}

impl fmt::Display for DprcName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dprc.{}", self.0)
    }
}

impl Serialize for DprcName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DprcName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_kernel_name() {
        let d: DprcName = "dprc.2".parse().unwrap();
        assert_eq!(d.id(), 2);
        assert_eq!(d.to_string(), "dprc.2");
    }

    #[test]
    fn rejects_non_canonical_names() {
        for bad in [
            "",
            "dprc",
            "dprc.",
            "dprc.02",
            "dprc.+2",
            "dprc.-1",
            "dprc.2 ",
            "DPRC.2",
            "dpni.2",
            "dprc.99999999999",
        ] {
            assert!(bad.parse::<DprcName>().is_err(), "{bad} parsed");
        }
        assert_eq!("dprc.0".parse::<DprcName>(), Ok(DprcName::new(0)));
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(n in any::<u32>()) {
            let d = DprcName::new(n);
            prop_assert_eq!(d.to_string().parse::<DprcName>(), Ok(d));
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in "(dprc\\.)?.{0,12}") {
            let _ = text.parse::<DprcName>();
        }
    }
}
