//! `vf list`, `vf create`, `vf set`, and giving SR-IOV changes back: the VF count and autoprobe
//! of a PF and the link settings of its VFs, each journaled before it is changed so `restore`
//! and `recover` put it back.

use std::collections::BTreeMap;

use vfioctl_core::plan::Step;
use vfioctl_core::sriov::{
    PfEntry, SriovConfig, SriovError, VfLink, VfLinkChange, create_steps, listing, restore_steps,
};
use vfioctl_core::{DeviceRef, Owner, PciAddress};

use super::bind::{HostState, host_uses};
use super::{Host, LOCK_WAIT, OpError};
use crate::executor::{Executor, StepError, Timeouts, chain};
use crate::journal::{Journal, Lock, SriovRecord, VfLinkRecord, now};
use crate::read::read_attr;
use crate::transaction::{ApplyError, Rollback};

mod giveback;
pub use giveback::{Given, GivenBack, give_back};

/// Why a VF use case could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum VfError {
    /// Reading the host, the journal, the selection.
    #[error(transparent)]
    Op(#[from] OpError),
    /// The PF or the request does not allow it; nothing was changed.
    #[error(transparent)]
    Sriov(#[from] SriovError),
    /// What was named is not a PCI function.
    #[error("{0} is not a PCI function; only PCI functions have VFs")]
    NotPci(String),
    /// A write failed; what was done has been put back (see `rollback`).
    #[error("the change could not be carried out")]
    Step {
        /// The step that failed.
        #[source]
        source: StepError,
        /// How putting it back went.
        rollback: Rollback,
    },
}

impl From<crate::journal::JournalError> for VfError {
    fn from(e: crate::journal::JournalError) -> Self {
        Self::Op(OpError::Journal(e))
    }
}

/// Reads the PF `name` names, with its VFs, groups and the bridges above them.
fn read_pf(host: &Host, name: &str) -> Result<(PciAddress, HostState), VfError> {
    let names = [name.to_owned()];
    let first = HostState::read_for(host, &names)?;
    let selected =
        vfioctl_core::select::select(&first.pci, &first.fslmc, &names).map_err(OpError::from)?;
    let pf = selected
        .iter()
        .find_map(DeviceRef::pci)
        .ok_or_else(|| VfError::NotPci(vfioctl_core::echoed(name)))?;
    let dev = first.pci.get(&pf).ok_or(SriovError::NotSriov(pf))?;
    if dev.sriov_totalvfs.is_none() {
        return Err(SriovError::NotSriov(pf).into());
    }
    let mut seeds = vec![pf];
    seeds.extend(&dev.virtfns);
    Ok((pf, HostState::around(host, &seeds)?))
}

/// `vf list`: every SR-IOV capable function (or the one named), its VFs, who holds them and
/// their link settings.
pub fn list(host: &Host, pf: Option<&str>) -> Result<Vec<PfEntry>, VfError> {
    let (only, state) = match pf {
        Some(name) => {
            let (pf, state) = read_pf(host, name)?;
            (Some(pf), state)
        }
        None => (None, HostState::read(host)?),
    };
    let journal = Journal::load(host.root()).map_err(OpError::from)?;
    let mut links = BTreeMap::new();
    let mut holders = BTreeMap::new();
    let kernel = host.executor(Timeouts::default());
    for pf in state
        .pci
        .devices()
        .iter()
        .filter(|d| d.sriov_totalvfs.is_some() && only.is_none_or(|a| a == d.address))
    {
        if let (Some(interface), false, Some(vf_links)) = (
            pf.net_interfaces.first(),
            pf.virtfns.is_empty(),
            kernel.kernel().vf_links(),
        ) && let Ok(l) = vf_links.links(interface)
        {
            links.insert(pf.address, l);
        }
        for vf in &pf.virtfns {
            let device = DeviceRef::Pci(*vf);
            let st = kernel.device_state(&device).ok();
            let holder = crate::owners::holder(host.root(), &journal, &device, st.as_ref());
            if holder != vfioctl_core::ownership::Holder::Free {
                holders.insert(*vf, holder.describe());
            }
        }
    }
    Ok(listing(&state.pci, only, &links, &holders))
}

/// What `vf create` asks for.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// The PF, as the user named it.
    pub pf: String,
    /// How many VFs.
    pub count: u32,
    /// `sriov_drivers_autoprobe` while they are created (off: no host driver takes them).
    pub autoprobe: bool,
    /// Who the VFs are for (whose `restore` gives the PF back).
    pub owner: Owner,
    /// Plan only.
    pub dry_run: bool,
    /// How long steps may wait.
    pub timeouts: Timeouts,
}

/// What `vf create` did (or would do).
#[derive(Debug, Clone)]
pub struct CreateReport {
    /// The PF.
    pub pf: PciAddress,
    /// The steps, in order (empty: it was so already).
    pub steps: Vec<Step>,
    /// The VFs afterwards, by index (for a dry run: now).
    pub vfs: Vec<PciAddress>,
}

/// The PF's `sriov_numvfs` and `sriov_drivers_autoprobe` now, read from sysfs.
pub(super) fn config_now(executor: &Executor, pf: PciAddress) -> Result<SriovConfig, StepError> {
    let dir = executor.root().pci_device(&pf);
    let number = |attr: &str| -> Result<u32, StepError> {
        Ok(read_attr(&dir.join(attr))?
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0))
    };
    Ok(SriovConfig {
        numvfs: number("sriov_numvfs")?,
        autoprobe: number("sriov_drivers_autoprobe")? != 0,
    })
}

/// Brings the PF to `target` from whatever it is now (re-creating VFs vfioctl re-created).
pub(super) fn put_config_back(
    executor: &Executor,
    journal: &mut Journal,
    pf: PciAddress,
    target: SriovConfig,
    recreated: bool,
) -> Result<(), StepError> {
    let current = config_now(executor, pf)?;
    for step in restore_steps(&DeviceRef::Pci(pf), current, target, recreated) {
        executor.run_step(&step, journal)?;
    }
    Ok(())
}

pub(crate) fn vfs_now(executor: &Executor, pf: PciAddress, numvfs: u32) -> Vec<PciAddress> {
    let dir = executor.root().pci_device(&pf);
    (0..numvfs)
        .filter_map(|i| {
            crate::read::link_name(&dir.join(format!("virtfn{i}")))
                .ok()
                .flatten()?
                .parse()
                .ok()
        })
        .collect()
}

/// `vf create`: the PF's VF count (through 0 when it must change) with autoprobe as asked,
/// journaled first; a failed write puts the PF back as it was.
pub fn create(host: &Host, request: &CreateRequest) -> Result<CreateReport, VfError> {
    let _lock = if request.dry_run {
        None
    } else {
        Some(Lock::acquire(host.root(), LOCK_WAIT)?)
    };
    let mut journal = Journal::load(host.root())?;
    let (pf, state) = read_pf(host, &request.pf)?;
    let uses = host_uses(host, &state)?;
    let steps = create_steps(&state.pci, &uses, pf, request.count, request.autoprobe)?;
    let executor = host.executor(request.timeouts);
    let current = state
        .pci
        .get(&pf)
        .map(|d| d.virtfns.clone())
        .unwrap_or_default();
    if request.dry_run || steps.is_empty() {
        return Ok(CreateReport {
            pf,
            steps,
            vfs: current,
        });
    }
    create_in(&executor, &mut journal, pf, &steps, &request.owner)?;
    let after = config_now(&executor, pf).map_err(OpError::from)?;
    Ok(CreateReport {
        pf,
        steps,
        vfs: vfs_now(&executor, pf, after.numvfs),
    })
}

/// Runs `steps` (from [`create_steps`]) on `pf` for `owner`, for a caller that holds the lock:
/// what puts the PF back is journaled before the first write, and a failed write puts the PF
/// and the journal back as they were.
pub(crate) fn create_in(
    executor: &Executor,
    journal: &mut Journal,
    pf: PciAddress,
    steps: &[Step],
    owner: &Owner,
) -> Result<(), VfError> {
    let interrupted: Vec<DeviceRef> = journal
        .interrupted()
        .map(|e| e.original.device.clone())
        .collect();
    if !interrupted.is_empty() {
        return Err(OpError::Apply(ApplyError::Interrupted(interrupted)).into());
    }
    let before_command = config_now(executor, pf).map_err(OpError::from)?;
    let before = journal.clone();
    if !journal.sriov.iter().any(|r| r.pf == pf) {
        journal.sriov.push(SriovRecord {
            pf,
            original: before_command,
            recreated: false,
            owner: owner.clone(),
            since: now(),
        });
    }
    journal.save(executor.root())?;
    for step in steps {
        let Err(source) = executor.run_step(step, journal) else {
            continue;
        };
        let rollback = match put_config_back(executor, journal, pf, before_command, false) {
            Ok(()) => {
                let helpers = std::mem::take(&mut journal.helpers);
                *journal = before.clone();
                journal.helpers = helpers;
                Rollback::Clean
            }
            Err(e) => Rollback::Incomplete(vec![format!("{pf}: {}", chain(&e))]),
        };
        let _ = journal.save(executor.root());
        return Err(VfError::Step { source, rollback });
    }
    // Re-created VFs start from the driver's default link settings: nothing of ours is left.
    let recreated = steps.iter().any(|s| matches!(s, Step::SetNumVfs { .. }));
    if recreated {
        journal.vf_links.retain(|r| r.pf != pf);
    }
    let after = config_now(executor, pf).map_err(OpError::from)?;
    for r in journal.sriov.iter_mut().filter(|r| r.pf == pf) {
        r.recreated |= recreated;
    }
    // Back at the original count, re-created under the original autoprobe: as the host had it.
    journal
        .sriov
        .retain(|r| !(r.pf == pf && r.original == after));
    journal.save(executor.root())?;
    Ok(())
}

/// What `vf set` asks for.
#[derive(Debug, Clone)]
pub struct SetRequest {
    /// The PF, as the user named it.
    pub pf: String,
    /// The VF's index.
    pub index: u32,
    /// What changes.
    pub change: VfLinkChange,
    /// Who the VF is set up for.
    pub owner: Owner,
    /// Plan only.
    pub dry_run: bool,
}

/// What `vf set` did (or would do).
#[derive(Debug, Clone)]
pub struct SetReport {
    /// The VF.
    pub vf: PciAddress,
    /// The step (a netlink request on the PF's interface).
    pub step: Step,
    /// The VF's settings before.
    pub before: VfLink,
    /// Its settings afterwards (a dry run: as before).
    pub after: VfLink,
}

pub(crate) fn links_of(executor: &Executor, interface: &str) -> Result<Vec<VfLink>, StepError> {
    let fail = |source| StepError::VfLink {
        interface: interface.to_owned(),
        index: 0,
        source,
    };
    let links = executor.kernel().vf_links().ok_or_else(|| {
        fail(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this kernel has no netlink",
        ))
    })?;
    links.links(interface).map_err(fail)
}

/// `vf set`: one VF's link settings through netlink on its PF's interface, with what puts them
/// back journaled first.
pub fn set(host: &Host, request: &SetRequest) -> Result<SetReport, VfError> {
    let _lock = if request.dry_run {
        None
    } else {
        Some(Lock::acquire(host.root(), LOCK_WAIT)?)
    };
    let mut journal = Journal::load(host.root())?;
    let (pf, state) = read_pf(host, &request.pf)?;
    let dev = state.pci.get(&pf).ok_or(SriovError::NotSriov(pf))?;
    let vf = *dev
        .virtfns
        .get(request.index as usize)
        .ok_or(SriovError::NoSuchVf {
            pf,
            index: request.index,
            numvfs: dev.virtfns.len() as u32,
        })?;
    let interface = dev
        .net_interfaces
        .first()
        .cloned()
        .ok_or(SriovError::NoInterface(pf))?;
    let executor = host.executor(Timeouts::default());
    let before = links_of(&executor, &interface)
        .map_err(OpError::from)?
        .get(request.index as usize)
        .cloned()
        .unwrap_or_default();
    let step = Step::SetVfLink {
        device: DeviceRef::Pci(pf),
        interface: interface.clone(),
        index: request.index,
        change: request.change.clone(),
    };
    if request.dry_run || request.change.is_applied(&before) {
        return Ok(SetReport {
            vf,
            step,
            after: before.clone(),
            before,
        });
    }
    set_in(&executor, &mut journal, vf, &step, &before, &request.owner)?;
    let after = links_of(&executor, step_interface(&step))
        .ok()
        .and_then(|l| l.get(request.index as usize).cloned())
        .unwrap_or_default();
    Ok(SetReport {
        vf,
        step,
        before,
        after,
    })
}

/// Runs `step` (a [`Step::SetVfLink`] on VF `vf`) for `owner`, for a caller that holds the
/// lock: what puts back the settings `before` had is journaled first (what the VF had before
/// vfioctl's first change still counts); a refused request changes nothing, so only the
/// journal goes back.
pub(crate) fn set_in(
    executor: &Executor,
    journal: &mut Journal,
    vf: PciAddress,
    step: &Step,
    before: &VfLink,
    owner: &Owner,
) -> Result<(), VfError> {
    let Step::SetVfLink {
        device,
        interface,
        index,
        change,
    } = step
    else {
        return Ok(());
    };
    let Some(pf) = device.pci() else {
        return Ok(());
    };
    let saved = journal.clone();
    let undo = change.undo(before);
    match journal
        .vf_links
        .iter_mut()
        .find(|r| r.pf == pf && r.index == *index)
    {
        // What it had before vfioctl first changed it still counts.
        Some(record) => {
            let old = record.undo.clone();
            record.undo = VfLinkChange {
                mac: old.mac.or(undo.mac),
                vlan: old.vlan.or(undo.vlan),
                trust: old.trust.or(undo.trust),
                spoofchk: old.spoofchk.or(undo.spoofchk),
            };
        }
        None => journal.vf_links.push(VfLinkRecord {
            pf,
            vf,
            interface: interface.clone(),
            index: *index,
            undo,
            owner: owner.clone(),
            since: now(),
        }),
    }
    journal.save(executor.root())?;
    if let Err(source) = executor.run_step(step, journal) {
        // A refused RTM_SETLINK changes nothing: only the journal goes back.
        *journal = saved;
        let _ = journal.save(executor.root());
        return Err(VfError::Step {
            source,
            rollback: Rollback::Clean,
        });
    }
    Ok(())
}

fn step_interface(step: &Step) -> &str {
    match step {
        Step::SetVfLink { interface, .. } => interface,
        _ => "",
    }
}
