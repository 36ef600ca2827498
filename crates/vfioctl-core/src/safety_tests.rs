use std::collections::BTreeMap;

use crate::plan::HostUses;

use super::*;
use crate::config::{ConfigInfo, PcieType};
use crate::device::tests::addr;
use crate::ids::ClassCode;

fn func(a: &str, class: u32, driver: Option<&str>, group: u32) -> PciDevice {
    let mut d = PciDevice::new(addr(a), "8086:a348".parse().unwrap(), ClassCode(class));
    d.driver = driver.map(str::to_owned);
    d.iommu_group = Some(group);
    d.config = ConfigInfo {
        header_type: Some(0),
        pcie_type: Some(PcieType::RcEndpoint),
        multifunction: Some(true),
        ..ConfigInfo::default()
    };
    d
}

/// An Intel desktop's chipset: LPC, audio and SMBus share group 13.
fn chipset() -> (Inventory, HostUses) {
    let members = ["0000:00:1f.0", "0000:00:1f.3", "0000:00:1f.4"];
    let inv = Inventory::new(
        vec![
            func("0000:00:00.0", 0x060000, None, 0),
            func(members[0], 0x060100, Some("lpc_ich"), 13),
            func(members[1], 0x040300, Some("snd_hda_intel"), 13),
            func(members[2], 0x0c0500, Some("i801_smbus"), 13),
        ],
        true,
        BTreeMap::from([
            (0, vec![addr("0000:00:00.0")]),
            (13, members.iter().map(|m| addr(m)).collect()),
        ]),
    );
    let platform = |what: &str| {
        vec![HostUse::Platform {
            what: what.to_owned(),
        }]
    };
    let uses = HostUses::from([
        (addr("0000:00:00.0").into(), platform("host bridge")),
        (addr(members[0]).into(), platform("LPC bridge")),
        (addr(members[2]).into(), platform("SMBus")),
    ]);
    (inv, uses)
}

#[test]
fn audio_in_the_chipset_group_is_refused_with_what_to_do() {
    let (inv, uses) = chipset();
    let audio = addr("0000:00:1f.3");
    let out = refusals(&inv, &uses, &[audio], &inv.group_members(&audio));
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(!out[0].overridable);
    insta::assert_snapshot!(format!("{}\nhint: {}", out[0].text, out[0].remedy));
}

#[test]
fn a_host_bridge_is_refused_for_good() {
    let (inv, uses) = chipset();
    let out = refusals(
        &inv,
        &uses,
        &[addr("0000:00:00.0")],
        &[addr("0000:00:00.0")],
    );
    assert_eq!(out[0].kind, RefusalKind::PlatformFunction);
    assert!(!out[0].overridable);
    insta::assert_snapshot!(out[0].text);
}

#[test]
fn the_root_filesystem_is_not_overridable_but_a_data_disk_is() {
    let mut xhci = func("0000:00:14.0", 0x0c0330, Some("xhci_hcd"), 5);
    xhci.config.multifunction = Some(false);
    let inv = Inventory::new(
        vec![xhci],
        true,
        BTreeMap::from([(5, vec![addr("0000:00:14.0")])]),
    );
    let mount = |mp: &str| HostUse::Mount {
        block: "sda2".into(),
        mount_point: mp.into(),
        via: vec!["usb 2-1".into(), "sda".into()],
    };
    let a = addr("0000:00:14.0");
    let root = refusals(
        &inv,
        &HostUses::from([(a.into(), vec![mount("/")])]),
        &[a],
        &[a],
    );
    assert_eq!(root[0].kind, RefusalKind::HostEssential);
    assert!(!root[0].overridable);
    insta::assert_snapshot!(root[0].text);
    let data = refusals(
        &inv,
        &HostUses::from([(a.into(), vec![mount("/srv")])]),
        &[a],
        &[a],
    );
    assert!(data[0].overridable);
    assert!(!data[0].remedy.contains("--force"), "{}", data[0].remedy);
}

#[test]
fn a_pf_with_a_vf_on_vfio_is_refused_naming_the_vf() {
    let mut pf = func("0000:01:00.0", 0x020000, Some("igb"), 1);
    pf.virtfns = vec![addr("0000:01:10.0"), addr("0000:01:10.2")];
    let mut vf0 = func("0000:01:10.0", 0x020000, Some("vfio-pci"), 2);
    vf0.physfn = Some(pf.address);
    let mut vf1 = func("0000:01:10.2", 0x020000, Some("igbvf"), 3);
    vf1.physfn = Some(pf.address);
    let inv = Inventory::new(vec![pf.clone(), vf0, vf1.clone()], true, BTreeMap::new());
    let out = refusals(&inv, &HostUses::new(), &[pf.address], &[pf.address]);
    assert_eq!(out[0].kind, RefusalKind::SriovVfsInUse);
    insta::assert_snapshot!(out[0].text);
    assert!(!out[0].text.contains("0000:01:10.2"));

    let free = Inventory::new(vec![pf.clone(), vf1], true, BTreeMap::new());
    assert!(refusals(&free, &HostUses::new(), &[pf.address], &[pf.address]).is_empty());
    assert!(sriov_warning(&pf).unwrap().contains("removes its 2 VFs"));
}
