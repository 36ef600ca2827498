//! `doctor` on vfioctl's own journal, on the simulated desktop: a bind that never finished, a
//! write helper stuck in the kernel or returned with nobody to finish, and entries whose owner is
//! gone (libvirt domain undefined or not running, Proxmox VM configuration gone, VM definition
//! gone, the QEMU `run` recorded dead). Each is brought about the way it happens (a crash, a hang,
//! a hook call, a file removed), snapshotted as a person reads it, and quiet once it is resolved.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::path::Path;

use common::shown::{host, shown};
use common::vfioctl;
use serde_json::Value;
use vfioctl_sim::{Fault, FaultAction, FaultMatch, SimTree, topology};

/// An idle igb NIC in a group of its own.
const D: &str = "0000:04:00.0";

fn put(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn domain(name: &str) -> String {
    format!(
        "<domain type='kvm'><name>{name}</name><devices><hostdev mode='subsystem' type='pci' \
         managed='yes'><source><address domain='0x0000' bus='0x04' slot='0x00' \
         function='0x0'/></source></hostdev></devices></domain>"
    )
}

fn prepare(t: &SimTree, name: &str) {
    vfioctl(t.root())
        .args(["hook", "libvirt", name, "prepare", "begin", "-"])
        .write_stdin(domain(name))
        .assert()
        .code(0);
}

fn ids(root: &Path) -> Vec<String> {
    let out = vfioctl(root)
        .args(["doctor", "--json", D])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

fn has(root: &Path, id: &str) -> bool {
    ids(root).iter().any(|i| i == id)
}

fn journal(root: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root.join("run/vfioctl/journal.json")).unwrap())
        .unwrap()
}

fn save_journal(root: &Path, doc: &Value) {
    std::fs::write(
        root.join("run/vfioctl/journal.json"),
        serde_json::to_string_pretty(doc).unwrap(),
    )
    .unwrap();
}

/// The next unbind from `driver` hangs in the kernel for `millis`.
fn block_unbind(t: &SimTree, driver: &str, millis: u64) {
    t.kernel()
        .unwrap()
        .add_fault(Fault {
            when: FaultMatch {
                path_contains: Some(format!("drivers/{driver}/unbind")),
                ..FaultMatch::default()
            },
            action: FaultAction::Block { millis },
        })
        .unwrap();
}

/// Waits for the stuck write of helper `pid` to return.
fn wait_returned(root: &Path, pid: u64) {
    let proc = root.join(format!("proc/{pid}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while proc.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!proc.exists(), "the unbind returned");
}

fn doctor(t: &SimTree) -> String {
    shown(t.root(), &format!("doctor {D}"))
}

#[test]
fn a_libvirt_domain_that_is_gone_or_not_running() {
    let t = host(topology::x86_desktop());
    let root = t.root();
    prepare(&t, "win11");
    insta::assert_snapshot!("owner_gone_libvirt", doctor(&t));
    put(root, "etc/libvirt/qemu/win11.xml", &domain("win11"));
    assert!(!has(root, "owner-gone"));
    insta::assert_snapshot!("owner_not_running_libvirt", doctor(&t));
    put(root, "run/libvirt/qemu/win11.pid", "4121\n");
    put(
        root,
        "proc/4121/cmdline",
        "qemu-system-x86_64\0-name\0win11\0",
    );
    let now = ids(root);
    assert!(
        !now.iter().any(|i| i.starts_with("owner-")),
        "a running domain: {now:?}"
    );
}

#[test]
fn a_proxmox_vm_whose_configuration_is_gone() {
    let t = host(topology::x86_desktop());
    let root = t.root();
    put(
        root,
        "etc/pve/qemu-server/100.conf",
        &format!("hostpci0: {D}\n"),
    );
    vfioctl(root)
        .args(["hook", "proxmox", "100", "pre-start"])
        .assert()
        .code(0);
    assert!(has(root, "owner-not-running"));
    assert!(!has(root, "owner-gone"));
    // Migrated away, or destroyed while the hookscript's post-stop never ran.
    std::fs::remove_file(root.join("etc/pve/qemu-server/100.conf")).unwrap();
    insta::assert_snapshot!("owner_gone_proxmox", doctor(&t));
    vfioctl(root).args(["restore", D]).assert().code(0);
    assert!(!ids(root).iter().any(|i| i.starts_with("owner-")));
}

#[test]
fn a_vm_definition_removed_and_a_recorded_qemu_that_died() {
    let t = host(topology::x86_desktop());
    let root = t.root();
    put(
        root,
        "etc/vfioctl/vms/boot.toml",
        &format!("version = 1\nboot = true\n\n[[device]]\naddress = \"{D}\"\nid = \"8086:1533\"\n"),
    );
    vfioctl(root).args(["apply"]).assert().code(0);
    assert!(
        !ids(root).iter().any(|i| i.starts_with("owner-")),
        "a boot VM's devices stay bound with no QEMU"
    );
    std::fs::remove_file(root.join("etc/vfioctl/vms/boot.toml")).unwrap();
    insta::assert_snapshot!("owner_gone_vm_definition", doctor(&t));
    put(
        root,
        "etc/vfioctl/vms/boot.toml",
        &format!("version = 1\nboot = true\n\n[[device]]\naddress = \"{D}\"\nid = \"8086:1533\"\n"),
    );
    // What `vfioctl run` leaves when it is killed and its QEMU exits after it.
    let mut doc = journal(root);
    doc["entries"][0]["qemu_pid"] = 999_999.into();
    save_journal(root, &doc);
    insta::assert_snapshot!("owner_gone_qemu", doctor(&t));
    put(root, "proc/999999/cmdline", "qemu-system-x86_64\0");
    assert!(!has(root, "owner-gone"), "its QEMU runs");
}

#[test]
fn a_bind_killed_half_way() {
    let t = host(topology::x86_desktop());
    let root = t.root();
    let k = t.kernel().unwrap();
    // vfioctl dies right after its first write (the override), its journal entry 'binding'.
    k.set_crash_after_write(Some(k.writes_done() + 1)).unwrap();
    let out = vfioctl(root).args(["bind", D]).output().unwrap();
    assert_eq!(out.status.code(), None, "killed");
    k.set_crash_after_write(None).unwrap();
    assert!(has(root, "journal-interrupted"));
    insta::assert_snapshot!("journal_interrupted", doctor(&t));
    vfioctl(root).args(["recover"]).assert().code(0);
    assert!(!has(root, "journal-interrupted"));
}

#[test]
fn a_write_helper_stuck_in_the_kernel() {
    let t = host(topology::x86_desktop());
    let root = t.root();
    vfioctl(root).args(["bind", D]).assert().code(0);
    assert!(!has(root, "helper-stuck"));
    // As `restore --timeout` leaves it when vfio-pci's remove() waits for a user of the device:
    // the helper in the journal, and its process in D state in the kernel.
    let unbind = "/sys/bus/pci/drivers/vfio-pci/unbind";
    let mut doc = journal(root);
    doc["helpers"] = serde_json::json!([{
        "pid": 4242, "device": D, "path": unbind, "value": D, "since": 1
    }]);
    save_journal(root, &doc);
    put(
        root,
        "proc/4242/cmdline",
        &format!("vfioctl\0--root\0/\0__write-attr\0{unbind}\0{D}\0"),
    );
    put(root, "proc/4242/stat", "4242 (vfioctl) D 1 4242 4242 0\n");
    put(root, "proc/4242/wchan", "vfio_unregister_group_dev");
    insta::assert_snapshot!("helper_stuck", doctor(&t));
    std::fs::remove_dir_all(root.join("proc/4242")).unwrap();
    assert!(!has(root, "helper-stuck"));
    assert!(has(root, "helper-returned"));
}

#[test]
fn a_write_helper_that_returned_after_vfioctl_gave_up() {
    let t = host(topology::x86_desktop());
    let root = t.root();
    block_unbind(&t, "igb", 1500);
    vfioctl(root)
        .args(["bind", D, "--timeout", "1"])
        .assert()
        .code(1);
    let pid = journal(root)["helpers"][0]["pid"].as_u64().unwrap();
    wait_returned(root, pid);
    let shown = doctor(&t).replace(&format!("pid {pid}"), "pid [PID]");
    insta::assert_snapshot!("helper_returned", shown);
    vfioctl(root).args(["recover"]).assert().code(0);
    let now = ids(root);
    assert!(
        !now.iter()
            .any(|i| i.starts_with("helper-") || i == "journal-interrupted"),
        "{now:?}"
    );
}

#[test]
fn doctor_reports_an_unbind_while_it_is_stuck_without_waiting_for_its_device() {
    let t = host(topology::x86_desktop());
    let root = t.root();
    vfioctl(root).args(["bind", D]).assert().code(0);
    // vfio-pci's remove() waits for a user of the device to close it.
    block_unbind(&t, "vfio-pci", 4000);
    vfioctl(root)
        .args(["restore", D, "--timeout", "1"])
        .assert()
        .code(1);
    let pid = journal(root)["helpers"][0]["pid"].as_u64().unwrap();
    assert!(root.join(format!("proc/{pid}")).exists(), "still stuck");
    assert!(has(root, "helper-stuck"));
    // The kernel's driver_override_show() waits for the lock the unbind holds: left unread.
    let list = common::json(root, &["list", "-s", D], 0);
    assert!(
        list["devices"][0]
            .as_object()
            .unwrap()
            .contains_key("driver_override")
    );
    assert_eq!(list["devices"][0]["driver_override"], Value::Null, "{list}");
    wait_returned(root, pid);
    assert!(has(root, "helper-returned"));
    vfioctl(root).args(["recover"]).assert().code(0);
    assert_eq!(common::driver(root, D).as_deref(), Some("igb"));
}
