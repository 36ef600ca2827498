//! Writing a simulated host into a directory: the sysfs tree, `/proc`, `/dev`, `/lib/modules`,
//! `/etc/modprobe.d` and the marker.
//!
//! The layout follows the kernel's: real directories under `sys/devices/pci<domain>:<bus>/` nested
//! as bridges nest, and relative symlinks everywhere else (`sys/bus/pci/devices/*`, `driver`,
//! `iommu_group`, `sys/class/*`), so code that resolves links lexically works as on a real host.
//!
//! [`build`] writes a whole host once; [`live`] holds the changes the simulated kernel makes
//! afterwards (binding, unbinding, modules), both from the file operations in [`files`].

mod attrs;
mod build;
pub(crate) mod files;
mod live;
mod writer;

pub(crate) use build::addr;
pub use build::{SimBuilder, SimTree};
pub(crate) use files::rel_symlink;
pub(crate) use files::{
    device_dir, group_of, put, read_hex, remove_dir_if_exists, remove_if_exists,
};
pub(crate) use live::{attach, detach, mac, module_present, write_routes};
pub(crate) use writer::{device_files, join_group};
