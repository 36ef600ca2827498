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

/// `_IO(VFIO_TYPE, VFIO_BASE + 2)`: pick the container's IOMMU model.
const VFIO_SET_IOMMU: u64 = (0x3b << 8) | 102;
/// `_IO(VFIO_TYPE, VFIO_BASE + 4)`: put a group into a container (takes a pointer to its fd).
const VFIO_GROUP_SET_CONTAINER: u64 = (0x3b << 8) | 104;
/// `_IO(VFIO_TYPE, VFIO_BASE + 6)`: a device fd by the device's name.
const VFIO_GROUP_GET_DEVICE_FD: u64 = (0x3b << 8) | 106;
/// `VFIO_TYPE1_IOMMU`, vfio_iommu_type1's model.
const VFIO_TYPE1_IOMMU: u64 = 1;

fn open_rw(path: &Path) -> Result<fs::File, String> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// Opens `device` through VFIO as QEMU does (a type1 container, its group, the device fd) and
/// keeps everything open until the process is killed. vfio-pci's `remove()` waits in
/// `vfio_unregister_group_dev()` until every device fd is closed, so an unbind of the device
/// blocks in the kernel meanwhile: the hang `recover` must wait out.
pub(crate) fn hold_device(vfio_dir: &Path, group: u64, device: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let container = open_rw(&vfio_dir.join("vfio"))?;
    let group_file = open_rw(&vfio_dir.join(group.to_string()))?;
    let container_fd: i32 = container.as_raw_fd();
    // SAFETY: both fds are open; the kernel reads one i32 through the pointer.
    let rc = unsafe {
        ioctl(
            group_file.as_raw_fd(),
            VFIO_GROUP_SET_CONTAINER,
            &raw const container_fd,
        )
    };
    if rc < 0 {
        return Err(format!(
            "VFIO_GROUP_SET_CONTAINER: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: the container fd is open; the argument is a plain integer.
    let rc = unsafe { ioctl(container.as_raw_fd(), VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU) };
    if rc < 0 {
        return Err(format!(
            "VFIO_SET_IOMMU (is vfio_iommu_type1 loaded?): {}",
            std::io::Error::last_os_error()
        ));
    }
    let name = std::ffi::CString::new(device).map_err(|e| e.to_string())?;
    // SAFETY: the group fd is open; the kernel reads the NUL-terminated name, which lives
    // until the call returns.
    let device_fd = unsafe {
        ioctl(
            group_file.as_raw_fd(),
            VFIO_GROUP_GET_DEVICE_FD,
            name.as_ptr(),
        )
    };
    if device_fd < 0 {
        return Err(format!(
            "VFIO_GROUP_GET_DEVICE_FD {device}: {}",
            std::io::Error::last_os_error()
        ));
    }
    println!("hold: {device} open through /dev/vfio/{group} (device fd {device_fd})");
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}
