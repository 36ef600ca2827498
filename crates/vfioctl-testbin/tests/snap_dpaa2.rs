//! `dpaa2 create`, the bind and QEMU arguments of the container it made, and `dpaa2 destroy`,
//! on the simulated Ten64 with the restool stand-in: what a person sees at each step.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use common::shown::{host, shown};
use vfioctl_sim::topology::ten64_dpaa2;

#[test]
fn a_container_made_for_a_vm_binds_renders_and_goes_back() {
    let t = host(ten64_dpaa2());
    let before = common::kernel_state(&t);
    assert!(shown(t.root(), "dpaa2 create --for-vm db").contains("[exit 0]"));
    assert!(shown(t.root(), "dpaa2 destroy dprc.3").contains("[exit 0]"));
    common::assert_same(&before, &common::kernel_state(&t), "create, destroy");
    for (name, line) in [
        (
            "dpaa2_create_dry_run",
            "dpaa2 create --for-vm web --dpmac dpmac.2 --dry-run",
        ),
        ("dpaa2_create", "dpaa2 create --for-vm web --dpmac dpmac.2"),
        ("dpaa2_destroy_dry_run", "dpaa2 destroy dprc.3 --dry-run"),
        ("dpaa2_bind", "bind dprc.3"),
        ("dpaa2_qemu_args", "qemu-args --machine virt dprc.3"),
        ("dpaa2_destroy_in_use", "dpaa2 destroy dprc.3"),
        ("dpaa2_restore", "restore dprc.3"),
        ("dpaa2_destroy", "dpaa2 destroy dprc.3"),
        ("dpaa2_destroy_again", "dpaa2 destroy dprc.3"),
    ] {
        insta::assert_snapshot!(name, shown(t.root(), line));
    }
}

#[test]
fn create_and_destroy_json_documents() {
    let t = host(ten64_dpaa2());
    let before = common::kernel_state(&t);
    for (name, line) in [
        (
            "dpaa2_create_dry_run_json",
            "--json dpaa2 create --for-vm web --dpdmux dpdmux.0 --dry-run",
        ),
        (
            "dpaa2_create_json",
            "--json dpaa2 create --for-vm web --dpmac dpmac.2",
        ),
        (
            "dpaa2_destroy_dry_run_json",
            "--json dpaa2 destroy dprc.3 --dry-run",
        ),
        ("dpaa2_destroy_json", "--json dpaa2 destroy dprc.3"),
        ("dpaa2_destroy_again_json", "--json dpaa2 destroy dprc.3"),
    ] {
        insta::assert_snapshot!(name, shown(t.root(), line));
    }
    common::assert_same(&before, &common::kernel_state(&t), "create, destroy --json");
}
