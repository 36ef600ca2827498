//! `[[dpaa2]]`: a DPAA2 container the VM's `apply` and `run` make with restool (as `vfioctl
//! dpaa2 create --for-vm` does), bind and hand to QEMU, and that `restore` of the VM takes apart.

use std::ops::Range;

use serde::{Deserialize, Serialize, Serializer};
use toml::Spanned;

use crate::devref::FslMcName;
use crate::dpaa2::Link;
use crate::fslmc::DprcName;

use super::VmParseError;

/// The root container a made container is a child of, unless `root_container` says otherwise.
pub const DEFAULT_ROOT_CONTAINER: &str = "dprc.1";

/// One container to be made for the VM, with the options of `dpaa2 create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MadeContainer {
    /// The physical port its DPNI is connected to.
    #[serde(serialize_with = "opt_name", skip_serializing_if = "Option::is_none")]
    pub dpmac: Option<FslMcName>,
    /// The DPDMUX its DPNI is connected to.
    #[serde(serialize_with = "opt_name", skip_serializing_if = "Option::is_none")]
    pub dpdmux: Option<FslMcName>,
    /// The host's root container it is made in.
    #[serde(serialize_with = "name")]
    pub root_container: FslMcName,
}

fn name<S: Serializer>(n: &FslMcName, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(n)
}

fn opt_name<S: Serializer>(n: &Option<FslMcName>, s: S) -> Result<S::Ok, S::Error> {
    n.as_ref().map(ToString::to_string).serialize(s)
}

impl MadeContainer {
    /// What its DPNI is connected to.
    pub fn link(&self) -> Option<Link> {
        match (&self.dpmac, &self.dpdmux) {
            (Some(m), _) => Some(Link::Dpmac(m.clone())),
            (None, Some(d)) => Some(Link::Dpdmux(d.clone())),
            (None, None) => None,
        }
    }

    /// The container in words: `a container connected to dpmac.2`.
    pub fn describe(&self) -> String {
        match self.link() {
            Some(link) => format!("a container connected to {}", link.endpoint()),
            None => "a container without a link".to_owned(),
        }
    }
}

/// A `[[dpaa2]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMadeContainer {
    #[serde(default)]
    dpmac: Option<Spanned<String>>,
    #[serde(default)]
    dpdmux: Option<Spanned<String>>,
    #[serde(default)]
    root_container: Option<Spanned<String>>,
}

impl RawMadeContainer {
    /// Checks the names' types and that at most one link is given.
    pub(super) fn validate(
        self,
        text: &str,
        span: Range<usize>,
    ) -> Result<MadeContainer, VmParseError> {
        let parse = |field: Option<Spanned<String>>, kind: &str| {
            field
                .map(|s| match s.get_ref().parse::<FslMcName>() {
                    Ok(n) if n.kind() == kind => Ok(n),
                    _ => Err(VmParseError::at(
                        text,
                        Some(s.span()),
                        format!("'{}' is not a {kind} name ({kind}.<number>)", s.get_ref()),
                    )),
                })
                .transpose()
        };
        let dpmac = parse(self.dpmac, "dpmac")?;
        let dpdmux = parse(self.dpdmux, "dpdmux")?;
        let root_container =
            parse(self.root_container, "dprc")?.unwrap_or_else(|| DprcName::new(1).into());
        if dpmac.is_some() && dpdmux.is_some() {
            return Err(VmParseError::at(
                text,
                Some(span),
                "a [[dpaa2]] container's DPNI is connected to a dpmac or a dpdmux, not both",
            ));
        }
        Ok(MadeContainer {
            dpmac,
            dpdmux,
            root_container,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::VmDefinition;

    const HEAD: &str = "version = 1\n[qemu]\nmachine = \"virt\"\n";

    #[test]
    fn a_made_container_is_enough_to_pass_through_and_defaults_to_the_root_container() {
        let def = VmDefinition::parse(&format!("{HEAD}[[dpaa2]]\ndpmac = \"dpmac.2\"\n")).unwrap();
        let [made] = def.dpaa2.as_slice() else {
            panic!("{:?}", def.dpaa2);
        };
        assert_eq!(made.root_container.to_string(), "dprc.1");
        assert_eq!(made.link().unwrap().endpoint(), "dpmac.2");
        let bare = VmDefinition::parse(&format!("{HEAD}[[dpaa2]]\n")).unwrap();
        assert_eq!(bare.dpaa2[0].link(), None);
    }

    #[test]
    fn wrong_names_both_links_and_q35_are_refused_where_they_are() {
        for (body, line, words) in [
            ("[[dpaa2]]\ndpmac = \"dpni.2\"\n", 5, "is not a dpmac name"),
            (
                "[[dpaa2]]\nroot_container = \"dprc\"\n",
                5,
                "is not a dprc name",
            ),
            (
                "[[dpaa2]]\ndpmac = \"dpmac.2\"\ndpdmux = \"dpdmux.0\"\n",
                4,
                "not both",
            ),
            ("[[dpaa2]]\nlinks = 2\n", 5, "unknown field"),
        ] {
            let err = VmDefinition::parse(&format!("{HEAD}{body}")).unwrap_err();
            assert!(err.message.contains(words), "{body}: {err}");
            assert_eq!(err.location.map(|l| l.line), Some(line), "{body}: {err}");
        }
        let q35 = "version = 1\n[[dpaa2]]\n[qemu]\nmachine = \"q35\"\n";
        let err = VmDefinition::parse(q35).unwrap_err();
        assert!(err.message.contains("only the virt machine"), "{err}");
    }
}
