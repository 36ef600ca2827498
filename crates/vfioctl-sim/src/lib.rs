//! A simulated Linux kernel for vfioctl's tests: sysfs trees with the kernel's layout and formats.
//!
//! - [`SimBuilder`] describes a host (devices, drivers, modules, knobs) and writes it as a tree
//!   under a directory: `sys/`, `proc/`, `dev/`, `lib/modules/`, `etc/modprobe.d/`, plus the marker
//!   `.vfioctl-sim/kernel.json` holding the kernel state that is not visible as files.
//! - [`topology`] has named hosts (the Ten64, an x86 desktop, the QEMU guest-test topologies, a
//!   large SR-IOV host).
//! - [`SimKernel`] reacts to sysfs writes and module loads as Linux does (binding, unbinding,
//!   probing, `driver_override`, `new_id`, `/dev/vfio/<group>`), with fault injection. It
//!   implements `vfioctl_host::Kernel`, so the host layer drives it as it drives Linux.
//! - IOMMU groups are computed by an independent emulation of the kernel's `pci_device_group()`
//!   ([`groups`]).
//!
//! # Tree conventions
//!
//! - Device directories are real and nested as bridges nest:
//!   `sys/devices/pci<domain>:<root bus>/<port>/.../<address>` (`pci0001:00`, `pci10000:00`). VFs
//!   beyond the PF's bus sit on a virtual bus, in the directory of the PF's upstream bridge.
//! - Every other reference is a *relative* symlink: `sys/bus/pci/devices/<addr>`, `<dev>/driver`,
//!   `sys/bus/pci/drivers/<drv>/<addr>`, `<dev>/iommu_group` ->
//!   `../…/kernel/iommu_groups/N`, `sys/kernel/iommu_groups/N/devices/<addr>`, `<dev>/subsystem`,
//!   `physfn`/`virtfnN`, `sys/class/{net,block,nvme,iommu}/*`.
//! - Attributes use the kernel's formats (`0x168c\n`, `0x028000\n`, `(null)\n` or an empty line
//!   for an unset `driver_override`, `-1\n`, `D0\n`); `config` is 4096 bytes: PM cap at 0x40,
//!   PCIe cap at 0x60 (PCIe functions only), AER at 0x100 chaining to ACS at 0x148.
//! - A driver's directory (`bind`, `unbind`, `new_id`, `remove_id`) exists only while its
//!   module is loaded or built in; `dev/vfio/vfio` while vfio is loaded; `dev/vfio/<N>` while a
//!   member of group N is on vfio-pci. Stand-ins for character devices are empty regular files.
//! - Groups are numbered in address order (depth-first bus numbering makes that the kernel's
//!   enumeration order); fsl-mc containers get theirs after the PCI groups, at first probe.
//! - `.vfioctl-sim/kernel.json` is the marker and holds the invisible state (drivers with ID
//!   tables, module states, per-device interfaces, faults); `.vfioctl-sim/{lock,steps,writes}`
//!   are the cross-process lock and counters.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod boot;
pub mod cdev;
pub mod cfgspace;
pub mod fslmc;
pub mod groups;
mod host;
pub mod hosts;
pub mod kernel;
pub mod lspci;
pub mod restool;
pub mod snapshot;
pub mod spec;
pub mod sriov;
pub mod state;
pub mod topology;
mod tree;
pub mod udev;

pub use kernel::{SimKernel, SimModuleError};
pub use snapshot::{Entry, Snapshot, snapshot};
pub use spec::{
    AcsSpec, Arch, BlockDev, DeviceSpec, DriverSpec, GroupRule, HostSpec, IdMatch, ModuleSpec,
    ModuleState, NetIf, PciKind, ProbeFilter, SriovSpec,
};
pub use state::{Errno, Fault, FaultAction, FaultMatch, KernelState, MARKER};
pub use topology::QemuTopo;
pub use tree::{SimBuilder, SimTree};
