//! The use cases, as library functions: each takes what the user asked for and options, does one
//! plan, one lock and one journal transaction whatever buses it touches, and returns a typed
//! report or a typed error. Nothing here prints; the CLI renders the reports.

pub mod bind;
pub mod device_plugin;
pub mod dpaa2;
pub mod export;
pub mod hooks;
pub mod identity;
pub mod plugin_config;
pub mod ready;
pub mod restore;
pub mod run;
pub mod vf;
pub mod vm;
pub mod vm_dpaa2;
pub mod vm_sriov;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use vfioctl_core::Bus;
use vfioctl_core::select::SelectError;

use crate::executor::{Executor, StepError, Timeouts, chain};
use crate::journal::JournalError;
use crate::kernel::{Kernel, ModuleError};
use crate::transaction::{ApplyError, Rollback};
use crate::{HostError, HostRoot};

/// How long to wait for another vfioctl holding the lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// The host the use cases act on: a root and the kernel behind it.
pub struct Host {
    executor: Executor,
    restool: Arc<dyn dpaa2::Restool>,
}

impl Host {
    /// A host.
    pub fn new(root: HostRoot, kernel: Arc<dyn Kernel>) -> Self {
        Self {
            executor: Executor::new(root, kernel, Timeouts::default()),
            restool: Arc::new(dpaa2::RestoolBinary::new(None)),
        }
    }

    /// DPAA2 containers are made and taken apart with `restool` (default: `restool` from
    /// `PATH`).
    #[must_use]
    pub fn with_restool(self, restool: Arc<dyn dpaa2::Restool>) -> Self {
        Self { restool, ..self }
    }

    /// The restool that manages the MC behind the root.
    pub fn restool(&self) -> &dyn dpaa2::Restool {
        self.restool.as_ref()
    }

    /// Unbinds run in child processes of `program` (see [`Executor::with_write_helper`]).
    #[must_use]
    pub fn with_write_helper(self, program: PathBuf) -> Self {
        Self {
            executor: self.executor.with_write_helper(program),
            ..self
        }
    }

    /// The root.
    pub fn root(&self) -> &HostRoot {
        self.executor.root()
    }

    /// An executor with these timeouts.
    pub fn executor(&self, timeouts: Timeouts) -> Executor {
        self.executor.clone().with_timeouts(timeouts)
    }

    /// Where VF link settings and permanent MACs are read (netlink, or the simulated kernel's).
    pub fn vf_links(&self) -> Option<&dyn crate::vflinks::VfLinks> {
        self.executor.kernel().vf_links()
    }

    /// The vfio drivers that are registered already.
    pub fn loaded_vfio_drivers(&self) -> Vec<Bus> {
        let mut loaded = Vec::new();
        if crate::apply::vfio_pci_loaded(self.root()) {
            loaded.push(Bus::Pci);
        }
        if crate::fslmc::vfio_fslmc_loaded(self.root()) {
            loaded.push(Bus::FslMc);
        }
        loaded
    }
}

/// What kind of failure an error is: the CLI turns it into an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// An operation failed; what it changed was rolled back.
    Failed,
    /// Bad usage or input.
    Usage,
    /// A safety rule refused it.
    Refused,
    /// It needs privileges vfioctl does not have.
    Privileges,
}

/// Why a use case could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// What was named selects nothing.
    #[error(transparent)]
    Select(#[from] SelectError),
    /// Reading the host failed.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The journal or the lock could not be used; nothing was changed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Applying the plan failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A step outside a transaction failed (handing out a group node, say).
    #[error(transparent)]
    Step(#[from] StepError),
    /// A VM definition cannot be used.
    #[error(transparent)]
    VmFile(#[from] crate::vms::VmFileError),
    /// `run` could not start or finish the VM.
    #[error(transparent)]
    Run(#[from] run::RunError),
    /// A hook could not read what the VM asks for.
    #[error(transparent)]
    Hook(#[from] hooks::HookInputError),
    /// A DPAA2 container could not be made or taken apart.
    #[error(transparent)]
    Dpaa2(#[from] dpaa2::Dpaa2Error),
    /// Some devices could not be given back; the journal still lists them.
    #[error("giving back failed for {0}")]
    Incomplete(String),
    /// A user that does not exist.
    #[error("no user '{user}' in {passwd}")]
    NoUser {
        /// The name or uid given.
        user: String,
        /// The passwd file read.
        passwd: PathBuf,
    },
}

impl OpError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Select(_) | Self::NoUser { .. } => ErrorKind::Usage,
            Self::VmFile(crate::vms::VmFileError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                ErrorKind::Privileges
            }
            Self::VmFile(_) => ErrorKind::Usage,
            Self::Run(run::RunError::Refused { .. }) => ErrorKind::Refused,
            Self::Run(run::RunError::CommandLine(_) | run::RunError::NoQemu(_)) => ErrorKind::Usage,
            Self::Run(run::RunError::GiveBack { source, .. }) => source.kind(),
            Self::Run(_) | Self::Incomplete(_) => ErrorKind::Failed,
            Self::Dpaa2(dpaa2::Dpaa2Error::InUse(_) | dpaa2::Dpaa2Error::NotMade(_)) => {
                ErrorKind::Refused
            }
            Self::Dpaa2(_) => ErrorKind::Failed,
            Self::Hook(_) => ErrorKind::Usage,
            Self::Host(e) => host_kind(e),
            Self::Journal(e) => journal_kind(e),
            Self::Apply(ApplyError::Journal(e)) => journal_kind(e),
            Self::Apply(ApplyError::Step { source, .. }) | Self::Step(source) => {
                if source.is_permission() {
                    ErrorKind::Privileges
                } else {
                    ErrorKind::Failed
                }
            }
            Self::Apply(ApplyError::Interrupted(_)) => ErrorKind::Failed,
        }
    }

    /// What the user can do.
    pub fn remedy(&self) -> Option<String> {
        Some(match self {
            Self::Select(e) => e.remedy().to_owned(),
            Self::Host(e) => return e.remedy(),
            Self::Journal(e) | Self::Apply(ApplyError::Journal(e)) => e.remedy(),
            Self::Apply(ApplyError::Interrupted(_)) => {
                "run 'vfioctl recover' to give those devices back first".to_owned()
            }
            Self::Apply(ApplyError::Step {
                rollback: Rollback::Incomplete(_),
                ..
            }) => "the journal still lists them: run 'vfioctl recover' once the cause is fixed"
                .to_owned(),
            Self::Apply(ApplyError::Step { source, .. }) | Self::Step(source) => step_hint(source),
            Self::NoUser { .. } => "name an existing user (the one that runs QEMU)".to_owned(),
            Self::VmFile(e) => e.remedy(),
            Self::Run(e) => return e.remedy(),
            Self::Hook(e) => return e.remedy().map(str::to_owned),
            Self::Dpaa2(e) => e.remedy(),
            Self::Incomplete(_) => {
                "fix the cause (see 'dmesg') and run 'vfioctl restore --all' again".to_owned()
            }
        })
    }

    /// The error in one sentence, with what happened to the devices.
    pub fn sentence(&self) -> String {
        match self {
            Self::Journal(j) | Self::Apply(ApplyError::Journal(j)) => {
                format!("{}; nothing was changed", chain(j))
            }
            Self::Apply(ApplyError::Interrupted(devices)) => format!(
                "a previous vfioctl run was interrupted while binding {}; nothing was changed",
                vfioctl_core::comma_list(devices)
            ),
            Self::Apply(ApplyError::Step { source, rollback }) => match rollback {
                Rollback::Clean => {
                    format!("{}; every device was put back as it was", chain(source))
                }
                Rollback::Incomplete(failures) => format!(
                    "{}; rolling back failed for {}",
                    chain(source),
                    failures.join("; ")
                ),
            },
            other => chain(other),
        }
    }
}

fn host_kind(e: &HostError) -> ErrorKind {
    match e {
        HostError::Read { source, .. } | HostError::Write { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            ErrorKind::Privileges
        }
        HostError::Write { .. } => ErrorKind::Failed,
        _ => ErrorKind::Usage,
    }
}

fn journal_kind(e: &JournalError) -> ErrorKind {
    match e {
        JournalError::Io { source, .. } | JournalError::Dir { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            ErrorKind::Privileges
        }
        _ => ErrorKind::Failed,
    }
}

fn step_hint(e: &StepError) -> String {
    match e {
        _ if e.is_permission() => {
            "run vfioctl as root (sudo vfioctl ...); every device was put back".to_owned()
        }
        StepError::UnbindTimeout { device, driver, .. } => format!(
            "something still uses {device} through {driver} (a mounted filesystem, a network \
             interface, a display server, a process holding its device node); stop it and retry"
        ),
        StepError::WrongDriver { device, .. } => format!(
            "the kernel did not bind {device} to its vfio driver; check 'dmesg' and 'vfioctl \
             doctor {device}' (a device without an IOMMU group, or a vfio driver that refuses it)"
        ),
        StepError::Gone { .. } => {
            "the device was removed (hot-unplug); run 'vfioctl list' and try again".to_owned()
        }
        StepError::NoGroupNode { .. } => {
            "check that udev/devtmpfs creates /dev/vfio nodes ('vfioctl doctor')".to_owned()
        }
        StepError::Module(m) => match m {
            ModuleError::Blacklisted(name) => format!(
                "remove the 'blacklist {name}' line from /etc/modprobe.d, or load it by hand"
            ),
            ModuleError::NotFound(name) => format!(
                "this kernel has no {name} module: install a kernel built with it \
                 (CONFIG_VFIO_PCI, CONFIG_VFIO_FSL_MC)"
            ),
            ModuleError::Failed { .. } => "see 'dmesg' for why the module failed".to_owned(),
        },
        StepError::Write { .. } => "see 'dmesg' for the kernel's reason".to_owned(),
        StepError::VfLink { .. } => {
            "see 'dmesg' for the PF driver's reason (not every driver takes every setting)"
                .to_owned()
        }
        StepError::Host(h) => h
            .remedy()
            .unwrap_or_else(|| "see 'vfioctl list'".to_owned()),
    }
}

/// Looks a user up in the root's `/etc/passwd` by name or uid: its uid and primary gid.
pub fn lookup_user(root: &HostRoot, user: &str) -> Result<(u32, u32), OpError> {
    let passwd = root.join("etc/passwd");
    let text = std::fs::read_to_string(&passwd).unwrap_or_default();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if let [name, _, uid, gid, ..] = fields.as_slice()
            && (*name == user || *uid == user)
            && let (Ok(uid), Ok(gid)) = (uid.parse(), gid.parse())
        {
            return Ok((uid, gid));
        }
    }
    Err(OpError::NoUser {
        user: user.to_owned(),
        passwd: root.display_path(&passwd),
    })
}
