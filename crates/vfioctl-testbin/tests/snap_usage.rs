//! Snapshots of usage errors: what clap says about a bad command line, and what vfioctl says
//! about a device, group, VM or root it cannot use, each with its hint and exit code.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::process::Command;

use common::shown::{host, plain, render, shown};
use vfioctl_sim::topology::ten64;

#[test]
fn usage_errors() {
    let t = host(ten64());
    for (name, line) in [
        ("usage_no_command", ""),
        ("usage_unknown_command", "lsit"),
        ("usage_missing_device", "bind"),
        ("usage_conflicting_flags", "restore --all 0001:03:00.0"),
        ("usage_bad_address", "show 0001:03:00"),
        ("usage_no_such_device", "show 0001:09:00.0"),
        ("usage_no_such_interface", "bind --dry-run wlan9"),
        ("usage_bad_id", "list -d nonsense"),
        ("usage_no_such_group", "check 99"),
        (
            "usage_unknown_machine",
            "qemu-args --machine pc 0001:03:00.0",
        ),
        ("usage_no_such_container", "bind --dry-run dprc.7"),
        ("usage_no_such_vm", "vm check nosuch"),
        ("usage_help", "--help"),
    ] {
        insta::assert_snapshot!(name, shown(t.root(), line));
    }
    // Without the helper's own --root: this one is about the root.
    let args = ["--root", "/nonexistent", "list"];
    let output = plain(&mut Command::new(env!("CARGO_BIN_EXE_vfioctl-testbin")))
        .args(args)
        .output()
        .unwrap();
    insta::assert_snapshot!("usage_unusable_root", render(&args, &output, &[]));
}
