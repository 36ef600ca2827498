//! `[[sriov]]` tables and VF MACs of VM definitions on the simulated igb PF: `vm check`,
//! `apply --dry-run`, `apply`, `status`, `run`, `restore --vm` and `recover` make the VFs, set
//! their MACs, bind and hand them over, and give it all back; a refusal or a failure part way
//! leaves the tree as it began; a PF named by its permanent MAC stays the same PF when its
//! current MAC changes.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;
mod vmhost;

use common::shown::shown_vm;
use vfioctl_sim::topology::{QemuTopo, qemu_x86};
use vfioctl_sim::{Errno, Fault, FaultAction, FaultMatch, KernelState, SimBuilder, hosts};
use vmhost::{Host, text};

const PF: &str = "0000:01:00.0";
const MAC: &str = "52:54:00:12:34:56";
/// VF 3 of the PF: routing ID 01:00.0 + offset 0x80 + 3 × stride 2.
const VF3: &str = "0000:01:10.6";

/// A VM that gets VF 3 of the PF, which its `[[sriov]]` table makes (`numvfs` given or not).
fn web(pf: &str, numvfs: Option<u32>, index: u32) -> String {
    let count = numvfs.map_or(String::new(), |n| format!("numvfs = {n}\n"));
    format!(
        "version = 1\nboot = true\n\n[[sriov]]\npf = \"{pf}\"\n{count}\n[[vf]]\npf = \"{pf}\"\n\
         index = {index}\nmac = \"{MAC}\"\n\n[qemu]\nbinary = \"@QEMU@\"\nmachine = \"q35\"\n\
         memory = \"1G\"\n"
    )
}

fn new_host(builder: SimBuilder, definition: &str) -> Host {
    let host = Host::new(common::shown::host(builder));
    host.define("web", definition);
    host
}

fn shown(host: &Host, line: &str) -> String {
    shown_vm(
        &mut host.vfioctl("exit:0"),
        host.root(),
        host.qemu_dir.path(),
        line,
    )
}

fn vf_mac(host: &Host, index: usize) -> String {
    let out = host.run("exit:0", &["--json", "vf", "list", PF]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["pfs"][0]["vfs"][index]["link"]["mac"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn apply_makes_the_vfs_sets_the_mac_binds_and_restore_vm_gives_it_all_back() {
    let host = new_host(qemu_x86(QemuTopo::Sriov), &web(PF, Some(4), 3));
    let before = common::kernel_state(&host.tree);
    for (name, line) in [
        ("vm_sriov_list", "vm list"),
        ("vm_sriov_check", "vm check web"),
        ("vm_sriov_status", "status"),
        ("vm_sriov_apply_dry_run", "apply --dry-run"),
        ("vm_sriov_run_dry_run", "run --dry-run web"),
    ] {
        insta::assert_snapshot!(name, shown(&host, line));
    }
    common::assert_same(&before, &common::kernel_state(&host.tree), "dry runs");
    for (name, line) in [
        ("vm_sriov_apply", "apply"),
        ("vm_sriov_status_applied", "status"),
        ("vm_sriov_apply_again", "apply"),
        ("vm_sriov_qemu_args_applied", "vm qemu-args web"),
    ] {
        insta::assert_snapshot!(name, shown(&host, line));
    }
    assert_eq!(host.driver(VF3).as_deref(), Some("vfio-pci"));
    assert_eq!(vf_mac(&host, 3), MAC);
    let out = host.run("exit:0", &["--json", "status"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let vf = &doc["vms"][0]["vfs"][0];
    assert_eq!(
        (&vf["address"], &vf["state"], &vf["mac"], &vf["link_mac"]),
        (
            &serde_json::json!(VF3),
            &serde_json::json!("bound"),
            &serde_json::json!(MAC),
            &serde_json::json!(MAC)
        ),
        "{doc}"
    );
    let out = host.run("exit:0", &["--json", "vm", "check", "web"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["sriov"]["pfs"][0]["steps"],
        serde_json::json!([]),
        "{doc}"
    );
    assert_eq!(doc["sriov"]["links"], serde_json::json!([]), "{doc}");
    for (name, line) in [
        ("vm_sriov_restore_vm_dry_run", "restore --vm web --dry-run"),
        ("vm_sriov_restore_vm", "restore --vm web"),
        ("vm_sriov_status_restored", "status"),
    ] {
        insta::assert_snapshot!(name, shown(&host, line));
    }
    common::assert_same(
        &before,
        &common::kernel_state(&host.tree),
        "apply, restore --vm",
    );
    assert!(!host.journal().contains(PF), "{}", host.journal());
}

#[test]
fn recover_gives_back_what_apply_set_up() {
    // No numvfs: the VF's index says how many.
    let host = new_host(qemu_x86(QemuTopo::Sriov), &web(PF, None, 3));
    let before = common::kernel_state(&host.tree);
    let out = host.run("exit:0", &["apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(host.driver(VF3).as_deref(), Some("vfio-pci"));
    let out = host.run("exit:0", &["--json", "recover"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["result"], "restored", "{doc}");
    common::assert_same(&before, &common::kernel_state(&host.tree), "apply, recover");
    assert!(!host.journal().contains(PF), "{}", host.journal());
}

#[test]
fn run_sets_up_hands_over_and_gives_back_the_vf() {
    let host = new_host(qemu_x86(QemuTopo::Sriov), &web(PF, Some(4), 3));
    let before = common::kernel_state(&host.tree);
    let out = host.run("exit:0", &["run", "web"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("set up the VM's VFs"), "{stderr}");
    assert!(
        host.recorded("argv")
            .contains(&format!("vfio-pci,host={VF3}")),
        "{}",
        host.recorded("argv")
    );
    common::assert_same(&before, &common::kernel_state(&host.tree), "run");
    assert!(!host.journal().contains(PF), "{}", host.journal());
}

#[test]
fn a_pf_with_enough_vfs_keeps_them_and_only_the_mac_is_set_and_given_back() {
    let host = new_host(qemu_x86(QemuTopo::Sriov), &web(PF, Some(2), 1));
    let before = common::kernel_state(&host.tree);
    insta::assert_snapshot!(
        "vm_sriov_apply_dry_run_enough",
        shown(&host, "apply --dry-run")
    );
    let out = host.run("exit:0", &["apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(vf_mac(&host, 1), MAC);
    assert_eq!(host.driver("0000:01:10.2").as_deref(), Some("vfio-pci"));
    let out = host.run("exit:0", &["restore", "--vm", "web"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    common::assert_same(&before, &common::kernel_state(&host.tree), "apply, restore");
}

/// Each fault stops the VM part way, after the VFs were made: apply and run give back what
/// they set up, and QEMU never starts.
#[test]
fn a_failure_part_way_leaves_the_tree_as_it_began() {
    let faults = [
        ("sriov_numvfs", Some("4"), FaultAction::Fail(Errno::Ebusy)),
        ("netlink/", None, FaultAction::Fail(Errno::Einval)),
        ("drivers_probe", None, FaultAction::ProbeNoBind),
    ];
    for (path, value, action) in faults {
        for command in [&["apply"][..], &["run", "web"][..]] {
            let host = new_host(qemu_x86(QemuTopo::Sriov), &web(PF, Some(4), 3));
            let before = common::kernel_state(&host.tree);
            let fault = Fault {
                when: FaultMatch {
                    path_contains: Some(path.to_owned()),
                    value: value.map(str::to_owned),
                    ..FaultMatch::default()
                },
                action: action.clone(),
            };
            host.tree.kernel().unwrap().add_fault(fault).unwrap();
            let out = host.run("exit:0", command);
            let what = format!("{command:?} with a fault on {path}");
            assert_eq!(out.status.code(), Some(1), "{what}: {}", text(&out.stderr));
            assert!(
                host.recorded("argv").is_empty(),
                "{what}: QEMU must not start"
            );
            host.tree.kernel().unwrap().clear_faults().unwrap();
            common::assert_same(&before, &common::kernel_state(&host.tree), &what);
            assert!(!host.journal().contains(PF), "{what}: {}", host.journal());
        }
    }
}

#[test]
fn a_qemu_that_is_not_there_gives_back_the_vfs_made_for_the_run() {
    let definition = web(PF, Some(4), 3).replace("@QEMU@", "/nonexistent/qemu-system-x86_64");
    let host = new_host(qemu_x86(QemuTopo::Sriov), &definition);
    let before = common::kernel_state(&host.tree);
    let out = host.run("exit:0", &["run", "web"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not installed"), "{stderr}");
    common::assert_same(&before, &common::kernel_state(&host.tree), "run");
    assert!(!host.journal().contains(PF), "{}", host.journal());
}

#[test]
fn refusals_change_nothing_and_say_why() {
    // More VFs than the PF offers (7), a PF whose VF is held, a device that is no PF, an address
    // the host lacks, and a permanent MAC no interface has.
    let over = new_host(qemu_x86(QemuTopo::Sriov), &web(PF, None, 7));
    let held = new_host(hosts::sriov_vf_on_vfio(), &web(PF, Some(4), 3));
    let not_pf = new_host(qemu_x86(QemuTopo::Sriov), &web("0000:00:10.0", Some(1), 0));
    let absent = new_host(qemu_x86(QemuTopo::Sriov), &web("0000:09:00.0", Some(1), 0));
    let no_mac = new_host(
        qemu_x86(QemuTopo::Sriov),
        &web("3c:fd:fe:00:00:99", Some(1), 0),
    );
    for (name, host) in [
        ("vm_sriov_over_totalvfs", &over),
        ("vm_sriov_vf_held", &held),
        ("vm_sriov_not_a_pf", &not_pf),
        ("vm_sriov_no_such_pf", &absent),
        ("vm_sriov_no_pf_with_that_mac", &no_mac),
    ] {
        let before = common::kernel_state(&host.tree);
        let shown_apply = shown(host, "apply");
        let shown_check = shown(host, "vm check web");
        insta::assert_snapshot!(name, format!("{shown_check}\n{shown_apply}"));
        let out = host.run("exit:0", &["run", "web"]);
        assert_eq!(out.status.code(), Some(3), "{name}: {}", text(&out.stderr));
        common::assert_same(&before, &common::kernel_state(&host.tree), name);
    }
}

#[test]
fn a_vf_another_vm_holds_is_never_taken_by_recreating_the_vfs() {
    let host = new_host(qemu_x86(QemuTopo::Sriov), &web(PF, Some(4), 3));
    host.define(
        "db",
        "version = 1\nboot = true\nvf = { pf = \"0000:01:00.0\", index = 0 }\n",
    );
    // `db` is applied first (file order is name order: db, web), then `web` needs more VFs.
    insta::assert_snapshot!("vm_sriov_other_owner_holds_a_vf", shown(&host, "apply"));
    assert_eq!(host.driver("0000:01:10.0").as_deref(), Some("vfio-pci"));
    let pf_dir = host.root().join("sys/bus/pci/devices").join(PF);
    let numvfs = std::fs::read_to_string(pf_dir.join("sriov_numvfs")).unwrap();
    assert_eq!(numvfs.trim(), "2", "web must not re-create db's VF");
}

/// Renames the PF's interface's current MAC, as `ip link set DEV address M` does.
fn change_pf_mac(host: &Host, mac: &str) {
    let net = host.root().join("sys/bus/pci/devices").join(PF).join("net");
    let name = std::fs::read_dir(net)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    host.tree
        .kernel()
        .unwrap()
        .set_interface_address(name.to_str().unwrap(), mac)
        .unwrap();
}

#[test]
fn the_pf_is_found_by_its_permanent_mac_never_by_a_mac_someone_set() {
    const PERMANENT: &str = "52:54:00:01:00:00";
    const SET: &str = "02:00:00:00:00:99";
    let host = Host::new(common::shown::host(qemu_x86(QemuTopo::Sriov)));
    let by = |mac: &str| {
        host.define(
            "mac",
            &format!(
                "version = 1\nvf = {{ pf = \"{mac}\", index = 1 }}\n[qemu]\nmachine = \"q35\"\n"
            ),
        );
        host.run("exit:0", &["vm", "qemu-args", "mac"])
    };
    change_pf_mac(&host, SET);
    // netlink's IFLA_PERM_ADDRESS: the permanent MAC still names the PF, the one set does not.
    let out = by(PERMANENT);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("host=0000:01:10.2"));
    let out = by(SET);
    assert_eq!(out.status.code(), Some(2));
    let root = host.root().display().to_string();
    insta::assert_snapshot!(
        "vm_sriov_pf_by_a_mac_someone_set",
        text(&out.stderr).replace(&root, "[ROOT]")
    );
    // A kernel without IFLA_PERM_ADDRESS: sysfs `address` counts only while addr_assign_type
    // says it is the device's own.
    let mut state = KernelState::load(host.root()).unwrap();
    state.no_perm_address = true;
    state.save(host.root()).unwrap();
    assert_eq!(by(PERMANENT).status.code(), Some(2));
    assert_eq!(by(SET).status.code(), Some(2));
    change_pf_mac(&host, PERMANENT);
    let iface = std::fs::read_dir(host.root().join("sys/bus/pci/devices").join(PF).join("net"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // Set back by hand it is still a set address: only a driver's bind makes it permanent again.
    assert_eq!(by(PERMANENT).status.code(), Some(2));
    std::fs::write(iface.join("addr_assign_type"), "0\n").unwrap();
    assert_eq!(by(PERMANENT).status.code(), Some(0));
}

#[test]
fn a_boot_vm_whose_vf_is_missing_is_refused_and_other_vms_do_not_matter() {
    let host = Host::new(common::shown::host(qemu_x86(QemuTopo::Sriov)));
    // Not bound at boot: apply does not read its VFs at all.
    host.define(
        "later",
        "version = 1\nvf = { pf = \"0000:01:00.0\", index = 6 }\n",
    );
    host.define(
        "db",
        "version = 1\nboot = true\nvf = { pf = \"0000:01:00.0\", index = 5 }\n",
    );
    let before = common::kernel_state(&host.tree);
    insta::assert_snapshot!("vm_sriov_boot_vf_missing", shown(&host, "apply"));
    common::assert_same(&before, &common::kernel_state(&host.tree), "apply");
}
