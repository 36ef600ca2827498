//! Writes to a device's own attributes: `driver_override`, `remove`, `reset`, `reset_method`.

use std::fs;
use std::io;
use std::path::Path;

use vfioctl_core::PciAddress;
use vfioctl_core::config::parse_config;

use crate::state::{Errno, KernelState};
use crate::tree::device_dir;

use super::{SimKernel, errno};

/// The largest `driver_override` the kernel stores (`PAGE_SIZE - 1` excluded, for the newline
/// `show` adds).
pub(super) const OVERRIDE_MAX: usize = 4096 - 1;

impl SimKernel {
    /// An attribute the simulator gives no meaning to: read-only unless it is one of the few
    /// writable ones vfioctl may save and restore.
    pub(super) fn plain_attribute(&self, full: &Path, _value: &str) -> io::Result<()> {
        if fs::symlink_metadata(full).is_err() {
            return Err(errno(Errno::Enoent));
        }
        // kernfs refuses write-opens of attributes without a store method.
        Err(io::Error::from_raw_os_error(13))
    }

    pub(super) fn driver_dir_exists(&self, drv: &str) -> bool {
        self.root.join("sys/bus/pci/drivers").join(drv).is_dir()
    }

    pub(super) fn device_attribute(
        &self,
        state: &mut KernelState,
        address: PciAddress,
        attr: &str,
        full: &Path,
        value: &str,
    ) -> io::Result<()> {
        match attr {
            "driver_override" => self.set_override(state, address, value),
            "remove" => match value.trim().parse::<u64>() {
                Ok(0) => Ok(()),
                Ok(_) => self.remove_device(state, address),
                Err(_) => Err(errno(Errno::Einval)),
            },
            // A reset leaves no trace in sysfs.
            "reset" => match value.trim() {
                "1" => Ok(()),
                _ => Err(errno(Errno::Einval)),
            },
            "reset_method" => self.set_reset_method(address, full, value),
            "d3cold_allowed" => match value.trim() {
                "0" | "1" => fs::write(full, format!("{}\n", value.trim())),
                _ => Err(errno(Errno::Einval)),
            },
            "sriov_numvfs" => self.set_numvfs(state, address, full, value),
            "sriov_drivers_autoprobe" => self.set_vf_autoprobe(full, value),
            _ => self.plain_attribute(full, value),
        }
    }

    /// The reset methods the device supports, in the kernel's order: FLR when DEVCAP says so,
    /// a secondary-bus reset when a bridge sits above it (not for VFs).
    pub(super) fn supported_resets(&self, address: PciAddress) -> io::Result<Vec<&'static str>> {
        let dev = self.view(address)?;
        let abs = self.root.join(&dev.dir);
        let flr = parse_config(&fs::read(abs.join("config")).unwrap_or_default()).flr == Some(true);
        let behind_bridge = dev
            .dir
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.parse::<PciAddress>().is_ok());
        let is_vf = fs::symlink_metadata(abs.join("physfn")).is_ok();
        let mut out = Vec::new();
        if flr {
            out.push("flr");
        }
        if behind_bridge && !is_vf {
            out.push("bus");
        }
        Ok(out)
    }

    /// `reset_method_store()`: `default` restores every supported method, an empty write
    /// disables reset, otherwise each named method must be supported (EINVAL).
    pub(super) fn set_reset_method(
        &self,
        address: PciAddress,
        full: &Path,
        value: &str,
    ) -> io::Result<()> {
        let supported = self.supported_resets(address)?;
        let v = value.trim();
        let chosen: Vec<&str> = if v == "default" {
            supported
        } else {
            let wanted: Vec<&str> = v.split_whitespace().collect();
            if wanted.iter().any(|m| !supported.contains(m)) {
                return Err(errno(Errno::Einval));
            }
            wanted
        };
        fs::write(full, format!("{}\n", chosen.join(" ")))
    }

    /// `driver_set_override()`: up to the first newline; empty or a leading newline clears.
    pub(super) fn set_override(
        &self,
        state: &KernelState,
        address: PciAddress,
        value: &str,
    ) -> io::Result<()> {
        if value.len() >= OVERRIDE_MAX {
            return Err(errno(Errno::Einval));
        }
        // Python writes trailing NULs; the kernel measures with strlen().
        let value = value.split('\0').next().unwrap_or("");
        let name = value.split('\n').next().unwrap_or("");
        let dir = device_dir(&self.root, address)?;
        let text = if name.is_empty() {
            if state.override_unset_null {
                "(null)\n".to_owned()
            } else {
                "\n".to_owned()
            }
        } else {
            format!("{name}\n")
        };
        fs::write(self.root.join(dir).join("driver_override"), text)
    }
}
