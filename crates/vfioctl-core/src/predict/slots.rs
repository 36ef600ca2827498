//! Whether a card placed behind a port would get an IOMMU group of its own.

use serde::Serialize;

use super::Platform;
use super::walk::{Prediction, Walker};
use crate::address::PciAddress;
use crate::config::PcieType;
use crate::device::Inventory;

/// What kind of place a card goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotKind {
    /// A root port.
    RootPort,
    /// A switch downstream port.
    DownstreamPort,
}

/// A physical slot the kernel knows (`/sys/bus/pci/slots/<name>/address`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotSite {
    /// The slot's name.
    pub name: String,
    /// Its domain, bus and device number (`0000:01:00`).
    pub domain: u32,
    /// Bus.
    pub bus: u8,
    /// Device number.
    pub device: u8,
}

/// The verdict for one port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotPrediction {
    /// The port.
    pub port: PciAddress,
    /// Root or downstream port.
    pub kind: SlotKind,
    /// Physical slots behind the port.
    pub slots: Vec<String>,
    /// A single-function card there would be alone in its group.
    pub isolates: bool,
    /// The first function between the port and the root that does not isolate.
    pub breaker: Option<PciAddress>,
    /// What the card's group would also hold (the port's predicted group).
    pub shares_with: Vec<PciAddress>,
    /// The devices there now.
    pub occupants: Vec<PciAddress>,
    /// One sentence.
    pub text: String,
}

/// The verdict for every root and downstream port, with the physical slots behind them.
/// Slots no port leads to are returned apart.
pub fn predict_slots(
    inv: &Inventory,
    platform: &Platform,
    prediction: &Prediction,
    sites: &[SlotSite],
) -> (Vec<SlotPrediction>, Vec<SlotSite>) {
    let w = Walker::new(inv, *platform);
    let mut placed = vec![false; sites.len()];
    let mut out = Vec::new();
    for port in inv.devices() {
        let kind = match port.config.pcie_type {
            Some(PcieType::RootPort) => SlotKind::RootPort,
            Some(PcieType::Downstream) => SlotKind::DownstreamPort,
            _ => continue,
        };
        let occupants: Vec<PciAddress> = inv.children(&port.address).map(|c| c.address).collect();
        let secondary = port
            .config
            .secondary_bus
            .or_else(|| occupants.first().map(|a| a.bus));
        let slots: Vec<String> = sites
            .iter()
            .enumerate()
            .filter(|(_, s)| s.domain == port.address.domain && Some(s.bus) == secondary)
            .map(|(i, s)| {
                placed[i] = true;
                s.name.clone()
            })
            .collect();
        let path = w.acs_path(port.address);
        let shares_with: Vec<PciAddress> = prediction
            .group_of(&port.address)
            .map(|g| {
                g.devices
                    .iter()
                    .filter(|a| !occupants.contains(a))
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        let slot_words = if slots.is_empty() {
            String::new()
        } else {
            format!(" (slot {})", slots.join(", "))
        };
        let text = match path {
            Ok(()) => format!(
                "a card behind {}{slot_words} gets a group of its own (a multifunction card \
                 without ACS keeps its functions together)",
                port.address
            ),
            Err(breaker) => {
                let why = w
                    .verdicts
                    .get(&breaker)
                    .map_or_else(String::new, |v| format!(": {}", v.fact.text));
                format!(
                    "a card behind {}{slot_words} would share a group with {}; {} breaks \
                     isolation{why}",
                    port.address,
                    crate::comma_list(&shares_with),
                    breaker
                )
            }
        };
        out.push(SlotPrediction {
            port: port.address,
            kind,
            slots,
            isolates: path.is_ok(),
            breaker: path.err(),
            shares_with,
            occupants,
            text,
        });
    }
    let unplaced = sites
        .iter()
        .zip(placed)
        .filter(|(_, p)| !p)
        .map(|(s, _)| s.clone())
        .collect();
    (out, unplaced)
}
