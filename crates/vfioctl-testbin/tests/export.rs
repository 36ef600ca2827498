//! `vfioctl export`: golden files of each format on the simulated hosts, and `--check` catching
//! each kind of drift (moved, changed identity, split, merged, renumbered) with exit 4.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::path::Path;

use common::shown::{host, shown};
use vfioctl_sim::hosts::multi_domain;
use vfioctl_sim::topology::{QemuTopo, qemu_x86, ten64, x86_desktop};

fn named(builder: vfioctl_sim::SimBuilder, node: &str) -> vfioctl_sim::SimTree {
    let t = host(builder);
    std::fs::write(t.root().join("etc/hostname"), format!("{node}\n")).unwrap();
    t
}

#[test]
fn golden_exports_of_the_simulated_hosts() {
    for (host_name, builder) in [
        ("ten64", ten64()),
        ("desktop", x86_desktop()),
        ("multi_domain", multi_domain()),
    ] {
        let t = named(builder, host_name);
        for format in ["proxmox-mapping", "nova", "kubevirt"] {
            insta::assert_snapshot!(
                format!("export_{host_name}_{format}"),
                shown(t.root(), &format!("export {format}"))
            );
        }
        insta::assert_snapshot!(
            format!("export_{host_name}_nova_json"),
            shown(t.root(), "--json export nova")
        );
    }
}

fn check(root: &Path, name: &str, text: &str) -> String {
    let file = root.join(name);
    std::fs::write(&file, text).unwrap();
    shown(root, &format!("export --check {}", file.display()))
}

/// What each export of a host says about that host: nothing has drifted.
#[test]
fn a_fresh_export_checks_clean() {
    let t = named(ten64(), "ten64");
    for format in ["proxmox-mapping", "nova", "kubevirt"] {
        let out = common::vfioctl(t.root())
            .args(["export", format])
            .output()
            .unwrap();
        assert!(out.status.success());
        let file = t.root().join(format!("export.{format}"));
        std::fs::write(&file, &out.stdout).unwrap();
        let checked = common::vfioctl(t.root())
            .args(["export", "--check"])
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(
            checked.status.code(),
            Some(0),
            "{format}: {}",
            String::from_utf8_lossy(&checked.stdout)
        );
    }
}

fn ten64_group(root: &Path) -> u32 {
    let link =
        std::fs::read_link(root.join("sys/bus/pci/devices/0001:03:00.0/iommu_group")).unwrap();
    link.file_name().unwrap().to_str().unwrap().parse().unwrap()
}

#[test]
fn check_finds_a_device_that_moved() {
    let t = named(ten64(), "ten64");
    let g = ten64_group(t.root());
    let text = format!(
        "wifi\n\tmap id=168c:003e,iommugroup={g},node=ten64,path=0001:05:00.0,subsystem-id=168c:003e\n\
         tpu\n\tmap id=1ac1:089a,iommugroup={g},node=ten64,path=0001:04:00.0,subsystem-id=1ac1:089a\n"
    );
    insta::assert_snapshot!("check_moved", check(t.root(), "pci.cfg", &text));
}

#[test]
fn check_finds_a_changed_identity() {
    let t = named(ten64(), "ten64");
    let g = ten64_group(t.root());
    let text = format!(
        "wifi\n\tmap id=8086:2723,iommugroup={g},node=ten64,path=0001:03:00.0,subsystem-id=8086:0084\n\
         tpu\n\tmap id=1ac1:089a,iommugroup={g},node=ten64,path=0001:04:00.0,subsystem-id=1ac1:089a\n"
    );
    insta::assert_snapshot!("check_changed_identity", check(t.root(), "pci.cfg", &text));
}

#[test]
fn check_finds_a_merged_group() {
    // Only the Wi-Fi card was recorded: its group holds the TPU too now.
    let t = named(ten64(), "ten64");
    let g = ten64_group(t.root());
    let text = format!(
        "wifi\n\tmap id=168c:003e,iommugroup={g},node=ten64,path=0001:03:00.0,subsystem-id=168c:003e\n"
    );
    insta::assert_snapshot!("check_merged", check(t.root(), "pci.cfg", &text));
    let nova = "[pci]\ndevice_spec = {\"address\": \"0001:03:00.0\", \"vendor_id\": \"168c\", \
                \"product_id\": \"003e\", \"resource_class\": \"CUSTOM_VFIOCTL_X\"}\n";
    insta::assert_snapshot!("check_merged_nova", check(t.root(), "nova.conf", nova));
}

#[test]
fn check_finds_a_split_group() {
    // Two NICs recorded as one group are in groups of their own on a host with ACS.
    let t = named(qemu_x86(QemuTopo::RootPorts), "pve1");
    let text = "nics\n\tmap id=8086:10d3,iommugroup=4,node=pve1,path=0000:01:00.0,subsystem-id=8086:10d3\n\
                nics2\n\tmap id=8086:10d3,iommugroup=4,node=pve1,path=0000:02:00.0,subsystem-id=8086:10d3\n";
    insta::assert_snapshot!("check_split", check(t.root(), "pci.cfg", text));
    // The SATA controller and the NIC recorded as one resource are in two groups.
    let t = named(x86_desktop(), "desktop");
    let kubevirt = "spec:\n  configuration:\n    permittedHostDevices:\n      pciHostDevices:\n\
                    \x20     - pciVendorSelector: \"1B4B:9230\"\n        resourceName: x.io/pair\n\
                    \x20       externalResourceProvider: true\n\
                    \x20     - pciVendorSelector: \"8086:1533\"\n        resourceName: x.io/pair\n\
                    \x20       externalResourceProvider: true\n";
    insta::assert_snapshot!(
        "check_split_kubevirt",
        check(t.root(), "kubevirt.yaml", kubevirt)
    );
}

#[test]
fn check_finds_a_renumbered_group() {
    let t = named(ten64(), "ten64");
    let g = ten64_group(t.root()) + 7;
    let text = format!(
        "wifi\n\tmap id=168c:003e,iommugroup={g},node=ten64,path=0001:03:00.0,subsystem-id=168c:003e\n\
         tpu\n\tmap id=1ac1:089a,iommugroup={g},node=ten64,path=0001:04:00.0,subsystem-id=1ac1:089a\n"
    );
    insta::assert_snapshot!("check_renumbered", check(t.root(), "pci.cfg", &text));
}
