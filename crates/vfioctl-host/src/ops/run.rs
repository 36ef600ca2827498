//! `run`: bind a VM's devices, start its QEMU, pass signals on to it, and give the devices back
//! when it exits; the journal records QEMU's pid while it runs.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex};

use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;

use vfioctl_core::vm::{CommandLineError, DeviceCheck, command_line};
use vfioctl_core::{DeviceRef, Owner};

use super::bind::HostState;
use super::restore::{RestoreRequest, RestoreTargets, restore};
use super::vm::{Finding, Preflight, bind_vm, preflight, user_ids};
use super::{Host, LOCK_WAIT, OpError, vm_dpaa2, vm_sriov};
use crate::executor::Timeouts;
use crate::journal::{Journal, Lock};
use crate::vms::{self, VmFile};

/// The signals `run` passes on to QEMU instead of dying of them.
pub const FORWARDED: [i32; 4] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT];

/// Why `run` could not start or finish a VM.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Drift, a missing device, or a safety rule.
    #[error("refused VM {vm}: {}{}; nothing was changed", .findings[0].text, more(.findings.len()))]
    Refused {
        /// The VM.
        vm: String,
        /// What refused it (never empty).
        findings: Vec<Finding>,
    },
    /// The definition cannot become a command line.
    #[error(transparent)]
    CommandLine(#[from] CommandLineError),
    /// The QEMU binary is not there.
    #[error("the QEMU binary {0} is not installed (or not executable); nothing was changed")]
    NoQemu(String),
    /// Signal handlers could not be installed.
    #[error("cannot handle signals")]
    Signals(#[source] std::io::Error),
    /// QEMU could not be started; the devices were given back (or `gave_back` says why not).
    #[error("cannot start {program}")]
    Start {
        /// The binary.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
        /// Why giving the devices back failed, if it did.
        gave_back: Option<String>,
    },
    /// Waiting for QEMU failed: it may still run, so the devices stay bound.
    #[error("lost track of QEMU (pid {pid})")]
    Lost {
        /// QEMU's pid.
        pid: u32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// QEMU exited, and giving the devices back failed.
    #[error("QEMU exited with status {code}, then giving the devices back failed")]
    GiveBack {
        /// QEMU's exit status.
        code: i32,
        /// What failed.
        #[source]
        source: Box<OpError>,
    },
}

fn more(n: usize) -> String {
    match n {
        1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    }
}

impl RunError {
    /// What the user can do.
    pub fn remedy(&self) -> Option<String> {
        match self {
            Self::Refused { findings, .. } => findings.first().map(|f| f.hint.clone()),
            Self::CommandLine(CommandLineError::NoQemu) => {
                Some("add a [qemu] table with at least machine = \"q35\" or \"virt\"".to_owned())
            }
            Self::CommandLine(CommandLineError::Render(r)) => r.remedy().map(str::to_owned),
            Self::NoQemu(_) => {
                Some("install QEMU, or set [qemu] binary in the definition".to_owned())
            }
            Self::Signals(_) => None,
            Self::Start { gave_back, .. } => Some(match gave_back {
                None => "the devices were given back; check the [qemu] binary".to_owned(),
                Some(why) => format!("giving the devices back failed too: {why}"),
            }),
            Self::Lost { .. } => Some(
                "once QEMU has exited, run 'vfioctl recover' to give the devices back".to_owned(),
            ),
            Self::GiveBack { source, .. } => source
                .remedy()
                .or_else(|| Some("run 'vfioctl recover' once the cause is fixed".to_owned())),
        }
    }
}

/// A VM checked, planned and rendered, ready to be started: the lock is held and the signals
/// are caught from here until [`supervise`] returns.
pub struct Prepared {
    /// The checks and the plan.
    pub preflight: Preflight,
    /// QEMU's command line.
    pub argv: Vec<String>,
    /// The QEMU binary found for `argv[0]`.
    pub program: PathBuf,
    user: Option<(u32, u32)>,
    credentials: Option<super::identity::Credentials>,
    signals: Option<Signals>,
    lock: Option<Lock>,
    name: vfioctl_core::vm::VmName,
    /// The `[[dpaa2]]` containers this run made (they go once given back).
    pub made: Vec<vfioctl_core::FslMcName>,
    /// The restool commands a dry run would run to make them.
    pub restool: Vec<Vec<String>>,
    /// The VF counts and MACs this run set up (they go back once its devices are given back).
    pub vfs_made: vm_sriov::Made,
    /// The SR-IOV changes a dry run would make, in words.
    pub sriov: Vec<String>,
}

/// Refuses a command line that would hand a guest a device it was not meant to have.
pub fn render_command(
    vm: &VmFile,
    state: &HostState,
    pre: &Preflight,
) -> Result<Vec<String>, RunError> {
    let drift: Vec<Finding> = pre
        .checks
        .iter()
        .filter_map(DeviceCheck::drift_message)
        .map(|text| Finding {
            text,
            hint: format!(
                "check 'vfioctl list' and update {} (addresses move with firmware updates and new \
                 cards)",
                vm.path.display()
            ),
        })
        .collect();
    if !drift.is_empty() {
        return Err(RunError::Refused {
            vm: vm.name.to_string(),
            findings: drift,
        });
    }
    Ok(command_line(&vm.name, &vm.definition, &state.pci)?)
}

/// Checks, plans and renders `vm`; unless `dry_run`, first catches the forwarded signals (so a
/// SIGTERM between bind and give-back cannot strand the devices) and takes the lock.
pub fn prepare(host: &Host, vm: &VmFile, dry_run: bool) -> Result<Prepared, OpError> {
    let signals = if dry_run {
        None
    } else {
        Some(Signals::new(FORWARDED).map_err(RunError::Signals)?)
    };
    let lock = if dry_run {
        None
    } else {
        Some(Lock::acquire(host.root(), LOCK_WAIT)?)
    };
    let state = HostState::read(host)?;
    let pre = preflight(host, &state, vm)?;
    if !pre.refusals.is_empty() {
        return Err(RunError::Refused {
            vm: vm.name.to_string(),
            findings: pre.refusals.clone(),
        }
        .into());
    }
    let owner = vm_dpaa2::owner(vm);
    let sriov = pre.sriov.describe();
    let vfs_made = if dry_run || pre.sriov.is_empty() {
        vm_sriov::Made::default()
    } else {
        vm_sriov::make(host, vm, &pre.sriov, Timeouts::default())?
    };
    let mut resolved = vm.clone();
    let undo_vfs = |e: OpError| -> Result<Prepared, OpError> {
        // Nothing was bound: what this run set up goes straight back.
        vm_sriov::unmake(host, &owner, &vfs_made)?;
        Err(e)
    };
    if !vfs_made.is_empty()
        && let Err(e) = crate::vmvf::resolve_all(host.root(), host.vf_links(), &mut resolved)
    {
        return undo_vfs(e.into());
    }
    let vm = &resolved;
    let restool = vm_dpaa2::planned(vm, &Journal::load(host.root())?);
    let made = if dry_run || restool.is_empty() {
        Vec::new()
    } else {
        match vm_dpaa2::make(host, vm) {
            Ok(made) => made,
            Err(e) => return undo_vfs(e),
        }
    };
    let prepared = if made.is_empty() && vfs_made.is_empty() {
        finish_prepare(host, vm, &state, pre)
    } else {
        HostState::read(host)
            .and_then(|state| {
                let pre = preflight(host, &state, vm)?;
                finish_prepare(host, vm, &state, pre)
            })
            .or_else(|e| {
                vm_dpaa2::unmake(host, &made)?;
                undo_vfs(e)
            })
    };
    Ok(Prepared {
        signals,
        lock,
        made,
        restool,
        vfs_made: vfs_made.clone(),
        sriov,
        ..prepared?
    })
}

/// The part of [`prepare`] after the containers were made: the command line and the user.
fn finish_prepare(
    host: &Host,
    vm: &VmFile,
    state: &HostState,
    pre: Preflight,
) -> Result<Prepared, OpError> {
    if !pre.refusals.is_empty() {
        return Err(RunError::Refused {
            vm: vm.name.to_string(),
            findings: pre.refusals.clone(),
        }
        .into());
    }
    let made = vm_dpaa2::made_for(&Journal::load(host.root())?, &vm_dpaa2::owner(vm));
    let argv = render_command(&vm_dpaa2::with_made(vm, &made), state, &pre)?;
    let program = vms::find_program(&argv[0]).ok_or_else(|| RunError::NoQemu(argv[0].clone()))?;
    let user = user_ids(host, &vm.definition)?;
    let credentials = vm
        .definition
        .user
        .as_deref()
        .map(|u| super::identity::credentials(host.root(), u))
        .transpose()?;
    Ok(Prepared {
        preflight: pre,
        argv,
        program,
        user,
        credentials,
        signals: None,
        lock: None,
        name: vm.name.clone(),
        made: Vec::new(),
        restool: Vec::new(),
        vfs_made: vm_sriov::Made::default(),
        sriov: Vec::new(),
    })
}

/// What happened while a VM ran, for the caller to report.
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// These `[[dpaa2]]` containers were made for the run.
    Made(Vec<vfioctl_core::FslMcName>),
    /// The VM's VFs were set up with these changes (VF counts, MACs).
    VfsSetUp(Vec<String>),
    /// The devices were bound.
    Bound(Vec<DeviceRef>),
    /// A signal came before QEMU started; the devices go back without starting it.
    SignalBeforeStart(i32),
    /// QEMU is being started with this command line.
    Starting(Vec<String>),
    /// QEMU exited with this status, after these signals were passed on.
    Exited {
        /// Its status (128 + signal when a signal killed it).
        code: i32,
        /// The signals forwarded to it.
        forwarded: Vec<i32>,
    },
    /// The devices were given back.
    GaveBack(Vec<DeviceRef>),
}

/// How QEMU ended, as a shell reports it: its exit code, or 128 + the signal that killed it.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    }
}

/// Waits for the child and passes every forwarded signal on to it, until it has exited.
///
/// The child is waited for without being reaped first (`waitid(WNOWAIT)`), and only then marked
/// gone, so a signal is never sent to a PID the kernel may have given to another process.
fn wait_forwarding(
    child: &mut Child,
    mut signals: Signals,
) -> std::io::Result<(ExitStatus, Vec<i32>)> {
    use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process, waitid};
    let pid = Pid::from_child(child);
    let exited = Arc::new(Mutex::new(false));
    let handle = signals.handle();
    let forwarder = {
        let exited = Arc::clone(&exited);
        std::thread::spawn(move || {
            let mut forwarded = Vec::new();
            for signal in signals.forever() {
                let gone = exited.lock().map(|g| *g).unwrap_or(true);
                if gone {
                    break;
                }
                if let Some(sig) = Signal::from_named_raw(signal) {
                    let _ = kill_process(pid, sig);
                    forwarded.push(signal);
                }
            }
            forwarded
        })
    };
    loop {
        match waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
            Ok(_) => break,
        }
    }
    if let Ok(mut gone) = exited.lock() {
        *gone = true;
    }
    let status = child.wait()?;
    handle.close();
    let forwarded = forwarder.join().unwrap_or_default();
    Ok((status, forwarded))
}

/// Gives back what the run bound on behalf of its VM, then the VFs it set up.
fn give_back(
    host: &Host,
    owner: &Owner,
    bound: &[DeviceRef],
    vfs: &vm_sriov::Made,
    timeouts: Timeouts,
) -> Result<(), OpError> {
    if !bound.is_empty() {
        let report = restore(
            host,
            &RestoreRequest {
                targets: RestoreTargets::Named(bound.iter().map(ToString::to_string).collect()),
                on_behalf: Some(owner.clone()),
                force: false,
                dry_run: false,
                timeouts,
            },
        )?;
        if let Some(why) = &report.destroy_failed {
            return Err(OpError::Incomplete(why.clone()));
        }
        if let Some(d) = report.devices.iter().find(|d| d.result.is_failure()) {
            return Err(OpError::Incomplete(format!(
                "{}: {}",
                d.device,
                d.result.describe()
            )));
        }
    }
    if vfs.is_empty() {
        return Ok(());
    }
    let _lock = Lock::acquire(host.root(), LOCK_WAIT)?;
    vm_sriov::unmake(host, owner, vfs)
}

/// Records QEMU's pid on the VM's journal entries, so recovery knows who holds them.
fn record_qemu(host: &Host, owner: &Owner, bound: &[DeviceRef], pid: Option<u32>) {
    let Ok(_lock) = Lock::acquire(host.root(), LOCK_WAIT) else {
        return;
    };
    let Ok(mut journal) = Journal::load(host.root()) else {
        return;
    };
    for entry in &mut journal.entries {
        if entry.owner == *owner && bound.contains(&entry.original.device) {
            entry.qemu_pid = pid;
        }
    }
    let _ = journal.save(host.root());
}

/// Binds, starts QEMU, waits (forwarding signals), gives back; returns QEMU's exit status.
pub fn supervise(
    host: &Host,
    mut prepared: Prepared,
    timeouts: Timeouts,
    events: &mut dyn FnMut(RunEvent),
) -> Result<i32, OpError> {
    let plan = &prepared.preflight.plan;
    let owner = Owner::Vm(prepared.name.to_string());
    if !prepared.made.is_empty() {
        events(RunEvent::Made(prepared.made.clone()));
    }
    if !prepared.vfs_made.is_empty() {
        events(RunEvent::VfsSetUp(prepared.sriov.clone()));
    }
    if let Err(e) = bind_vm(host, &prepared.name, plan, prepared.user, timeouts) {
        // The bind was rolled back; the containers made for it go back to the MC, its VFs as
        // the host had them.
        vm_dpaa2::unmake(host, &prepared.made)?;
        vm_sriov::unmake(host, &owner, &prepared.vfs_made)?;
        return Err(e);
    }
    let bound: Vec<DeviceRef> = plan.to_bind().map(|d| d.device.clone()).collect();
    // Other vfioctl commands may run while the VM does; the journal keeps what we bound.
    drop(prepared.lock.take());
    if !bound.is_empty() {
        events(RunEvent::Bound(bound.clone()));
    }
    let Some(mut signals) = prepared.signals.take() else {
        return Ok(0);
    };
    // Asked to stop while binding: give the devices back without starting QEMU.
    if let Some(signal) = signals.pending().next() {
        events(RunEvent::SignalBeforeStart(signal));
        give_back(host, &owner, &bound, &prepared.vfs_made, timeouts)?;
        return Ok(128 + signal);
    }
    events(RunEvent::Starting(prepared.argv.clone()));
    let mut command = Command::new(&prepared.program);
    command.args(&prepared.argv[1..]);
    // After the group nodes were handed to the user (bind_vm): QEMU opens them as that user.
    if let Some(credentials) = &prepared.credentials {
        super::identity::run_as(&mut command, credentials);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(source) => {
            let gave_back = give_back(host, &owner, &bound, &prepared.vfs_made, timeouts)
                .err()
                .map(|e| e.sentence());
            return Err(RunError::Start {
                program: prepared.program.clone(),
                source,
                gave_back,
            }
            .into());
        }
    };
    record_qemu(host, &owner, &bound, Some(child.id()));
    let (status, forwarded) =
        wait_forwarding(&mut child, signals).map_err(|source| RunError::Lost {
            pid: child.id(),
            source,
        })?;
    // The handlers stay installed after the forwarder stops: a further SIGINT or SIGTERM now is
    // ignored, so the devices go back. Only SIGKILL interrupts that, and `recover` finishes it.
    let code = exit_code(status);
    events(RunEvent::Exited { code, forwarded });
    record_qemu(host, &owner, &bound, None);
    give_back(host, &owner, &bound, &prepared.vfs_made, timeouts).map_err(|source| {
        RunError::GiveBack {
            code,
            source: Box::new(source),
        }
    })?;
    if !bound.is_empty() {
        events(RunEvent::GaveBack(bound));
    }
    Ok(code)
}
