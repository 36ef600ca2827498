//! The walk on small hand-built inventories, one kernel rule each.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::PciAddress;
use crate::config::{Acs, ConfigInfo, PcieType};
use crate::device::{Inventory, PciDevice};
use crate::ids::ClassCode;

fn a(s: &str) -> PciAddress {
    s.parse().unwrap()
}

struct Dev {
    d: PciDevice,
}

impl Dev {
    fn new(addr: &str, id: &str, pcie: Option<PcieType>, bridge: bool) -> Self {
        let mut d = PciDevice::new(
            a(addr),
            id.parse().unwrap(),
            ClassCode(if bridge { 0x060400 } else { 0x020000 }),
        );
        d.config = ConfigInfo {
            header_type: Some(u8::from(bridge)),
            multifunction: Some(false),
            pcie_type: pcie,
            extended_readable: pcie.is_some(),
            ..ConfigInfo::default()
        };
        // Bound, as at boot: arm64 kernels before 6.15 group only functions with a driver.
        d.driver = Some(if bridge { "pcieport" } else { "e1000e" }.to_owned());
        Self { d }
    }
    fn unbound(mut self) -> Self {
        self.d.driver = None;
        self
    }
    fn parent(mut self, p: &str) -> Self {
        self.d.parent = Some(a(p));
        self
    }
    fn acs(mut self, capability: u16, control: u16) -> Self {
        self.d.config.acs = Some(Acs {
            offset: 0x148,
            capability,
            control,
        });
        self
    }
    fn mf(mut self) -> Self {
        self.d.config.multifunction = Some(true);
        self
    }
    fn secondary(mut self, bus: u8) -> Self {
        self.d.config.secondary_bus = Some(bus);
        self
    }
}

const RP: Option<PcieType> = Some(PcieType::RootPort);
const EP: Option<PcieType> = Some(PcieType::Endpoint);

fn inv(devs: Vec<Dev>) -> Inventory {
    Inventory::new(
        devs.into_iter().map(|d| d.d).collect(),
        false,
        BTreeMap::new(),
    )
}

fn x86(kernel: (u32, u32)) -> Platform {
    Platform {
        kernel: KernelVersion::new(kernel.0, kernel.1),
        arch: CpuArch::X86_64,
        firmware: Firmware::Acpi,
        iommu: IommuKind::Off,
    }
}

fn arm_dt(iommu: IommuKind) -> Platform {
    Platform {
        kernel: KernelVersion::new(6, 12),
        arch: CpuArch::Aarch64,
        firmware: Firmware::DeviceTree,
        iommu,
    }
}

fn sets(p: &Prediction) -> BTreeSet<Vec<String>> {
    p.groups
        .iter()
        .map(|g| g.devices.iter().map(ToString::to_string).collect())
        .collect()
}

fn group(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Two X99 PCH root ports without ACS, each with a NIC.
fn x99() -> Inventory {
    inv(vec![
        Dev::new("0000:00:1c.0", "8086:8d10", RP, true).mf(),
        Dev::new("0000:00:1c.4", "8086:8d18", RP, true).mf(),
        Dev::new("0000:05:00.0", "8086:1539", EP, false).parent("0000:00:1c.0"),
        Dev::new("0000:06:00.0", "1b21:1142", EP, false).parent("0000:00:1c.4"),
    ])
}

#[test]
fn intel_pch_root_ports_isolate_through_the_quirk() {
    let p = predict(&x99(), &x86((5, 8)));
    assert_eq!(p.groups.len(), 4, "{:#?}", sets(&p));
    let facts = &p.group_of(&a("0000:05:00.0")).unwrap().facts;
    assert!(
        facts
            .iter()
            .any(|f| f.kind == FactKind::AcsQuirk && f.text.contains("Wellsburg (X99)")),
        "{facts:#?}"
    );
}

#[test]
fn kernel_5_9_loses_the_pch_workaround() {
    let p = predict(&x99(), &x86((5, 9)));
    assert_eq!(
        sets(&p),
        [group(&[
            "0000:00:1c.0",
            "0000:00:1c.4",
            "0000:05:00.0",
            "0000:06:00.0"
        ])]
        .into()
    );
    let g = &p.groups[0];
    assert!(
        g.facts
            .iter()
            .any(|f| f.kind == FactKind::AcsQuirkNotIsolating)
    );
    assert_eq!(predict(&x99(), &x86((5, 10))).groups.len(), 4);
}

#[test]
fn present_but_empty_acs_isolates_multifunction_rciep() {
    let i = inv(vec![
        Dev::new(
            "0000:00:00.0",
            "1957:e100",
            Some(PcieType::RcEndpoint),
            false,
        )
        .mf()
        .acs(0, 0),
        Dev::new(
            "0000:00:00.1",
            "1957:e100",
            Some(PcieType::RcEndpoint),
            false,
        )
        .mf()
        .acs(0, 0),
    ]);
    let p = predict(&i, &arm_dt(IommuKind::Off));
    assert_eq!(p.groups.len(), 2);
    assert!(
        p.groups[0]
            .facts
            .iter()
            .any(|f| f.kind == FactKind::AcsEmpty)
    );
}

#[test]
fn firmware_control_zero_is_what_the_kernel_enables_on_x86() {
    let i = inv(vec![
        Dev::new("0000:00:10.0", "1b36:000c", RP, true).acs(0x5f, 0),
        Dev::new("0000:01:00.0", "8086:10d3", EP, false).parent("0000:00:10.0"),
    ]);
    assert_eq!(predict(&i, &x86((6, 1))).groups.len(), 2);
    // A device-tree kernel before the fix leaves ACS off on the first domain.
    let dt = predict(&i, &arm_dt(IommuKind::SmmuV3));
    assert_eq!(dt.groups.len(), 1);
    assert!(
        dt.groups[0].reason.text.contains("device tree"),
        "{}",
        dt.groups[0].reason.text
    );
}

#[test]
fn multifunction_endpoint_without_acs_shares() {
    let i = inv(vec![
        Dev::new("0000:00:10.0", "1b36:000c", RP, true).acs(0x5f, 0x1d),
        Dev::new("0000:01:00.0", "8086:10d3", EP, false)
            .parent("0000:00:10.0")
            .mf(),
        Dev::new("0000:01:00.1", "8086:10d3", EP, false)
            .parent("0000:00:10.0")
            .mf(),
    ]);
    let p = predict(&i, &x86((6, 1)));
    let g = p.group_of(&a("0000:01:00.0")).unwrap();
    assert_eq!(g.devices, vec![a("0000:01:00.0"), a("0000:01:00.1")]);
    assert_eq!(
        g.reason.kind,
        crate::groups::ReasonKind::MultifunctionWithoutAcs
    );
}

fn pci_bridge() -> Inventory {
    let mut e1 = Dev::new("0000:02:01.0", "8086:100e", None, false).parent("0000:01:00.0");
    let mut e2 = Dev::new("0000:02:02.0", "8086:100e", None, false).parent("0000:01:00.0");
    e1.d.config.header_type = Some(0);
    e2.d.config.header_type = Some(0);
    inv(vec![
        Dev::new("0000:00:10.0", "1b36:000c", RP, true).acs(0x5f, 0x1d),
        Dev::new(
            "0000:01:00.0",
            "1b36:000e",
            Some(PcieType::PcieToPciBridge),
            true,
        )
        .parent("0000:00:10.0")
        .secondary(2),
        e1,
        e2,
    ])
}

#[test]
fn conventional_devices_behind_a_pcie_to_pci_bridge_alias_to_it() {
    let p = predict(&pci_bridge(), &x86((6, 1)));
    let g = p.group_of(&a("0000:02:02.0")).unwrap();
    assert_eq!(g.devices.len(), 3);
    assert_eq!(g.reason.kind, crate::groups::ReasonKind::PciBridgeAlias);
}

#[test]
fn smmuv3_rejects_the_second_device_behind_an_aliasing_bridge() {
    let p = predict(&pci_bridge(), &arm_dt(IommuKind::SmmuV3));
    assert_eq!(p.ungrouped.len(), 1);
    assert_eq!(p.ungrouped[0].device, a("0000:02:02.0"));
    assert_eq!(p.ungrouped[0].fact.kind, FactKind::StreamIdClash);
    // An SMMU that is not v3 groups them instead.
    assert!(
        predict(&pci_bridge(), &arm_dt(IommuKind::Smmu))
            .ungrouped
            .is_empty()
    );
}

#[test]
fn marvell_function_1_alias_joins_its_ghost_sibling() {
    let i = inv(vec![
        Dev::new("0000:00:10.0", "1b36:000c", RP, true).acs(0x5f, 0x1d),
        Dev::new("0000:00:11.0", "1b36:000c", RP, true).acs(0x5f, 0x1d),
        Dev::new("0000:01:00.0", "1b4b:9230", EP, false)
            .parent("0000:00:10.0")
            .mf(),
        Dev::new("0000:01:00.1", "1b4b:9230", EP, false)
            .parent("0000:00:10.0")
            .mf()
            .acs(0x1d, 0x1d),
        Dev::new("0000:02:00.0", "1b4b:9170", EP, false).parent("0000:00:11.0"),
    ]);
    let p = predict(&i, &x86((6, 1)));
    let g = p.group_of(&a("0000:01:00.0")).unwrap();
    assert_eq!(g.devices, vec![a("0000:01:00.0"), a("0000:01:00.1")]);
    assert_eq!(g.reason.kind, crate::groups::ReasonKind::DmaAlias);
    assert!(g.reason.text.contains("function 1"), "{}", g.reason.text);
    // Single function: the alias points at a function that does not exist.
    assert_eq!(p.group_of(&a("0000:02:00.0")).unwrap().devices.len(), 1);
}

#[test]
fn slots_name_the_bridge_that_breaks_isolation() {
    let i = inv(vec![
        Dev::new("0001:00:00.0", "1957:80c0", RP, true),
        Dev::new("0001:01:00.0", "12d8:b304", Some(PcieType::Upstream), true)
            .parent("0001:00:00.0"),
        Dev::new(
            "0001:02:01.0",
            "12d8:b304",
            Some(PcieType::Downstream),
            true,
        )
        .parent("0001:01:00.0")
        .acs(0x1f, 0),
    ]);
    let platform = x86((6, 1));
    let p = predict(&i, &platform);
    let (ports, _) = predict_slots(&i, &platform, &p, &[]);
    let dsp = ports.iter().find(|s| s.port == a("0001:02:01.0")).unwrap();
    assert!(!dsp.isolates);
    assert_eq!(dsp.breaker, Some(a("0001:00:00.0")));
}

#[test]
fn unreadable_acs_makes_the_prediction_incomplete() {
    let mut rp = Dev::new("0000:00:1c.0", "1234:5678", RP, true);
    rp.d.config.extended_readable = false;
    let p = predict(&inv(vec![rp]), &x86((6, 1)));
    assert!(!p.complete);
}

/// Shaped like the HiSilicon D05's ConnectX-5 (`../shared/real-hosts/hisilicon-d05-arm64-no-acs`):
/// a root port without ACS, two PFs and two VFs. With mlx5 built in, the PFs got groups before
/// their root port did.
#[test]
fn groups_made_before_the_bridge_are_named_as_probe_order() {
    let mut devs = vec![Dev::new("000a:10:00.0", "19e5:1610", RP, true).secondary(0x11)];
    for f in 0..4 {
        devs.push(
            Dev::new(&format!("000a:11:00.{f}"), "15b3:1017", EP, false)
                .parent("000a:10:00.0")
                .mf(),
        );
    }
    let mut i = inv(devs);
    let platform = Platform {
        kernel: KernelVersion::new(5, 3),
        arch: CpuArch::Aarch64,
        firmware: Firmware::Acpi,
        iommu: IommuKind::SmmuV3,
    };
    let p = predict(&i, &platform);
    assert_eq!(
        p.groups.len(),
        1,
        "the walk puts the port and all four together"
    );
    let kernel = [
        ("000a:10:00.0", 8),
        ("000a:11:00.0", 2),
        ("000a:11:00.1", 3),
        ("000a:11:00.2", 8),
        ("000a:11:00.3", 8),
    ];
    let mut devices: Vec<PciDevice> = i.devices().to_vec();
    for d in &mut devices {
        d.iommu_group = kernel
            .iter()
            .find(|(a, _)| d.address.to_string() == *a)
            .map(|(_, g)| *g);
    }
    let mut groups: BTreeMap<u32, Vec<PciAddress>> = BTreeMap::new();
    for d in &devices {
        groups
            .entry(d.iommu_group.unwrap())
            .or_default()
            .push(d.address);
    }
    i = Inventory::new(devices, true, groups);
    let diffs = compare(&i, &p);
    assert!(!diffs.is_empty());
    assert!(
        diffs.iter().all(|d| d.text.starts_with("probe order")),
        "{diffs:#?}"
    );
}

#[test]
fn lone_groups_name_what_sysfs_cannot_show() {
    use crate::groups::explain_group;
    let i = x99();
    let text = explain_group(&i, &[a("0000:00:1c.4")]).text;
    assert!(text.contains("Intel PCH ACS quirk"), "{text}");
    let nic = explain_group(&i, &[a("0000:05:00.0")]).text;
    assert!(nic.contains("Wellsburg"), "{nic}");
    let empty = inv(vec![
        Dev::new(
            "0000:00:00.2",
            "1957:e100",
            Some(PcieType::RcEndpoint),
            false,
        )
        .mf()
        .acs(0, 0),
    ]);
    let text = explain_group(&empty, &[a("0000:00:00.2")]).text;
    assert!(text.contains("ACS capability with no controls"), "{text}");
}

/// Two root ports as functions .0 and .1 of one slot without ACS, as QEMU builds them with
/// `multifunction=on` on .0 only: `pci_scan_slot()` marks .1 multifunction anyway, so
/// `get_pci_function_alias_group()` puts the ports and everything below them in one group.
#[test]
fn functions_past_0_are_multifunction_whatever_their_header_says() {
    let i = inv(vec![
        Dev::new("0000:00:10.0", "1b36:000c", RP, true).mf(),
        Dev::new("0000:00:10.1", "1b36:000c", RP, true),
        Dev::new("0000:01:00.0", "8086:10d3", EP, false).parent("0000:00:10.0"),
        Dev::new("0000:02:00.0", "8086:10d3", EP, false).parent("0000:00:10.1"),
    ]);
    let p = predict(&i, &x86((6, 12)));
    assert_eq!(
        sets(&p),
        [group(&[
            "0000:00:10.0",
            "0000:00:10.1",
            "0000:01:00.0",
            "0000:02:00.0"
        ])]
        .into()
    );
    let g = &p.groups[0];
    assert!(
        g.facts
            .iter()
            .any(|f| f.kind == FactKind::MultifunctionWithoutAcs),
        "{:#?}",
        g.facts
    );
    // The endpoint case: QEMU's multifunction e1000e sets the bit on function 0 only.
    let ep = inv(vec![
        Dev::new("0000:00:10.0", "1b36:000c", RP, true).acs(0x5f, 0x1d),
        Dev::new("0000:01:00.0", "8086:10d3", EP, false)
            .parent("0000:00:10.0")
            .mf(),
        Dev::new("0000:01:00.1", "8086:10d3", EP, false).parent("0000:00:10.0"),
    ]);
    let p = predict(&ep, &x86((6, 1)));
    assert_eq!(
        p.group_of(&a("0000:01:00.1")).unwrap().devices,
        vec![a("0000:01:00.0"), a("0000:01:00.1")]
    );
    // A single-function device at function 0 with the bit clear stays single-function.
    assert!(!ep.get(&a("0000:00:10.0")).unwrap().is_multifunction());
    // SR-IOV virtual functions are never multifunction: each VF of an igb is alone.
    let mut vf0 = Dev::new("0000:01:10.0", "8086:10ca", EP, false).parent("0000:00:10.0");
    let mut vf2 = Dev::new("0000:01:10.2", "8086:10ca", EP, false).parent("0000:00:10.0");
    vf0.d.physfn = Some(a("0000:01:00.0"));
    vf2.d.physfn = Some(a("0000:01:00.0"));
    let sriov = inv(vec![
        Dev::new("0000:00:10.0", "1b36:000c", RP, true).acs(0x5f, 0x1d),
        Dev::new("0000:01:00.0", "8086:10c9", EP, false).parent("0000:00:10.0"),
        vf0,
        vf2,
    ]);
    assert_eq!(predict(&sriov, &x86((6, 12))).groups.len(), 4);
}

/// The arm64 `virt` host bridge (`1b36:0008`) has no driver: kernels before 6.15 configure the
/// SMMU for a PCI function only when a driver binds, so sysfs shows it without a group; 6.15 and
/// later (and x86, whose IOMMUs probe every function when it is added) give it one at boot.
#[test]
fn arm64_before_6_15_groups_only_functions_with_a_driver() {
    let devs = || {
        inv(vec![
            Dev::new("0000:00:00.0", "1b36:0008", EP, false).unbound(),
            Dev::new("0000:00:10.0", "1b36:000c", RP, true).acs(0x5f, 0x1d),
            Dev::new("0000:01:00.0", "8086:10d3", EP, false).parent("0000:00:10.0"),
        ])
    };
    let acpi = |kernel: (u32, u32)| Platform {
        kernel: KernelVersion::new(kernel.0, kernel.1),
        arch: CpuArch::Aarch64,
        firmware: Firmware::Acpi,
        iommu: IommuKind::SmmuV3,
    };
    let awaiting = |p: &Prediction| -> Vec<PciAddress> {
        p.groups
            .iter()
            .flat_map(|g| g.awaiting_driver.iter().copied())
            .collect()
    };
    for kernel in [(6, 1), (6, 12), (6, 14)] {
        let p = predict(&devs(), &acpi(kernel));
        assert_eq!(awaiting(&p), vec![a("0000:00:00.0")], "{kernel:?}");
        let g = p.group_of(&a("0000:00:00.0")).unwrap();
        assert!(
            g.facts
                .iter()
                .any(|f| f.kind == FactKind::NoDriverNoGroup && f.text.contains("6.15")),
            "{:#?}",
            g.facts
        );
        assert_eq!(p.groups.len(), 3, "{kernel:?}");
    }
    for p in [
        predict(&devs(), &acpi((6, 15))),
        predict(&devs(), &x86((6, 1))),
    ] {
        assert!(awaiting(&p).is_empty());
        assert_eq!(p.groups.len(), 3);
    }
    // Placed after every bound function, an unbound one joins what they formed: the Ten64's
    // Coral (no driver) joins the group of the switch above it once vfio-pci binds.
    let i = inv(vec![
        Dev::new("0000:00:10.0", "1b36:000c", RP, true),
        Dev::new("0000:01:00.0", "8086:10d3", EP, false)
            .parent("0000:00:10.0")
            .mf()
            .unbound(),
        Dev::new("0000:01:00.1", "8086:10d3", EP, false).parent("0000:00:10.0"),
    ]);
    let p = predict(&i, &acpi((6, 12)));
    assert_eq!(
        sets(&p),
        [group(&["0000:00:10.0", "0000:01:00.0", "0000:01:00.1"])].into()
    );
    assert_eq!(awaiting(&p), vec![a("0000:01:00.0")]);
}
