//! Ownership across actors: who holds a device, whether someone else may claim it, and what a
//! give-back on someone's behalf may do with it.
//!
//! Several actors share one host: boot VMs bound by `apply`, libvirt domains and Proxmox VMs
//! through their hooks, `vfioctl bind` by hand, other tools (`vfio-pci.ids=`, driverctl,
//! `virsh nodedev-detach`) and the QEMU processes that use the devices. The journal entry of a
//! device names the one owner that may give it back; these rules keep every other actor from
//! taking it or giving it back under that owner.

use crate::devref::{DeviceRef, Owner};
use crate::plan::{Refusal, RefusalKind};

/// Who holds a device now, as the journal and the process table tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Nobody: no journal entry, and not on its vfio driver.
    Free,
    /// A journal entry's owner, and the pid of the QEMU using the device when one is alive.
    Owner {
        /// Who bound it.
        owner: Owner,
        /// A live QEMU process holding it.
        qemu: Option<u32>,
    },
    /// On its vfio driver with no journal entry: another tool (`vfio-pci.ids=`, driverctl,
    /// `virsh nodedev-detach`, plain sysfs writes) put it there.
    SomeoneElse,
}

impl Holder {
    /// The holder in words: `libvirt:win11 (running, qemu pid 4121)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Free => "nobody".to_owned(),
            Self::Owner {
                owner,
                qemu: Some(pid),
            } => format!("{owner} (running, qemu pid {pid})"),
            Self::Owner { owner, qemu: None } => format!("{owner} (not running)"),
            Self::SomeoneElse => "someone else (on its vfio driver with no vfioctl journal entry: \
                                  another tool bound it)"
                .to_owned(),
        }
    }
}

/// What a claim on a held device comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The device is free or the claimant's own.
    Own,
    /// The claimant may use it where it is, but it stays its holder's: the claimant does not
    /// give it back later. A manual bind is there to be used; another tool's bind is its own.
    Shared,
    /// Another owner holds it; `overridable` when its QEMU is gone, so `--force` may take it.
    Refused {
        /// `--force` on the command line may take it over.
        overridable: bool,
    },
}

/// Whether `claimant` may use a device `holder` holds.
pub fn claim(claimant: &Owner, holder: &Holder) -> Claim {
    match holder {
        Holder::Free => Claim::Own,
        Holder::Owner { owner, qemu: None } if owner == claimant => Claim::Own,
        // Even its own owner must not bind it again under a running QEMU (a second `run` of a
        // running VM): the first one would lose its devices when the second gives them back.
        Holder::Owner { qemu: Some(_), .. } => Claim::Refused { overridable: false },
        Holder::Owner {
            owner: Owner::Manual,
            ..
        }
        | Holder::SomeoneElse => Claim::Shared,
        Holder::Owner { .. } => Claim::Refused { overridable: true },
    }
}

/// The refusals and notes of `claimant`'s claim on each `(device, holder)`.
pub fn claim_refusals(
    claimant: &Owner,
    held: &[(DeviceRef, Holder)],
) -> (Vec<Refusal>, Vec<String>) {
    let mut refusals = Vec::new();
    let mut notes = Vec::new();
    for (device, holder) in held {
        match claim(claimant, holder) {
            Claim::Own => {}
            Claim::Shared => notes.push(format!(
                "{device} is held by {}: {claimant} uses it where it is and leaves it there \
                 afterwards",
                holder.describe()
            )),
            Claim::Refused { overridable } => {
                let remedy = match holder {
                    Holder::Owner {
                        owner,
                        qemu: Some(pid),
                    } => format!(
                        "stop {owner} first (QEMU pid {pid} uses {device}); --force never takes \
                         a device from a running VM"
                    ),
                    Holder::Owner { owner, .. } => format!(
                        "give it back for {owner} first, or pass --force on the command line to \
                         take it over (hooks never do)"
                    ),
                    Holder::Free | Holder::SomeoneElse => String::new(),
                };
                refusals.push(Refusal {
                    kind: RefusalKind::Held,
                    device: device.clone(),
                    text: format!("{device} is held by {}", holder.describe()),
                    remedy,
                    overridable,
                });
            }
        }
    }
    (refusals, notes)
}

/// What a give-back may do with one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiveBack {
    /// Give it back.
    Restore,
    /// Leave it as it is; the sentence says why.
    Leave(String),
    /// Refuse (a live QEMU holds it); the sentence says who.
    Refuse(String),
}

/// What a give-back on behalf of `on_behalf` (`None`: the user's own explicit request) may do
/// with `device`, held by `holder`. A live QEMU is never given a device's back from under it,
/// unless `force`.
pub fn give_back(
    on_behalf: Option<&Owner>,
    device: &DeviceRef,
    holder: &Holder,
    force: bool,
) -> GiveBack {
    let refuse = |holder: &Holder| {
        GiveBack::Refuse(format!(
            "{device} is held by {}; stop the VM first (or pass --force)",
            holder.describe()
        ))
    };
    match (on_behalf, holder) {
        (Some(me), Holder::Owner { owner, .. }) if owner != me => GiveBack::Leave(format!(
            "{device} is held by {}, not {me}; left as it is",
            holder.describe()
        )),
        (_, Holder::Owner { qemu: Some(_), .. }) if !force => refuse(holder),
        (None, _) | (Some(_), Holder::Owner { .. }) => GiveBack::Restore,
        (Some(_), Holder::SomeoneElse) => GiveBack::Leave(format!(
            "{device} was put on its vfio driver by another tool (no vfioctl journal entry); left \
             as it is"
        )),
        (Some(_), Holder::Free) => GiveBack::Leave(format!(
            "{device} is not on its vfio driver and vfioctl did not bind it; left as it is"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> DeviceRef {
        "0000:01:00.0".parse().unwrap()
    }

    fn held(owner: &str, qemu: Option<u32>) -> Holder {
        Holder::Owner {
            owner: owner.parse().unwrap(),
            qemu,
        }
    }

    #[test]
    fn a_running_holder_is_named_and_never_overridable() {
        let a = "libvirt:a".parse().unwrap();
        let (refusals, _) = claim_refusals(&a, &[(dev(), held("libvirt:win11", Some(4121)))]);
        assert_eq!(
            refusals[0].text,
            "0000:01:00.0 is held by libvirt:win11 (running, qemu pid 4121)"
        );
        assert!(!refusals[0].overridable);
        let (refusals, _) = claim_refusals(&a, &[(dev(), held("vm:ten64", None))]);
        assert!(refusals[0].overridable);
    }

    #[test]
    fn claims_by_each_actor() {
        let b: Owner = "libvirt:b".parse().unwrap();
        assert_eq!(claim(&b, &Holder::Free), Claim::Own);
        assert_eq!(claim(&b, &held("libvirt:b", None)), Claim::Own);
        assert_eq!(claim(&b, &held("manual", None)), Claim::Shared);
        assert_eq!(claim(&b, &Holder::SomeoneElse), Claim::Shared);
        assert_eq!(
            claim(&b, &held("libvirt:b", Some(7))),
            Claim::Refused { overridable: false }
        );
        assert_eq!(
            claim(&b, &held("proxmox:100", None)),
            Claim::Refused { overridable: true }
        );
    }

    #[test]
    fn give_back_on_behalf_touches_only_the_owners_devices() {
        let a: Owner = "libvirt:a".parse().unwrap();
        let d = dev();
        assert_eq!(
            give_back(Some(&a), &d, &held("libvirt:a", None), false),
            GiveBack::Restore
        );
        for other in [
            held("libvirt:b", None),
            held("manual", None),
            Holder::SomeoneElse,
        ] {
            assert!(matches!(
                give_back(Some(&a), &d, &other, false),
                GiveBack::Leave(_)
            ));
        }
        assert_eq!(
            give_back(None, &d, &held("libvirt:b", None), false),
            GiveBack::Restore
        );
        assert!(matches!(
            give_back(None, &d, &held("vm:x", Some(9)), false),
            GiveBack::Refuse(_)
        ));
        assert_eq!(
            give_back(None, &d, &held("vm:x", Some(9)), true),
            GiveBack::Restore
        );
    }
}
