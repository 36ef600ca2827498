//! Our own `VFIO_GROUP_GET_STATUS`, so viability is not taken from vfioctl's word.

use std::fs;
use std::path::Path;

pub(crate) const VFIO_GROUP_FLAGS_VIABLE: u32 = 1;
/// `_IO(VFIO_TYPE, VFIO_BASE + 3)` with `VFIO_TYPE = ';'` and `VFIO_BASE = 100`.
const VFIO_GROUP_GET_STATUS: u64 = (0x3b << 8) | 103;

#[repr(C)]
struct VfioGroupStatus {
    argsz: u32,
    flags: u32,
}

unsafe extern "C" {
    fn ioctl(fd: i32, request: u64, ...) -> i32;
}

/// `VFIO_GROUP_GET_STATUS` on a group node; returns the flags.
pub(crate) fn group_status(node: &Path) -> Result<u32, String> {
    use std::os::fd::AsRawFd;
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(node)
        .map_err(|e| format!("cannot open {}: {e}", node.display()))?;
    let mut status = VfioGroupStatus { argsz: 8, flags: 0 };
    // SAFETY: the fd is open for the duration of the call, and the kernel writes at most `argsz`
    // bytes into `status`, a live, properly sized `#[repr(C)]` vfio_group_status.
    let rc = unsafe { ioctl(file.as_raw_fd(), VFIO_GROUP_GET_STATUS, &raw mut status) };
    if rc < 0 {
        return Err(format!("ioctl failed: {}", std::io::Error::last_os_error()));
    }
    Ok(status.flags)
}
