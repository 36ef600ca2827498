//! A simulated Linux kernel for vfioctl's tests: sysfs trees with the kernel's layout and formats.
//!
//! - [`SimBuilder`] describes a host (devices, drivers, modules, knobs) and writes it as a tree
//!   under a directory: `sys/`, `proc/`, `dev/`, `lib/modules/`, `etc/modprobe.d/`, plus the marker
//!   `.vfioctl-sim/kernel.json` holding the kernel state that is not visible as files.
//! - [`topology`] has named hosts (the Ten64, an x86 desktop, the QEMU guest-test topologies, a
//!   large SR-IOV host).
//! - [`SimKernel`] reacts to sysfs writes and module loads as Linux does (binding, unbinding,
//!   probing, `driver_override`, `new_id`, `/dev/vfio/<group>`), with fault injection.
//! - IOMMU groups are computed by an independent emulation of the kernel's `pci_device_group()`
//!   ([`groups`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cfgspace;
pub mod groups;
pub mod kernel;
pub mod snapshot;
pub mod spec;
pub mod state;
pub mod topology;
mod tree;

pub use kernel::{SimKernel, SimModuleError};
pub use snapshot::{Entry, Snapshot, snapshot};
pub use spec::{
    AcsSpec, Arch, BlockDev, DeviceSpec, DriverSpec, GroupRule, HostSpec, IdMatch, ModuleSpec,
    ModuleState, NetIf, PciKind, ProbeFilter, SriovSpec,
};
pub use state::{Errno, Fault, FaultAction, FaultMatch, KernelState, MARKER};
pub use topology::QemuTopo;
pub use tree::{SimBuilder, SimTree};
