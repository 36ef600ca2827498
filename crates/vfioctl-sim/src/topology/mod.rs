//! Named hosts: real machines and the QEMU topologies the project's guest tests boot.
//!
//! Each returns a [`SimBuilder`](crate::SimBuilder) so a test can tweak one detail before building. IDs, classes and
//! drivers are the real ones; groups come from the emulated `pci_device_group()` and match what the
//! real kernels produced (see `/work/shared/context/qemu-guest-tests.md` §4).

mod common;
mod desktop;
mod qemu;
mod sriov;
mod ten64;

pub use desktop::x86_desktop;
pub use qemu::{QemuTopo, qemu_arm64, qemu_x86};
pub use sriov::sriov_host;
pub use ten64::{ten64, ten64_dpaa2};
