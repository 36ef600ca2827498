//! SR-IOV on the simulated igb PF: `vf list`, `vf create`, `vf set`, and `restore` giving all of
//! it back; refusals that change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::path::Path;

use common::{assert_same, driver, json, kernel_state, tree, vfioctl};
use vfioctl_sim::{hosts, topology};

const PF: &str = "0000:01:00.0";

fn sriov() -> vfioctl_sim::SimTree {
    tree(topology::qemu_x86(topology::QemuTopo::Sriov))
}

fn text(root: &Path, args: &[&str], code: i32) -> (String, String) {
    let out = vfioctl(root).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

#[test]
fn vf_list_shows_the_pf_its_vfs_and_their_links() {
    let t = sriov();
    let (out, _) = text(t.root(), &["vf", "list"], 0);
    insta::assert_snapshot!(out);
    let doc = json(t.root(), &["vf", "list", PF], 0);
    insta::assert_snapshot!(serde_json::to_string_pretty(&doc).unwrap());
}

#[test]
fn vf_create_without_autoprobe_leaves_new_vfs_driverless_and_restore_puts_it_back() {
    let t = sriov();
    let root = t.root();
    let began = kernel_state(&t);
    let plan = json(root, &["vf", "create", PF, "3", "--dry-run"], 0);
    insta::assert_snapshot!("create_plan", serde_json::to_string_pretty(&plan).unwrap());
    assert_same(&began, &kernel_state(&t), "dry run");
    let (out, _) = text(root, &["vf", "create", PF, "3"], 0);
    assert!(
        out.contains("now has 3 VFs: 0000:01:10.0, 0000:01:10.2, 0000:01:10.4"),
        "{out}"
    );
    for vf in ["0000:01:10.0", "0000:01:10.2", "0000:01:10.4"] {
        assert_eq!(driver(root, vf), None, "{vf}");
    }
    // The same request again is nothing to do.
    let (again, _) = text(root, &["vf", "create", PF, "3"], 0);
    assert!(again.contains("nothing to do"), "{again}");
    let (restored, _) = text(root, &["restore", PF], 0);
    insta::assert_snapshot!("restore_after_create", restored);
    assert_same(&began, &kernel_state(&t), "restore after create");
}

#[test]
fn vf_set_goes_through_netlink_and_restore_of_the_vf_puts_it_back() {
    let t = sriov();
    let root = t.root();
    let began = kernel_state(&t);
    let set = json(
        root,
        &[
            "vf",
            "set",
            PF,
            "1",
            "--mac",
            "52:54:00:12:34:56",
            "--trust",
            "on",
        ],
        0,
    );
    assert_eq!(set["after"]["mac"], "52:54:00:12:34:56");
    assert_eq!(set["after"]["trust"], true);
    let list = json(root, &["vf", "list", PF], 0);
    assert_eq!(list["pfs"][0]["vfs"][1]["link"]["mac"], "52:54:00:12:34:56");
    // A second change keeps what the VF had before the first.
    json(
        root,
        &["vf", "set", PF, "1", "--mac", "52:54:00:00:00:01"],
        0,
    );
    let (out, _) = text(root, &["restore", "0000:01:10.2"], 0);
    assert!(
        out.contains("link: mac 00:00:00:00:00:00 trust off"),
        "{out}"
    );
    let list = json(root, &["vf", "list", PF], 0);
    assert_eq!(list["pfs"][0]["vfs"][1]["link"]["mac"], "00:00:00:00:00:00");
    assert_eq!(list["pfs"][0]["vfs"][1]["link"]["trust"], false);
    let _ = began;
    let (_, err) = text(root, &["vf", "set", PF, "5", "--vlan", "10"], 2);
    assert!(err.contains("has 2 VFs; there is no VF 5"), "{err}");
    let (_, err) = text(root, &["vf", "set", PF, "1"], 2);
    assert!(err.contains("nothing to set"), "{err}");
}

#[test]
fn vf_create_while_a_vf_is_held_is_refused_with_nothing_changed() {
    let t = tree(hosts::sriov_vf_on_vfio());
    let root = t.root();
    let began = kernel_state(&t);
    let (_, err) = text(root, &["vf", "create", PF, "4"], 3);
    insta::assert_snapshot!(err);
    assert_same(&began, &kernel_state(&t), "refused vf create");
    // Over the limit, and a device that is no PF: usage errors, nothing changed.
    let (_, err) = text(root, &["vf", "create", PF, "8"], 2);
    assert!(err.contains("offers at most 7 VFs"), "{err}");
    let (_, err) = text(root, &["vf", "create", "0000:01:10.0", "1"], 2);
    assert!(err.contains("is not an SR-IOV physical function"), "{err}");
    assert_same(&began, &kernel_state(&t), "usage errors");
}

#[test]
fn a_bound_vf_is_given_back_before_its_pf_is_put_back() {
    let t = sriov();
    let root = t.root();
    let began = kernel_state(&t);
    text(root, &["vf", "create", PF, "0"], 0);
    text(root, &["vf", "create", PF, "2"], 0);
    text(root, &["bind", "0000:01:10.2"], 0);
    assert_eq!(driver(root, "0000:01:10.2").as_deref(), Some("vfio-pci"));
    let (_, err) = text(root, &["vf", "create", PF, "3"], 3);
    assert!(err.contains("0000:01:10.2 on vfio-pci"), "{err}");
    // Only the PF named: its VF is still bound, so its count stays and the journal keeps it.
    let (out, _) = text(root, &["restore", PF], 1);
    assert!(out.contains("still bound for manual"), "{out}");
    text(root, &["restore", "--all"], 0);
    assert_same(&began, &kernel_state(&t), "restore --all");
}

#[test]
fn renderers_give_each_vf_its_own_root_port() {
    let t = sriov();
    let root = t.root();
    let (qemu, _) = text(root, &["qemu-args", "0000:01:10.0", "0000:01:10.2"], 0);
    insta::assert_snapshot!("qemu_args_two_vfs", qemu);
    let (xml, _) = text(
        root,
        &[
            "libvirt-xml",
            "0000:01:10.0",
            "0000:01:10.2",
            "--guest-bus",
            "3",
        ],
        0,
    );
    insta::assert_snapshot!("libvirt_two_vfs", xml);
}

#[test]
fn a_vm_definition_names_vfs_by_pf_and_index_and_gets_one_root_port_each() {
    let t = sriov();
    let root = t.root();
    let vms = root.join("etc/vfioctl/vms");
    std::fs::create_dir_all(&vms).unwrap();
    // The PF once by address, once by its interface's MAC.
    std::fs::write(
        vms.join("web.toml"),
        "version = 1\n\nvf = [\n  { pf = \"0000:01:00.0\", index = 1, mac = \"52:54:00:12:34:56\" },\n  \
         { pf = \"52:54:00:01:00:00\", index = 0 },\n]\n\n[qemu]\nmachine = \"q35\"\nmemory = \"1G\"\n",
    )
    .unwrap();
    let (args, _) = text(root, &["vm", "qemu-args", "web"], 0);
    insta::assert_snapshot!("vm_qemu_args_two_vfs", args);
    assert_eq!(args.matches("pcie-root-port").count(), 2, "{args}");
    std::fs::write(
        vms.join("gone.toml"),
        "version = 1\nvf = { pf = \"0000:01:00.0\", index = 5 }\n",
    )
    .unwrap();
    let (_, err) = text(root, &["vm", "qemu-args", "gone"], 2);
    assert!(
        err.contains("0000:01:00.0 has no VF 5 (sriov_numvfs is 2)"),
        "{err}"
    );
}
