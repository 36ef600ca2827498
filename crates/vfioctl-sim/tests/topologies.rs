//! The emulated `pci_device_group()` against the groups real kernels produced
//! (qemu-guest-tests.md §4), and the trees read back through vfioctl-host's reader.
// Helpers outside #[test] fns are test code too; a panic is the failure report.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::collections::BTreeMap;

use pretty_assertions::assert_eq;
use vfioctl_core::PciAddress;
use vfioctl_host::HostRoot;
use vfioctl_host::read::read_inventory;
use vfioctl_sim::topology::{qemu_arm64, qemu_x86, sriov_host, ten64, x86_desktop};
use vfioctl_sim::{QemuTopo, SimBuilder};

/// Groups as `number -> "BB:DD.F BB:DD.F"`, leaving out the x86 chipset groups (host bridge and
/// 00:1f.x) the report omits.
fn groups(b: &SimBuilder) -> BTreeMap<u32, String> {
    b.groups()
        .into_iter()
        .filter(|(_, m)| {
            !m.iter()
                .any(|a| a.bus == 0 && (a.device == 0 || a.device == 0x1f))
        })
        .map(|(g, m)| {
            let names: Vec<String> = m.iter().map(|a| a.to_string()[5..].to_owned()).collect();
            (g, names.join(" "))
        })
        .collect()
}

fn expect(pairs: &[(u32, &str)]) -> BTreeMap<u32, String> {
    pairs.iter().map(|(g, m)| (*g, (*m).to_owned())).collect()
}

fn a(text: &str) -> PciAddress {
    text.parse().unwrap()
}

#[test]
fn x86_groups_match_the_real_kernel() {
    let cases = [
        (
            QemuTopo::RootPorts,
            expect(&[
                (1, "00:10.0"),
                (2, "00:11.0"),
                (4, "01:00.0"),
                (5, "02:00.0"),
            ]),
        ),
        (
            QemuTopo::RootPortsNoAcs,
            expect(&[(1, "00:10.0 00:10.1 01:00.0 02:00.0")]),
        ),
        (
            QemuTopo::Switch,
            expect(&[
                (1, "00:10.0"),
                (3, "01:00.0"),
                (4, "02:00.0 03:00.0"),
                (5, "02:01.0 04:00.0"),
            ]),
        ),
        (
            QemuTopo::PciBridge,
            expect(&[(1, "00:10.0"), (3, "01:00.0 02:01.0 02:02.0")]),
        ),
        (
            QemuTopo::MultiFunction,
            expect(&[(1, "00:10.0"), (3, "01:00.0 01:00.1")]),
        ),
        (
            QemuTopo::PciBridgeOnRoot,
            expect(&[(1, "00:10.0 01:01.0 01:02.0")]),
        ),
        // The RCiEPs sit in slot 0x10/0x11, not 0x00/0x1f, so the filter keeps them.
        (
            QemuTopo::RcIntegrated,
            expect(&[(1, "00:10.0"), (2, "00:11.0")]),
        ),
        (
            QemuTopo::Sriov,
            expect(&[
                (1, "00:10.0"),
                (3, "01:00.0"),
                (4, "01:10.0"),
                (5, "01:10.2"),
            ]),
        ),
    ];
    for (topo, want) in cases {
        assert_eq!(groups(&qemu_x86(topo)), want, "{topo:?}");
    }
    // The chipset groups the report omits: host bridge alone, 00:1f.x together.
    let all = qemu_x86(QemuTopo::RootPorts).groups();
    assert_eq!(all[&0], vec![a("0000:00:00.0")]);
    assert_eq!(
        all[&3],
        vec![a("0000:00:1f.0"), a("0000:00:1f.2"), a("0000:00:1f.3")]
    );
}

#[test]
fn arm64_device_tree_groups_match_the_real_kernel() {
    let cases = [
        (
            QemuTopo::RootPorts,
            expect(&[(0, "00:10.0 01:00.0"), (1, "00:11.0 02:00.0")]),
        ),
        (
            QemuTopo::RootPortsNoAcs,
            expect(&[(0, "00:10.0 00:10.1 01:00.0 02:00.0")]),
        ),
        (
            QemuTopo::Switch,
            expect(&[(0, "00:10.0 01:00.0 02:00.0 02:01.0 03:00.0 04:00.0")]),
        ),
        (
            QemuTopo::PciBridge,
            expect(&[(0, "00:10.0 01:00.0 02:01.0")]),
        ),
        (
            QemuTopo::MultiFunction,
            expect(&[(0, "00:10.0 01:00.0 01:00.1")]),
        ),
        (
            QemuTopo::Sriov,
            expect(&[(0, "00:10.0 01:00.0 01:10.0 01:10.2")]),
        ),
    ];
    for (topo, want) in cases {
        // No host-bridge filtering needed: the arm64 host bridge has no group.
        let got: BTreeMap<u32, String> = qemu_arm64(topo)
            .groups()
            .into_iter()
            .map(|(g, m)| {
                let names: Vec<String> = m.iter().map(|a| a.to_string()[5..].to_owned()).collect();
                (g, names.join(" "))
            })
            .collect();
        assert_eq!(got, want, "{topo:?}");
    }
}

#[test]
fn arm64_acpi_boot_splits_the_switch_like_x86() {
    // Same kernel through edk2/ACPI: ACS enabled, x86-style groups (report §4).
    let mut b = qemu_arm64(QemuTopo::Switch);
    b.host.acs_enabled_at_boot = true;
    let got: Vec<Vec<PciAddress>> = b.groups().into_values().collect();
    assert_eq!(
        got,
        vec![
            vec![a("0000:00:10.0")],
            vec![a("0000:01:00.0")],
            vec![a("0000:02:00.0"), a("0000:03:00.0")],
            vec![a("0000:02:01.0"), a("0000:04:00.0")],
        ]
    );
}

#[test]
fn ten64_groups_follow_the_domains() {
    let got: Vec<Vec<PciAddress>> = ten64().groups().into_values().collect();
    assert_eq!(
        got,
        vec![
            vec![a("0000:00:00.0")],
            vec![
                a("0001:00:00.0"),
                a("0001:01:00.0"),
                a("0001:02:01.0"),
                a("0001:02:02.0"),
                a("0001:03:00.0"),
                a("0001:04:00.0"),
            ],
            vec![a("0002:00:00.0"), a("0002:01:00.0")],
        ]
    );
}

#[test]
fn x86_desktop_groups() {
    let b = x86_desktop();
    let groups = b.groups();
    let dg = b.device_groups();
    let group_of = |s: &str| dg[&a(s)].unwrap();
    let members = |s: &str| groups[&group_of(s)].clone();
    assert_eq!(
        members("0000:01:00.0"),
        vec![a("0000:00:01.0"), a("0000:01:00.0"), a("0000:01:00.1")]
    );
    assert_eq!(
        members("0000:00:1f.0"),
        vec![a("0000:00:1f.0"), a("0000:00:1f.3"), a("0000:00:1f.4")]
    );
    for alone in [
        "0000:02:00.0",
        "0000:03:00.0",
        "0000:04:00.0",
        "0000:05:00.0",
        "0000:00:1c.0",
        "0000:00:1c.4",
    ] {
        assert_eq!(members(alone), vec![a(alone)], "{alone}");
    }
}

#[test]
fn ten64_reads_back_through_the_host_reader() {
    let tree = ten64().build_temp().unwrap();
    let inv = read_inventory(&HostRoot::open(tree.root()).unwrap()).unwrap();
    assert_eq!(inv.devices().len(), 9);
    assert!(inv.iommu_enabled);
    assert_eq!(inv.groups, ten64().groups());
    let wifi = inv.get(&a("0001:03:00.0")).unwrap();
    assert_eq!(wifi.driver.as_deref(), Some("ath10k_pci"));
    assert_eq!(wifi.parent, Some(a("0001:02:01.0")));
    assert_eq!(wifi.net_interfaces, vec!["wlan0".to_owned()]);
    assert_eq!(wifi.revision, Some(0x32));
    assert_eq!(wifi.class.0, 0x028000);
    assert_eq!(wifi.driver_override, None);
    let tpu = inv.get(&a("0001:04:00.0")).unwrap();
    assert_eq!(tpu.driver, None);
    assert_eq!(tpu.iommu_group, wifi.iommu_group);
    assert_eq!(tpu.config.flr, Some(true));
    let rp = inv.get(&a("0001:00:00.0")).unwrap();
    assert_eq!(rp.driver.as_deref(), Some("pcieport"));
    assert!(rp.is_bridge());
    assert!(rp.has_secondary_bus);
    assert_eq!(rp.parent, None);
    assert_eq!(rp.acs_isolates(), Some(false));
    let ds = inv.get(&a("0001:02:02.0")).unwrap();
    assert_eq!(ds.parent, Some(a("0001:01:00.0")));
    assert_eq!(
        inv.ancestors(&a("0001:04:00.0"))
            .iter()
            .map(|d| d.address)
            .collect::<Vec<_>>(),
        vec![a("0001:02:02.0"), a("0001:01:00.0"), a("0001:00:00.0")]
    );
    let nvme = inv.get(&a("0002:01:00.0")).unwrap();
    assert_eq!(nvme.driver.as_deref(), Some("nvme"));
    // The root filesystem is visible the way vfioctl's safety checks look for it.
    let mounts = std::fs::read_to_string(tree.root().join("proc/mounts")).unwrap();
    assert!(mounts.starts_with("/dev/nvme0n1p2 / "));
    assert!(
        std::fs::canonicalize(tree.root().join("sys/class/block/nvme0n1p2"))
            .unwrap()
            .starts_with(
                tree.root()
                    .join("sys/devices/pci0002:00/0002:00:00.0/0002:01:00.0/nvme/nvme0")
            )
    );
    // vfio-pci is loadable, not loaded.
    assert!(!tree.root().join("sys/bus/pci/drivers/vfio-pci").exists());
    assert!(!tree.root().join("dev/vfio/vfio").exists());
    assert!(tree.root().join(vfioctl_sim::MARKER).is_file());
}

#[test]
fn x86_desktop_reads_back_with_acs_and_drivers() {
    let b = x86_desktop();
    let tree = b.build_temp().unwrap();
    let inv = read_inventory(&HostRoot::open(tree.root()).unwrap()).unwrap();
    assert_eq!(inv.groups, b.groups());
    let gpu = inv.get(&a("0000:01:00.0")).unwrap();
    assert!(gpu.boot_vga);
    assert_eq!(gpu.driver.as_deref(), Some("nvidia"));
    assert_eq!(gpu.config.multifunction, Some(true));
    let pch = inv.get(&a("0000:00:1c.4")).unwrap();
    assert_eq!(pch.acs_isolates(), Some(true));
    let acs = pch.config.acs.unwrap();
    assert_eq!((acs.capability, acs.control), (0x5f, 0x1d));
    assert_eq!(
        inv.get(&a("0000:00:01.0")).unwrap().acs_isolates(),
        Some(false)
    );
    let nic = inv.get(&a("0000:03:00.0")).unwrap();
    assert_eq!(nic.net_interfaces, vec!["enp3s0".to_owned()]);
    assert_eq!(
        nic.reset_method.as_deref(),
        Some(&["flr".to_owned(), "bus".to_owned()][..])
    );
    let route = std::fs::read_to_string(tree.root().join("proc/net/route")).unwrap();
    assert!(
        route
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("enp3s0\t00000000")
    );
    assert!(
        tree.root()
            .join("sys/bus/pci/drivers/vfio-pci/bind")
            .is_file()
    );
    assert!(tree.root().join("dev/vfio/vfio").is_file());
    assert!(tree.root().join("sys/class/iommu/dmar0").exists());
    assert_eq!(
        std::fs::read_to_string(tree.root().join("sys/kernel/iommu_groups/1/type")).unwrap(),
        "DMA-FQ\n"
    );
    assert_eq!(
        std::fs::read_to_string(
            tree.root()
                .join("sys/module/vfio_pci/parameters/disable_idle_d3")
        )
        .unwrap(),
        "N\n"
    );
}

#[test]
fn every_qemu_topology_reads_back() {
    for topo in QemuTopo::ALL {
        for b in [qemu_x86(topo), qemu_arm64(topo)] {
            let tree = b.build_temp().unwrap();
            let inv = read_inventory(&HostRoot::open(tree.root()).unwrap()).unwrap();
            assert_eq!(inv.groups, b.groups(), "{topo:?}");
            assert_eq!(inv.devices().len(), b.devices.len());
            for dev in &b.devices {
                let got = inv.get(&dev.address).unwrap();
                assert_eq!(got.driver, dev.driver, "{}", dev.address);
                assert_eq!(got.id, dev.id);
            }
        }
    }
    // The arm64 stream-ID clash device has no group and keeps e1000.
    let tree = qemu_arm64(QemuTopo::PciBridge).build_temp().unwrap();
    let inv = read_inventory(&HostRoot::open(tree.root()).unwrap()).unwrap();
    let clash = inv.get(&a("0000:02:02.0")).unwrap();
    assert_eq!(clash.iommu_group, None);
    assert_eq!(clash.driver.as_deref(), Some("e1000"));
    assert_eq!(clash.parent, Some(a("0000:01:00.0")));
    assert_eq!(
        inv.get(&a("0000:01:00.0")).unwrap().driver.as_deref(),
        Some("shpchp")
    );
}

#[test]
fn links_are_relative_with_the_right_depth() {
    let tree = qemu_x86(QemuTopo::Switch).build_temp().unwrap();
    let r = tree.root();
    let dev = "sys/devices/pci0000:00/0000:00:10.0/0000:01:00.0/0000:02:01.0/0000:04:00.0";
    assert_eq!(
        std::fs::read_link(r.join(dev).join("iommu_group")).unwrap(),
        std::path::Path::new("../../../../../../kernel/iommu_groups/5")
    );
    assert_eq!(
        std::fs::read_link(r.join("sys/bus/pci/devices/0000:04:00.0")).unwrap(),
        std::path::Path::new("../../../").join(&dev[4..])
    );
    assert_eq!(
        std::fs::read_link(r.join(dev).join("driver")).unwrap(),
        std::path::Path::new("../../../../../../bus/pci/drivers/e1000e")
    );
    let top = "sys/devices/pci0000:00/0000:00:00.0";
    assert_eq!(
        std::fs::read_link(r.join(top).join("iommu_group")).unwrap(),
        std::path::Path::new("../../../kernel/iommu_groups/0")
    );
    // Every link resolves inside the tree.
    for (path, entry) in tree.snapshot().unwrap().0 {
        if let vfioctl_sim::Entry::Link(_) = entry {
            assert!(r.join(&path).exists(), "dangling link {path}");
        }
    }
    assert_eq!(
        std::fs::read_to_string(r.join(dev).join("modalias")).unwrap(),
        "pci:v00008086d000010D3sv00008086sd000010D3bc02sc00i00\n"
    );
    assert_eq!(
        std::fs::read_to_string(r.join(dev).join("driver_override")).unwrap(),
        "(null)\n"
    );
}

#[test]
fn sriov_host_builds_4096_functions_quickly() {
    let start = std::time::Instant::now();
    let b = sriov_host(4096);
    assert!(
        (4000..=4200).contains(&b.devices.len()),
        "{}",
        b.devices.len()
    );
    let tree = b.build_temp().unwrap();
    let elapsed = start.elapsed();
    let inv = read_inventory(&HostRoot::open(tree.root()).unwrap()).unwrap();
    assert_eq!(inv.devices().len(), b.devices.len());
    // Every VF alone in its group behind ACS root ports.
    let pf = inv.get(&a("0000:01:00.0")).unwrap();
    assert_eq!(pf.virtfns.len(), 250);
    assert_eq!(pf.sriov_numvfs, Some(250));
    let spilled = inv.get(&a("0000:02:00.0")).unwrap();
    assert_eq!(spilled.physfn, Some(a("0000:01:00.0")));
    assert_eq!(spilled.parent, Some(a("0000:00:01.0")));
    for vf in &pf.virtfns {
        assert_eq!(inv.group_members(vf), vec![*vf]);
    }
    eprintln!("built {} functions in {elapsed:?}", b.devices.len());
    assert!(elapsed.as_secs() < 30, "too slow: {elapsed:?}");
}

/// Cross-check with vfioctl-core: every shared group the emulation makes is one the core's
/// explanation can name a cause for, and every single-member group is "single".
#[test]
fn core_explains_every_group_the_emulation_makes() {
    use vfioctl_core::groups::{ReasonKind, explain_group};
    let mut hosts: Vec<(String, SimBuilder)> = vec![
        ("ten64".into(), ten64()),
        ("x86_desktop".into(), x86_desktop()),
    ];
    for topo in QemuTopo::ALL {
        hosts.push((format!("x86 {topo:?}"), qemu_x86(topo)));
        hosts.push((format!("arm64 {topo:?}"), qemu_arm64(topo)));
    }
    for (name, b) in hosts {
        let tree = b.build_temp().unwrap();
        let inv = read_inventory(&HostRoot::open(tree.root()).unwrap()).unwrap();
        for (g, members) in &inv.groups {
            let reason = explain_group(&inv, members);
            if members.len() == 1 {
                assert_eq!(reason.kind, ReasonKind::Single, "{name} group {g}");
            } else {
                assert_ne!(
                    reason.kind,
                    ReasonKind::Unexplained,
                    "{name} group {g} {members:?}: {}",
                    reason.text
                );
            }
        }
    }
}
