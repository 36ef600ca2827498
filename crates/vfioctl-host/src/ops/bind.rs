//! `bind`: PCI functions (whole groups) and DPAA2 containers to their vfio drivers, in one plan
//! and one transaction.

use vfioctl_core::SkippedDevice;
use vfioctl_core::fslmc::FslMcInventory;
use vfioctl_core::ownership::{Holder, claim_refusals};
use vfioctl_core::plan::{
    BindInput, BindOptions, DeviceState, Disposition, HostUses, Plan, RefusalKind, plan_bind,
};
use vfioctl_core::{DeviceRef, FslMcName, GroupId, Inventory, Owner};

use super::{Host, LOCK_WAIT, OpError};
use crate::around::Reach;
use crate::executor::Timeouts;
use crate::journal::{Journal, Lock};
use crate::read::{Depth, read_inventory_at};
use crate::usage::HostUsage;

/// What to bind, and how.
#[derive(Debug, Clone)]
pub struct BindRequest {
    /// What the user named (addresses, IDs, interfaces, `dprc.N`), resolved under the lock.
    pub names: Vec<String>,
    /// `--only`, `--force`.
    pub options: BindOptions,
    /// Plan only.
    pub dry_run: bool,
    /// Who the devices are bound for.
    pub owner: Owner,
    /// The user (uid, gid) that gets `/dev/vfio/<group>`.
    pub user: Option<(u32, u32)>,
    /// How long steps may wait.
    pub timeouts: Timeouts,
}

/// How a bind ended.
#[derive(Debug)]
pub enum BindOutcome {
    /// A dry run: nothing was changed.
    Planned,
    /// Every device is on its vfio driver already.
    NothingToDo,
    /// Bound (and the group nodes handed over).
    Bound,
    /// A safety rule refused it; nothing was changed.
    Refused,
    /// Carrying it out failed; see the error for what was rolled back.
    Failed(OpError),
}

/// The plan and how it ended.
#[derive(Debug)]
pub struct BindReport {
    /// What was (or would be) done.
    pub plan: Plan,
    /// How it ended.
    pub outcome: BindOutcome,
    /// Whether `--force` was given (refusals it overrides did not stop the plan).
    pub forced: bool,
    /// A sentence for each device to bind whose BAR holds the boot framebuffer.
    pub framebuffer: Vec<String>,
}

/// Both buses as they are now.
#[derive(Debug, Clone, Default)]
pub struct HostState {
    /// The PCI functions.
    pub pci: Inventory,
    /// The fsl-mc objects.
    pub fslmc: FslMcInventory,
    /// How to find the disks and interfaces below `pci`: its subtrees when it was read around
    /// a few devices.
    walk: crate::hostuse::Walk,
}

impl HostState {
    /// Reads both buses.
    pub fn read(host: &Host) -> Result<Self, OpError> {
        Ok(Self {
            pci: read_inventory_at(host.root(), Depth::Plan)?,
            fslmc: crate::fslmc::read_fslmc(host.root())?,
            walk: crate::hostuse::Walk::Classes,
        })
    }

    /// Reads what a command about `names` needs: when they are all addresses and containers,
    /// only those functions, their groups and the bridges above them; names that need every
    /// device to resolve (IDs, interfaces, an address that is not there) read everything.
    pub fn read_for(host: &Host, names: &[String]) -> Result<Self, OpError> {
        match crate::around::seeds(host.root(), names) {
            Some(seeds) => Self::around(host, &seeds),
            None => Self::read(host),
        }
    }

    /// [`Self::read_for`] under the lock, with the journal the caller loaded there, as far as
    /// `reach`.
    pub fn read_for_with(
        host: &Host,
        names: &[String],
        journal: &Journal,
        reach: Reach,
    ) -> Result<Self, OpError> {
        match crate::around::seeds(host.root(), names) {
            Some(seeds) => Self::around_with(
                host,
                &seeds,
                reach,
                &crate::owners::stuck_in(host.root(), journal),
            ),
            None => Self::read(host),
        }
    }

    /// Reads `seeds`, their groups and the bridges above them, and the fsl-mc bus.
    pub fn around(host: &Host, seeds: &[vfioctl_core::PciAddress]) -> Result<Self, OpError> {
        Self::around_with(
            host,
            seeds,
            Reach::Plan,
            &crate::owners::stuck_devices(host.root()),
        )
    }

    /// Reads `seeds` as far as `reach` (at [`Depth::Summary`] for [`Reach::Groups`]), `locked`
    /// being the functions whose unbind is stuck, and the fsl-mc bus.
    fn around_with(
        host: &Host,
        seeds: &[vfioctl_core::PciAddress],
        reach: Reach,
        locked: &std::collections::BTreeSet<vfioctl_core::PciAddress>,
    ) -> Result<Self, OpError> {
        let depth = match reach {
            Reach::Plan => Depth::Plan,
            Reach::Groups => Depth::Summary,
        };
        Ok(Self {
            pci: crate::around::read_around_with(host.root(), seeds, depth, reach, locked)?,
            fslmc: crate::fslmc::read_fslmc(host.root())?,
            walk: crate::hostuse::Walk::Subtrees,
        })
    }
}

/// How the host uses its devices on both buses, for the planner's refusals.
pub fn host_uses(host: &Host, state: &HostState) -> Result<HostUses, OpError> {
    let usage = HostUsage::read(host.root())?;
    let mut uses: HostUses = crate::apply::host_uses(host.root(), &state.pci, &usage, state.walk)
        .into_iter()
        .map(|(address, list)| (DeviceRef::Pci(address), list))
        .collect();
    for (name, list) in crate::fslmc::fslmc_host_uses(host.root(), &state.fslmc, &usage) {
        if let Ok(name) = name.parse::<FslMcName>() {
            uses.insert(DeviceRef::FslMc(name), list);
        }
    }
    Ok(uses)
}

/// Plans binding `devices` on the host as it is now.
pub fn plan(
    host: &Host,
    state: &HostState,
    devices: &[DeviceRef],
    options: &BindOptions,
) -> Result<Plan, OpError> {
    let uses = host_uses(host, state)?;
    let loaded = host.loaded_vfio_drivers();
    let mut plan = plan_bind(
        &BindInput {
            pci: &state.pci,
            fslmc: &state.fslmc,
            named: devices,
            host_uses: &uses,
            loaded: &loaded,
        },
        options,
    );
    plan.warnings
        .extend(state.pci.skipped.iter().map(SkippedDevice::warning));
    Ok(plan)
}

/// Adds to `plan` a refusal for each device another owner holds (see
/// [`vfioctl_core::ownership`]), and a warning for each it shares with its holder.
pub fn claim(host: &Host, journal: &Journal, plan: &mut Plan, claimant: &Owner) {
    let held: Vec<(DeviceRef, Holder)> = plan
        .devices
        .iter()
        // A container's objects go with it; its own entry is the one that counts.
        .filter(|d| d.disposition != Disposition::InContainer)
        .map(|d| {
            let state = DeviceState {
                driver: d.current_driver.clone(),
                driver_override: d.current_override.clone(),
            };
            let holder = crate::owners::holder(host.root(), journal, &d.device, Some(&state));
            (d.device.clone(), holder)
        })
        .collect();
    let (refusals, notes) = claim_refusals(claimant, &held);
    plan.refusals.extend(refusals);
    plan.warnings.extend(notes);
}

/// Makes `claimant` the owner of the entries of devices in `plan` whose holder's refusal
/// `--force` overrode (their QEMU is gone).
fn take_over(journal: &mut Journal, plan: &Plan, claimant: &Owner) {
    for refusal in plan
        .refusals
        .iter()
        .filter(|r| r.kind == RefusalKind::Held && r.overridable)
    {
        if let Some(entry) = journal
            .entries
            .iter_mut()
            .find(|e| e.original.device == refusal.device)
        {
            entry.owner = claimant.clone();
            entry.qemu_pid = None;
        }
    }
}

/// Binds what `request` names: one plan under one lock, one journal transaction.
pub fn bind(host: &Host, request: &BindRequest) -> Result<BindReport, OpError> {
    // Plan under the lock: the state the plan is built from must not change before it is applied.
    let _lock = if request.dry_run {
        None
    } else {
        Some(Lock::acquire(host.root(), LOCK_WAIT)?)
    };
    let journal = Journal::load(host.root())?;
    if !request.dry_run {
        let interrupted: Vec<DeviceRef> = journal
            .interrupted()
            .map(|e| e.original.device.clone())
            .collect();
        if !interrupted.is_empty() {
            return Err(crate::transaction::ApplyError::Interrupted(interrupted).into());
        }
    }
    let state = HostState::read_for_with(host, &request.names, &journal, Reach::Plan)?;
    let devices = vfioctl_core::select::select(&state.pci, &state.fslmc, &request.names)?;
    let mut plan = plan(host, &state, &devices, &request.options)?;
    claim(host, &journal, &mut plan, &request.owner);
    let outcome = if !plan.blocking_refusals(request.options.force).is_empty() {
        BindOutcome::Refused
    } else if plan.to_bind().next().is_none() {
        if !request.dry_run && request.options.force {
            let mut journal = journal;
            take_over(&mut journal, &plan, &request.owner);
            journal.save(host.root())?;
        }
        BindOutcome::NothingToDo
    } else if request.dry_run {
        BindOutcome::Planned
    } else {
        match carry_out(host, &plan, request, journal) {
            Ok(()) => BindOutcome::Bound,
            Err(e) => BindOutcome::Failed(e),
        }
    };
    Ok(BindReport {
        framebuffer: framebuffer_warnings(host, &state, &plan),
        plan,
        outcome,
        forced: request.options.force,
    })
}

/// [`crate::boot::facts::framebuffer_warnings`] of the display controllers the plan binds (and
/// pre-2.0 VGA-compatible devices): a boot framebuffer lies in no other device's BAR, and
/// `/proc/iomem` is not read for the rest.
fn framebuffer_warnings(host: &Host, state: &HostState, plan: &Plan) -> Vec<String> {
    let displays = plan.to_bind().filter_map(|d| d.device.pci()).filter(|a| {
        state
            .pci
            .get(a)
            .is_some_and(|d| d.class.is_display() || d.class.is_vga())
    });
    crate::boot::facts::framebuffer_warnings(host.root(), displays)
}

fn carry_out(
    host: &Host,
    plan: &Plan,
    request: &BindRequest,
    mut journal: Journal,
) -> Result<(), OpError> {
    let executor = host.executor(request.timeouts);
    if request.options.force {
        take_over(&mut journal, plan, &request.owner);
    }
    executor.apply(plan, &mut journal, &request.owner)?;
    if let Some((uid, gid)) = request.user {
        give_groups(host, &plan.vfio_groups(), uid, gid)?;
    }
    Ok(())
}

/// Hands `/dev/vfio/<group>` of each group to `uid:gid`, and on a kernel with iommufd the
/// device file of each member (`/dev/vfio/devices/vfioN`) and `/dev/iommu`, so QEMU running as
/// that user can use either backend.
pub fn give_groups(host: &Host, groups: &[GroupId], uid: u32, gid: u32) -> Result<(), OpError> {
    for group in groups {
        crate::apply::give_group_node(host.root(), group.0, uid, gid)?;
    }
    let cdevs = crate::iommufd::group_cdevs(host.root(), groups);
    for cdev in &cdevs {
        crate::apply::give_node(host.root(), &format!("dev/vfio/devices/{cdev}"), uid, gid)?;
    }
    if !cdevs.is_empty() && host.root().join("dev/iommu").exists() {
        crate::apply::give_node(host.root(), "dev/iommu", uid, gid)?;
    }
    Ok(())
}
