//! The libvirt hook and the Proxmox VE hookscript against recorded configurations on a simulated
//! Ten64: bind on start, refuse what would break the host, restore on stop; and snapshots of what
//! they print (libvirt shows a hook's standard error as the domain's start error).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use common::shown::{host, shown, shown_with_input};
use common::{assert_same, driver, kernel_state, tree, vfioctl};
use vfioctl_sim::topology;

/// A domain as libvirt passes it to the hook on standard input (trimmed `virsh dumpxml`).
const DOMAIN_XML: &str = r#"<domain type='kvm' id='3'>
  <name>ten64-guest</name>
  <uuid>6f1e8f64-7f0e-4c5a-9a52-3f2d2b1c0a11</uuid>
  <memory unit='KiB'>1048576</memory>
  <os><type arch='aarch64' machine='virt-7.2'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-aarch64</emulator>
    <disk type='file' device='disk'>
      <source file='/var/lib/libvirt/images/guest.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>
    <hostdev mode='subsystem' type='pci' managed='no'>
      <source>
        <address domain='0x0001' bus='0x03' slot='0x00' function='0x0'/>
      </source>
      <address type='pci' domain='0x0000' bus='0x05' slot='0x00' function='0x0'/>
    </hostdev>
  </devices>
</domain>
"#;

fn hook(root: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    vfioctl(root)
        .args(["hook", "libvirt"])
        .args(args)
        .write_stdin(stdin.as_bytes().to_vec())
        .output()
        .unwrap()
}

#[test]
fn libvirt_prepare_binds_the_group_and_release_restores_it() {
    let t = tree(topology::ten64());
    let root = t.root();
    let before = kernel_state(&t);
    let out = hook(root, &["ten64-guest", "prepare", "begin", "-"], DOMAIN_XML);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The hostdev's whole group: the TPU shares it, so it is bound too.
    assert_eq!(driver(root, "0001:03:00.0").as_deref(), Some("vfio-pci"));
    assert_eq!(driver(root, "0001:04:00.0").as_deref(), Some("vfio-pci"));
    // Other operations are no-ops.
    let out = hook(root, &["ten64-guest", "started", "begin", "-"], DOMAIN_XML);
    assert_eq!(out.status.code(), Some(0));
    let out = hook(root, &["ten64-guest", "release", "end", "-"], DOMAIN_XML);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same(&before, &kernel_state(&t), "libvirt prepare then release");
}

#[test]
fn libvirt_prepare_of_the_root_disk_is_refused_with_vfioctls_sentence() {
    let t = tree(topology::ten64());
    let before = kernel_state(&t);
    let xml = DOMAIN_XML.replace("domain='0x0001' bus='0x03'", "domain='0x0002' bus='0x01'");
    let out = hook(t.root(), &["ten64-guest", "prepare", "begin", "-"], &xml);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("0002:01:00.0") && stderr.contains("mounted on /"),
        "{stderr}"
    );
    assert_same(&before, &kernel_state(&t), "refused prepare");
}

#[test]
fn libvirt_hook_reports_broken_xml() {
    let t = tree(topology::ten64());
    let out = hook(
        t.root(),
        &["x", "prepare", "begin", "-"],
        "<domain><devices></hostdev>",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not parse"));
}

/// A Proxmox VE VM configuration with the cards as hostpci entries and a snapshot section whose
/// devices must be ignored.
const PVE_CONF: &str = "agent: 1\nbios: ovmf\nboot: order=scsi0\ncores: 2\nhostpci0: 0001:03:00.0,pcie=1\nhostpci1: host=0001:04:00.0\nmachine: virt\nmemory: 2048\nname: ten64-guest\n\n[before-upgrade]\nhostpci0: 0002:01:00.0\n";

#[test]
fn proxmox_pre_start_binds_and_post_stop_gives_back() {
    let t = tree(topology::ten64());
    let root = t.root();
    let before = kernel_state(&t);
    std::fs::create_dir_all(root.join("etc/pve/qemu-server")).unwrap();
    std::fs::write(root.join("etc/pve/qemu-server/101.conf"), PVE_CONF).unwrap();
    let before_with_conf = kernel_state(&t);
    vfioctl(root)
        .args(["hook", "proxmox", "101", "pre-start"])
        .assert()
        .code(0);
    assert_eq!(driver(root, "0001:03:00.0").as_deref(), Some("vfio-pci"));
    assert_eq!(driver(root, "0001:04:00.0").as_deref(), Some("vfio-pci"));
    assert_eq!(
        driver(root, "0002:01:00.0").as_deref(),
        Some("nvme"),
        "snapshot sections are ignored"
    );
    vfioctl(root)
        .args(["hook", "proxmox", "101", "post-start"])
        .assert()
        .code(0);
    vfioctl(root)
        .args(["hook", "proxmox", "101", "post-stop"])
        .assert()
        .code(0);
    assert_same(
        &before_with_conf,
        &kernel_state(&t),
        "proxmox pre-start then post-stop",
    );
    drop(before);
}

#[test]
fn proxmox_bad_vmid_and_mappings_are_reported() {
    let t = tree(topology::ten64());
    let root = t.root();
    vfioctl(root)
        .args(["hook", "proxmox", "../etc", "pre-start"])
        .assert()
        .code(2);
    std::fs::create_dir_all(root.join("etc/pve/qemu-server")).unwrap();
    std::fs::write(
        root.join("etc/pve/qemu-server/102.conf"),
        "hostpci0: mapping=wifi\n",
    )
    .unwrap();
    let out = vfioctl(root)
        .args(["hook", "proxmox", "102", "pre-start"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resource mapping"));
}

#[test]
fn what_the_hooks_print() {
    let t = host(topology::ten64());
    let root_disk = DOMAIN_XML.replace("domain='0x0001' bus='0x03'", "domain='0x0002' bus='0x01'");
    for (name, line, xml) in [
        (
            "hook_libvirt_prepare",
            "hook libvirt ten64-guest prepare begin -",
            DOMAIN_XML,
        ),
        (
            "hook_libvirt_release",
            "hook libvirt ten64-guest release end -",
            DOMAIN_XML,
        ),
        (
            "hook_libvirt_refused",
            "hook libvirt ten64-guest prepare begin -",
            &root_disk,
        ),
        (
            "hook_libvirt_bad_xml",
            "hook libvirt x prepare begin -",
            "<domain><devices></hostdev>",
        ),
    ] {
        insta::assert_snapshot!(name, shown_with_input(t.root(), line, xml));
    }
    let pve = t.root().join("etc/pve/qemu-server");
    std::fs::create_dir_all(&pve).unwrap();
    std::fs::write(pve.join("101.conf"), PVE_CONF).unwrap();
    std::fs::write(pve.join("102.conf"), "hostpci0: mapping=wifi\n").unwrap();
    for (name, line) in [
        ("hook_proxmox_pre_start", "hook proxmox 101 pre-start"),
        ("hook_proxmox_post_stop", "hook proxmox 101 post-stop"),
        ("hook_proxmox_mapping", "hook proxmox 102 pre-start"),
        ("hook_proxmox_bad_vmid", "hook proxmox ../etc pre-start"),
    ] {
        insta::assert_snapshot!(name, shown(t.root(), line));
    }
}
