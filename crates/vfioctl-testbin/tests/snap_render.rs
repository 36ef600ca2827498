//! Snapshots of `qemu-args` and `libvirt-xml` for the simulated Ten64 (PCI and DPAA2) and the
//! simulated desktop, for a named machine type and for the default, which follows the root's
//! architecture (virt for the arm64 Ten64, q35 for the desktop).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use common::shown::{host, shown};
use vfioctl_sim::topology::{ten64_dpaa2, x86_desktop};

#[test]
fn ten64_renders() {
    let t = host(ten64_dpaa2());
    for (name, line) in [
        ("ten64_qemu_args", "qemu-args --machine virt 0001:03:00.0"),
        (
            "ten64_qemu_args_only",
            "qemu-args --machine virt --only 0001:03:00.0",
        ),
        ("ten64_qemu_args_dprc", "qemu-args --machine virt dprc.2"),
        (
            "ten64_qemu_args_pci_and_dprc",
            "qemu-args --machine virt 0001:04:00.0 dprc.2",
        ),
        (
            "ten64_qemu_args_default_machine",
            "qemu-args 0001:03:00.0 dprc.2",
        ),
        ("ten64_libvirt_xml", "libvirt-xml 0001:03:00.0"),
        ("ten64_libvirt_xml_only", "libvirt-xml --only 0001:04:00.0"),
    ] {
        insta::assert_snapshot!(name, shown(t.root(), line));
    }
}

#[test]
fn desktop_renders() {
    let t = host(x86_desktop());
    for (name, line) in [
        (
            "desktop_qemu_args_gpu",
            "qemu-args --machine q35 0000:01:00.0",
        ),
        (
            "desktop_qemu_args_by_id",
            "qemu-args --machine q35 8086:1533",
        ),
        (
            "desktop_qemu_args_default_machine",
            "qemu-args 0000:01:00.0",
        ),
        ("desktop_libvirt_xml_gpu", "libvirt-xml 0000:01:00.0"),
    ] {
        insta::assert_snapshot!(name, shown(t.root(), line));
    }
}
