//! The facts a predicted group rests on, each one a thing a person can check.

use serde::Serialize;

use crate::address::PciAddress;

/// The kind of a fact. The JSON names are part of the stable schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    /// An ACS capability with the controls the kernel requires, enabled now or at boot.
    AcsEnabled,
    /// An ACS capability that implements none of the controls: the kernel counts it as enabled.
    AcsEmpty,
    /// An ACS capability the kernel will not enable (and firmware left off).
    AcsNotEnabled,
    /// A port or multifunction device without an ACS capability.
    AcsMissing,
    /// Config space was too short to read the ACS capability.
    AcsUnknown,
    /// A device-specific kernel quirk counts the device as isolated.
    AcsQuirk,
    /// A device-specific kernel quirk says the device does not isolate.
    AcsQuirkNotIsolating,
    /// ACS never applies (conventional PCI, PCIe-to-PCI bridges, event collectors).
    AcsNotApplicable,
    /// A single-function endpoint or upstream port: ACS is not required.
    AcsNotRequired,
    /// Functions of one multifunction device without ACS share a group.
    MultifunctionWithoutAcs,
    /// Conventional PCI behind a bridge uses the bridge's requester ID.
    PciBridgeAlias,
    /// A PCIe-to-PCI bridge that forwards the original requester IDs.
    BridgeNoAlias,
    /// A kernel DMA-alias quirk makes a device use another function's requester ID.
    DmaAliasQuirk,
    /// Two devices would use one SMMUv3 stream ID: the later one gets no group.
    StreamIdClash,
    /// No driver is bound, and the kernel gives a function its group only when one binds.
    NoDriverNoGroup,
}

/// One fact a prediction rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fact {
    /// Its kind.
    pub kind: FactKind,
    /// The device it is about.
    pub device: Option<PciAddress>,
    /// One sentence.
    pub text: String,
}

impl Fact {
    /// A fact about `device`.
    pub fn new(kind: FactKind, device: PciAddress, text: impl Into<String>) -> Self {
        Self {
            kind,
            device: Some(device),
            text: text.into(),
        }
    }
}
