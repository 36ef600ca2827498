//! Snapshots of the VM commands (`vm list`, `vm check`, `vm qemu-args`, `status`, `apply`,
//! `run --dry-run`) on the simulated Ten64 and desktop, with a stand-in QEMU.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;
mod vmhost;

use std::fs;

use common::shown::shown_vm;
use vfioctl_sim::topology::{ten64_dpaa2, x86_desktop};
use vmhost::{Host, TEN64_VM};

/// Runs vfioctl on the host with the words of `line` (names from an empty pci.ids, the
/// stand-in QEMU in `mode`) and renders the run, the tree and the stand-in's directory shown as
/// placeholders.
fn shown(host: &Host, mode: &str, line: &str) -> String {
    shown_vm(
        &mut host.vfioctl(mode),
        host.root(),
        host.qemu_dir.path(),
        line,
    )
}

/// The Ten64 VM's `[[device]]` entries, to leave one out.
const WIFI_ENTRY: &str = "[[device]]\naddress = \"0001:03:00.0\"\nid = \"168c:003e\"\n";
const TPU_ENTRY: &str = "[[device]]\naddress = \"0001:04:00.0\"\nid = \"1ac1:089a\"\n";

/// A VM of the host's own DPAA2 container, which vfioctl must refuse.
const HOST_CONTAINER_VM: &str =
    "version = 1\ndprc = [\"dprc.1\"]\n[qemu]\nbinary = \"@QEMU@\"\nmachine = \"virt\"\n";

#[test]
fn ten64_vms() {
    let host = Host::new(common::shown::host(ten64_dpaa2()));
    host.define("ten64", TEN64_VM);
    host.define(
        "wifi",
        &TEN64_VM.replace("boot = true\n", "").replace(TPU_ENTRY, ""),
    );
    host.define(
        "dpaa2",
        &TEN64_VM
            .replace("boot = true\n", "dprc = [\"dprc.2\"]\n")
            .replace(WIFI_ENTRY, "")
            .replace(TPU_ENTRY, ""),
    );
    host.define("host-container", HOST_CONTAINER_VM);
    host.define(
        "moved",
        &format!("version = 1\n{}", TPU_ENTRY.replace("04", "05")),
    );
    host.define(
        "broken",
        &TEN64_VM.replace("cpus = 2", "cpus = 2\nmemroy = \"2G\""),
    );
    for (name, mode, line) in [
        ("ten64_vm_list", "exit:0", "vm list"),
        ("ten64_vm_check", "help", "vm check ten64"),
        ("ten64_vm_check_wifi_only", "help", "vm check wifi"),
        ("ten64_vm_check_dpaa2", "help", "vm check dpaa2"),
        ("ten64_vm_check_moved", "help", "vm check moved"),
        ("ten64_vm_check_broken", "help", "vm check broken"),
        ("ten64_vm_qemu_args", "exit:0", "vm qemu-args ten64"),
        ("ten64_vm_qemu_args_dpaa2", "exit:0", "vm qemu-args dpaa2"),
        ("ten64_status", "exit:0", "status"),
        ("ten64_run_dry_run", "exit:0", "run --dry-run wifi"),
        // apply stops at the broken definition; without it, it plans the one boot VM.
        ("ten64_apply_dry_run_broken", "exit:0", "apply --dry-run"),
    ] {
        insta::assert_snapshot!(name, shown(&host, mode, line));
    }
    fs::remove_file(host.root().join("etc/vfioctl/vms/broken.toml")).unwrap();
    for (name, mode, line) in [
        ("ten64_apply_dry_run", "exit:0", "apply --dry-run"),
        ("ten64_apply", "exit:0", "apply"),
        ("ten64_status_applied", "exit:0", "status"),
        ("ten64_apply_again", "exit:0", "apply --dry-run"),
    ] {
        insta::assert_snapshot!(name, shown(&host, mode, line));
    }
}

#[test]
fn ten64_boot_vm_of_the_host_container() {
    // Every command that plans this VM should refuse dprc.1 before anything is written.
    let host = Host::new(common::shown::host(ten64_dpaa2()));
    host.define(
        "host-container",
        &HOST_CONTAINER_VM.replace("version = 1\n", "version = 1\nboot = true\n"),
    );
    for (name, mode, line) in [
        (
            "ten64_root_container_vm_check",
            "help",
            "vm check host-container",
        ),
        (
            "ten64_root_container_apply_dry_run",
            "exit:0",
            "apply --dry-run",
        ),
        (
            "ten64_root_container_run_dry_run",
            "exit:0",
            "run --dry-run host-container",
        ),
        ("ten64_root_container_run", "exit:0", "run host-container"),
    ] {
        insta::assert_snapshot!(name, shown(&host, mode, line));
    }
}

#[test]
fn desktop_vms() {
    let host = Host::new(common::shown::host(x86_desktop()));
    host.define(
        "desktop",
        "version = 1\nboot = true\n[[device]]\naddress = \"0000:01:00.0\"\nid = \"10de:2684\"\n\
         [[device]]\naddress = \"0000:01:00.1\"\nid = \"10de:22ba\"\n\
         [qemu]\nbinary = \"@QEMU@\"\nmachine = \"q35\"\nmemory = \"8G\"\ncpus = 8\n",
    );
    host.define(
        "router",
        "version = 1\nboot = true\n[[device]]\naddress = \"0000:03:00.0\"\nid = \"8086:1533\"\n\
         [qemu]\nbinary = \"@QEMU@\"\nmachine = \"q35\"\n",
    );
    for (name, mode, line) in [
        ("desktop_vm_list", "exit:0", "vm list"),
        ("desktop_vm_check", "help", "vm check desktop"),
        ("desktop_vm_check_router", "help", "vm check router"),
        ("desktop_vm_qemu_args", "exit:0", "vm qemu-args desktop"),
        ("desktop_status", "exit:0", "status"),
        ("desktop_apply_dry_run", "exit:0", "apply --dry-run"),
        ("desktop_run_dry_run", "exit:0", "run --dry-run desktop"),
    ] {
        insta::assert_snapshot!(name, shown(&host, mode, line));
    }
}
