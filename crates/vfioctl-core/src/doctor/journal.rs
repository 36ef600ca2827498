//! vfioctl's own journal: binds that never finished, write helpers still stuck in the kernel (or
//! returned with nobody to finish their restore), and entries whose owner is gone.
//!
//! The host layer reads the journal, `/proc` and the owners' definition files (the paths
//! [`owner_definitions`] names) into [`JournalFacts`]; the checks here decide.

use crate::devref::{DeviceRef, DriverName, Owner};

use super::ctx::Ctx;
use super::finding::{Finding, Severity};

/// The journal's path, as on `/`.
const JOURNAL: &str = "/run/vfioctl/journal.json";

/// What the journal holds, and what the host shows about each of its records now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalFacts {
    /// Every entry, in the journal's order.
    pub entries: Vec<EntryFacts>,
    /// Every write helper the journal lists.
    pub helpers: Vec<HelperFacts>,
    /// Another vfioctl holds the lock (`/run/vfioctl/lock`) now, so entries and helpers may be in
    /// flight; `None` when that could not be told.
    pub busy: Option<bool>,
}

/// One journal entry, with the state of its device and of its owner now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFacts {
    /// The device.
    pub device: DeviceRef,
    /// Who it was bound for.
    pub owner: Owner,
    /// The bind was started and never finished (state `binding`).
    pub interrupted: bool,
    /// The driver it goes back to.
    pub original_driver: Option<DriverName>,
    /// Its driver now (the `driver` link alone); `None` when the device is gone from its bus.
    pub driver_now: Option<Option<String>>,
    /// Its `driver_override` now; left unread (`None`) while a helper of the device is alive,
    /// because the kernel's `driver_override_show()` waits for the lock the stuck unbind holds.
    pub override_now: Option<String>,
    /// The QEMU pid `vfioctl run` recorded.
    pub qemu_recorded: Option<u32>,
    /// A live QEMU holding it: the recorded pid, or the owner's manager's pid file.
    pub qemu_alive: Option<u32>,
    /// Those of [`owner_definitions`]`(owner)` that exist.
    pub definitions_present: Vec<String>,
}

/// One write helper (a fork named `vfioctl-unbind`, or `vfioctl __write-attr`) the journal lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperFacts {
    /// Its pid.
    pub pid: u32,
    /// The device it writes for.
    pub device: DeviceRef,
    /// The attribute, as on `/`.
    pub path: String,
    /// The process is still vfioctl's helper writing that attribute.
    pub alive: bool,
    /// Its state letter from `/proc/<pid>/stat` (`D`: uninterruptible, in the kernel).
    pub state: Option<char>,
    /// Where in the kernel it sleeps (`/proc/<pid>/wchan`), when readable.
    pub wchan: Option<String>,
}

/// The files, as on `/`, whose existence says that `owner` still exists: a libvirt domain's
/// persistent definition or its live status (transient domains have only that), a Proxmox VE
/// VM's configuration on this node, a vfioctl VM definition. Empty when nothing tells (manual
/// binds, other names).
pub fn owner_definitions(owner: &Owner) -> Vec<String> {
    let plain = |name: &str| !name.is_empty() && name != "." && name != ".." && !name.contains('/');
    match owner {
        Owner::Libvirt(d) if plain(d) => vec![
            format!("/etc/libvirt/qemu/{d}.xml"),
            format!("/run/libvirt/qemu/{d}.xml"),
        ],
        Owner::Proxmox(vmid) if plain(vmid) => vec![format!("/etc/pve/qemu-server/{vmid}.conf")],
        Owner::Vm(name) if plain(name) => vec![format!("/etc/vfioctl/vms/{name}.toml")],
        _ => Vec::new(),
    }
}

fn in_scope(ctx: &Ctx<'_>, device: &DeviceRef) -> bool {
    match device.pci() {
        Some(a) => ctx.in_scope(&a),
        // Containers are never named to doctor: they count only when looking at the whole host.
        None => ctx.scope.is_none(),
    }
}

/// `it is on igb` / `it has no driver`, or in the past tense.
fn on(driver: Option<&str>, past: bool) -> String {
    match (driver, past) {
        (Some(d), false) => format!("it is on {d}"),
        (Some(d), true) => format!("it was on {d}"),
        (None, false) => "it has no driver".to_owned(),
        (None, true) => "it had no driver".to_owned(),
    }
}

fn now_words(entry: &EntryFacts) -> String {
    match &entry.driver_now {
        None => "it is gone from its bus now".to_owned(),
        Some(d) => {
            let over = match &entry.override_now {
                Some(o) if d.as_deref() != Some(o.as_str()) => {
                    format!(" (driver_override={o})")
                }
                _ => String::new(),
            };
            format!("{} now{over}", on(d.as_deref(), false))
        }
    }
}

fn back_to(entry: &EntryFacts) -> String {
    entry.original_driver.as_ref().map_or_else(
        || "gives it back (it had no driver)".to_owned(),
        |d| format!("gives it back to {d}"),
    )
}

/// While another vfioctl holds the lock, what it is doing shows in the journal as work in
/// flight: worth knowing, nothing wrong.
fn in_flight(busy: Option<bool>, severity: Severity) -> (Severity, &'static str) {
    if busy == Some(true) {
        (
            Severity::Info,
            " (another vfioctl holds /run/vfioctl/lock now and may still be at it; run doctor \
             again when it is done)",
        )
    } else {
        (severity, "")
    }
}

pub(super) fn check_journal(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let facts = &ctx.facts.journal;
    for entry in facts.entries.iter().filter(|e| in_scope(ctx, &e.device)) {
        if entry.interrupted {
            interrupted(facts, entry, out);
        } else if let Some(f) = owner_gone(entry) {
            out.push(f);
        }
    }
    for helper in facts.helpers.iter().filter(|h| in_scope(ctx, &h.device)) {
        out.push(helper_finding(facts, helper));
    }
}

fn interrupted(facts: &JournalFacts, entry: &EntryFacts, out: &mut Vec<Finding>) {
    let (severity, note) = in_flight(facts.busy, Severity::Warning);
    let stuck = facts
        .helpers
        .iter()
        .find(|h| h.alive && h.device == entry.device);
    let remedy = match stuck {
        Some(h) => format!(
            "wait for the write helper pid {} (helper-stuck); 'vfioctl recover' waits for it, \
             then {}",
            h.pid,
            back_to(entry)
        ),
        None => format!(
            "'vfioctl restore {}' {} ('vfioctl recover' gives back everything the journal \
             holds)",
            entry.device,
            back_to(entry)
        ),
    };
    out.push(Finding::new(
        "journal-interrupted",
        severity,
        entry.device.pci(),
        JOURNAL,
        format!(
            "the bind of {} for {} never finished (its journal entry is still 'binding'): {}, \
             and {} before{note}",
            entry.device,
            entry.owner,
            now_words(entry),
            on(entry.original_driver.as_ref().map(DriverName::as_str), true),
        ),
        remedy,
    ));
}

fn owner_gone(entry: &EntryFacts) -> Option<Finding> {
    let device = &entry.device;
    let owner = &entry.owner;
    let restore = format!("'vfioctl restore {device}' {}", back_to(entry));
    let gone = |why: String, remedy: String| {
        Some(Finding::new(
            "owner-gone",
            Severity::Warning,
            device.pci(),
            JOURNAL,
            format!("{device} is still bound for {owner}, but {why}"),
            remedy,
        ))
    };
    if let (Some(pid), None) = (entry.qemu_recorded, entry.qemu_alive) {
        return gone(
            format!(
                "the QEMU 'vfioctl run' recorded for it (pid {pid}) is gone: vfioctl was stopped \
                 before it could give the device back"
            ),
            restore,
        );
    }
    let definitions = owner_definitions(owner);
    if !definitions.is_empty() && entry.definitions_present.is_empty() {
        let what = match owner {
            Owner::Libvirt(_) => "libvirt no longer defines that domain",
            Owner::Proxmox(_) => "that Proxmox VE VM has no configuration on this node any more",
            _ => "its VM definition is gone",
        };
        return gone(
            format!("{what} ({} absent)", definitions.join(", ")),
            restore,
        );
    }
    let release = match owner {
        Owner::Libvirt(_) => "its 'release end' hook call",
        Owner::Proxmox(_) => "its 'post-stop' hookscript call",
        _ => return None,
    };
    entry.qemu_alive.is_none().then(|| {
        Finding::new(
            "owner-not-running",
            Severity::Warning,
            device.pci(),
            JOURNAL,
            format!(
                "{device} is still bound for {owner}, which is not running (no live QEMU): \
                 {release} did not give it back"
            ),
            format!("{restore}, or start {owner} again to use it"),
        )
    })
}

fn helper_finding(facts: &JournalFacts, h: &HelperFacts) -> Finding {
    let entry = facts.entries.iter().find(|e| e.device == h.device);
    if !h.alive {
        let (severity, note) = in_flight(facts.busy, Severity::Warning);
        let now = entry.map_or_else(String::new, |e| format!(": {}", now_words(e)));
        let remedy = match entry {
            Some(e) => format!("'vfioctl recover' finishes it and {}", back_to(e)),
            None => "'vfioctl recover' forgets it".to_owned(),
        };
        return Finding::new(
            "helper-returned",
            severity,
            h.device.pci(),
            JOURNAL,
            format!(
                "the write of {} by helper pid {} returned after vfioctl stopped waiting for it, \
                 and nothing finished {}'s give-back since{now}{note}",
                h.path, h.pid, h.device
            ),
            remedy,
        );
    }
    let (severity, note) = in_flight(facts.busy, Severity::Warning);
    let state = match h.state {
        Some('D') => " (state D: uninterruptible, no signal ends it)".to_owned(),
        Some(c) => format!(" (state {c})"),
        None => String::new(),
    };
    let wchan = h
        .wchan
        .as_deref()
        .filter(|w| !w.is_empty() && *w != "0")
        .map_or_else(String::new, |w| format!(", in {w}"));
    let why = if h.path.contains("/drivers/vfio-pci/") || h.path.contains("/drivers/vfio-fsl-mc/") {
        format!(
            "the vfio driver waits until every user of {} closes it (a QEMU or another program \
             with the device open through /dev/vfio)",
            h.device
        )
    } else {
        "the driver's remove() has not returned".to_owned()
    };
    let remedy = format!(
        "find and stop what still uses {} ('fuser -v /dev/vfio/*' lists who holds the VFIO \
         nodes); then 'vfioctl recover' finishes the give-back{}; a reboot ends it otherwise",
        h.device,
        entry.map_or_else(String::new, |e| format!(" and {}", back_to(e)))
    );
    Finding::new(
        "helper-stuck",
        severity,
        h.device.pci(),
        format!("/proc/{}", h.pid),
        format!(
            "vfioctl's write helper pid {} is stuck in the kernel writing {}{state}{wchan}: {why}; \
             no vfioctl touches {} until it returns{note}",
            h.pid, h.path, h.device
        ),
        remedy,
    )
}

#[cfg(test)]
mod tests {
    use crate::doctor::testkit::*;
    use crate::doctor::*;

    fn entry(owner: &str) -> EntryFacts {
        EntryFacts {
            device: "0000:01:00.0".parse().unwrap(),
            owner: owner.parse().unwrap(),
            interrupted: false,
            original_driver: Some("e1000e".parse().unwrap()),
            driver_now: Some(Some("vfio-pci".into())),
            override_now: Some("vfio-pci".into()),
            qemu_recorded: None,
            qemu_alive: None,
            definitions_present: owner_definitions(&owner.parse().unwrap()),
        }
    }

    fn helper(alive: bool) -> HelperFacts {
        HelperFacts {
            pid: 4242,
            device: "0000:01:00.0".parse().unwrap(),
            path: "/sys/bus/pci/drivers/vfio-pci/unbind".into(),
            alive,
            state: alive.then_some('D'),
            wchan: alive.then(|| "vfio_unregister_group_dev".into()),
        }
    }

    #[test]
    fn an_interrupted_bind() {
        let f = fires("journal-interrupted", |f, _| {
            let mut e = entry("libvirt:a");
            e.interrupted = true;
            e.driver_now = Some(None);
            f.journal.entries.push(e);
        });
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.message.contains("it has no driver now"), "{}", f.message);
        assert!(
            f.remedy
                .starts_with("'vfioctl restore 0000:01:00.0' gives it back to e1000e")
        );
        let f = fires("journal-interrupted", |f, _| {
            let mut e = entry("libvirt:a");
            e.interrupted = true;
            e.driver_now = Some(Some("e1000e".into()));
            f.journal.entries.push(e);
        });
        assert!(
            f.message
                .contains("it is on e1000e now (driver_override=vfio-pci)"),
            "{}",
            f.message
        );
        quiet("journal-interrupted", |f, _| {
            f.journal.entries.push(entry("libvirt:a"));
        });
        let f = fires("journal-interrupted", |f, _| {
            let mut e = entry("manual");
            e.interrupted = true;
            f.journal.entries.push(e);
            f.journal.busy = Some(true);
        });
        assert_eq!(f.severity, Severity::Info, "another vfioctl is at it");
    }

    #[test]
    fn a_stuck_helper_and_one_that_returned() {
        let f = fires("helper-stuck", |f, _| {
            f.journal.entries.push(entry("manual"));
            f.journal.helpers.push(helper(true));
        });
        assert!(f.message.contains("pid 4242"), "{}", f.message);
        assert!(f.message.contains("state D"), "{}", f.message);
        assert!(
            f.message.contains("every user of 0000:01:00.0"),
            "{}",
            f.message
        );
        assert!(f.remedy.contains("gives it back to e1000e"), "{}", f.remedy);
        quiet("helper-stuck", |f, _| {
            f.journal.entries.push(entry("manual"));
        });
        let f = fires("helper-returned", |f, _| {
            let mut e = entry("manual");
            e.driver_now = Some(None);
            f.journal.entries.push(e);
            f.journal.helpers.push(helper(false));
        });
        assert!(f.message.contains("it has no driver now"), "{}", f.message);
        quiet("helper-returned", |f, _| {
            f.journal.helpers.push(helper(true));
        });
    }

    #[test]
    fn owners_that_are_gone() {
        let gone = |owner: &str| {
            fires("owner-gone", |f, _| {
                let mut e = entry(owner);
                e.definitions_present.clear();
                e.qemu_alive = Some(1);
                f.journal.entries.push(e);
            })
        };
        assert!(
            gone("libvirt:win11")
                .message
                .contains("/etc/libvirt/qemu/win11.xml")
        );
        assert!(
            gone("proxmox:100")
                .message
                .contains("/etc/pve/qemu-server/100.conf")
        );
        assert!(
            gone("vm:ten64")
                .message
                .contains("/etc/vfioctl/vms/ten64.toml")
        );
        let f = fires("owner-gone", |f, _| {
            let mut e = entry("vm:ten64");
            e.qemu_recorded = Some(77);
            f.journal.entries.push(e);
        });
        assert!(f.message.contains("pid 77"), "{}", f.message);
        for owner in ["manual", "vm:boot", "libvirt:a", "proxmox:100"] {
            quiet("owner-gone", |f, _| {
                let mut e = entry(owner);
                e.qemu_alive = Some(5);
                f.journal.entries.push(e);
            });
        }
        quiet("owner-gone", |f, _| {
            let mut e = entry("vm:run");
            e.qemu_recorded = Some(77);
            e.qemu_alive = Some(77);
            f.journal.entries.push(e);
        });
        // A named device elsewhere leaves the entry out of scope.
        let (mut facts, devices) = healthy();
        let mut e = entry("libvirt:gone");
        e.definitions_present.clear();
        facts.journal.entries.push(e);
        let inv = inventory(devices);
        assert!(ids(&run(&facts, &inv, &[])).contains(&"owner-gone"));
        let elsewhere = [crate::device::tests::addr("0000:00:01.0")];
        assert!(!ids(&run(&facts, &inv, &elsewhere)).contains(&"owner-gone"));
    }

    #[test]
    fn a_domain_or_vm_that_is_not_running() {
        for owner in ["libvirt:a", "proxmox:100"] {
            let f = fires("owner-not-running", |f, _| {
                f.journal.entries.push(entry(owner));
            });
            assert!(f.remedy.starts_with("'vfioctl restore 0000:01:00.0'"));
        }
        for owner in ["manual", "vm:boot"] {
            quiet("owner-not-running", |f, _| {
                f.journal.entries.push(entry(owner));
            });
        }
        quiet("owner-not-running", |f, _| {
            let mut e = entry("libvirt:a");
            e.qemu_alive = Some(4121);
            f.journal.entries.push(e);
        });
    }
}
