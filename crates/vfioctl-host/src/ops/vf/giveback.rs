//! Giving SR-IOV changes back: VF link settings first, while the VFs exist, then each PF's VF
//! count and autoprobe, each selected by its PF, its VF and its owner.

use std::collections::BTreeSet;

use vfioctl_core::plan::Step;
use vfioctl_core::sriov::{SriovConfig, VfLinkChange, restore_steps};
use vfioctl_core::{DeviceRef, Owner, PciAddress};

use super::{config_now, put_config_back, vfs_now};
use crate::executor::{Executor, chain};
use crate::journal::{Journal, SriovRecord, VfLinkRecord};

/// One SR-IOV change a restore gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Given {
    /// A VF's link settings.
    Link {
        /// The VF.
        vf: PciAddress,
        /// The PF's interface and the VF's index.
        interface: String,
        /// Its index.
        index: u32,
        /// What puts them back.
        undo: VfLinkChange,
    },
    /// A PF's VF count and autoprobe.
    Config {
        /// The PF.
        pf: PciAddress,
        /// What it goes back to.
        to: SriovConfig,
    },
}

/// How giving one change back went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenBack {
    /// The change.
    pub given: Given,
    /// `Ok` with what was (or would be) done, `Err` with why it failed (it stays journaled).
    pub result: Result<String, String>,
}

impl Given {
    /// The change in words.
    pub fn describe(&self) -> String {
        match self {
            Self::Link {
                vf,
                interface,
                index,
                undo,
            } => format!("{vf} ({interface} vf {index}) link: {}", undo.describe()),
            Self::Config { pf, to } => format!(
                "{pf} sriov_numvfs {}, sriov_drivers_autoprobe {}",
                to.numvfs,
                u8::from(to.autoprobe)
            ),
        }
    }
}

/// Gives back the SR-IOV changes `wanted` selects (by the PF, the VF and the owner): VF link
/// settings first, while the VFs exist, then each PF's VF count. What fails stays journaled.
pub fn give_back(
    executor: &Executor,
    journal: &mut Journal,
    wanted: &dyn Fn(PciAddress, Option<PciAddress>, &Owner) -> bool,
    dry_run: bool,
) -> Vec<GivenBack> {
    let mut out = Vec::new();
    let links: Vec<VfLinkRecord> = journal
        .vf_links
        .iter()
        .filter(|r| wanted(r.pf, Some(r.vf), &r.owner))
        .cloned()
        .collect();
    let mut done_links = BTreeSet::new();
    for r in links {
        let given = Given::Link {
            vf: r.vf,
            interface: r.interface.clone(),
            index: r.index,
            undo: r.undo.clone(),
        };
        let still_there = config_now(executor, r.pf)
            .is_ok_and(|c| vfs_now(executor, r.pf, c.numvfs).get(r.index as usize) == Some(&r.vf));
        let result = if !still_there {
            Ok("the VF is gone, and its settings with it".to_owned())
        } else if dry_run {
            Ok(format!("would set {}", r.undo.describe()))
        } else {
            let step = Step::SetVfLink {
                device: DeviceRef::Pci(r.pf),
                interface: r.interface.clone(),
                index: r.index,
                change: r.undo.clone(),
            };
            executor
                .run_step(&step, journal)
                .map(|()| "restored".to_owned())
                .map_err(|e| chain(&e))
        };
        if result.is_ok() {
            done_links.insert((r.pf, r.index));
        }
        out.push(GivenBack { given, result });
    }
    let configs: Vec<SriovRecord> = journal
        .sriov
        .iter()
        .filter(|r| wanted(r.pf, None, &r.owner))
        .cloned()
        .collect();
    let mut done_configs = BTreeSet::new();
    for r in configs {
        let given = Given::Config {
            pf: r.pf,
            to: r.original,
        };
        // A dry run gives the VFs back first too: only a real run can find one still bound.
        let held = config_now(executor, r.pf)
            .map(|c| vfs_now(executor, r.pf, c.numvfs))
            .unwrap_or_default()
            .into_iter()
            .filter(|_| !dry_run)
            .find_map(|vf| {
                journal.entry(&DeviceRef::Pci(vf)).map(|e| {
                    format!(
                        "its VF {vf} is still bound for {}; give it back first",
                        e.owner
                    )
                })
            });
        let result = if let Some(why) = held {
            Err(why)
        } else if dry_run {
            match config_now(executor, r.pf) {
                Ok(now) => {
                    let steps: Vec<String> =
                        restore_steps(&DeviceRef::Pci(r.pf), now, r.original, r.recreated)
                            .iter()
                            .filter_map(Step::describe)
                            .collect();
                    Ok(if steps.is_empty() {
                        "already as it was".to_owned()
                    } else {
                        steps.join("; ")
                    })
                }
                Err(e) => Err(chain(&e)),
            }
        } else {
            put_config_back(executor, journal, r.pf, r.original, r.recreated)
                .map(|()| "restored".to_owned())
                .map_err(|e| chain(&e))
        };
        if result.is_ok() {
            done_configs.insert(r.pf);
        }
        out.push(GivenBack { given, result });
    }
    if !dry_run {
        journal
            .vf_links
            .retain(|r| !done_links.contains(&(r.pf, r.index)) && !done_configs.contains(&r.pf));
        journal.sriov.retain(|r| !done_configs.contains(&r.pf));
    }
    out
}
