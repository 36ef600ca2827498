//! `[[dpaa2]]` containers of VM definitions on the simulated Ten64 with the restool stand-in:
//! `vm check`, `apply --dry-run`, `apply`, `status`, `run`, `restore --all` and `recover` make,
//! bind, hand over and take apart the container, and a refusal part way leaves the MC and the
//! tree as they began.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;
mod vmhost;

use common::shown::shown_vm;
use vfioctl_sim::KernelState;
use vfioctl_sim::topology::ten64_dpaa2;
use vmhost::{Host, TEN64_VM, text};

const WIFI_ENTRY: &str = "[[device]]\naddress = \"0001:03:00.0\"\nid = \"168c:003e\"\n";
const TPU_ENTRY: &str = "[[device]]\naddress = \"0001:04:00.0\"\nid = \"1ac1:089a\"\n";

/// The Ten64 VM with a container made for it, its DPNI on the second physical port, instead
/// of its PCI cards.
fn made_vm(dpmac: &str) -> String {
    TEN64_VM
        .replace(WIFI_ENTRY, &format!("[[dpaa2]]\ndpmac = \"{dpmac}\"\n"))
        .replace(TPU_ENTRY, "")
}

fn shown(host: &Host, mode: &str, line: &str) -> String {
    let mut cmd = host.vfioctl(mode);
    cmd.env("STANDIN_FSL", "1");
    shown_vm(&mut cmd, host.root(), host.qemu_dir.path(), line)
}

fn new_host() -> Host {
    let host = Host::new(common::shown::host(ten64_dpaa2()));
    host.define("db", &made_vm("dpmac.2"));
    host
}

/// The MC can hold no DPCON beyond the one the host has: a create stops at its fourth step.
fn no_free_dpcon(host: &Host) {
    let mut state = KernelState::load(host.root()).unwrap();
    let bus = state.fsl_mc.as_mut().unwrap();
    bus.mc.capacity.insert("dpcon".to_owned(), 1);
    state.save(host.root()).unwrap();
}

#[test]
fn apply_makes_binds_and_restore_all_takes_the_container_apart() {
    let host = new_host();
    let before = common::kernel_state(&host.tree);
    for (name, line) in [
        ("vm_dpaa2_list", "vm list"),
        ("vm_dpaa2_check", "vm check db"),
        ("vm_dpaa2_apply_dry_run", "apply --dry-run"),
        ("vm_dpaa2_run_dry_run", "run --dry-run db"),
    ] {
        insta::assert_snapshot!(name, shown(&host, "help", line));
    }
    common::assert_same(&before, &common::kernel_state(&host.tree), "dry runs");
    for (name, line) in [
        ("vm_dpaa2_apply", "apply"),
        ("vm_dpaa2_status_applied", "status"),
        ("vm_dpaa2_check_applied", "vm check db"),
        ("vm_dpaa2_apply_again", "apply"),
        ("vm_dpaa2_qemu_args_applied", "vm qemu-args db"),
        ("vm_dpaa2_restore_all_dry_run", "restore --all --dry-run"),
        ("vm_dpaa2_restore_all", "restore --all"),
        ("vm_dpaa2_status_restored", "status"),
    ] {
        insta::assert_snapshot!(name, shown(&host, "help", line));
    }
    common::assert_same(
        &before,
        &common::kernel_state(&host.tree),
        "apply, restore --all",
    );
    assert!(!host.journal().contains("dprc.3"), "{}", host.journal());
}

#[test]
fn recover_takes_apart_what_apply_made() {
    let host = new_host();
    let before = common::kernel_state(&host.tree);
    let out = host.run("exit:0", &["apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(host.root().join("sys/bus/fsl-mc/devices/dprc.3").exists());
    let out = host.run("exit:0", &["--json", "recover"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["destroyed"], serde_json::json!(["dprc.3"]), "{doc}");
    assert_eq!(doc["result"], "restored");
    common::assert_same(&before, &common::kernel_state(&host.tree), "apply, recover");
}

#[test]
fn run_makes_hands_over_and_takes_apart_the_container() {
    let host = new_host();
    let before = common::kernel_state(&host.tree);
    let out = host.run("exit:0", &["run", "db"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("made dprc.3 with restool"), "{stderr}");
    assert!(
        host.recorded("argv").contains("vfio-fsl-mc,host=dprc.3"),
        "{}",
        host.recorded("argv")
    );
    common::assert_same(&before, &common::kernel_state(&host.tree), "run");
    assert!(!host.journal().contains("dprc.3"), "{}", host.journal());
}

#[test]
fn a_refusal_part_way_leaves_the_mc_and_tree_as_they_began() {
    let host = new_host();
    no_free_dpcon(&host);
    let before = common::kernel_state(&host.tree);
    insta::assert_snapshot!(
        "vm_dpaa2_apply_no_free_dpcon",
        shown(&host, "help", "apply")
    );
    common::assert_same(&before, &common::kernel_state(&host.tree), "apply");
    let out = host.run("exit:0", &["run", "db"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("No free dpcon objects"),
        "{}",
        text(&out.stderr)
    );
    assert!(host.recorded("argv").is_empty(), "QEMU must not start");
    common::assert_same(&before, &common::kernel_state(&host.tree), "run");
    assert!(!host.journal().contains("dprc"), "{}", host.journal());
}

#[test]
fn a_link_the_host_lacks_is_refused_before_restool_runs() {
    let host = Host::new(common::shown::host(ten64_dpaa2()));
    host.define("db", &made_vm("dpmac.9"));
    let before = common::kernel_state(&host.tree);
    insta::assert_snapshot!(
        "vm_dpaa2_check_missing_dpmac",
        shown(&host, "help", "vm check db")
    );
    let out = host.run("exit:0", &["run", "db"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("dpmac.9"),
        "{}",
        text(&out.stderr)
    );
    common::assert_same(&before, &common::kernel_state(&host.tree), "run");
}

#[test]
fn a_qemu_that_is_not_there_takes_the_made_container_apart() {
    let host = new_host();
    host.define(
        "db",
        &made_vm("dpmac.2").replace("binary = \"@QEMU@\"", "binary = \"/nonexistent/qemu\""),
    );
    let before = common::kernel_state(&host.tree);
    let out = host.run("exit:0", &["run", "db"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/qemu"), "{stderr}");
    common::assert_same(&before, &common::kernel_state(&host.tree), "run");
    assert!(!host.journal().contains("dprc"), "{}", host.journal());
}

#[test]
fn vm_check_json_names_each_made_container() {
    let host = new_host();
    let check = || {
        let out = host
            .vfioctl("help")
            .env("STANDIN_FSL", "1")
            .args(["--json", "vm", "check", "db"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let doc = check();
    assert_eq!(
        doc["dpaa2"],
        serde_json::json!([{"container": null, "link": "dpmac.2", "root_container": "dprc.1"}])
    );
    let out = host.run("exit:0", &["apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc = check();
    assert_eq!(doc["dpaa2"][0]["container"], "dprc.3", "{doc}");
}

#[test]
fn a_bind_that_fails_after_the_container_was_made_takes_it_apart() {
    use vfioctl_sim::{Errno, Fault, FaultAction, FaultMatch};
    for command in [&["run", "db"][..], &["apply"][..]] {
        let host = new_host();
        let before = common::kernel_state(&host.tree);
        host.tree
            .kernel()
            .unwrap()
            .add_fault(Fault {
                when: FaultMatch {
                    path_contains: Some("drivers/vfio-fsl-mc/bind".into()),
                    value: Some("dprc.3".into()),
                    ..FaultMatch::default()
                },
                action: FaultAction::Fail(Errno::Ebusy),
            })
            .unwrap();
        let out = host.run("exit:0", command);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command:?}: {stderr}");
        assert!(host.recorded("argv").is_empty(), "QEMU must not start");
        host.tree.kernel().unwrap().clear_faults().unwrap();
        common::assert_same(
            &before,
            &common::kernel_state(&host.tree),
            &format!("{command:?}"),
        );
        assert!(!host.journal().contains("dprc"), "{}", host.journal());
    }
}
