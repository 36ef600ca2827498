//! Carrying out steps against a kernel under a root: writes, unbinds in a helper process, waits.
//!
//! Every step names its device by [`DeviceRef`], so PCI functions and fsl-mc objects go through the
//! same code; the sysfs path of each write comes from the core's one step-to-write mapping.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vfioctl_core::plan::{DeviceState, Step, Write};
use vfioctl_core::{DeviceRef, GroupId, PciAddress};

use crate::forkwrite::ForkedWrite;
use crate::journal::{Journal, WriteHelper, now};
use crate::kernel::{Kernel, ModuleError};
use crate::read::{link_name, parse_driver_override, read_attr};
use crate::{HostError, HostRoot};

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

/// A step that failed.
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
        /// The device.
        device: DeviceRef,
        /// The driver.
        driver: String,
        /// How long we waited.
        timeout: Duration,
        /// The helper process still stuck in the kernel, when there is one.
        helper: Option<u32>,
    },
    /// The expected driver never showed up.
    #[error("{device} is on {found} after probing, not on {expected}")]
    WrongDriver {
        /// The device.
        device: DeviceRef,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// The device disappeared (hot-unplug) while a step waited for it.
    #[error("{device} disappeared")]
    Gone {
        /// The device.
        device: DeviceRef,
    },
    /// `/dev/vfio/<group>` never appeared.
    #[error("/dev/vfio/{group} did not appear within {timeout:?}")]
    NoGroupNode {
        /// The group.
        group: GroupId,
        /// How long we waited.
        timeout: Duration,
    },
    /// A VF's link settings could not be changed through netlink.
    #[error("setting VF {index} of {interface} through netlink failed")]
    VfLink {
        /// The PF's interface.
        interface: String,
        /// The VF's index.
        index: u32,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// A module could not be loaded.
    #[error(transparent)]
    Module(#[from] ModuleError),
    /// The device's sysfs could not be read.
    #[error(transparent)]
    Host(#[from] HostError),
}

impl StepError {
    /// True when the kernel refused the write for lack of privilege.
    pub fn is_permission(&self) -> bool {
        match self {
            Self::Write { source, .. } | Self::VfLink { source, .. } => {
                matches!(source.raw_os_error(), Some(1 | 13))
                    || source.kind() == io::ErrorKind::PermissionDenied
            }
            _ => false,
        }
    }
}

/// Executes steps against a kernel under a root.
#[derive(Clone)]
pub struct Executor {
    root: HostRoot,
    kernel: Arc<dyn Kernel>,
    timeouts: Timeouts,
    write_helper: Option<PathBuf>,
}

/// How a write helper reports a write that failed without an errno.
pub const WRITE_HELPER_OTHER_ERROR: i32 = 255;

/// The exit status a write helper reports a failed write with: its errno, or
/// [`WRITE_HELPER_OTHER_ERROR`] when there is none an exit status can carry. A plain function of
/// integers, so a forked child may call it.
pub const fn write_helper_exit_code(errno: Option<i32>) -> i32 {
    match errno {
        Some(code) if code >= 1 && code < WRITE_HELPER_OTHER_ERROR => code,
        _ => WRITE_HELPER_OTHER_ERROR,
    }
}

/// The write's outcome from a helper's exit code (`None` when a signal ended it); `status` says
/// how it ended, for the error of a helper that could not report an errno.
pub(crate) fn write_helper_outcome(
    code: Option<i32>,
    status: impl FnOnce() -> String,
) -> io::Result<()> {
    match code {
        Some(0) => Ok(()),
        Some(code) if code != WRITE_HELPER_OTHER_ERROR => Err(io::Error::from_raw_os_error(code)),
        _ => Err(io::Error::other(format!(
            "the write helper failed ({})",
            status()
        ))),
    }
}

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
    /// which exits with 0 or the write's errno, when the kernel's writes cannot be forked
    /// ([`Kernel::forks_writes`]). A driver whose `remove()` never returns leaves that child
    /// stuck in the kernel, not vfioctl: vfioctl reports and exits, where a stuck thread of its
    /// own could keep the process from ever exiting.
    #[must_use]
    pub fn with_write_helper(mut self, program: PathBuf) -> Self {
        self.write_helper = Some(program);
        self
    }

    /// The same executor with other timeouts.
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The root.
    pub fn root(&self) -> &HostRoot {
        &self.root
    }

    /// The kernel.
    pub fn kernel(&self) -> &Arc<dyn Kernel> {
        &self.kernel
    }

    fn write(&self, w: &Write) -> Result<(), StepError> {
        self.kernel
            .write_attr(&self.root.join(&w.path), &w.value)
            .map_err(|source| StepError::Write {
                path: w.path.clone(),
                value: w.value.clone(),
                source,
            })
    }

    /// An unbind blocks while the driver has users, so it runs in a helper process (recorded
    /// in the journal while it runs): forked where the kernel allows it, else this program
    /// started again, else, without either, on a thread of its own.
    fn unbind(
        &self,
        device: &DeviceRef,
        driver: &str,
        w: &Write,
        journal: &mut Journal,
    ) -> Result<(), StepError> {
        let (outcome, helper) = if self.kernel.forks_writes() {
            self.write_in_child(None, device, w, journal)
        } else {
            match &self.write_helper {
                Some(program) => self.write_in_child(Some(program), device, w, journal),
                None => (self.write_in_thread(w), None),
            }
        };
        match outcome {
            Some(Ok(())) => Ok(()),
            Some(Err(source)) => Err(StepError::Write {
                path: w.path.clone(),
                value: w.value.clone(),
                source,
            }),
            None => Err(StepError::UnbindTimeout {
                device: device.clone(),
                driver: driver.to_owned(),
                timeout: self.timeouts.unbind,
                helper,
            }),
        }
    }

    /// The write on a thread of our own; `None` when it did not return in time.
    fn write_in_thread(&self, w: &Write) -> Option<io::Result<()>> {
        let (tx, rx) = mpsc::channel();
        let kernel = Arc::clone(&self.kernel);
        let full = self.root.join(&w.path);
        let owned = w.value.clone();
        std::thread::spawn(move || {
            let _ = tx.send(kernel.write_attr(&full, &owned));
        });
        rx.recv_timeout(self.timeouts.unbind).ok()
    }

    /// The write in a helper process, `program` started again or (`None`) a fork of this one;
    /// `None` when it did not return in time (the child is left to finish: it cannot be killed
    /// while the kernel holds it, and the journal keeps its pid).
    fn write_in_child(
        &self,
        program: Option<&Path>,
        device: &DeviceRef,
        w: &Write,
        journal: &mut Journal,
    ) -> (Option<io::Result<()>>, Option<u32>) {
        let child = match program {
            Some(program) => ChildWrite::exec(program, &self.root, w),
            None => ForkedWrite::spawn(&self.root.join(&w.path), &w.value).map(ChildWrite::Forked),
        };
        let mut child = match child {
            Ok(child) => child,
            Err(e) => return (Some(Err(e)), None),
        };
        let pid = child.pid();
        journal.helpers.push(WriteHelper {
            pid,
            device: device.clone(),
            path: w.path.clone(),
            value: w.value.clone(),
            since: now(),
        });
        // Best effort: the write goes ahead either way, and a journal that cannot be saved
        // fails the transaction's next save.
        let _ = journal.save(&self.root);
        let deadline = Instant::now() + self.timeouts.unbind;
        // A child that wakes the pause as it exits is waited for in one pause; otherwise an
        // unbind the driver does not hold returns within a probe's time: look often at first.
        let wakes_on_exit = child.wakes_on_exit();
        let mut pause = if wakes_on_exit {
            self.timeouts.unbind
        } else {
            Duration::from_millis(1)
        };
        let outcome = loop {
            match child.try_wait() {
                Ok(Some(outcome)) => break Some(outcome),
                Ok(None) if Instant::now() < deadline => {
                    child.pause(pause.min(deadline.saturating_duration_since(Instant::now())));
                    if !wakes_on_exit {
                        pause = (pause * 2).min(Duration::from_millis(20));
                    }
                }
                Ok(None) => return (None, Some(pid)),
                Err(e) => break Some(Err(e)),
            }
        };
        // Dropped here and written with the transaction's next save: until then the saved
        // journal names a process that has exited, which every reader takes for gone (see
        // owners::helper_alive), and a save now would cost as much as the rest of the step.
        journal.helpers.retain(|h| h.pid != pid);
        (outcome, Some(pid))
    }

    fn device_dir(&self, device: &DeviceRef) -> PathBuf {
        self.root.join(format!(
            "sys/bus/{}/devices/{device}",
            device.bus().sysfs_name()
        ))
    }

    /// True when the device is on its bus now.
    pub fn exists(&self, device: &DeviceRef) -> bool {
        self.device_dir(device).exists()
    }

    /// A device's driver and `driver_override` now: two reads, whatever the bus.
    pub fn device_state(&self, device: &DeviceRef) -> Result<DeviceState, HostError> {
        let dir = self.device_dir(device);
        if !dir.exists() {
            return Err(HostError::Read {
                path: self.root.display_path(&dir),
                source: io::Error::from_raw_os_error(rustix::io::Errno::NOENT.raw_os_error()),
            });
        }
        Ok(DeviceState {
            driver: vfioctl_core::devref::driver_name(link_name(&dir.join("driver"))?.as_deref()),
            driver_override: read_attr(&dir.join("driver_override"))?
                .as_deref()
                .and_then(parse_driver_override)
                .and_then(|d| d.parse().ok()),
        })
    }

    /// The driver of a device now.
    pub fn current_driver(&self, device: &DeviceRef) -> Result<Option<String>, HostError> {
        link_name(&self.device_dir(device).join("driver"))
    }

    fn await_driver(&self, device: &DeviceRef, expected: Option<&str>) -> Result<(), StepError> {
        let deadline = Instant::now() + self.timeouts.probe;
        // A driver that probes asynchronously is usually bound within a few milliseconds.
        let mut pause = Duration::from_millis(1);
        loop {
            if !self.exists(device) {
                return Err(StepError::Gone {
                    device: device.clone(),
                });
            }
            let found = self.current_driver(device)?;
            if found.as_deref() == expected {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StepError::WrongDriver {
                    device: device.clone(),
                    expected: expected.unwrap_or("no driver").to_owned(),
                    found: found.unwrap_or_else(|| "no driver".to_owned()),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    fn await_group_node(&self, group: GroupId) -> Result<(), StepError> {
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

    /// Runs one step; `journal` records write helpers while they run.
    pub fn run_step(&self, step: &Step, journal: &mut Journal) -> Result<(), StepError> {
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
            Step::Unbind { device, driver } => step.write().map_or(Ok(()), |w| {
                self.unbind(device, driver.as_str(), &w, journal)
            }),
            Step::SetOverride { .. }
            | Step::Probe { .. }
            | Step::BindDriver { .. }
            | Step::SetVfAutoprobe { .. }
            | Step::SetNumVfs { .. } => step.write().map_or(Ok(()), |w| self.write(&w)),
            Step::SetVfLink {
                interface,
                index,
                change,
                ..
            } => {
                let fail = |source| StepError::VfLink {
                    interface: interface.clone(),
                    index: *index,
                    source,
                };
                let links = self.kernel.vf_links().ok_or_else(|| {
                    fail(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "this kernel has no netlink",
                    ))
                })?;
                links.set(interface, *index, change).map_err(fail)
            }
            Step::AwaitDriver { device, driver } => {
                self.await_driver(device, driver.as_ref().map(|d| d.as_str()))
            }
            Step::AwaitGroupNode { group } => self.await_group_node(*group),
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
            let in_use = ["pci", "fsl-mc"].iter().any(|bus| {
                std::fs::read_dir(self.root.join(format!("sys/bus/{bus}/drivers/{driver}")))
                    .map(|entries| {
                        entries.flatten().any(|e| {
                            let name = e.file_name();
                            let name = name.to_string_lossy();
                            name.parse::<PciAddress>().is_ok()
                                || name.parse::<vfioctl_core::FslMcName>().is_ok()
                        })
                    })
                    .unwrap_or(false)
            });
            if in_use {
                return true;
            }
            self.kernel.unload_module(module).is_err()
        });
    }
}

/// A write helper process: this program started again (`__write-attr`), or a fork.
enum ChildWrite {
    Exec(std::process::Child),
    Forked(ForkedWrite),
}

impl ChildWrite {
    /// `<program> --root <root> --quiet __write-attr <path> <value>`, which exits with 0 or the
    /// write's errno.
    fn exec(program: &Path, root: &HostRoot, w: &Write) -> io::Result<Self> {
        std::process::Command::new(program)
            .arg("--root")
            .arg(root.path())
            .arg("--quiet")
            .arg("__write-attr")
            .arg(&w.path)
            .arg(&w.value)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map(Self::Exec)
    }

    fn pid(&self) -> u32 {
        match self {
            Self::Exec(child) => child.id(),
            Self::Forked(child) => child.pid(),
        }
    }

    /// True when [`Self::pause`] ends as the child exits.
    fn wakes_on_exit(&self) -> bool {
        match self {
            Self::Forked(child) => child.wakes_on_exit(),
            Self::Exec(_) => false,
        }
    }

    /// Waits at most `timeout`, less when a forked child exits first.
    fn pause(&self, timeout: Duration) {
        match self {
            Self::Forked(child) => child.pause(timeout),
            Self::Exec(_) => std::thread::sleep(timeout),
        }
    }

    fn try_wait(&mut self) -> io::Result<Option<io::Result<()>>> {
        match self {
            Self::Forked(child) => Ok(child.try_wait()?.map(|status| {
                write_helper_outcome(status.exit_status(), || format!("{status:?}"))
            })),
            Self::Exec(child) => Ok(child
                .try_wait()?
                .map(|status| write_helper_outcome(status.code(), || status.to_string()))),
        }
    }
}

/// The error and its causes in one line ("failed to read X: Permission denied"): vfioctl's one
/// chain printer. Messages never repeat their source, so each cause is said once.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&os_words(cause));
        source = cause.source();
    }
    text
}

/// An I/O error in the operating system's words ("No such file or directory"), without Rust's
/// "(os error 2)" or error-kind names.
fn os_words(error: &(dyn std::error::Error + 'static)) -> String {
    let text = error.to_string();
    match error.downcast_ref::<io::Error>() {
        Some(e) if e.raw_os_error().is_some() => text
            .split(" (os error ")
            .next()
            .unwrap_or_default()
            .to_owned(),
        _ => text,
    }
}
