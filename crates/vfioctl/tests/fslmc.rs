//! DPAA2 containers on the simulated Ten64's fsl-mc bus: bind, restore, refusals, rollback.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use common::{assert_same, json, kernel_state, tree, vfioctl};
use vfioctl_sim::{Errno, Fault, FaultAction, FaultMatch, topology};

fn object_driver(root: &std::path::Path, name: &str) -> Option<String> {
    std::fs::read_link(
        root.join("sys/bus/fsl-mc/devices")
            .join(name)
            .join("driver"),
    )
    .ok()
    .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// The kernel gives a container its IOMMU group the first time a driver probes it and never takes
/// it away, so a bind-then-restore may leave exactly that link behind (kernels before 6.15).
fn without_group_links(mut snap: vfioctl_sim::Snapshot) -> vfioctl_sim::Snapshot {
    snap.0.retain(|path, _| {
        !path.ends_with("/iommu_group") && !path.starts_with("sys/kernel/iommu_groups")
    });
    snap
}

#[test]
fn list_json_has_fsl_mc_objects_under_their_own_key() {
    let t = tree(topology::ten64_dpaa2());
    let list = json(t.root(), &["list"], 0);
    let objects = list["fsl_mc"].as_array().unwrap();
    let dprc1 = objects.iter().find(|o| o["name"] == "dprc.1").unwrap();
    assert_eq!(dprc1["driver"], "fsl_mc_dprc");
    assert_eq!(dprc1["container"], serde_json::Value::Null);
    let dpni = objects.iter().find(|o| o["name"] == "dpni.0").unwrap();
    assert_eq!(dpni["container"], "dprc.1");
    assert!(
        list["devices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d.get("name").is_none())
    );
}

#[test]
fn bind_then_restore_of_dprc2_leaves_the_tree_as_it_began() {
    let t = tree(topology::ten64_dpaa2());
    let root = t.root();
    let before = without_group_links(kernel_state(&t));
    vfioctl(root).args(["bind", "dprc.2"]).assert().code(0);
    assert_eq!(
        object_driver(root, "dprc.2").as_deref(),
        Some("vfio-fsl-mc")
    );
    // Its objects appear once vfio-fsl-mc scans it, each taken by vfio-fsl-mc too.
    let list = json(root, &["list"], 0);
    let children: Vec<_> = list["fsl_mc"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["container"] == "dprc.2")
        .collect();
    assert!(children.len() >= 5, "{children:?}");
    assert!(children.iter().all(|c| c["driver"] == "vfio-fsl-mc"));
    vfioctl(root)
        .args(["qemu-args", "--machine", "virt", "dprc.2"])
        .assert()
        .code(0)
        .stdout(predicates::str::contains("-device vfio-fsl-mc,host=dprc.2"));
    vfioctl(root).args(["restore", "dprc.2"]).assert().code(0);
    assert_eq!(object_driver(root, "dprc.2"), None);
    assert_same(
        &before,
        &without_group_links(kernel_state(&t)),
        "dprc.2 bind then restore",
    );
}

#[test]
fn the_root_container_is_refused_even_with_force() {
    let t = tree(topology::ten64_dpaa2());
    let before = kernel_state(&t);
    for args in [vec!["bind", "dprc.1"], vec!["bind", "dprc.1", "--force"]] {
        let out = vfioctl(t.root()).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("root container"));
    }
    assert_same(&before, &kernel_state(&t), "refused");
}

#[test]
fn a_failure_at_every_write_of_a_container_bind_rolls_back() {
    let probe = tree(topology::ten64_dpaa2());
    vfioctl(probe.root())
        .args(["bind", "dprc.2"])
        .assert()
        .code(0);
    let total = probe.kernel().unwrap().writes_done();
    assert!(total >= 2, "saw {total} writes");
    for step in 0..total {
        let t = tree(topology::ten64_dpaa2());
        let before = without_group_links(kernel_state(&t));
        t.kernel()
            .unwrap()
            .add_fault(Fault {
                when: FaultMatch {
                    step: Some(step),
                    ..FaultMatch::default()
                },
                action: FaultAction::Fail(Errno::Ebusy),
            })
            .unwrap();
        let out = vfioctl(t.root()).args(["bind", "dprc.2"]).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "step {step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.kernel().unwrap().clear_faults().unwrap();
        assert_same(
            &before,
            &without_group_links(kernel_state(&t)),
            &format!("fault at write {step}"),
        );
    }
}

#[test]
fn a_pci_group_and_a_container_are_one_plan_and_one_json_document() {
    let t = tree(topology::ten64_dpaa2());
    let before = kernel_state(&t);
    let doc = json(
        t.root(),
        &["bind", "0001:03:00.0", "dprc.2", "--dry-run"],
        0,
    );
    assert_eq!(doc["result"], "planned");
    let bound: Vec<&str> = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["disposition"] == "bind")
        .map(|d| d["device"].as_str().unwrap())
        .collect();
    assert_eq!(bound, ["0001:03:00.0", "0001:04:00.0", "dprc.2"]);
    let writes: Vec<&str> = doc["writes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["path"].as_str().unwrap())
        .collect();
    assert!(writes.iter().any(|p| p.starts_with("/sys/bus/pci/")));
    assert!(writes.iter().any(|p| p.starts_with("/sys/bus/fsl-mc/")));
    assert_same(&before, &kernel_state(&t), "dry run");
}

#[test]
fn a_refused_container_refuses_the_pci_devices_named_with_it() {
    let t = tree(topology::ten64_dpaa2());
    let before = kernel_state(&t);
    let out = vfioctl(t.root())
        .args(["bind", "0001:03:00.0", "dprc.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dprc.1 is the root container"));
    assert_same(&before, &kernel_state(&t), "refused, nothing written");
    let doc = json(
        t.root(),
        &["bind", "0001:03:00.0", "dprc.1", "--dry-run"],
        3,
    );
    assert_eq!(doc["result"], "refused");
    assert_eq!(doc["refusals"][0]["device"], "dprc.1");
}

#[test]
fn a_failure_at_every_write_of_a_mixed_bind_rolls_back_both_buses() {
    let probe = tree(topology::ten64_dpaa2());
    let k = probe.kernel().unwrap();
    let steps0 = k.steps_done();
    vfioctl(probe.root())
        .args(["bind", "0001:03:00.0", "dprc.2"])
        .assert()
        .code(0);
    let total = k.steps_done() - steps0;
    for step in 0..total {
        let t = tree(topology::ten64_dpaa2());
        let before = without_group_links(kernel_state(&t));
        let k = t.kernel().unwrap();
        k.add_fault(Fault {
            when: FaultMatch {
                step: Some(k.steps_done() + step),
                ..FaultMatch::default()
            },
            action: FaultAction::Fail(Errno::Ebusy),
        })
        .unwrap();
        let out = vfioctl(t.root())
            .args(["bind", "0001:03:00.0", "dprc.2"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "step {step}");
        k.clear_faults().unwrap();
        assert_same(
            &before,
            &without_group_links(kernel_state(&t)),
            &format!("fault at step {step} of the mixed plan"),
        );
    }
}

#[test]
fn a_vm_listing_the_root_container_is_refused_before_anything_runs() {
    let t = tree(topology::ten64_dpaa2());
    let dir = t.root().join("etc/vfioctl/vms");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bad.toml"),
        "version = 1\nboot = true\ndprc = [\"dprc.1\"]\n\n[qemu]\nbinary = \"/bin/true\"\nmachine = \"virt\"\n",
    )
    .unwrap();
    let before = kernel_state(&t);
    for args in [
        vec!["vm", "check", "bad"],
        vec!["apply", "--dry-run"],
        vec!["run", "bad", "--dry-run"],
        vec!["apply"],
        vec!["run", "bad"],
    ] {
        let out = vfioctl(t.root()).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            all.contains("dprc.1 is the root container"),
            "{args:?}: {all}"
        );
    }
    assert_same(&before, &kernel_state(&t), "refused VM");
}
