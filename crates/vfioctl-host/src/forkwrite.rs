//! One sysfs write in a forked child: an unbind the kernel may never return from.
//!
//! A driver whose `remove()` waits for its users (vfio-pci while QEMU holds the device) keeps the
//! writer in the kernel. A thread of vfioctl's own stuck there would keep the process from ever
//! exiting, so the write runs in a child that vfioctl can leave behind. Forking costs a fraction
//! of starting the binary again (`__write-attr`), which doubled the time of a bind.
//!
//! The child runs only system calls that are async-signal-safe (the parent may have threads: the
//! device plugin's runtime): it names itself, closes every descriptor but the attribute's, so it
//! holds no lock, pipe or terminal of its parent's, writes, and exits with the write's errno.
#![expect(
    unsafe_code,
    reason = "fork(2) and the system calls of its child have no safe wrapper"
)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, WaitOptions, WaitStatus};

use crate::executor::write_helper_exit_code;

/// The name (`/proc/<pid>/comm`) of a forked write helper; its command line is its parent's.
pub const FORKED_HELPER_NAME: &str = "vfioctl-unbind";

/// A write in flight in a child process.
#[derive(Debug)]
pub struct ForkedWrite {
    pid: Pid,
    /// Readable once the child has exited (Linux 5.3 and later), so the parent wakes when the
    /// write returns rather than at its next poll.
    pidfd: Option<OwnedFd>,
}

impl ForkedWrite {
    /// Opens `path` for writing here (so a missing attribute is an error of this process), then
    /// forks a child that writes `value` to it in one `write(2)`.
    ///
    /// # Errors
    ///
    /// The open's or the fork's error.
    pub fn spawn(path: &Path, value: &str) -> io::Result<Self> {
        // Opened as RealKernel::write_attr does: no O_CREAT, O_TRUNC for stand-in regular files.
        let file: OwnedFd = crate::kernel::open_attr_for_write(path)?;
        let name = CString::new(FORKED_HELPER_NAME).map_err(io::Error::other)?;
        // The child must not allocate: everything it touches is made before the fork.
        let bytes = value.as_bytes();
        let fd = file.as_raw_fd();
        // SAFETY: the child calls only async-signal-safe functions (prctl, close_range or close,
        // write, _exit) on memory made before the fork, and never returns into Rust code.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: see above; `bytes` and `name` outlive the child, which ends in _exit.
            unsafe { child(fd, bytes, &name) }
        }
        drop(file);
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        let pid = u32::try_from(pid)
            .ok()
            .and_then(|p| Pid::from_raw(p.cast_signed()))
            .ok_or_else(|| io::Error::other("fork returned no child"))?;
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok();
        Ok(Self { pid, pidfd })
    }

    /// True when [`Self::pause`] returns as the child exits (the kernel gave a pidfd).
    pub fn wakes_on_exit(&self) -> bool {
        self.pidfd.is_some()
    }

    /// Waits at most `timeout` for the child to exit: on its pidfd, or, on a kernel without
    /// pidfds, by sleeping the whole `timeout`. [`Self::try_wait`] then tells whether it did.
    pub fn pause(&self, timeout: Duration) {
        let Some(pidfd) = &self.pidfd else {
            std::thread::sleep(timeout);
            return;
        };
        let timeout = Timespec::try_from(timeout).unwrap_or(Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        });
        let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
        // An interrupted poll or an error only ends this pause early: the caller looks again.
        let _ = rustix::event::poll(&mut fds, Some(&timeout));
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid.as_raw_nonzero().get().cast_unsigned()
    }

    /// How the child ended once it has (its exit status is the write's errno, or 0), `None`
    /// while it is still writing.
    ///
    /// # Errors
    ///
    /// The wait's own error (the child is not ours).
    pub fn try_wait(&self) -> io::Result<Option<WaitStatus>> {
        Ok(
            rustix::process::waitpid(Some(self.pid), WaitOptions::NOHANG)?
                .map(|(_, status)| status),
        )
    }
}

/// The child: never returns.
///
/// # Safety
///
/// Only in the child of a fork, with `fd` open and `bytes` and `name` valid.
unsafe fn child(fd: i32, bytes: &[u8], name: &CString) -> ! {
    // SAFETY: plain system calls on valid pointers, in the order the module comment gives.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
        close_all_but(fd);
        let written = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
        let code = if written < 0 {
            write_helper_exit_code(Some(*libc::__errno_location()))
        } else if written.cast_unsigned() == bytes.len() {
            0
        } else {
            write_helper_exit_code(None)
        };
        libc::_exit(code)
    }
}

/// Closes every descriptor but `keep`: `close_range(2)` (Linux 5.9), else one `close` each up
/// to the descriptor limit.
///
/// # Safety
///
/// Only in the child of a fork, which owns nothing it would use after.
unsafe fn close_all_but(keep: i32) {
    let keep = keep.cast_unsigned();
    // SAFETY: closing descriptors of a process that uses none of them afterwards.
    unsafe {
        let below = keep == 0 || libc::syscall(libc::SYS_close_range, 0u32, keep - 1, 0u32) == 0;
        let above = libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0u32) == 0;
        if below && above {
            return;
        }
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) == 0 {
            limit.rlim_cur.min(65_536)
        } else {
            1024
        };
        for fd in 0..max {
            let fd = i32::try_from(fd).unwrap_or(i32::MAX);
            if fd.cast_unsigned() != keep {
                libc::close(fd);
            }
        }
    }
}

/// True when `path` names the attribute a helper writes: its descriptor's link ends with it.
pub(crate) fn is_attribute(link: &Path, attribute: &str) -> bool {
    link.ends_with(Path::new(attribute.trim_start_matches('/')))
        || link.as_os_str().as_bytes() == attribute.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(write: &ForkedWrite) -> io::Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(status) = write.try_wait().unwrap() {
                return crate::executor::write_helper_outcome(status.exit_status(), || {
                    format!("{status:?}")
                });
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the child never exited"
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    #[test]
    fn the_child_writes_the_value_in_one_write_and_exits_zero() {
        let dir = tempfile::tempdir().unwrap();
        let attr = dir.path().join("driver_override");
        std::fs::write(&attr, "a longer old value\n").unwrap();
        let write = ForkedWrite::spawn(&attr, "vfio-pci").unwrap();
        assert!(write.pid() > 0);
        wait(&write).unwrap();
        assert_eq!(std::fs::read_to_string(&attr).unwrap(), "vfio-pci");
    }

    #[test]
    fn a_missing_attribute_is_an_error_of_the_caller_and_forks_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let err = ForkedWrite::spawn(&dir.path().join("unbind"), "0000:01:00.0").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(!dir.path().join("unbind").exists(), "no O_CREAT");
    }

    #[test]
    fn the_writes_errno_is_the_outcome() {
        // /dev/full refuses every write with ENOSPC, as sysfs refuses a bad value with EINVAL.
        let write = ForkedWrite::spawn(Path::new("/dev/full"), "x").unwrap();
        let err = wait(&write).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    }

    #[test]
    fn attribute_links_match_with_or_without_the_root() {
        let attr = "/sys/bus/pci/drivers/e1000e/unbind";
        assert!(is_attribute(Path::new(attr), attr));
        assert!(is_attribute(
            Path::new("/tmp/root/sys/bus/pci/drivers/e1000e/unbind"),
            attr
        ));
        assert!(!is_attribute(
            Path::new("/sys/bus/pci/drivers/igb/unbind"),
            attr
        ));
    }
}
