//! The host layer of vfioctl: the only code that reads or writes the filesystem.
//!
//! Every path is taken relative to a root (`/` on a real host, a temporary directory holding a
//! simulated kernel in tests, or a guest's `/` in the QEMU test layer), as lspci's
//! `-O sysfs.path=` does. Reads turn sysfs into the pure types of `vfioctl-core`; writes go through
//! one [`Kernel`] so that a dry run can record them, the journal can undo them, and a
//! simulated kernel can react to them as the real one does.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod apply;
pub mod around;
pub mod boot;
mod error;
pub mod executor;
pub mod facts;
pub mod facts_dpaa2;
pub mod forkwrite;
pub mod fslmc;
pub mod hostuse;
pub mod iommufd;
pub mod journal;
mod journal_v1;
pub mod kernel;
pub mod modalias;
pub mod mounts;
pub mod netlink;
pub mod ops;
pub mod owners;
pub mod platform;
pub mod read;
pub mod root;
pub mod transaction;
pub mod usage;
pub mod vfio;
pub mod vflinks;
pub mod vms;
pub mod vmvf;
mod zfs;

pub use error::HostError;
pub use kernel::{Kernel, ModuleError, RealKernel};
pub use root::HostRoot;
