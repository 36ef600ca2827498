use std::collections::BTreeMap;

use super::*;
use crate::config::{ConfigInfo, PcieType};
use crate::device::PciDevice;
use crate::device::tests::addr;
use crate::fslmc::FslMcObject;
use crate::ids::ClassCode;

fn endpoint(a: &str, driver: Option<&str>, group: u32) -> PciDevice {
    let mut d = PciDevice::new(addr(a), "168c:003e".parse().unwrap(), ClassCode(0x028000));
    d.driver = driver.map(str::to_owned);
    d.iommu_group = Some(group);
    d.config = ConfigInfo {
        header_type: Some(0),
        pcie_type: Some(PcieType::Endpoint),
        ..ConfigInfo::default()
    };
    d
}

fn port(a: &str, group: u32) -> PciDevice {
    let mut d = PciDevice::new(addr(a), "12d8:b304".parse().unwrap(), ClassCode(0x060400));
    d.driver = Some("pcieport".into());
    d.iommu_group = Some(group);
    d.config.header_type = Some(1);
    d
}

fn ten64_like() -> Inventory {
    let groups = BTreeMap::from([(
        1,
        vec![
            addr("0001:00:00.0"),
            addr("0001:03:00.0"),
            addr("0001:04:00.0"),
        ],
    )]);
    Inventory::new(
        vec![
            port("0001:00:00.0", 1),
            endpoint("0001:03:00.0", Some("ath10k_pci"), 1),
            endpoint("0001:04:00.0", None, 1),
        ],
        true,
        groups,
    )
}

fn object(name: &str, container: Option<u32>, driver: Option<&str>, group: u32) -> FslMcObject {
    FslMcObject {
        name: name.into(),
        obj_type: name.split('.').next().unwrap().into(),
        driver: driver.map(str::to_owned),
        driver_override: None,
        iommu_group: Some(group),
        container: container.map(crate::fslmc::DprcName::new),
        net_interfaces: Vec::new(),
    }
}

fn dpaa2() -> FslMcInventory {
    FslMcInventory::new(vec![
        object("dprc.1", None, Some("fsl_mc_dprc"), 3),
        object("dprc.2", Some(1), Some("fsl_mc_dprc"), 4),
        object("dpni.1", Some(2), None, 4),
    ])
}

fn refs(names: &[&str]) -> Vec<DeviceRef> {
    names.iter().map(|n| n.parse().unwrap()).collect()
}

fn plan(named: &[&str], uses: &HostUses, loaded: &[Bus], options: &BindOptions) -> Plan {
    let pci = ten64_like();
    let fslmc = dpaa2();
    let named = refs(named);
    plan_bind(
        &BindInput {
            pci: &pci,
            fslmc: &fslmc,
            named: &named,
            host_uses: uses,
            loaded,
        },
        options,
    )
}

fn loaded_all() -> Vec<Bus> {
    vec![Bus::Pci, Bus::FslMc]
}

#[test]
fn naming_one_function_plans_the_whole_group() {
    let p = plan(
        &["0001:03:00.0"],
        &HostUses::new(),
        &loaded_all(),
        &BindOptions::default(),
    );
    let bound: Vec<_> = p.to_bind().map(|d| d.device.to_string()).collect();
    assert_eq!(bound, ["0001:03:00.0", "0001:04:00.0"]);
    assert!(p.refusals.is_empty());
    assert_eq!(p.devices[0].disposition, Disposition::StaysOnPortDriver);
}

#[test]
fn writes_are_override_unbind_probe_never_new_id() {
    let p = plan(
        &["0001:03:00.0"],
        &HostUses::new(),
        &[],
        &BindOptions::default(),
    );
    let writes: Vec<(String, String)> = p.writes().into_iter().map(|w| (w.path, w.value)).collect();
    assert_eq!(
        writes,
        [
            (
                "/sys/bus/pci/devices/0001:03:00.0/driver_override".into(),
                "vfio-pci".into()
            ),
            (
                "/sys/bus/pci/drivers/ath10k_pci/unbind".into(),
                "0001:03:00.0".into()
            ),
            ("/sys/bus/pci/drivers_probe".into(), "0001:03:00.0".into()),
            (
                "/sys/bus/pci/devices/0001:04:00.0/driver_override".into(),
                "vfio-pci".into()
            ),
            ("/sys/bus/pci/drivers_probe".into(), "0001:04:00.0".into()),
        ]
    );
    assert!(matches!(p.steps[0], Step::LoadModule { .. }));
    assert!(!p.writes().iter().any(|w| w.path.ends_with("new_id")));
}

#[test]
fn host_use_of_a_group_member_refuses_overridably() {
    let uses = HostUses::from([(
        "0001:04:00.0".parse().unwrap(),
        vec![HostUse::Mount {
            block: "nvme0n1p2".into(),
            mount_point: "/".into(),
        }],
    )]);
    let p = plan(
        &["0001:03:00.0"],
        &uses,
        &loaded_all(),
        &BindOptions::default(),
    );
    assert_eq!(p.refusals.len(), 1);
    assert!(p.refusals[0].text.contains("mounted on /"));
    assert!(p.blocking_refusals(true).is_empty());
}

#[test]
fn only_leaves_the_rest_and_warns() {
    let options = BindOptions {
        only: true,
        force: false,
    };
    let p = plan(&["0001:03:00.0"], &HostUses::new(), &loaded_all(), &options);
    assert_eq!(p.to_bind().count(), 1);
    assert!(p.warnings.iter().any(|w| w.contains("stays unusable")));
}

#[test]
fn naming_a_bridge_is_refused_for_good() {
    let p = plan(
        &["0001:00:00.0"],
        &HostUses::new(),
        &loaded_all(),
        &BindOptions::default(),
    );
    assert_eq!(p.refusals[0].kind, RefusalKind::NotEndpoint);
    assert_eq!(p.blocking_refusals(true).len(), 1);
}

#[test]
fn a_pci_group_and_a_container_make_one_plan() {
    let p = plan(
        &["0001:03:00.0", "dprc.2"],
        &HostUses::new(),
        &[],
        &BindOptions::default(),
    );
    let bound: Vec<_> = p.to_bind().map(|d| d.device.to_string()).collect();
    assert_eq!(bound, ["0001:03:00.0", "0001:04:00.0", "dprc.2"]);
    let modules: Vec<_> = p.modules().collect();
    assert_eq!(modules, ["vfio-pci", "vfio_fsl_mc"]);
    assert_eq!(p.groups, [GroupId(1), GroupId(4)]);
    let last_writes: Vec<String> = p
        .writes()
        .into_iter()
        .rev()
        .take(3)
        .map(|w| format!("{} <- {}", w.path, w.value))
        .collect();
    assert_eq!(
        last_writes,
        [
            "/sys/bus/fsl-mc/drivers/vfio-fsl-mc/bind <- dprc.2",
            "/sys/bus/fsl-mc/drivers/fsl_mc_dprc/unbind <- dprc.2",
            "/sys/bus/fsl-mc/devices/dprc.2/driver_override <- vfio-fsl-mc",
        ]
    );
    assert!(
        p.devices
            .iter()
            .any(|d| d.device.to_string() == "dpni.1" && d.disposition == Disposition::InContainer)
    );
}

#[test]
fn the_root_container_refuses_the_whole_plan() {
    let p = plan(
        &["0001:03:00.0", "dprc.1"],
        &HostUses::new(),
        &loaded_all(),
        &BindOptions::default(),
    );
    let blocking = p.blocking_refusals(true);
    assert_eq!(blocking.len(), 1);
    assert_eq!(blocking[0].device.to_string(), "dprc.1");
}

#[test]
fn already_bound_group_plans_no_writes() {
    let inv = ten64_like();
    let inv = Inventory::new(
        inv.devices()
            .iter()
            .cloned()
            .map(|mut d| {
                if !d.is_bridge() {
                    d.driver = Some("vfio-pci".into());
                    d.driver_override = Some("vfio-pci".into());
                }
                d
            })
            .collect(),
        true,
        inv.groups.clone(),
    );
    let fslmc = FslMcInventory::default();
    let named = refs(&["0001:03:00.0"]);
    let p = plan_bind(
        &BindInput {
            pci: &inv,
            fslmc: &fslmc,
            named: &named,
            host_uses: &HostUses::new(),
            loaded: &[Bus::Pci],
        },
        &BindOptions::default(),
    );
    assert!(p.writes().is_empty());
    assert_eq!(p.to_bind().count(), 0);
}
