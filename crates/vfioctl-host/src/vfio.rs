//! Asking the kernel itself whether an IOMMU group is usable: open `/dev/vfio/<group>` and issue
//! `VFIO_GROUP_GET_STATUS`, the same check QEMU makes before it fails with "group N is not
//! viable". With the unbind helper's fork
//! (`forkwrite`), the only unsafe code in vfioctl.
#![expect(unsafe_code, reason = "the VFIO ioctl has no safe wrapper in rustix")]

use std::fs::OpenOptions;
use std::io;
use std::path::PathBuf;

use rustix::ioctl::{Updater, ioctl, opcode};
use vfio_bindings::bindings::vfio::{
    VFIO_BASE, VFIO_GROUP_FLAGS_VIABLE, VFIO_TYPE, vfio_group_status,
};

use crate::HostRoot;

/// `VFIO_GROUP_GET_STATUS` is `_IO(VFIO_TYPE, VFIO_BASE + 3)`.
const GROUP_GET_STATUS: rustix::ioctl::Opcode = opcode::none(VFIO_TYPE, (VFIO_BASE + 3) as u8);

/// What the kernel says about a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupStatus {
    /// Every member is on vfio or on a driver that does no DMA: QEMU can use it.
    Viable,
    /// A member is still on a host driver.
    NotViable,
}

/// Why the kernel could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum VfioError {
    /// `/dev/vfio/<group>` does not exist: no member is bound to a vfio driver.
    #[error("{path} does not exist: no device of IOMMU group {group} is bound to vfio")]
    NoNode {
        /// The node.
        path: PathBuf,
        /// The group.
        group: u32,
    },
    /// Another process (QEMU, another tool) has the group open; VFIO allows one opener.
    #[error("{path} is open in another process (a running VM?)")]
    Busy {
        /// The node.
        path: PathBuf,
    },
    /// The node is not a VFIO group (a simulated tree's stand-in file).
    #[error("{path} is not a VFIO group device")]
    NotVfio {
        /// The node.
        path: PathBuf,
    },
    /// Opening or the ioctl failed otherwise.
    #[error("cannot query {path}")]
    Io {
        /// The node.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Opens `/dev/vfio/<group>` and asks the kernel whether it is viable.
pub fn group_status(root: &HostRoot, group: u32) -> Result<GroupStatus, VfioError> {
    let path = root.join(format!("dev/vfio/{group}"));
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(VfioError::NoNode { path, group });
        }
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
            return Err(VfioError::Busy { path });
        }
        Err(source) => return Err(VfioError::Io { path, source }),
    };
    let mut status = vfio_group_status {
        argsz: size_of::<vfio_group_status>() as u32,
        flags: 0,
    };
    // SAFETY: GROUP_GET_STATUS is the kernel's _IO(';', 103) opcode, and the kernel reads and
    // writes exactly one `struct vfio_group_status` (argsz, flags) through the pointer, which
    // `status` provides for the duration of the call.
    let result = unsafe {
        ioctl(
            &file,
            Updater::<GROUP_GET_STATUS, vfio_group_status>::new(&mut status),
        )
    };
    match result {
        Ok(()) => Ok(if status.flags & VFIO_GROUP_FLAGS_VIABLE != 0 {
            GroupStatus::Viable
        } else {
            GroupStatus::NotViable
        }),
        Err(e) if e == rustix::io::Errno::NOTTY || e == rustix::io::Errno::INVAL => {
            Err(VfioError::NotVfio { path })
        }
        Err(e) => Err(VfioError::Io {
            path,
            source: e.into(),
        }),
    }
}
