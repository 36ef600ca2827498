//! A VM definition's `[[dpaa2]]` containers: made with restool for the VM (the journal's owner)
//! before its devices are planned, bound and handed to QEMU with them like a `dprc` entry, and
//! taken apart once they are given back.
//!
//! The journal's `dpaa2` records of the VM's owner are its made containers, in the order of its
//! `[[dpaa2]]` entries: a run that finds some made already (an `apply` at boot, a run killed
//! before it gave them back) makes only the rest.

use vfioctl_core::dpaa2::Record;
use vfioctl_core::fslmc::DprcName;
use vfioctl_core::vm::MadeContainer;
use vfioctl_core::{DeviceRef, FslMcName, Owner};

use super::bind::HostState;
use super::dpaa2::{self, CreateRequest, Dpaa2Error};
use super::vm::Finding;
use super::{Host, OpError};
use crate::journal::Journal;
use crate::vms::VmFile;

/// The VM's journal owner.
pub fn owner(vm: &VmFile) -> Owner {
    Owner::Vm(vm.name.to_string())
}

/// The containers made for `owner`, in the order they were made.
pub fn made_for(journal: &Journal, owner: &Owner) -> Vec<FslMcName> {
    journal
        .dpaa2
        .iter()
        .filter(|r| &r.owner == owner)
        .filter_map(|r| r.made.container.clone())
        .collect()
}

/// The `[[dpaa2]]` entries no container has been made for yet.
pub fn unmade<'a>(vm: &'a VmFile, journal: &Journal) -> &'a [MadeContainer] {
    let made = made_for(journal, &owner(vm)).len();
    vm.definition.dpaa2.get(made..).unwrap_or_default()
}

/// The VM as its runs see it: the containers made for it join its `dprc` list, so the plan
/// binds them and the command line hands them to QEMU.
pub fn with_made(vm: &VmFile, made: &[FslMcName]) -> VmFile {
    let mut vm = vm.clone();
    for container in made {
        let dprc = DprcName::new(container.id());
        if !vm.definition.dprc.contains(&dprc) {
            vm.definition.dprc.push(dprc);
        }
    }
    vm
}

fn request(vm: &VmFile, entry: &MadeContainer) -> CreateRequest {
    CreateRequest {
        owner: owner(vm),
        root: entry.root_container.clone(),
        link: entry.link(),
    }
}

/// The restool commands making the containers not made yet would run, as a dry run prints
/// them.
pub fn planned(vm: &VmFile, journal: &Journal) -> Vec<Vec<String>> {
    unmade(vm, journal)
        .iter()
        .flat_map(|entry| dpaa2::create_plan(&request(vm, entry)))
        .collect()
}

/// What stops the `[[dpaa2]]` entries not made yet from being made on this host: a root
/// container or a link object that is not on the fsl-mc bus.
pub fn findings(state: &HostState, vm: &VmFile, journal: &Journal) -> Vec<Finding> {
    let mut findings = Vec::new();
    for entry in unmade(vm, journal) {
        let link = entry.link().map(|l| match l {
            vfioctl_core::dpaa2::Link::Dpmac(n) | vfioctl_core::dpaa2::Link::Dpdmux(n) => n,
        });
        for name in std::iter::once(&entry.root_container).chain(link.as_ref()) {
            if state.fslmc.get(&name.to_string()).is_none() {
                findings.push(Finding {
                    text: format!(
                        "{name}, which a [[dpaa2]] container of {} needs, does not exist (no \
                         /sys/bus/fsl-mc/devices/{name})",
                        vm.name
                    ),
                    hint: format!(
                        "name an existing {} in {} ('ls /sys/bus/fsl-mc/devices')",
                        name.kind(),
                        vm.path.display()
                    ),
                });
            }
        }
    }
    findings
}

/// Makes the containers of `vm` not made yet, for a caller that holds the lock; returns the
/// ones made now. A failure takes apart those this call made (the failing one rolled itself
/// back) before it is returned.
pub fn make(host: &Host, vm: &VmFile) -> Result<Vec<FslMcName>, OpError> {
    let mut journal = Journal::load(host.root())?;
    let mut made = Vec::new();
    for entry in unmade(vm, &journal).to_vec() {
        match dpaa2::create_in(
            host.root(),
            host.restool(),
            &mut journal,
            &request(vm, &entry),
        ) {
            Ok(record) => made.extend(record.made.container),
            Err(e) => {
                unmake_in(host, &mut journal, &made)?;
                return Err(e.into());
            }
        }
    }
    Ok(made)
}

/// Takes apart `containers`, which this run made and did not bind (or bound and gave back),
/// for a caller that holds the lock.
pub fn unmake(host: &Host, containers: &[FslMcName]) -> Result<(), OpError> {
    let mut journal = Journal::load(host.root())?;
    unmake_in(host, &mut journal, containers)
}

fn unmake_in(host: &Host, journal: &mut Journal, containers: &[FslMcName]) -> Result<(), OpError> {
    if containers.is_empty() {
        return Ok(());
    }
    dpaa2::destroy_where(host.root(), host.restool(), journal, |r| {
        r.made
            .container
            .as_ref()
            .is_some_and(|c| containers.contains(c))
    })?;
    Ok(())
}

/// The made containers [`after_restore`] would take apart once `restoring` is given back, as a
/// dry run says it.
pub(crate) fn would_destroy(
    journal: &Journal,
    owner: Option<&Owner>,
    restoring: &[DeviceRef],
) -> Vec<FslMcName> {
    journal
        .dpaa2
        .iter()
        .filter(|r| owner.is_none_or(|o| &r.owner == o))
        .filter_map(|r| r.made.container.clone())
        .filter(|c| {
            let device = DeviceRef::FslMc(c.clone());
            journal.entry(&device).is_none() || restoring.contains(&device)
        })
        .collect()
}

/// After a restore, for a caller holding the lock: takes apart the made containers no longer
/// bound (the journal has no entry for them), of `owner` or, with `None`, of every owner.
pub(crate) fn after_restore(
    host: &Host,
    journal: &mut Journal,
    owner: Option<&Owner>,
) -> Result<Vec<FslMcName>, Dpaa2Error> {
    let bound: Vec<DeviceRef> = journal
        .entries
        .iter()
        .map(|e| e.original.device.clone())
        .collect();
    let pick = |r: &Record| {
        owner.is_none_or(|o| &r.owner == o)
            && r.made
                .container
                .as_ref()
                .is_none_or(|c| !bound.contains(&DeviceRef::FslMc(c.clone())))
    };
    dpaa2::destroy_where(host.root(), host.restool(), journal, pick)
}
