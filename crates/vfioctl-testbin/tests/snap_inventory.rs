//! Snapshots of what `list`, `groups` and `show` print on the simulated Ten64 (with its DPAA2
//! bus) and the simulated x86 desktop. A wording or layout change shows up as a reviewed diff.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use common::shown::{host, shown};
use vfioctl_sim::topology::{ten64_dpaa2, x86_desktop};

#[test]
fn ten64_inventory() {
    let t = host(ten64_dpaa2());
    for (name, line) in [
        ("ten64_list", "list"),
        ("ten64_list_tree", "list --tree"),
        ("ten64_list_driver_none", "list --driver none"),
        ("ten64_groups", "groups"),
        ("ten64_groups_one", "groups 0001:03:00.0"),
        ("ten64_show_wifi", "show 0001:03:00.0"),
        ("ten64_show_by_interface", "show wlan0"),
        ("ten64_show_nvme", "show 0002:01:00.0"),
        ("ten64_show_bridge", "show 0001:02:01.0"),
    ] {
        insta::assert_snapshot!(name, shown(t.root(), line));
    }
}

#[test]
fn desktop_inventory() {
    let t = host(x86_desktop());
    for (name, line) in [
        ("desktop_list", "list"),
        ("desktop_list_tree", "list --tree"),
        ("desktop_list_by_id", "list -d 8086:1533"),
        ("desktop_groups", "groups"),
        ("desktop_show_gpu", "show 0000:01:00.0"),
        ("desktop_show_nic", "show enp3s0"),
        ("desktop_show_chipset_audio", "show 00:1f.3"),
    ] {
        insta::assert_snapshot!(name, shown(t.root(), line));
    }
}
