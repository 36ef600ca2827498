//! `/etc/vfioctl/device-plugin.toml`: the resources, each named by selectors.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::export::ReadyMember;
use crate::vm::Location;
use crate::{PciAddress, VendorDevice};

/// The only version of the file there is.
const VERSION: u32 = 1;

/// One way to name devices: every key given must match.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// `vendor:device`.
    pub id: Option<VendorDevice>,
    /// A full address.
    pub address: Option<PciAddress>,
    /// A class prefix in hex: `02` (network), `0200` (Ethernet), `020000`.
    pub class: Option<String>,
}

impl Selector {
    /// Whether `member` is one of the devices this names.
    pub fn matches(&self, member: &ReadyMember) -> bool {
        self.id.is_none_or(|id| id == member.id)
            && self.address.is_none_or(|a| a == member.address)
            && self.class.as_deref().is_none_or(|c| {
                format!("{:06x}", member.class.0).starts_with(&c.to_ascii_lowercase())
            })
    }
}

/// One Kubernetes extended resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Its name (`vfioctl.io/wifi-tpu`).
    pub name: String,
    /// The devices it takes: any selector may match.
    pub select: Vec<Selector>,
}

impl Resource {
    /// Whether a selector of this resource matches `member`.
    pub fn matches(&self, member: &ReadyMember) -> bool {
        self.select.iter().any(|s| s.matches(member))
    }
}

/// The device plugin's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfig {
    /// The resources, in file order.
    pub resources: Vec<Resource>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResource {
    name: Spanned<String>,
    select: Spanned<Vec<Spanned<Selector>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    version: Spanned<u32>,
    #[serde(default)]
    resource: Vec<RawResource>,
}

/// What is wrong with the file, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", location.map(|l| format!("{}:{}: ", l.line, l.column)).unwrap_or_default())]
pub struct ConfigError {
    /// Where, when known.
    pub location: Option<Location>,
    /// What, as one lowercase sentence.
    pub message: String,
}

impl ConfigError {
    fn at(text: &str, span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        Self {
            location: span.map(|s| Location::of(text, s.start)),
            message: message.into(),
        }
    }

    /// The error as compilers print it: `file:line:column: message`.
    pub fn render(&self, file: &str) -> String {
        match self.location {
            Some(l) => format!("{file}:{}:{}: {}", l.line, l.column, self.message),
            None => format!("{file}: {}", self.message),
        }
    }
}

/// A Kubernetes extended resource name: `domain/name`, the domain a DNS subdomain outside
/// `kubernetes.io`, the name at most 63 characters of letters, digits, `-`, `_`, `.`, starting and
/// ending with a letter or digit.
fn resource_name_problem(name: &str) -> Option<String> {
    let Some((domain, local)) = name.split_once('/') else {
        return Some(format!(
            "resource name '{}' needs a domain: 'example.com/{}'",
            crate::echoed(name),
            crate::echoed(name)
        ));
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if domain.len() > 253 || !domain.split('.').all(label_ok) || domain.contains(char::is_uppercase)
    {
        return Some(format!(
            "'{}' is not a DNS domain (lower-case labels of letters, digits and '-')",
            crate::echoed(domain)
        ));
    }
    if domain == "kubernetes.io" || domain.ends_with(".kubernetes.io") {
        return Some("the kubernetes.io domain is reserved for Kubernetes itself".to_owned());
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if local.is_empty()
        || local.len() > 63
        || !local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        || !edge_ok(local.chars().next())
        || !edge_ok(local.chars().last())
    {
        return Some(format!(
            "'{}' is not a resource name: at most 63 letters, digits, '-', '_' or '.', starting \
             and ending with a letter or digit",
            crate::echoed(local)
        ));
    }
    None
}

impl PluginConfig {
    /// Parses the file's text; errors carry the line and column.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let raw: Raw = toml::from_str(text)
            .map_err(|e| ConfigError::at(text, e.span(), e.message().trim_end().to_owned()))?;
        if *raw.version.get_ref() != VERSION {
            return Err(ConfigError::at(
                text,
                Some(raw.version.span()),
                format!(
                    "version {} is not known; this vfioctl reads version {VERSION}",
                    raw.version.get_ref()
                ),
            ));
        }
        let mut resources: Vec<Resource> = Vec::new();
        for r in raw.resource {
            let name = r.name.get_ref();
            if let Some(problem) = resource_name_problem(name) {
                return Err(ConfigError::at(text, Some(r.name.span()), problem));
            }
            if resources.iter().any(|o| &o.name == name) {
                return Err(ConfigError::at(
                    text,
                    Some(r.name.span()),
                    format!("resource '{name}' is defined twice"),
                ));
            }
            let span = r.select.span();
            let select: Vec<Selector> = r
                .select
                .into_inner()
                .into_iter()
                .map(|s| {
                    let span = s.span();
                    let s = s.into_inner();
                    if s.id.is_none() && s.address.is_none() && s.class.is_none() {
                        return Err(ConfigError::at(
                            text,
                            Some(span),
                            "a selector needs id, address or class",
                        ));
                    }
                    if let Some(c) = &s.class
                        && (c.is_empty()
                            || c.len() > 6
                            || c.len() % 2 != 0
                            || !c.bytes().all(|b| b.is_ascii_hexdigit()))
                    {
                        return Err(ConfigError::at(
                            text,
                            Some(span),
                            format!(
                                "class '{}' is not 2, 4 or 6 hex digits (02, 0200, 020000)",
                                crate::echoed(c)
                            ),
                        ));
                    }
                    Ok(s)
                })
                .collect::<Result<_, _>>()?;
            if select.is_empty() {
                return Err(ConfigError::at(
                    text,
                    Some(span),
                    format!("resource '{name}' selects nothing"),
                ));
            }
            resources.push(Resource {
                name: r.name.into_inner(),
                select,
            });
        }
        Ok(Self { resources })
    }
}
