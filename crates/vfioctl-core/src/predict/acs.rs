//! `pci_acs_enabled(dev, REQ_ACS_FLAGS)` as the kernel will answer it once it has booted with
//! the IOMMU on: device-specific quirks first, then the port-type rules of `drivers/pci/pci.c`
//! on the control register `pci_enable_acs()` leaves.

use serde::Serialize;

use super::Platform;
use super::fact::{Fact, FactKind};
use super::quirks::{self, ACS_QUIRKS, ANY, AcsQuirk, AcsQuirkKind};
use crate::config::{ACS_EC, PcieType, REQ_ACS_FLAGS};
use crate::device::PciDevice;

/// Whether a function counts as isolated, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AcsVerdict {
    /// The kernel will count the function as having ACS enabled.
    pub isolates: bool,
    /// False when config space was too short to tell (the verdict is then "does not isolate").
    pub known: bool,
    /// Why.
    pub fact: Fact,
}

fn verdict(isolates: bool, dev: &PciDevice, kind: FactKind, text: String) -> AcsVerdict {
    AcsVerdict {
        isolates,
        known: kind != FactKind::AcsUnknown,
        fact: Fact::new(kind, dev.address, text),
    }
}

fn who(dev: &PciDevice) -> String {
    format!("{} ({})", dev.address, dev.role())
}

fn flag_names(bits: u16) -> String {
    let names: Vec<&str> = [
        (0x01, "SV"),
        (0x02, "TB"),
        (0x04, "RR"),
        (0x08, "CR"),
        (0x10, "UF"),
        (0x20, "EC"),
        (0x40, "DT"),
    ]
    .iter()
    .filter(|(b, _)| bits & b != 0)
    .map(|(_, n)| *n)
    .collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(" ")
    }
}

/// The predicted verdict for `dev`. `on_root_bus` is `pci_is_root_bus(dev->bus)`; `enables` is
/// whether `pci_enable_acs()` runs with ACS requested for this device's domain.
pub fn acs_verdict(
    dev: &PciDevice,
    platform: &Platform,
    on_root_bus: bool,
    enables: bool,
) -> AcsVerdict {
    for q in ACS_QUIRKS
        .iter()
        .filter(|q| q.vendor == dev.id.vendor && (q.device == ANY || q.device == dev.id.device))
    {
        if let Some(v) = quirk_answer(q, dev, platform, on_root_bus, enables) {
            return v;
        }
    }
    standard(dev, platform, enables)
}

fn quirk_isolates(dev: &PciDevice, q: &AcsQuirk) -> AcsVerdict {
    verdict(
        true,
        dev,
        FactKind::AcsQuirk,
        format!(
            "{} counts as isolated through the kernel's {} ACS quirk (sysfs cannot show this)",
            who(dev),
            q.name
        ),
    )
}

fn quirk_answer(
    q: &AcsQuirk,
    dev: &PciDevice,
    platform: &Platform,
    on_root_bus: bool,
    enables: bool,
) -> Option<AcsVerdict> {
    let pcie = dev.config.pcie_type;
    let root_port = pcie == Some(PcieType::RootPort);
    let id = dev.id.device;
    Some(match q.kind {
        AcsQuirkKind::AmdSouthbridge => {
            if !dev.is_multifunction() || !on_root_bus || !platform.has_ivrs() {
                return None;
            }
            quirk_isolates(dev, q)
        }
        AcsQuirkKind::MultifunctionEndpoint | AcsQuirkKind::IsolatedRootPort => {
            quirk_isolates(dev, q)
        }
        AcsQuirkKind::IntelRcIep => {
            if pcie != Some(PcieType::RcEndpoint) {
                return None;
            }
            quirk_isolates(dev, q)
        }
        AcsQuirkKind::IntelPch => {
            let family = quirks::intel_pch_family(id).filter(|_| root_port)?;
            let skipped = platform.pch_enable_broken() && dev.config.acs.is_none();
            if enables && !skipped {
                verdict(
                    true,
                    dev,
                    FactKind::AcsQuirk,
                    format!(
                        "{} is a {family} PCH root port without an ACS capability; the kernel \
                         isolates it through its Intel PCH ACS quirk (sysfs cannot show this)",
                        who(dev)
                    ),
                )
            } else if skipped {
                verdict(
                    false,
                    dev,
                    FactKind::AcsQuirkNotIsolating,
                    format!(
                        "{} is a {family} PCH root port without an ACS capability, and kernel {} \
                         skips the Intel PCH ACS workaround for such ports (the {} regression, \
                         fixed in {})",
                        who(dev),
                        platform.kernel,
                        super::PCH_ENABLE_BROKEN,
                        super::PCH_ENABLE_FIXED
                    ),
                )
            } else {
                verdict(
                    false,
                    dev,
                    FactKind::AcsQuirkNotIsolating,
                    format!(
                        "{} is a {family} PCH root port; the kernel's PCH ACS workaround only runs \
                         when ACS is requested at boot, which this boot does not do",
                        who(dev)
                    ),
                )
            }
        }
        AcsQuirkKind::IntelSpt => {
            if !root_port || !quirks::in_ranges(quirks::INTEL_SPT_ROOT_PORTS, id) {
                return None;
            }
            dev.config.acs?;
            verdict(
                enables,
                dev,
                if enables {
                    FactKind::AcsQuirk
                } else {
                    FactKind::AcsNotEnabled
                },
                format!(
                    "{} is a Sunrise/Union Point PCH root port whose ACS control register sits at \
                     a non-standard offset; the kernel {} it through its SPT PCH quirk (lspci shows \
                     the wrong register)",
                    who(dev),
                    if enables { "enables" } else { "would enable" }
                ),
            )
        }
        AcsQuirkKind::AnnapurnaRootPort => {
            if !root_port {
                return None;
            }
            quirk_isolates(dev, q)
        }
        AcsQuirkKind::CaviumRootPort => {
            if !root_port || !quirks::in_ranges(quirks::CAVIUM_ROOT_PORTS, id) {
                return None;
            }
            quirk_isolates(dev, q)
        }
        AcsQuirkKind::ZhaoxinPort | AcsQuirkKind::WangxunNic => {
            let (ranges, applies) = if q.kind == AcsQuirkKind::ZhaoxinPort {
                (
                    quirks::ZHAOXIN_PORTS,
                    matches!(pcie, Some(PcieType::RootPort | PcieType::Downstream)),
                )
            } else {
                (quirks::WANGXUN_NICS, true)
            };
            if !applies {
                return None;
            }
            if quirks::in_ranges(ranges, id) {
                quirk_isolates(dev, q)
            } else {
                verdict(
                    false,
                    dev,
                    FactKind::AcsQuirkNotIsolating,
                    format!(
                        "{} is not on the kernel's {} ACS quirk list, which answers \"not \
                         isolated\" for the rest of the vendor's devices",
                        who(dev),
                        q.name
                    ),
                )
            }
        }
    })
}

fn standard(dev: &PciDevice, platform: &Platform, enables: bool) -> AcsVerdict {
    let Some(pcie) = dev.config.pcie_type else {
        if dev.config.header_type.is_none() {
            return verdict(
                false,
                dev,
                FactKind::AcsUnknown,
                format!("{}: config space could not be read", who(dev)),
            );
        }
        return verdict(
            false,
            dev,
            FactKind::AcsNotApplicable,
            format!(
                "{} is conventional PCI, which never isolates: every device on its bus sees the others' DMA",
                who(dev)
            ),
        );
    };
    let needs_flags = match pcie {
        PcieType::PcieToPciBridge | PcieType::PciToPcieBridge | PcieType::RcEventCollector => {
            return verdict(
                false,
                dev,
                FactKind::AcsNotApplicable,
                format!(
                    "{}: the kernel never counts ACS on this kind of function",
                    who(dev)
                ),
            );
        }
        PcieType::Downstream | PcieType::RootPort => true,
        PcieType::Endpoint
        | PcieType::LegacyEndpoint
        | PcieType::Upstream
        | PcieType::RcEndpoint => dev.is_multifunction(),
        PcieType::Other(_) => false,
    };
    if !needs_flags {
        return verdict(
            true,
            dev,
            FactKind::AcsNotRequired,
            format!("{} is single-function, so it needs no ACS", who(dev)),
        );
    }
    if !dev.config.extended_readable {
        return verdict(
            false,
            dev,
            FactKind::AcsUnknown,
            format!(
                "{}: its ACS capability could not be read (extended config space is readable by \
                 root only); taken as not isolating",
                who(dev)
            ),
        );
    }
    let Some(acs) = dev.config.acs else {
        return verdict(
            false,
            dev,
            FactKind::AcsMissing,
            format!("{} has no ACS capability", who(dev)),
        );
    };
    let required = REQ_ACS_FLAGS & (acs.capability | ACS_EC);
    if required == 0 {
        return verdict(
            true,
            dev,
            FactKind::AcsEmpty,
            format!(
                "{} has an ACS capability with no controls, which the kernel counts as enabled, so \
                 it isolates",
                who(dev)
            ),
        );
    }
    let boot = if enables {
        acs.control | (acs.capability & REQ_ACS_FLAGS)
    } else {
        acs.control
    };
    if boot & required == required {
        let when = if acs.control & required == required {
            "enabled"
        } else {
            "which the kernel enables at boot"
        };
        return verdict(
            true,
            dev,
            FactKind::AcsEnabled,
            format!(
                "{} has ACS ({}), {when}",
                who(dev),
                flag_names(acs.capability & REQ_ACS_FLAGS)
            ),
        );
    }
    let why = if platform.dt_skips_acs() {
        format!(
            "this arm64 host booted by device tree on a kernel ({}) that never enabled ACS on its \
             first root port's domain (fixed in {})",
            platform.kernel,
            super::DT_ACS_FIXED
        )
    } else {
        "the kernel does not enable it on this boot".to_owned()
    };
    verdict(
        false,
        dev,
        FactKind::AcsNotEnabled,
        format!(
            "{} has an ACS capability ({} controllable) left off (control {}): {why}",
            who(dev),
            flag_names(acs.capability & REQ_ACS_FLAGS),
            flag_names(acs.control)
        ),
    )
}
