//! What the host builds on its devices, found at any depth and through any stack: dm/md holders,
//! btrfs members, swap, VLAN/bridge uppers, an NFS root; each named with its chain.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use vfioctl_core::PciAddress;
use vfioctl_core::plan::HostUse;
use vfioctl_host::around::read_around;
use vfioctl_host::hostuse::{Walk, host_uses};
use vfioctl_host::read::{Depth, read_inventory};
use vfioctl_host::usage::HostUsage;
use vfioctl_host::{HostRoot, Kernel, RealKernel};
use vfioctl_sim::hosts;

/// The uses of `address`, checked to be the same whichever walk finds them and whether the whole
/// host is read or only what a plan for `address` reads.
fn uses_of(root: &Path, address: &str) -> Vec<HostUse> {
    let host = HostRoot::open(root).unwrap();
    let address: PciAddress = address.parse().unwrap();
    let whole = read_inventory(&host).unwrap();
    let around = read_around(&host, &[address], Depth::Plan).unwrap();
    let usage = HostUsage::read(&host).unwrap();
    let of = |inventory, walk| {
        host_uses(&host, inventory, &usage, walk)
            .remove(&address)
            .unwrap_or_default()
    };
    let uses = of(&whole, Walk::Classes);
    for (inventory, walk, what) in [
        (&whole, Walk::Subtrees, "whole host, subtrees"),
        (&around, Walk::Classes, "around, classes"),
        (&around, Walk::Subtrees, "around, subtrees"),
    ] {
        assert_eq!(described(&of(inventory, walk)), described(&uses), "{what}");
    }
    uses
}

fn described(uses: &[HostUse]) -> Vec<String> {
    uses.iter().map(HostUse::describe).collect()
}

/// A device-mapper volume `dm-0` named `vg-root` on top of `sda2`.
fn stack_dm_on_sda2(root: &Path) {
    let dm = root.join("sys/devices/virtual/block/dm-0");
    fs::create_dir_all(dm.join("dm")).unwrap();
    fs::write(dm.join("dm/name"), "vg-root\n").unwrap();
    symlink(
        "../../devices/virtual/block/dm-0",
        root.join("sys/class/block/dm-0"),
    )
    .unwrap();
    let sda2 = fs::canonicalize(root.join("sys/class/block/sda2")).unwrap();
    fs::create_dir_all(sda2.join("holders")).unwrap();
    symlink(&dm, sda2.join("holders/dm-0")).unwrap();
}

fn append(path: &Path, text: &str) {
    let mut all = fs::read_to_string(path).unwrap_or_default();
    all.push_str(text);
    fs::write(path, all).unwrap();
}

#[test]
fn a_root_on_lvm_on_a_usb_disk_names_the_whole_stack_and_is_essential() {
    let t = hosts::xhci_usb_disk("/mnt/unused").build_temp().unwrap();
    let root = t.root();
    stack_dm_on_sda2(root);
    append(
        &root.join("proc/mounts"),
        "/dev/mapper/vg-root / ext4 rw 0 0\n",
    );
    let uses = uses_of(root, "0000:00:04.0");
    let root_use = uses
        .iter()
        .find(|u| matches!(u, HostUse::Mount { mount_point, .. } if mount_point == "/"))
        .unwrap();
    assert_eq!(
        root_use.describe(),
        "usb 2-1 -> sda -> sda2 -> dm-0 mounted on /"
    );
    assert!(root_use.essential());
}

#[test]
fn swap_and_btrfs_members_are_uses_too() {
    let t = hosts::xhci_usb_disk("/mnt/unused").build_temp().unwrap();
    let root = t.root();
    fs::write(
        root.join("proc/swaps"),
        "Filename\tType\tSize\tUsed\tPriority\n/dev/sda1 partition 1048572 0 -2\n",
    )
    .unwrap();
    // A two-device btrfs whose /proc/mounts line names the other member.
    let members = root.join("sys/fs/btrfs/0f3c/devices");
    fs::create_dir_all(&members).unwrap();
    for m in ["sda2", "nvme9n1"] {
        fs::create_dir_all(members.join(m)).unwrap();
    }
    append(
        &root.join("proc/mounts"),
        "/dev/nvme9n1 /srv btrfs rw 0 0\n",
    );
    let text = described(&uses_of(root, "0000:00:04.0"));
    assert!(
        text.contains(&"usb 2-1 -> sda -> sda1 is in use as swap".to_owned()),
        "{text:?}"
    );
    assert!(
        text.contains(&"usb 2-1 -> sda -> sda2 mounted on /srv".to_owned()),
        "{text:?}"
    );
}

#[test]
fn a_bridge_on_the_virtio_nic_and_an_nfs_root_make_the_network_essential() {
    let t = hosts::virtio_net_guest().build_temp().unwrap();
    let root = t.root();
    // eth0 is enslaved to br0, which carries the route; the root comes over NFS.
    let br0 = root.join("sys/devices/virtual/net/br0");
    fs::create_dir_all(&br0).unwrap();
    fs::write(br0.join("operstate"), "up\n").unwrap();
    symlink(
        "../../devices/virtual/net/br0",
        root.join("sys/class/net/br0"),
    )
    .unwrap();
    let eth0 = fs::canonicalize(root.join("sys/class/net/eth0")).unwrap();
    symlink(&br0, eth0.join("upper_br0")).unwrap();
    let route = fs::read_to_string(root.join("proc/net/route")).unwrap();
    let route = route.replace("eth0\t", "br0\t");
    fs::write(root.join("proc/net/route"), route).unwrap();
    append(
        &root.join("proc/mounts"),
        "10.0.0.1:/srv/root / nfs4 rw,relatime 0 0\n",
    );
    let uses = uses_of(root, "0000:00:02.0");
    assert_eq!(
        described(&uses),
        ["virtio0 -> eth0 -> br0 carries the default route (the root filesystem comes over it)"]
    );
    assert!(uses[0].essential());
}

#[test]
fn the_host_critical_table_can_be_extended_on_the_host() {
    let t = hosts::virtio_net_guest().build_temp().unwrap();
    let root = t.root();
    assert!(matches!(
        uses_of(root, "0000:00:1f.0").as_slice(),
        [HostUse::Platform { what }] if what == "LPC bridge"
    ));
    fs::create_dir_all(root.join("etc/vfioctl")).unwrap();
    fs::write(
        root.join("etc/vfioctl/host-critical.toml"),
        "version = 1\n[[function]]\nclass = \"0601\"\ncritical = false\n",
    )
    .unwrap();
    assert!(uses_of(root, "0000:00:1f.0").is_empty());
}

#[test]
fn writes_to_regular_files_truncate() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("driver_override");
    fs::write(&file, "").unwrap();
    RealKernel.write_attr(&file, "vfio-pci").unwrap();
    RealKernel.write_attr(&file, "\n").unwrap();
    assert_eq!(fs::read_to_string(&file).unwrap(), "\n");
    // No O_CREAT: a vanished attribute stays vanished.
    assert!(
        RealKernel
            .write_attr(&dir.path().join("gone"), "1")
            .is_err()
    );
    assert!(!dir.path().join("gone").exists());
}

/// A directory under the real sysfs directory of `address`, with its `sys/class/<class>` link.
fn below(root: &Path, address: &str, rel: &str, class: &str) -> std::path::PathBuf {
    let dev = fs::canonicalize(root.join("sys/bus/pci/devices").join(address)).unwrap();
    let dir = dev.join(rel);
    fs::create_dir_all(&dir).unwrap();
    class_link(root, &dir, class);
    dir
}

/// `sys/class/<class>/<name>` pointing at `dir` relatively, as sysfs makes it.
fn class_link(root: &Path, dir: &Path, class: &str) {
    let sys = fs::canonicalize(root.join("sys")).unwrap();
    let rel = Path::new("../..").join(dir.strip_prefix(&sys).unwrap());
    let name = dir.file_name().unwrap();
    symlink(rel, root.join("sys/class").join(class).join(name)).unwrap();
}

#[test]
fn an_auxiliary_bus_interface_is_found_below_its_pci_function() {
    let t = hosts::virtio_net_guest().build_temp().unwrap();
    let root = t.root();
    // An mlx5/ice-style sub-function: the interface hangs off an auxiliary device.
    let eth7 = below(root, "0000:01:00.0", "mlx5_core.eth.0/net/eth7", "net");
    fs::write(eth7.join("operstate"), "up\n").unwrap();
    append(
        &root.join("proc/net/route"),
        "eth7\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
    );
    assert_eq!(
        described(&uses_of(root, "0000:01:00.0")),
        ["mlx5_core.eth.0 -> eth7 is up with addresses"]
    );
}

#[test]
fn an_iscsi_root_makes_the_network_it_comes_over_essential() {
    let t = hosts::virtio_net_guest().build_temp().unwrap();
    let root = t.root();
    // The iSCSI disk is no PCI device's: it lives under the session, and / is on it.
    let sdz = fs::canonicalize(root.join("sys"))
        .unwrap()
        .join("devices/platform/host9/session1/target9:0:0/9:0:0:0/block/sdz");
    fs::create_dir_all(&sdz).unwrap();
    class_link(root, &sdz, "block");
    append(&root.join("proc/mounts"), "/dev/sdz / ext4 rw 0 0\n");
    let uses = uses_of(root, "0000:00:02.0");
    assert_eq!(
        described(&uses),
        ["virtio0 -> eth0 carries the default route (the root filesystem comes over it)"]
    );
    assert!(uses[0].essential());
}

#[test]
fn the_ten64_nvme_root_is_found_through_the_controller_by_either_walk() {
    let t = vfioctl_sim::topology::ten64().build_temp().unwrap();
    assert_eq!(
        described(&uses_of(t.root(), "0002:01:00.0")),
        ["nvme0 -> nvme0n1 -> nvme0n1p2 mounted on /"]
    );
}

#[test]
fn a_directory_named_like_an_interface_is_not_that_interface() {
    let t = hosts::virtio_net_guest().build_temp().unwrap();
    let root = t.root();
    // eth0 belongs to the virtio NIC; a directory of the same name below another function
    // (a driver's debug node, say) must not make that function carry the default route.
    let dev = fs::canonicalize(root.join("sys/bus/pci/devices/0000:01:00.0")).unwrap();
    fs::create_dir_all(dev.join("debug/eth0")).unwrap();
    assert!(uses_of(root, "0000:01:00.0").is_empty());
    assert!(!uses_of(root, "0000:00:02.0").is_empty());
}

#[test]
fn a_root_on_a_native_nvme_multipath_disk_is_the_controllers() {
    let t = vfioctl_sim::topology::ten64().build_temp().unwrap();
    let root = t.root();
    // As with a subsystem that allows several controllers: the kernel hides the path disk
    // nvme0c0n1 below the controller and gives the host nvme0n1 under the subsystem.
    let ctrl = fs::canonicalize(root.join("sys/class/nvme/nvme0")).unwrap();
    let sys = fs::canonicalize(root.join("sys")).unwrap();
    let subsystem = sys.join("devices/virtual/nvme-subsystem/nvme-subsys0");
    fs::create_dir_all(&subsystem).unwrap();
    fs::rename(ctrl.join("nvme0n1"), subsystem.join("nvme0n1")).unwrap();
    for name in ["nvme0n1", "nvme0n1p1", "nvme0n1p2"] {
        fs::remove_file(root.join("sys/class/block").join(name)).unwrap();
    }
    let head = subsystem.join("nvme0n1");
    class_link(root, &head, "block");
    class_link(root, &head.join("nvme0n1p1"), "block");
    class_link(root, &head.join("nvme0n1p2"), "block");
    fs::create_dir_all(ctrl.join("nvme0c0n1")).unwrap();
    class_link(root, &ctrl.join("nvme0c0n1"), "block");
    assert_eq!(
        described(&uses_of(root, "0002:01:00.0")),
        ["nvme0 -> nvme0c0n1 -> nvme0n1 -> nvme0n1p2 mounted on /"]
    );
    // `show` lists the same mount for the controller.
    let host = HostRoot::open(root).unwrap();
    let usage = HostUsage::read(&host).unwrap();
    let dev = fs::canonicalize(root.join("sys/bus/pci/devices/0002:01:00.0")).unwrap();
    let mounts = usage.mounts_under(&dev);
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(mounts[0].block, "nvme0n1p2");
    assert_eq!(mounts[0].mount_points, ["/"]);
}
