//! What the host layer reads for `doctor`, as plain data, and the names the checks look for.

use std::collections::{BTreeMap, BTreeSet};

use crate::address::PciAddress;
use crate::known::KnownDevices;
use crate::plan::HostUse;

use super::parse::ModprobeEntry;

/// The host's CPU architecture, as far as the facts tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arch {
    /// x86-64: Intel VT-d or AMD-Vi, interrupt remapping.
    X86_64,
    /// arm64: SMMU, GICv3 ITS for MSI isolation.
    Aarch64,
    /// Could not tell.
    #[default]
    Unknown,
}

/// Whether a kernel module can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleStatus {
    /// `/sys/module/<name>` exists.
    Loaded,
    /// Listed in `modules.builtin`.
    Builtin,
    /// Listed in `modules.dep`: `modprobe` can load it.
    Available,
    /// Neither loaded, built in nor in `modules.dep`.
    Missing,
    /// Not loaded, and `/lib/modules/<release>` could not be read to tell the rest.
    Unknown,
}

impl ModuleStatus {
    /// Its code is in the running kernel.
    pub fn is_present(self) -> bool {
        matches!(self, Self::Loaded | Self::Builtin)
    }
}

/// A driverctl override file (`/etc/driverctl.d/<bus>-<device>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverctlOverride {
    /// The file, as on `/`.
    pub path: String,
    /// The device part of the name (`0000:01:00.0`), and the bus (`pci`).
    pub bus: String,
    /// The device.
    pub device: String,
    /// The driver it forces (the file's content).
    pub driver: String,
}

/// DPAA2 facts, present when the host has an fsl-mc bus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FslMcFacts {
    /// `/sys/bus/fsl-mc/drivers/vfio-fsl-mc` exists.
    pub vfio_driver: bool,
    /// The MC firmware version `restool -m` reported; `None` when it was not asked or did not
    /// answer.
    pub mc_version: Option<McVersion>,
    /// Why restool could not be asked (not installed, refused), when it could not.
    pub restool_problem: Option<String>,
    /// The containers other than the root one, as restool reports them.
    pub containers: Vec<ContainerFacts>,
}

/// The MC firmware's version, `major.minor.revision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct McVersion {
    /// Major: restool has commands for majors 8, 9 and 10 only.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Revision.
    pub revision: u32,
}

impl std::fmt::Display for McVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.revision)
    }
}

/// One container, read back from restool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerFacts {
    /// `dprc.N`.
    pub name: String,
    /// Why it is meant for a VM (`bound to vfio-fsl-mc`, `listed by VM web`, `made for vm:web`),
    /// `None` when nothing says it is.
    pub for_vm: Option<String>,
    /// Its `DPRC_CFG_OPT_*` options (`restool dprc info`); `None` when restool did not tell.
    pub options: Option<Vec<String>>,
    /// The object types in it (`restool dprc show`); `None` when restool did not tell.
    pub object_types: Option<Vec<String>>,
}

/// Everything `doctor` needs from the host, read once by the host layer.
#[derive(Debug, Clone, Default)]
pub struct DoctorFacts {
    /// CPU architecture.
    pub arch: Arch,
    /// `/proc/cmdline`, `None` when unreadable.
    pub cmdline: Option<String>,
    /// Names under `/sys/class/iommu` (`dmar0`, `ivhd0`, `smmu3.0x...`).
    pub iommu_units: Vec<String>,
    /// `/sys/kernel/iommu_groups/N/type`, by group.
    pub group_types: BTreeMap<u32, String>,
    /// `/sys/class/iommu/dmar*/intel-iommu/ecap`, by unit; `None` when unreadable.
    pub dmar_ecap: BTreeMap<String, Option<u64>>,
    /// `/proc/interrupts` names an ITS MSI domain (`true`), or only other MSI domains (`false`);
    /// `None` when unreadable or when no device uses MSIs yet.
    pub its_in_interrupts: Option<bool>,
    /// The device tree has a GICv3 ITS (`msi-controller`); `None` without a device tree.
    pub its_in_device_tree: Option<bool>,
    /// `vfio_iommu_type1`'s `allow_unsafe_interrupts`; `None` when the module is not loaded.
    pub allow_unsafe_interrupts: Option<bool>,
    /// `vfio`'s `enable_unsafe_noiommu_mode`.
    pub noiommu_mode: Option<bool>,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel_release: Option<String>,
    /// The VFIO modules, by canonical name.
    pub modules: BTreeMap<String, ModuleStatus>,
    /// Directives from modprobe.d files.
    pub modprobe: Vec<ModprobeEntry>,
    /// Mode bits of `/dev/vfio/vfio`; `None` when it does not exist.
    pub vfio_container_mode: Option<u32>,
    /// Groups with a `/dev/vfio/<N>` node.
    pub vfio_group_nodes: BTreeSet<u32>,
    /// `/dev/vfio/devices` exists (the cdev interface of iommufd).
    pub vfio_cdev: bool,
    /// vfio-pci's `disable_idle_d3`; `None` when the module is not loaded.
    pub disable_idle_d3: Option<bool>,
    /// driverctl override files.
    pub driverctl: Vec<DriverctlOverride>,
    /// Devices vfioctl has bound (from its journal).
    pub journaled: BTreeSet<PciAddress>,
    /// Why the journal is damaged, when it is.
    pub journal_problem: Option<String>,
    /// Why the journal could not be opened (permissions), when it could not: vfioctl's own
    /// overrides then cannot be told from others.
    pub journal_unreadable: Option<String>,
    /// The journal's entries and write helpers, with their devices and owners now.
    pub journal: super::JournalFacts,
    /// How the host uses each device.
    pub host_uses: BTreeMap<PciAddress, Vec<HostUse>>,
    /// The known-devices table (shipped, merged with the host's).
    pub known: KnownDevices,
    /// Problems with the host's known-devices file (`file:line:column: message`).
    pub known_problems: Vec<(String, String)>,
    /// DPAA2, when `/sys/bus/fsl-mc` exists.
    pub fsl_mc: Option<FslMcFacts>,
    /// Early boot: framebuffers, consoles, module configs (checks in `crate::boot::checks`).
    pub boot: crate::boot::checks::BootFacts,
    /// iommufd and the VFIO device cdev.
    pub iommufd: IommufdFacts,
}

/// What the kernel offers of iommufd (`/dev/iommu`) and the VFIO device cdev.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IommufdFacts {
    /// `/dev/iommu` exists.
    pub dev_iommu: bool,
    /// `CONFIG_IOMMUFD` is `y` or `m` (`Some(false)`: not set); `None` without a readable config.
    pub config_iommufd: Option<bool>,
    /// `CONFIG_VFIO_DEVICE_CDEV=y`, likewise.
    pub config_cdev: Option<bool>,
    /// The config file read (`/boot/config-RELEASE` or `/proc/config.gz`), as on `/`; empty when
    /// none was readable.
    pub config_source: String,
}

/// The VFIO modules every PCI passthrough needs, canonical names.
pub const VFIO_MODULES: &[&str] = &["vfio", "vfio_iommu_type1", "vfio_pci"];
/// The DPAA2 VFIO module.
pub const VFIO_FSL_MC_MODULE: &str = "vfio_fsl_mc";

/// The Ten64 VFIO page, the source of the idle-D3 advice and the DPAA2 notes.
pub const TEN64_VFIO_PAGE: &str = "https://ten64doc.traverse.com.au/software/vfio/";
