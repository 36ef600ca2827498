//! One vocabulary for both buses: a device is a PCI function or an fsl-mc object, drivers and IOMMU
//! groups have their own types, and every journal entry names who it belongs to.
//!
//! Plans, refusals, steps, original states and the journal use these types, so a command that
//! touches a PCI function and a DPAA2 container makes one plan and one transaction.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::address::PciAddress;

/// The bus a device sits on; it decides the sysfs directory and the vfio driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bus {
    /// PCI and PCI Express functions.
    Pci,
    /// NXP's fsl-mc bus of DPAA2 objects.
    FslMc,
}

impl Bus {
    /// The bus directory name under `/sys/bus`.
    pub fn sysfs_name(self) -> &'static str {
        match self {
            Self::Pci => "pci",
            Self::FslMc => "fsl-mc",
        }
    }

    /// The vfio driver that takes this bus's devices.
    pub fn vfio_driver(self) -> DriverName {
        DriverName::from_static(match self {
            Self::Pci => "vfio-pci",
            Self::FslMc => "vfio-fsl-mc",
        })
    }

    /// The module that provides [`Bus::vfio_driver`].
    pub fn vfio_module(self) -> &'static str {
        match self {
            Self::Pci => "vfio-pci",
            Self::FslMc => "vfio_fsl_mc",
        }
    }
}

/// The name of an fsl-mc object as the kernel gives it: `<type>.<id>` (`dprc.2`, `dpni.3`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FslMcName {
    kind: String,
    id: u32,
}

/// Why a string is not an fsl-mc object name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a DPAA2 object name (expected <type>.<number>, e.g. dprc.2 or dpni.3)")]
pub struct FslMcNameError(pub String);

impl FslMcName {
    /// The object type (`dprc`, `dpni`, ...).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The object number.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// True for a resource container (`dprc.N`).
    pub fn is_container(&self) -> bool {
        self.kind == "dprc"
    }
}

impl FromStr for FslMcName {
    type Err = FslMcNameError;

    /// Accepts the kernel's form only (lower-case type, decimal id without sign or leading zeros),
    /// so every accepted name prints back the same and matches a sysfs entry.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || FslMcNameError(text.to_owned());
        let (kind, digits) = text.split_once('.').ok_or_else(err)?;
        let kind_ok = !kind.is_empty()
            && kind.len() <= 16
            && kind.bytes().all(|b| b.is_ascii_lowercase())
            && kind.starts_with("dp");
        let digits_ok = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if !kind_ok || !digits_ok {
            return Err(err());
        }
        let id = digits.parse().map_err(|_| err())?;
        Ok(Self {
            kind: kind.to_owned(),
            id,
        })
    }
}

impl fmt::Display for FslMcName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind, self.id)
    }
}

impl From<crate::fslmc::DprcName> for FslMcName {
    fn from(dprc: crate::fslmc::DprcName) -> Self {
        Self {
            kind: "dprc".to_owned(),
            id: dprc.id(),
        }
    }
}

/// One device vfioctl can hand to a VM or give back: a PCI function or an fsl-mc object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceRef {
    /// A PCI function.
    Pci(PciAddress),
    /// An fsl-mc object (containers are what vfio-fsl-mc takes).
    FslMc(FslMcName),
}

impl DeviceRef {
    /// The bus.
    pub fn bus(&self) -> Bus {
        match self {
            Self::Pci(_) => Bus::Pci,
            Self::FslMc(_) => Bus::FslMc,
        }
    }

    /// The PCI address, for a PCI function.
    pub fn pci(&self) -> Option<PciAddress> {
        match self {
            Self::Pci(a) => Some(*a),
            Self::FslMc(_) => None,
        }
    }

    /// The object name, for an fsl-mc object.
    pub fn fslmc(&self) -> Option<&FslMcName> {
        match self {
            Self::Pci(_) => None,
            Self::FslMc(n) => Some(n),
        }
    }
}

impl From<PciAddress> for DeviceRef {
    fn from(address: PciAddress) -> Self {
        Self::Pci(address)
    }
}

impl From<FslMcName> for DeviceRef {
    fn from(name: FslMcName) -> Self {
        Self::FslMc(name)
    }
}

impl From<crate::fslmc::DprcName> for DeviceRef {
    fn from(dprc: crate::fslmc::DprcName) -> Self {
        Self::FslMc(dprc.into())
    }
}

impl fmt::Display for DeviceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pci(a) => a.fmt(f),
            Self::FslMc(n) => n.fmt(f),
        }
    }
}

/// Why a string names no device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is neither a full PCI address (DDDD:BB:DD.F) nor a DPAA2 object name (dprc.N)")]
pub struct DeviceRefError(pub String);

impl FromStr for DeviceRef {
    type Err = DeviceRefError;

    /// Only the canonical forms a journal or a document holds: a full PCI address or an object
    /// name. What users type (short addresses, IDs, interfaces) is resolved by the selection.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(name) = text.parse::<FslMcName>() {
            return Ok(Self::FslMc(name));
        }
        match text.parse::<PciAddress>() {
            Ok(a) if a.to_string() == text => Ok(Self::Pci(a)),
            _ => Err(DeviceRefError(text.to_owned())),
        }
    }
}

impl Serialize for DeviceRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A kernel driver name (`vfio-pci`, `ath10k_pci`): no slashes, spaces or control characters, so
/// it can be put into a sysfs path safely.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DriverName(String);

/// Why a string is not a driver name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a driver name")]
pub struct DriverNameError(pub String);

impl DriverName {
    /// True for names the kernel could give a driver.
    pub fn is_valid(name: &str) -> bool {
        !name.is_empty()
            && name.len() < 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    }

    fn from_static(name: &'static str) -> Self {
        Self(name.to_owned())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DriverName {
    type Err = DriverNameError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if Self::is_valid(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(DriverNameError(text.to_owned()))
        }
    }
}

impl fmt::Display for DriverName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for DriverName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl Serialize for DriverName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DriverName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Turns a driver name read from sysfs into a [`DriverName`]; a name the kernel could not have
/// made (a damaged tree) is dropped rather than written back into a path.
pub fn driver_name(name: Option<&str>) -> Option<DriverName> {
    name.and_then(|n| n.parse().ok())
}

/// An IOMMU group number (`/sys/kernel/iommu_groups/<n>`, `/dev/vfio/<n>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupId(pub u32);

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Who a bound device belongs to: whoever bound it, and the only one that may give it back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    /// Bound by hand (`vfioctl bind`).
    Manual,
    /// A vfioctl VM definition (`apply`, `run`).
    Vm(String),
    /// A libvirt domain, through the hook.
    Libvirt(String),
    /// A Proxmox VE VM, through the hookscript.
    Proxmox(String),
    /// A Kubernetes device plugin resource.
    DevicePlugin(String),
    /// A name given with `--owner`, or recorded by a journal of format 1 (which did not say
    /// what kind of owner it was).
    Other(String),
}

impl Owner {
    /// Reads a format-1 journal's owner: none meant a manual bind, `pve-<vmid>` the Proxmox
    /// hookscript; any other name is kept as it was.
    pub fn from_v1(owner: Option<&str>) -> Self {
        match owner {
            None => Self::Manual,
            Some(text) => match text.strip_prefix("pve-") {
                Some(vmid) if !vmid.is_empty() && vmid.bytes().all(|b| b.is_ascii_digit()) => {
                    Self::Proxmox(vmid.to_owned())
                }
                _ => Self::Other(text.to_owned()),
            },
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Manual => f.write_str("manual"),
            Self::Vm(n) => write!(f, "vm:{n}"),
            Self::Libvirt(n) => write!(f, "libvirt:{n}"),
            Self::Proxmox(n) => write!(f, "proxmox:{n}"),
            Self::DevicePlugin(n) => write!(f, "device-plugin:{n}"),
            Self::Other(n) => f.write_str(n),
        }
    }
}

impl FromStr for Owner {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let tagged = |prefix: &str| text.strip_prefix(prefix).map(str::to_owned);
        Ok(if text == "manual" {
            Self::Manual
        } else if let Some(n) = tagged("vm:") {
            Self::Vm(n)
        } else if let Some(n) = tagged("libvirt:") {
            Self::Libvirt(n)
        } else if let Some(n) = tagged("proxmox:") {
            Self::Proxmox(n)
        } else if let Some(n) = tagged("device-plugin:") {
            Self::DevicePlugin(n)
        } else {
            Self::Other(text.to_owned())
        })
    }
}

impl Serialize for Owner {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Owner {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(text.parse().unwrap_or(Self::Manual))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn device_refs_parse_both_buses_canonically() {
        assert_eq!("0001:03:00.0".parse::<DeviceRef>().unwrap().bus(), Bus::Pci);
        let dprc: DeviceRef = "dprc.2".parse().unwrap();
        assert_eq!(dprc.bus(), Bus::FslMc);
        assert_eq!(dprc.to_string(), "dprc.2");
        for bad in ["03:00.0", "dprc.02", "DPRC.2", "", "x.1", "dprc."] {
            assert!(bad.parse::<DeviceRef>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn owners_round_trip_and_read_format_1() {
        for text in [
            "manual",
            "vm:ten64",
            "libvirt:win11",
            "proxmox:100",
            "device-plugin:x",
        ] {
            assert_eq!(text.parse::<Owner>().unwrap().to_string(), text);
        }
        assert_eq!(Owner::from_v1(None), Owner::Manual);
        assert_eq!(
            Owner::from_v1(Some("pve-101")),
            Owner::Proxmox("101".into())
        );
        assert_eq!(Owner::from_v1(Some("win11")), Owner::Other("win11".into()));
    }

    #[test]
    fn driver_names_refuse_path_tricks() {
        assert!("vfio-pci".parse::<DriverName>().is_ok());
        for bad in ["", "../x", "a b", "a/b", "x\n"] {
            assert!(bad.parse::<DriverName>().is_err());
        }
    }

    proptest! {
        #[test]
        fn fslmc_names_round_trip(kind in "dp[a-z]{1,6}", id in any::<u32>()) {
            let text = format!("{kind}.{id}");
            let name: FslMcName = text.parse().unwrap();
            prop_assert_eq!(name.to_string(), text);
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in ".{0,20}") {
            let _ = text.parse::<DeviceRef>();
        }
    }
}
