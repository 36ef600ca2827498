//! `bind` and `restore` of the real binary against the simulated kernel: plans, refusals,
//! rollback at every step, idempotence, concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use common::{assert_same, driver, json, kernel_state, override_of, tree, vfioctl};
use vfioctl_sim::{Fault, FaultAction, FaultMatch, topology};

#[test]
fn ten64_bind_takes_the_whole_group_and_restore_gives_everything_back() {
    let t = tree(topology::ten64());
    let root = t.root();
    let before = kernel_state(&t);

    let out = json(root, &["bind", "0001:03:00.0"], 0);
    assert_eq!(out["result"], "bound");
    assert_eq!(driver(root, "0001:03:00.0").as_deref(), Some("vfio-pci"));
    assert_eq!(driver(root, "0001:04:00.0").as_deref(), Some("vfio-pci"));
    for port in [
        "0001:00:00.0",
        "0001:01:00.0",
        "0001:02:01.0",
        "0001:02:02.0",
    ] {
        assert_eq!(driver(root, port).as_deref(), Some("pcieport"), "{port}");
    }
    let group = out["groups"][0].as_u64().unwrap();
    assert!(root.join(format!("dev/vfio/{group}")).exists());
    assert!(
        t.kernel()
            .unwrap()
            .dynamic_ids("vfio-pci")
            .unwrap()
            .is_empty(),
        "new_id was used"
    );

    let out = json(root, &["restore", "0001:03:00.0"], 0);
    assert_eq!(out["result"], "restored");
    assert_eq!(driver(root, "0001:03:00.0").as_deref(), Some("ath10k_pci"));
    assert_eq!(driver(root, "0001:04:00.0"), None);
    assert_eq!(override_of(root, "0001:03:00.0"), None);
    assert_eq!(override_of(root, "0001:04:00.0"), None);
    assert_same(&before, &kernel_state(&t), "bind then restore");
}

#[test]
fn ten64_nvme_holding_root_is_refused_with_exit_3() {
    let t = tree(topology::ten64());
    let before = kernel_state(&t);
    let out = vfioctl(t.root())
        .args(["bind", "0002:01:00.0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("0002:01:00.0") && stderr.contains("mounted on /"),
        "{stderr}"
    );
    assert_same(&before, &kernel_state(&t), "refused bind");
}

#[test]
fn dry_run_json_lists_devices_and_exact_writes_and_changes_nothing() {
    let t = tree(topology::ten64());
    let before = kernel_state(&t);
    let plan = json(t.root(), &["bind", "--dry-run", "0001:04:00.0"], 0);
    assert_eq!(plan["version"], 1);
    assert_eq!(plan["result"], "planned");
    let devices = plan["devices"].as_array().unwrap();
    let wifi = devices
        .iter()
        .find(|d| d["address"] == "0001:03:00.0")
        .unwrap();
    assert_eq!(wifi["current_driver"], "ath10k_pci");
    assert_eq!(wifi["target_driver"], "vfio-pci");
    assert!(wifi["why"].as_str().unwrap().contains("shares IOMMU group"));
    let writes: Vec<(String, String)> = plan["writes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["path"].as_str().unwrap().to_owned(),
                w["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        writes[0],
        (
            "/sys/bus/pci/devices/0001:03:00.0/driver_override".into(),
            "vfio-pci".into()
        )
    );
    assert_eq!(
        writes[1],
        (
            "/sys/bus/pci/drivers/ath10k_pci/unbind".into(),
            "0001:03:00.0".into()
        )
    );
    assert_eq!(
        writes[2],
        ("/sys/bus/pci/drivers_probe".into(), "0001:03:00.0".into())
    );
    assert!(
        writes
            .iter()
            .all(|(p, _)| p.starts_with("/sys/") && !p.contains("new_id"))
    );
    assert!(plan["refusals"].as_array().unwrap().is_empty());
    assert_same(&before, &kernel_state(&t), "dry run");
}

#[test]
fn desktop_gpu_takes_its_audio_function() {
    let t = tree(topology::x86_desktop());
    let root = t.root();
    // The GPU drives the boot console in this fixture only if a vtconsole is bound; force past
    // the console refusal if there is one, since this test is about the group.
    let out = vfioctl(root)
        .args(["bind", "0000:01:00.0", "--force"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(driver(root, "0000:01:00.1").as_deref(), Some("vfio-pci"));
    assert_eq!(driver(root, "0000:00:01.0").as_deref(), Some("pcieport"));
    vfioctl(root).args(["restore", "--all"]).assert().code(0);
    assert_eq!(driver(root, "0000:01:00.0").as_deref(), Some("nvidia"));
    assert_eq!(
        driver(root, "0000:01:00.1").as_deref(),
        Some("snd_hda_intel")
    );
}

#[test]
fn desktop_nic_with_default_route_is_refused_and_id_lists_every_match() {
    let t = tree(topology::x86_desktop());
    let root = t.root();
    let nic = vfioctl(root).args(["bind", "enp3s0"]).output().unwrap();
    assert_eq!(nic.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&nic.stderr).contains("default route"));

    let plan = json(root, &["bind", "--dry-run", "8086:1533"], 3);
    let listed: Vec<&str> = plan["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["disposition"] == "bind")
        .map(|d| d["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed.len(),
        2,
        "both I210s are listed before anything is done: {listed:?}"
    );
    assert_eq!(plan["result"], "refused");
}

#[test]
fn only_binds_the_named_function_and_says_the_group_stays_unusable() {
    let t = tree(topology::ten64());
    let root = t.root();
    let out = vfioctl(root)
        .args(["bind", "--only", "0001:04:00.0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stays unusable"));
    assert_eq!(driver(root, "0001:03:00.0").as_deref(), Some("ath10k_pci"));
    assert_eq!(driver(root, "0001:04:00.0").as_deref(), Some("vfio-pci"));
    vfioctl(root)
        .args(["check", "0001:04:00.0"])
        .assert()
        .code(4);
}

#[test]
fn binding_a_bridge_is_refused() {
    let t = tree(topology::ten64());
    vfioctl(t.root())
        .args(["bind", "0001:02:01.0", "--force"])
        .assert()
        .code(3);
}

#[test]
fn bind_and_restore_are_idempotent() {
    let t = tree(topology::ten64());
    let root = t.root();
    vfioctl(root)
        .args(["bind", "0001:03:00.0"])
        .assert()
        .code(0);
    let again = json(root, &["bind", "0001:03:00.0"], 0);
    assert_eq!(again["result"], "nothing_to_do");
    vfioctl(root)
        .args(["check", "0001:03:00.0"])
        .assert()
        .code(0);
    vfioctl(root).args(["restore", "--all"]).assert().code(0);
    let again = json(root, &["restore", "--all"], 0);
    assert_eq!(again["result"], "nothing_to_do");
}

#[test]
fn probe_that_binds_nothing_and_missing_group_node_roll_back() {
    // Only the bind's probes misbehave; the rollback's bind back to ath10k_pci goes through.
    for action in [FaultAction::ProbeNoBind, FaultAction::NoVfioNode] {
        let t = tree(topology::ten64());
        let before = kernel_state(&t);
        let when = FaultMatch {
            path_contains: Some("drivers_probe".into()),
            ..FaultMatch::default()
        };
        t.kernel()
            .unwrap()
            .add_fault(Fault {
                when,
                action: action.clone(),
            })
            .unwrap();
        let out = vfioctl(t.root())
            .args(["bind", "0001:03:00.0"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{action:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.kernel().unwrap().clear_faults().unwrap();
        assert_same(&before, &kernel_state(&t), &format!("{action:?}"));
    }
}

#[test]
fn an_unbind_that_hangs_is_given_up_and_rolled_back() {
    let t = tree(topology::ten64());
    let before = kernel_state(&t);
    t.kernel()
        .unwrap()
        .add_fault(Fault {
            when: FaultMatch {
                path_contains: Some("ath10k_pci/unbind".into()),
                ..FaultMatch::default()
            },
            action: FaultAction::Block { millis: 3_000 },
        })
        .unwrap();
    let start = std::time::Instant::now();
    let out = vfioctl(t.root())
        .args(["bind", "0001:03:00.0", "--timeout", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not return"), "{stderr}");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(3),
        "vfioctl waited for the hung unbind"
    );
    // The blocked write completes later in the simulated kernel; then recovery restores the tree.
    std::thread::sleep(std::time::Duration::from_millis(3_200));
    t.kernel().unwrap().clear_faults().unwrap();
    vfioctl(t.root()).args(["recover"]).assert().code(0);
    assert_same(&before, &kernel_state(&t), "hung unbind then recover");
}

#[test]
fn corrupt_journal_is_reported_not_trusted() {
    let t = tree(topology::ten64());
    let root = t.root();
    vfioctl(root)
        .args(["bind", "0001:03:00.0"])
        .assert()
        .code(0);
    let journal = root.join("run/vfioctl/journal.json");
    let text = std::fs::read_to_string(&journal).unwrap();
    std::fs::write(&journal, &text[..text.len() / 2]).unwrap();
    let out = vfioctl(root).args(["restore", "--all"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("damaged"));
    assert_eq!(
        driver(root, "0001:03:00.0").as_deref(),
        Some("vfio-pci"),
        "nothing was done"
    );
}

#[test]
fn unwritable_run_means_no_write_at_all() {
    let t = tree(topology::ten64());
    let before = kernel_state(&t);
    // A file where the state directory should be: the journal cannot be written.
    std::fs::create_dir_all(t.root().join("run")).unwrap();
    std::fs::write(t.root().join("run/vfioctl"), "not a directory").unwrap();
    let out = vfioctl(t.root())
        .args(["bind", "0001:03:00.0"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was changed"));
    assert_eq!(t.kernel().unwrap().writes_done(), 0);
    std::fs::remove_file(t.root().join("run/vfioctl")).unwrap();
    assert_same(&before, &kernel_state(&t), "unwritable /run");
}

#[test]
fn concurrent_binds_of_one_group_leave_a_consistent_tree_and_journal() {
    let t = tree(topology::ten64());
    let root = t.root().to_path_buf();
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let root = root.clone();
            std::thread::spawn(move || {
                let device = if i % 2 == 0 {
                    "0001:03:00.0"
                } else {
                    "0001:04:00.0"
                };
                vfioctl(&root)
                    .args(["bind", device])
                    .output()
                    .unwrap()
                    .status
                    .code()
            })
        })
        .collect();
    let codes: Vec<Option<i32>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(codes.iter().all(|c| *c == Some(0)), "{codes:?}");
    let journal: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("run/vfioctl/journal.json")).unwrap(),
    )
    .unwrap();
    let entries = journal["entries"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        2,
        "one entry per device, recorded once: {entries:?}"
    );
    let wifi = entries
        .iter()
        .find(|e| e["original"]["device"] == "0001:03:00.0")
        .unwrap();
    assert_eq!(
        wifi["original"]["driver"], "ath10k_pci",
        "the original is the host driver, not vfio-pci"
    );
    vfioctl(&root).args(["restore", "--all"]).assert().code(0);
    assert_eq!(driver(&root, "0001:03:00.0").as_deref(), Some("ath10k_pci"));
}

#[test]
fn restore_without_journal_falls_back_to_the_default_driver_and_says_so() {
    let t = tree(topology::ten64());
    let root = t.root();
    vfioctl(root)
        .args(["bind", "0001:03:00.0"])
        .assert()
        .code(0);
    std::fs::remove_file(root.join("run/vfioctl/journal.json")).unwrap();
    let out = json(root, &["restore", "0001:03:00.0"], 0);
    let text = out["devices"][0]["result"].as_str().unwrap();
    assert!(text.contains("no journal entry"), "{text}");
    assert_eq!(driver(root, "0001:03:00.0").as_deref(), Some("ath10k_pci"));
}

#[test]
fn a_device_unplugged_mid_bind_ends_in_rollback_with_one_sentence() {
    let t = tree(topology::ten64());
    let root = t.root();
    // The TPU vanishes right after its driver_override is written.
    t.kernel()
        .unwrap()
        .add_fault(Fault {
            when: FaultMatch {
                path_contains: Some("0001:04:00.0/driver_override".into()),
                ..FaultMatch::default()
            },
            action: FaultAction::Unplug("0001:04:00.0".parse().unwrap()),
        })
        .unwrap();
    let out = vfioctl(root)
        .args(["bind", "0001:03:00.0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error: ")).count(),
        1,
        "{stderr}"
    );
    // What is still there is as it was: the Wi-Fi card is back on its driver.
    assert_eq!(driver(root, "0001:03:00.0").as_deref(), Some("ath10k_pci"));
    assert_eq!(override_of(root, "0001:03:00.0"), None);
    assert!(!root.join("sys/bus/pci/devices/0001:04:00.0").exists());
}

#[test]
fn user_gets_the_group_node_and_nobody_else() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let t = tree(topology::ten64());
    let root = t.root();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nqemu:x:64055:64055::/nonexistent:/usr/sbin/nologin\n",
    )
    .unwrap();
    let out = json(root, &["bind", "0001:03:00.0", "--user", "qemu"], 0);
    let group = out["groups"][0].as_u64().unwrap();
    let node = std::fs::metadata(root.join(format!("dev/vfio/{group}"))).unwrap();
    if rustix_is_root() {
        assert_eq!(node.uid(), 64055);
        assert_eq!(node.gid(), 64055);
    }
    assert_eq!(node.permissions().mode() & 0o777, 0o600);
    vfioctl(root)
        .args(["bind", "0001:03:00.0", "--user", "nosuchuser"])
        .assert()
        .code(2);
}

fn rustix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

#[test]
fn changing_the_real_root_without_privileges_is_refused_with_exit_5() {
    // Runs the binary as an unprivileged user against the real `/`: it must refuse before it
    // reads or writes anything (and could not write sysfs anyway).
    if !rustix_is_root()
        || std::process::Command::new("setpriv")
            .arg("--version")
            .output()
            .is_err()
    {
        eprintln!("skipped: needs root and setpriv to become an unprivileged user");
        return;
    }
    let binary = env!("CARGO_BIN_EXE_vfioctl");
    for args in [
        &["bind", "0000:00:01.0"][..],
        &["restore", "--all"][..],
        &["apply"][..],
    ] {
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", binary])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(5),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("needs root"));
    }
}

#[test]
fn the_iommu_backend_is_loaded_even_when_modprobe_skips_softdeps_and_unloaded_after() {
    // As with busybox modprobe: loading vfio-pci does not bring vfio_iommu_type1 along.
    let mut builder = topology::ten64();
    for module in ["vfio_pci", "vfio_pci_core", "vfio"] {
        if let Some(m) = builder.module_mut(module) {
            m.deps.retain(|d| d != "vfio_iommu_type1");
        }
    }
    let t = tree(builder);
    let root = t.root();
    let before = kernel_state(&t);
    assert!(!root.join("sys/module/vfio_iommu_type1").exists());
    vfioctl(root)
        .args(["bind", "0001:03:00.0"])
        .assert()
        .code(0);
    assert!(
        root.join("sys/module/vfio_iommu_type1").exists(),
        "vfioctl did not load the IOMMU backend"
    );
    vfioctl(root).args(["restore", "--all"]).assert().code(0);
    assert_same(
        &before,
        &kernel_state(&t),
        "bind and restore with softdeps skipped",
    );
}

#[test]
fn the_write_helper_only_writes_sysfs_attributes() {
    let t = tree(topology::ten64());
    let root = t.root();
    std::fs::write(root.join("victim"), "keep").unwrap();
    for path in ["/victim", "/sys/../victim", "victim"] {
        let out = vfioctl(root)
            .args(["__write-attr", path, "x"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(22), "{path}");
    }
    assert_eq!(
        std::fs::read_to_string(root.join("victim")).unwrap(),
        "keep"
    );
    // A real attribute goes through the simulated kernel, errno and all.
    let out = vfioctl(root)
        .args([
            "__write-attr",
            "/sys/bus/pci/drivers/ath10k_pci/unbind",
            "0001:04:00.0",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(19),
        "ENODEV: the TPU is not bound to ath10k_pci"
    );
}
