//! SR-IOV VFs in a VM definition, named by their PF and index (`vf = { pf = "0000:3b:00.0",
//! index = 3, mac = "52:54:00:12:34:56" }`, or `[[vf]]` tables), because a VF's address is its
//! PF's routing ID plus arithmetic: named so, a VF re-created or renumbered is still the same VF.
//! The PF may be named by its interface's MAC instead, for hosts whose buses move.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::PciAddress;
use crate::sriov::MacAddress;

/// How a definition names a VF's PF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PfRef {
    /// By PCI address.
    Address(PciAddress),
    /// By its network interface's MAC address.
    Mac(MacAddress),
}

impl fmt::Display for PfRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address(a) => a.fmt(f),
            Self::Mac(m) => write!(f, "the PF with MAC {m}"),
        }
    }
}

impl<'de> Deserialize<'de> for PfRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if let Ok(mac) = text.parse::<MacAddress>() {
            return Ok(Self::Mac(mac));
        }
        text.parse::<PciAddress>().map(Self::Address).map_err(|_| {
            serde::de::Error::custom(format!(
                "'{}' is neither a PCI address (0000:3b:00.0) nor a MAC address (52:54:00:12:34:56)",
                crate::text::echoed(&text)
            ))
        })
    }
}

/// One VF a VM gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmVf {
    /// Its PF.
    pub pf: PfRef,
    /// Its index (`virtfnN` of the PF).
    pub index: u32,
    /// The MAC the PF gives it, when the definition sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddress>,
}

/// `vf = {...}` or `vf = [{...}, ...]` (`[[vf]]` tables are the latter). Read through a
/// `toml::Value` rather than an untagged enum, so an entry's own error reaches the user.
pub(super) fn de_vfs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<VmVf>, D::Error> {
    let value = toml::Value::deserialize(d)?;
    let parsed = match value {
        toml::Value::Array(_) => value.try_into::<Vec<VmVf>>(),
        other => other.try_into::<VmVf>().map(|v| vec![v]),
    };
    parsed.map_err(|e| serde::de::Error::custom(e.message().trim_end()))
}

#[cfg(test)]
mod tests {
    use crate::vm::VmDefinition;

    use super::*;

    #[test]
    fn one_inline_table_a_list_and_vf_tables_all_parse() {
        let one = VmDefinition::parse(
            "version = 1\nvf = { pf = \"0000:3b:00.0\", index = 3, mac = \"52:54:00:12:34:56\" }\n",
        )
        .unwrap();
        assert_eq!(
            one.vfs,
            [VmVf {
                pf: PfRef::Address("0000:3b:00.0".parse().unwrap()),
                index: 3,
                mac: Some("52:54:00:12:34:56".parse().unwrap()),
            }]
        );
        let tables =
            VmDefinition::parse("version = 1\n[[vf]]\npf = \"3c:fd:fe:00:00:01\"\nindex = 0\n\n[[vf]]\npf = \"0000:3b:00.0\"\nindex = 1\n")
                .unwrap();
        assert_eq!(tables.vfs.len(), 2);
        assert_eq!(
            tables.vfs[0].pf,
            PfRef::Mac("3c:fd:fe:00:00:01".parse().unwrap())
        );
    }

    #[test]
    fn a_pf_that_is_neither_address_nor_mac_is_refused_at_its_line() {
        let err =
            VmDefinition::parse("version = 1\nvf = { pf = \"eth0\", index = 0 }\n").unwrap_err();
        assert_eq!(err.location.map(|l| l.line), Some(2));
        assert!(
            err.message.contains("neither a PCI address"),
            "{}",
            err.message
        );
        let unknown = VmDefinition::parse(
            "version = 1\nvf = { pf = \"0000:3b:00.0\", index = 0, vlan = 3 }\n",
        );
        assert!(unknown.is_err());
    }
}
