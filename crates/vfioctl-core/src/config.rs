//! Reading PCI configuration space from the bytes of sysfs `config`.
//!
//! Only what passthrough decisions need: the header type, the PCI Express capability (port type,
//! Function Level Reset), the power-management capability, and the ACS extended capability that
//! decides how the kernel forms IOMMU groups. Unprivileged readers see only the first 64 bytes of
//! `config`, so every reader here tolerates short input and says "unknown" instead of guessing.

/// Standard capability ID of PCI Power Management.
pub const CAP_ID_PM: u8 = 0x01;
/// Standard capability ID of PCI Express.
pub const CAP_ID_EXP: u8 = 0x10;
/// Standard capability ID of Advanced Features (conventional-PCI FLR).
pub const CAP_ID_AF: u8 = 0x13;
/// Extended capability ID of Access Control Services.
pub const EXT_CAP_ID_ACS: u16 = 0x000d;

/// ACS Source Validation.
pub const ACS_SV: u16 = 0x0001;
/// ACS Translation Blocking.
pub const ACS_TB: u16 = 0x0002;
/// ACS P2P Request Redirect.
pub const ACS_RR: u16 = 0x0004;
/// ACS P2P Completion Redirect.
pub const ACS_CR: u16 = 0x0008;
/// ACS Upstream Forwarding.
pub const ACS_UF: u16 = 0x0010;
/// ACS P2P Egress Control.
pub const ACS_EC: u16 = 0x0020;
/// The flags the kernel's `pci_device_group()` requires (`REQ_ACS_FLAGS`).
pub const REQ_ACS_FLAGS: u16 = ACS_SV | ACS_RR | ACS_CR | ACS_UF;

/// The device/port type field of the PCI Express capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PcieType {
    /// PCI Express endpoint.
    Endpoint,
    /// Legacy PCI Express endpoint.
    LegacyEndpoint,
    /// Root port of a root complex.
    RootPort,
    /// Upstream port of a switch.
    Upstream,
    /// Downstream port of a switch.
    Downstream,
    /// PCI Express to PCI/PCI-X bridge.
    PcieToPciBridge,
    /// PCI/PCI-X to PCI Express bridge.
    PciToPcieBridge,
    /// Root-complex integrated endpoint.
    RcEndpoint,
    /// Root-complex event collector.
    RcEventCollector,
    /// A value the specification does not define.
    Other(u8),
}

impl PcieType {
    fn from_bits(bits: u8) -> Self {
        match bits {
            0x0 => Self::Endpoint,
            0x1 => Self::LegacyEndpoint,
            0x4 => Self::RootPort,
            0x5 => Self::Upstream,
            0x6 => Self::Downstream,
            0x7 => Self::PcieToPciBridge,
            0x8 => Self::PciToPcieBridge,
            0x9 => Self::RcEndpoint,
            0xa => Self::RcEventCollector,
            other => Self::Other(other),
        }
    }

    /// Words a person reads ("root port", "switch downstream port").
    pub fn describe(self) -> &'static str {
        match self {
            Self::Endpoint | Self::LegacyEndpoint => "endpoint",
            Self::RootPort => "root port",
            Self::Upstream => "switch upstream port",
            Self::Downstream => "switch downstream port",
            Self::PcieToPciBridge => "PCIe-to-PCI bridge",
            Self::PciToPcieBridge => "PCI-to-PCIe bridge",
            Self::RcEndpoint => "root-complex integrated endpoint",
            Self::RcEventCollector => "root-complex event collector",
            Self::Other(_) => "PCIe function",
        }
    }
}

/// The ACS extended capability's capability and control registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Acs {
    /// Offset of the capability in config space.
    pub offset: u16,
    /// ACS Capability register: what the port can do.
    pub capability: u16,
    /// ACS Control register: what is enabled.
    pub control: u16,
}

impl Acs {
    /// The kernel's `pci_acs_flags_enabled()`: features missing from the capability register are
    /// taken as hard-wired on, except egress control.
    pub fn flags_enabled(&self, flags: u16) -> bool {
        let required = flags & (self.capability | ACS_EC);
        self.control & required == required
    }
}

/// What vfioctl learnt from one device's config space.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConfigInfo {
    /// Header type (bits 0-6 of byte 0x0e): 0 endpoint, 1 PCI bridge, 2 CardBus bridge.
    pub header_type: Option<u8>,
    /// Bit 7 of byte 0x0e: the device has more than one function.
    pub multifunction: Option<bool>,
    /// PCI Express port type, `None` for conventional PCI (or when unreadable).
    pub pcie_type: Option<PcieType>,
    /// Device Capabilities bit 28: Function Level Reset.
    pub flr: Option<bool>,
    /// ACS extended capability, when present and readable.
    pub acs: Option<Acs>,
    /// True when the extended configuration space (offset 0x100 and up) was readable, so a
    /// missing ACS capability is really missing rather than hidden from an unprivileged reader.
    pub extended_readable: bool,
    /// Power-management capability: `NoSoftReset` bit of PMCSR.
    pub pm_no_soft_reset: Option<bool>,
    /// Secondary bus number of a type-1 header (byte 0x19); kept out of JSON, which predates it.
    #[serde(skip)]
    pub secondary_bus: Option<u8>,
}

fn u8_at(bytes: &[u8], offset: usize) -> Option<u8> {
    bytes.get(offset).copied()
}

fn u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    Some(u16::from_le_bytes([
        *bytes.get(offset)?,
        *bytes.get(offset + 1)?,
    ]))
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *bytes.get(offset)?,
        *bytes.get(offset + 1)?,
        *bytes.get(offset + 2)?,
        *bytes.get(offset + 3)?,
    ]))
}

/// Walks the standard capability list; returns `(id, offset)` pairs. Bounded so a looping list in
/// a corrupt or hostile `config` cannot hang the walk.
pub fn capabilities(bytes: &[u8]) -> Vec<(u8, u8)> {
    let mut found = Vec::new();
    let status = u16_at(bytes, 0x06).unwrap_or(0);
    if status & 0x0010 == 0 {
        return found;
    }
    let mut ptr = u8_at(bytes, 0x34).unwrap_or(0) & 0xfc;
    // 48 = (256 - 64) / 4: the most capabilities that fit.
    for _ in 0..48 {
        if ptr < 0x40 {
            break;
        }
        let (Some(id), Some(next)) = (u8_at(bytes, ptr.into()), u8_at(bytes, usize::from(ptr) + 1))
        else {
            break;
        };
        if id == 0xff {
            break;
        }
        found.push((id, ptr));
        ptr = next & 0xfc;
    }
    found
}

/// Walks the extended capability list from 0x100; returns `(id, offset)` pairs.
pub fn extended_capabilities(bytes: &[u8]) -> Vec<(u16, u16)> {
    let mut found = Vec::new();
    let mut offset: u16 = 0x100;
    // 960 = (4096 - 256) / 4: the most headers that fit.
    for _ in 0..960 {
        let Some(header) = u32_at(bytes, offset.into()) else {
            break;
        };
        if header == 0 || header == 0xffff_ffff {
            break;
        }
        found.push(((header & 0xffff) as u16, offset));
        let next = ((header >> 20) & 0xffc) as u16;
        if next < 0x100 {
            break;
        }
        offset = next;
    }
    found
}

/// Decodes what passthrough needs from the bytes of sysfs `config`.
pub fn parse_config(bytes: &[u8]) -> ConfigInfo {
    let mut info = ConfigInfo::default();
    if let Some(h) = u8_at(bytes, 0x0e) {
        info.header_type = Some(h & 0x7f);
        info.multifunction = Some(h & 0x80 != 0);
        if h & 0x7f == 1 {
            info.secondary_bus = u8_at(bytes, 0x19);
        }
    }
    for (id, ptr) in capabilities(bytes) {
        let ptr = usize::from(ptr);
        match id {
            CAP_ID_EXP => {
                if let Some(flags) = u16_at(bytes, ptr + 2) {
                    info.pcie_type = Some(PcieType::from_bits(((flags >> 4) & 0xf) as u8));
                }
                if let Some(devcap) = u32_at(bytes, ptr + 4) {
                    info.flr = Some(devcap & (1 << 28) != 0);
                }
            }
            CAP_ID_PM => {
                if let Some(pmcsr) = u16_at(bytes, ptr + 4) {
                    info.pm_no_soft_reset = Some(pmcsr & 0x0008 != 0);
                }
            }
            CAP_ID_AF if info.flr != Some(true) => {
                if let Some(afcap) = u8_at(bytes, ptr + 3) {
                    info.flr = Some(afcap & 0x03 == 0x03);
                }
            }
            _ => {}
        }
    }
    info.extended_readable = bytes.len() >= 0x104 && info.pcie_type.is_some();
    if info.extended_readable {
        for (id, offset) in extended_capabilities(bytes) {
            if id == EXT_CAP_ID_ACS {
                let off = usize::from(offset);
                if let (Some(capability), Some(control)) =
                    (u16_at(bytes, off + 4), u16_at(bytes, off + 6))
                {
                    info.acs = Some(Acs {
                        offset,
                        capability,
                        control,
                    });
                }
            }
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A root port with PCIe cap at 0x40 and ACS at 0x148, like QEMU's pcie-root-port.
    fn root_port(acs_ctrl: u16) -> Vec<u8> {
        let mut c = vec![0u8; 4096];
        c[0x06] = 0x10; // capability list
        c[0x0e] = 0x01; // bridge header
        c[0x34] = 0x40;
        c[0x40] = CAP_ID_EXP;
        c[0x41] = 0x00;
        c[0x42] = 0x42; // version 2, type 4 (root port)
        c[0x100..0x104].copy_from_slice(&(0x148u32 << 20 | 0x0001_0001).to_le_bytes());
        c[0x148..0x14c].copy_from_slice(&(0x0001_0000u32 | 0x000d).to_le_bytes());
        c[0x14c..0x14e].copy_from_slice(&0x005fu16.to_le_bytes());
        c[0x14e..0x150].copy_from_slice(&acs_ctrl.to_le_bytes());
        c
    }

    #[test]
    fn finds_root_port_and_enabled_acs() {
        let info = parse_config(&root_port(0x001d));
        assert_eq!(info.header_type, Some(1));
        assert_eq!(info.pcie_type, Some(PcieType::RootPort));
        let acs = info.acs.unwrap();
        assert_eq!(acs.offset, 0x148);
        assert!(acs.flags_enabled(REQ_ACS_FLAGS));
    }

    #[test]
    fn acs_present_but_disabled_is_not_enabled() {
        let info = parse_config(&root_port(0));
        assert!(!info.acs.unwrap().flags_enabled(REQ_ACS_FLAGS));
    }

    #[test]
    fn flags_missing_from_capability_count_as_hardwired() {
        let acs = Acs {
            offset: 0x100,
            capability: ACS_SV | ACS_RR | ACS_CR, // no UF
            control: ACS_SV | ACS_RR | ACS_CR,
        };
        assert!(acs.flags_enabled(REQ_ACS_FLAGS));
    }

    #[test]
    fn unprivileged_64_byte_config_hides_acs() {
        let info = parse_config(&root_port(0x1d)[..64]);
        assert_eq!(info.header_type, Some(1));
        assert!(!info.extended_readable);
        assert_eq!(info.acs, None);
    }

    #[test]
    fn looping_capability_lists_terminate() {
        let mut c = vec![0u8; 4096];
        c[0x06] = 0x10;
        c[0x34] = 0x40;
        c[0x40] = 0x05;
        c[0x41] = 0x40; // points at itself
        c[0x100..0x104].copy_from_slice(&(0x100u32 << 20 | 0x0001_0002).to_le_bytes());
        assert!(capabilities(&c).len() <= 48);
        assert!(extended_capabilities(&c).len() <= 960);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4200)) {
            let _ = parse_config(&bytes);
        }
    }
}
