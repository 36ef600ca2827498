//! Snapshots of the plans, refusals and reports people read from `bind`, `restore`, `recover`
//! and `check`: dry runs on the simulated Ten64 and desktop, refusals with their error and hint
//! on standard error, and a real bind followed by what `restore --dry-run` and `check` say.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use common::shown::{host, shown};
use vfioctl_sim::topology::{ten64_dpaa2, x86_desktop};

/// The accounts `--user` is looked up in.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      libvirt-qemu:x:64055:108::/var/lib/libvirt:/usr/sbin/nologin\n";

#[test]
fn ten64_bind_plans_and_refusals() {
    let t = host(ten64_dpaa2());
    std::fs::create_dir_all(t.root().join("etc")).unwrap();
    std::fs::write(t.root().join("etc/passwd"), PASSWD).unwrap();
    for (name, line) in [
        ("ten64_bind_wifi", "bind --dry-run 0001:03:00.0"),
        ("ten64_bind_only", "bind --dry-run --only 0001:03:00.0"),
        (
            "ten64_bind_user",
            "bind --dry-run --user libvirt-qemu 0001:03:00.0",
        ),
        (
            "ten64_bind_unknown_user",
            "bind --dry-run --user qemu 0001:03:00.0",
        ),
        ("ten64_bind_dprc", "bind --dry-run dprc.2"),
        (
            "ten64_bind_pci_and_dprc",
            "bind --dry-run 0001:03:00.0 dprc.2",
        ),
        ("ten64_refuse_root_disk", "bind --dry-run 0002:01:00.0"),
        ("ten64_refuse_root_container", "bind --dry-run dprc.1"),
        (
            "ten64_refuse_pci_and_root_container",
            "bind --dry-run 0001:03:00.0 dprc.1",
        ),
        ("ten64_refuse_bridge", "bind --dry-run 0001:02:01.0"),
        ("ten64_restore_nothing", "restore --dry-run --all"),
        ("ten64_recover_nothing", "recover --dry-run"),
        ("ten64_check_unbound", "check 1"),
    ] {
        insta::assert_snapshot!(name, shown(t.root(), line));
    }
}

#[test]
fn ten64_after_a_bind() {
    let t = host(ten64_dpaa2());
    for (name, line) in [
        ("ten64_bind_done", "bind 0001:03:00.0"),
        ("ten64_bind_again", "bind --dry-run 0001:03:00.0"),
        ("ten64_list_bound", "list --slot 0001:03:00.0"),
        ("ten64_check_bound", "check 1 0001:04:00.0"),
        ("ten64_restore_plan", "restore --dry-run 0001:03:00.0"),
        ("ten64_restore_done", "restore --all"),
        ("ten64_bind_dprc_done", "bind dprc.2"),
        ("ten64_recover_plan", "recover --dry-run"),
        ("ten64_recover_done", "recover"),
    ] {
        insta::assert_snapshot!(name, shown(t.root(), line));
    }
}

#[test]
fn desktop_bind_plans_and_refusals() {
    let t = host(x86_desktop());
    for (name, line) in [
        ("desktop_bind_gpu_group", "bind --dry-run 0000:01:00.0"),
        ("desktop_bind_multifunction", "bind --dry-run 0000:00:1f.3"),
        ("desktop_bind_by_id", "bind --dry-run 8086:1533"),
        ("desktop_refuse_default_route", "bind --dry-run enp3s0"),
        ("desktop_refuse_root_disk", "bind --dry-run 0000:05:00.0"),
        ("desktop_refuse_root_port", "bind --dry-run 0000:00:1c.0"),
        (
            "desktop_force_default_route",
            "bind --dry-run --force enp3s0",
        ),
    ] {
        insta::assert_snapshot!(name, shown(t.root(), line));
    }
}
