//! SR-IOV: planning `vf create` (the writes to `sriov_drivers_autoprobe` and `sriov_numvfs`, and
//! what refuses them), putting a PF's VFs back as they were, VF link settings, and the `vf list`
//! document.
//!
//! The kernel takes a new nonzero `sriov_numvfs` only from 0 (`sriov_numvfs_store()` answers
//! EBUSY otherwise), so changing the count goes through 0, which destroys every VF: that is
//! refused while a VF is held (on vfio-pci, under an override, used by the host), as binding the
//! PF is. `sriov_drivers_autoprobe` is set before the VFs exist, since it is read when each one
//! is added.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::PciAddress;
use crate::device::Inventory;
use crate::devref::DeviceRef;
use crate::plan::{HostUses, Refusal, Step};

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddress(pub [u8; 6]);

/// Why a MAC address does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address (six hex bytes separated by ':', e.g. 52:54:00:12:34:56)")]
pub struct MacError(String);

impl FromStr for MacAddress {
    type Err = MacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || MacError(crate::text::echoed(s));
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self(out))
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl Serialize for MacAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One VF's link settings as the PF's driver reports them (`IFLA_VF_*` of an `RTM_GETLINK`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VfLink {
    /// The MAC the PF gives the VF (all zero: none set, the VF driver picks one).
    pub mac: MacAddress,
    /// VLAN id the PF tags the VF's traffic with (0: none).
    pub vlan: u16,
    /// VLAN priority.
    pub qos: u8,
    /// Trusted (may change its MAC, enter promiscuous mode); `None` when the driver does not say.
    pub trust: Option<bool>,
    /// MAC/VLAN spoof checking; `None` when the driver does not say.
    pub spoofchk: Option<bool>,
}

/// A change of one VF's link settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VfLinkChange {
    /// New MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddress>,
    /// New VLAN id (0 removes the tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// Trusted or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<bool>,
    /// Spoof checking on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spoofchk: Option<bool>,
}

fn on_off(v: bool) -> &'static str {
    if v { "on" } else { "off" }
}

impl VfLinkChange {
    /// True when it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The change in the words of `ip link set ... vf N` (for dry runs and messages).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = self.mac {
            parts.push(format!("mac {m}"));
        }
        if let Some(v) = self.vlan {
            parts.push(format!("vlan {v}"));
        }
        if let Some(t) = self.trust {
            parts.push(format!("trust {}", on_off(t)));
        }
        if let Some(s) = self.spoofchk {
            parts.push(format!("spoofchk {}", on_off(s)));
        }
        parts.join(" ")
    }

    /// The change that puts back, from `before`, each setting this one changes.
    pub fn undo(&self, before: &VfLink) -> Self {
        Self {
            mac: self.mac.map(|_| before.mac),
            vlan: self.vlan.map(|_| before.vlan),
            trust: self.trust.and(before.trust),
            spoofchk: self.spoofchk.and(before.spoofchk),
        }
    }

    /// True when `link` already has every setting this change makes.
    pub fn is_applied(&self, link: &VfLink) -> bool {
        self.mac.is_none_or(|m| m == link.mac)
            && self.vlan.is_none_or(|v| v == link.vlan)
            && self.trust.is_none_or(|t| link.trust == Some(t))
            && self.spoofchk.is_none_or(|s| link.spoofchk == Some(s))
    }
}

/// A PF's SR-IOV configuration: what `vf create` changes and `restore` puts back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SriovConfig {
    /// `sriov_numvfs`.
    pub numvfs: u32,
    /// `sriov_drivers_autoprobe`.
    pub autoprobe: bool,
}

/// Why `vf create` or `vf set` may not go ahead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SriovError {
    /// The device has no SR-IOV capability (no `sriov_totalvfs`).
    #[error("{0} is not an SR-IOV physical function")]
    NotSriov(PciAddress),
    /// More VFs than the PF offers.
    #[error("{pf} offers at most {total} VFs; {count} were asked for")]
    TooMany {
        /// The PF.
        pf: PciAddress,
        /// What was asked.
        count: u32,
        /// `sriov_totalvfs`.
        total: u32,
    },
    /// No driver is bound to the PF, and only the PF's driver creates VFs.
    #[error("{0} has no driver, and only a PF's driver creates VFs")]
    NoPfDriver(PciAddress),
    /// Changing the count removes VFs something holds.
    #[error("{}", .0.text)]
    VfsInUse(Box<Refusal>),
    /// The VF index is not below `sriov_numvfs`.
    #[error("{pf} has {numvfs} VFs; there is no VF {index}")]
    NoSuchVf {
        /// The PF.
        pf: PciAddress,
        /// The index asked for.
        index: u32,
        /// How many there are.
        numvfs: u32,
    },
    /// VF link settings live on the PF's network interface, and it has none.
    #[error("{0} has no network interface to set VF link settings on")]
    NoInterface(PciAddress),
}

impl SriovError {
    /// What the user can do.
    pub fn remedy(&self) -> String {
        match self {
            Self::NotSriov(_) => {
                "run 'vfioctl vf list' to see the SR-IOV capable devices".to_owned()
            }
            Self::TooMany { total, .. } => format!("ask for {total} VFs or fewer"),
            Self::NoPfDriver(pf) => format!(
                "bind {pf} to its host driver first ('vfioctl restore {pf}', or modprobe it)"
            ),
            Self::VfsInUse(r) => r.remedy.clone(),
            Self::NoSuchVf { pf, .. } => {
                format!("create more VFs first ('vfioctl vf create {pf} N')")
            }
            Self::NoInterface(pf) => format!(
                "{pf}'s driver must be a network driver with its interface up to the kernel"
            ),
        }
    }
}

/// The steps that bring `pf` to `count` VFs with `autoprobe`, checked against the host now:
/// empty when it is so already.
pub fn create_steps(
    inv: &Inventory,
    uses: &HostUses,
    pf: PciAddress,
    count: u32,
    autoprobe: bool,
) -> Result<Vec<Step>, SriovError> {
    let dev = inv.get(&pf).ok_or(SriovError::NotSriov(pf))?;
    let total = dev.sriov_totalvfs.ok_or(SriovError::NotSriov(pf))?;
    if count > total {
        return Err(SriovError::TooMany { pf, count, total });
    }
    let now = SriovConfig {
        numvfs: dev.sriov_numvfs.unwrap_or(0),
        autoprobe: dev.sriov_drivers_autoprobe.unwrap_or(true),
    };
    let wanted = SriovConfig {
        numvfs: count,
        autoprobe,
    };
    if now.numvfs != count {
        if dev.driver.is_none() {
            return Err(SriovError::NoPfDriver(pf));
        }
        let held = crate::safety::held_vfs(inv, uses, dev);
        if now.numvfs > 0 && !held.is_empty() {
            return Err(SriovError::VfsInUse(Box::new(Refusal {
                kind: crate::plan::RefusalKind::SriovVfsInUse,
                device: pf.into(),
                text: format!(
                    "changing {pf} from {} to {count} VFs goes through 0, which removes every VF, and {}",
                    now.numvfs,
                    held.join(", ")
                ),
                remedy: "give those VFs back first (vfioctl restore, or stop their VM)".to_owned(),
                overridable: false,
            })));
        }
    }
    Ok(config_steps(&DeviceRef::Pci(pf), now, wanted))
}

/// The steps from `now` to `wanted`: autoprobe first (it is read as each VF appears), then the
/// count through 0.
pub fn config_steps(pf: &DeviceRef, now: SriovConfig, wanted: SriovConfig) -> Vec<Step> {
    let mut steps = Vec::new();
    if now.numvfs != wanted.numvfs && now.numvfs > 0 {
        steps.push(Step::SetNumVfs {
            device: pf.clone(),
            count: 0,
        });
    }
    if now.autoprobe != wanted.autoprobe {
        steps.push(Step::SetVfAutoprobe {
            device: pf.clone(),
            on: wanted.autoprobe,
        });
    }
    if now.numvfs != wanted.numvfs && wanted.numvfs > 0 {
        steps.push(Step::SetNumVfs {
            device: pf.clone(),
            count: wanted.numvfs,
        });
    }
    steps
}

/// The steps that put a PF back to `original`; `recreated` says vfioctl re-created its VFs, so
/// even the original count is reached through 0 (re-created under the original autoprobe, the
/// VFs probe the drivers they had).
pub fn restore_steps(
    pf: &DeviceRef,
    now: SriovConfig,
    original: SriovConfig,
    recreated: bool,
) -> Vec<Step> {
    if recreated && now.numvfs == original.numvfs && now.numvfs > 0 && now != original {
        let mut steps = vec![Step::SetNumVfs {
            device: pf.clone(),
            count: 0,
        }];
        let emptied = SriovConfig { numvfs: 0, ..now };
        steps.extend(config_steps(pf, emptied, original));
        return steps;
    }
    config_steps(pf, now, original)
}

/// One VF in `vf list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VfEntry {
    /// Its index (`virtfnN`).
    pub index: u32,
    /// Its address.
    pub address: PciAddress,
    /// Its driver.
    pub driver: Option<String>,
    /// Its IOMMU group.
    pub iommu_group: Option<u32>,
    /// Who holds it (an owner from the journal, or "vfio-pci" when something else bound it).
    pub holder: Option<String>,
    /// Its link settings, for VFs of a network PF.
    pub link: Option<VfLink>,
}

/// One SR-IOV capable function in `vf list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PfEntry {
    /// Its address.
    pub pf: PciAddress,
    /// Its driver.
    pub driver: Option<String>,
    /// Its network interface, for network PFs.
    pub interface: Option<String>,
    /// `sriov_totalvfs`.
    pub totalvfs: u32,
    /// `sriov_numvfs`.
    pub numvfs: u32,
    /// `sriov_drivers_autoprobe`.
    pub drivers_autoprobe: Option<bool>,
    /// Its VFs, by index.
    pub vfs: Vec<VfEntry>,
}

/// The `vf list` document: every SR-IOV capable function (or the one asked for) with its VFs.
/// `links` has each network PF's VF settings by index, `holders` who holds each VF.
pub fn listing(
    inv: &Inventory,
    only: Option<PciAddress>,
    links: &BTreeMap<PciAddress, Vec<VfLink>>,
    holders: &BTreeMap<PciAddress, String>,
) -> Vec<PfEntry> {
    inv.devices()
        .iter()
        .filter(|d| d.sriov_totalvfs.is_some() && only.is_none_or(|a| a == d.address))
        .map(|pf| PfEntry {
            pf: pf.address,
            driver: pf.driver.clone(),
            interface: pf.net_interfaces.first().cloned(),
            totalvfs: pf.sriov_totalvfs.unwrap_or(0),
            numvfs: pf.sriov_numvfs.unwrap_or(0),
            drivers_autoprobe: pf.sriov_drivers_autoprobe,
            vfs: pf
                .virtfns
                .iter()
                .enumerate()
                .map(|(i, vf)| {
                    let dev = inv.get(vf);
                    VfEntry {
                        index: i as u32,
                        address: *vf,
                        driver: dev.and_then(|d| d.driver.clone()),
                        iommu_group: dev.and_then(|d| d.iommu_group),
                        holder: holders.get(vf).cloned(),
                        link: links.get(&pf.address).and_then(|l| l.get(i)).cloned(),
                    }
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
#[path = "sriov_tests.rs"]
mod tests;
