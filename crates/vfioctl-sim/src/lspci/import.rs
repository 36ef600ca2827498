//! Simulated devices from a parsed capture: IDs and classes from names where `-nn` is missing,
//! the multifunction bit from siblings, parents from bus ranges, each guess recorded.

use std::collections::BTreeMap;

use vfioctl_core::config::{PcieType, parse_config};
use vfioctl_core::{PciAddress, VendorDevice};

use super::{Capture, hex};
use crate::spec::{AcsSpec, DeviceSpec, GroupRule, PciKind};

/// Vendor IDs for the names `lspci` prints without `-nn`, for the vendors whose quirks matter.
const VENDOR_NAMES: &[(&str, u16)] = &[
    ("Intel Corporation", 0x8086),
    ("Advanced Micro Devices, Inc. [AMD/ATI]", 0x1002),
    ("Advanced Micro Devices, Inc. [AMD]", 0x1022),
    ("Freescale Semiconductor Inc", 0x1957),
    ("NXP Semiconductors", 0x1957),
    ("Realtek Semiconductor Co., Ltd.", 0x10ec),
    ("Marvell Technology Group Ltd.", 0x1b4b),
    ("ASMedia Technology Inc.", 0x1b21),
    ("Broadcom Inc. and subsidiaries", 0x14e4),
    ("NVIDIA Corporation", 0x10de),
    ("Samsung Electronics Co Ltd", 0x144d),
    ("Sandisk Corp", 0x15b7),
    ("ASPEED Technology, Inc.", 0x1a03),
    ("Ampere Computing, LLC", 0x1def),
    ("Huawei Technologies Co., Ltd.", 0x19e5),
    ("Mellanox Technologies", 0x15b3),
    ("PLX Technology, Inc.", 0x10b5),
];

/// Class codes for the class names lspci prints without `-nn`.
const CLASS_NAMES: &[(&str, u16)] = &[
    ("Non-VGA unclassified device", 0x0000),
    ("SCSI storage controller", 0x0100),
    ("IDE interface", 0x0101),
    ("Mass storage controller", 0x0180),
    ("SATA controller", 0x0106),
    ("Non-Volatile memory controller", 0x0108),
    ("Ethernet controller", 0x0200),
    ("Network controller", 0x0280),
    ("VGA compatible controller", 0x0300),
    ("3D controller", 0x0302),
    ("Display controller", 0x0380),
    ("Multimedia audio controller", 0x0401),
    ("Audio device", 0x0403),
    ("RAM memory", 0x0500),
    ("Memory controller", 0x0580),
    ("Host bridge", 0x0600),
    ("ISA bridge", 0x0601),
    ("PCI bridge", 0x0604),
    ("Serial controller", 0x0700),
    ("Communication controller", 0x0780),
    ("System peripheral", 0x0880),
    ("Encryption controller", 0x1080),
    ("Signal processing controller", 0x1180),
    ("USB controller", 0x0c03),
    ("SMBus", 0x0c05),
    ("Serial bus controller", 0x0c80),
    ("Unassigned class", 0xff00),
];

/// A simulated host's devices built from a capture, and what the build had to guess.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The devices, with the kernel's groups from the capture as fixed groups.
    pub devices: Vec<DeviceSpec>,
    /// The capture's groups, by address (`None`: the capture shows no group for it).
    pub groups: BTreeMap<PciAddress, Option<u32>>,
    /// What had to be guessed.
    pub inferred: Vec<String>,
}

/// Builds simulated devices from a capture.
pub fn import(capture: &Capture) -> Imported {
    let mut inferred = capture.inferred.clone();
    let addrs: Vec<PciAddress> = capture.devices.iter().filter_map(|d| d.address).collect();
    let mut devices = Vec::new();
    let mut groups = BTreeMap::new();
    for d in &capture.devices {
        let Some(a) = d.address else { continue };
        let info = (d.dump.len() >= 64).then(|| parse_config(&d.dump));
        let dump_id = (d.dump.len() >= 4).then(|| VendorDevice {
            vendor: u16::from_le_bytes([d.dump[0], d.dump[1]]),
            device: u16::from_le_bytes([d.dump[2], d.dump[3]]),
        });
        let id = d.id.or(dump_id).unwrap_or_else(|| {
            let vendor = VENDOR_NAMES
                .iter()
                .find(|(n, _)| d.names.starts_with(n))
                .map_or(0, |(_, v)| *v);
            let device = d
                .names
                .split_whitespace()
                .skip_while(|w| *w != "Device")
                .nth(1)
                .and_then(hex::<u16>)
                .unwrap_or(0);
            inferred.push(format!(
                "{a}: IDs {vendor:04x}:{device:04x} taken from the names \"{}\" (the capture has no -nn)",
                d.names
            ));
            VendorDevice { vendor, device }
        });
        let class16 = d.class.unwrap_or_else(|| {
            CLASS_NAMES
                .iter()
                .find(|(n, _)| *n == d.class_name)
                .map_or_else(
                    || {
                        inferred.push(format!(
                            "{a}: class \"{}\" unknown, taken as ff00",
                            d.class_name
                        ));
                        0xff00
                    },
                    |(_, c)| *c,
                )
        });
        let class = (u32::from(class16) << 8) | u32::from(d.prog_if.unwrap_or(0));
        let pcie = info.as_ref().map_or(d.pcie, |i| i.pcie_type.or(d.pcie));
        let bridge = d.secondary.is_some()
            || info.as_ref().and_then(|i| i.header_type) == Some(1)
            || class16 == 0x0604;
        let kind = match pcie {
            Some(PcieType::Endpoint | PcieType::LegacyEndpoint) => PciKind::Endpoint,
            Some(PcieType::RcEndpoint) => PciKind::RcEndpoint,
            Some(PcieType::RcEventCollector) => PciKind::RcEventCollector,
            Some(PcieType::RootPort) => PciKind::RootPort,
            Some(PcieType::Upstream) => PciKind::Upstream,
            Some(PcieType::Downstream) => PciKind::Downstream,
            Some(PcieType::PcieToPciBridge) => PciKind::PcieToPciBridge,
            Some(PcieType::PciToPcieBridge | PcieType::Other(_)) => {
                inferred.push(format!(
                    "{a}: port type {pcie:?} simulated as a conventional bridge"
                ));
                PciKind::PciBridge
            }
            None if bridge => PciKind::PciBridge,
            None => PciKind::PciFunction,
        };
        if pcie.is_none() && !d.caps_visible {
            inferred.push(format!(
                "{a}: no capabilities shown (not captured as root?): taken as conventional PCI"
            ));
        }
        let mut spec = DeviceSpec::new(a, id, class, kind);
        spec.subsystem = d.subsystem.unwrap_or(id);
        spec.revision = d.revision.unwrap_or(0);
        spec.secondary_bus = d
            .secondary
            .or_else(|| info.as_ref().and_then(|i| i.secondary_bus));
        if spec.secondary_bus.is_none() && kind.is_bridge() {
            // The bus the capture shows behind it, if any device names it as parent.
            spec.secondary_bus = capture
                .devices
                .iter()
                .find(|c| c.path_parent == Some(a))
                .and_then(|c| c.address)
                .map(|c| c.bus);
        }
        spec.multifunction = match info.as_ref().and_then(|i| i.multifunction) {
            Some(m) => m,
            None => {
                let siblings = addrs.iter().any(|o| *o != a && o.same_slot(&a));
                if siblings {
                    inferred.push(format!(
                        "{a}: multifunction (another function of its slot is in the capture)"
                    ));
                }
                siblings
            }
        };
        let acs = info
            .as_ref()
            .and_then(|i| i.acs)
            .map(|x| (x.capability, x.control))
            .or(d.acs);
        spec.acs = acs.map(|(capability, control)| AcsSpec {
            capability,
            control: Some(control),
        });
        spec.driver = d.driver.clone();
        spec.reset_methods.clear();
        spec.group = match d.group {
            Some(g) => GroupRule::Fixed(g),
            None => GroupRule::None,
        };
        groups.insert(a, d.group);
        devices.push(spec);
    }
    // Parents the capture implies only through bus ranges.
    for dev in &devices {
        let a = dev.address;
        let has_parent = devices
            .iter()
            .any(|b| b.address.domain == a.domain && b.secondary_bus == Some(a.bus));
        let root_bus = devices
            .iter()
            .filter(|d| d.address.domain == a.domain)
            .map(|d| d.address.bus)
            .min();
        if !has_parent && Some(a.bus) != root_bus {
            inferred.push(format!(
                "{a}: no bridge in the capture leads to bus {:02x}: taken as a root bus",
                a.bus
            ));
        }
    }
    Imported {
        devices,
        groups,
        inferred,
    }
}

/// How to build a host from a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// Architecture of the captured machine.
    pub arch: crate::spec::Arch,
    /// `uname -r` to write.
    pub release: String,
    /// Booted by device tree (arm64 boards) rather than ACPI.
    pub device_tree: bool,
    /// `/sys/class/iommu` entry to write; `None` writes the host with the IOMMU off, so the
    /// capture's groups are not in the tree (only a prediction can tell them).
    pub iommu: Option<String>,
}

/// A simulated host built from an lspci capture.
pub fn builder(imported: &Imported, options: &ImportOptions) -> crate::SimBuilder {
    let mut b = crate::SimBuilder::new(crate::spec::HostSpec {
        arch: options.arch,
        release: options.release.clone(),
        cmdline: String::new(),
        iommu: options.iommu.clone(),
        group_type: "DMA".to_owned(),
        acs_enabled_at_boot: !options.device_tree,
        override_unset_null: false,
        extra_mounts: Vec::new(),
        modprobe_d: Vec::new(),
    });
    for d in &imported.devices {
        let mut d = d.clone();
        // Drivers are only names here: the simulated kernel has no modules for them.
        d.driver = None;
        b.add(d);
    }
    b
}
