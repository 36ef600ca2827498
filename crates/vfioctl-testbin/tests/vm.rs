//! VM definitions end to end (`vm check`, `vm qemu-args`, `apply`, `status`): the test binary
//! against simulated kernels (vfioctl-sim), with a stand-in QEMU answering `-device help`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod vmhost;

use std::fs;

use vfioctl_sim::topology::x86_desktop;
use vmhost::{Host, TEN64_VM, WIFI, text};

#[test]
fn a_device_whose_identity_changed_is_refused_naming_both() {
    let host = Host::ten64();
    host.define("ten64", &TEN64_VM.replace("168c:003e", "8086:2723"));
    let before = host.tree.snapshot().unwrap();
    for args in [&["run", "ten64"][..], &["vm", "qemu-args", "ten64"][..]] {
        let out = host.run("exit:0", args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("0001:03:00.0 should be 8086:2723 but is 168c:003e"),
            "{stderr}"
        );
    }
    assert!(host.recorded("argv").is_empty());
    let changed: Vec<String> = before
        .diff(&host.tree.snapshot().unwrap())
        .into_iter()
        // The lock and state directory under run/ are made before planning; nothing else changes.
        .filter(|d| !d.starts_with("run"))
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
    let check = host.run("exit:0", &["vm", "check", "ten64"]);
    assert_eq!(check.status.code(), Some(4));
    assert!(text(&check.stdout).contains("DRIFTED"));
}

#[test]
fn a_malformed_definition_is_reported_with_file_line_and_column() {
    let host = Host::ten64();
    let path = host.define(
        "ten64",
        &TEN64_VM.replace("cpus = 2", "cpus = 2\nmemroy = \"2G\""),
    );
    let out = host.run("exit:0", &["vm", "check", "ten64"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let expected = format!("error: {}:17:1: ", path.display());
    assert!(stderr.starts_with(&expected), "{stderr}");
    assert!(stderr.contains("memroy"), "{stderr}");
    // The list shows it as invalid, and apply does not get past it silently.
    let out = host.run("exit:0", &["vm", "list"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(text(&out.stdout).contains(":17:1: "));
    let out = host.run("exit:0", &["apply"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn config_goes_before_the_command_too_and_must_exist() {
    let host = Host::ten64();
    let dir = tempfile::tempdir().unwrap();
    let definition = TEN64_VM.replace("@QEMU@", &host.qemu().display().to_string());
    fs::write(dir.path().join("elsewhere.toml"), &definition).unwrap();
    fs::write(dir.path().join("Router VM.toml"), &definition).unwrap();
    let config = dir.path().to_str().unwrap();
    for args in [
        &["--config", config, "vm", "list"][..],
        &["vm", "list", "--config", config][..],
    ] {
        let out = host.run("exit:0", args);
        let stdout = text(&out.stdout);
        assert!(stdout.contains("elsewhere"), "{args:?}: {stdout}");
        // The file vfioctl does not read for its name is reported, not dropped.
        assert!(
            stdout.contains("Router VM.toml is ignored"),
            "{args:?}: {stdout}"
        );
        assert_eq!(out.status.code(), Some(4), "{args:?}");
    }
    let out = host.run("exit:0", &["--config", "/nonexistent/vms", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("the VM definitions directory /nonexistent/vms does not exist"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_disk_qemu_would_refuse_is_refused_by_vm_check() {
    let host = Host::ten64();
    let path = host.define(
        "ten64",
        &TEN64_VM.replace(
            "[qemu]",
            "[qemu]\ndisks = [{ file = \"/vm/cd.iso\", interface = \"ide\", readonly = true }]",
        ),
    );
    let out = host.run("exit:0", &["vm", "check", "ten64"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: {}:", path.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("the virt machine has no ide controller"),
        "{stderr}"
    );
}

#[test]
fn apply_is_idempotent_and_refuses_a_drifted_vm_but_does_the_others() {
    let host = Host::ten64();
    host.define("ten64", TEN64_VM);
    // A second boot VM whose card was replaced: refused, without stopping the first.
    host.define(
        "nvme-guest",
        "version = 1\nboot = true\n[[device]]\naddress = \"0002:01:00.0\"\nid = \"144d:a808\"\n",
    );
    let out = host.run("exit:0", &["apply"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("ten64: bound 0001:03:00.0, 0001:04:00.0"),
        "{stdout}"
    );
    assert!(stdout.contains("nvme-guest: refused"), "{stdout}");
    assert!(
        stdout.contains("0002:01:00.0 should be 144d:a808 but is c0a9:2263"),
        "{stdout}"
    );
    assert_eq!(host.driver(WIFI).as_deref(), Some("vfio-pci"));
    assert_eq!(host.driver("0002:01:00.0").as_deref(), Some("nvme"));

    fs::remove_file(host.root().join("etc/vfioctl/vms/nvme-guest.toml")).unwrap();
    let before = host.tree.snapshot().unwrap();
    let out = host.run("exit:0", &["apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ten64: already bound"));
    assert!(before.diff(&host.tree.snapshot().unwrap()).is_empty());

    let status = host.run("exit:0", &["--json", "status"]);
    assert_eq!(status.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(doc["vms"][0]["devices"][0]["state"], "bound");
    // The journal's owner is the VM.
    assert!(host.journal().contains("\"owner\": \"vm:ten64\""));
}

#[test]
fn two_boot_vms_claiming_one_group_are_both_refused() {
    let host = Host::ten64();
    host.define("ten64", TEN64_VM);
    host.define(
        "wifi-only",
        "version = 1\nboot = true\n[[device]]\naddress = \"0001:03:00.0\"\nid = \"168c:003e\"\n",
    );
    let out = host.run("exit:0", &["apply"]);
    assert_eq!(out.status.code(), Some(3));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("ten64: refused"), "{stdout}");
    assert!(stdout.contains("wifi-only: refused"), "{stdout}");
    assert!(
        stdout.contains("is claimed by boot VM wifi-only too"),
        "{stdout}"
    );
    assert_eq!(host.driver(WIFI).as_deref(), Some("ath10k_pci"));
}

#[test]
fn status_reports_configured_versus_actual() {
    let host = Host::ten64();
    host.define("ten64", TEN64_VM);
    host.define(
        "moved",
        "version = 1\n[[device]]\naddress = \"0001:05:00.0\"\nid = \"1ac1:089a\"\n",
    );
    let out = host.run("exit:0", &["status"]);
    // A boot VM not bound: exit 4.
    assert_eq!(out.status.code(), Some(4));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("VM ten64 (boot, NOT as configured)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("0001:03:00.0  168c:003e  not bound (on ath10k_pci)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("0001:05:00.0  ----:----  missing"),
        "{stdout}"
    );
    assert!(
        stdout.contains("a 1ac1:089a is now at 0001:04:00.0"),
        "{stdout}"
    );
}

#[test]
fn check_lists_unlisted_group_members_and_finds_qemu() {
    let host = Host::ten64();
    // Only the Wi-Fi card: the TPU shares its group and would go with it.
    host.define(
        "wifi",
        &TEN64_VM.replace(
            "[[device]]\naddress = \"0001:04:00.0\"\nid = \"1ac1:089a\"\n",
            "",
        ),
    );
    let out = host.run("help", &["vm", "check", "wifi"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("not listed: 0001:04:00.0"), "{stdout}");
    assert!(
        stdout.contains("it is bound and passed to the guest anyway"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("QEMU: {}", host.qemu().display())),
        "{stdout}"
    );
}

#[test]
fn check_of_a_dpaa2_vm_asks_qemu_for_vfio_fsl_mc() {
    let host = Host::new(vfioctl_sim::topology::ten64_dpaa2().build_temp().unwrap());
    host.define(
        "dpaa2",
        &TEN64_VM.replace("boot = true\n", "boot = true\ndprc = [\"dprc.2\"]\n"),
    );
    // The container, bound to vfio-fsl-mc.
    let out = host.run("exit:0", &["bind", "dprc.2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // A mainline QEMU: no vfio-fsl-mc.
    let out = host.run("help", &["vm", "check", "dpaa2"]);
    assert_eq!(out.status.code(), Some(4));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("has no vfio-fsl-mc device"), "{stdout}");
    assert!(stdout.contains("NXP's QEMU"), "{stdout}");
    // NXP's QEMU.
    let out = host
        .vfioctl("help")
        .env("STANDIN_FSL", "1")
        .args(["vm", "check", "dpaa2"])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("(has vfio-fsl-mc)"), "{stdout}");
    assert!(stdout.contains("dprc.2  bound"), "{stdout}");
    // And the command line passes it.
    let out = host.run("exit:0", &["vm", "qemu-args", "dpaa2"]);
    assert!(text(&out.stdout).contains("-device vfio-fsl-mc,host=dprc.2"));
}

#[test]
fn desktop_vm_renders_gpu_and_audio_as_one_multifunction_device() {
    let host = Host::new(x86_desktop().build_temp().unwrap());
    let list = host.run("exit:0", &["--json", "list"]);
    let doc: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    // Find the GPU and its audio function in whatever the simulated desktop has.
    let devices = doc["devices"].as_array().unwrap();
    let gpu = devices
        .iter()
        .find(|d| d["class"].as_str().unwrap().starts_with("03"))
        .expect("the desktop has a GPU");
    let gpu_address = gpu["address"].as_str().unwrap();
    let slot = &gpu_address[..gpu_address.len() - 1];
    let audio = devices
        .iter()
        .find(|d| d["address"].as_str().unwrap() == format!("{slot}1"))
        .expect("the GPU has an audio function");
    let definition = format!(
        "version = 1\n[[device]]\naddress = \"{gpu_address}\"\nid = \"{}:{}\"\n[[device]]\n\
         address = \"{slot}1\"\nid = \"{}:{}\"\n[qemu]\nmachine = \"q35\"\nmemory = \"8G\"\n",
        gpu["vendor_id"].as_str().unwrap(),
        gpu["device_id"].as_str().unwrap(),
        audio["vendor_id"].as_str().unwrap(),
        audio["device_id"].as_str().unwrap(),
    );
    host.define("desktop", &definition);
    let out = host.run("exit:0", &["vm", "qemu-args", "desktop"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("qemu-system-x86_64 \\\n  -name desktop \\\n  -machine q35"));
    assert!(
        stdout.contains(&format!(
            "host={gpu_address},id=hostdev0,bus=rp1,addr=00.0,multifunction=on"
        )),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("host={slot}1,id=hostdev1,bus=rp1,addr=00.1")));
}
