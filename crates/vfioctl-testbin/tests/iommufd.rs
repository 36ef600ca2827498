//! iommufd and the VFIO device cdev on a simulated kernel built with them (Debian's kernels are
//! not, so this is where the feature is proven): the files `list`, `show` and `bind --user` deal
//! with, the QEMU and libvirt renderings, and what `doctor` says.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::shown::{host, shown};
use common::{json, vfioctl};
use vfioctl_sim::SimTree;
use vfioctl_sim::topology::x86_desktop;

fn iommufd_desktop() -> SimTree {
    let mut b = x86_desktop();
    b.iommufd = true;
    host(b)
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn owner_and_mode(root: &Path, rel: &str) -> (u32, u32) {
    let meta = std::fs::metadata(root.join(rel)).unwrap();
    (meta.uid(), meta.permissions().mode() & 0o777)
}

#[test]
fn bind_user_hands_over_the_device_files_and_dev_iommu() {
    let t = iommufd_desktop();
    let root = t.root();
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nqemu:x:64055:64055::/nonexistent:/usr/sbin/nologin\n",
    )
    .unwrap();
    insta::assert_snapshot!(
        "iommufd_bind_user",
        shown(root, "bind --user qemu 0000:01:00.0")
    );
    for rel in [
        "dev/vfio/1",
        "dev/vfio/devices/vfio0",
        "dev/vfio/devices/vfio1",
        "dev/iommu",
    ] {
        let (uid, mode) = owner_and_mode(root, rel);
        assert_eq!(mode, 0o600, "{rel}");
        if is_root() {
            assert_eq!(uid, 64055, "{rel}");
        }
    }
    let listed = json(root, &["list", "-s", "0000:01:00.1"], 0);
    assert_eq!(listed["devices"][0]["vfio_device"], "vfio1");
    insta::assert_snapshot!("iommufd_list_k", shown(root, "list -k -s 0000:01:00.0"));
    let show = shown(root, "show 0000:01:00.0");
    assert!(
        show.contains("VFIO device:      /dev/vfio/devices/vfio0 (iommufd)"),
        "{show}"
    );
    // Given back, the device loses its file, as the kernel removes it with vfio-pci.
    vfioctl(root).args(["restore", "--all"]).assert().code(0);
    assert!(!root.join("dev/vfio/devices/vfio0").exists());
}

#[test]
fn qemu_and_libvirt_render_the_iommufd_backend() {
    let t = iommufd_desktop();
    let root = t.root();
    insta::assert_snapshot!(
        "iommufd_qemu_args",
        shown(root, "qemu-args --iommufd 0000:01:00.0")
    );
    insta::assert_snapshot!(
        "iommufd_libvirt_xml",
        shown(root, "libvirt-xml --iommufd --guest-bus 3 0000:01:00.0")
    );
    std::fs::create_dir_all(root.join("etc/vfioctl/vms")).unwrap();
    std::fs::write(
        root.join("etc/vfioctl/vms/gpu.toml"),
        "version = 1\n\n[[device]]\naddress = \"0000:01:00.0\"\nid = \"10de:2684\"\n\n\
         [qemu]\nmachine = \"q35\"\nbackend = \"iommufd\"\n",
    )
    .unwrap();
    let argv = json(root, &["vm", "qemu-args", "gpu"], 0);
    let argv: Vec<&str> = argv["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let object = argv
        .iter()
        .position(|a| *a == "iommufd,id=iommufd0")
        .unwrap();
    assert_eq!(argv[object - 1], "-object");
    let vfio: Vec<&&str> = argv.iter().filter(|a| a.starts_with("vfio-pci,")).collect();
    assert_eq!(vfio.len(), 2, "{argv:?}");
    assert!(
        vfio.iter().all(|a| a.ends_with(",iommufd=iommufd0")),
        "{argv:?}"
    );
    std::fs::write(
        root.join("etc/vfioctl/vms/bad.toml"),
        "version = 1\n\n[qemu]\nmachine = \"q35\"\nbackend = \"vfio\"\n",
    )
    .unwrap();
    let bad = vfioctl(root)
        .args(["vm", "qemu-args", "bad"])
        .output()
        .unwrap();
    assert_ne!(bad.status.code(), Some(0));
}

#[test]
fn doctor_says_whether_the_kernel_offers_iommufd() {
    let with = iommufd_desktop();
    let doc = json(with.root(), &["doctor"], 4);
    let ids: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"iommufd-available"), "{ids:?}");
    let without = host(x86_desktop());
    let doc = json(without.root(), &["doctor"], 4);
    let finding = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "iommufd-unavailable")
        .cloned()
        .unwrap();
    assert_eq!(finding["severity"], "info");
}
