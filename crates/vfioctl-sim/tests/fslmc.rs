//! The fsl-mc (DPAA2) bus of the Ten64: layout, container scanning, vfio-fsl-mc binding.
// Helpers outside #[test] fns are test code too; a panic is the failure report.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::fs;
use std::path::PathBuf;

use pretty_assertions::assert_eq;
use vfioctl_sim::SimTree;
use vfioctl_sim::topology::ten64_dpaa2;

const BASE: &str = "sys/devices/platform/soc/80c000000.fsl-mc";

fn exists(tree: &SimTree, rel: &str) -> bool {
    fs::symlink_metadata(tree.root().join(rel)).is_ok()
}

fn link_name(tree: &SimTree, rel: &str) -> Option<String> {
    fs::read_link(tree.root().join(rel))
        .ok()
        .map(|t| t.file_name().unwrap().to_string_lossy().into_owned())
}

fn obj(name: &str, attr: &str) -> PathBuf {
    PathBuf::from(format!("/sys/bus/fsl-mc/devices/{name}/{attr}"))
}

fn drv(driver: &str, op: &str) -> PathBuf {
    PathBuf::from(format!("/sys/bus/fsl-mc/drivers/{driver}/{op}"))
}

#[test]
fn host_container_is_scanned_and_restool_container_is_alone() {
    let tree = ten64_dpaa2().build_temp().unwrap();
    assert!(exists(&tree, "dev/dprc.1"));
    assert_eq!(
        link_name(&tree, "sys/bus/fsl-mc/devices/dprc.1/driver").as_deref(),
        Some("fsl_mc_dprc")
    );
    assert_eq!(
        fs::read_link(tree.root().join("sys/bus/fsl-mc/devices/dpni.0")).unwrap(),
        PathBuf::from("../../../devices/platform/soc/80c000000.fsl-mc/dprc.1/dpni.0")
    );
    assert_eq!(
        link_name(&tree, "sys/bus/fsl-mc/devices/dpni.0/driver").as_deref(),
        Some("fsl_dpaa2_eth")
    );
    assert_eq!(
        link_name(&tree, "sys/bus/fsl-mc/devices/dpbp.0/driver").as_deref(),
        Some("fsl_mc_allocator")
    );
    // PCI groups are 0-2; the root container gets the next one, its bound objects join it.
    assert_eq!(
        link_name(&tree, "sys/bus/fsl-mc/devices/dprc.1/iommu_group").as_deref(),
        Some("3")
    );
    assert_eq!(
        link_name(&tree, "sys/bus/fsl-mc/devices/dpio.0/iommu_group").as_deref(),
        Some("3")
    );
    // No driver for dpmac: never probed, so no group (before 6.15).
    assert_eq!(
        link_name(&tree, "sys/bus/fsl-mc/devices/dpmac.1/driver"),
        None
    );
    assert_eq!(
        link_name(&tree, "sys/bus/fsl-mc/devices/dpmac.1/iommu_group"),
        None
    );
    // restool's container: unplugged, unbound, no objects visible, no group.
    assert!(exists(
        &tree,
        &format!("{BASE}/dprc.1/dprc.2/driver_override")
    ));
    assert_eq!(
        link_name(&tree, "sys/bus/fsl-mc/devices/dprc.2/driver"),
        None
    );
    assert!(!exists(&tree, "sys/bus/fsl-mc/devices/dpni.2"));
    assert_eq!(
        fs::read_to_string(tree.root().join(format!("{BASE}/dprc.1/dprc.2/modalias"))).unwrap(),
        "fsl-mc:v00001957ddprc\n"
    );
    // vfio-fsl-mc is loadable, not loaded; the bus has no new_id.
    assert!(!exists(&tree, "sys/bus/fsl-mc/drivers/vfio-fsl-mc"));
    assert!(!exists(&tree, "sys/bus/fsl-mc/drivers/fsl_mc_dprc/new_id"));
}

#[test]
fn vfio_fsl_mc_takes_a_container_only_through_driver_override() {
    let tree = ten64_dpaa2().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    assert_eq!(
        k.write(&drv("vfio-fsl-mc", "bind"), "dprc.2")
            .unwrap_err()
            .raw_os_error(),
        Some(2),
        "no driver directory before the module is loaded"
    );
    k.load_module("vfio_fsl_mc").unwrap();
    assert_eq!(
        link_name(&tree, "sys/bus/fsl-mc/devices/dprc.2/driver"),
        None
    );
    let loaded = tree.snapshot().unwrap();
    // The board page's one-line bind: fails without the override (no match table).
    assert_eq!(
        k.write(&drv("vfio-fsl-mc", "bind"), "dprc.2")
            .unwrap_err()
            .raw_os_error(),
        Some(19)
    );
    k.write(&obj("dprc.2", "driver_override"), "vfio-fsl-mc")
        .unwrap();
    k.write(&drv("vfio-fsl-mc", "bind"), "dprc.2\n").unwrap();
    assert_eq!(
        link_name(&tree, "sys/bus/fsl-mc/devices/dprc.2/iommu_group").as_deref(),
        Some("4")
    );
    for o in ["dpni.2", "dpio.1", "dpbp.1", "dpmcp.2", "dpcon.1"] {
        assert_eq!(
            link_name(&tree, &format!("sys/bus/fsl-mc/devices/{o}/driver")).as_deref(),
            Some("vfio-fsl-mc"),
            "{o}"
        );
        assert_eq!(
            fs::read_to_string(
                tree.root()
                    .join(format!("sys/bus/fsl-mc/devices/{o}/driver_override"))
            )
            .unwrap(),
            "vfio-fsl-mc\n"
        );
        assert_eq!(
            link_name(&tree, &format!("sys/bus/fsl-mc/devices/{o}/iommu_group")).as_deref(),
            Some("4")
        );
    }
    assert!(exists(&tree, "dev/vfio/4"));
    assert_eq!(
        k.write(&drv("vfio-fsl-mc", "bind"), "dprc.2")
            .unwrap_err()
            .raw_os_error(),
        Some(16)
    );
    // Give it back: unbinding removes the objects again.
    k.write(&drv("vfio-fsl-mc", "unbind"), "dprc.2").unwrap();
    assert!(!exists(&tree, "sys/bus/fsl-mc/devices/dpni.2"));
    assert!(!exists(&tree, "dev/vfio/4"));
    k.write(&obj("dprc.2", "driver_override"), "\n").unwrap();
    let after = tree.snapshot().unwrap();
    // The container keeps the group it got at its first probe, as the kernel does.
    assert_eq!(
        after.diff(&loaded),
        vec![
            format!("{BASE}/dprc.1/dprc.2/iommu_group"),
            "sys/kernel/iommu_groups/4".to_owned(),
            "sys/kernel/iommu_groups/4/devices".to_owned(),
            "sys/kernel/iommu_groups/4/devices/dprc.2".to_owned(),
            "sys/kernel/iommu_groups/4/type".to_owned(),
        ]
    );
}

#[test]
fn loading_vfio_fsl_mc_binds_an_overridden_container() {
    let tree = ten64_dpaa2().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    k.write(&obj("dprc.2", "driver_override"), "vfio-fsl-mc\n")
        .unwrap();
    k.load_module("vfio-fsl-mc").unwrap();
    assert_eq!(
        link_name(&tree, "sys/bus/fsl-mc/devices/dprc.2/driver").as_deref(),
        Some("vfio-fsl-mc")
    );
    assert_eq!(
        link_name(&tree, "sys/bus/fsl-mc/devices/dpni.2/driver").as_deref(),
        Some("vfio-fsl-mc")
    );
}

#[test]
fn objects_of_a_host_container_cannot_go_to_vfio_alone() {
    let tree = ten64_dpaa2().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    k.load_module("vfio_fsl_mc").unwrap();
    k.write(&obj("dpni.1", "driver_override"), "vfio-fsl-mc")
        .unwrap();
    k.write(&drv("fsl_dpaa2_eth", "unbind"), "dpni.1").unwrap();
    assert_eq!(
        k.write(&drv("vfio-fsl-mc", "bind"), "dpni.1")
            .unwrap_err()
            .raw_os_error(),
        Some(22)
    );
    // Unbinding the host's container takes every object with it.
    k.write(&drv("fsl_mc_dprc", "unbind"), "dprc.1").unwrap();
    assert!(!exists(&tree, "sys/bus/fsl-mc/devices/dpni.0"));
    assert!(!exists(&tree, "sys/bus/fsl-mc/devices/dprc.2"));
    k.write(&drv("fsl_mc_dprc", "bind"), "dprc.1").unwrap();
    assert_eq!(
        link_name(&tree, "sys/bus/fsl-mc/devices/dpni.0/driver").as_deref(),
        Some("fsl_dpaa2_eth")
    );
}
