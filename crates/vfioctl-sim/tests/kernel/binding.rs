//! Overrides, binding, unbinding, probing and dynamic IDs.

use std::fs;
use std::path::Path;

use pretty_assertions::assert_eq;
use vfioctl_sim::topology::{qemu_arm64, qemu_x86, ten64, x86_desktop};
use vfioctl_sim::{QemuTopo, SimKernel};

use crate::support::{
    EBUSY, EEXIST, EINVAL, ENODEV, ENOENT, dev_attr, driver, drv_attr, errno_of, exists, read, w,
};

#[test]
fn open_needs_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    assert!(SimKernel::open(dir.path()).is_err());
}

#[test]
fn driver_override_sets_and_clears_without_binding() {
    let tree = qemu_x86(QemuTopo::RootPorts).build_temp().unwrap();
    let k = tree.kernel().unwrap();
    let attr = "sys/bus/pci/devices/0000:01:00.0/driver_override";
    w(
        &k,
        dev_attr("0000:01:00.0", "driver_override"),
        "vfio-pci\n",
    )
    .unwrap();
    assert_eq!(read(&tree, attr), "vfio-pci\n");
    // Does not unbind.
    assert_eq!(driver(&tree, "0000:01:00.0").as_deref(), Some("e1000e"));
    w(&k, dev_attr("0000:01:00.0", "driver_override"), "\n").unwrap();
    assert_eq!(read(&tree, attr), "(null)\n");
    w(&k, dev_attr("0000:01:00.0", "driver_override"), "vfio-pci").unwrap();
    w(&k, dev_attr("0000:01:00.0", "driver_override"), "").unwrap();
    assert_eq!(read(&tree, attr), "(null)\n");
    // Only up to the first newline is kept.
    w(
        &k,
        dev_attr("0000:01:00.0", "driver_override"),
        "pci-stub\ngarbage",
    )
    .unwrap();
    assert_eq!(read(&tree, attr), "pci-stub\n");
    let long = "x".repeat(4095);
    assert_eq!(
        errno_of(w(&k, dev_attr("0000:01:00.0", "driver_override"), &long)),
        EINVAL
    );
    assert_eq!(read(&tree, attr), "pci-stub\n");
}

#[test]
fn driver_override_reads_empty_on_newer_kernels() {
    let mut b = qemu_x86(QemuTopo::RootPorts);
    b.host.override_unset_null = false;
    let tree = b.build_temp().unwrap();
    let attr = "sys/bus/pci/devices/0000:01:00.0/driver_override";
    assert_eq!(read(&tree, attr), "\n");
    let k = tree.kernel().unwrap();
    w(&k, dev_attr("0000:01:00.0", "driver_override"), "vfio-pci").unwrap();
    w(&k, dev_attr("0000:01:00.0", "driver_override"), "\n").unwrap();
    assert_eq!(read(&tree, attr), "\n");
}

#[test]
fn unbind_removes_links_and_network_interfaces() {
    let tree = x86_desktop().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    assert!(exists(&tree, "sys/class/net/enp3s0"));
    assert!(read(&tree, "proc/net/route").contains("enp3s0"));
    assert_eq!(
        errno_of(w(&k, drv_attr("e1000e-not-here", "unbind"), "0000:03:00.0")),
        ENOENT
    );
    assert_eq!(
        errno_of(w(&k, drv_attr("ahci", "unbind"), "0000:03:00.0")),
        ENODEV
    );
    w(&k, drv_attr("igb", "unbind"), "0000:03:00.0\n").unwrap();
    assert_eq!(driver(&tree, "0000:03:00.0"), None);
    assert!(!exists(&tree, "sys/bus/pci/drivers/igb/0000:03:00.0"));
    assert!(!exists(&tree, "sys/class/net/enp3s0"));
    assert!(!exists(
        &tree,
        "sys/devices/pci0000:00/0000:00:1c.4/0000:03:00.0/net"
    ));
    assert!(!read(&tree, "proc/net/route").contains("enp3s0"));
    assert!(!read(&tree, "sys/bus/pci/devices/0000:03:00.0/uevent").contains("DRIVER="));
    // Unbinding again: no longer bound to igb.
    assert_eq!(
        errno_of(w(&k, drv_attr("igb", "unbind"), "0000:03:00.0")),
        ENODEV
    );
}

#[test]
fn bind_follows_id_tables_and_driver_override() {
    let tree = x86_desktop().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    let nic = "0000:04:00.0";
    w(&k, drv_attr("igb", "unbind"), nic).unwrap();
    // vfio-pci has no IDs: only an override lets it bind.
    assert_eq!(errno_of(w(&k, drv_attr("vfio-pci", "bind"), nic)), ENODEV);
    // An override naming another driver blocks ID matching too.
    w(&k, dev_attr(nic, "driver_override"), "pci-stub").unwrap();
    assert_eq!(errno_of(w(&k, drv_attr("igb", "bind"), nic)), ENODEV);
    assert_eq!(errno_of(w(&k, drv_attr("vfio-pci", "bind"), nic)), ENODEV);
    w(&k, dev_attr(nic, "driver_override"), "\n").unwrap();
    // ID match.
    w(&k, drv_attr("igb", "bind"), nic).unwrap();
    assert_eq!(driver(&tree, nic).as_deref(), Some("igb"));
    assert!(exists(&tree, "sys/class/net/enp4s0"));
    assert_eq!(
        fs::read_link(tree.root().join("sys/bus/pci/drivers/igb").join(nic)).unwrap(),
        Path::new("../../../../devices/pci0000:00/0000:00:1d.0/0000:04:00.0")
    );
    // Already bound.
    assert_eq!(errno_of(w(&k, drv_attr("igb", "bind"), nic)), EBUSY);
    w(&k, dev_attr(nic, "driver_override"), "vfio-pci").unwrap();
    assert_eq!(errno_of(w(&k, drv_attr("vfio-pci", "bind"), nic)), EBUSY);
    // No such device.
    assert_eq!(
        errno_of(w(&k, drv_attr("igb", "bind"), "0000:09:00.0")),
        ENODEV
    );
    // Unloaded driver: no bind file.
    assert_eq!(errno_of(w(&k, drv_attr("nouveau", "bind"), nic)), ENOENT);
}

#[test]
fn vfio_pci_refuses_bridges() {
    let tree = qemu_x86(QemuTopo::RootPorts).build_temp().unwrap();
    let k = tree.kernel().unwrap();
    let rp = "0000:00:10.0";
    w(&k, drv_attr("pcieport", "unbind"), rp).unwrap();
    w(&k, dev_attr(rp, "driver_override"), "vfio-pci").unwrap();
    assert_eq!(errno_of(w(&k, drv_attr("vfio-pci", "bind"), rp)), EINVAL);
    assert_eq!(driver(&tree, rp), None);
}

#[test]
fn vfio_pci_needs_an_iommu_group() {
    // arm64 stream-ID clash: 02:02.0 has no group.
    let tree = qemu_arm64(QemuTopo::PciBridge).build_temp().unwrap();
    let k = tree.kernel().unwrap();
    let dev = "0000:02:02.0";
    w(&k, dev_attr(dev, "driver_override"), "vfio-pci").unwrap();
    w(&k, drv_attr("e1000", "unbind"), dev).unwrap();
    assert_eq!(errno_of(w(&k, drv_attr("vfio-pci", "bind"), dev)), EINVAL);
    assert_eq!(driver(&tree, dev), None);
    assert_eq!(
        read(&tree, &format!("sys/bus/pci/devices/{dev}/driver_override")),
        "vfio-pci\n"
    );
    // drivers_probe swallows the probe error.
    w(&k, "/sys/bus/pci/drivers_probe", dev).unwrap();
    assert_eq!(driver(&tree, dev), None);
    // With no-IOMMU mode the bind goes through.
    k.set_noiommu(true).unwrap();
    w(&k, drv_attr("vfio-pci", "bind"), dev).unwrap();
    assert_eq!(driver(&tree, dev).as_deref(), Some("vfio-pci"));
}

#[test]
fn vfio_group_node_follows_the_vfio_members() {
    let tree = qemu_x86(QemuTopo::MultiFunction).build_temp().unwrap();
    let k = tree.kernel().unwrap();
    for dev in ["0000:01:00.0", "0000:01:00.1"] {
        w(&k, dev_attr(dev, "driver_override"), "vfio-pci").unwrap();
        w(&k, drv_attr("e1000e", "unbind"), dev).unwrap();
        w(&k, drv_attr("vfio-pci", "bind"), dev).unwrap();
        assert!(exists(&tree, "dev/vfio/3"));
    }
    assert!(exists(&tree, "dev/vfio/vfio"));
    w(&k, drv_attr("vfio-pci", "unbind"), "0000:01:00.0").unwrap();
    assert!(exists(&tree, "dev/vfio/3"), "one member still on vfio-pci");
    w(&k, drv_attr("vfio-pci", "unbind"), "0000:01:00.1").unwrap();
    assert!(!exists(&tree, "dev/vfio/3"));
}

#[test]
fn drivers_probe_honours_override_and_reports_success_regardless() {
    let tree = ten64().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    let tpu = "0001:04:00.0";
    // No driver matches the Coral: success, nothing bound.
    w(&k, "/sys/bus/pci/drivers_probe", tpu).unwrap();
    assert_eq!(driver(&tree, tpu), None);
    // Override names a module not loaded: success, nothing bound.
    w(&k, dev_attr(tpu, "driver_override"), "vfio-pci").unwrap();
    w(&k, "/sys/bus/pci/drivers_probe", tpu).unwrap();
    assert_eq!(driver(&tree, tpu), None);
    assert_eq!(
        errno_of(w(&k, "/sys/bus/pci/drivers_probe", "0001:09:00.0")),
        ENODEV
    );
    // The restore path: unbind from vfio-pci, clear override, probe -> original driver.
    let wifi = "0001:03:00.0";
    k.load_module("vfio-pci").unwrap();
    assert_eq!(
        driver(&tree, tpu).as_deref(),
        Some("vfio-pci"),
        "module init probes overrides"
    );
    w(&k, dev_attr(wifi, "driver_override"), "vfio-pci").unwrap();
    w(&k, drv_attr("ath10k_pci", "unbind"), wifi).unwrap();
    w(&k, "/sys/bus/pci/drivers_probe", wifi).unwrap();
    assert_eq!(driver(&tree, wifi).as_deref(), Some("vfio-pci"));
    w(&k, drv_attr("vfio-pci", "unbind"), wifi).unwrap();
    w(&k, dev_attr(wifi, "driver_override"), "\n").unwrap();
    w(&k, "/sys/bus/pci/drivers_probe", wifi).unwrap();
    assert_eq!(driver(&tree, wifi).as_deref(), Some("ath10k_pci"));
    assert!(exists(&tree, "sys/class/net/wlan0"));
}

#[test]
fn new_id_binds_every_matching_unbound_device() {
    let tree = qemu_x86(QemuTopo::RootPorts).build_temp().unwrap();
    let k = tree.kernel().unwrap();
    for dev in ["0000:01:00.0", "0000:02:00.0"] {
        w(&k, drv_attr("e1000e", "unbind"), dev).unwrap();
    }
    w(&k, drv_attr("vfio-pci", "new_id"), "8086 10d3").unwrap();
    assert_eq!(driver(&tree, "0000:01:00.0").as_deref(), Some("vfio-pci"));
    assert_eq!(driver(&tree, "0000:02:00.0").as_deref(), Some("vfio-pci"));
    assert_eq!(k.dynamic_ids("vfio-pci").unwrap().len(), 1);
    assert_eq!(
        errno_of(w(&k, drv_attr("vfio-pci", "new_id"), "8086 10d3")),
        EEXIST
    );
    assert_eq!(
        errno_of(w(&k, drv_attr("vfio-pci", "new_id"), "zz")),
        EINVAL
    );
    w(&k, drv_attr("vfio-pci", "remove_id"), "8086 10d3").unwrap();
    assert!(k.dynamic_ids("vfio-pci").unwrap().is_empty());
    assert_eq!(
        errno_of(w(&k, drv_attr("vfio-pci", "remove_id"), "8086 10d3")),
        ENODEV
    );
}

#[test]
fn gpu_passthrough_and_restore_leave_the_tree_as_it_began() {
    let tree = x86_desktop().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    let before = tree.snapshot().unwrap();
    let funcs = [
        ("0000:01:00.0", "nvidia"),
        ("0000:01:00.1", "snd_hda_intel"),
    ];
    for (dev, drv) in funcs {
        w(&k, dev_attr(dev, "driver_override"), "vfio-pci").unwrap();
        w(&k, drv_attr(drv, "unbind"), dev).unwrap();
        w(&k, drv_attr("vfio-pci", "bind"), dev).unwrap();
    }
    assert!(exists(&tree, "dev/vfio/1"));
    assert_ne!(tree.snapshot().unwrap(), before);
    for (dev, drv) in funcs {
        w(&k, drv_attr("vfio-pci", "unbind"), dev).unwrap();
        w(&k, dev_attr(dev, "driver_override"), "\n").unwrap();
        w(&k, "/sys/bus/pci/drivers_probe", dev).unwrap();
        assert_eq!(driver(&tree, dev).as_deref(), Some(drv));
    }
    let after = tree.snapshot().unwrap();
    assert_eq!(after.diff(&before), Vec::<String>::new());
    assert_eq!(after, before);
    // A leftover dynamic ID shows up as a difference.
    w(&k, drv_attr("vfio-pci", "new_id"), "1b4b 9230").unwrap();
    assert_eq!(
        tree.snapshot().unwrap().diff(&before),
        vec![".vfioctl-sim/kernel.json".to_owned()]
    );
}
