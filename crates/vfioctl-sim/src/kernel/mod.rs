//! The write side of the simulated kernel: what Linux does when a sysfs attribute is written or a
//! module is loaded.
//!
//! Semantics follow the kernel source: `drivers/pci/pci-sysfs.c` (`driver_override_store`),
//! `drivers/base/driver.c` (`driver_set_override`), `drivers/pci/pci-driver.c`
//! (`pci_match_device`, `new_id_store`, `remove_id_store`), `drivers/base/bus.c` (`bind_store`,
//! `unbind_store`, `drivers_probe_store`), `drivers/base/dd.c` (probe errors returned from `bind`,
//! ignored by `drivers_probe`), `drivers/vfio/pci/vfio_pci.c` (`vfio_pci_probe` refuses non-type-0
//! headers with -EINVAL) and `drivers/vfio/group.c` (`vfio_group_find_or_alloc`: no IOMMU group
//! is -EINVAL unless no-IOMMU mode).
//!
//! Every write takes an exclusive lock on `.vfioctl-sim/lock`, so concurrent processes see each
//! write whole, as they would see the kernel's device lock.
//!
//! This module takes a write, applies faults and dispatches it by path; what each write does is
//! in `attrs` (a device's own attributes), `probe` (matching, binding, unbinding), `ids`
//! (`new_id`, `remove_id`), `remove` (removal and hot-unplug) and `modules` (modprobe).

mod attrs;
mod ids;
mod modules;
mod netaddr;
mod probe;
mod remove;
mod sriov;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use vfioctl_core::PciAddress;

use crate::spec::IdMatch;
use crate::state::{Errno, Fault, FaultAction, KernelState, SIM_DIR};
use crate::tree::{SimTree, put};

/// Why a module could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SimModuleError {
    /// The module is blacklisted (modprobe refuses it).
    #[error("module {0} is blacklisted")]
    Blacklisted(String),
    /// No such module for this kernel.
    #[error("module {0} not found in directory /lib/modules")]
    NotFound(String),
    /// The module is built in, or a device is bound to one of its drivers (`modprobe -r`:
    /// "Module ... is in use" / "is builtin").
    #[error("module {0} is in use or built in")]
    InUse(String),
    /// The simulated tree could not be updated.
    #[error("simulated kernel I/O failed")]
    Io(#[from] io::Error),
}

/// A simulated kernel serving the tree under a root that holds the marker.
#[derive(Debug, Clone)]
pub struct SimKernel {
    root: PathBuf,
}

/// Switches that faults flip for one write.
#[derive(Debug, Default, Clone, Copy)]
struct WriteFlags {
    probe_no_bind: bool,
    no_vfio_node: bool,
}

fn errno(e: Errno) -> io::Error {
    e.error()
}

impl SimKernel {
    /// Opens the simulated kernel under `root`; fails with `NotFound` when the marker is missing.
    pub fn open(root: &Path) -> io::Result<SimKernel> {
        KernelState::load(root)?;
        Ok(SimKernel {
            root: root.to_path_buf(),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The kernel's hidden state now.
    pub fn state(&self) -> io::Result<KernelState> {
        KernelState::load(&self.root)
    }

    fn lock(&self) -> io::Result<File> {
        let dir = self.root.join(SIM_DIR);
        fs::create_dir_all(&dir)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        file.lock()?;
        Ok(file)
    }

    fn counter(&self, name: &str) -> u64 {
        fs::read_to_string(self.root.join(SIM_DIR).join(name))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    fn bump(&self, name: &str) -> io::Result<u64> {
        let n = self.counter(name);
        fs::write(self.root.join(SIM_DIR).join(name), format!("{}\n", n + 1))?;
        Ok(n)
    }

    /// Successful writes so far (across processes).
    pub fn writes_done(&self) -> u64 {
        self.counter("writes")
    }

    /// Write attempts so far (across processes); the next write has this step index.
    pub fn steps_done(&self) -> u64 {
        self.counter("steps")
    }

    /// Changes the marker under the lock.
    fn update_state(&self, f: impl FnOnce(&mut KernelState)) -> io::Result<()> {
        let _lock = self.lock()?;
        let mut state = self.state()?;
        f(&mut state);
        state.save(&self.root)
    }

    /// Adds a fault to inject.
    pub fn add_fault(&self, fault: Fault) -> io::Result<()> {
        self.update_state(|s| s.faults.push(fault))
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) -> io::Result<()> {
        self.update_state(|s| s.faults.clear())
    }

    /// Aborts the writing process right after the `n`-th successful write (counted across
    /// processes, from the start of the tree), or never with `None`.
    pub fn set_crash_after_write(&self, n: Option<u64>) -> io::Result<()> {
        self.update_state(|s| s.crash_after_write = n)
    }

    /// Turns vfio's no-IOMMU mode on or off.
    pub fn set_noiommu(&self, on: bool) -> io::Result<()> {
        self.update_state(|s| s.noiommu = on)
    }

    /// Hot-unplugs a device (and everything behind it, for a bridge).
    pub fn unplug(&self, address: PciAddress) -> io::Result<()> {
        let _lock = self.lock()?;
        let mut state = self.state()?;
        self.remove_device(&mut state, address)?;
        state.save(&self.root)
    }

    /// `path` relative to the root, accepting both `<root>/sys/...` and `/sys/...` or `sys/...`.
    fn relative(&self, path: &Path) -> io::Result<PathBuf> {
        let rel = path
            .strip_prefix(&self.root)
            .or_else(|_| path.strip_prefix("/"))
            .unwrap_or(path);
        let mut out = PathBuf::new();
        for c in rel.components() {
            match c {
                Component::Normal(n) => out.push(n),
                Component::CurDir => {}
                // sysfs paths never need "..": refuse anything that could leave the tree.
                _ => return Err(errno(Errno::Enoent)),
            }
        }
        Ok(out)
    }

    /// Sleeps as a write stuck in the kernel does, and shows the writer in the tree's
    /// `proc/<pid>` meanwhile (its real command line), as the real `/proc` shows a process in
    /// `D` state: that is how vfioctl tells an unbind still in flight from one that is over.
    fn blocked(&self, how_long: Duration) -> io::Result<()> {
        let dir = self.root.join(format!("proc/{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let cmdline = std::fs::read("/proc/self/cmdline").unwrap_or_default();
        std::fs::write(dir.join("cmdline"), cmdline)?;
        std::fs::write(
            dir.join("stat"),
            format!("{} (vfioctl) D 1\n", std::process::id()),
        )?;
        std::thread::sleep(how_long);
        std::fs::remove_dir_all(&dir)
    }

    /// Writes `value` to the attribute at `path`, with the kernel's semantics.
    pub fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let rel = self.relative(path)?;
        let rel_text = rel.to_string_lossy().into_owned();
        self.write_with(&rel_text, value, |kernel, state, flags| {
            kernel.apply(state, &rel, value, flags)
        })
    }

    /// One change of the kernel's state, named `rel_text` for faults: faults decided and applied,
    /// the change made under the lock, counted, and the crash emulated after it.
    fn write_with(
        &self,
        rel_text: &str,
        value: &str,
        change: impl FnOnce(&Self, &mut KernelState, WriteFlags) -> io::Result<()>,
    ) -> io::Result<()> {
        let trimmed = value.trim();

        // Decide which faults apply (step numbering is global across processes).
        let (faults, crash_after) = {
            let _lock = self.lock()?;
            let step = self.bump("steps")?;
            let state = self.state()?;
            let faults: Vec<Fault> = state
                .faults
                .iter()
                .filter(|f| {
                    let m = &f.when;
                    m.path_contains
                        .as_ref()
                        .is_none_or(|p| rel_text.contains(p))
                        && m.value.as_ref().is_none_or(|v| v == trimmed)
                        && m.step.is_none_or(|s| s == step)
                        && m.from_step.is_none_or(|s| step >= s)
                })
                .cloned()
                .collect();
            (faults, state.crash_after_write)
        };
        let mut flags = WriteFlags::default();
        for f in &faults {
            match &f.action {
                // Outside the lock: a hanging remove() holds only its own device.
                FaultAction::Block { millis } => self.blocked(Duration::from_millis(*millis))?,
                FaultAction::Fail(e) => return Err(errno(*e)),
                FaultAction::ProbeNoBind => flags.probe_no_bind = true,
                FaultAction::NoVfioNode => flags.no_vfio_node = true,
                FaultAction::Unplug(_) => {}
            }
        }

        let _lock = self.lock()?;
        let mut state = self.state()?;
        change(self, &mut state, flags)?;
        for f in &faults {
            if let FaultAction::Unplug(a) = f.action {
                self.remove_device(&mut state, a)?;
            }
        }
        state.save(&self.root)?;
        let done = self.bump("writes")? + 1;
        if crash_after == Some(done) {
            // Emulates a crash or power loss right after the kernel acted on the write.
            std::process::abort();
        }
        Ok(())
    }

    fn apply(
        &self,
        state: &mut KernelState,
        rel: &Path,
        value: &str,
        flags: WriteFlags,
    ) -> io::Result<()> {
        let parts: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
        if let Some(result) = crate::fslmc::write(&self.root, state, &parts, value) {
            return result;
        }
        let full = self.root.join(rel);
        match parts.as_slice() {
            ["sys", "bus", "pci", "drivers", drv, op] if self.driver_dir_exists(drv) => {
                let drv = (*drv).to_owned();
                match *op {
                    "bind" => self.bind(state, &drv, value, flags),
                    "unbind" => self.unbind(state, &drv, value),
                    "new_id" => self.new_id(state, &drv, value, flags),
                    "remove_id" => self.remove_id(state, &drv, value),
                    _ => self.plain_attribute(&full, value),
                }
            }
            ["sys", "bus", "pci", "drivers_probe"] => {
                let dev = self.view_by_name(value)?;
                if dev.driver.is_none() {
                    self.attach_any(state, &dev, flags)?;
                }
                Ok(())
            }
            ["sys", "bus", "pci", "drivers_autoprobe"] => match value.trim() {
                "0" | "1" => fs::write(full, format!("{}\n", value.trim())),
                _ => Err(errno(Errno::Einval)),
            },
            // Re-adding removed devices is not simulated; a rescan finds nothing new.
            ["sys", "bus", "pci", "rescan"] => Ok(()),
            ["sys", "module", _, "parameters", _] if full.is_file() => {
                fs::write(full, format!("{}\n", value.trim_end_matches('\n')))
            }
            [.., dev, attr] if dev.parse::<PciAddress>().is_ok() && full.exists() => {
                let address: PciAddress = dev.parse().map_err(|_| errno(Errno::Enoent))?;
                self.device_attribute(state, address, attr, &full, value)
            }
            [.., dev, "power", "control"] if dev.parse::<PciAddress>().is_ok() && full.exists() => {
                match value.trim() {
                    "on" | "auto" => fs::write(full, format!("{}\n", value.trim())),
                    _ => Err(errno(Errno::Einval)),
                }
            }
            _ => self.plain_attribute(&full, value),
        }
    }

    /// True when `root` holds a simulated kernel (the marker exists): the only condition under
    /// which vfioctl should use [`SimKernel`] instead of the real one.
    pub fn is_simulated(root: &Path) -> bool {
        KernelState::path(root).is_file()
    }

    /// The dynamic IDs added to `driver` through `new_id` (vfioctl must never leave any).
    pub fn dynamic_ids(&self, driver: &str) -> io::Result<Vec<IdMatch>> {
        Ok(self
            .state()?
            .driver(driver)
            .map(|d| d.dynamic_ids.clone())
            .unwrap_or_default())
    }

    /// Writes a file under the root without kernel semantics (for tests that damage a tree).
    pub fn write_raw(&self, rel: &Path, content: &[u8]) -> io::Result<()> {
        let rel = self.relative(rel)?;
        put(&self.root, rel, content)
    }
}

impl SimTree {
    /// The simulated kernel serving this tree.
    pub fn kernel(&self) -> io::Result<SimKernel> {
        SimKernel::open(self.root())
    }
}
