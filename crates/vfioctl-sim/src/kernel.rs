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

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use vfioctl_core::config::{PcieType, parse_config};
use vfioctl_core::{PciAddress, VendorDevice};

use crate::spec::{DriverSpec, IdMatch, ModuleState, ProbeFilter};
use crate::state::{Errno, Fault, FaultAction, KernelState, SIM_DIR};
use crate::tree::{
    attach, detach, device_dir, group_of, module_present, put, remove_dir_if_exists,
    remove_if_exists, write_routes,
};

/// The largest `driver_override` the kernel stores (`PAGE_SIZE - 1` excluded, for the newline
/// `show` adds).
const OVERRIDE_MAX: usize = 4096 - 1;

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

/// A device as the kernel sees it when matching and probing, read back from the tree.
#[derive(Debug)]
struct DevView {
    address: PciAddress,
    dir: PathBuf,
    id: VendorDevice,
    class: u32,
    header_type: u8,
    pcie_type: Option<PcieType>,
    driver_override: Option<String>,
    driver: Option<String>,
    group: Option<u32>,
}

/// Switches that faults flip for one write.
#[derive(Debug, Default, Clone, Copy)]
struct WriteFlags {
    probe_no_bind: bool,
    no_vfio_node: bool,
}

fn read_hex(path: &Path) -> u32 {
    fs::read_to_string(path)
        .ok()
        .and_then(|t| vfioctl_core::ids::parse_sysfs_hex(&t))
        .unwrap_or(0)
}

fn errno(e: Errno) -> io::Error {
    e.error()
}

/// Parses a hex field as `sscanf("%x")` would (optional `0x`).
fn scan_hex(text: &str) -> Option<u32> {
    let t = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    u32::from_str_radix(t, 16).ok()
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
        self.apply(&mut state, &rel, value, flags)?;
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

    /// An attribute the simulator gives no meaning to: read-only unless it is one of the few
    /// writable ones vfioctl may save and restore.
    fn plain_attribute(&self, full: &Path, _value: &str) -> io::Result<()> {
        if fs::symlink_metadata(full).is_err() {
            return Err(errno(Errno::Enoent));
        }
        // kernfs refuses write-opens of attributes without a store method.
        Err(io::Error::from_raw_os_error(13))
    }

    fn driver_dir_exists(&self, drv: &str) -> bool {
        self.root.join("sys/bus/pci/drivers").join(drv).is_dir()
    }

    fn device_attribute(
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
            "sriov_numvfs" | "sriov_drivers_autoprobe" => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the simulated kernel does not create or destroy VFs",
            )),
            _ => self.plain_attribute(full, value),
        }
    }

    /// The reset methods the device supports, in the kernel's order: FLR when DEVCAP says so,
    /// a secondary-bus reset when a bridge sits above it (not for VFs).
    fn supported_resets(&self, address: PciAddress) -> io::Result<Vec<&'static str>> {
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
    fn set_reset_method(&self, address: PciAddress, full: &Path, value: &str) -> io::Result<()> {
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
    fn set_override(
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

    /// `bus_find_device_by_name()` (`sysfs_streq`: a trailing newline is fine).
    fn view_by_name(&self, name: &str) -> io::Result<DevView> {
        let address: PciAddress = name
            .strip_suffix('\n')
            .unwrap_or(name)
            .parse()
            .map_err(|_| errno(Errno::Enodev))?;
        self.view(address)
    }

    fn view(&self, address: PciAddress) -> io::Result<DevView> {
        let dir = device_dir(&self.root, address).map_err(|_| errno(Errno::Enodev))?;
        let abs = self.root.join(&dir);
        let config = fs::read(abs.join("config")).unwrap_or_default();
        let info = parse_config(&config);
        let driver_override = fs::read_to_string(abs.join("driver_override"))
            .ok()
            .and_then(|t| {
                let v = t.trim_end_matches('\n').trim();
                (!v.is_empty() && v != "(null)").then(|| v.to_owned())
            });
        let driver = fs::read_link(abs.join("driver"))
            .ok()
            .and_then(|t| Some(t.file_name()?.to_string_lossy().into_owned()));
        Ok(DevView {
            address,
            id: VendorDevice {
                vendor: read_hex(&abs.join("vendor")) as u16,
                device: read_hex(&abs.join("device")) as u16,
            },
            class: read_hex(&abs.join("class")),
            header_type: info.header_type.unwrap_or(0),
            pcie_type: info.pcie_type,
            driver_override,
            driver,
            group: group_of(&self.root, &dir),
            dir,
        })
    }

    /// `pci_match_device()`: an override decides alone; else dynamic IDs, then the static table.
    fn matches(drv: &DriverSpec, dev: &DevView) -> bool {
        match &dev.driver_override {
            Some(o) => *o == drv.name,
            None => drv
                .dynamic_ids
                .iter()
                .chain(&drv.ids)
                .any(|m| m.matches(dev.id, dev.class)),
        }
    }

    /// The driver's `probe()`: `Ok(true)` bound, `Ok(false)` reported success without binding
    /// (fault), `Err` the errno `bind` returns.
    fn probe(
        &self,
        state: &KernelState,
        drv: &DriverSpec,
        dev: &DevView,
        flags: WriteFlags,
    ) -> io::Result<bool> {
        match drv.probe {
            ProbeFilter::Any => {}
            ProbeFilter::PciePorts => {
                if !matches!(
                    dev.pcie_type,
                    Some(PcieType::RootPort | PcieType::Upstream | PcieType::Downstream)
                ) {
                    return Err(errno(Errno::Enodev));
                }
            }
            ProbeFilter::PciBridges => {
                if dev.header_type != 1 {
                    return Err(errno(Errno::Enodev));
                }
            }
            ProbeFilter::Vfio => {
                if dev.header_type != 0 {
                    return Err(errno(Errno::Einval));
                }
                if dev.group.is_none() && !state.noiommu {
                    return Err(errno(Errno::Einval));
                }
            }
        }
        if flags.probe_no_bind {
            return Ok(false);
        }
        attach(
            &self.root,
            state,
            dev.address,
            &drv.name,
            !flags.no_vfio_node,
        )?;
        write_routes(&self.root, state)?;
        Ok(true)
    }

    fn loaded_driver(&self, state: &KernelState, name: &str) -> io::Result<DriverSpec> {
        match state.driver(name) {
            Some(d) if state.driver_loaded(name) => Ok(d.clone()),
            _ => Err(errno(Errno::Enoent)),
        }
    }

    /// `bind_store()`.
    fn bind(
        &self,
        state: &KernelState,
        drv: &str,
        value: &str,
        flags: WriteFlags,
    ) -> io::Result<()> {
        let drv = self.loaded_driver(state, drv)?;
        let dev = self.view_by_name(value)?;
        if !Self::matches(&drv, &dev) {
            return Err(errno(Errno::Enodev));
        }
        if dev.driver.is_some() {
            return Err(errno(Errno::Ebusy));
        }
        self.probe(state, &drv, &dev, flags).map(|_| ())
    }

    /// `unbind_store()`.
    fn unbind(&self, state: &KernelState, drv: &str, value: &str) -> io::Result<()> {
        let dev = self.view_by_name(value)?;
        if dev.driver.as_deref() != Some(drv) {
            return Err(errno(Errno::Enodev));
        }
        self.detach_device(state, &dev)
    }

    fn detach_device(&self, state: &KernelState, dev: &DevView) -> io::Result<()> {
        let Some(drv) = &dev.driver else {
            return Ok(());
        };
        detach(&self.root, state, dev.address, drv)?;
        if drv == "vfio-pci"
            && let Some(g) = dev.group
            && !self.group_has_vfio_member(g)
        {
            remove_if_exists(&self.root.join(format!("dev/vfio/{g}")))?;
        }
        write_routes(&self.root, state)
    }

    fn group_has_vfio_member(&self, group: u32) -> bool {
        let dir = self
            .root
            .join(format!("sys/kernel/iommu_groups/{group}/devices"));
        let Ok(entries) = fs::read_dir(dir) else {
            return false;
        };
        entries.filter_map(Result::ok).any(|e| {
            fs::read_link(e.path().join("driver"))
                .ok()
                .is_some_and(|t| t.file_name().is_some_and(|n| n == "vfio-pci"))
        })
    }

    /// `device_attach()`: the first loaded driver that matches and whose probe succeeds. Probe
    /// errors are ignored so the next driver can try (and `drivers_probe` still succeeds).
    fn attach_any(&self, state: &KernelState, dev: &DevView, flags: WriteFlags) -> io::Result<()> {
        let candidates: Vec<DriverSpec> = state
            .drivers
            .iter()
            .filter(|d| state.driver_loaded(&d.name) && Self::matches(d, dev))
            .cloned()
            .collect();
        for drv in candidates {
            match self.probe(state, &drv, dev, flags) {
                Ok(_) => return Ok(()),
                Err(e) if e.raw_os_error().is_some() => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn autoprobe(&self) -> bool {
        fs::read_to_string(self.root.join("sys/bus/pci/drivers_autoprobe"))
            .map(|t| t.trim() != "0")
            .unwrap_or(true)
    }

    /// `driver_attach()`: probes every unbound device the driver matches.
    fn driver_attach(&self, state: &KernelState, drv: &str, flags: WriteFlags) -> io::Result<()> {
        let Some(drv) = state.driver(drv).cloned() else {
            return Ok(());
        };
        for address in self.addresses()? {
            let dev = self.view(address)?;
            if dev.driver.is_none() && Self::matches(&drv, &dev) {
                match self.probe(state, &drv, &dev, flags) {
                    Err(e) if e.raw_os_error().is_none() => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn addresses(&self) -> io::Result<Vec<PciAddress>> {
        let mut out: Vec<PciAddress> = fs::read_dir(self.root.join("sys/bus/pci/devices"))?
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Parses `new_id`/`remove_id` input: `VVVV DDDD [SVVV SDDD CCCCCC MMMMMM DATA]`.
    fn parse_id(value: &str) -> io::Result<(IdMatch, usize)> {
        let fields: Vec<u32> = value
            .split_whitespace()
            .map_while(scan_hex)
            .take(7)
            .collect();
        if fields.len() < 2 {
            return Err(errno(Errno::Einval));
        }
        let any = |v: u32| (v != 0xffff_ffff).then_some(v as u16);
        Ok((
            IdMatch {
                vendor: any(fields[0]),
                device: any(fields[1]),
                class: fields.get(4).copied().unwrap_or(0),
                class_mask: fields.get(5).copied().unwrap_or(0),
            },
            fields.len(),
        ))
    }

    /// `new_id_store()`: adds a dynamic ID, then binds every unbound device it matches.
    fn new_id(
        &self,
        state: &mut KernelState,
        drv: &str,
        value: &str,
        flags: WriteFlags,
    ) -> io::Result<()> {
        let (id, fields) = Self::parse_id(value)?;
        let Some(spec) = state.drivers.iter_mut().find(|d| d.name == drv) else {
            return Err(errno(Errno::Enoent));
        };
        if fields != 7 {
            // The kernel checks the new ID against the tables with a fake device.
            let fake = VendorDevice {
                vendor: id.vendor.unwrap_or(0xffff),
                device: id.device.unwrap_or(0xffff),
            };
            if spec
                .dynamic_ids
                .iter()
                .chain(&spec.ids)
                .any(|m| m.matches(fake, id.class))
            {
                return Err(errno(Errno::Eexist));
            }
        }
        spec.dynamic_ids.push(id);
        if self.autoprobe() {
            self.driver_attach(state, drv, flags)?;
        }
        Ok(())
    }

    /// `remove_id_store()`.
    fn remove_id(&self, state: &mut KernelState, drv: &str, value: &str) -> io::Result<()> {
        let (id, _) = Self::parse_id(value)?;
        let Some(spec) = state.drivers.iter_mut().find(|d| d.name == drv) else {
            return Err(errno(Errno::Enoent));
        };
        let before = spec.dynamic_ids.len();
        spec.dynamic_ids.retain(|m| {
            !(m.vendor == id.vendor
                && m.device == id.device
                && (id.class_mask == 0 || (m.class == id.class && m.class_mask == id.class_mask)))
        });
        if spec.dynamic_ids.len() == before {
            return Err(errno(Errno::Enodev));
        }
        Ok(())
    }

    /// Removes a device and everything behind it, as `pci_stop_and_remove_bus_device()` does.
    fn remove_device(&self, state: &mut KernelState, address: PciAddress) -> io::Result<()> {
        let Ok(top) = device_dir(&self.root, address) else {
            return Ok(());
        };
        // Devices behind a bridge live inside its directory.
        let mut doomed = Vec::new();
        for a in self.addresses()? {
            if let Ok(dir) = device_dir(&self.root, a)
                && dir.starts_with(&top)
            {
                doomed.push(a);
            }
        }
        // Children first, as the kernel removes them.
        doomed.sort_by_key(|a| {
            std::cmp::Reverse(
                device_dir(&self.root, *a)
                    .map(|d| d.components().count())
                    .unwrap_or(0),
            )
        });
        for a in doomed {
            let dev = self.view(a)?;
            self.detach_device(state, &dev)?;
            if let Some(g) = dev.group {
                let gdir = self.root.join(format!("sys/kernel/iommu_groups/{g}"));
                remove_if_exists(&gdir.join("devices").join(a.to_string()))?;
                let empty = fs::read_dir(gdir.join("devices"))
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(true);
                if empty {
                    remove_dir_if_exists(&gdir)?;
                }
            }
            self.drop_virtfn_link(&dev)?;
            remove_if_exists(&self.root.join("sys/bus/pci/devices").join(a.to_string()))?;
            remove_dir_if_exists(&self.root.join(&dev.dir))?;
            state.devices.remove(&a);
        }
        write_routes(&self.root, state)
    }

    /// A VF that goes away takes its `virtfnN` link in the PF with it.
    fn drop_virtfn_link(&self, vf: &DevView) -> io::Result<()> {
        let Some(pf) = fs::read_link(self.root.join(&vf.dir).join("physfn"))
            .ok()
            .and_then(|t| t.file_name()?.to_str()?.parse::<PciAddress>().ok())
        else {
            return Ok(());
        };
        let Ok(pf_dir) = device_dir(&self.root, pf) else {
            return Ok(());
        };
        let name = vf.address.to_string();
        for entry in fs::read_dir(self.root.join(pf_dir))?.filter_map(Result::ok) {
            let is_virtfn = entry.file_name().to_string_lossy().starts_with("virtfn");
            if is_virtfn
                && fs::read_link(entry.path())
                    .ok()
                    .is_some_and(|t| t.file_name().is_some_and(|n| n == name.as_str()))
            {
                remove_if_exists(&entry.path())?;
            }
        }
        Ok(())
    }

    /// True when `root` holds a simulated kernel (the marker exists): the only condition under
    /// which vfioctl should use [`SimKernel`] instead of the real one.
    pub fn is_simulated(root: &Path) -> bool {
        KernelState::path(root).is_file()
    }

    /// Loads a module as `modprobe` does: its dependencies first, then the module; its drivers
    /// then probe every unbound device they match (module init), honouring `driver_override`.
    pub fn load_module(&self, name: &str) -> Result<(), SimModuleError> {
        let _lock = self.lock()?;
        let mut state = self.state()?;
        let module = module_named(&state, name)?;
        let mut order = Vec::new();
        Self::dep_order(&state, &module, &mut order, 0);
        for m in &order {
            match state.module_state(m) {
                ModuleState::Builtin | ModuleState::Loaded => {}
                ModuleState::Loadable => {}
                ModuleState::Blacklisted => return Err(SimModuleError::Blacklisted(m.clone())),
                ModuleState::Absent => return Err(SimModuleError::NotFound(m.clone())),
            }
        }
        let mut newly = Vec::new();
        for m in &order {
            if let Some(spec) = state.modules.iter_mut().find(|s| &s.name == m)
                && spec.state == ModuleState::Loadable
            {
                spec.state = ModuleState::Loaded;
                newly.push(m.clone());
            }
        }
        for m in &newly {
            module_present(&self.root, &state, m)?;
        }
        if self.autoprobe() {
            for m in &newly {
                let drivers: Vec<String> = state
                    .drivers
                    .iter()
                    .filter(|d| &d.module == m)
                    .map(|d| d.name.clone())
                    .collect();
                for d in drivers {
                    self.driver_attach(&state, &d, WriteFlags::default())?;
                }
            }
            if !newly.is_empty() {
                crate::fslmc::attach_all(&self.root, &state)?;
            }
        }
        state.save(&self.root)?;
        Ok(())
    }

    /// Unloads a module as `modprobe -r` does: refused while a device is bound to one of its
    /// drivers or another loaded module needs it; then its dependencies that nothing else needs go
    /// too, so loading and unloading leaves the tree as it was.
    pub fn unload_module(&self, name: &str) -> Result<(), SimModuleError> {
        let _lock = self.lock()?;
        let mut state = self.state()?;
        let module = module_named(&state, name)?;
        if state.module_state(&module) == ModuleState::Builtin {
            return Err(SimModuleError::InUse(module));
        }
        let mut queue = vec![module.clone()];
        while let Some(m) = queue.pop() {
            if state.module_state(&m) != ModuleState::Loaded {
                continue;
            }
            let needed = state
                .modules
                .iter()
                .any(|o| o.state == ModuleState::Loaded && o.deps.contains(&m));
            let bound = state.drivers.iter().filter(|d| d.module == m).any(|d| {
                let dir = self.root.join("sys/bus/pci/drivers").join(&d.name);
                fs::read_dir(&dir).is_ok_and(|entries| {
                    entries.flatten().any(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .parse::<PciAddress>()
                            .is_ok()
                    })
                })
            }) || crate::fslmc::DRIVERS.iter().filter(|(_, dm)| *dm == m).any(
                |(d, _)| {
                    fs::read_dir(self.root.join("sys/bus/fsl-mc/drivers").join(d)).is_ok_and(
                        |entries| {
                            entries.flatten().any(|e| {
                                e.file_type().is_ok_and(|t| t.is_symlink())
                                    && e.file_name() != "module"
                            })
                        },
                    )
                },
            );
            if needed || bound {
                if m == module {
                    return Err(SimModuleError::InUse(m));
                }
                continue;
            }
            let deps = state.module(&m).map(|s| s.deps.clone()).unwrap_or_default();
            for d in state.drivers.iter().filter(|d| d.module == m) {
                remove_dir_if_exists(&self.root.join("sys/bus/pci/drivers").join(&d.name))?;
            }
            for (d, _) in crate::fslmc::DRIVERS.iter().filter(|(_, dm)| *dm == m) {
                remove_dir_if_exists(&self.root.join("sys/bus/fsl-mc/drivers").join(d))?;
            }
            remove_dir_if_exists(&self.root.join("sys/module").join(&m))?;
            if m == "vfio" {
                let _ = fs::remove_file(self.root.join("dev/vfio/vfio"));
                let _ = fs::remove_dir(self.root.join("dev/vfio"));
            }
            if let Some(spec) = state.modules.iter_mut().find(|s| s.name == m) {
                spec.state = ModuleState::Loadable;
            }
            queue.extend(deps);
        }
        state.save(&self.root)?;
        Ok(())
    }

    fn dep_order(state: &KernelState, module: &str, out: &mut Vec<String>, depth: usize) {
        if depth > 32 || out.iter().any(|m| m == module) {
            return;
        }
        if let Some(m) = state.module(module) {
            for d in &m.deps {
                Self::dep_order(state, d, out, depth + 1);
            }
        }
        out.push(module.to_owned());
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

/// The module `name` means, as modprobe reads it: a module name with `-` or `_`, or the name of a
/// driver the module provides (`vfio-pci` for `vfio_pci`).
fn module_named(state: &KernelState, name: &str) -> Result<String, SimModuleError> {
    let name = name.replace('-', "_");
    if let Some(m) = state.module(&name) {
        return Ok(m.name.clone());
    }
    match state.driver(&name.replace('_', "-")) {
        Some(d) => Ok(d.module.clone()),
        None => Err(SimModuleError::NotFound(name)),
    }
}
