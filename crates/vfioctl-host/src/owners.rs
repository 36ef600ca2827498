//! Who holds each device: the journal's owners, and the processes (QEMU, write helpers) that are
//! alive under the root's `/proc`.
//!
//! A QEMU is found by the pid `vfioctl run` recorded in the journal, or by the pid file its
//! manager keeps: libvirt's `/run/libvirt/qemu/<domain>.pid`, Proxmox VE's
//! `/run/qemu-server/<vmid>.pid`. A pid only counts while `/proc/<pid>` exists and is not a
//! zombie; a write helper only while it is still vfioctl writing the same attribute, since the
//! kernel reuses pids.

use vfioctl_core::doctor::{EntryFacts, HelperFacts, JournalFacts, owner_definitions};
use vfioctl_core::ownership::Holder;
use vfioctl_core::plan::DeviceState;
use vfioctl_core::{DeviceRef, Owner};

use crate::HostRoot;
use crate::forkwrite::FORKED_HELPER_NAME;
use crate::journal::{EntryState, Journal, JournalEntry, WriteHelper};
use crate::transaction::held_by_vfio;

/// The state letter of a process under the root (`R`, `S`, `D`, `Z`...), from its `stat`.
pub fn process_state(root: &HostRoot, pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(root.join(format!("proc/{pid}/stat"))).ok()?;
    // The state follows the parenthesised command name, which may itself hold spaces.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|s| s.chars().next())
}

/// The command line of a live process under the root, `None` when there is none (or only a
/// zombie, which holds no device any more).
pub fn process_cmdline(root: &HostRoot, pid: u32) -> Option<Vec<String>> {
    if pid == 0 {
        return None;
    }
    if matches!(process_state(root, pid), Some('Z' | 'X')) {
        return None;
    }
    let dir = root.join(format!("proc/{pid}"));
    let raw = std::fs::read(dir.join("cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// True when `pid` is alive under the root.
pub fn alive(root: &HostRoot, pid: u32) -> bool {
    process_cmdline(root, pid).is_some()
}

/// True when the helper is still in flight: its pid is alive and is still vfioctl writing the
/// same attribute, as `__write-attr` (its command line names the attribute) or as a fork (named
/// [`FORKED_HELPER_NAME`], with the attribute open), since the kernel reuses pids.
pub fn helper_alive(root: &HostRoot, helper: &WriteHelper) -> bool {
    let Some(argv) = process_cmdline(root, helper.pid) else {
        return false;
    };
    if argv.iter().any(|a| a == "__write-attr") {
        return argv.contains(&helper.path);
    }
    let dir = root.join(format!("proc/{}", helper.pid));
    let named = std::fs::read_to_string(dir.join("comm"))
        .is_ok_and(|comm| comm.trim_end() == FORKED_HELPER_NAME);
    // Another user's descriptors cannot be read (doctor run unprivileged): the name decides.
    named
        && std::fs::read_dir(dir.join("fd")).map_or(true, |fds| {
            fds.flatten().any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|link| crate::forkwrite::is_attribute(&link, &helper.path))
            })
        })
}

fn pid_file(root: &HostRoot, rel: &str) -> Option<u32> {
    std::fs::read_to_string(root.join(rel))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

/// The live QEMU of an owner, by its manager's pid file.
fn manager_qemu(root: &HostRoot, owner: &Owner) -> Option<u32> {
    let rel = match owner {
        Owner::Libvirt(domain) if plain_name(domain) => format!("run/libvirt/qemu/{domain}.pid"),
        Owner::Proxmox(vmid) if plain_name(vmid) => format!("run/qemu-server/{vmid}.pid"),
        _ => return None,
    };
    pid_file(root, &rel).filter(|pid| alive(root, *pid))
}

/// The live QEMU holding an entry's device, if there is one.
pub fn live_qemu(root: &HostRoot, entry: &JournalEntry) -> Option<u32> {
    entry
        .qemu_pid
        .filter(|pid| alive(root, *pid))
        .or_else(|| manager_qemu(root, &entry.owner))
}

/// Who holds `device`, given the journal and its state now (`None` when it cannot be read).
pub fn holder(
    root: &HostRoot,
    journal: &Journal,
    device: &DeviceRef,
    state: Option<&DeviceState>,
) -> Holder {
    match journal.entry(device) {
        Some(entry) => Holder::Owner {
            owner: entry.owner.clone(),
            qemu: live_qemu(root, entry),
        },
        None if state.is_some_and(|s| held_by_vfio(device, s)) => Holder::SomeoneElse,
        None => Holder::Free,
    }
}

/// The helpers of the journal still in flight for `device`.
pub fn live_helpers<'a>(
    root: &HostRoot,
    journal: &'a Journal,
    device: &DeviceRef,
) -> Vec<&'a WriteHelper> {
    journal
        .helpers
        .iter()
        .filter(|h| h.device == *device && helper_alive(root, h))
        .collect()
}

/// The PCI functions an unbind is stuck on now: a live write helper of the journal writes their
/// `unbind`. The kernel holds each one's device lock until it returns, so readers must not ask
/// for the attributes whose show() takes that lock. Empty when the journal cannot be read (a
/// user without privileges, who cannot have started a helper either).
pub fn stuck_devices(root: &HostRoot) -> std::collections::BTreeSet<vfioctl_core::PciAddress> {
    let Ok(journal) = Journal::load(root) else {
        return std::collections::BTreeSet::new();
    };
    stuck_in(root, &journal)
}

/// [`stuck_devices`] by a journal the caller has loaded.
pub fn stuck_in(
    root: &HostRoot,
    journal: &Journal,
) -> std::collections::BTreeSet<vfioctl_core::PciAddress> {
    journal
        .helpers
        .iter()
        .filter(|h| h.path.ends_with("/unbind") && helper_alive(root, h))
        .filter_map(|h| h.device.pci())
        .collect()
}

/// Drops the helpers that are gone from the journal; true when some were.
pub fn forget_dead_helpers(root: &HostRoot, journal: &mut Journal) -> bool {
    let before = journal.helpers.len();
    journal.helpers.retain(|h| helper_alive(root, h));
    journal.helpers.len() != before
}

/// Whether another vfioctl holds the lock now: tried without waiting and let go at once, and
/// never created (doctor writes nothing). `None` when the lock file cannot be opened.
pub fn lock_busy(root: &HostRoot) -> Option<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = root.join("run/vfioctl/lock");
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(false),
        Err(_) => return None,
    };
    match file.try_lock() {
        Ok(()) => Some(false),
        Err(std::fs::TryLockError::WouldBlock) => Some(true),
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

fn device_dir(root: &HostRoot, device: &DeviceRef) -> std::path::PathBuf {
    root.join(format!(
        "sys/bus/{}/devices/{device}",
        device.bus().sysfs_name()
    ))
}

/// What doctor needs to know about the journal: each entry's device and owner now, each write
/// helper's process. A device with a live helper has only its `driver` link read, never its
/// `driver_override`: while its unbind is stuck, the kernel's `driver_override_show()` waits for
/// the device lock the unbind holds.
pub fn journal_facts(root: &HostRoot, journal: &Journal) -> JournalFacts {
    let entries = journal
        .entries
        .iter()
        .map(|e| {
            let dir = device_dir(root, &e.original.device);
            let safe = live_helpers(root, journal, &e.original.device).is_empty();
            EntryFacts {
                override_now: safe
                    .then(|| crate::read::read_attr(&dir.join("driver_override")).ok())
                    .flatten()
                    .flatten()
                    .as_deref()
                    .and_then(crate::read::parse_driver_override),
                device: e.original.device.clone(),
                owner: e.owner.clone(),
                interrupted: e.state == EntryState::Binding,
                original_driver: e.original.state.driver.clone(),
                driver_now: dir
                    .is_dir()
                    .then(|| crate::read::link_name(&dir.join("driver")).ok().flatten()),
                qemu_recorded: e.qemu_pid,
                qemu_alive: live_qemu(root, e),
                definitions_present: owner_definitions(&e.owner)
                    .into_iter()
                    .filter(|p| root.join(p.trim_start_matches('/')).exists())
                    .collect(),
            }
        })
        .collect();
    let helpers = journal
        .helpers
        .iter()
        .map(|h| {
            let alive = helper_alive(root, h);
            HelperFacts {
                pid: h.pid,
                device: h.device.clone(),
                path: h.path.clone(),
                alive,
                state: alive.then(|| process_state(root, h.pid)).flatten(),
                wchan: alive
                    .then(|| {
                        std::fs::read_to_string(root.join(format!("proc/{}/wchan", h.pid))).ok()
                    })
                    .flatten()
                    .map(|w| w.trim().to_owned()),
            }
        })
        .collect();
    JournalFacts {
        entries,
        helpers,
        busy: lock_busy(root),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn root() -> (tempfile::TempDir, HostRoot) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("sys/bus/pci")).unwrap();
        let root = HostRoot::open(tmp.path()).unwrap();
        (tmp, root)
    }

    fn put(dir: &Path, rel: &str, text: &[u8]) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn zombies_and_reused_pids_are_not_helpers() {
        let (tmp, root) = root();
        let helper = WriteHelper {
            pid: 42,
            device: "0000:01:00.0".parse().unwrap(),
            path: "/sys/bus/pci/drivers/nvidia/unbind".into(),
            value: "0000:01:00.0".into(),
            since: 0,
        };
        assert!(!helper_alive(&root, &helper));
        put(
            tmp.path(),
            "proc/42/cmdline",
            b"vfioctl\0--root\0/\0__write-attr\0/sys/bus/pci/drivers/nvidia/unbind\x000000:01:00.0\0",
        );
        assert!(helper_alive(&root, &helper));
        put(tmp.path(), "proc/42/stat", b"42 (vfioctl x) Z 1 0");
        assert!(!helper_alive(&root, &helper));
        put(tmp.path(), "proc/42/stat", b"42 (bash) S 1 0");
        put(tmp.path(), "proc/42/cmdline", b"bash\0");
        assert!(!helper_alive(&root, &helper), "a reused pid is not ours");
    }

    #[test]
    fn a_forked_helper_is_known_by_its_name_and_the_attribute_it_holds_open() {
        let (tmp, root) = root();
        let helper = WriteHelper {
            pid: 43,
            device: "0000:01:00.0".parse().unwrap(),
            path: "/sys/bus/pci/drivers/vfio-pci/unbind".into(),
            value: "0000:01:00.0".into(),
            since: 0,
        };
        // A fork keeps its parent's command line.
        put(
            tmp.path(),
            "proc/43/cmdline",
            b"vfioctl\0restore\x000000:01:00.0\0",
        );
        put(tmp.path(), "proc/43/stat", b"43 (vfioctl-unbind) D 1 0");
        assert!(!helper_alive(&root, &helper), "not named as a helper");
        put(tmp.path(), "proc/43/comm", b"vfioctl-unbind\n");
        assert!(
            helper_alive(&root, &helper),
            "descriptors unreadable: the name decides"
        );
        let fd = tmp.path().join("proc/43/fd");
        std::fs::create_dir_all(&fd).unwrap();
        std::os::unix::fs::symlink("/dev/null", fd.join("0")).unwrap();
        assert!(!helper_alive(&root, &helper), "holds another file");
        std::os::unix::fs::symlink(&helper.path, fd.join("3")).unwrap();
        assert!(helper_alive(&root, &helper));
    }

    #[test]
    fn a_libvirt_domains_qemu_is_found_by_its_pid_file() {
        let (tmp, root) = root();
        let owner = Owner::Libvirt("win11".into());
        assert_eq!(manager_qemu(&root, &owner), None);
        put(tmp.path(), "run/libvirt/qemu/win11.pid", b"4121\n");
        assert_eq!(manager_qemu(&root, &owner), None, "a stale pid file");
        put(tmp.path(), "proc/4121/cmdline", b"qemu-system-x86_64\0");
        assert_eq!(manager_qemu(&root, &owner), Some(4121));
        assert_eq!(manager_qemu(&root, &Owner::Libvirt("../x".into())), None);
    }
}
