//! A VM definition's SR-IOV side: the VFs its `[[sriov]]` tables make and the MACs its `vf`
//! entries set, planned against the host before anything changes, carried out for the VM (the
//! journal's owner) before its devices are planned again and bound, and given back when a
//! refusal or failure stops the VM part way, or when its owner's devices are given back.
//!
//! A PF with at least the table's count of VFs is left as it is: lowering or raising a count
//! goes through 0, which removes every VF, so it is only done while no VF is held.

use std::collections::BTreeMap;

use serde::Serialize;

use vfioctl_core::plan::Step;
use vfioctl_core::sriov::{SriovError, VfLink, VfLinkChange, create_steps};
use vfioctl_core::vm::vf::PfRef;
use vfioctl_core::{DeviceRef, Owner, PciAddress};

use super::bind::{HostState, host_uses};
use super::vf::{VfError, create_in, give_back, links_of, set_in, vfs_now};
use super::vm::Finding;
use super::{Host, OpError};
use crate::executor::{Executor, Timeouts, chain};
use crate::journal::Journal;
use crate::transaction::ApplyError;
use crate::vms::VmFile;

/// What a `[[sriov]]` table does to its PF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PfPlan {
    /// The PF.
    pub pf: PciAddress,
    /// Its VF count now.
    pub numvfs: u32,
    /// The count the VM needs it to have.
    pub count: u32,
    /// The writes that bring it there (empty: it has enough VFs).
    pub steps: Vec<Step>,
}

/// A MAC a `vf` entry sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkPlan {
    /// The PF.
    pub pf: PciAddress,
    /// The VF's index.
    pub index: u32,
    /// The VF, when it exists now and is not re-created.
    pub vf: Option<PciAddress>,
    /// The netlink request on the PF's interface.
    pub step: Step,
}

/// What a VM's `apply` or `run` changes on its PFs before binding, and what stops it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SriovPlan {
    /// Each `[[sriov]]` table's PF.
    pub pfs: Vec<PfPlan>,
    /// Each MAC to set, after the VFs exist.
    pub links: Vec<LinkPlan>,
    /// Why it cannot be done (nothing is changed then).
    #[serde(skip)]
    pub findings: Vec<Finding>,
}

impl SriovPlan {
    /// True when nothing is to change.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty() && self.pfs.iter().all(|p| p.steps.is_empty())
    }

    /// Every change, as a dry run prints it: the sysfs writes, then the netlink requests.
    pub fn describe(&self) -> Vec<String> {
        self.pfs
            .iter()
            .flat_map(|p| &p.steps)
            .chain(self.links.iter().map(|l| &l.step))
            .filter_map(Step::describe)
            .collect()
    }
}

/// The PFs a plan read, with the host around each (its VFs, their groups and uses).
struct Pfs<'a> {
    host: &'a Host,
    read: BTreeMap<PciAddress, HostState>,
}

impl Pfs<'_> {
    fn get(&mut self, pf: PciAddress) -> Result<&HostState, OpError> {
        if !self.read.contains_key(&pf) {
            let mut seeds = vec![pf];
            let dir = self.host.root().pci_device(&pf);
            seeds.extend((0..).map_while(|i| {
                crate::read::link_name(&dir.join(format!("virtfn{i}")))
                    .ok()
                    .flatten()?
                    .parse::<PciAddress>()
                    .ok()
            }));
            let state = HostState::around(self.host, &seeds)?;
            self.read.insert(pf, state);
        }
        Ok(&self.read[&pf])
    }
}

fn finding(error: &SriovError, vm: &VmFile) -> Finding {
    Finding {
        text: error.to_string(),
        hint: format!("{}, or change {}", error.remedy(), vm.path.display()),
    }
}

/// The refusal of a count change while VFs are held, with whom the journal has them bound for
/// and how to give them back.
fn held_finding(error: &SriovError, vm: &VmFile, journal: &Journal, pf: &HostState) -> Finding {
    let mut found = finding(error, vm);
    let owners: Vec<String> = pf
        .pci
        .devices()
        .iter()
        .filter(|d| d.physfn.is_some())
        .filter_map(|d| {
            let entry = journal.entry(&DeviceRef::Pci(d.address))?;
            let how = match &entry.owner {
                Owner::Vm(name) => format!("vfioctl restore --vm {name}"),
                _ => format!("vfioctl restore {}", d.address),
            };
            Some(format!(
                "{} is bound for {} ('{how}')",
                d.address, entry.owner
            ))
        })
        .collect();
    if !owners.is_empty() {
        found.hint = format!(
            "{}: give it back first, or change {}",
            owners.join("; "),
            vm.path.display()
        );
    }
    found
}

/// Plans the VFs and MACs of `vm` against the host now (its PFs already resolved to addresses
/// where the host has them), with what refuses them.
pub fn plan(host: &Host, vm: &VmFile) -> Result<SriovPlan, OpError> {
    let def = &vm.definition;
    let mut out = SriovPlan::default();
    if def.sriov.is_empty() && def.vfs.iter().all(|v| v.mac.is_none()) {
        return Ok(out);
    }
    let mut pfs = Pfs {
        host,
        read: BTreeMap::new(),
    };
    let journal = Journal::load(host.root())?;
    // A PF refused whole gets no MAC plan: its refusal says it all.
    let mut refused = Vec::new();
    for table in &def.sriov {
        let pf = match table.pf {
            PfRef::Address(pf) => pf,
            PfRef::Mac(mac) => {
                out.findings.push(Finding {
                    text: format!(
                        "[[sriov]] pf = \"{mac}\": no SR-IOV PF on this host has an interface \
                         whose permanent MAC is {mac}"
                    ),
                    hint: format!(
                        "'vfioctl vf list' shows the PFs and their interfaces ('ip link' shows a \
                     permanent MAC as permaddr); fix {}",
                        vm.path.display()
                    ),
                });
                continue;
            }
        };
        if !host.root().pci_device(&pf).exists() {
            refused.push(pf);
            out.findings.push(Finding {
                text: format!("[[sriov]] {pf}: this host has no PCI function {pf}"),
                hint: format!(
                    "'vfioctl vf list' shows the SR-IOV PFs there are (a firmware update or a \
                     new card moves addresses); fix {}",
                    vm.path.display()
                ),
            });
            continue;
        }
        let state = pfs.get(pf)?;
        let count = table.count(&def.vfs);
        let numvfs = state.pci.get(&pf).and_then(|d| d.sriov_numvfs).unwrap_or(0);
        let at_least = state
            .pci
            .get(&pf)
            .is_some_and(|d| d.sriov_totalvfs.is_some_and(|t| count <= t) && numvfs >= count);
        let steps = if at_least {
            Ok(Vec::new())
        } else {
            let uses = host_uses(host, state)?;
            create_steps(&state.pci, &uses, pf, count, false)
        };
        match steps {
            Ok(steps) => out.pfs.push(PfPlan {
                pf,
                numvfs,
                count,
                steps,
            }),
            Err(e) => {
                refused.push(pf);
                out.findings.push(match e {
                    SriovError::VfsInUse(_) => held_finding(&e, vm, &journal, state),
                    _ => finding(&e, vm),
                });
            }
        }
    }
    for vf in def.vfs.iter().filter(|v| v.mac.is_some()) {
        let (PfRef::Address(pf), Some(mac)) = (vf.pf, vf.mac) else {
            continue;
        };
        if refused.contains(&pf) {
            continue;
        }
        let state = pfs.get(pf)?;
        let Some(dev) = state.pci.get(&pf).filter(|d| d.sriov_totalvfs.is_some()) else {
            continue;
        };
        let Some(interface) = dev.net_interfaces.first().cloned() else {
            out.findings.push(finding(&SriovError::NoInterface(pf), vm));
            continue;
        };
        let recreated = out.pfs.iter().any(|p| p.pf == pf && !p.steps.is_empty());
        let vf_now = dev
            .virtfns
            .get(vf.index as usize)
            .copied()
            .filter(|_| !recreated);
        let change = VfLinkChange {
            mac: Some(mac),
            ..VfLinkChange::default()
        };
        if vf_now.is_some() {
            let executor = host.executor(Timeouts::default());
            let now = links_of(&executor, &interface)
                .ok()
                .and_then(|l| l.get(vf.index as usize).cloned())
                .unwrap_or_default();
            if change.is_applied(&now) {
                continue;
            }
        }
        out.links.push(LinkPlan {
            pf,
            index: vf.index,
            vf: vf_now,
            step: Step::SetVfLink {
                device: DeviceRef::Pci(pf),
                interface,
                index: vf.index,
                change,
            },
        });
    }
    Ok(out)
}

/// What [`make`] changed, for [`unmake`] to give back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Made {
    /// PFs whose VF count it changed.
    pub pfs: Vec<PciAddress>,
    /// VFs whose MAC it set.
    pub links: Vec<PciAddress>,
}

impl Made {
    /// True when nothing was changed.
    pub fn is_empty(&self) -> bool {
        self.pfs.is_empty() && self.links.is_empty()
    }
}

fn op_error(e: VfError) -> OpError {
    match e {
        VfError::Op(e) => e,
        VfError::Step { source, rollback } => ApplyError::Step { source, rollback }.into(),
        // create_in and set_in fail only as above; the rest is said as it is.
        other => OpError::Incomplete(chain(&other)),
    }
}

/// Carries `plan` out for `vm`, for a caller that holds the lock: each PF's count, then each
/// MAC, every change journaled (owner: the VM) before it is made. A failure gives back what this
/// call changed before it is returned.
pub fn make(
    host: &Host,
    vm: &VmFile,
    plan: &SriovPlan,
    timeouts: Timeouts,
) -> Result<Made, OpError> {
    let executor = host.executor(timeouts);
    let mut journal = Journal::load(host.root())?;
    let owner = Owner::Vm(vm.name.to_string());
    let mut made = Made::default();
    let result = make_in(&executor, &mut journal, &owner, plan, &mut made);
    if let Err(e) = result {
        give_back_in(&executor, &mut journal, &owner, &made)?;
        return Err(e);
    }
    Ok(made)
}

fn make_in(
    executor: &Executor,
    journal: &mut Journal,
    owner: &Owner,
    plan: &SriovPlan,
    made: &mut Made,
) -> Result<(), OpError> {
    for p in plan.pfs.iter().filter(|p| !p.steps.is_empty()) {
        create_in(executor, journal, p.pf, &p.steps, owner).map_err(op_error)?;
        made.pfs.push(p.pf);
    }
    for l in &plan.links {
        let Step::SetVfLink { interface, .. } = &l.step else {
            continue;
        };
        let link = executor
            .root()
            .pci_device(&l.pf)
            .join(format!("virtfn{}", l.index));
        let vf = vfs_now(executor, l.pf, l.index + 1)
            .get(l.index as usize)
            .copied()
            .ok_or_else(|| crate::HostError::Read {
                path: executor.root().display_path(&link),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the PF's driver did not make the VF",
                ),
            })?;
        let before: VfLink = links_of(executor, interface)?
            .get(l.index as usize)
            .cloned()
            .unwrap_or_default();
        set_in(executor, journal, vf, &l.step, &before, owner).map_err(op_error)?;
        made.links.push(vf);
    }
    Ok(())
}

/// Gives back what [`make`] changed for `owner` (its MACs, then its PFs' counts), for a caller
/// that holds the lock, once nothing it made is bound.
pub fn unmake(host: &Host, owner: &Owner, made: &Made) -> Result<(), OpError> {
    if made.is_empty() {
        return Ok(());
    }
    let executor = host.executor(Timeouts::default());
    let mut journal = Journal::load(host.root())?;
    give_back_in(&executor, &mut journal, owner, made)
}

fn give_back_in(
    executor: &Executor,
    journal: &mut Journal,
    owner: &Owner,
    made: &Made,
) -> Result<(), OpError> {
    let wanted = |pf: PciAddress, vf: Option<PciAddress>, by: &Owner| {
        by == owner
            && match vf {
                Some(vf) => made.links.contains(&vf) || made.pfs.contains(&pf),
                None => made.pfs.contains(&pf),
            }
    };
    let given = give_back(executor, journal, &wanted, false);
    journal.save(executor.root())?;
    match given.iter().find_map(|g| g.result.as_ref().err()) {
        None => Ok(()),
        Some(why) => Err(OpError::Incomplete(why.clone())),
    }
}

/// Where one `vf` entry of a VM stands on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VfStatus {
    /// Its PF's address (its MAC as written, when the host has no PF with that permanent MAC).
    pub pf: String,
    /// Its index.
    pub index: u32,
    /// The VF, when it exists.
    pub address: Option<PciAddress>,
    /// Its driver.
    pub driver: Option<String>,
    /// The MAC the definition gives it.
    pub mac: Option<vfioctl_core::sriov::MacAddress>,
    /// The MAC its PF gives it now (netlink), when the PF has an interface.
    pub link_mac: Option<vfioctl_core::sriov::MacAddress>,
    /// `bound` (on vfio-pci), `not_bound`, or `not_made` (a `[[sriov]]` table makes it).
    pub state: &'static str,
}

/// Each `vf` entry of `vm` (its PFs resolved) as the host has it now.
pub fn status(host: &Host, vm: &VmFile) -> Vec<VfStatus> {
    let executor = host.executor(Timeouts::default());
    vm.definition
        .vfs
        .iter()
        .map(|vf| {
            let pf = match vf.pf {
                PfRef::Address(a) => Some(a),
                PfRef::Mac(_) => None,
            };
            let address = pf.and_then(|pf| {
                vfs_now(&executor, pf, vf.index + 1)
                    .get(vf.index as usize)
                    .copied()
            });
            let driver = address.and_then(|a| {
                crate::read::link_name(&host.root().pci_device(&a).join("driver"))
                    .ok()
                    .flatten()
            });
            let interface = pf.and_then(|pf| {
                std::fs::read_dir(host.root().pci_device(&pf).join("net"))
                    .ok()?
                    .flatten()
                    .find_map(|e| e.file_name().into_string().ok())
            });
            let link_mac = interface.and_then(|i| {
                links_of(&executor, &i)
                    .ok()?
                    .get(vf.index as usize)
                    .map(|l| l.mac)
            });
            let state = match (address, driver.as_deref()) {
                (None, _) => "not_made",
                (Some(_), Some(vfioctl_core::plan::VFIO_PCI)) => "bound",
                (Some(_), _) => "not_bound",
            };
            VfStatus {
                pf: match vf.pf {
                    PfRef::Address(a) => a.to_string(),
                    PfRef::Mac(m) => m.to_string(),
                },
                index: vf.index,
                address,
                driver,
                mac: vf.mac,
                link_mac,
                state,
            }
        })
        .collect()
}
