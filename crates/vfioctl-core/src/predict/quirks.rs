//! The kernel's ACS and DMA-alias quirks (`drivers/pci/quirks.c`), as data.
//!
//! Checked against the 6.18 source. An entry's `since`/`until` bound the kernel releases it holds
//! for; `None` means every release vfioctl models (6.1 onwards for most entries, whose exact first
//! release is older and does not change a prediction on a supported kernel). Entries are tried in
//! table order and the first one that answers wins, as in `pci_dev_specific_acs_enabled()`.

use super::KernelVersion;

/// Matches any device ID, like the kernel's `PCI_ANY_ID`.
pub const ANY: u16 = 0xffff;

/// What a device-specific ACS quirk answers for the flags `pci_device_group()` asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcsQuirkKind {
    /// AMD southbridge functions: isolated on the root bus when the ACPI IVRS table (AMD IOMMU)
    /// exists; no answer otherwise.
    AmdSouthbridge,
    /// Multifunction endpoint verified by its vendor not to do peer-to-peer between functions.
    MultifunctionEndpoint,
    /// Intel root-complex integrated endpoints: isolated; other port types get no answer.
    IntelRcIep,
    /// Root ports isolated by design (Qualcomm, HXT, NXP, Broadcom iProc, Loongson, X-Gene,
    /// Ampere): always answers "isolated".
    IsolatedRootPort,
    /// Intel PCH root ports without an ACS capability: isolated only when the kernel's enable
    /// step (`pci_quirk_enable_intel_pch_acs`) ran at boot.
    IntelPch,
    /// Intel Sunrise/Union Point root ports whose ACS control register sits at the wrong offset;
    /// isolated when the kernel enabled it through the quirk.
    IntelSpt,
    /// Amazon Annapurna Labs root ports: isolated; other port types get no answer.
    AnnapurnaRootPort,
    /// Cavium ThunderX root ports in the listed ranges: isolated.
    CaviumRootPort,
    /// Zhaoxin root and downstream ports in the listed ranges: isolated; other Zhaoxin ports
    /// answer "not isolated".
    ZhaoxinPort,
    /// Wangxun NICs in the listed ranges: isolated; every other Wangxun device answers "not
    /// isolated".
    WangxunNic,
}

/// One row of the kernel's `pci_dev_acs_enabled[]` table.
#[derive(Debug, Clone, Copy)]
pub struct AcsQuirk {
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID, or [`ANY`].
    pub device: u16,
    /// What it answers.
    pub kind: AcsQuirkKind,
    /// Words naming the hardware.
    pub name: &'static str,
}

const fn acs(vendor: u16, device: u16, kind: AcsQuirkKind, name: &'static str) -> AcsQuirk {
    AcsQuirk {
        vendor,
        device,
        kind,
        name,
    }
}

use AcsQuirkKind::{
    AmdSouthbridge as Amd, AnnapurnaRootPort, CaviumRootPort, IntelPch, IntelRcIep, IntelSpt,
    IsolatedRootPort as Rp, MultifunctionEndpoint as Mf, WangxunNic, ZhaoxinPort,
};

/// `pci_dev_acs_enabled[]`, in the kernel's order.
pub const ACS_QUIRKS: &[AcsQuirk] = &[
    acs(0x1002, 0x4385, Amd, "AMD SBx00 SMBus"),
    acs(0x1002, 0x439c, Amd, "AMD SB7x0 IDE"),
    acs(0x1002, 0x4383, Amd, "AMD SBx00 Azalia"),
    acs(0x1002, 0x439d, Amd, "AMD SB7x0 LPC"),
    acs(0x1002, 0x4384, Amd, "AMD SBx00 PCI bridge"),
    acs(0x1002, 0x4399, Amd, "AMD SB7x0 OHCI"),
    acs(0x1022, 0x780f, Amd, "AMD FCH PCI bridge"),
    acs(0x1022, 0x7809, Amd, "AMD FCH OHCI"),
    acs(0x1924, 0x0903, Mf, "Solarflare SFC9020"),
    acs(0x1924, 0x0923, Mf, "Solarflare SFL9021"),
    acs(0x1924, 0x0a03, Mf, "Solarflare SFC9120"),
    acs(0x8086, 0x10c6, Mf, "Intel 82598"),
    acs(0x8086, 0x10db, Mf, "Intel 82598"),
    acs(0x8086, 0x10dd, Mf, "Intel 82598"),
    acs(0x8086, 0x10e1, Mf, "Intel 82598"),
    acs(0x8086, 0x10f1, Mf, "Intel 82598"),
    acs(0x8086, 0x10f7, Mf, "Intel 82599"),
    acs(0x8086, 0x10f8, Mf, "Intel 82599"),
    acs(0x8086, 0x10f9, Mf, "Intel 82599"),
    acs(0x8086, 0x10fa, Mf, "Intel 82599"),
    acs(0x8086, 0x10fb, Mf, "Intel 82599"),
    acs(0x8086, 0x10fc, Mf, "Intel 82599"),
    acs(0x8086, 0x1507, Mf, "Intel 82599"),
    acs(0x8086, 0x1514, Mf, "Intel 82599"),
    acs(0x8086, 0x151c, Mf, "Intel 82599"),
    acs(0x8086, 0x1529, Mf, "Intel 82599"),
    acs(0x8086, 0x152a, Mf, "Intel 82599"),
    acs(0x8086, 0x154d, Mf, "Intel 82599"),
    acs(0x8086, 0x154f, Mf, "Intel 82599"),
    acs(0x8086, 0x1551, Mf, "Intel 82599"),
    acs(0x8086, 0x1558, Mf, "Intel 82599"),
    acs(0x8086, 0x1509, Mf, "Intel 82580"),
    acs(0x8086, 0x150e, Mf, "Intel 82580"),
    acs(0x8086, 0x150f, Mf, "Intel 82580"),
    acs(0x8086, 0x1510, Mf, "Intel 82580"),
    acs(0x8086, 0x1511, Mf, "Intel 82580"),
    acs(0x8086, 0x1516, Mf, "Intel 82580"),
    acs(0x8086, 0x1527, Mf, "Intel 82580"),
    acs(0x8086, 0x10c9, Mf, "Intel 82576"),
    acs(0x8086, 0x10e6, Mf, "Intel 82576"),
    acs(0x8086, 0x10e7, Mf, "Intel 82576"),
    acs(0x8086, 0x10e8, Mf, "Intel 82576"),
    acs(0x8086, 0x150a, Mf, "Intel 82576"),
    acs(0x8086, 0x150d, Mf, "Intel 82576"),
    acs(0x8086, 0x1518, Mf, "Intel 82576"),
    acs(0x8086, 0x1526, Mf, "Intel 82576"),
    acs(0x8086, 0x10a7, Mf, "Intel 82575"),
    acs(0x8086, 0x10a9, Mf, "Intel 82575"),
    acs(0x8086, 0x10d6, Mf, "Intel 82575"),
    acs(0x8086, 0x1521, Mf, "Intel I350"),
    acs(0x8086, 0x1522, Mf, "Intel I350"),
    acs(0x8086, 0x1523, Mf, "Intel I350"),
    acs(0x8086, 0x1524, Mf, "Intel I350"),
    acs(0x8086, 0x105e, Mf, "Intel 82571"),
    acs(0x8086, 0x105f, Mf, "Intel 82571"),
    acs(0x8086, 0x1060, Mf, "Intel 82571"),
    acs(0x8086, 0x10d9, Mf, "Intel 82571"),
    acs(0x8086, 0x15b7, Mf, "Intel I219"),
    acs(0x8086, 0x15b8, Mf, "Intel I219"),
    acs(
        0x8086,
        ANY,
        IntelRcIep,
        "Intel root-complex integrated endpoint",
    ),
    acs(0x17cb, 0x0400, Rp, "Qualcomm QDF2xxx root port"),
    acs(0x17cb, 0x0401, Rp, "Qualcomm QDF2xxx root port"),
    acs(0x17cb, 0x0115, Rp, "Qualcomm SA8775P root port"),
    acs(0x1dbf, 0x0401, Rp, "HXT SD4800 root port"),
    acs(0x8086, ANY, IntelPch, "Intel PCH root port"),
    acs(
        0x8086,
        ANY,
        IntelSpt,
        "Intel Sunrise/Union Point PCH root port",
    ),
    acs(0x19a2, 0x0710, Mf, "Emulex BE3-R"),
    acs(0x10df, 0x0720, Mf, "Emulex Skyhawk-R"),
    acs(0x177d, ANY, CaviumRootPort, "Cavium ThunderX root port"),
    acs(0x177d, 0xa026, Mf, "Cavium multifunction device"),
    acs(0x177d, 0xa059, Mf, "Cavium multifunction device"),
    acs(0x177d, 0xa060, Mf, "Cavium multifunction device"),
    acs(0x10e8, 0xe004, Rp, "APM X-Gene root port"),
    acs(0x1def, 0xe005, Rp, "Ampere root port"),
    acs(0x1def, 0xe006, Rp, "Ampere root port"),
    acs(0x1def, 0xe007, Rp, "Ampere root port"),
    acs(0x1def, 0xe008, Rp, "Ampere root port"),
    acs(0x1def, 0xe009, Rp, "Ampere root port"),
    acs(0x1def, 0xe00a, Rp, "Ampere root port"),
    acs(0x1def, 0xe00b, Rp, "Ampere root port"),
    acs(0x1def, 0xe00c, Rp, "Ampere root port"),
    acs(0x14e4, 0x16d7, Mf, "Broadcom multifunction device"),
    acs(0x14e4, 0x1750, Mf, "Broadcom multifunction device"),
    acs(0x14e4, 0x1751, Mf, "Broadcom multifunction device"),
    acs(0x14e4, 0x1752, Mf, "Broadcom multifunction device"),
    acs(0x14e4, 0x1760, Mf, "Broadcom multifunction device"),
    acs(0x14e4, 0x1761, Mf, "Broadcom multifunction device"),
    acs(0x14e4, 0x1762, Mf, "Broadcom multifunction device"),
    acs(0x14e4, 0x1763, Mf, "Broadcom multifunction device"),
    acs(0x14e4, 0xd714, Rp, "Broadcom iProc PAXB root port"),
    acs(0x0014, 0x3c09, Rp, "Loongson root port"),
    acs(0x0014, 0x3c19, Rp, "Loongson root port"),
    acs(0x0014, 0x3c29, Rp, "Loongson root port"),
    acs(0x0014, 0x7a09, Rp, "Loongson root port"),
    acs(0x0014, 0x7a19, Rp, "Loongson root port"),
    acs(0x0014, 0x7a29, Rp, "Loongson root port"),
    acs(0x0014, 0x7a39, Rp, "Loongson root port"),
    acs(0x0014, 0x7a49, Rp, "Loongson root port"),
    acs(0x0014, 0x7a59, Rp, "Loongson root port"),
    acs(0x0014, 0x7a69, Rp, "Loongson root port"),
    acs(
        0x1c36,
        0x0031,
        AnnapurnaRootPort,
        "Amazon Annapurna Labs root port",
    ),
    acs(0x1d17, 0x3038, Mf, "Zhaoxin multifunction device"),
    acs(0x1d17, 0x3104, Mf, "Zhaoxin multifunction device"),
    acs(0x1d17, 0x9083, Mf, "Zhaoxin multifunction device"),
    acs(0x1957, 0x8d81, Rp, "NXP LX2xx0A root port"),
    acs(0x1957, 0x8da1, Rp, "NXP LX2xx0A root port"),
    acs(0x1957, 0x8d83, Rp, "NXP LX2xx0A root port"),
    acs(0x1957, 0x8d80, Rp, "NXP LX2xx0C root port"),
    acs(0x1957, 0x8da0, Rp, "NXP LX2xx0C root port"),
    acs(0x1957, 0x8d82, Rp, "NXP LX2xx0C root port"),
    acs(0x1957, 0x8d90, Rp, "NXP LX2xx0E root port"),
    acs(0x1957, 0x8db0, Rp, "NXP LX2xx0E root port"),
    acs(0x1957, 0x8d92, Rp, "NXP LX2xx0E root port"),
    acs(0x1957, 0x8d91, Rp, "NXP LX2xx0N root port"),
    acs(0x1957, 0x8db1, Rp, "NXP LX2xx0N root port"),
    acs(0x1957, 0x8d93, Rp, "NXP LX2xx0N root port"),
    acs(0x1957, 0x8d89, Rp, "NXP LX2xx2A root port"),
    acs(0x1957, 0x8da9, Rp, "NXP LX2xx2A root port"),
    acs(0x1957, 0x8d8b, Rp, "NXP LX2xx2A root port"),
    acs(0x1957, 0x8d88, Rp, "NXP LX2xx2C root port"),
    acs(0x1957, 0x8da8, Rp, "NXP LX2xx2C root port"),
    acs(0x1957, 0x8d8a, Rp, "NXP LX2xx2C root port"),
    acs(0x1957, 0x8d98, Rp, "NXP LX2xx2E root port"),
    acs(0x1957, 0x8db8, Rp, "NXP LX2xx2E root port"),
    acs(0x1957, 0x8d9a, Rp, "NXP LX2xx2E root port"),
    acs(0x1957, 0x8d99, Rp, "NXP LX2xx2N root port"),
    acs(0x1957, 0x8db9, Rp, "NXP LX2xx2N root port"),
    acs(0x1957, 0x8d9b, Rp, "NXP LX2xx2N root port"),
    acs(0x1d17, ANY, ZhaoxinPort, "Zhaoxin root or downstream port"),
    acs(0x8088, ANY, WangxunNic, "Wangxun NIC"),
];

/// Intel PCH root ports the kernel isolates through `pci_quirk_intel_pch_acs` (they have no ACS
/// capability): `(first, last, family)`, inclusive ranges of `pci_quirk_intel_pch_acs_ids[]`.
pub const INTEL_PCH_ROOT_PORTS: &[(u16, u16, &str)] = &[
    (0x3b42, 0x3b51, "Ibex Peak"),
    (0x1c10, 0x1c1f, "Cougar Point"),
    (0x1e10, 0x1e1f, "Panther Point"),
    (0x8c10, 0x8c1f, "Lynx Point-H"),
    (0x9c10, 0x9c1b, "Lynx Point-LP"),
    (0x9c90, 0x9c9b, "Wildcat Point"),
    (0x8d10, 0x8d1e, "Wellsburg (X99)"),
];

/// Members of `pci_quirk_intel_pch_acs_ids[]` that are not a contiguous range: Patsburg (X79)
/// and the 9-series Lynx Point list only even IDs.
pub const INTEL_PCH_EVEN_ROOT_PORTS: &[(u16, u16, &str)] = &[
    (0x1d10, 0x1d1e, "Patsburg (X79)"),
    (0x8c90, 0x8c9e, "Lynx Point (9 series)"),
];

/// Intel root ports of `pci_quirk_intel_spt_pch_acs_match()`.
pub const INTEL_SPT_ROOT_PORTS: &[(u16, u16)] = &[
    (0xa110, 0xa11f),
    (0xa167, 0xa16a),
    (0xa290, 0xa29f),
    (0xa2e7, 0xa2ee),
    (0x9d10, 0x9d1b),
];

/// Cavium root ports of `pci_quirk_cavium_acs_match()`.
pub const CAVIUM_ROOT_PORTS: &[(u16, u16)] =
    &[(0xa000, 0xa7ff), (0xaf84, 0xaf84), (0xb884, 0xb884)];

/// Zhaoxin ports the kernel isolates.
pub const ZHAOXIN_PORTS: &[(u16, u16)] = &[(0x0710, 0x071e), (0x0721, 0x0721), (0x0723, 0x0752)];

/// Wangxun NICs the kernel isolates.
pub const WANGXUN_NICS: &[(u16, u16)] = &[
    (0x0100, 0x010f),
    (0x1001, 0x1001),
    (0x2001, 0x2001),
    (0x5010, 0x5010),
    (0x5025, 0x5025),
    (0x5040, 0x5040),
    (0x5110, 0x5110),
    (0x5125, 0x5125),
    (0x5140, 0x5140),
];

/// True when `id` falls in one of `ranges`.
pub fn in_ranges(ranges: &[(u16, u16)], id: u16) -> bool {
    ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&id))
}

/// The PCH family of an Intel root port on the kernel's PCH ACS quirk list.
pub fn intel_pch_family(device: u16) -> Option<&'static str> {
    INTEL_PCH_ROOT_PORTS
        .iter()
        .find(|(lo, hi, _)| (*lo..=*hi).contains(&device))
        .or_else(|| {
            INTEL_PCH_EVEN_ROOT_PORTS
                .iter()
                .find(|(lo, hi, _)| (*lo..=*hi).contains(&device) && device.is_multiple_of(2))
        })
        .map(|(_, _, family)| *family)
}

/// What a DMA-alias quirk does to a device's requester IDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasKind {
    /// `quirk_dma_func0_alias`: functions other than 0 also use function 0's ID.
    Function0,
    /// `quirk_dma_func1_alias`: functions other than 1 also use function 1's ID.
    Function1,
    /// `quirk_fixed_dma_alias` / `quirk_mic_x200_dma_alias`: these fixed `(slot, function)`s.
    Fixed(&'static [(u8, u8)]),
    /// `quirk_pex_vca_alias`: functions 0-4 of every slot on the bus.
    EverySlot,
    /// `quirk_use_pcie_bridge_dma_alias`: a PCIe-to-PCI bridge without a PCIe capability, which
    /// aliases like one when it sits below a PCIe port.
    PcieBridgeAlias,
    /// `PCI_DEV_FLAGS_PCI_BRIDGE_NO_ALIAS`: a PCIe-to-PCI bridge that forwards the original
    /// requester IDs (ASPEED AST1150).
    BridgeNoAlias,
    /// `quirk_bridge_cavm_thrx2_pcie_root`: the IOMMU sits at this bridge, so no alias above it
    /// counts.
    TranslationRoot,
}

/// One DMA-alias fixup.
#[derive(Debug, Clone, Copy)]
pub struct AliasQuirk {
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Subsystem vendor and device the fixup also requires (Adaptec), if any.
    pub subsystem: Option<(u16, u16)>,
    /// What it does.
    pub kind: AliasKind,
    /// First kernel release with the fixup, when it is newer than the releases vfioctl models.
    pub since: Option<KernelVersion>,
    /// The words a person reads.
    pub text: &'static str,
}

const fn alias(vendor: u16, device: u16, kind: AliasKind, text: &'static str) -> AliasQuirk {
    AliasQuirk {
        vendor,
        device,
        subsystem: None,
        kind,
        since: None,
        text,
    }
}

/// The kernel's DMA-alias fixups.
pub const ALIAS_QUIRKS: &[AliasQuirk] = &[
    alias(
        0x1180,
        0xe832,
        AliasKind::Function0,
        "Ricoh R5C832 issues DMA as function 0",
    ),
    alias(
        0x1180,
        0xe476,
        AliasKind::Function0,
        "Ricoh R5CE476 issues DMA as function 0",
    ),
    alias(
        0x6766,
        0x3d40,
        AliasKind::Function0,
        "Glenfly GPU issues DMA as function 0",
    ),
    alias(
        0x6766,
        0x3d41,
        AliasKind::Function0,
        "Glenfly GPU issues DMA as function 0",
    ),
    alias(
        0x1b4b,
        0x9120,
        AliasKind::Function1,
        "Marvell 88SE9120 issues DMA as function 1",
    ),
    alias(
        0x1b4b,
        0x9123,
        AliasKind::Function1,
        "Marvell 88SE9123 issues DMA as function 1",
    ),
    alias(
        0x1b4b,
        0x9125,
        AliasKind::Function1,
        "Marvell 88SE9125 issues DMA as function 1",
    ),
    alias(
        0x1b4b,
        0x9128,
        AliasKind::Function1,
        "Marvell 88SE9128 issues DMA as function 1",
    ),
    alias(
        0x1b4b,
        0x9130,
        AliasKind::Function1,
        "Marvell 88SE9130 issues DMA as function 1",
    ),
    alias(
        0x1b4b,
        0x9170,
        AliasKind::Function1,
        "Marvell 88SE9170 issues DMA as function 1",
    ),
    alias(
        0x1b4b,
        0x9172,
        AliasKind::Function1,
        "Marvell 88SE9172 issues DMA as function 1",
    ),
    alias(
        0x1b4b,
        0x917a,
        AliasKind::Function1,
        "Marvell 88SE917A issues DMA as function 1",
    ),
    alias(
        0x1b4b,
        0x9182,
        AliasKind::Function1,
        "Marvell 88SE9182 issues DMA as function 1",
    ),
    alias(
        0x1b4b,
        0x9183,
        AliasKind::Function1,
        "Marvell 88SS9183 issues DMA as function 1",
    ),
    alias(
        0x1b4b,
        0x91a0,
        AliasKind::Function1,
        "Marvell 88SE91A0 issues DMA as function 1",
    ),
    alias(
        0x1b4b,
        0x9215,
        AliasKind::Function1,
        "Marvell 88SE9215 issues DMA as function 1",
    ),
    alias(
        0x1b4b,
        0x9220,
        AliasKind::Function1,
        "Marvell 88SE9220 issues DMA as function 1",
    ),
    alias(
        0x1b4b,
        0x9230,
        AliasKind::Function1,
        "Marvell 88SE9230 issues DMA as function 1",
    ),
    alias(
        0x1b4b,
        0x9235,
        AliasKind::Function1,
        "Marvell 88SE9235 issues DMA as function 1",
    ),
    alias(
        0x1103,
        0x0642,
        AliasKind::Function1,
        "HighPoint (TTI) controller issues DMA as function 1",
    ),
    alias(
        0x1103,
        0x0645,
        AliasKind::Function1,
        "HighPoint (TTI) controller issues DMA as function 1",
    ),
    alias(
        0x1c28,
        0x0122,
        AliasKind::Function1,
        "Plextor M6E issues DMA as function 1",
    ),
    AliasQuirk {
        subsystem: Some((0x9005, 0x02bb)),
        ..alias(
            0x9005,
            0x0285,
            AliasKind::Fixed(&[(1, 0)]),
            "Adaptec 3405 DMA engine uses 01.0",
        )
    },
    AliasQuirk {
        subsystem: Some((0x9005, 0x02bc)),
        ..alias(
            0x9005,
            0x0285,
            AliasKind::Fixed(&[(1, 0)]),
            "Adaptec 3805 DMA engine uses 01.0",
        )
    },
    alias(
        0x1b21,
        0x1080,
        AliasKind::PcieBridgeAlias,
        "ASMedia ASM1083/1085 hides its PCIe capability",
    ),
    alias(
        0x10e3,
        0x8113,
        AliasKind::PcieBridgeAlias,
        "Tundra 8113 hides its PCIe capability",
    ),
    alias(
        0x1283,
        0x8892,
        AliasKind::PcieBridgeAlias,
        "ITE 8892 hides its PCIe capability",
    ),
    alias(
        0x1283,
        0x8893,
        AliasKind::PcieBridgeAlias,
        "ITE 8893 hides its PCIe capability",
    ),
    alias(
        0x8086,
        0x244e,
        AliasKind::PcieBridgeAlias,
        "Intel 82801 bridge hides its PCIe capability",
    ),
    alias(
        0x8086,
        0x2260,
        AliasKind::Fixed(&[(0x10, 0), (0x11, 0), (0x12, 3)]),
        "Intel MIC x200 NTB forwards other requester IDs",
    ),
    alias(
        0x8086,
        0x2264,
        AliasKind::Fixed(&[(0x10, 0), (0x11, 0), (0x12, 3)]),
        "Intel MIC x200 NTB forwards other requester IDs",
    ),
    alias(
        0x8086,
        0x2954,
        AliasKind::EverySlot,
        "Intel VCA NTB aliases every slot",
    ),
    alias(
        0x8086,
        0x2955,
        AliasKind::EverySlot,
        "Intel VCA NTB aliases every slot",
    ),
    alias(
        0x8086,
        0x2956,
        AliasKind::EverySlot,
        "Intel VCA NTB aliases every slot",
    ),
    alias(
        0x8086,
        0x2958,
        AliasKind::EverySlot,
        "Intel VCA NTB aliases every slot",
    ),
    alias(
        0x8086,
        0x2959,
        AliasKind::EverySlot,
        "Intel VCA NTB aliases every slot",
    ),
    alias(
        0x8086,
        0x295a,
        AliasKind::EverySlot,
        "Intel VCA NTB aliases every slot",
    ),
    alias(
        0x14e4,
        0x9000,
        AliasKind::TranslationRoot,
        "Broadcom Vulcan/ThunderX2 root: the IOMMU sits here",
    ),
    alias(
        0x14e4,
        0x9084,
        AliasKind::TranslationRoot,
        "Broadcom Vulcan/ThunderX2 root: the IOMMU sits here",
    ),
    AliasQuirk {
        since: Some(super::ASPEED_NO_ALIAS_SINCE),
        ..alias(
            0x1a03,
            0x1150,
            AliasKind::BridgeNoAlias,
            "the ASPEED AST1150 bridge does not alias: it forwards each device's own requester ID",
        )
    },
];

/// The DMA-alias quirk of a device on `kernel`, if any.
pub fn alias_quirk(
    vendor: u16,
    device: u16,
    subsystem: Option<(u16, u16)>,
    kernel: KernelVersion,
) -> Option<&'static AliasQuirk> {
    ALIAS_QUIRKS.iter().find(|q| {
        q.vendor == vendor
            && q.device == device
            && q.subsystem.is_none_or(|s| subsystem == Some(s))
            && q.since.is_none_or(|v| kernel >= v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pch_lists_match_the_kernel_ids() {
        assert_eq!(intel_pch_family(0x8d18), Some("Wellsburg (X99)"));
        assert_eq!(intel_pch_family(0x8d1f), None);
        assert_eq!(intel_pch_family(0x1d12), Some("Patsburg (X79)"));
        assert_eq!(intel_pch_family(0x1d11), None);
        assert_eq!(intel_pch_family(0x8c10), Some("Lynx Point-H"));
        assert_eq!(intel_pch_family(0x06c0), None);
    }

    #[test]
    fn aspeed_no_alias_needs_a_new_kernel() {
        let old = KernelVersion::new(6, 18);
        assert!(alias_quirk(0x1a03, 0x1150, None, old).is_none());
        assert!(alias_quirk(0x1a03, 0x1150, None, super::super::ASPEED_NO_ALIAS_SINCE).is_some());
    }

    #[test]
    fn adaptec_alias_needs_its_subsystem() {
        let k = KernelVersion::new(6, 1);
        assert!(alias_quirk(0x9005, 0x0285, None, k).is_none());
        assert!(alias_quirk(0x9005, 0x0285, Some((0x9005, 0x02bc)), k).is_some());
    }
}
