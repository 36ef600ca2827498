//! Device attributes: removal, hot-unplug and reset methods.

use pretty_assertions::assert_eq;
use vfioctl_sim::topology::{qemu_x86, x86_desktop};
use vfioctl_sim::{QemuTopo, SimKernel};

use crate::support::{EINVAL, a, dev_attr, errno_of, exists, read, w};

#[test]
fn device_remove_attribute_unplugs() {
    let tree = qemu_x86(QemuTopo::PciBridge).build_temp().unwrap();
    let k = tree.kernel().unwrap();
    w(&k, dev_attr("0000:01:00.0", "remove"), "1").unwrap();
    assert!(!exists(&tree, "sys/bus/pci/devices/0000:01:00.0"));
    assert!(!exists(&tree, "sys/bus/pci/devices/0000:02:02.0"));
    assert!(!exists(&tree, "sys/kernel/iommu_groups/3"));
    assert!(exists(&tree, "sys/bus/pci/devices/0000:00:10.0"));
}

#[test]
fn unplugging_a_vf_drops_its_virtfn_link() {
    let tree = qemu_x86(QemuTopo::Sriov).build_temp().unwrap();
    assert!(SimKernel::is_simulated(tree.root()));
    let k = tree.kernel().unwrap();
    let pf = "sys/devices/pci0000:00/0000:00:10.0/0000:01:00.0";
    assert!(exists(&tree, &format!("{pf}/virtfn1")));
    k.unplug(a("0000:01:10.2")).unwrap();
    assert!(exists(&tree, &format!("{pf}/virtfn0")));
    assert!(!exists(&tree, &format!("{pf}/virtfn1")));
    assert!(!exists(&tree, "sys/class/net/eth2"));
}

#[test]
fn reset_method_accepts_supported_methods_and_default() {
    let tree = x86_desktop().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    let nic = "0000:03:00.0";
    let attr = "sys/bus/pci/devices/0000:03:00.0/reset_method";
    assert_eq!(read(&tree, attr), "flr bus\n");
    w(&k, dev_attr(nic, "reset_method"), "bus").unwrap();
    assert_eq!(read(&tree, attr), "bus\n");
    assert_eq!(
        errno_of(w(&k, dev_attr(nic, "reset_method"), "device_specific")),
        EINVAL
    );
    w(&k, dev_attr(nic, "reset_method"), "default").unwrap();
    assert_eq!(read(&tree, attr), "flr bus\n");
}
