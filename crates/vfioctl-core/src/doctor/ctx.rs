//! What the checks share: the context they read and the small helpers their messages use.

use std::collections::BTreeSet;
use std::fmt;

use crate::address::PciAddress;
use crate::device::{Inventory, PciDevice};

use super::facts::{DoctorFacts, ModuleStatus};
use super::parse::{Directive, ModprobeEntry, Param, parse_cmdline};

/// What every check reads: the facts, the inventory, the parsed command line and the scope.
pub(super) struct Ctx<'a> {
    pub(super) facts: &'a DoctorFacts,
    pub(super) inv: &'a Inventory,
    pub(super) params: Vec<Param>,
    /// Devices device-specific checks look at (named devices and their group mates), or all.
    pub(super) scope: Option<BTreeSet<PciAddress>>,
    pub(super) named: &'a [PciAddress],
}

impl<'a> Ctx<'a> {
    /// With `named` empty the scope is the whole host; otherwise the named devices and the
    /// members of their IOMMU groups.
    pub(super) fn new(facts: &'a DoctorFacts, inv: &'a Inventory, named: &'a [PciAddress]) -> Self {
        let scope = (!named.is_empty()).then(|| {
            named
                .iter()
                .flat_map(|a| {
                    let mut m = inv.group_members(a);
                    m.push(*a);
                    m
                })
                .collect()
        });
        Self {
            facts,
            inv,
            params: facts
                .cmdline
                .as_deref()
                .map(parse_cmdline)
                .unwrap_or_default(),
            scope,
            named,
        }
    }
}

impl Ctx<'_> {
    pub(super) fn in_scope(&self, address: &PciAddress) -> bool {
        self.scope.as_ref().is_none_or(|s| s.contains(address))
    }

    /// Devices a VM could be given: endpoints (not bridges, not host bridges) in scope. Looking
    /// at the whole host, devices the host itself uses (its disk, its network) are left out.
    pub(super) fn endpoints(&self) -> impl Iterator<Item = &PciDevice> {
        self.inv.devices().iter().filter(|d| {
            is_endpoint(d)
                && match &self.scope {
                    Some(scope) => scope.contains(&d.address),
                    None => !self.facts.host_uses.contains_key(&d.address),
                }
        })
    }

    /// Endpoints in scope, the host's own included.
    pub(super) fn all_endpoints(&self) -> impl Iterator<Item = &PciDevice> {
        self.inv
            .devices()
            .iter()
            .filter(|d| is_endpoint(d) && self.in_scope(&d.address))
    }

    pub(super) fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().rev().find(|p| p.name == name)
    }

    pub(super) fn module(&self, name: &str) -> Option<ModuleStatus> {
        self.facts.modules.get(name).copied()
    }

    pub(super) fn modprobe_options<'b>(
        &'b self,
        module: &'b str,
        param: &'b str,
    ) -> impl Iterator<Item = (&'b ModprobeEntry, &'b str)> + 'b {
        self.facts
            .modprobe
            .iter()
            .filter_map(move |e| match &e.directive {
                Directive::Options { module: m, params } if m == module => params
                    .iter()
                    .find(|(k, _)| k == param)
                    .map(|(_, v)| (e, v.as_str())),
                _ => None,
            })
    }
}

/// Not a bridge, and not a host bridge or other bridge-class function.
pub(super) fn is_endpoint(d: &PciDevice) -> bool {
    !d.is_bridge() && d.class.base() != 0x06
}

pub(super) fn truthy(value: &str) -> bool {
    matches!(value.trim(), "1" | "y" | "Y" | "yes" | "on" | "true")
}

pub(super) fn sys_dev(address: &PciAddress, attr: &str) -> String {
    format!("/sys/bus/pci/devices/{address}/{attr}")
}

pub(super) fn join<T: fmt::Display>(items: &[T]) -> String {
    let parts: Vec<String> = items.iter().map(ToString::to_string).collect();
    match parts.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}
