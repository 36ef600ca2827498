//! Every sysfs attribute and file vfioctl parses, filled with garbage: reading must report, never
//! panic or hang. Property tests with a bounded number of cases, so CI time stays fixed.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::fs;

use proptest::prelude::*;
use vfioctl_host::HostRoot;
use vfioctl_host::hostuse::Walk;
use vfioctl_host::journal::Journal;
use vfioctl_host::read::{Depth, read_inventory, read_inventory_at};
use vfioctl_host::usage::HostUsage;

/// Attributes of a PCI device directory that the readers parse.
const ATTRIBUTES: &[&str] = &[
    "vendor",
    "device",
    "subsystem_vendor",
    "subsystem_device",
    "class",
    "revision",
    "driver_override",
    "config",
    "numa_node",
    "power_state",
    "d3cold_allowed",
    "reset_method",
    "boot_vga",
    "sriov_numvfs",
    "sriov_totalvfs",
];

/// Files under the root that the usage reader parses.
const PROC_FILES: &[&str] = &[
    "proc/mounts",
    "proc/self/mountinfo",
    "proc/cmdline",
    "proc/net/route",
    "proc/net/if_inet6",
];

fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 0..64),
        "[0-9a-fx\\n -]{0,24}".prop_map(String::into_bytes),
        // Huge: bigger than any attribute the kernel writes.
        Just(vec![b'7'; 200_000]),
    ]
}

fn ten64() -> vfioctl_sim::SimTree {
    vfioctl_sim::topology::ten64().build_temp().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn garbage_attributes_never_panic(attr in proptest::sample::select(ATTRIBUTES), bytes in content()) {
        let tree = ten64();
        let dir = fs::canonicalize(tree.root().join("sys/bus/pci/devices/0001:03:00.0")).unwrap();
        fs::write(dir.join(attr), &bytes).unwrap();
        let root = HostRoot::open(tree.root()).unwrap();
        let _ = read_inventory(&root);
        let _ = read_inventory_at(&root, Depth::Summary);
    }

    #[test]
    fn garbage_proc_files_never_panic(file in proptest::sample::select(PROC_FILES), bytes in content()) {
        let tree = ten64();
        let path = tree.root().join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &bytes).unwrap();
        let root = HostRoot::open(tree.root()).unwrap();
        let _ = HostUsage::read(&root);
        if let Ok(inventory) = read_inventory(&root) {
            let usage = HostUsage::read(&root).unwrap_or_default();
            for walk in [Walk::Classes, Walk::Subtrees] {
                let _ = vfioctl_host::hostuse::host_uses(&root, &inventory, &usage, walk);
            }
        }
    }

    #[test]
    fn garbage_journals_are_reported_not_trusted(bytes in content()) {
        let tree = ten64();
        let root = HostRoot::open(tree.root()).unwrap();
        fs::create_dir_all(tree.root().join("run/vfioctl")).unwrap();
        fs::write(Journal::path(&root), &bytes).unwrap();
        // Whatever it holds, loading either fails with a report or yields a validated journal.
        if let Ok(journal) = Journal::load(&root) {
            prop_assert_eq!(journal.version, vfioctl_host::journal::JOURNAL_VERSION);
        }
    }

    #[test]
    fn arbitrary_journal_text_never_panics(text in ".{0,300}") {
        let _ = Journal::parse(&text);
    }
}

#[test]
fn symlink_loops_in_the_tree_are_reported() {
    let tree = ten64();
    let dir = fs::canonicalize(tree.root().join("sys/bus/pci/devices/0001:03:00.0")).unwrap();
    fs::remove_file(dir.join("driver")).unwrap();
    std::os::unix::fs::symlink("driver", dir.join("driver")).unwrap();
    fs::remove_file(dir.join("vendor")).unwrap();
    std::os::unix::fs::symlink("vendor", dir.join("vendor")).unwrap();
    let root = HostRoot::open(tree.root()).unwrap();
    // A looping `vendor` cannot be read: the device is skipped with a reason naming it, not a
    // hang or panic, and the other devices are read.
    let inventory = read_inventory(&root).unwrap();
    let skipped = &inventory.skipped;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0].reason.contains("vendor"), "{skipped:?}");
    assert!(!skipped[0].reason.contains("os error"), "{skipped:?}");
    assert!(inventory.get(&"0001:04:00.0".parse().unwrap()).is_some());
}
