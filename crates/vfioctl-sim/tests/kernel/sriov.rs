//! SR-IOV: `sriov_numvfs` and `sriov_drivers_autoprobe` as `drivers/pci/iov.c` handles them, and
//! VF link settings.

use pretty_assertions::assert_eq;
use vfioctl_sim::topology::{qemu_x86, sriov_host};
use vfioctl_sim::{QemuTopo, SimKernel, SimTree};

use crate::support::{
    EBUSY, EINVAL, ENOENT, a, dev_attr, driver, drv_attr, errno_of, exists, read, w,
};

const ERANGE: i32 = 34;
const EPERM: i32 = 1;
const PF: &str = "0000:01:00.0";
const PF_DIR: &str = "sys/devices/pci0000:00/0000:00:10.0/0000:01:00.0";

fn numvfs(tree: &SimTree) -> String {
    read(tree, &format!("{PF_DIR}/sriov_numvfs"))
}

fn group_of(tree: &SimTree, addr: &str) -> Option<String> {
    std::fs::read_link(
        tree.root()
            .join(format!("sys/bus/pci/devices/{addr}/iommu_group")),
    )
    .ok()
    .map(|t| t.file_name().unwrap().to_string_lossy().into_owned())
}

/// The QEMU igb topology with no VFs yet, as after boot without `max_vfs`.
fn no_vfs() -> (SimTree, SimKernel) {
    let tree = qemu_x86(QemuTopo::Sriov).build_temp().unwrap();
    let k = tree.kernel().unwrap();
    w(&k, dev_attr(PF, "sriov_numvfs"), "0").unwrap();
    (tree, k)
}

#[test]
fn capability_files_use_the_kernels_formats() {
    let tree = qemu_x86(QemuTopo::Sriov).build_temp().unwrap();
    assert_eq!(read(&tree, &format!("{PF_DIR}/sriov_totalvfs")), "7\n");
    assert_eq!(numvfs(&tree), "2\n");
    assert_eq!(read(&tree, &format!("{PF_DIR}/sriov_offset")), "128\n");
    assert_eq!(read(&tree, &format!("{PF_DIR}/sriov_stride")), "2\n");
    assert_eq!(read(&tree, &format!("{PF_DIR}/sriov_vf_device")), "10ca\n");
    assert_eq!(
        read(&tree, &format!("{PF_DIR}/sriov_drivers_autoprobe")),
        "1\n"
    );
}

#[test]
fn disabling_removes_every_vf_and_its_links() {
    let (tree, _k) = no_vfs();
    assert_eq!(numvfs(&tree), "0\n");
    for vf in ["0000:01:10.0", "0000:01:10.2"] {
        assert!(!exists(&tree, &format!("sys/bus/pci/devices/{vf}")), "{vf}");
    }
    assert!(!exists(&tree, &format!("{PF_DIR}/virtfn0")));
    assert!(!exists(&tree, "sys/class/net/eth1"));
    assert_eq!(driver(&tree, PF).as_deref(), Some("igb"));
}

#[test]
fn enabling_adds_vfs_at_offset_and_stride_with_their_own_groups() {
    let (tree, k) = no_vfs();
    w(&k, dev_attr(PF, "sriov_drivers_autoprobe"), "0").unwrap();
    w(&k, dev_attr(PF, "sriov_numvfs"), "3").unwrap();
    assert_eq!(numvfs(&tree), "3\n");
    let vfs = ["0000:01:10.0", "0000:01:10.2", "0000:01:10.4"];
    let mut groups = Vec::new();
    for (i, vf) in vfs.iter().enumerate() {
        let link = std::fs::read_link(tree.root().join(format!("{PF_DIR}/virtfn{i}"))).unwrap();
        assert!(link.ends_with(vf), "virtfn{i} -> {}", link.display());
        let back = std::fs::read_link(tree.root().join(format!("sys/bus/pci/devices/{vf}/physfn")));
        assert!(back.unwrap().ends_with(PF));
        assert_eq!(
            read(&tree, &format!("sys/bus/pci/devices/{vf}/device")),
            "0x10ca\n"
        );
        // Autoprobe 0: igbvf matches but must not take them.
        assert_eq!(driver(&tree, vf), None, "{vf}");
        groups.push(group_of(&tree, vf).unwrap());
    }
    groups.push(group_of(&tree, PF).unwrap());
    let mut distinct = groups.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), groups.len(), "{groups:?}");
    // A new VF is still probed by hand.
    w(&k, "/sys/bus/pci/drivers_probe", vfs[0]).unwrap();
    assert_eq!(driver(&tree, vfs[0]).as_deref(), Some("igbvf"));
}

#[test]
fn autoprobe_1_lets_new_vfs_land_on_their_driver() {
    let (tree, k) = no_vfs();
    w(&k, dev_attr(PF, "sriov_numvfs"), "1").unwrap();
    assert_eq!(driver(&tree, "0000:01:10.0").as_deref(), Some("igbvf"));
    // The interface VF 0 had at boot comes back with it.
    assert!(exists(&tree, "sys/class/net/eth1"));
}

#[test]
fn vfs_share_the_pfs_group_without_acs_above_it() {
    let mut b = qemu_x86(QemuTopo::Sriov);
    b.device_mut("0000:00:10.0").unwrap().acs = None;
    let tree = b.build_temp().unwrap();
    let k = tree.kernel().unwrap();
    w(&k, dev_attr(PF, "sriov_numvfs"), "0").unwrap();
    w(&k, dev_attr(PF, "sriov_numvfs"), "2").unwrap();
    assert_eq!(group_of(&tree, "0000:01:10.2"), group_of(&tree, PF));
}

#[test]
fn the_count_goes_through_zero() {
    let tree = qemu_x86(QemuTopo::Sriov).build_temp().unwrap();
    let k = tree.kernel().unwrap();
    assert_eq!(errno_of(w(&k, dev_attr(PF, "sriov_numvfs"), "3")), EBUSY);
    // The same value is no change and no error.
    w(&k, dev_attr(PF, "sriov_numvfs"), "2\n").unwrap();
    assert_eq!(numvfs(&tree), "2\n");
    assert!(exists(&tree, "sys/bus/pci/devices/0000:01:10.2"));
}

#[test]
fn bad_values_are_refused_as_the_kernel_refuses_them() {
    let (tree, k) = no_vfs();
    assert_eq!(errno_of(w(&k, dev_attr(PF, "sriov_numvfs"), "8")), ERANGE);
    assert_eq!(errno_of(w(&k, dev_attr(PF, "sriov_numvfs"), "two")), EINVAL);
    assert_eq!(errno_of(w(&k, dev_attr(PF, "sriov_numvfs"), "-1")), EINVAL);
    assert_eq!(
        errno_of(w(&k, dev_attr(PF, "sriov_drivers_autoprobe"), "maybe")),
        EINVAL
    );
    // kstrtou16 takes hex too.
    w(&k, dev_attr(PF, "sriov_numvfs"), "0x2").unwrap();
    assert_eq!(numvfs(&tree), "2\n");
}

#[test]
fn without_a_pf_driver_nothing_can_be_configured() {
    let (tree, k) = no_vfs();
    w(&k, drv_attr("igb", "unbind"), PF).unwrap();
    assert_eq!(errno_of(w(&k, dev_attr(PF, "sriov_numvfs"), "1")), ENOENT);
    assert_eq!(numvfs(&tree), "0\n");
}

#[test]
fn vfs_on_vfio_pci_are_removed_but_assigned_ones_are_refused() {
    let tree = vfioctl_sim::hosts::sriov_vf_on_vfio().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    k.set_vf_assigned(a("0000:01:10.0"), true).unwrap();
    assert_eq!(errno_of(w(&k, dev_attr(PF, "sriov_numvfs"), "0")), EPERM);
    assert_eq!(driver(&tree, "0000:01:10.0").as_deref(), Some("vfio-pci"));
    k.set_vf_assigned(a("0000:01:10.0"), false).unwrap();
    w(&k, dev_attr(PF, "sriov_numvfs"), "0").unwrap();
    assert!(!exists(&tree, "sys/bus/pci/devices/0000:01:10.0"));
    assert!(
        !exists(&tree, "dev/vfio/2"),
        "the group node goes with its last member"
    );
}

#[test]
fn unbinding_the_pf_takes_its_vfs() {
    let tree = qemu_x86(QemuTopo::Sriov).build_temp().unwrap();
    let k = tree.kernel().unwrap();
    w(&k, drv_attr("igb", "unbind"), PF).unwrap();
    assert!(!exists(&tree, "sys/bus/pci/devices/0000:01:10.0"));
    assert_eq!(numvfs(&tree), "0\n");
}

#[test]
fn vf_links_are_kept_per_index_and_reset_on_recreation() {
    let (_tree, k) = no_vfs();
    w(&k, dev_attr(PF, "sriov_numvfs"), "2").unwrap();
    assert_eq!(k.vf_links("eth0").unwrap().len(), 2);
    k.set_vf_link("eth0", 1, |l| l.mac = "52:54:00:12:34:56".to_owned())
        .unwrap();
    assert_eq!(k.vf_links("eth0").unwrap()[1].mac, "52:54:00:12:34:56");
    assert_eq!(
        k.set_vf_link("eth0", 2, |l| l.trust = true)
            .unwrap_err()
            .raw_os_error(),
        Some(EINVAL)
    );
    assert!(k.set_vf_link("eth9", 0, |l| l.trust = true).is_err());
    w(&k, dev_attr(PF, "sriov_numvfs"), "0").unwrap();
    w(&k, dev_attr(PF, "sriov_numvfs"), "2").unwrap();
    assert_eq!(k.vf_links("eth0").unwrap()[1].mac, "00:00:00:00:00:00");
}

#[test]
fn vfs_past_the_pfs_devfn_space_spill_onto_the_next_bus() {
    let tree = sriov_host(300).build_temp().unwrap();
    let k = tree.kernel().unwrap();
    let pf = "0000:01:00.0";
    w(&k, dev_attr(pf, "sriov_numvfs"), "0").unwrap();
    w(&k, dev_attr(pf, "sriov_drivers_autoprobe"), "0").unwrap();
    w(&k, dev_attr(pf, "sriov_numvfs"), "250").unwrap();
    // Offset 16, stride 1: VF 239 is routing ID 0x1ff, VF 240 the first on bus 2.
    assert!(exists(&tree, "sys/bus/pci/devices/0000:01:1f.7"));
    assert!(exists(&tree, "sys/bus/pci/devices/0000:02:00.0"));
    assert!(exists(&tree, "sys/bus/pci/devices/0000:02:01.1"));
}
