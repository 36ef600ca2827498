use std::collections::BTreeMap;

use super::*;
use crate::device::PciDevice;
use crate::device::tests::addr;
use crate::ids::ClassCode;

fn igb(numvfs: u32, vf_driver: Option<&str>) -> Inventory {
    let mut pf = PciDevice::new(
        addr("0000:01:00.0"),
        "8086:10c9".parse().unwrap(),
        ClassCode(0x020000),
    );
    pf.driver = Some("igb".to_owned());
    pf.sriov_totalvfs = Some(7);
    pf.sriov_numvfs = Some(numvfs);
    pf.sriov_drivers_autoprobe = Some(true);
    pf.net_interfaces = vec!["eth0".to_owned()];
    let mut devices = vec![];
    for i in 0..numvfs {
        let a = addr(&format!("0000:01:10.{}", i * 2));
        pf.virtfns.push(a);
        let mut vf = PciDevice::new(a, "8086:10ca".parse().unwrap(), ClassCode(0x020000));
        vf.physfn = Some(pf.address);
        vf.driver = vf_driver.map(str::to_owned);
        vf.iommu_group = Some(10 + i);
        devices.push(vf);
    }
    devices.insert(0, pf);
    Inventory::new(devices, true, BTreeMap::new())
}

fn writes(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| s.write().map(|w| format!("{} <- {}", w.path, w.value)))
        .collect()
}

#[test]
fn a_new_count_goes_through_zero_with_autoprobe_off_before_the_vfs_appear() {
    let pf = addr("0000:01:00.0");
    let steps = create_steps(&igb(2, Some("igbvf")), &HostUses::new(), pf, 4, false).unwrap();
    assert_eq!(
        writes(&steps),
        [
            "/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs <- 0",
            "/sys/bus/pci/devices/0000:01:00.0/sriov_drivers_autoprobe <- 0",
            "/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs <- 4",
        ]
    );
    // From none, no detour; the same count and autoprobe is nothing to do.
    let from_zero = create_steps(&igb(0, None), &HostUses::new(), pf, 2, true).unwrap();
    assert_eq!(
        writes(&from_zero),
        ["/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs <- 2"]
    );
    assert!(
        create_steps(&igb(2, None), &HostUses::new(), pf, 2, true)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn refusals_name_the_limit_the_driver_and_the_held_vfs() {
    let pf = addr("0000:01:00.0");
    let too_many = create_steps(&igb(0, None), &HostUses::new(), pf, 8, false).unwrap_err();
    assert_eq!(
        too_many.to_string(),
        "0000:01:00.0 offers at most 7 VFs; 8 were asked for"
    );
    let held = create_steps(&igb(2, Some("vfio-pci")), &HostUses::new(), pf, 3, false).unwrap_err();
    insta::assert_snapshot!(held.to_string());
    assert!(matches!(held, SriovError::VfsInUse(_)));
    let mut unbound = igb(0, None).devices().to_vec();
    unbound[0].driver = None;
    let no_driver = Inventory::new(unbound, true, BTreeMap::new());
    assert_eq!(
        create_steps(&no_driver, &HostUses::new(), pf, 1, false),
        Err(SriovError::NoPfDriver(pf))
    );
    assert_eq!(
        create_steps(
            &igb(0, None),
            &HostUses::new(),
            addr("0000:01:10.0"),
            1,
            false
        ),
        Err(SriovError::NotSriov(addr("0000:01:10.0")))
    );
}

#[test]
fn putting_a_config_back_recreates_the_original_count_with_its_autoprobe() {
    let pf: DeviceRef = addr("0000:01:00.0").into();
    let now = SriovConfig {
        numvfs: 2,
        autoprobe: false,
    };
    let original = SriovConfig {
        numvfs: 1,
        autoprobe: true,
    };
    assert_eq!(
        writes(&config_steps(&pf, now, original)),
        [
            "/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs <- 0",
            "/sys/bus/pci/devices/0000:01:00.0/sriov_drivers_autoprobe <- 1",
            "/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs <- 1",
        ]
    );
}

#[test]
fn mac_addresses_parse_strictly_and_print_in_lower_case() {
    let mac: MacAddress = "52:54:00:AB:cd:0F".parse().unwrap();
    assert_eq!(mac.to_string(), "52:54:00:ab:cd:0f");
    for bad in [
        "52:54:00:ab:cd",
        "52:54:00:ab:cd:0f:11",
        "5254.00ab.cd0f",
        "52:54:00:ab:cd:g0",
    ] {
        assert!(bad.parse::<MacAddress>().is_err(), "{bad}");
    }
}

#[test]
fn a_link_change_is_undone_setting_by_setting() {
    let before = VfLink {
        mac: MacAddress::default(),
        vlan: 0,
        qos: 0,
        trust: Some(false),
        spoofchk: Some(true),
    };
    let change = VfLinkChange {
        mac: Some("52:54:00:12:34:56".parse().unwrap()),
        trust: Some(true),
        ..VfLinkChange::default()
    };
    let undo = change.undo(&before);
    assert_eq!(undo.describe(), "mac 00:00:00:00:00:00 trust off");
    assert!(undo.is_applied(&before));
    assert!(!change.is_applied(&before));
}

#[test]
fn the_listing_gives_each_vf_its_index_group_holder_and_link() {
    let inv = igb(2, Some("vfio-pci"));
    let link = VfLink {
        mac: "52:54:00:12:34:56".parse().unwrap(),
        ..VfLink::default()
    };
    let links = BTreeMap::from([(addr("0000:01:00.0"), vec![VfLink::default(), link.clone()])]);
    let holders = BTreeMap::from([(addr("0000:01:10.2"), "vm:web".to_owned())]);
    let out = listing(&inv, None, &links, &holders);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].interface.as_deref(), Some("eth0"));
    assert_eq!(out[0].vfs[1].index, 1);
    assert_eq!(out[0].vfs[1].iommu_group, Some(11));
    assert_eq!(out[0].vfs[1].holder.as_deref(), Some("vm:web"));
    assert_eq!(out[0].vfs[1].link.as_ref(), Some(&link));
    assert!(listing(&inv, Some(addr("0000:01:10.0")), &links, &holders).is_empty());
}
