//! The VFIO device cdev and iommufd: files that come and go with vfio-pci, and the exclusivity
//! of the group file, the cdevs and the group's DMA owner (Documentation/driver-api/vfio.rst).

use vfioctl_sim::cdev::VfioFiles;
use vfioctl_sim::topology::x86_desktop;
use vfioctl_sim::{Errno, SimKernel, SimTree};

use crate::support::{dev_attr, drv_attr, exists, read, w};

const GPU: &str = "0000:01:00.0";
const AUDIO: &str = "0000:01:00.1";

fn to_vfio(k: &SimKernel, address: &str, from: &str) {
    w(k, drv_attr(from, "unbind"), address).unwrap();
    w(k, dev_attr(address, "driver_override"), "vfio-pci").unwrap();
    w(k, drv_attr("vfio-pci", "bind"), address).unwrap();
}

fn iommufd_desktop() -> SimTree {
    let mut b = x86_desktop();
    b.iommufd = true;
    b.build_temp().unwrap()
}

#[test]
fn a_device_on_vfio_pci_gets_the_lowest_free_cdev_and_loses_it_with_the_driver() {
    let tree = iommufd_desktop();
    let k = tree.kernel().unwrap();
    assert!(exists(&tree, "dev/iommu"));
    let release = read(&tree, "proc/sys/kernel/osrelease");
    assert!(read(&tree, &format!("boot/config-{}", release.trim())).contains("CONFIG_IOMMUFD=y"));
    to_vfio(&k, GPU, "nvidia");
    to_vfio(&k, AUDIO, "snd_hda_intel");
    assert_eq!(
        read(
            &tree,
            &format!("sys/bus/pci/devices/{GPU}/vfio-dev/vfio0/dev")
        ),
        "511:0\n"
    );
    assert!(exists(&tree, "dev/vfio/devices/vfio0"));
    assert!(exists(
        &tree,
        &format!("sys/bus/pci/devices/{AUDIO}/vfio-dev/vfio1")
    ));
    w(&k, drv_attr("vfio-pci", "unbind"), GPU).unwrap();
    assert!(!exists(&tree, "dev/vfio/devices/vfio0"));
    assert!(!exists(
        &tree,
        &format!("sys/bus/pci/devices/{GPU}/vfio-dev")
    ));
    w(&k, drv_attr("vfio-pci", "bind"), GPU).unwrap();
    assert!(exists(
        &tree,
        &format!("sys/bus/pci/devices/{GPU}/vfio-dev/vfio0")
    ));
}

#[test]
fn the_group_file_and_the_cdevs_of_its_devices_are_exclusive() {
    let tree = iommufd_desktop();
    let k = tree.kernel().unwrap();
    to_vfio(&k, GPU, "nvidia");
    to_vfio(&k, AUDIO, "snd_hda_intel");
    let mut files = VfioFiles::new(tree.root());
    files.open_group(1).unwrap();
    assert_eq!(
        files.open_group(1),
        Err(Errno::Ebusy),
        "one opener of a group"
    );
    assert_eq!(files.open_cdev("vfio0"), Err(Errno::Ebusy));
    files.close_group(1);
    files.open_cdev("vfio0").unwrap();
    assert_eq!(files.open_group(1), Err(Errno::Ebusy));
    assert_eq!(files.open_cdev("vfio9"), Err(Errno::Enoent));
    files.close_cdev("vfio0");
    files.open_group(1).unwrap();
}

#[test]
fn a_group_has_one_dma_owner() {
    let tree = iommufd_desktop();
    let k = tree.kernel().unwrap();
    to_vfio(&k, GPU, "nvidia");
    to_vfio(&k, AUDIO, "snd_hda_intel");
    let mut files = VfioFiles::new(tree.root());
    let (a, b) = (files.open_iommufd().unwrap(), files.open_iommufd().unwrap());
    files.open_cdev("vfio0").unwrap();
    files.open_cdev("vfio1").unwrap();
    files.bind_iommufd("vfio0", a).unwrap();
    assert_eq!(
        files.bind_iommufd("vfio0", a),
        Err(Errno::Einval),
        "bound once"
    );
    assert_eq!(files.bind_iommufd("vfio1", b), Err(Errno::Ebusy));
    files.bind_iommufd("vfio1", a).unwrap();
    // With every device of the group closed, another iommufd may own it.
    files.close_cdev("vfio0");
    files.close_cdev("vfio1");
    files.open_cdev("vfio1").unwrap();
    files.bind_iommufd("vfio1", b).unwrap();
}

#[test]
fn a_kernel_without_iommufd_has_neither_dev_iommu_nor_cdevs() {
    let tree = x86_desktop().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    to_vfio(&k, GPU, "nvidia");
    assert!(!exists(
        &tree,
        &format!("sys/bus/pci/devices/{GPU}/vfio-dev")
    ));
    let mut files = VfioFiles::new(tree.root());
    assert_eq!(files.open_iommufd(), Err(Errno::Enoent));
}
