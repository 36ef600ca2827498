//! The one door through which vfioctl changes the host: sysfs writes and module loading.
//!
//! On a real host the [`RealKernel`] writes the files and runs `modprobe`. Tests and the
//! `--root` trees built by `vfioctl-sim` plug in a simulated kernel that reacts to the same
//! writes as Linux does (binding, unbinding, probing, EBUSY, ...), so the plan, journal and
//! rollback code above this trait is the same code that runs on `/`.

use std::io::{self, Write};
use std::path::Path;
use std::process::Command;

/// Why a module could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    /// The module is blacklisted in modprobe.d (modprobe: "administratively prohibited").
    #[error("module {0} is blacklisted")]
    Blacklisted(String),
    /// No such module for this kernel.
    #[error("module {0} is not available for this kernel")]
    NotFound(String),
    /// modprobe failed for another reason (its own words).
    #[error("modprobe {module} failed: {message}")]
    Failed {
        /// The module.
        module: String,
        /// What modprobe printed.
        message: String,
    },
}

/// The kernel operations vfioctl performs.
pub trait Kernel: Send + Sync {
    /// Writes `value` to the attribute at `path` (a path under the root), as one `write(2)`.
    fn write_attr(&self, path: &Path, value: &str) -> io::Result<()>;
    /// Loads a kernel module by name (`vfio-pci`).
    fn load_module(&self, module: &str) -> Result<(), ModuleError>;
    /// Unloads a module vfioctl loaded, once nothing uses it.
    fn unload_module(&self, module: &str) -> Result<(), ModuleError>;
    /// Where VF link settings are read and changed; `None` when this kernel has no way to.
    fn vf_links(&self) -> Option<&dyn crate::vflinks::VfLinks> {
        None
    }
    /// True when a write may run in a forked child that only makes system calls
    /// ([`crate::forkwrite`]); a kernel whose writes run code of its own (the simulated one)
    /// says no, and its writes run in a helper that is this program started again.
    fn forks_writes(&self) -> bool {
        false
    }
}

/// Opens an attribute for writing as the kernel's own tools do: no `O_CREAT` (it would leave a
/// stray file where an attribute vanished with a hot-unplugged device), `O_TRUNC` (sysfs
/// ignores it; a stand-in regular file of a chroot or test tree needs it), close-on-exec in the
/// open itself (musl's open() makes a second system call for that).
pub(crate) fn open_attr_for_write(path: &Path) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    Ok(rustix::fs::open(
        path,
        OFlags::WRONLY | OFlags::TRUNC | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The running kernel: plain writes and `modprobe`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealKernel;

impl Kernel for RealKernel {
    fn forks_writes(&self) -> bool {
        true
    }

    fn vf_links(&self) -> Option<&dyn crate::vflinks::VfLinks> {
        Some(&crate::netlink::Netlink)
    }

    fn unload_module(&self, module: &str) -> Result<(), ModuleError> {
        let output = Command::new("modprobe")
            .args(["-r", module])
            .output()
            .map_err(|e| ModuleError::Failed {
                module: module.to_owned(),
                message: format!("cannot run modprobe: {e}"),
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(ModuleError::Failed {
                module: module.to_owned(),
                message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            })
        }
    }

    fn write_attr(&self, path: &Path, value: &str) -> io::Result<()> {
        // sysfs attributes take one write; a stand-in regular file needs the O_TRUNC the open
        // gives, or a shorter value leaves the tail of the longer one behind ("\nfio-pci").
        let mut file = std::fs::File::from(open_attr_for_write(path)?);
        file.write_all(value.as_bytes())
    }

    fn load_module(&self, module: &str) -> Result<(), ModuleError> {
        let output =
            Command::new("modprobe")
                .arg(module)
                .output()
                .map_err(|e| ModuleError::Failed {
                    module: module.to_owned(),
                    message: format!("cannot run modprobe: {e}"),
                })?;
        if output.status.success() {
            return Ok(());
        }
        let message = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        Err(if message.contains("administratively prohibited") {
            ModuleError::Blacklisted(module.to_owned())
        } else if message.contains("not found") {
            ModuleError::NotFound(module.to_owned())
        } else {
            ModuleError::Failed {
                module: module.to_owned(),
                message,
            }
        })
    }
}
