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

/// The driver that hands DPAA2 containers to VFIO.
pub const VFIO_FSL_MC: &str = "vfio-fsl-mc";
/// The module that provides it.
pub const VFIO_FSL_MC_MODULE: &str = "vfio_fsl_mc";

/// One object on the fsl-mc bus: a container (`dprc.N`) or an object inside one (`dpni.3`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FslMcObject {
    /// The kernel's name, `<type>.<id>`.
    pub name: String,
    /// The object type (`dprc`, `dpni`, `dpio`, `dpbp`, `dpmcp`, `dpcon`, `dpmac`, `dpci`, ...).
    pub obj_type: String,
    /// The driver bound now.
    pub driver: Option<String>,
    /// `driver_override`, `None` when unset.
    pub driver_override: Option<String>,
    /// IOMMU group (containers have one each; objects share their container's).
    pub iommu_group: Option<u32>,
    /// The container this object sits in; `None` for the root container.
    pub container: Option<DprcName>,
    /// Network interfaces this object backs (a `dpni` bound to `fsl_dpaa2_eth`).
    pub net_interfaces: Vec<String>,
}

impl FslMcObject {
    /// The container name, when this object is a container.
    pub fn as_dprc(&self) -> Option<DprcName> {
        self.name.parse().ok()
    }
}

/// Every object on the fsl-mc bus.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FslMcInventory {
    objects: Vec<FslMcObject>,
}

impl FslMcInventory {
    /// Builds the inventory, sorted by name.
    pub fn new(mut objects: Vec<FslMcObject>) -> Self {
        objects.sort_by(|a, b| {
            (a.obj_type.as_str(), object_id(&a.name))
                .cmp(&(b.obj_type.as_str(), object_id(&b.name)))
        });
        Self { objects }
    }

    /// True when the host has no fsl-mc bus or no objects on it.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// All objects.
    pub fn objects(&self) -> &[FslMcObject] {
        &self.objects
    }

    /// The object with this name.
    pub fn get(&self, name: &str) -> Option<&FslMcObject> {
        self.objects.iter().find(|o| o.name == name)
    }

    /// Containers, in number order.
    pub fn containers(&self) -> impl Iterator<Item = &FslMcObject> {
        self.objects.iter().filter(|o| o.obj_type == "dprc")
    }

    /// The objects directly inside a container.
    pub fn children(&self, dprc: DprcName) -> impl Iterator<Item = &FslMcObject> {
        self.objects
            .iter()
            .filter(move |o| o.container == Some(dprc))
    }

    /// True for the root container: the one the management complex firmware gives to Linux,
    /// on which the host's own DPAA2 devices (and its fsl-mc bus) run.
    pub fn is_root_container(&self, dprc: DprcName) -> bool {
        self.get(&dprc.to_string())
            .is_some_and(|o| o.container.is_none())
    }
}

fn object_id(name: &str) -> u32 {
    name.rsplit_once('.')
        .and_then(|(_, id)| id.parse().ok())
        .unwrap_or(u32::MAX)
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
