//! The bytes of a device's `config` file: a 4 KiB configuration space with a real capability list.
//!
//! Layout used for every device (offsets as on many real devices, QEMU's among them):
//! - 0x40: Power Management capability (all devices), `NoSoftReset` set;
//! - 0x60: PCI Express capability (PCIe devices only), port type in bits 4-7 of the flags word,
//!   DEVCAP bit 28 for FLR;
//! - 0x100: AER extended capability header (PCIe only), chaining to
//! - 0x148: ACS extended capability (when the device has one): capability at +4, control at +6.

use crate::spec::DeviceSpec;

/// Offset of the ACS extended capability.
pub const ACS_OFFSET: usize = 0x148;
/// Offset of the PCI Express capability.
pub const PCIE_OFFSET: usize = 0x60;
/// Offset of the power-management capability.
pub const PM_OFFSET: usize = 0x40;

fn put16(c: &mut [u8], at: usize, v: u16) {
    c[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(c: &mut [u8], at: usize, v: u32) {
    c[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Builds the 4096 configuration-space bytes of `dev`, with ACS control `acs_control`.
pub fn config_bytes(dev: &DeviceSpec, acs_control: Option<u16>, primary_bus: u8) -> Vec<u8> {
    let mut c = vec![0u8; 4096];
    put16(&mut c, 0x00, dev.id.vendor);
    put16(&mut c, 0x02, dev.id.device);
    // Command: memory space + bus master, as a driver-owned device has.
    put16(&mut c, 0x04, 0x0006);
    // Status bit 4: the capability list at 0x34 is valid.
    put16(&mut c, 0x06, 0x0010);
    c[0x08] = dev.revision;
    c[0x09] = dev.class as u8;
    c[0x0a] = (dev.class >> 8) as u8;
    c[0x0b] = (dev.class >> 16) as u8;
    c[0x0e] = dev.header_type();
    if dev.kind.is_bridge() {
        let secondary = dev.secondary_bus.unwrap_or(0);
        c[0x18] = primary_bus;
        c[0x19] = secondary;
        c[0x1a] = secondary;
    } else {
        put16(&mut c, 0x2c, dev.subsystem.vendor);
        put16(&mut c, 0x2e, dev.subsystem.device);
    }
    c[0x34] = PM_OFFSET as u8;

    // Power management: version 3, NoSoftReset (D3hot->D0 keeps state).
    c[PM_OFFSET] = vfioctl_core::config::CAP_ID_PM;
    let pcie_type = dev.kind.pcie_type();
    c[PM_OFFSET + 1] = if pcie_type.is_some() {
        PCIE_OFFSET as u8
    } else {
        0
    };
    put16(&mut c, PM_OFFSET + 2, 0x0003);
    put16(&mut c, PM_OFFSET + 4, 0x0008);

    if let Some(port_type) = pcie_type {
        c[PCIE_OFFSET] = vfioctl_core::config::CAP_ID_EXP;
        c[PCIE_OFFSET + 1] = 0;
        // Capability version 2; bit 8 "slot implemented" for ports with a slot.
        let slot = matches!(port_type, 0x4 | 0x6) as u16;
        put16(
            &mut c,
            PCIE_OFFSET + 2,
            0x0002 | (u16::from(port_type) << 4) | (slot << 8),
        );
        let devcap: u32 = if dev.flr { 1 << 28 } else { 0 };
        put32(&mut c, PCIE_OFFSET + 4, devcap);

        // AER at 0x100 (ID 0x0001, version 2); next = ACS when present.
        let next = if dev.acs.is_some() {
            ACS_OFFSET as u32
        } else {
            0
        };
        put32(&mut c, 0x100, (next << 20) | (2 << 16) | 0x0001);
        if let Some(acs) = dev.acs {
            put32(
                &mut c,
                ACS_OFFSET,
                (1 << 16) | u32::from(vfioctl_core::config::EXT_CAP_ID_ACS),
            );
            put16(&mut c, ACS_OFFSET + 4, acs.capability);
            put16(&mut c, ACS_OFFSET + 6, acs_control.unwrap_or(0));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{DeviceSpec, PciKind};
    use vfioctl_core::config::{PcieType, REQ_ACS_FLAGS, parse_config};

    fn dev(kind: PciKind) -> DeviceSpec {
        DeviceSpec::new(
            "0000:00:1c.0".parse().unwrap(),
            "8086:a110".parse().unwrap(),
            0x060400,
            kind,
        )
    }

    #[test]
    fn root_port_with_acs_round_trips() {
        let d = dev(PciKind::RootPort).acs(0x5f);
        let info = parse_config(&config_bytes(&d, Some(0x1d), 0));
        assert_eq!(info.header_type, Some(1));
        assert_eq!(info.multifunction, Some(false));
        assert_eq!(info.pcie_type, Some(PcieType::RootPort));
        let acs = info.acs.unwrap();
        assert_eq!(
            (acs.offset, acs.capability, acs.control),
            (0x148, 0x5f, 0x1d)
        );
        assert!(acs.flags_enabled(REQ_ACS_FLAGS));
        assert_eq!(info.pm_no_soft_reset, Some(true));
    }

    #[test]
    fn every_port_type_round_trips() {
        for (kind, want) in [
            (PciKind::Endpoint, PcieType::Endpoint),
            (PciKind::RcEndpoint, PcieType::RcEndpoint),
            (PciKind::Upstream, PcieType::Upstream),
            (PciKind::Downstream, PcieType::Downstream),
            (PciKind::PcieToPciBridge, PcieType::PcieToPciBridge),
        ] {
            let info = parse_config(&config_bytes(&dev(kind), None, 0));
            assert_eq!(info.pcie_type, Some(want), "{kind:?}");
            assert_eq!(info.acs, None);
            assert!(info.extended_readable);
        }
    }

    #[test]
    fn flr_and_multifunction_round_trip() {
        let d = dev(PciKind::Endpoint).flr().multifunction();
        let info = parse_config(&config_bytes(&d, None, 0));
        assert_eq!(info.flr, Some(true));
        assert_eq!(info.multifunction, Some(true));
        assert_eq!(info.header_type, Some(0));
    }

    #[test]
    fn conventional_pci_has_no_pcie_capability() {
        let info = parse_config(&config_bytes(&dev(PciKind::PciFunction), None, 0));
        assert_eq!(info.pcie_type, None);
        assert_eq!(info.flr, None);
        assert!(!info.extended_readable);
        let bridge = parse_config(&config_bytes(&dev(PciKind::PciBridge), None, 0));
        assert_eq!(bridge.header_type, Some(1));
        assert_eq!(bridge.pcie_type, None);
    }

    #[test]
    fn disabled_acs_reads_back_as_disabled() {
        let d = dev(PciKind::RootPort).acs(0x5f);
        let acs = parse_config(&config_bytes(&d, Some(0), 0)).acs.unwrap();
        assert!(!acs.flags_enabled(REQ_ACS_FLAGS));
    }
}
