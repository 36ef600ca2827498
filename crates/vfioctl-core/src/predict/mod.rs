//! The IOMMU groups the kernel would form, computed from config space and topology alone.
//!
//! This follows the kernel's `pci_device_group()` (`drivers/iommu/iommu.c`) device by device in
//! enumeration order: the DMA aliases of `pci_for_each_dma_alias()` (`drivers/pci/search.c`), the
//! walk up to the first bridge whose ACS path to the root is enabled
//! (`pci_acs_path_enabled()`), then the alias and multifunction siblings of the device reached.
//! Whether a function "has ACS" is `pci_acs_enabled()` with the device-specific quirks of
//! `drivers/pci/quirks.c` ([`quirks`]), on the control register the kernel *will* set at boot
//! (`pci_enable_acs()`), not the one firmware left: with the IOMMU off nobody enabled ACS yet.
//!
//! Nothing sysfs-specific happens here: the host layer gathers a [`Platform`] and the inventory,
//! and the result says which facts each group rests on so that a person can check them.

mod acs;
mod aliases;
mod compare;
mod fact;
pub mod quirks;
mod slots;
mod walk;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

pub use acs::{AcsVerdict, acs_verdict};
pub use compare::{Difference, DifferenceKind, compare};
pub use slots::{SlotKind, SlotPrediction, SlotSite, predict_slots};
pub use walk::{Fact, FactKind, PredictedGroup, Prediction, Ungrouped, predict};

/// A kernel release, as far as grouping behaviour depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelVersion {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl KernelVersion {
    /// `major.minor`.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl Serialize for KernelVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Why a kernel release string is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a kernel release (expected MAJOR.MINOR, e.g. 6.1 or 6.12.0-1-amd64)")]
pub struct KernelVersionError(pub String);

impl FromStr for KernelVersion {
    type Err = KernelVersionError;

    /// Reads `6.1`, `6.12.38` or a full `uname -r` (`6.1.0-56-amd64`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || KernelVersionError(s.to_owned());
        let mut parts = s.trim().splitn(3, '.');
        let major = parts.next().and_then(|p| p.parse().ok()).ok_or_else(err)?;
        let minor_text = parts.next().ok_or_else(err)?;
        let digits: String = minor_text
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let minor = digits.parse().map_err(|_| err())?;
        Ok(Self { major, minor })
    }
}

/// First release that stops `pci_enable_acs()` from skipping devices without an ACS
/// capability, which the 5.9 cache of the ACS offset (commit 52fbf5bdeeef) had broken: the
/// Intel PCH ACS workaround never ran on 5.9.
pub const PCH_ENABLE_FIXED: KernelVersion = KernelVersion::new(5, 10);
/// First release with the regression above.
pub const PCH_ENABLE_BROKEN: KernelVersion = KernelVersion::new(5, 9);
/// First release that enables ACS on the first host bridge's devices of device-tree arm64 hosts:
/// mainline commit c41e2fb67e26 ("PCI: Enable ACS after configuring IOMMU for OF platforms",
/// merged for v7.0-rc1, February 2026) moves `pci_enable_acs()` from `pci_acs_init()` at
/// enumeration into `pci_dma_configure()`, after `of_iommu_configure()` has called
/// `pci_request_acs()`. Older kernels enumerate the first host bridge before anything requested
/// ACS, so its devices keep ACS off. The stable backports to 5.10-6.12 were reverted in April 2026
/// (6.12.83, 6.6.y, 6.1.y, 5.15.y, 5.10.y): before [`IOMMU_PROBE_AT_ADD`] the group is made before
/// `pci_dma_configure()` runs, so they enabled ACS too late everywhere and merged AMD groups.
pub const DT_ACS_FIXED: KernelVersion = KernelVersion::new(7, 0);
/// First release whose IOMMU core reads the firmware's IOMMU description (device-tree
/// `iommu-map`, ACPI IORT) for every PCI device when it is added: mainline commit bcb81ac6ae3c
/// ("iommu: Get DT/ACPI parsing into the proper probe path", v6.15). Before it, arm64 hosts
/// configured a device's IOMMU in `of_dma_configure()`/`acpi_dma_configure()`, which only run when
/// a driver binds, so a function no driver ever bound (the host bridge, a port without `pcieport`)
/// has no group.
pub const IOMMU_PROBE_AT_ADD: KernelVersion = KernelVersion::new(6, 15);
/// First release with `PCI_DEV_FLAGS_PCI_BRIDGE_NO_ALIAS` for the ASPEED AST1150.
pub const ASPEED_NO_ALIAS_SINCE: KernelVersion = KernelVersion::new(7, 0);

/// How the kernel learnt about the hardware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Firmware {
    /// ACPI (x86, arm64 servers booted through UEFI).
    Acpi,
    /// A flattened device tree (most arm64 boards).
    DeviceTree,
    /// Could not tell.
    Unknown,
}

/// The IOMMU driving the PCI devices, from the names under `/sys/class/iommu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IommuKind {
    /// Intel VT-d (`dmar*`).
    IntelVtd,
    /// AMD-Vi (`ivhd*`).
    AmdVi,
    /// Arm SMMUv3 (`smmu3.*`): rejects two devices sharing a stream ID.
    SmmuV3,
    /// Arm SMMU v1/v2 or MMU-500 (`smmu.*`): devices sharing a stream ID share a group.
    Smmu,
    /// Another IOMMU.
    Other,
    /// No IOMMU is active: the prediction is what enabling one would give.
    Off,
}

impl IommuKind {
    /// Classifies `/sys/class/iommu` entry names.
    pub fn from_units<S: AsRef<str>>(units: &[S]) -> Self {
        let has = |p: &str| units.iter().any(|u| u.as_ref().starts_with(p));
        if units.is_empty() {
            Self::Off
        } else if has("dmar") {
            Self::IntelVtd
        } else if has("ivhd") {
            Self::AmdVi
        } else if has("smmu3.") {
            Self::SmmuV3
        } else if has("smmu") {
            Self::Smmu
        } else {
            Self::Other
        }
    }
}

/// CPU architecture, as far as grouping depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuArch {
    /// x86-64.
    X86_64,
    /// arm64.
    Aarch64,
    /// Could not tell.
    Unknown,
}

/// Everything about the host besides its PCI functions that changes the kernel's groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Platform {
    /// The kernel whose behaviour is predicted.
    pub kernel: KernelVersion,
    /// CPU architecture.
    pub arch: CpuArch,
    /// ACPI or device tree.
    pub firmware: Firmware,
    /// The active IOMMU ([`IommuKind::Off`] when none).
    pub iommu: IommuKind,
}

impl Platform {
    /// True when `pci_enable_acs()` will have run with ACS requested for the devices of PCI
    /// domain `domain`; `first_domain` is the lowest domain, the host bridge enumerated first.
    pub fn kernel_enables_acs(&self, domain: u32, first_domain: u32) -> bool {
        !self.dt_skips_acs() || domain != first_domain
    }

    /// True on a device-tree arm64 boot of a kernel that leaves ACS off on the devices of the
    /// first host bridge.
    pub fn dt_skips_acs(&self) -> bool {
        self.arch == CpuArch::Aarch64
            && self.firmware == Firmware::DeviceTree
            && self.kernel < DT_ACS_FIXED
    }

    /// True when a function gets its group only once a driver binds to it (arm64 kernels before
    /// [`IOMMU_PROBE_AT_ADD`], whose SMMU learns a device's stream IDs from the firmware
    /// description at driver probe).
    pub fn groups_at_driver_bind(&self) -> bool {
        self.arch == CpuArch::Aarch64 && self.kernel < IOMMU_PROBE_AT_ADD
    }

    /// True when the kernel's Intel PCH enable step is skipped for ports without an ACS
    /// capability (the 5.9 regression).
    pub fn pch_enable_broken(&self) -> bool {
        (PCH_ENABLE_BROKEN..PCH_ENABLE_FIXED).contains(&self.kernel)
    }

    /// True when the AMD IOMMU's ACPI table (IVRS) is assumed present.
    pub fn has_ivrs(&self) -> bool {
        self.arch == CpuArch::X86_64 && matches!(self.iommu, IommuKind::AmdVi | IommuKind::Off)
    }

    /// True when devices sharing a requester ID lose their group rather than share one (SMMUv3).
    pub fn stream_ids_must_be_unique(&self) -> bool {
        self.iommu == IommuKind::SmmuV3
    }
}

#[cfg(test)]
mod walk_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_parse_from_uname() {
        assert_eq!("6.1.0-56-amd64".parse(), Ok(KernelVersion::new(6, 1)));
        assert_eq!("6.12".parse(), Ok(KernelVersion::new(6, 12)));
        assert_eq!("5.9.1-arch1".parse(), Ok(KernelVersion::new(5, 9)));
        assert_eq!("7.0-rc2".parse(), Ok(KernelVersion::new(7, 0)));
        assert!("six".parse::<KernelVersion>().is_err());
        assert!("6".parse::<KernelVersion>().is_err());
        assert!(KernelVersion::new(5, 9) < KernelVersion::new(5, 10));
    }

    #[test]
    fn iommu_kind_from_class_names() {
        assert_eq!(
            IommuKind::from_units(&["dmar0", "dmar1"]),
            IommuKind::IntelVtd
        );
        assert_eq!(
            IommuKind::from_units(&["smmu3.0x0000000009050000"]),
            IommuKind::SmmuV3
        );
        assert_eq!(
            IommuKind::from_units(&["smmu.0x0000000005000000"]),
            IommuKind::Smmu
        );
        assert_eq!(IommuKind::from_units::<&str>(&[]), IommuKind::Off);
    }

    #[test]
    fn device_tree_kernels_skip_acs_on_the_first_domain_only() {
        let p = Platform {
            kernel: KernelVersion::new(6, 12),
            arch: CpuArch::Aarch64,
            firmware: Firmware::DeviceTree,
            iommu: IommuKind::Smmu,
        };
        assert!(!p.kernel_enables_acs(0, 0));
        assert!(p.kernel_enables_acs(1, 0));
        let fixed = Platform {
            kernel: DT_ACS_FIXED,
            ..p
        };
        assert!(fixed.kernel_enables_acs(0, 0));
        let acpi = Platform {
            firmware: Firmware::Acpi,
            ..p
        };
        assert!(acpi.kernel_enables_acs(0, 0));
    }
}
