//! `pci_device_group()` run over the whole inventory in enumeration order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::Platform;
use super::acs::{AcsVerdict, acs_verdict};
pub use super::fact::{Fact, FactKind};
use super::quirks::{AliasKind, AliasQuirk, alias_quirk};
use crate::address::PciAddress;
use crate::config::PcieType;
use crate::device::{Inventory, PciDevice};
use crate::groups::{GroupReason, ReasonKind, consequence};

/// One predicted group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PredictedGroup {
    /// Number in allocation order (the kernel numbers groups the same way, but other IOMMU
    /// clients can shift its numbers: compare members, not numbers).
    pub id: u32,
    /// Members, sorted.
    pub devices: Vec<PciAddress>,
    /// Why the group holds what it holds.
    pub reason: GroupReason,
    /// The facts the prediction rests on.
    pub facts: Vec<Fact>,
    /// Members without a driver on a kernel that groups a function only when a driver binds
    /// ([`Platform::groups_at_driver_bind`]): sysfs shows them without a group until then, and
    /// they join this one when a driver (vfio-pci, say) binds.
    pub awaiting_driver: Vec<PciAddress>,
}

/// A device predicted to get no group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ungrouped {
    /// The device.
    pub device: PciAddress,
    /// Why.
    pub fact: Fact,
}

/// The groups the kernel would form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prediction {
    /// What the prediction assumed about the host.
    pub platform: Platform,
    /// The groups, by number.
    pub groups: Vec<PredictedGroup>,
    /// Devices that would get no group.
    pub ungrouped: Vec<Ungrouped>,
    /// False when some ACS capability could not be read, so a group may be larger than predicted
    /// (run as root to read extended config space).
    pub complete: bool,
    /// Every function's verdict, by address.
    #[serde(skip)]
    pub verdicts: BTreeMap<PciAddress, AcsVerdict>,
}

impl Prediction {
    /// The predicted group of `address`.
    pub fn group_of(&self, address: &PciAddress) -> Option<&PredictedGroup> {
        self.groups.iter().find(|g| g.devices.contains(address))
    }
}

/// The devfns on its own bus `d` also issues DMA as (`dma_alias_mask`), from its quirk.
fn alias_devfns(d: &PciDevice, platform: &Platform) -> Vec<(u8, u8)> {
    let Some(q) = alias_quirk(
        d.id.vendor,
        d.id.device,
        d.subsystem.map(|s| (s.vendor, s.device)),
        platform.kernel,
    ) else {
        return Vec::new();
    };
    let a = d.address;
    match q.kind {
        AliasKind::Function0 if a.function != 0 => vec![(a.device, 0)],
        AliasKind::Function1 if a.function != 1 => vec![(a.device, 1)],
        AliasKind::Fixed(list) => list.to_vec(),
        AliasKind::EverySlot => (0..32u8)
            .flat_map(|s| (0..5u8).map(move |f| (s, f)))
            .collect(),
        _ => Vec::new(),
    }
}

/// How a device came to join an existing group.
#[derive(Debug, Clone)]
struct Join {
    group: u32,
    kind: ReasonKind,
    /// The device the reason names.
    anchor: PciAddress,
    fact: Option<Fact>,
}

pub(super) struct Walker<'a> {
    pub(super) inv: &'a Inventory,
    pub(super) platform: Platform,
    pub(super) verdicts: BTreeMap<PciAddress, AcsVerdict>,
    group: HashMap<PciAddress, u32>,
    /// The devices of each `(domain, bus)`, in enumeration order: the alias searches look only
    /// at one bus, and scanning every device for each one is quadratic on SR-IOV hosts.
    buses: HashMap<(u32, u8), Vec<&'a PciDevice>>,
    /// The devfns each device with a DMA-alias quirk also uses; a device absent here has none.
    aliases: HashMap<PciAddress, Vec<(u8, u8)>>,
    /// The devices of each bus that have such a quirk, in enumeration order: a device without
    /// one can only be an alias of these, so its search skips the hundreds of VFs beside it.
    alias_buses: HashMap<(u32, u8), Vec<&'a PciDevice>>,
}

impl<'a> Walker<'a> {
    pub(super) fn new(inv: &'a Inventory, platform: Platform) -> Self {
        let first_domain = inv
            .devices()
            .iter()
            .map(|d| d.address.domain)
            .min()
            .unwrap_or(0);
        let verdicts = inv
            .devices()
            .iter()
            .map(|d| {
                let enables = platform.kernel_enables_acs(d.address.domain, first_domain);
                (
                    d.address,
                    acs_verdict(d, &platform, d.parent.is_none(), enables),
                )
            })
            .collect();
        let mut buses: HashMap<(u32, u8), Vec<&'a PciDevice>> = HashMap::new();
        for d in inv.devices() {
            buses
                .entry((d.address.domain, d.address.bus))
                .or_default()
                .push(d);
        }
        let aliases: HashMap<PciAddress, Vec<(u8, u8)>> = inv
            .devices()
            .iter()
            .filter_map(|d| {
                let devfns = alias_devfns(d, &platform);
                (!devfns.is_empty()).then_some((d.address, devfns))
            })
            .collect();
        let alias_buses = buses
            .iter()
            .filter_map(|(bus, members)| {
                let holders: Vec<&PciDevice> = members
                    .iter()
                    .copied()
                    .filter(|d| aliases.contains_key(&d.address))
                    .collect();
                (!holders.is_empty()).then_some((*bus, holders))
            })
            .collect();
        Self {
            inv,
            platform,
            verdicts,
            group: HashMap::new(),
            buses,
            aliases,
            alias_buses,
        }
    }

    pub(super) fn isolates(&self, a: &PciAddress) -> bool {
        self.verdicts.get(a).is_some_and(|v| v.isolates)
    }

    /// `pci_acs_path_enabled(start, NULL, REQ_ACS_FLAGS)`: `Err` names the first function on the
    /// way to the root that does not isolate.
    pub(super) fn acs_path(&self, start: PciAddress) -> Result<(), PciAddress> {
        let mut cur = start;
        for _ in 0..=self.inv.devices().len() {
            if !self.isolates(&cur) {
                return Err(cur);
            }
            match self.inv.get(&cur).and_then(|d| d.parent) {
                None => return Ok(()),
                Some(p) => cur = p,
            }
        }
        Err(cur)
    }

    fn alias_quirk(&self, d: &PciDevice) -> Option<&'static AliasQuirk> {
        alias_quirk(
            d.id.vendor,
            d.id.device,
            d.subsystem.map(|s| (s.vendor, s.device)),
            self.platform.kernel,
        )
    }

    /// The devfns on its own bus a device also issues DMA as (`dma_alias_mask`).
    fn alias_devfns(&self, d: &PciDevice) -> &[(u8, u8)] {
        self.aliases.get(&d.address).map_or(&[], Vec::as_slice)
    }

    fn are_dma_aliases(&self, a: &PciDevice, b: &PciDevice) -> bool {
        let slot = |x: &PciDevice| (x.address.device, x.address.function);
        self.alias_devfns(a).contains(&slot(b)) || self.alias_devfns(b).contains(&slot(a))
    }

    fn same_bus<'s>(&'s self, a: PciAddress) -> impl Iterator<Item = &'a PciDevice> + 's {
        self.buses
            .get(&(a.domain, a.bus))
            .into_iter()
            .flatten()
            .copied()
            .filter(move |t| t.address != a)
    }

    /// `get_pci_alias_group()`.
    fn alias_group(&self, pdev: &PciDevice, seen: &mut BTreeSet<(u8, u8)>) -> Option<Join> {
        if !seen.insert((pdev.address.device, pdev.address.function)) {
            return None;
        }
        if let Some(g) = self.group.get(&pdev.address) {
            return Some(Join {
                group: *g,
                kind: ReasonKind::DmaAlias,
                anchor: pdev.address,
                fact: None,
            });
        }
        let a = pdev.address;
        let candidates: &[&PciDevice] = if self.aliases.contains_key(&a) {
            self.buses.get(&(a.domain, a.bus))
        } else {
            self.alias_buses.get(&(a.domain, a.bus))
        }
        .map_or(&[], Vec::as_slice);
        for &tmp in candidates {
            if tmp.address == a || !self.are_dma_aliases(pdev, tmp) {
                continue;
            }
            let found = self
                .alias_group(tmp, seen)
                .or_else(|| self.function_alias_group(tmp, seen));
            if let Some(mut j) = found {
                let quirky = if self.alias_quirk(pdev).is_some() {
                    pdev
                } else {
                    tmp
                };
                j.kind = ReasonKind::DmaAlias;
                j.anchor = quirky.address;
                j.fact = Some(Fact::new(
                    FactKind::DmaAliasQuirk,
                    quirky.address,
                    format!(
                        "{}: {} (a kernel DMA-alias quirk)",
                        quirky.address,
                        self.alias_quirk(quirky).map_or("", |q| q.text)
                    ),
                ));
                return Some(j);
            }
        }
        None
    }

    /// `get_pci_function_alias_group()`.
    fn function_alias_group(
        &self,
        pdev: &PciDevice,
        seen: &mut BTreeSet<(u8, u8)>,
    ) -> Option<Join> {
        if !pdev.is_multifunction() || self.isolates(&pdev.address) {
            return None;
        }
        for tmp in self.same_bus(pdev.address) {
            if tmp.address.device != pdev.address.device || self.isolates(&tmp.address) {
                continue;
            }
            if let Some(mut j) = self.alias_group(tmp, seen) {
                if j.fact.is_none() {
                    j.kind = ReasonKind::MultifunctionWithoutAcs;
                    j.anchor = pdev.address.with_function(0).unwrap_or(pdev.address);
                    j.fact = Some(Fact::new(
                        FactKind::MultifunctionWithoutAcs,
                        pdev.address,
                        format!(
                            "{} and {} are functions of one multifunction device without ACS",
                            tmp.address, pdev.address
                        ),
                    ));
                }
                return Some(j);
            }
        }
        None
    }

    /// `pci_device_group()` for one device: the group it joins, or `None` for a new one, plus the
    /// facts met on the way.
    fn device_group(&self, d: &PciDevice, facts: &mut Vec<Fact>) -> Option<Join> {
        // pci_for_each_dma_alias(): the topmost bridge that takes over the requester ID.
        let mut pdev = d;
        for bridge in self.inv.ancestors(&d.address) {
            if let Some(q) = self.alias_quirk(bridge) {
                match q.kind {
                    AliasKind::TranslationRoot => break,
                    AliasKind::BridgeNoAlias
                        if bridge.config.pcie_type == Some(PcieType::PcieToPciBridge) =>
                    {
                        facts.push(Fact::new(FactKind::BridgeNoAlias, bridge.address, q.text));
                        continue;
                    }
                    _ => {}
                }
            }
            let aliases = match bridge.config.pcie_type {
                Some(PcieType::RootPort | PcieType::Upstream | PcieType::Downstream) => false,
                Some(PcieType::PcieToPciBridge | PcieType::PciToPcieBridge) | None => true,
                Some(_) => false,
            };
            if !aliases {
                continue;
            }
            pdev = bridge;
            let fact = Fact::new(
                FactKind::PciBridgeAlias,
                bridge.address,
                format!(
                    "{} ({}) forwards the devices behind it under its own requester ID",
                    bridge.address,
                    bridge.role()
                ),
            );
            if let Some(g) = self.group.get(&bridge.address) {
                return Some(Join {
                    group: *g,
                    kind: ReasonKind::PciBridgeAlias,
                    anchor: bridge.address,
                    fact: Some(fact),
                });
            }
            facts.push(fact);
        }

        // Up to the first bridge whose ACS path to the root is enabled.
        for bridge in self.inv.ancestors(&pdev.address) {
            match self.acs_path(bridge.address) {
                Ok(()) => {
                    if let Some(v) = self.verdicts.get(&bridge.address) {
                        facts.push(v.fact.clone());
                    }
                    break;
                }
                Err(breaker) => {
                    pdev = bridge;
                    if let Some(g) = self.group.get(&bridge.address) {
                        return Some(Join {
                            group: *g,
                            kind: ReasonKind::AcsMissingUpstream,
                            anchor: breaker,
                            fact: self.verdicts.get(&breaker).map(|v| v.fact.clone()),
                        });
                    }
                }
            }
        }

        let mut seen = BTreeSet::new();
        self.alias_group(pdev, &mut seen)
            .or_else(|| self.function_alias_group(pdev, &mut seen))
    }

    /// The requester IDs `(bus, devfn)` a device's DMA arrives with, for the stream-ID table.
    fn requester_ids(&self, d: &PciDevice) -> Vec<(u8, u8, u8)> {
        let a = d.address;
        let mut ids = vec![(a.bus, a.device, a.function)];
        ids.extend(self.alias_devfns(d).iter().map(|&(s, f)| (a.bus, s, f)));
        let mut bus = a.bus;
        for bridge in self.inv.ancestors(&a) {
            let q = self.alias_quirk(bridge).map(|q| q.kind);
            if q == Some(AliasKind::TranslationRoot) {
                break;
            }
            let b = bridge.address;
            match bridge.config.pcie_type {
                Some(PcieType::PcieToPciBridge) if q != Some(AliasKind::BridgeNoAlias) => {
                    ids.push((bridge.config.secondary_bus.unwrap_or(bus), 0, 0));
                }
                Some(PcieType::PciToPcieBridge) => ids.push((b.bus, b.device, b.function)),
                None if q == Some(AliasKind::PcieBridgeAlias) => {
                    ids.push((bridge.config.secondary_bus.unwrap_or(bus), 0, 0));
                }
                None => ids.push((b.bus, b.device, b.function)),
                _ => {}
            }
            bus = b.bus;
        }
        ids
    }
}

fn dedup(facts: &mut Vec<Fact>) {
    let mut seen = BTreeSet::new();
    facts.retain(|f| seen.insert((f.kind, f.device, f.text.clone())));
}

fn reason(inv: &Inventory, members: &[PciAddress], join: Option<&Join>) -> GroupReason {
    let Some(join) = join.filter(|_| members.len() > 1) else {
        return GroupReason {
            kind: ReasonKind::Single,
            device: members.first().copied(),
            text: "alone in its group".to_owned(),
        };
    };
    let tail = consequence(inv, members);
    let cause = join.fact.as_ref().map_or_else(
        || format!("{} shares its requester ID", join.anchor),
        |f| f.text.clone(),
    );
    let text = match join.kind {
        ReasonKind::AcsMissingUpstream => {
            format!("{cause}, so every function below it shares its group: {tail}")
        }
        ReasonKind::MultifunctionWithoutAcs => {
            format!("{cause}, so the IOMMU cannot keep them apart: {tail}")
        }
        ReasonKind::PciBridgeAlias => {
            format!("{cause}, so the IOMMU cannot tell them apart: {tail}")
        }
        _ => format!("{cause}, so they share one group: {tail}"),
    };
    GroupReason {
        kind: join.kind,
        device: Some(join.anchor),
        text,
    }
}

/// Predicts the groups of every function in `inv` on `platform`.
pub fn predict(inv: &Inventory, platform: &Platform) -> Prediction {
    let mut w = Walker::new(inv, *platform);
    let mut next = 0u32;
    let mut members: BTreeMap<u32, Vec<PciAddress>> = BTreeMap::new();
    let mut facts: BTreeMap<u32, Vec<Fact>> = BTreeMap::new();
    let mut first_join: BTreeMap<u32, Join> = BTreeMap::new();
    let mut ungrouped = Vec::new();
    let mut streams: HashMap<(u32, (u8, u8, u8)), PciAddress> = HashMap::new();

    // The kernel places functions as drivers bind; the unbound ones join when theirs does, after
    // every function bound at boot.
    let later = w.platform.groups_at_driver_bind();
    let (bound, unbound): (Vec<&PciDevice>, Vec<&PciDevice>) = inv
        .devices()
        .iter()
        .partition(|d| !later || d.driver.is_some());
    let mut awaiting: BTreeMap<u32, Vec<PciAddress>> = BTreeMap::new();
    for (d, pending) in bound
        .into_iter()
        .map(|d| (d, false))
        .chain(unbound.into_iter().map(|d| (d, true)))
    {
        if w.platform.stream_ids_must_be_unique() {
            let ids = w.requester_ids(d);
            let clash = ids
                .iter()
                .find_map(|id| streams.get(&(d.address.domain, *id)).copied());
            if let Some(other) = clash {
                ungrouped.push(Ungrouped {
                    device: d.address,
                    fact: Fact::new(
                        FactKind::StreamIdClash,
                        d.address,
                        format!(
                            "{} would use the same SMMUv3 stream ID as {other} (both reach the IOMMU \
                             with one requester ID), so the SMMU driver rejects it and it gets no group",
                            d.address
                        ),
                    ),
                });
                continue;
            }
            for id in ids {
                streams.insert((d.address.domain, id), d.address);
            }
        }
        let mut met = Vec::new();
        let group = match w.device_group(d, &mut met) {
            Some(join) => {
                let g = join.group;
                met.extend(join.fact.clone());
                first_join.entry(g).or_insert(join);
                g
            }
            None => {
                next += 1;
                next - 1
            }
        };
        if let Some(v) = w.verdicts.get(&d.address) {
            met.push(v.fact.clone());
        }
        if pending {
            awaiting.entry(group).or_default().push(d.address);
            met.push(Fact::new(
                FactKind::NoDriverNoGroup,
                d.address,
                format!(
                    "{} has no driver, and arm64 kernels before {} give a function its group only \
                     when a driver binds (the IOMMU reads the firmware's description at driver \
                     probe): it has no group until one binds, then joins this one",
                    d.address,
                    super::IOMMU_PROBE_AT_ADD
                ),
            ));
        }
        if let Some(q) = w.alias_quirk(d)
            && !matches!(q.kind, AliasKind::BridgeNoAlias)
        {
            met.push(Fact::new(
                FactKind::DmaAliasQuirk,
                d.address,
                format!("{}: {} (a kernel DMA-alias quirk)", d.address, q.text),
            ));
        }
        w.group.insert(d.address, group);
        members.entry(group).or_default().push(d.address);
        facts.entry(group).or_default().extend(met);
    }

    let groups = members
        .into_iter()
        .map(|(id, mut devices)| {
            devices.sort();
            let mut f = facts.remove(&id).unwrap_or_default();
            dedup(&mut f);
            PredictedGroup {
                reason: reason(inv, &devices, first_join.get(&id)),
                id,
                devices,
                facts: f,
                awaiting_driver: awaiting.remove(&id).unwrap_or_default(),
            }
        })
        .collect();
    let complete = w.verdicts.values().all(|v| v.known);
    Prediction {
        platform: *platform,
        groups,
        ungrouped,
        complete,
        verdicts: w.verdicts,
    }
}
