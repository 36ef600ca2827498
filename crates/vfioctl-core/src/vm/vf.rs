//! SR-IOV VFs in a VM definition, named by their PF and index (`vf = { pf = "0000:3b:00.0",
//! index = 3, mac = "52:54:00:12:34:56" }`, or `[[vf]]` tables), because a VF's address is its
//! PF's routing ID plus arithmetic: named so, a VF re-created or renumbered is still the same VF.
//! The PF may be named by its interface's permanent MAC instead, for hosts whose buses move.
//!
//! A `[[sriov]]` table says the VM's `apply` and `run` create the VFs of a PF: `numvfs` (default:
//! the highest index of the VM's VFs of that PF, plus one) is the count they set when the PF has
//! fewer. They never lower a count, since that goes through 0 and removes every VF.

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
            Self::Mac(m) => write!(f, "the PF with permanent MAC {m}"),
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

/// A PF whose VFs the VM's `apply` and `run` create (`[[sriov]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSriov {
    /// The PF.
    pub pf: PfRef,
    /// The VF count set when the PF has fewer; `None`: what the VM's VFs of the PF need.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numvfs: Option<u32>,
}

/// The VF count a PF must have for VFs `indices` (the highest index plus one; 0 for none).
pub fn needed_count(indices: impl IntoIterator<Item = u32>) -> u32 {
    indices
        .into_iter()
        .map(|i| i.saturating_add(1))
        .max()
        .unwrap_or(0)
}

impl VmSriov {
    /// The indices of the VFs in `vfs` this table's PF has (PFs compared as written: resolved
    /// to addresses first, a MAC and an address of one PF compare equal).
    fn indices<'a>(&'a self, vfs: &'a [VmVf]) -> impl Iterator<Item = u32> + 'a {
        vfs.iter().filter(|v| v.pf == self.pf).map(|v| v.index)
    }

    /// The count `apply` and `run` bring the PF to when it has fewer VFs.
    pub fn count(&self, vfs: &[VmVf]) -> u32 {
        self.numvfs
            .unwrap_or_else(|| needed_count(self.indices(vfs)))
    }

    /// Why this table cannot give the VM the VFs it names on this PF, if it cannot.
    pub fn problem(&self, vfs: &[VmVf]) -> Option<String> {
        let needed = needed_count(self.indices(vfs));
        match self.numvfs {
            Some(0) => Some(format!(
                "[[sriov]] {}: numvfs = 0 creates no VF (leave the table out instead)",
                self.pf
            )),
            Some(n) if n < needed => Some(format!(
                "[[sriov]] {}: numvfs = {n} does not create VF {} the definition names \
                 (numvfs must be at least {needed})",
                self.pf,
                needed - 1
            )),
            None if needed == 0 => Some(format!(
                "[[sriov]] {}: no vf entry names this PF, so there is no VF count to make \
                 (set numvfs, or name its VFs)",
                self.pf
            )),
            _ => None,
        }
    }
}

/// The `[[sriov]]` table of `pf`, if the definition has one.
pub fn table_of(sriov: &[VmSriov], pf: PfRef) -> Option<&VmSriov> {
    sriov.iter().find(|s| s.pf == pf)
}

/// The `[[sriov]]` tables, each checked against the VFs the definition names: a PF listed
/// twice, or a count that does not make those VFs, is refused at its table.
pub(super) fn validate_tables(
    text: &str,
    tables: Vec<toml::Spanned<VmSriov>>,
    vfs: &[VmVf],
) -> Result<Vec<VmSriov>, super::VmParseError> {
    let mut out: Vec<VmSriov> = Vec::new();
    for spanned in tables {
        let span = spanned.span();
        let table = spanned.into_inner();
        let problem = if table_of(&out, table.pf).is_some() {
            Some(format!("[[sriov]] {} is listed twice", table.pf))
        } else {
            table.problem(vfs)
        };
        if let Some(message) = problem {
            return Err(super::VmParseError::at(text, Some(span), message));
        }
        out.push(table);
    }
    Ok(out)
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
    fn the_count_is_numvfs_or_what_the_vfs_need_and_never_less() {
        let def = VmDefinition::parse(
            "version = 1\n[[sriov]]\npf = \"0000:3b:00.0\"\n\n[[vf]]\npf = \"0000:3b:00.0\"\nindex = 3\n\n\
             [[vf]]\npf = \"0000:3b:00.0\"\nindex = 1\n\n[[vf]]\npf = \"0000:5e:00.0\"\nindex = 6\n",
        )
        .unwrap();
        assert_eq!(def.sriov[0].count(&def.vfs), 4);
        assert_eq!(def.sriov[0].problem(&def.vfs), None);
        let more = VmSriov {
            numvfs: Some(8),
            ..def.sriov[0].clone()
        };
        assert_eq!(more.count(&def.vfs), 8);
        assert_eq!(needed_count([]), 0);
        assert_eq!(needed_count([0, 2, 1]), 3);
        assert_eq!(needed_count([u32::MAX]), u32::MAX);
    }

    #[test]
    fn numvfs_below_the_highest_index_is_refused_at_its_table() {
        let err = VmDefinition::parse(
            "version = 1\nvf = { pf = \"0000:3b:00.0\", index = 3 }\n\n[[sriov]]\npf = \"0000:3b:00.0\"\nnumvfs = 3\n",
        )
        .unwrap_err();
        assert_eq!(err.location.map(|l| l.line), Some(4));
        assert_eq!(
            err.message,
            "[[sriov]] 0000:3b:00.0: numvfs = 3 does not create VF 3 the definition names \
             (numvfs must be at least 4)"
        );
        for (text, words) in [
            (
                "version = 1\nvf = { pf = \"0000:3b:00.0\", index = 0 }\n[[sriov]]\npf = \"0000:3b:00.0\"\nnumvfs = 0\n",
                "numvfs = 0 creates no VF",
            ),
            (
                "version = 1\nvf = { pf = \"0000:3b:00.0\", index = 0 }\n[[sriov]]\npf = \"0000:5e:00.0\"\n",
                "no vf entry names this PF",
            ),
            (
                "version = 1\nvf = { pf = \"0000:3b:00.0\", index = 0 }\n[[sriov]]\npf = \"0000:3b:00.0\"\n\
                 [[sriov]]\npf = \"0000:3b:00.0\"\nnumvfs = 2\n",
                "[[sriov]] 0000:3b:00.0 is listed twice",
            ),
            (
                "version = 1\n[[sriov]]\npf = \"0000:3b:00.0\"\nnumvfs = 2\nautoprobe = true\n",
                "unknown field `autoprobe`",
            ),
        ] {
            let err = VmDefinition::parse(text).unwrap_err();
            assert!(err.message.contains(words), "{text}: {}", err.message);
        }
        // A table alone, with its count, is something to pass through: its VFs are made.
        let alone =
            VmDefinition::parse("version = 1\n[[sriov]]\npf = \"3c:fd:fe:00:00:01\"\nnumvfs = 2\n");
        assert!(alone.is_err(), "a table without VFs gives the VM nothing");
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
