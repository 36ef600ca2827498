//! VMs: what stands between a definition and its devices (`preflight`), binding a VM's PCI
//! functions and DPAA2 containers in one transaction, and `apply` of every boot VM.

use std::path::PathBuf;

use serde::Serialize;

use vfioctl_core::fslmc::DprcName;
use vfioctl_core::plan::{BindOptions, Plan};
use vfioctl_core::vm::{
    DeviceCheck, GroupCoverage, VmDefinition, VmName, check_devices, claims, group_coverage,
};
use vfioctl_core::{DeviceRef, DriverName, GroupId, Owner};

use super::bind::{HostState, claim, give_groups, plan};
use super::{Host, LOCK_WAIT, OpError, lookup_user, vm_dpaa2};
use crate::executor::{Timeouts, chain};
use crate::journal::{Journal, Lock};
use crate::vms::{self, VFIO_FSL_MC, VmFile, VmFileError};

/// Something that stops a VM from getting its devices, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What is wrong.
    pub text: String,
    /// What to do.
    pub hint: String,
}

impl Finding {
    fn of(error: &OpError) -> Self {
        Self {
            text: error.sentence(),
            hint: error.remedy().unwrap_or_default(),
        }
    }
}

/// Where a VM's DPAA2 container stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    /// Not on the host.
    Missing,
    /// On the host, not on vfio-fsl-mc yet.
    NotBound,
    /// On vfio-fsl-mc.
    Bound,
}

/// What stands between a VM and its devices, found before anything changes.
#[derive(Debug, Clone)]
pub struct Preflight {
    /// Each listed PCI function: there, bound, drifted, missing.
    pub checks: Vec<DeviceCheck>,
    /// The IOMMU groups the definition's functions are in, and their unlisted members.
    pub coverage: Vec<GroupCoverage>,
    /// One plan for the VM's recognised functions and present containers.
    pub plan: Plan,
    /// Drift, missing devices or containers, safety refusals: `apply` and `run` stop here.
    pub refusals: Vec<Finding>,
    /// The plan's own refusals stand (host disk/network/console, the root container, a group
    /// that is never viable): the VM is refused, not merely unready.
    pub refused_by_plan: bool,
    /// Things the user should know.
    pub warnings: Vec<String>,
    /// Each listed container and where it stands.
    pub containers: Vec<(DprcName, ContainerState, Option<DriverName>)>,
    /// The VFs its `[[sriov]]` tables make and the MACs its `vf` entries set.
    pub sriov: super::vm_sriov::SriovPlan,
}

impl Preflight {
    /// Where container `dprc` stands.
    pub fn container_state(&self, dprc: DprcName) -> ContainerState {
        self.containers
            .iter()
            .find(|(d, _, _)| *d == dprc)
            .map_or(ContainerState::Missing, |(_, s, _)| *s)
    }

    /// How to bind each container that is not on vfio-fsl-mc yet, by vfioctl or by hand.
    pub fn unbound_containers(&self) -> Vec<Finding> {
        self.containers
            .iter()
            .filter(|(_, state, _)| *state == ContainerState::NotBound)
            .map(|(d, _, driver)| {
                let unbind = match driver {
                    Some(driver) => format!("echo {d} > /sys/bus/fsl-mc/drivers/{driver}/unbind; "),
                    None => String::new(),
                };
                Finding {
                    text: format!(
                        "{d} is on {}, not on {VFIO_FSL_MC}",
                        driver.as_ref().map_or("no driver", DriverName::as_str)
                    ),
                    hint: format!(
                        "'vfioctl apply' and 'vfioctl run' bind it (or 'vfioctl bind {d}'); by \
                         hand: {unbind}echo {VFIO_FSL_MC} > /sys/bus/fsl-mc/devices/{d}/driver_override; \
                         echo {d} > /sys/bus/fsl-mc/drivers/{VFIO_FSL_MC}/bind"
                    ),
                }
            })
            .collect()
    }
}

fn drift_findings(vm: &VmFile, checks: &[DeviceCheck]) -> Vec<Finding> {
    checks
        .iter()
        .filter_map(|c| {
            let text = c.drift_message()?;
            let line = c
                .device
                .location
                .map_or(String::new(), |l| format!(":{}", l.line));
            Some(Finding {
                text,
                hint: format!(
                    "a firmware update or a new card moves addresses; check 'vfioctl list' and \
                     update {}{line} (vfioctl never binds a device it does not recognise)",
                    vm.path.display()
                ),
            })
        })
        .collect()
}

/// Checks a VM against the host and plans its bind: PCI functions whose identity matches, and
/// the containers it lists, in one plan with the bind planner's refusals.
pub fn preflight(host: &Host, state: &HostState, vm: &VmFile) -> Result<Preflight, OpError> {
    let journal = Journal::load(host.root())?;
    let owner = Owner::Vm(vm.name.to_string());
    let unmade = vm_dpaa2::findings(state, vm, &journal);
    let vm = &vm_dpaa2::with_made(vm, &vm_dpaa2::made_for(&journal, &owner));
    let def = &vm.definition;
    let checks = check_devices(def, &state.pci);
    let mut refusals = drift_findings(vm, &checks);
    refusals.extend(unmade);
    let sriov = super::vm_sriov::plan(host, vm)?;
    refusals.extend(sriov.findings.iter().cloned());
    let mut warnings = Vec::new();
    let coverage = group_coverage(def, &state.pci);
    for g in coverage.iter().filter(|g| !g.unlisted.is_empty()) {
        warnings.push(format!(
            "IOMMU group {} also holds {}, which {} does not list: it is bound and passed to \
             the guest anyway, since a group goes to one VM whole; list it to make that explicit",
            g.group,
            vfioctl_core::comma_list(&g.unlisted),
            vm.name
        ));
    }
    // Only devices whose identity matches reach the planner: a drifted address is never bound.
    let mut named: Vec<DeviceRef> = checks
        .iter()
        .filter(|c| c.state.identity_ok())
        .map(|c| DeviceRef::Pci(c.device.address))
        .collect();
    let mut containers = Vec::new();
    for &dprc in &def.dprc {
        match state.fslmc.get(&dprc.to_string()) {
            None => {
                refusals.push(Finding {
                    text: format!("{dprc} does not exist (no /sys/bus/fsl-mc/devices/{dprc})"),
                    hint: "create the container with restool (ls-addni, restool dprc create), or \
                           remove it from the definition"
                        .to_owned(),
                });
                containers.push((dprc, ContainerState::Missing, None));
            }
            Some(object) => {
                let driver = vfioctl_core::devref::driver_name(object.driver.as_deref());
                let bound = object.driver.as_deref() == Some(VFIO_FSL_MC);
                let state = if bound {
                    ContainerState::Bound
                } else {
                    ContainerState::NotBound
                };
                containers.push((dprc, state, driver));
                named.push(dprc.into());
            }
        }
    }
    let mut plan = plan(host, state, &named, &BindOptions::default())?;
    claim(host, &journal, &mut plan, &owner);
    let blocking = plan.blocking_refusals(false);
    let refused_by_plan = !blocking.is_empty();
    refusals.extend(blocking.into_iter().map(|r| Finding {
        text: r.text.clone(),
        hint: r.remedy.clone(),
    }));
    warnings.extend(plan.warnings.iter().cloned());
    Ok(Preflight {
        checks,
        coverage,
        plan,
        refusals,
        refused_by_plan,
        warnings,
        containers,
        sriov,
    })
}

/// The uid and gid of the VM's `user`, when it has one.
pub fn user_ids(host: &Host, def: &VmDefinition) -> Result<Option<(u32, u32)>, OpError> {
    def.user
        .as_deref()
        .map(|user| lookup_user(host.root(), user))
        .transpose()
}

/// Binds what the plan binds, both buses in one transaction journaled with the VM as owner, and
/// gives the VM's group nodes to its user. The caller holds the lock.
pub fn bind_vm(
    host: &Host,
    name: &VmName,
    plan: &Plan,
    user: Option<(u32, u32)>,
    timeouts: Timeouts,
) -> Result<(), OpError> {
    if plan.to_bind().next().is_some() {
        let executor = host.executor(timeouts);
        let mut journal = Journal::load(host.root())?;
        executor.apply(plan, &mut journal, &Owner::Vm(name.to_string()))?;
    }
    if let Some((uid, gid)) = user {
        give_groups(host, &plan.vfio_groups(), uid, gid)?;
    }
    Ok(())
}

/// What `apply` is asked to do.
#[derive(Debug, Clone)]
pub struct ApplyRequest {
    /// The definitions directory.
    pub dir: PathBuf,
    /// Plan only.
    pub dry_run: bool,
    /// How long steps may wait.
    pub timeouts: Timeouts,
}

/// How one boot VM fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VmOutcome {
    /// Its devices were bound.
    Bound,
    /// Dry run: they would be bound.
    Planned,
    /// They were bound already.
    AlreadyBound,
    /// Drift, a missing device or a safety rule stopped it; nothing was changed for it.
    Refused,
    /// Binding failed (and was rolled back).
    Failed,
    /// Its file does not parse.
    Invalid,
}

/// One VM of an `apply`.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedVm {
    /// The VM (or the file stem of an invalid file).
    pub name: String,
    /// How it fared.
    pub result: VmOutcome,
    /// The devices bound or to bind.
    pub devices: Vec<DeviceRef>,
    /// Their IOMMU groups.
    pub groups: Vec<GroupId>,
    /// What stopped it.
    pub problems: Vec<Finding>,
    /// What the user should know.
    pub warnings: Vec<String>,
    /// The restool commands a dry run would run to make its `[[dpaa2]]` containers.
    pub restool: Vec<Vec<String>>,
    /// The SR-IOV changes (VF counts, MACs) it made, or a dry run would make.
    pub sriov: Vec<String>,
}

/// What `apply` did, VM by VM.
#[derive(Debug, Clone, Default)]
pub struct ApplyReport {
    /// Each boot VM, and each invalid file.
    pub vms: Vec<AppliedVm>,
}

fn stem(error: &VmFileError) -> String {
    match error {
        VmFileError::Invalid { path, .. } | VmFileError::Read { path, .. } => path
            .file_stem()
            .map_or(String::new(), |s| s.to_string_lossy().into_owned()),
        _ => String::new(),
    }
}

/// Binds the devices of every VM marked `boot = true`, each VM in its own transaction.
pub fn apply(host: &Host, request: &ApplyRequest) -> Result<ApplyReport, OpError> {
    let _lock = if request.dry_run {
        None
    } else {
        Some(Lock::acquire(host.root(), LOCK_WAIT)?)
    };
    let all = vms::list(&request.dir)?;
    let mut report = ApplyReport::default();
    let mut boot: Vec<VmFile> = Vec::new();
    let links = host.vf_links();
    for entry in &all {
        match entry {
            Ok(vm) if vm.definition.boot => {
                // A VF that is not on this host refuses its VM, as a missing device does.
                let mut resolved = vm.clone();
                match crate::vmvf::resolve_all(host.root(), links, &mut resolved) {
                    Ok(()) => boot.push(resolved),
                    Err(e) => report.vms.push(AppliedVm {
                        name: vm.name.to_string(),
                        result: VmOutcome::Refused,
                        devices: Vec::new(),
                        groups: Vec::new(),
                        problems: vec![Finding {
                            text: chain(&e),
                            hint: "'vfioctl vf list' shows the PFs and their VFs; once the VF \
                                   is there, run 'vfioctl apply' again"
                                .to_owned(),
                        }],
                        warnings: Vec::new(),
                        restool: Vec::new(),
                        sriov: Vec::new(),
                    }),
                }
            }
            Ok(_) => {}
            Err(e) => report.vms.push(AppliedVm {
                name: stem(e),
                result: VmOutcome::Invalid,
                devices: Vec::new(),
                groups: Vec::new(),
                problems: vec![Finding {
                    text: chain(e),
                    hint: e.remedy(),
                }],
                warnings: Vec::new(),
                restool: Vec::new(),
                sriov: Vec::new(),
            }),
        }
    }
    // Two boot VMs cannot both have a group: both are refused, since which of them it is meant
    // for is the user's call, not the file names'.
    let state = HostState::read(host)?;
    let pairs: Vec<(VmName, &VmDefinition)> = boot
        .iter()
        .map(|vm| (vm.name.clone(), &vm.definition))
        .collect();
    let conflicts = claims(&pairs, &state.pci);
    for vm in &boot {
        report.vms.push(apply_one(host, request, vm, &conflicts)?);
    }
    Ok(report)
}

/// One boot VM of an `apply`: planned against the host as the VMs before it left it, its
/// `[[dpaa2]]` containers made first (and taken apart again when it is refused or fails).
fn apply_one(
    host: &Host,
    request: &ApplyRequest,
    vm: &VmFile,
    conflicts: &[vfioctl_core::vm::Claim],
) -> Result<AppliedVm, OpError> {
    let state = HostState::read(host)?;
    let mut pre = preflight(host, &state, vm)?;
    let mut problems = pre.refusals.clone();
    for c in conflicts {
        let other = if c.first == vm.name {
            &c.second
        } else if c.second == vm.name {
            &c.first
        } else {
            continue;
        };
        problems.push(Finding {
            text: format!("{} is claimed by boot VM {other} too", c.what),
            hint: "set boot = false on all but one of them".to_owned(),
        });
    }
    let sriov = pre.sriov.describe();
    let mut vfs_made = super::vm_sriov::Made::default();
    let mut make_failed = false;
    let mut resolved = vm.clone();
    if problems.is_empty() && !request.dry_run && !pre.sriov.is_empty() {
        match super::vm_sriov::make(host, vm, &pre.sriov, request.timeouts) {
            Ok(m) => {
                vfs_made = m;
                // The VFs made now are the VM's devices too.
                let again = crate::vmvf::resolve_all(host.root(), host.vf_links(), &mut resolved)
                    .map_err(OpError::from)
                    .and_then(|()| preflight(host, &HostState::read(host)?, &resolved));
                match again {
                    Ok(p) => {
                        pre = p;
                        problems.extend(pre.refusals.iter().cloned());
                    }
                    Err(e) => {
                        make_failed = true;
                        problems.push(Finding::of(&e));
                    }
                }
            }
            Err(e) => {
                make_failed = true;
                problems.push(Finding::of(&e));
            }
        }
    }
    let vm = &resolved;
    let restool = vm_dpaa2::planned(vm, &Journal::load(host.root())?);
    let mut made = Vec::new();
    if problems.is_empty() && !request.dry_run && !restool.is_empty() {
        match vm_dpaa2::make(host, vm) {
            Ok(m) => {
                made = m;
                pre = preflight(host, &HostState::read(host)?, vm)?;
                problems.extend(pre.refusals.iter().cloned());
            }
            Err(e) => {
                make_failed = true;
                problems.push(Finding::of(&e));
            }
        }
    }
    let mut devices: Vec<DeviceRef> = pre.plan.to_bind().map(|d| d.device.clone()).collect();
    let result = if make_failed {
        VmOutcome::Failed
    } else if !problems.is_empty() {
        VmOutcome::Refused
    } else if request.dry_run {
        if devices.is_empty() && restool.is_empty() && sriov.is_empty() {
            VmOutcome::AlreadyBound
        } else {
            VmOutcome::Planned
        }
    } else {
        let bound = user_ids(host, &vm.definition)
            .and_then(|user| bind_vm(host, &vm.name, &pre.plan, user, request.timeouts));
        match bound {
            Ok(()) if devices.is_empty() => VmOutcome::AlreadyBound,
            Ok(()) => VmOutcome::Bound,
            Err(e) => {
                problems.push(Finding::of(&e));
                VmOutcome::Failed
            }
        }
    };
    if matches!(result, VmOutcome::Refused | VmOutcome::Failed) && !made.is_empty() {
        // What this apply made for a VM it could not bind goes back to the MC.
        if let Err(e) = vm_dpaa2::unmake(host, &made) {
            problems.push(Finding::of(&e));
        }
        devices.clear();
    }
    if matches!(result, VmOutcome::Refused | VmOutcome::Failed)
        && let Err(e) = super::vm_sriov::unmake(host, &vm_dpaa2::owner(vm), &vfs_made)
    {
        // What this apply set up for a VM it could not bind goes back as the host had it.
        problems.push(Finding::of(&e));
    }
    Ok(AppliedVm {
        name: vm.name.to_string(),
        result,
        devices,
        groups: pre.plan.vfio_groups(),
        problems,
        warnings: pre.warnings.clone(),
        restool: if request.dry_run { restool } else { Vec::new() },
        sriov: if request.dry_run || (result == VmOutcome::Bound && !vfs_made.is_empty()) {
            sriov
        } else {
            Vec::new()
        },
    })
}
