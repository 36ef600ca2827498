//! `restore` and `recover`: every device back to the driver it had before vfioctl, both buses
//! alike, in reverse binding order.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use vfioctl_core::ownership::{GiveBack, give_back};
use vfioctl_core::plan::restore_steps;
use vfioctl_core::{DeviceRef, DriverName, GroupId, Owner};

use super::bind::HostState;
use super::{Host, LOCK_WAIT, OpError};
use crate::executor::{Executor, Timeouts, chain};
use crate::journal::{Journal, JournalEntry, Lock};
use crate::transaction::held_by_vfio;

/// Which devices to give back.
#[derive(Debug, Clone)]
pub enum RestoreTargets {
    /// Everything the journal holds.
    All,
    /// The named devices, and the journaled members of their IOMMU groups (they were bound
    /// together, so they go back together).
    Named(Vec<String>),
    /// Every entry of the owner the restore is on behalf of, whatever its configuration says
    /// now, and the named devices (those it does not own are only reported on).
    Owned(Vec<String>),
}

/// What to restore, and how.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// Which devices.
    pub targets: RestoreTargets,
    /// Whose devices these are (a hook's domain or VM, the VM `run` started): only its own
    /// entries are given back. `None` for the user's own explicit request.
    pub on_behalf: Option<Owner>,
    /// Give back even devices whose QEMU is alive.
    pub force: bool,
    /// Say what would be done, change nothing.
    pub dry_run: bool,
    /// How long steps may wait.
    pub timeouts: Timeouts,
}

/// Where the target driver came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The journal recorded the original driver.
    Journal,
    /// No journal entry: the bus picks its default driver.
    Default,
    /// Nothing to go by, nothing done.
    None,
}

/// What happened to one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreResult {
    /// Back on its original driver.
    Restored,
    /// It already was as the journal recorded it.
    AsItWas,
    /// Dry run: these writes would be made.
    WouldWrite(Vec<String>),
    /// Dry run: it would go to its bus's default driver.
    WouldReleaseToDefault,
    /// No journal entry; its override was cleared and the bus probed it.
    ReleasedToDefault {
        /// Its driver afterwards.
        now: Option<String>,
    },
    /// No journal entry and not on its vfio driver: nothing to do.
    NotOnVfio,
    /// A container vfioctl did not bind: nothing to do.
    NotInJournal,
    /// Someone else holds it; left as it is (the sentence says who).
    Left(String),
    /// A live QEMU holds it; refused (the sentence says which).
    Refused(String),
    /// A write helper is still stuck in the kernel on it: the entry stays until it returns.
    Stuck {
        /// The helper's pid.
        pid: u32,
        /// The attribute it writes.
        path: String,
    },
    /// Its sysfs could not be read.
    Unreadable(String),
    /// Giving it back failed.
    Failed(String),
}

impl RestoreResult {
    /// True when this device was not given back as asked.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Self::Unreadable(_) | Self::Failed(_) | Self::Stuck { .. }
        )
    }

    /// The result in words.
    pub fn describe(&self) -> String {
        match self {
            Self::Restored => "restored".to_owned(),
            Self::AsItWas => "already as it was".to_owned(),
            Self::WouldWrite(writes) => writes.join("; "),
            Self::WouldReleaseToDefault => {
                "would clear driver_override and let the kernel pick its default driver".to_owned()
            }
            Self::ReleasedToDefault { now } => format!(
                "no journal entry: cleared driver_override and reprobed; now on {}",
                now.as_deref().unwrap_or("no driver")
            ),
            Self::NotOnVfio => "not bound to vfio-pci; nothing to do".to_owned(),
            Self::NotInJournal => {
                "not in the journal: vfioctl did not bind it; nothing to do".to_owned()
            }
            Self::Left(why) | Self::Refused(why) => why.clone(),
            Self::Stuck { pid, path } => format!(
                "write helper pid {pid} is still stuck in the kernel writing {path}; the journal \
                 keeps the entry"
            ),
            Self::Unreadable(why) => format!("cannot read it: {why}"),
            Self::Failed(why) => format!("failed: {why}"),
        }
    }
}

/// One device of a restore.
#[derive(Debug, Clone)]
pub struct RestoredDevice {
    /// The device.
    pub device: DeviceRef,
    /// Its driver before the restore.
    pub from_driver: Option<DriverName>,
    /// The driver it goes back to (`None` with [`Source::Default`]: whatever the bus picks).
    pub to_driver: Option<DriverName>,
    /// Where the target came from.
    pub source: Source,
    /// What happened.
    pub result: RestoreResult,
}

/// What a restore did.
#[derive(Debug, Clone, Default)]
pub struct RestoreReport {
    /// Each device, in the order they were handled.
    pub devices: Vec<RestoredDevice>,
    /// The DPAA2 containers made for the owner (`[[dpaa2]]`, `dpaa2 create`) that were taken
    /// apart once given back (a dry run: that would be).
    pub destroyed: Vec<vfioctl_core::FslMcName>,
    /// Why taking one apart failed (what is left stays journaled).
    pub destroy_failed: Option<String>,
    /// SR-IOV changes given back after the devices (VF link settings, then VF counts).
    pub sriov: Vec<super::vf::GivenBack>,
}

impl RestoreReport {
    /// True when some device was not given back.
    pub fn failed(&self) -> bool {
        self.devices.iter().any(|d| d.result.is_failure())
            || self.destroy_failed.is_some()
            || self.sriov.iter().any(|g| g.result.is_err())
    }

    /// True when some device was refused because a live QEMU holds it.
    pub fn refused(&self) -> bool {
        self.devices
            .iter()
            .any(|d| matches!(d.result, RestoreResult::Refused(_)))
    }

    /// The devices left as they were because someone else holds them, each with its sentence.
    pub fn left(&self) -> impl Iterator<Item = &str> {
        self.devices.iter().filter_map(|d| match &d.result {
            RestoreResult::Left(why) => Some(why.as_str()),
            _ => None,
        })
    }
}

/// The devices a restore acts on, in reverse binding order, then the named ones the journal
/// does not know.
fn targets(
    journal: &Journal,
    state: &HostState,
    targets: &RestoreTargets,
    on_behalf: Option<&Owner>,
) -> Result<Vec<DeviceRef>, OpError> {
    let wanted: BTreeSet<DeviceRef> = match targets {
        RestoreTargets::All => journal
            .entries
            .iter()
            .map(|e| e.original.device.clone())
            .collect(),
        RestoreTargets::Owned(names) => {
            // The configuration may name devices that are gone by now: they are only reported
            // on, and the owner's entries go back whatever it says.
            let mut wanted = named(journal, state, names).unwrap_or_default();
            wanted.extend(
                journal
                    .entries
                    .iter()
                    .filter(|e| Some(&e.owner) == on_behalf)
                    .map(|e| e.original.device.clone()),
            );
            wanted
        }
        RestoreTargets::Named(names) => named(journal, state, names)?,
    };
    let mut ordered: Vec<DeviceRef> = journal
        .entries
        .iter()
        .rev()
        .map(|e| e.original.device.clone())
        .filter(|d| wanted.contains(d))
        .collect();
    ordered.extend(wanted.into_iter().filter(|d| journal.entry(d).is_none()));
    Ok(ordered)
}

/// The named devices and the journaled members of their groups.
fn named(
    journal: &Journal,
    state: &HostState,
    names: &[String],
) -> Result<BTreeSet<DeviceRef>, OpError> {
    let mut wanted = BTreeSet::new();
    if names.is_empty() {
        return Ok(wanted);
    }
    for device in vfioctl_core::select::select(&state.pci, &state.fslmc, names)? {
        if let DeviceRef::Pci(address) = &device {
            let group = state
                .pci
                .get(address)
                .and_then(|d| d.iommu_group)
                .map(GroupId);
            wanted.extend(
                journal
                    .entries
                    .iter()
                    .filter(|e| {
                        group.is_some()
                            && e.original.device.pci().is_some()
                            && e.original.iommu_group == group
                    })
                    .map(|e| e.original.device.clone()),
            );
        }
        wanted.insert(device);
    }
    Ok(wanted)
}

fn from_journal(
    executor: &Executor,
    entry: &JournalEntry,
    journal: &mut Journal,
    dry_run: bool,
) -> RestoredDevice {
    let device = entry.original.device.clone();
    let current = executor.device_state(&device);
    let from_driver = current.as_ref().ok().and_then(|s| s.driver.clone());
    let result = match (&current, dry_run) {
        (Err(e), true) => RestoreResult::Unreadable(chain(e)),
        (Ok(now), true) => {
            let writes: Vec<String> = restore_steps(&device, now, &entry.original.state)
                .iter()
                .filter_map(|s| s.describe())
                .collect();
            if writes.is_empty() {
                RestoreResult::AsItWas
            } else {
                RestoreResult::WouldWrite(writes)
            }
        }
        (now, false) => {
            let restored = match now {
                Ok(now) => executor.restore_device_from(&entry.original, now, journal),
                Err(_) => executor.restore_device(&entry.original, journal),
            };
            match restored {
                Ok(()) => RestoreResult::Restored,
                Err(e) => RestoreResult::Failed(chain(&e)),
            }
        }
    };
    RestoredDevice {
        device,
        from_driver,
        to_driver: entry.original.state.driver.clone(),
        source: Source::Journal,
        result,
    }
}

#[expect(
    clippy::needless_pass_by_value,
    reason = "the device moves into the report"
)]
fn without_journal(
    executor: &Executor,
    device: DeviceRef,
    journal: &mut Journal,
    dry_run: bool,
) -> RestoredDevice {
    let current = executor.device_state(&device);
    let from_driver = current.as_ref().ok().and_then(|s| s.driver.clone());
    let done = |source, to_driver, result| RestoredDevice {
        device: device.clone(),
        from_driver: from_driver.clone(),
        to_driver,
        source,
        result,
    };
    if device.fslmc().is_some() {
        return done(Source::None, None, RestoreResult::NotInJournal);
    }
    let state = match current {
        Ok(state) => state,
        Err(_) => {
            return done(
                Source::None,
                None,
                RestoreResult::Unreadable("cannot read the device".to_owned()),
            );
        }
    };
    if !held_by_vfio(&device, &state) {
        return done(Source::None, state.driver.clone(), RestoreResult::NotOnVfio);
    }
    let result = if dry_run {
        RestoreResult::WouldReleaseToDefault
    } else {
        match executor.release_to_default(&device, &state, journal) {
            Ok(()) => RestoreResult::ReleasedToDefault {
                now: executor.current_driver(&device).ok().flatten(),
            },
            Err(e) => RestoreResult::Failed(chain(&e)),
        }
    };
    done(Source::Default, None, result)
}

/// Why a device is not to be given back now (someone else holds it, a live QEMU uses it, a
/// write helper is still stuck on it), or `None` when it is.
fn decide(
    executor: &Executor,
    journal: &Journal,
    device: &DeviceRef,
    request: &RestoreRequest,
) -> Option<RestoreResult> {
    let root = executor.root();
    // A journaled device's holder is its entry's owner, so its sysfs is not read here: while an
    // unbind of it is stuck in the kernel, that unbind holds the device's lock, and the kernel's
    // driver_override_show() waits for the same lock.
    let state = match journal.entry(device) {
        Some(_) => None,
        None => executor.device_state(device).ok(),
    };
    let holder = crate::owners::holder(root, journal, device, state.as_ref());
    match give_back(request.on_behalf.as_ref(), device, &holder, request.force) {
        GiveBack::Leave(why) => return Some(RestoreResult::Left(why)),
        GiveBack::Refuse(why) => return Some(RestoreResult::Refused(why)),
        GiveBack::Restore => {}
    }
    crate::owners::live_helpers(root, journal, device)
        .first()
        .map(|h| RestoreResult::Stuck {
            pid: h.pid,
            path: h.path.clone(),
        })
}

/// Waits up to `wait` for the write helpers of `devices` to return: a device must not be
/// touched while an unbind of it is still in the kernel, or it ends on no driver when the
/// unbind finally returns.
fn await_helpers(root: &crate::HostRoot, journal: &Journal, devices: &[DeviceRef], wait: Duration) {
    let deadline = Instant::now() + wait;
    while devices
        .iter()
        .any(|d| !crate::owners::live_helpers(root, journal, d).is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Gives devices back: from the journal where it knows them, else to the bus's default driver.
pub fn restore(host: &Host, request: &RestoreRequest) -> Result<RestoreReport, OpError> {
    let _lock = if request.dry_run {
        None
    } else {
        Some(Lock::acquire(host.root(), LOCK_WAIT)?)
    };
    let mut journal = Journal::load(host.root())?;
    let state = match &request.targets {
        RestoreTargets::Named(names) | RestoreTargets::Owned(names) if !names.is_empty() => {
            // Naming what to give back needs the named devices and their groups only.
            HostState::read_for_with(host, names, &journal, crate::around::Reach::Groups)?
        }
        // The journal alone says what to give back; each device's state is read as it goes.
        _ => HostState::default(),
    };
    let ordered = targets(
        &journal,
        &state,
        &request.targets,
        request.on_behalf.as_ref(),
    )?;
    let executor = host.executor(request.timeouts);
    if !request.dry_run {
        await_helpers(host.root(), &journal, &ordered, request.timeouts.unbind);
        crate::owners::forget_dead_helpers(host.root(), &mut journal);
    }
    let mut report = RestoreReport::default();
    // Containers made for an owner go once given back: on behalf of that owner, or of
    // everyone by `--all` and `recover`; a container named alone is only given back.
    let owner = match (&request.targets, &request.on_behalf) {
        (_, Some(owner)) => Some(Some(owner)),
        (RestoreTargets::All, None) => Some(None),
        _ => None,
    };
    if request.dry_run
        && let Some(owner) = owner
    {
        report.destroyed = super::vm_dpaa2::would_destroy(&journal, owner, &ordered);
    }
    for device in ordered {
        let handled = match decide(&executor, &journal, &device, request) {
            Some(result) => RestoredDevice {
                // The driver link alone: it never waits for the device's lock.
                from_driver: executor
                    .current_driver(&device)
                    .ok()
                    .flatten()
                    .and_then(|d| d.parse().ok()),
                to_driver: journal
                    .entry(&device)
                    .and_then(|e| e.original.state.driver.clone()),
                source: Source::None,
                device,
                result,
            },
            None => match journal.entry(&device).cloned() {
                Some(entry) => from_journal(&executor, &entry, &mut journal, request.dry_run),
                None => without_journal(&executor, device, &mut journal, request.dry_run),
            },
        };
        report.devices.push(handled);
    }
    let named: BTreeSet<DeviceRef> = report.devices.iter().map(|d| d.device.clone()).collect();
    let refused = report.refused();
    let wanted =
        |pf: vfioctl_core::PciAddress, vf: Option<vfioctl_core::PciAddress>, owner: &Owner| {
            // A refused device means a live VM: its PF's VFs are not taken from under it.
            if refused {
                return false;
            }
            if request.on_behalf.as_ref().is_some_and(|o| o != owner) {
                return false;
            }
            let about = |a: vfioctl_core::PciAddress| named.contains(&DeviceRef::Pci(a));
            match &request.targets {
                RestoreTargets::All => true,
                RestoreTargets::Owned(_) => true,
                RestoreTargets::Named(_) => about(pf) || vf.is_some_and(about),
            }
        };
    if !request.dry_run {
        let restored: Vec<DeviceRef> = report
            .devices
            .iter()
            .filter(|d| d.result == RestoreResult::Restored)
            .map(|d| d.device.clone())
            .collect();
        journal.remove(&restored);
        executor.unload_unused(&mut journal);
        journal.save(host.root())?;
        if let Some(owner) = owner {
            match super::vm_dpaa2::after_restore(host, &mut journal, owner) {
                Ok(gone) => report.destroyed = gone,
                Err(e) => {
                    report.destroy_failed = Some(format!("{}; {}", chain(&e), e.remedy()));
                }
            }
        }
    }
    // After the devices: a VF given back above no longer holds its PF's VF count.
    report.sriov = super::vf::give_back(&executor, &mut journal, &wanted, request.dry_run);
    if !request.dry_run && !report.sriov.is_empty() {
        journal.save(host.root())?;
    }
    Ok(report)
}
