//! `list`, `groups` and `show` of the test binary (vfioctl's entry point) on simulated kernels.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use common::{json, tree, vfioctl};
use serde_json::Value;
use vfioctl_sim::topology;

fn group_of<'a>(groups: &'a Value, address: &str) -> &'a Value {
    groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| {
            g["devices"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d == address)
        })
        .unwrap_or_else(|| panic!("no group holds {address}"))
}

#[test]
fn ten64_minipcie_cards_share_the_root_port_group() {
    let t = tree(topology::ten64());
    let groups = json(t.root(), &["groups"], 0);
    assert_eq!(groups["version"], 1);
    assert_eq!(groups["iommu_enabled"], true);
    let g = group_of(&groups, "0001:03:00.0");
    let devices: Vec<&str> = g["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(
        devices,
        [
            "0001:00:00.0",
            "0001:01:00.0",
            "0001:02:01.0",
            "0001:02:02.0",
            "0001:03:00.0",
            "0001:04:00.0"
        ]
    );
    assert_eq!(g["shared"], true);
    assert_eq!(g["reason"]["kind"], "acs_missing_upstream");
    assert_eq!(g["reason"]["device"], "0001:00:00.0");
    assert!(
        g["reason"]["text"]
            .as_str()
            .unwrap()
            .contains("0001:03:00.0 and 0001:04:00.0 must go to the same VM")
    );
    let coral = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["address"] == "0001:04:00.0")
        .unwrap();
    assert_eq!(coral["driver"], Value::Null);
    let nvme = group_of(&groups, "0002:01:00.0");
    assert_ne!(nvme["id"], g["id"]);
}

#[test]
fn ten64_list_json_has_the_stable_fields() {
    let t = tree(topology::ten64());
    let list = json(t.root(), &["list"], 0);
    let devices = list["devices"].as_array().unwrap();
    let wifi = devices
        .iter()
        .find(|d| d["address"] == "0001:03:00.0")
        .unwrap();
    assert_eq!(wifi["vendor_id"], "168c");
    assert_eq!(wifi["device_id"], "003e");
    assert_eq!(wifi["class"], "028000");
    assert_eq!(wifi["driver"], "ath10k_pci");
    assert_eq!(wifi["driver_override"], Value::Null);
    assert_eq!(wifi["is_bridge"], false);
    assert_eq!(wifi["parent"], "0001:02:01.0");
    assert!(wifi["iommu_group"].is_u64());
    let port = devices
        .iter()
        .find(|d| d["address"] == "0001:00:00.0")
        .unwrap();
    assert_eq!(port["is_bridge"], true);
    assert_eq!(port["parent"], Value::Null);
}

#[test]
fn desktop_gpu_and_audio_share_a_group_named_by_the_root_port() {
    let t = tree(topology::x86_desktop());
    let groups = json(t.root(), &["groups"], 0);
    let g = group_of(&groups, "0000:01:00.0");
    assert!(
        g["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == "0000:01:00.1")
    );
    assert_eq!(g["reason"]["kind"], "acs_missing_upstream");
    assert_eq!(g["reason"]["device"], "0000:00:01.0");
    // Devices behind ACS root ports are alone (with nothing but themselves).
    let list = json(t.root(), &["list"], 0);
    for d in list["devices"].as_array().unwrap() {
        let Some(parent) = d["parent"].as_str() else {
            continue;
        };
        if parent.starts_with("0000:00:1c") {
            let g = group_of(&groups, d["address"].as_str().unwrap());
            assert_eq!(g["shared"], false, "{} should be alone", d["address"]);
            assert_eq!(g["reason"]["kind"], "single");
        }
    }
}

#[test]
fn filters_select_by_address_id_and_driver() {
    let t = tree(topology::ten64());
    let by_slot = json(t.root(), &["list", "-s", "0001:04:00.0"], 0);
    assert_eq!(by_slot["devices"].as_array().unwrap().len(), 1);
    let by_id = json(t.root(), &["list", "-d", "168c:003e"], 0);
    assert_eq!(by_id["devices"][0]["address"], "0001:03:00.0");
    let none = json(t.root(), &["list", "--driver", "none"], 0);
    assert!(
        none["devices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["driver"].is_null())
    );
    // 00:00.0 exists in domains 0000, 0001 and 0002: a short address names domain 0.
    let short = json(t.root(), &["list", "-s", "00:00.0"], 0);
    assert_eq!(short["devices"][0]["address"], "0000:00:00.0");
    assert_eq!(short["devices"].as_array().unwrap().len(), 1);
    // -s repeats; a read command shows the one match in another domain and says so.
    vfioctl(t.root())
        .args(["list", "-s", "00:00.0", "-s", "03:00.0"])
        .assert()
        .code(0)
        .stdout(predicates::str::contains("0001:03:00.0"))
        .stderr(predicates::str::contains(
            "03:00.0 is not in domain 0000 (a short address names domain 0); showing 0001:03:00.0",
        ));
    let vendor = json(t.root(), &["list", "-d", "168c:*"], 0);
    assert_eq!(vendor["devices"][0]["address"], "0001:03:00.0");
    assert_eq!(json(t.root(), &["list", "-d", "168c"], 0), vendor);
}

#[test]
fn bad_input_gets_one_sentence_and_exit_2() {
    let t = tree(topology::ten64());
    for args in [
        vec!["show", "zz:zz"],
        vec!["show", "0003:00:00.0"],
        vec!["list", "-d", "nonsense"],
    ] {
        let out = vfioctl(t.root()).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert_cmd::Command::cargo_bin("vfioctl-testbin")
        .unwrap()
        .args(["--root", "/nonexistent", "list"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("not a usable root"));
}

#[test]
fn damaged_trees_are_reported_not_panicked_on() {
    // (attribute, content, command whose exit must be 2): `list` and `groups` read IDs and
    // class from config space; `show` reads every attribute.
    let damages: [(&str, &[u8], &str); 6] = [
        ("vendor", b"garbage\n", "show"),
        ("vendor", b"", "show"),
        ("class", b"0x12345678901234\n", "show"),
        ("device", &[0xff, 0xfe, 0x00, 0x80], "show"),
        ("class", b"", "show"),
        ("config", b"", ""),
    ];
    for (attr, content, failing) in damages {
        let t = tree(topology::ten64());
        let dir = std::fs::canonicalize(t.root().join("sys/bus/pci/devices/0001:03:00.0")).unwrap();
        std::fs::write(dir.join(attr), content).unwrap();
        for cmd in [vec!["list"], vec!["groups"], vec!["show", "0001:03:00.0"]] {
            let out = vfioctl(t.root()).args(&cmd).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stderr.contains("panicked"), "{attr} {cmd:?}: {stderr}");
            if cmd[0] == failing {
                assert_eq!(out.status.code(), Some(2), "{attr} {cmd:?}: {stderr}");
                assert!(stderr.contains(attr), "{attr}: {stderr}");
            } else {
                assert!(
                    matches!(out.status.code(), Some(0 | 2)),
                    "{attr} {cmd:?}: {stderr}"
                );
            }
        }
    }
    // With config space unreadable the IDs come from the attributes, and garbage there is named.
    let t = tree(topology::ten64());
    let dir = std::fs::canonicalize(t.root().join("sys/bus/pci/devices/0001:03:00.0")).unwrap();
    std::fs::write(dir.join("config"), b"").unwrap();
    std::fs::write(dir.join("vendor"), b"zzz\n").unwrap();
    // The device is skipped with a warning naming the attribute; the others are still listed.
    let out = vfioctl(t.root()).args(["list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("vendor"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0001:04:00.0"));
}

#[test]
fn symlink_loops_and_escapes_are_reported() {
    let t = tree(topology::ten64());
    let link = t.root().join("sys/bus/pci/devices/0001:03:00.0");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../../../etc", &link).unwrap();
    let out = vfioctl(t.root()).args(["list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside the root"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("0001:03:00.0"));
}

#[test]
fn show_tells_everything_about_one_device() {
    let t = tree(topology::ten64());
    let show = json(t.root(), &["show", "0002:01:00.0"], 0);
    assert_eq!(show["device"]["driver"], "nvme");
    assert_eq!(show["mounts"][0]["mount_points"][0], "/");
    assert_eq!(show["upstream"][0]["address"], "0002:00:00.0");
    assert_eq!(show["upstream"][0]["acs_isolates"], false);
    let text = vfioctl(t.root())
        .args(["show", "0001:03:00.0"])
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("why shared:"), "{text}");
    assert!(text.contains("upstream:         0001:02:01.0"), "{text}");
}

#[test]
fn list_of_a_4096_function_host_finishes() {
    let t = tree(topology::sriov_host(4096));
    let list = json(t.root(), &["list"], 0);
    assert!(list["devices"].as_array().unwrap().len() >= 4000);
}

#[test]
fn real_sysfs_of_this_machine_reads_without_error() {
    if !std::path::Path::new("/sys/bus/pci/devices").is_dir() {
        eprintln!("skipped: this machine has no /sys/bus/pci");
        return;
    }
    for cmd in ["list", "groups"] {
        let out = assert_cmd::Command::cargo_bin("vfioctl-testbin")
            .unwrap()
            .args([cmd, "--json"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["version"], 1);
    }
}
