//! `vfioctl boot`: the udev rule and initramfs files written under a simulated host, then that
//! host booted again by the simulated kernel and its udev, which run the rule as systemd-udevd
//! does; and `doctor`'s early-boot checks.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use std::fs;
use std::path::Path;

use common::{driver, json, override_of, tree, vfioctl};
use vfioctl_sim::SimTree;
use vfioctl_sim::topology::{QemuTopo, qemu_x86};

const NIC1: &str = "0000:01:00.0";
const NIC2: &str = "0000:02:00.0";

/// Two identical e1000e NICs (8086:10d3), the QEMU `rootports` guest, with initramfs-tools.
fn host(definition: &str) -> SimTree {
    let t = tree(qemu_x86(QemuTopo::RootPorts));
    let root = t.root();
    fs::create_dir_all(root.join("etc/vfioctl/vms")).unwrap();
    fs::write(root.join("etc/vfioctl/vms/nic.toml"), definition).unwrap();
    fs::create_dir_all(root.join("usr/sbin")).unwrap();
    fs::write(root.join("usr/sbin/update-initramfs"), "").unwrap();
    fs::create_dir_all(root.join("etc/initramfs-tools")).unwrap();
    fs::write(root.join("etc/initramfs-tools/modules"), "# host's list\n").unwrap();
    t
}

fn nic(id: &str) -> String {
    format!("version = 1\nboot = true\n[[device]]\naddress = \"{NIC1}\"\nid = \"{id}\"\n")
}

fn udev_db(root: &Path, address: &str) -> String {
    fs::read_to_string(root.join(format!("run/udev/data/+pci:{address}"))).unwrap_or_default()
}

fn install(root: &Path) {
    let out = vfioctl(root).args(["boot", "install"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("run 'update-initramfs -u -k all' inside"),
        "{stderr}"
    );
}

#[test]
fn dry_run_prints_every_file_and_command_and_writes_nothing() {
    let t = host(&nic("8086:10d3"));
    let before = common::kernel_state(&t);
    let out = vfioctl(t.root())
        .args(["boot", "install", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
    common::assert_same(&before, &common::kernel_state(&t), "boot install --dry-run");
}

#[test]
fn the_named_device_appears_on_vfio_pci_and_its_identical_twin_on_e1000e() {
    let t = host(&nic("8086:10d3"));
    let root = t.root();
    install(root);
    t.kernel().unwrap().cold_boot(&["vfio_pci"]).unwrap();
    assert_eq!(driver(root, NIC1).as_deref(), Some("vfio-pci"));
    assert_eq!(override_of(root, NIC1).as_deref(), Some("vfio-pci"));
    assert_eq!(driver(root, NIC2).as_deref(), Some("e1000e"));
    assert_eq!(override_of(root, NIC2), None);
    assert!(
        !udev_db(root, NIC1).contains("VFIOCTL_HOST_DRIVER"),
        "{}",
        udev_db(root, NIC1)
    );

    let status = json(root, &["boot", "status"], 0);
    assert_eq!(status["ok"], true);
    assert_eq!(status["rule"], "current");
    assert_eq!(status["generator"], "initramfs-tools");
    let d = &status["devices"][0];
    assert_eq!(
        (d["address"].as_str(), d["state"].as_str()),
        (Some(NIC1), Some("vfio"))
    );
    assert_eq!(d["host_driver"], serde_json::Value::Null);
    assert_eq!(d["udev_db"], true);
    // `vfioctl status` agrees: the boot VM is as configured.
    assert_eq!(json(root, &["status"], 0)["ok"], true);
}

#[test]
fn a_device_whose_identity_drifted_is_left_to_the_host_and_status_says_why() {
    let t = host(&nic("8086:10d4"));
    let root = t.root();
    install(root);
    t.kernel().unwrap().cold_boot(&["vfio_pci"]).unwrap();
    assert_eq!(driver(root, NIC1).as_deref(), Some("e1000e"));
    assert_eq!(override_of(root, NIC1), None);

    let out = vfioctl(root).args(["boot", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("drifted  0000:01:00.0 should be 8086:10d4 but is 8086:10d3: the rule left it to the host"),
        "{text}"
    );
    let vm = &json(root, &["status"], 4)["vms"][0];
    assert_eq!(vm["devices"][0]["state"], "drifted");
}

#[test]
fn a_hot_added_device_bound_by_its_host_driver_first_is_moved_and_recorded() {
    let t = host(&nic("8086:10d3"));
    let root = t.root();
    install(root);
    let kernel = t.kernel().unwrap();
    kernel.cold_boot(&["vfio_pci"]).unwrap();
    kernel.replug(NIC1.parse().unwrap()).unwrap();
    assert_eq!(driver(root, NIC1).as_deref(), Some("vfio-pci"));
    assert!(
        udev_db(root, NIC1).contains("E:VFIOCTL_HOST_DRIVER=e1000e"),
        "{}",
        udev_db(root, NIC1)
    );
    let status = json(root, &["boot", "status"], 4);
    let d = &status["devices"][0];
    assert_eq!(
        (d["state"].as_str(), d["host_driver"].as_str()),
        (Some("vfio"), Some("e1000e"))
    );
    assert!(
        d["detail"]
            .as_str()
            .unwrap()
            .contains("e1000e bound it first"),
        "{d}"
    );
    // The twin, re-added too, is not named and stays with the host.
    kernel.replug(NIC2.parse().unwrap()).unwrap();
    assert_eq!(driver(root, NIC2).as_deref(), Some("e1000e"));
}

#[test]
fn remove_deletes_exactly_what_install_wrote_and_the_next_boot_leaves_the_device() {
    let t = host(&nic("8086:10d3"));
    let root = t.root();
    let modules_before = fs::read_to_string(root.join("etc/initramfs-tools/modules")).unwrap();
    install(root);
    let written = json(root, &["boot", "remove", "--dry-run"], 0);
    let files: Vec<&str> = written["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "/etc/udev/rules.d/61-vfioctl-boot.rules",
            "/etc/initramfs-tools/hooks/vfioctl-boot",
            "/etc/initramfs-tools/modules"
        ]
    );
    assert!(root.join("etc/udev/rules.d/61-vfioctl-boot.rules").exists());
    json(root, &["boot", "remove"], 0);
    assert!(!root.join("etc/udev/rules.d/61-vfioctl-boot.rules").exists());
    assert!(!root.join("etc/initramfs-tools/hooks/vfioctl-boot").exists());
    assert!(!root.join("var/lib/vfioctl/boot.json").exists());
    assert_eq!(
        fs::read_to_string(root.join("etc/initramfs-tools/modules")).unwrap(),
        modules_before
    );
    t.kernel().unwrap().cold_boot(&["vfio_pci"]).unwrap();
    assert_eq!(driver(root, NIC1).as_deref(), Some("e1000e"));
    assert_eq!(json(root, &["boot", "status"], 4)["rule"], "missing");
}

#[test]
fn install_without_boot_vms_is_bad_input() {
    let t = host("version = 1\n[[device]]\naddress = \"0000:01:00.0\"\nid = \"8086:10d3\"\n");
    let out = vfioctl(t.root())
        .args(["boot", "install"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has boot = true"), "{stderr}");
}

#[test]
fn doctor_finds_a_boot_framebuffer_in_a_bar_and_stale_module_names() {
    let t = host(&nic("8086:10d3"));
    let root = t.root();
    fs::write(
        root.join("proc/iomem"),
        "fe000000-fe0fffff : PCI Bus 0000:01\n  fe000000-fe01ffff : 0000:01:00.0\n    fe000000-fe00ffff : BOOTFB\n",
    )
    .unwrap();
    fs::write(
        root.join(format!("sys/bus/pci/devices/{NIC1}/resource")),
        "0x00000000fe000000 0x00000000fe01ffff 0x0000000000040200\n",
    )
    .unwrap();
    fs::create_dir_all(root.join("sys/class/vtconsole/vtcon1")).unwrap();
    fs::write(
        root.join("sys/class/vtconsole/vtcon1/name"),
        "(M) frame buffer device\n",
    )
    .unwrap();
    fs::write(root.join("sys/class/vtconsole/vtcon1/bind"), "1\n").unwrap();
    fs::write(
        root.join("etc/initramfs-tools/modules"),
        "vfio\nvfio_virqfd\n",
    )
    .unwrap();
    let doc = json(root, &["doctor", NIC1], 4);
    let findings = doc["findings"].as_array().unwrap();
    let by_id = |id: &str| {
        findings
            .iter()
            .find(|f| f["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {doc}"))
    };
    let fb = by_id("boot-framebuffer");
    assert_eq!(fb["device"], NIC1);
    assert!(
        fb["remedy"]
            .as_str()
            .unwrap()
            .contains("initcall_blacklist=sysfb_init")
    );
    assert!(
        by_id("vtconsole-bound")["remedy"]
            .as_str()
            .unwrap()
            .contains("vtcon1/bind")
    );
    assert!(
        by_id("stale-module-name")["message"]
            .as_str()
            .unwrap()
            .contains("line 2")
    );
    // The other NIC's BARs hold no framebuffer.
    let other = json(root, &["doctor", NIC2], 4);
    assert!(
        !other["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "boot-framebuffer")
    );
}

/// vfio-pci fails to reserve a BAR the boot framebuffer lies in; bind says so first, and only for
/// display controllers (the kernel's own aperture handover, vfio_pci_core's included, looks at
/// VGA devices only).
#[test]
fn bind_names_the_boot_framebuffer_in_a_gpus_bar() {
    let t = tree(vfioctl_sim::topology::x86_desktop());
    let root = t.root();
    let gpu = "0000:01:00.0";
    fs::write(
        root.join("proc/iomem"),
        "f0000000-f1ffffff : PCI Bus 0000:01
  f0000000-f0ffffff : 0000:01:00.0
    f0000000-f02fffff : BOOTFB
",
    )
    .unwrap();
    fs::write(
        root.join(format!("sys/bus/pci/devices/{gpu}/resource")),
        "0x00000000f0000000 0x00000000f0ffffff 0x0000000000040200
",
    )
    .unwrap();
    let out = vfioctl(root)
        .args(["bind", gpu, "--dry-run"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("note: the boot framebuffer 'BOOTFB' (0xf0000000-0xf02fffff) lies in BAR 0 of 0000:01:00.0"),
        "{stderr}"
    );
}
