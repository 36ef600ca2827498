//! One transaction per command: the journal is written before the first write, every step runs,
//! and on any failure every device the plan touched, on either bus, is put back as the journal
//! recorded it.

use vfioctl_core::plan::{DeviceState, OriginalState, Plan, Step};
use vfioctl_core::{Bus, DeviceRef, Owner};

use crate::executor::{Executor, StepError, chain};
use crate::journal::{EntryState, Journal, JournalEntry, JournalError, now};

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
    #[error("the plan could not be carried out")]
    Step {
        /// The step that failed.
        source: StepError,
        /// How the rollback went.
        rollback: Rollback,
    },
    /// A previous bind was interrupted and must be recovered first.
    #[error(
        "a previous vfioctl run was interrupted while binding {}",
        vfioctl_core::comma_list(.0)
    )]
    Interrupted(Vec<DeviceRef>),
}

impl Executor {
    /// Puts one device back as `original` says, from whatever state it is in now.
    pub fn restore_device(
        &self,
        original: &OriginalState,
        journal: &mut Journal,
    ) -> Result<(), StepError> {
        let current = self.device_state(&original.device)?;
        self.restore_device_from(original, &current, journal)
    }

    /// [`Self::restore_device`] from `current`, the state the caller read under the lock.
    pub fn restore_device_from(
        &self,
        original: &OriginalState,
        current: &DeviceState,
        journal: &mut Journal,
    ) -> Result<(), StepError> {
        let device = &original.device;
        for step in vfioctl_core::plan::restore_steps(device, current, &original.state) {
            let result = self.run_step(&step, journal);
            // Binding a PCI function to its recorded driver fails when that driver no longer
            // matches it (it was bound through a dynamic ID, say); the bus's own choice is the
            // next best thing. fsl-mc has no such fallback: its objects bind only as told.
            if result.is_err()
                && device.bus() == Bus::Pci
                && let Step::BindDriver { .. } = step
            {
                let probe = Step::Probe {
                    device: device.clone(),
                };
                self.run_step(&probe, journal)?;
                continue;
            }
            result?;
        }
        Ok(())
    }

    /// Restores each device, in reverse order; returns what could not be restored.
    pub fn restore_all(&self, originals: &[OriginalState], journal: &mut Journal) -> Rollback {
        let mut failures = Vec::new();
        for original in originals.iter().rev() {
            if let Err(e) = self.restore_device(original, journal) {
                failures.push(format!("{}: {}", original.device, chain(&e)));
            }
        }
        if failures.is_empty() {
            Rollback::Clean
        } else {
            Rollback::Incomplete(failures)
        }
    }

    /// Binds as planned, PCI functions and containers in one transaction: journal first (every
    /// device's original state, with `owner`), then the steps; on failure, rolls all of it back.
    pub fn apply(
        &self,
        plan: &Plan,
        journal: &mut Journal,
        owner: &Owner,
    ) -> Result<(), ApplyError> {
        let interrupted: Vec<DeviceRef> = journal
            .interrupted()
            .map(|e| e.original.device.clone())
            .collect();
        if !interrupted.is_empty() {
            return Err(ApplyError::Interrupted(interrupted));
        }
        let originals: Vec<OriginalState> = plan
            .to_bind()
            .map(|d| match journal.entry(&d.device) {
                // Bound by us before and changed by hand since: what it had before us still
                // counts.
                Some(entry) => entry.original.clone(),
                None => d.original(),
            })
            .collect();
        if originals.is_empty() {
            return Ok(());
        }
        let before = journal.clone();
        journal.remove(
            &originals
                .iter()
                .map(|o| o.device.clone())
                .collect::<Vec<_>>(),
        );
        for original in &originals {
            journal.entries.push(JournalEntry {
                original: original.clone(),
                state: EntryState::Binding,
                since: now(),
                owner: owner.clone(),
                qemu_pid: None,
            });
        }
        for module in plan.modules() {
            for module in self.modules_to_record(module) {
                if !journal.modules_loaded.contains(&module) {
                    journal.modules_loaded.push(module);
                }
            }
        }
        self.run_journaled(&plan.steps, journal, &before, &originals)?;
        for entry in &mut journal.entries {
            if originals.iter().any(|o| o.device == entry.original.device) {
                entry.state = EntryState::Bound;
            }
        }
        journal.save(self.root())?;
        Ok(())
    }

    /// Saves `journal` (changed in memory from `before`), then runs the steps; on a failed step
    /// restores `originals` and, when that is clean, puts the journal (and any module loaded on
    /// the way) back as before. Nothing is written to the kernel unless the journal was saved
    /// first.
    fn run_journaled(
        &self,
        steps: &[Step],
        journal: &mut Journal,
        before: &Journal,
        originals: &[OriginalState],
    ) -> Result<(), ApplyError> {
        if let Err(e) = journal.save(self.root()) {
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
            let Err(source) = self.run_step(step, journal) else {
                continue;
            };
            // A hung unbind still holds the device's lock in the kernel: every write to that
            // device would hang behind it, so leave the journal for `recover` instead.
            if let StepError::UnbindTimeout { device, .. } = &source {
                let rollback = Rollback::Incomplete(vec![format!(
                    "{device}: the unbind has not returned; nothing else was undone"
                )]);
                return Err(ApplyError::Step { source, rollback });
            }
            let rollback = self.restore_all(originals, journal);
            if rollback == Rollback::Clean {
                let helpers = std::mem::take(&mut journal.helpers);
                *journal = before.clone();
                journal.helpers = helpers;
                journal.modules_loaded.extend(newly_loaded);
                self.unload_unused(journal);
            }
            // Clean, the journal is as before (if even this save fails, the entries stay and
            // restore --all redoes a no-op); not, its entries stay for restore, and the helpers
            // that returned are dropped from it.
            let _ = journal.save(self.root());
            return Err(ApplyError::Step { source, rollback });
        }
        Ok(())
    }

    /// Gives a device that vfioctl has no journal entry for back to its bus's default: clear an
    /// override naming the vfio driver, unbind from it, let the bus probe. `state` is the
    /// device's state as the caller read it under the lock.
    pub fn release_to_default(
        &self,
        device: &DeviceRef,
        state: &DeviceState,
        journal: &mut Journal,
    ) -> Result<(), StepError> {
        let vfio = device.bus().vfio_driver();
        let mut steps = Vec::new();
        if state.driver_override.as_ref() == Some(&vfio) {
            steps.push(Step::SetOverride {
                device: device.clone(),
                driver: None,
            });
        }
        if state.driver.as_ref() == Some(&vfio) {
            steps.push(Step::Unbind {
                device: device.clone(),
                driver: vfio,
            });
            steps.push(Step::Probe {
                device: device.clone(),
            });
        }
        for step in &steps {
            self.run_step(step, journal)?;
        }
        Ok(())
    }
}

/// The state a device is in when it is on its bus's vfio driver or will be.
pub fn held_by_vfio(device: &DeviceRef, state: &DeviceState) -> bool {
    let vfio = device.bus().vfio_driver();
    state.driver.as_ref() == Some(&vfio) || state.driver_override.as_ref() == Some(&vfio)
}
