//! Helpers shared by the CLI tests: simulated hosts, and running the test binary (vfioctl's entry
//! point with the simulated kernel) on them.
#![allow(dead_code, reason = "each test binary uses part of the shared helpers")]

use std::path::Path;

pub(crate) mod shown;

use assert_cmd::Command;
use vfioctl_sim::{SimBuilder, SimTree};

/// Builds a simulated host in a temporary directory.
#[expect(
    clippy::needless_pass_by_value,
    reason = "tests pass the builder they just made"
)]
pub(crate) fn tree(builder: SimBuilder) -> SimTree {
    let tree = builder.build_temp().expect("simulated tree");
    std::fs::write(tree.root().join("empty-pci.ids"), "").expect("empty pci.ids");
    tree
}

/// The whole tree, minus vfioctl's own state directory (`run/vfioctl`: the lock file stays, by
/// design), for "ends exactly as it began" comparisons.
pub(crate) fn kernel_state(tree: &SimTree) -> vfioctl_sim::Snapshot {
    let mut snap = tree.snapshot().expect("snapshot");
    snap.0
        .retain(|path, _| !path.starts_with("run/vfioctl") && path != "run");
    snap
}

/// Asserts two snapshots are equal, naming the paths that differ.
pub(crate) fn assert_same(
    before: &vfioctl_sim::Snapshot,
    after: &vfioctl_sim::Snapshot,
    what: &str,
) {
    let diff = before.diff(after);
    assert!(diff.is_empty(), "{what}: the tree changed at {diff:#?}");
}

/// The driver of a PCI device in the tree, read as the kernel shows it.
pub(crate) fn driver(root: &Path, address: &str) -> Option<String> {
    std::fs::read_link(
        root.join("sys/bus/pci/devices")
            .join(address)
            .join("driver"),
    )
    .ok()
    .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// `driver_override` of a PCI device, `None` when unset.
pub(crate) fn override_of(root: &Path, address: &str) -> Option<String> {
    let text = std::fs::read_to_string(
        root.join("sys/bus/pci/devices")
            .join(address)
            .join("driver_override"),
    )
    .ok()?;
    let text = text.trim();
    (!text.is_empty() && text != "(null)").then(|| text.to_owned())
}

/// The vfioctl binary, pointed at `root`, with names from an empty pci.ids so output does not
/// depend on the machine's database.
pub(crate) fn vfioctl(root: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vfioctl-testbin"));
    let empty = root.join("empty-pci.ids");
    if !empty.exists() {
        std::fs::write(&empty, "").expect("empty pci.ids");
    }
    cmd.arg("--root").arg(root).arg("--pci-ids").arg(empty);
    cmd
}

/// Runs vfioctl with `args` and parses its JSON output, asserting the exit code.
pub(crate) fn json(root: &Path, args: &[&str], code: i32) -> serde_json::Value {
    let output = vfioctl(root)
        .args(args)
        .arg("--json")
        .output()
        .expect("run vfioctl");
    assert_eq!(
        output.status.code(),
        Some(code),
        "vfioctl {args:?}: stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The members of each group of a `groups --json` document, as sets of addresses.
pub(crate) fn group_sets(
    groups: &serde_json::Value,
) -> std::collections::BTreeSet<std::collections::BTreeSet<String>> {
    groups
        .as_array()
        .expect("groups array")
        .iter()
        .map(|g| {
            g["devices"]
                .as_array()
                .expect("devices")
                .iter()
                .map(|d| d.as_str().expect("address").to_owned())
                .collect()
        })
        .collect()
}
