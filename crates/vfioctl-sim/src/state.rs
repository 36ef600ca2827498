//! The simulated kernel's state that is not visible as files, kept in `.vfioctl-sim/kernel.json`.
//!
//! The marker's presence is what tells vfioctl that a root holds a simulated kernel; everything
//! else a reader needs (drivers bound, groups, attributes) is in the tree itself, like on a real
//! host.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vfioctl_core::PciAddress;

use crate::spec::{Arch, BlockDev, DriverSpec, ModuleSpec, ModuleState, NetIf};

/// Directory under the root holding the marker, counters and lock.
pub const SIM_DIR: &str = ".vfioctl-sim";
/// The marker file, relative to the root.
pub const MARKER: &str = ".vfioctl-sim/kernel.json";

/// An errno a fault makes a write fail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Errno {
    /// Device or resource busy.
    Ebusy,
    /// No such device.
    Enodev,
    /// Invalid argument.
    Einval,
    /// No such file or directory.
    Enoent,
    /// File exists.
    Eexist,
    /// Permission denied (a write without the privilege; a lockdown or LSM refusal).
    Eacces,
    /// Operation not permitted.
    Eperm,
    /// Numerical result out of range (`sriov_numvfs` above `sriov_totalvfs`).
    Erange,
}

impl Errno {
    /// The numeric value on Linux.
    pub fn raw(self) -> i32 {
        match self {
            Self::Eperm => 1,
            Self::Enoent => 2,
            Self::Eacces => 13,
            Self::Ebusy => 16,
            Self::Eexist => 17,
            Self::Enodev => 19,
            Self::Einval => 22,
            Self::Erange => 34,
        }
    }

    /// An `io::Error` carrying this errno, as a failed `write(2)` returns it.
    pub fn error(self) -> io::Error {
        io::Error::from_raw_os_error(self.raw())
    }
}

/// Which writes a fault applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultMatch {
    /// The written path (relative to the root, as on `/` without the leading slash) contains this.
    #[serde(default)]
    pub path_contains: Option<String>,
    /// The written value (trimmed) equals this.
    #[serde(default)]
    pub value: Option<String>,
    /// Only the write with this index (0-based, counting every write attempt across processes).
    #[serde(default)]
    pub step: Option<u64>,
    /// Only writes with an index at or after this one.
    #[serde(default)]
    pub from_step: Option<u64>,
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// The write fails with this errno and changes nothing.
    Fail(Errno),
    /// The write sleeps this long before taking effect (a `remove()` that hangs).
    Block {
        /// How long, in milliseconds.
        millis: u64,
    },
    /// A bind or probe reports success but nothing binds.
    ProbeNoBind,
    /// After the matching write took effect, the device is hot-unplugged: its directory and every
    /// link to it vanish.
    Unplug(PciAddress),
    /// vfio-pci binds but `dev/vfio/<N>` never appears.
    NoVfioNode,
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Which writes it applies to.
    #[serde(default)]
    pub when: FaultMatch,
    /// What it does.
    pub action: FaultAction,
}

/// Facts about a device the kernel keeps but sysfs does not show whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    /// Interfaces the device's driver creates when bound.
    #[serde(default)]
    pub net: Vec<NetIf>,
    /// Block devices the device's driver creates when bound.
    #[serde(default)]
    pub block: Vec<BlockDev>,
}

/// The whole hidden state of a simulated kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelState {
    /// Architecture.
    pub arch: Arch,
    /// Kernel release (`uname -r`).
    pub release: String,
    /// `driver_override` reads `(null)` when unset (else an empty line).
    pub override_unset_null: bool,
    /// Every PCI driver the kernel could have, loaded or not.
    pub drivers: Vec<DriverSpec>,
    /// Every module, with its state.
    pub modules: Vec<ModuleSpec>,
    /// Per-device hidden facts.
    pub devices: BTreeMap<PciAddress, DeviceState>,
    /// vfio's no-IOMMU mode (`enable_unsafe_noiommu_mode`): devices without a group may bind.
    #[serde(default)]
    pub noiommu: bool,
    /// Injected faults.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Abort the process right after this many successful writes (counted across processes).
    #[serde(default)]
    pub crash_after_write: Option<u64>,
    /// The fsl-mc (DPAA2) bus, on hosts that have one.
    #[serde(default)]
    pub fsl_mc: Option<crate::spec::FslMcSpec>,
    /// Built with `CONFIG_IOMMUFD` and `CONFIG_VFIO_DEVICE_CDEV`: `/dev/iommu`, and a cdev for
    /// each device on vfio-pci (see [`crate::cdev`]).
    #[serde(default)]
    pub iommufd: bool,
    /// SR-IOV physical functions: what creating their VFs needs, and their VFs' link state.
    #[serde(default)]
    pub sriov: BTreeMap<PciAddress, crate::sriov::PfState>,
    /// rtnetlink answers no `IFLA_PERM_ADDRESS` (kernels before 5.6), so only sysfs tells an
    /// interface's MAC, and whether it is the permanent one (`addr_assign_type`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_perm_address: bool,
}

impl KernelState {
    /// The marker path under `root`.
    pub fn path(root: &Path) -> PathBuf {
        root.join(MARKER)
    }

    /// Reads the marker under `root`.
    pub fn load(root: &Path) -> io::Result<Self> {
        let text = fs::read_to_string(Self::path(root))?;
        serde_json::from_str(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Writes the marker under `root` (through a temporary file, so readers never see half).
    pub fn save(&self, root: &Path) -> io::Result<()> {
        let dir = root.join(SIM_DIR);
        fs::create_dir_all(&dir)?;
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let tmp = dir.join("kernel.json.tmp");
        fs::write(&tmp, text + "\n")?;
        fs::rename(tmp, Self::path(root))
    }

    /// The driver named `name`.
    pub fn driver(&self, name: &str) -> Option<&DriverSpec> {
        self.drivers.iter().find(|d| d.name == name)
    }

    /// The module named `name` (dashes and underscores are the same, as for modprobe).
    pub fn module(&self, name: &str) -> Option<&ModuleSpec> {
        let name = name.replace('-', "_");
        self.modules.iter().find(|m| m.name == name)
    }

    /// True when the driver's module is in the kernel (built in or loaded).
    pub fn driver_loaded(&self, name: &str) -> bool {
        self.driver(name)
            .and_then(|d| self.module(&d.module))
            .is_some_and(|m| m.state.is_present())
    }

    /// State of a module; `Absent` when unknown.
    pub fn module_state(&self, name: &str) -> ModuleState {
        self.module(name).map_or(ModuleState::Absent, |m| m.state)
    }
}
