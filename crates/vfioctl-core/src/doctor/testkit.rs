//! Hand-built facts and devices the checks' tests start from, and the helpers that run them.

use std::collections::BTreeMap;

use crate::address::PciAddress;
use crate::config::{ConfigInfo, PcieType};
use crate::device::tests::addr;
use crate::device::{Inventory, PciDevice};
use crate::ids::ClassCode;
use crate::known::KnownDevices;

use super::{Arch, DoctorFacts, Finding, ModuleStatus, VFIO_MODULES, run};

pub(super) const TABLE: &str = include_str!("../../../../data/known-devices.toml");

pub(super) fn endpoint(a: &str, id: &str, group: Option<u32>, driver: Option<&str>) -> PciDevice {
    let mut d = PciDevice::new(addr(a), id.parse().unwrap(), ClassCode(0x020000));
    d.config = ConfigInfo {
        header_type: Some(0),
        multifunction: Some(false),
        pcie_type: Some(PcieType::Endpoint),
        extended_readable: true,
        ..ConfigInfo::default()
    };
    d.iommu_group = group;
    d.driver = driver.map(str::to_owned);
    d.power_state = Some("D0".into());
    d.d3cold_allowed = Some(true);
    d.reset_method = Some(vec!["flr".into(), "bus".into()]);
    d
}

pub(super) fn bridge(a: &str, group: Option<u32>, driver: &str) -> PciDevice {
    let mut d = PciDevice::new(addr(a), "8086:a110".parse().unwrap(), ClassCode(0x060400));
    d.config = ConfigInfo {
        header_type: Some(1),
        multifunction: Some(false),
        pcie_type: Some(PcieType::RootPort),
        extended_readable: true,
        ..ConfigInfo::default()
    };
    d.iommu_group = group;
    d.driver = Some(driver.into());
    d.has_secondary_bus = true;
    d
}

/// A healthy x86 host: a root port (group 0) and a NIC on vfio-pci (group 1).
pub(super) fn healthy() -> (DoctorFacts, Vec<PciDevice>) {
    let mut nic = endpoint("0000:01:00.0", "8086:10d3", Some(1), Some("vfio-pci"));
    nic.parent = Some(addr("0000:00:01.0"));
    let devices = vec![bridge("0000:00:01.0", Some(0), "pcieport"), nic];
    let facts = DoctorFacts {
        arch: Arch::X86_64,
        cmdline: Some("BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on".into()),
        iommu_units: vec!["dmar0".into()],
        group_types: [(0, "DMA-FQ".to_owned()), (1, "DMA".to_owned())].into(),
        dmar_ecap: [("dmar0".to_owned(), Some(0xf050da))].into(),
        its_in_interrupts: None,
        its_in_device_tree: None,
        allow_unsafe_interrupts: Some(false),
        noiommu_mode: Some(false),
        kernel_release: Some("6.8.0".into()),
        modules: VFIO_MODULES
            .iter()
            .map(|m| ((*m).to_owned(), ModuleStatus::Loaded))
            .collect(),
        modprobe: Vec::new(),
        vfio_container_mode: Some(0o20666),
        vfio_group_nodes: [1].into(),
        vfio_cdev: false,
        disable_idle_d3: Some(false),
        driverctl: Vec::new(),
        journaled: [addr("0000:01:00.0")].into(),
        journal_problem: None,
        journal_unreadable: None,
        journal: Default::default(),
        host_uses: BTreeMap::new(),
        known: KnownDevices::parse(TABLE, "<built-in>").unwrap(),
        known_problems: Vec::new(),
        fsl_mc: None,
        boot: Default::default(),
        iommufd: Default::default(),
    };
    (facts, devices)
}

pub(super) fn inventory(devices: Vec<PciDevice>) -> Inventory {
    let mut groups: BTreeMap<u32, Vec<PciAddress>> = BTreeMap::new();
    for d in &devices {
        if let Some(g) = d.iommu_group {
            groups.entry(g).or_default().push(d.address);
        }
    }
    let on = !groups.is_empty();
    Inventory::new(devices, on, groups)
}

pub(super) fn ids(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(|f| f.id).collect()
}

pub(super) fn run_with(
    change: impl FnOnce(&mut DoctorFacts, &mut Vec<PciDevice>),
) -> (Vec<Finding>, Inventory) {
    let (mut facts, mut devices) = healthy();
    change(&mut facts, &mut devices);
    let inv = inventory(devices);
    (run(&facts, &inv, &[]), inv)
}

pub(super) fn fires(
    id: &str,
    change: impl FnOnce(&mut DoctorFacts, &mut Vec<PciDevice>),
) -> Finding {
    let (findings, _) = run_with(change);
    findings
        .iter()
        .find(|f| f.id == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} did not fire: {:?}", ids(&findings)))
}

pub(super) fn quiet(id: &str, change: impl FnOnce(&mut DoctorFacts, &mut Vec<PciDevice>)) {
    let (findings, _) = run_with(change);
    assert!(
        !ids(&findings).contains(&id),
        "{id} fired: {:#?}",
        findings.iter().find(|f| f.id == id)
    );
}

pub(super) fn arm(f: &mut DoctorFacts) {
    f.arch = Arch::Aarch64;
    f.iommu_units = vec!["smmu.0x0000000005000000".into()];
    f.dmar_ecap.clear();
    f.disable_idle_d3 = Some(true);
}

pub(super) fn shared_group(f: &mut DoctorFacts, d: &mut Vec<PciDevice>) {
    let mut tpu = endpoint("0000:01:00.1", "1ac1:089a", Some(1), None);
    tpu.parent = Some(addr("0000:00:01.0"));
    d.push(tpu);
    f.journaled.clear();
}
