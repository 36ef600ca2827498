//! Modules: loading, unloading, parameters and modprobe.d.

use std::io;

use pretty_assertions::assert_eq;
use vfioctl_sim::SimModuleError;
use vfioctl_sim::topology::{ten64, x86_desktop};

use crate::support::{ENOENT, dev_attr, driver, drv_attr, errno_of, exists, read, w};

#[test]
fn load_module_creates_driver_and_reports_blacklist_and_absence() {
    let tree = ten64().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    assert!(!exists(&tree, "sys/bus/pci/drivers/vfio-pci"));
    k.load_module("vfio_pci").unwrap();
    for p in [
        "sys/bus/pci/drivers/vfio-pci/bind",
        "sys/bus/pci/drivers/vfio-pci/new_id",
        "sys/module/vfio_pci/parameters/disable_idle_d3",
        "sys/module/vfio_iommu_type1",
        "sys/module/vfio",
        "dev/vfio/vfio",
    ] {
        assert!(exists(&tree, p), "{p}");
    }
    assert_eq!(
        read(&tree, "sys/module/vfio_pci/parameters/disable_idle_d3"),
        "N\n"
    );
    // Loading again is a no-op.
    k.load_module("vfio-pci").unwrap();
    assert!(matches!(
        k.load_module("apex"),
        Err(SimModuleError::NotFound(_))
    ));
    assert!(matches!(
        k.load_module("no_such_module"),
        Err(SimModuleError::NotFound(_))
    ));
    let desktop = x86_desktop().build_temp().unwrap();
    assert!(matches!(
        desktop.kernel().unwrap().load_module("nouveau"),
        Err(SimModuleError::Blacklisted(_))
    ));
}

#[test]
fn module_parameters_and_read_only_attributes() {
    let tree = x86_desktop().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    w(&k, "/sys/module/vfio_pci/parameters/disable_idle_d3", "Y").unwrap();
    assert_eq!(
        read(&tree, "sys/module/vfio_pci/parameters/disable_idle_d3"),
        "Y\n"
    );
    let e = w(&k, dev_attr("0000:03:00.0", "vendor"), "0x1234").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    assert_eq!(
        errno_of(w(&k, dev_attr("0000:03:00.0", "nonexistent"), "1")),
        ENOENT
    );
    assert_eq!(errno_of(w(&k, "/sys/../../etc/passwd", "x")), ENOENT);
}

#[test]
fn build_refuses_a_binding_to_an_unloaded_driver() {
    let mut b = x86_desktop();
    b.device_mut("0000:01:00.0").unwrap().driver = Some("nouveau".into());
    assert_eq!(
        b.build_temp().unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
}

#[test]
fn blacklisted_modules_show_in_modprobe_d() {
    let mut b = ten64();
    b.set_module_state("vfio_pci", vfioctl_sim::ModuleState::Blacklisted);
    let tree = b.build_temp().unwrap();
    assert_eq!(
        read(&tree, "etc/modprobe.d/blacklist-vfioctl-sim.conf"),
        "blacklist vfio_pci\n"
    );
    assert!(matches!(
        tree.kernel().unwrap().load_module("vfio-pci"),
        Err(SimModuleError::Blacklisted(_))
    ));
    // The desktop's nouveau blacklist is in its own file, not repeated.
    let desktop = x86_desktop().build_temp().unwrap();
    assert!(!exists(
        &desktop,
        "etc/modprobe.d/blacklist-vfioctl-sim.conf"
    ));
}

#[test]
fn unloading_a_module_is_refused_while_its_driver_has_a_device() {
    let tree = ten64().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    k.load_module("vfio-pci").unwrap();
    assert!(exists(&tree, "sys/bus/pci/drivers/vfio-pci"));
    w(&k, dev_attr("0001:04:00.0", "driver_override"), "vfio-pci").unwrap();
    w(&k, "/sys/bus/pci/drivers_probe", "0001:04:00.0").unwrap();
    assert_eq!(driver(&tree, "0001:04:00.0").as_deref(), Some("vfio-pci"));
    assert!(matches!(
        k.unload_module("vfio-pci"),
        Err(SimModuleError::InUse(_))
    ));
    w(&k, drv_attr("vfio-pci", "unbind"), "0001:04:00.0").unwrap();
    k.unload_module("vfio_pci").unwrap();
    assert!(!exists(&tree, "sys/bus/pci/drivers/vfio-pci"));
    assert!(!exists(&tree, "sys/module/vfio_pci"));
    // Not loaded: nothing to do. Built in: refused.
    k.unload_module("vfio-pci").unwrap();
    assert!(matches!(
        k.unload_module("nvme"),
        Err(SimModuleError::InUse(_))
    ));
    assert!(matches!(
        k.unload_module("no-such-module"),
        Err(SimModuleError::NotFound(_))
    ));
}
