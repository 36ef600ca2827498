//! Helpers shared by the CLI tests: simulated hosts and running the real binary on them.
#![allow(dead_code)]

use std::path::Path;

use assert_cmd::Command;
use vfioctl_sim::{SimBuilder, SimTree};

/// Builds a simulated host in a temporary directory.
pub fn tree(builder: SimBuilder) -> SimTree {
    builder.build_temp().expect("simulated tree")
}

/// The vfioctl binary, pointed at `root`, with names from an empty pci.ids so output does not
/// depend on the machine's database.
pub fn vfioctl(root: &Path) -> Command {
    let mut cmd = Command::cargo_bin("vfioctl").expect("vfioctl binary");
    let empty = root.join("empty-pci.ids");
    if !empty.exists() {
        std::fs::write(&empty, "").expect("empty pci.ids");
    }
    cmd.arg("--root").arg(root).arg("--pci-ids").arg(empty);
    cmd
}

/// Runs vfioctl with `args` and parses its JSON output, asserting the exit code.
pub fn json(root: &Path, args: &[&str], code: i32) -> serde_json::Value {
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
