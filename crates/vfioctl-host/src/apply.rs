//! Carrying out plans: journal first, then each step, then verification; on any failure, every
//! device touched is put back as the journal recorded it.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vfioctl_core::PciAddress;
use vfioctl_core::plan::{BindPlan, OriginalState, Step, VFIO_PCI, restore_steps};

use crate::journal::{EntryState, Journal, JournalEntry, JournalError, now};
use crate::kernel::{Kernel, ModuleError};
use crate::read::{device_dir, link_name, read_device};
use crate::{HostError, HostRoot};

pub use crate::hostuse::{host_uses, net_host_use};

/// Modules a vfio driver needs that `modprobe` loads only as a soft dependency: `vfio` names
/// `vfio_iommu_type1` as a softdep, which kmod's modprobe honours and busybox's (OpenWrt-based
/// hosts such as the Ten64's μVirt) ignores; without it QEMU fails with "No available IOMMU
/// models". Loaded (best effort: an iommufd-only kernel has none) right after the driver.
const SOFTDEP_COMPANIONS: &[(&str, &str)] = &[
    ("vfio-pci", "vfio_iommu_type1"),
    ("vfio_fsl_mc", "vfio_iommu_type1"),
];

fn module_dir_name(module: &str) -> String {
    module.replace('-', "_")
}

/// How long the steps that wait may wait.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For a driver to appear after a probe (drivers_probe returns before it is sure).
    pub probe: Duration,
    /// For an unbind, which blocks while the driver has users.
    pub unbind: Duration,
    /// For `/dev/vfio/<group>` to appear.
    pub group_node: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            probe: Duration::from_secs(2),
            unbind: Duration::from_secs(10),
            group_node: Duration::from_secs(3),
        }
    }
}

/// A step that failed, in words.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A sysfs write failed.
    #[error("writing {value:?} to {path} failed")]
    Write {
        /// The attribute, as on `/`.
        path: String,
        /// The value.
        value: String,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// An unbind did not return in time.
    #[error(
        "unbinding {device} from {driver} did not return within {timeout:?}: the driver is still in use"
    )]
    UnbindTimeout {
        /// The device or fsl-mc object.
        device: String,
        /// The driver.
        driver: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The expected driver never showed up.
    #[error("{device} is on {found} after probing, not on {expected}")]
    WrongDriver {
        /// The device or fsl-mc object.
        device: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// `/dev/vfio/<group>` never appeared.
    #[error("/dev/vfio/{group} did not appear within {timeout:?}")]
    NoGroupNode {
        /// The group.
        group: u32,
        /// How long we waited.
        timeout: Duration,
    },
    /// A module could not be loaded.
    #[error(transparent)]
    Module(#[from] ModuleError),
    /// The device vanished (hot-unplug) or its sysfs could not be read.
    #[error(transparent)]
    Host(#[from] HostError),
}

/// How a rollback ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollback {
    /// Every device is back as it was.
    Clean,
    /// Some could not be put back; each with what went wrong. They stay in the journal.
    Incomplete(Vec<String>),
}

/// Why applying a plan failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The journal or lock could not be used; nothing was changed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A step failed; what was done has been rolled back (see `rollback`).
    #[error("{source}")]
    Step {
        /// The step that failed.
        source: StepError,
        /// How the rollback went.
        rollback: Rollback,
    },
    /// A previous bind was interrupted and must be recovered first.
    #[error("a previous vfioctl run was interrupted while binding {}", vfioctl_core::comma_list(.0))]
    Interrupted(Vec<PciAddress>),
}

/// Executes steps against a kernel under a root.
pub struct Executor {
    root: HostRoot,
    kernel: Arc<dyn Kernel>,
    timeouts: Timeouts,
    write_helper: Option<std::path::PathBuf>,
}

/// How a write helper reports a write that failed without an errno.
pub const WRITE_HELPER_OTHER_ERROR: i32 = 255;

impl Executor {
    /// An executor.
    pub fn new(root: HostRoot, kernel: Arc<dyn Kernel>, timeouts: Timeouts) -> Self {
        Self {
            root,
            kernel,
            timeouts,
            write_helper: None,
        }
    }

    /// Does unbinds in a child process, `<program> --root <root> __write-attr <path> <value>`,
    /// which exits with 0 or the write's errno. A driver whose `remove()` never returns leaves
    /// that child stuck in the kernel, not vfioctl: vfioctl reports and exits, where a stuck
    /// thread of its own could keep the process from ever exiting.
    #[must_use]
    pub fn with_write_helper(mut self, program: std::path::PathBuf) -> Self {
        self.write_helper = Some(program);
        self
    }

    /// The root.
    pub fn root(&self) -> &HostRoot {
        &self.root
    }

    fn write(&self, path: &str, value: &str) -> Result<(), StepError> {
        self.kernel
            .write_attr(&self.root.join(path), value)
            .map_err(|source| StepError::Write {
                path: path.to_owned(),
                value: value.to_owned(),
                source,
            })
    }

    /// An unbind runs on its own thread: a driver whose `remove()` waits for its users never
    /// returns, and vfioctl must report that instead of hanging with it.
    fn unbind(&self, device: &str, driver: &str, path: &str, value: &str) -> Result<(), StepError> {
        let outcome = match &self.write_helper {
            Some(program) => self.write_in_child(program, path, value),
            None => self.write_in_thread(path, value),
        };
        match outcome {
            Some(Ok(())) => Ok(()),
            Some(Err(source)) => Err(StepError::Write {
                path: path.to_owned(),
                value: value.to_owned(),
                source,
            }),
            None => Err(StepError::UnbindTimeout {
                device: device.to_owned(),
                driver: driver.to_owned(),
                timeout: self.timeouts.unbind,
            }),
        }
    }

    /// The write on a thread of our own; `None` when it did not return in time.
    fn write_in_thread(&self, path: &str, value: &str) -> Option<io::Result<()>> {
        let (tx, rx) = mpsc::channel();
        let kernel = Arc::clone(&self.kernel);
        let full = self.root.join(path);
        let owned = value.to_owned();
        std::thread::spawn(move || {
            let _ = tx.send(kernel.write_attr(&full, &owned));
        });
        rx.recv_timeout(self.timeouts.unbind).ok()
    }

    /// The write in a helper process; `None` when it did not return in time (the child is left to
    /// finish: it cannot be killed while the kernel holds it, and recovery reads the result).
    fn write_in_child(&self, program: &Path, path: &str, value: &str) -> Option<io::Result<()>> {
        let child = std::process::Command::new(program)
            .arg("--root")
            .arg(self.root.path())
            .arg("--quiet")
            .arg("__write-attr")
            .arg(path)
            .arg(value)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) => return Some(Err(e)),
        };
        let deadline = Instant::now() + self.timeouts.unbind;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    return Some(match status.code() {
                        Some(0) => Ok(()),
                        Some(code) if code != WRITE_HELPER_OTHER_ERROR => {
                            Err(io::Error::from_raw_os_error(code))
                        }
                        _ => Err(io::Error::other(format!(
                            "the write helper failed ({status})"
                        ))),
                    });
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// The driver of a device now.
    pub fn current_driver(&self, device: &PciAddress) -> Result<Option<String>, HostError> {
        link_name(&self.root.pci_device(device).join("driver"))
    }

    fn await_driver(&self, device: PciAddress, expected: Option<&str>) -> Result<(), StepError> {
        let deadline = Instant::now() + self.timeouts.probe;
        loop {
            if !self.root.pci_device(&device).exists() {
                return Err(StepError::Host(HostError::Read {
                    path: self.root.display_path(&self.root.pci_device(&device)),
                    source: io::Error::new(io::ErrorKind::NotFound, "the device disappeared"),
                }));
            }
            let found = self.current_driver(&device)?;
            if found.as_deref() == expected {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StepError::WrongDriver {
                    device: device.to_string(),
                    expected: expected.unwrap_or("no driver").to_owned(),
                    found: found.unwrap_or_else(|| "no driver".to_owned()),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn await_object_driver(&self, object: &str, expected: Option<&str>) -> Result<(), StepError> {
        let dir = self.root.join(format!("sys/bus/fsl-mc/devices/{object}"));
        let deadline = Instant::now() + self.timeouts.probe;
        loop {
            let found = link_name(&dir.join("driver"))?;
            if found.as_deref() == expected {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StepError::WrongDriver {
                    device: object.to_owned(),
                    expected: expected.unwrap_or("no driver").to_owned(),
                    found: found.unwrap_or_else(|| "no driver".to_owned()),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn await_group_node(&self, group: u32) -> Result<(), StepError> {
        let node = self.root.join(format!("dev/vfio/{group}"));
        let deadline = Instant::now() + self.timeouts.group_node;
        while !node.exists() {
            if Instant::now() >= deadline {
                return Err(StepError::NoGroupNode {
                    group,
                    timeout: self.timeouts.group_node,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Runs one step.
    pub fn run_step(&self, step: &Step) -> Result<(), StepError> {
        match step {
            Step::LoadModule { module } => {
                self.kernel.load_module(module)?;
                for (_, companion) in SOFTDEP_COMPANIONS.iter().filter(|(m, _)| m == module) {
                    if !self.module_loaded(companion) {
                        let _ = self.kernel.load_module(companion);
                    }
                }
                Ok(())
            }
            Step::Write(w) => self.write(&w.path, &w.value),
            Step::Unbind {
                device,
                driver,
                write,
            } => self.unbind(&device.to_string(), driver, &write.path, &write.value),
            Step::UnbindObject {
                object,
                driver,
                write,
            } => self.unbind(object, driver, &write.path, &write.value),
            Step::AwaitObjectDriver { object, driver } => {
                self.await_object_driver(object, driver.as_deref())
            }
            Step::AwaitDriver { device, driver } => self.await_driver(*device, driver.as_deref()),
            Step::AwaitGroupNode { group } => self.await_group_node(*group),
        }
    }

    /// Puts one device back as `original` says, from whatever state it is in now.
    pub fn restore_device(&self, original: &OriginalState) -> Result<(), StepError> {
        let dir = device_dir(&self.root, &original.address)?;
        let current = read_device(original.address, &dir)?;
        let steps = restore_steps(&current, original);
        for step in &steps {
            let result = self.run_step(step);
            // Binding to the recorded driver can fail when that driver no longer matches (it was
            // bound through a dynamic ID, say); the bus's own choice is the next best thing.
            if let (Err(_), Step::Write(w)) = (&result, step)
                && w.path.ends_with("/bind")
            {
                self.write("/sys/bus/pci/drivers_probe", &w.value)?;
                continue;
            }
            result?;
        }
        Ok(())
    }

    /// Restores each device, in reverse order; returns what could not be restored.
    pub fn restore_all(&self, originals: &[OriginalState]) -> Rollback {
        let mut failures = Vec::new();
        for original in originals.iter().rev() {
            if let Err(e) = self.restore_device(original) {
                failures.push(format!("{}: {}", original.address, chain(&e)));
            }
        }
        if failures.is_empty() {
            Rollback::Clean
        } else {
            Rollback::Incomplete(failures)
        }
    }

    /// True when `/sys/module/<module>` exists (loaded, or built in with parameters).
    pub fn module_loaded(&self, module: &str) -> bool {
        self.root
            .join(format!("sys/module/{}", module_dir_name(module)))
            .exists()
    }

    /// The modules that loading `module` will add: itself and the soft dependencies that are not
    /// loaded yet. They go into the journal before the load, so a crash right after it still
    /// leaves a record of what to unload.
    pub fn modules_to_record(&self, module: &str) -> Vec<String> {
        let mut list = vec![module.to_owned()];
        for (_, companion) in SOFTDEP_COMPANIONS.iter().filter(|(m, _)| *m == module) {
            if !self.module_loaded(companion) {
                list.push((*companion).to_owned());
            }
        }
        list
    }

    /// Unloads modules vfioctl loaded once no device uses their driver any more.
    pub fn unload_unused(&self, journal: &mut Journal) {
        journal.modules_loaded.retain(|module| {
            // Already gone (unloaded with the module that needed it, or never loaded).
            if !self.module_loaded(module) {
                return false;
            }
            let driver = module.replace('_', "-");
            let in_use = std::fs::read_dir(self.root.join(format!("sys/bus/pci/drivers/{driver}")))
                .map(|entries| {
                    entries.flatten().any(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .parse::<PciAddress>()
                            .is_ok()
                    })
                })
                .unwrap_or(false);
            if in_use {
                return true;
            }
            self.kernel.unload_module(module).is_err()
        });
    }

    /// Binds as planned: journal first, then the steps; on failure, rolls everything back.
    pub fn bind(
        &self,
        plan: &BindPlan,
        journal: &mut Journal,
        owner: Option<&str>,
    ) -> Result<(), ApplyError> {
        let interrupted: Vec<PciAddress> =
            journal.interrupted().map(|e| e.original.address).collect();
        if !interrupted.is_empty() {
            return Err(ApplyError::Interrupted(interrupted));
        }
        let originals: Vec<OriginalState> = plan
            .to_bind()
            .map(|d| match journal.entry(&d.address) {
                // Bound by us before and changed by hand since: what it had before us still counts.
                Some(entry) => entry.original.clone(),
                None => OriginalState {
                    address: d.address,
                    driver: d.current_driver.clone(),
                    driver_override: d.current_override.clone(),
                    iommu_group: d.iommu_group,
                },
            })
            .collect();
        if originals.is_empty() {
            return Ok(());
        }
        let loads_module = plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::LoadModule { .. }));
        let before = journal.clone();
        journal.remove(&originals.iter().map(|o| o.address).collect::<Vec<_>>());
        for original in &originals {
            journal.entries.push(JournalEntry {
                original: original.clone(),
                state: EntryState::Binding,
                since: now(),
                owner: owner.map(str::to_owned),
            });
        }
        if loads_module {
            for module in self.modules_to_record("vfio-pci") {
                if !journal.modules_loaded.contains(&module) {
                    journal.modules_loaded.push(module);
                }
            }
        }
        self.run_journaled(&plan.steps, journal, &before, || {
            self.restore_all(&originals)
        })?;
        for entry in &mut journal.entries {
            if originals
                .iter()
                .any(|o| o.address == entry.original.address)
            {
                entry.state = EntryState::Bound;
            }
        }
        journal.save(&self.root)?;
        Ok(())
    }

    /// Saves the journal `journal` (changed in memory from `before`), then runs the steps; on a
    /// failed step undoes them with `undo` and, when that is clean, puts the journal (and any
    /// module loaded on the way) back as before. Nothing is written to the kernel unless the
    /// journal was saved first.
    pub(crate) fn run_journaled(
        &self,
        steps: &[Step],
        journal: &mut Journal,
        before: &Journal,
        undo: impl FnOnce() -> Rollback,
    ) -> Result<(), ApplyError> {
        if let Err(e) = journal.save(&self.root) {
            *journal = before.clone();
            return Err(e.into());
        }
        let newly_loaded: Vec<String> = journal
            .modules_loaded
            .iter()
            .filter(|m| !before.modules_loaded.contains(m))
            .cloned()
            .collect();
        for step in steps {
            if let Err(source) = self.run_step(step) {
                // A hung unbind still holds the device's lock in the kernel: every write to that
                // device would hang behind it, so leave the journal for `recover` instead.
                if let StepError::UnbindTimeout { device, .. } = &source {
                    let rollback = Rollback::Incomplete(vec![format!(
                        "{device}: the unbind has not returned; nothing else was undone"
                    )]);
                    return Err(ApplyError::Step { source, rollback });
                }
                let rollback = undo();
                if rollback == Rollback::Clean {
                    *journal = before.clone();
                    journal.modules_loaded.extend(newly_loaded);
                    self.unload_unused(journal);
                    // If even this fails, the entries stay and restore --all redoes a no-op.
                    let _ = journal.save(&self.root);
                }
                return Err(ApplyError::Step { source, rollback });
            }
        }
        Ok(())
    }

    /// Binds a device that vfioctl does not know the original of (no journal) back to its
    /// default driver: clear the override, unbind from vfio, let the bus probe.
    pub fn release_to_default(&self, address: PciAddress) -> Result<(), StepError> {
        let dir = device_dir(&self.root, &address)?;
        let dev = read_device(address, &dir)?;
        if dev.driver_override.as_deref() == Some(VFIO_PCI) {
            self.write(
                &format!("/sys/bus/pci/devices/{address}/driver_override"),
                "\n",
            )?;
        }
        if dev.driver.as_deref() == Some(VFIO_PCI) {
            self.unbind(
                &address.to_string(),
                VFIO_PCI,
                &format!("/sys/bus/pci/drivers/{VFIO_PCI}/unbind"),
                &address.to_string(),
            )?;
            self.write("/sys/bus/pci/drivers_probe", &address.to_string())?;
        }
        Ok(())
    }
}

/// The error and its causes in one line.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// True when the `vfio-pci` driver is registered (module loaded or built in).
pub fn vfio_pci_loaded(root: &HostRoot) -> bool {
    Path::new(&root.join("sys/bus/pci/drivers/vfio-pci")).is_dir()
}

/// Gives `/dev/vfio/<group>` to `uid:gid` with mode 0600: only that user (and root) may open it,
/// never wider than the kernel's default.
pub fn give_group_node(root: &HostRoot, group: u32, uid: u32, gid: u32) -> Result<(), HostError> {
    use std::os::unix::fs::PermissionsExt;
    let node = root.join(format!("dev/vfio/{group}"));
    let meta = std::fs::symlink_metadata(&node).map_err(|source| HostError::Read {
        path: node.clone(),
        source,
    })?;
    if meta.file_type().is_symlink() {
        return Err(HostError::BadLink { path: node });
    }
    std::os::unix::fs::lchown(&node, Some(uid), Some(gid)).map_err(|source| HostError::Write {
        path: node.clone(),
        value: format!("owner {uid}:{gid}"),
        source,
    })?;
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        HostError::Write {
            path: node.clone(),
            value: "mode 0600".to_owned(),
            source,
        }
    })
}
