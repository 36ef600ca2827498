//! The kernel's DMA-alias fixups (`quirk_dma_func0_alias`, `quirk_dma_func1_alias`, fixed and
//! bridge aliases in `drivers/pci/quirks.c`), as data. Re-exported through [`super::quirks`].

use super::KernelVersion;

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
