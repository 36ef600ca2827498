//! `groups --predict` and `slots` on simulated hosts: the prediction from config space must equal
//! the groups the simulated kernel forms, and say what it rests on.

mod common;

use std::collections::BTreeSet;

use common::{json, tree, vfioctl};
use serde_json::Value;
use vfioctl_sim::{QemuTopo, SimBuilder, topology};

fn iommu_off(mut b: SimBuilder) -> SimBuilder {
    b.host.iommu = None;
    b
}

fn text(root: &std::path::Path, args: &[&str]) -> String {
    let out = vfioctl(root).args(args).output().expect("run vfioctl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn ten64_with_the_iommu_off_predicts_one_group_for_the_minipcie_switch() {
    let t = tree(iommu_off(topology::ten64()));
    let doc = json(t.root(), &["groups", "--predict"], 0);
    assert_eq!(doc["predicted"], true);
    assert_eq!(doc["iommu_enabled"], false);
    assert_eq!(doc["platform"]["firmware"], "device_tree");
    let want: BTreeSet<String> = [
        "0001:00:00.0",
        "0001:01:00.0",
        "0001:02:01.0",
        "0001:02:02.0",
        "0001:03:00.0",
        "0001:04:00.0",
    ]
    .map(String::from)
    .into();
    assert!(
        common::group_sets(&doc["groups"]).contains(&want),
        "{doc:#}"
    );
    let shared = doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["devices"].as_array().unwrap().len() == 6)
        .unwrap();
    assert_eq!(shared["reason"]["kind"], "acs_missing_upstream");
    assert_eq!(shared["reason"]["device"], "0001:00:00.0");
    assert!(!shared["facts"].as_array().unwrap().is_empty());
    insta::assert_snapshot!("ten64_predict", text(t.root(), &["groups", "--predict"]));
}

#[test]
fn ten64_slots_say_neither_minipcie_slot_isolates() {
    let t = tree(iommu_off(topology::ten64()));
    let doc = json(t.root(), &["slots"], 0);
    for port in ["0001:02:01.0", "0001:02:02.0"] {
        let p = doc["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == port)
            .unwrap_or_else(|| panic!("{port} listed: {doc:#}"));
        assert_eq!(p["isolates"], false);
        assert_eq!(p["breaker"], port, "the downstream port has no ACS");
        assert!(p["text"].as_str().unwrap().contains("breaks isolation"));
    }
    insta::assert_snapshot!("ten64_slots", text(t.root(), &["slots"]));
}

#[test]
fn predictions_equal_the_simulated_kernels_groups() {
    let mut hosts = vec![
        ("ten64", topology::ten64()),
        ("x86-desktop", topology::x86_desktop()),
        // VFs at functions 1 to 7 of their slot: never multifunction to the kernel.
        ("sriov", topology::sriov_host(64)),
    ];
    for topo in [
        QemuTopo::RootPorts,
        QemuTopo::RootPortsNoAcs,
        QemuTopo::Switch,
        QemuTopo::PciBridge,
        QemuTopo::MultiFunction,
    ] {
        hosts.push(("qemu-x86", topology::qemu_x86(topo)));
        hosts.push(("qemu-arm64", topology::qemu_arm64(topo)));
    }
    for (name, b) in hosts {
        let kernel_groups = common::group_sets(&json_groups(&b));
        let t = tree(b);
        let doc = json(t.root(), &["groups", "--predict"], 0);
        let predicted = common::group_sets(&doc["groups"]);
        // Members that join once a driver binds (arm64 before 6.15) have no group yet. The
        // simulated Ten64 gives its driverless Coral one at boot all the same (its 6.6 kernel
        // would not), so they are left out of both sides.
        let awaiting: BTreeSet<String> = doc["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["awaiting_driver"].as_array().unwrap().iter())
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        let without = |groups: BTreeSet<BTreeSet<String>>, out: &BTreeSet<String>| {
            groups
                .into_iter()
                .map(|g| g.difference(out).cloned().collect::<BTreeSet<_>>())
                .filter(|g| !g.is_empty())
                .collect::<BTreeSet<_>>()
        };
        let kernel = without(kernel_groups, &awaiting);
        // Devices the kernel leaves without a group are named differences, not group members.
        let ungrouped: BTreeSet<String> = doc["differences"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"] == "kernel_ungrouped")
            .flat_map(|d| d["devices"].as_array().unwrap().iter())
            .map(|a| a.as_str().unwrap().to_owned())
            .chain(awaiting.iter().cloned())
            .collect();
        let predicted: BTreeSet<BTreeSet<String>> = predicted
            .into_iter()
            .map(|g| g.difference(&ungrouped).cloned().collect::<BTreeSet<_>>())
            .filter(|g| !g.is_empty())
            .collect();
        assert_eq!(predicted, kernel, "{name}: {doc:#}");
        let unexplained: Vec<&Value> = doc["differences"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"] != "kernel_ungrouped")
            .collect();
        assert!(unexplained.is_empty(), "{name}: {unexplained:#?}");
    }
}

fn json_groups(b: &SimBuilder) -> Value {
    Value::Array(
        b.groups()
            .values()
            .map(|m| serde_json::json!({ "devices": m }))
            .collect(),
    )
}

#[test]
fn kernel_option_is_checked() {
    let t = tree(topology::ten64());
    let out = vfioctl(t.root())
        .args(["groups", "--predict", "--kernel", "six"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a kernel release"));
}
