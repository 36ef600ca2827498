use std::collections::{BTreeMap, BTreeSet};

use super::check::{DriftKind, check, from_proxmox};
use super::*;
use crate::PciDevice;

fn dev(address: &str, id: &str, group: u32) -> PciDevice {
    let mut d = PciDevice::new(
        address.parse().expect("address"),
        id.parse().expect("id"),
        ClassCode(0x028000),
    );
    d.iommu_group = Some(group);
    d
}

fn inventory(devices: Vec<PciDevice>) -> Inventory {
    let mut groups: BTreeMap<u32, Vec<PciAddress>> = BTreeMap::new();
    for d in &devices {
        if let Some(g) = d.iommu_group {
            groups.entry(g).or_default().push(d.address);
        }
    }
    Inventory::new(devices, true, groups)
}

#[test]
fn the_stable_id_follows_identities_not_group_numbers() {
    let a = inventory(vec![dev("0001:03:00.0", "168c:003e", 5)]);
    let b = inventory(vec![dev("0001:03:00.0", "168c:003e", 9)]);
    let c = inventory(vec![dev("0001:03:00.0", "8086:2723", 5)]);
    let id = |inv: &Inventory| ready_groups(inv, &BTreeSet::new())[0].id.clone();
    assert_eq!(id(&a), id(&b));
    assert_ne!(id(&a), id(&c));
    assert!(id(&a).len() <= 63 && id(&a).starts_with("vfio-"));
}

#[test]
fn refused_groups_are_not_ready() {
    let inv = inventory(vec![
        dev("0001:03:00.0", "168c:003e", 5),
        dev("0002:01:00.0", "c0a9:2263", 6),
    ]);
    let refused: BTreeSet<PciAddress> = ["0002:01:00.0".parse().expect("address")].into();
    let ready = ready_groups(&inv, &refused);
    assert_eq!(ready.iter().map(|g| g.group).collect::<Vec<_>>(), vec![5]);
}

#[test]
fn kubevirt_names_the_variable_as_kubevirt_reads_it() {
    assert_eq!(
        kubevirt::env_var("vfioctl.io/wifi-tpu"),
        "PCI_RESOURCE_VFIOCTL_IO_WIFI-TPU"
    );
}

#[test]
fn nova_refuses_a_domain_above_ffff_with_a_sentence() {
    let inv = inventory(vec![
        dev("10000:e1:00.0", "144d:a808", 3),
        dev("0000:03:00.0", "168c:003e", 4),
    ]);
    let config = nova::config(&ready_groups(&inv, &BTreeSet::new()));
    assert_eq!(config.device_spec.len(), 1);
    assert_eq!(config.refused.len(), 1);
    assert!(
        config.refused[0]
            .reason
            .contains("16-bit domain (at most ffff) and 10000:e1:00.0 is in domain 10000"),
        "{}",
        config.refused[0].reason
    );
}

#[test]
fn a_renumbered_group_is_reported_for_proxmox() {
    let inv = inventory(vec![dev("0001:03:00.0", "168c:003e", 7)]);
    let ready = ready_groups(&inv, &BTreeSet::new());
    let text = "wifi\n\tmap id=168c:003e,iommugroup=5,node=ten64,path=0001:03:00.0\n";
    let drifts = check(&from_proxmox(text, "ten64"), &inv, &ready);
    assert_eq!(
        drifts.iter().map(|d| d.kind).collect::<Vec<_>>(),
        vec![DriftKind::Renumbered]
    );
}

#[test]
fn the_format_is_told_from_the_text() {
    assert_eq!(Format::detect("[pci]\ndevice_spec = {}\n"), Format::Nova);
    assert_eq!(
        Format::detect("spec:\n  configuration:\n    permittedHostDevices: {}\n"),
        Format::Kubevirt
    );
    assert_eq!(
        Format::detect("wifi\n\tmap id=168c:003e,node=a,path=0000:01:00.0\n"),
        Format::ProxmoxMapping
    );
}
