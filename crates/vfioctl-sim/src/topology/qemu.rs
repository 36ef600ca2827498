//! The QEMU guests of the real-kernel tests, one per device topology.

use crate::spec::{
    Arch, DeviceSpec, DriverSpec, GroupRule, HostSpec, IdMatch, ModuleState, PciKind, ProbeFilter,
    SriovSpec,
};
use crate::tree::{SimBuilder, addr};

use super::common::{CLASS_BRIDGE, CLASS_ETH, CLASS_HOST, common_drivers, id, modular};

/// The QEMU device topologies of the guest tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QemuTopo {
    /// (a) Two `pcie-root-port`s (00:10.0, 00:11.0), one e1000e behind each.
    RootPorts,
    /// (a') Two root ports as functions .0/.1 of slot 0x10 with `disable-acs=on`.
    RootPortsNoAcs,
    /// (b) Root port, `x3130-upstream`, two `xio3130-downstream`, one e1000e behind each.
    Switch,
    /// (c) Root port, `pcie-pci-bridge`, two conventional e1000 at 02:01.0 and 02:02.0.
    PciBridge,
    /// (d) Root port with a two-function e1000e (01:00.0, 01:00.1).
    MultiFunction,
    /// (c') Conventional `pci-bridge` on the root bus (00:10.0), two e1000 at 01:01.0 and 01:02.0.
    PciBridgeOnRoot,
    /// (e) Two e1000e directly on `pcie.0` (00:10.0, 00:11.0): root-complex integrated endpoints.
    RcIntegrated,
    /// (f) Root port with an `igb` PF (QEMU >= 8.0) and two VFs at 01:10.0 and 01:10.2 (igbvf).
    Sriov,
}

impl QemuTopo {
    /// Every topology.
    pub const ALL: [QemuTopo; 8] = [
        Self::RootPorts,
        Self::RootPortsNoAcs,
        Self::Switch,
        Self::PciBridge,
        Self::MultiFunction,
        Self::PciBridgeOnRoot,
        Self::RcIntegrated,
        Self::Sriov,
    ];
}

fn qemu_host(arch: Arch) -> SimBuilder {
    let x86 = arch == Arch::X86_64;
    let mut b = SimBuilder::new(HostSpec {
        arch,
        release: if x86 {
            "6.1.0-56-amd64"
        } else {
            "6.1.0-56-arm64"
        }
        .to_owned(),
        cmdline: if x86 {
            "console=ttyS0 intel_iommu=on iommu=nopt panic=-1 quiet loglevel=4"
        } else {
            "console=ttyAMA0 panic=-1 quiet loglevel=4"
        }
        .to_owned(),
        iommu: Some(
            if x86 {
                "dmar0"
            } else {
                "smmu3.0x0000000009050000"
            }
            .to_owned(),
        ),
        group_type: "DMA-FQ".to_owned(),
        // arm64 device-tree boot: pci_request_acs() comes after enumeration.
        acs_enabled_at_boot: x86,
        override_unset_null: true,
        extra_mounts: Vec::new(),
        modprobe_d: Vec::new(),
    });
    common_drivers(&mut b, ModuleState::Loaded);
    modular(
        &mut b,
        "e1000e",
        "e1000e",
        vec![IdMatch::id(0x8086, 0x10d3)],
        ModuleState::Loaded,
    );
    modular(
        &mut b,
        "e1000",
        "e1000",
        vec![IdMatch::id(0x8086, 0x100e)],
        ModuleState::Loaded,
    );
    if x86 {
        b.add(DeviceSpec::new(
            addr("0000:00:00.0"),
            id("8086:29c0"),
            CLASS_HOST,
            PciKind::PciFunction,
        ));
        modular(
            &mut b,
            "lpc_ich",
            "lpc_ich",
            vec![IdMatch::id(0x8086, 0x2918)],
            ModuleState::Loaded,
        );
        modular(
            &mut b,
            "ahci",
            "ahci",
            vec![IdMatch::class(0x010601, 0xffffff)],
            ModuleState::Loaded,
        );
        modular(
            &mut b,
            "i801_smbus",
            "i2c_i801",
            vec![IdMatch::id(0x8086, 0x2930)],
            ModuleState::Loaded,
        );
        for (a, dev_id, class, drv) in [
            ("0000:00:1f.0", "8086:2918", 0x060100, "lpc_ich"),
            ("0000:00:1f.2", "8086:2922", 0x010601, "ahci"),
            ("0000:00:1f.3", "8086:2930", 0x0c0500, "i801_smbus"),
        ] {
            b.add(
                DeviceSpec::new(addr(a), id(dev_id), class, PciKind::PciFunction)
                    .multifunction()
                    .driver(drv),
            );
        }
    } else {
        // gpex host bridge: no driver probes it, so on 6.1 the SMMU never gives it a group.
        b.add(
            DeviceSpec::new(
                addr("0000:00:00.0"),
                id("1b36:0008"),
                CLASS_HOST,
                PciKind::PciFunction,
            )
            .group(GroupRule::None),
        );
        // On arm64 shpchp takes the pcie-pci-bridge (on x86 it stays driverless).
        b.add_driver(
            DriverSpec::new(
                "shpchp",
                "shpchp",
                vec![IdMatch::class(CLASS_BRIDGE, 0xffffff)],
            )
            .probe(ProbeFilter::PciBridges),
            ModuleState::Builtin,
        );
    }
    b
}

fn root_port(a: &str, bus: u8) -> DeviceSpec {
    DeviceSpec::bridge(addr(a), id("1b36:000c"), PciKind::RootPort, bus)
        .acs(0x005f)
        .driver("pcieport")
}

fn e1000e(a: &str, ifname: &str) -> DeviceSpec {
    DeviceSpec::new(addr(a), id("8086:10d3"), CLASS_ETH, PciKind::Endpoint)
        .flr()
        .driver("e1000e")
        .net(ifname, false, false)
}

fn build_qemu(arch: Arch, topo: QemuTopo) -> SimBuilder {
    let mut b = qemu_host(arch);
    match topo {
        QemuTopo::RootPorts => {
            b.add(root_port("0000:00:10.0", 1));
            b.add(root_port("0000:00:11.0", 2));
            b.add(e1000e("0000:01:00.0", "eth0"));
            b.add(e1000e("0000:02:00.0", "eth1"));
        }
        QemuTopo::RootPortsNoAcs => {
            for (a, bus) in [("0000:00:10.0", 1), ("0000:00:10.1", 2)] {
                let mut rp = root_port(a, bus).multifunction();
                rp.acs = None;
                b.add(rp);
            }
            b.add(e1000e("0000:01:00.0", "eth0"));
            b.add(e1000e("0000:02:00.0", "eth1"));
        }
        QemuTopo::Switch => {
            b.add(root_port("0000:00:10.0", 1));
            b.add(
                DeviceSpec::bridge(addr("0000:01:00.0"), id("104c:8232"), PciKind::Upstream, 2)
                    .driver("pcieport"),
            );
            for (a, bus) in [("0000:02:00.0", 3), ("0000:02:01.0", 4)] {
                b.add(
                    DeviceSpec::bridge(addr(a), id("104c:8233"), PciKind::Downstream, bus)
                        .driver("pcieport"),
                );
            }
            b.add(e1000e("0000:03:00.0", "eth0"));
            b.add(e1000e("0000:04:00.0", "eth1"));
        }
        QemuTopo::PciBridge => {
            b.add(root_port("0000:00:10.0", 1));
            let mut bridge = DeviceSpec::bridge(
                addr("0000:01:00.0"),
                id("1b36:000e"),
                PciKind::PcieToPciBridge,
                2,
            );
            if arch == Arch::Aarch64 {
                bridge.driver = Some("shpchp".to_owned());
            }
            b.add(bridge);
            for (a, ifname) in [("0000:02:01.0", "eth0"), ("0000:02:02.0", "eth1")] {
                b.add(
                    DeviceSpec::new(addr(a), id("8086:100e"), CLASS_ETH, PciKind::PciFunction)
                        .driver("e1000")
                        .net(ifname, false, false),
                );
            }
            if arch == Arch::Aarch64 {
                // SMMUv3 stream-ID clash: "stream 512 already in tree from dev 0000:02:01.0".
                if let Some(d) = b.device_mut("0000:02:02.0") {
                    d.group = GroupRule::None;
                }
            }
        }
        QemuTopo::MultiFunction => {
            b.add(root_port("0000:00:10.0", 1));
            b.add(e1000e("0000:01:00.0", "eth0").multifunction());
            b.add(e1000e("0000:01:00.1", "eth1").multifunction());
        }
        QemuTopo::PciBridgeOnRoot => {
            b.add(DeviceSpec::bridge(
                addr("0000:00:10.0"),
                id("1b36:0001"),
                PciKind::PciBridge,
                1,
            ));
            for (a, ifname) in [("0000:01:01.0", "eth0"), ("0000:01:02.0", "eth1")] {
                b.add(
                    DeviceSpec::new(addr(a), id("8086:100e"), CLASS_ETH, PciKind::PciFunction)
                        .driver("e1000")
                        .net(ifname, false, false),
                );
            }
        }
        QemuTopo::RcIntegrated => {
            for (a, ifname) in [("0000:00:10.0", "eth0"), ("0000:00:11.0", "eth1")] {
                let mut nic = e1000e(a, ifname);
                nic.kind = PciKind::RcEndpoint;
                b.add(nic);
            }
        }
        QemuTopo::Sriov => {
            modular(
                &mut b,
                "igb",
                "igb",
                vec![IdMatch::id(0x8086, 0x10c9)],
                ModuleState::Loaded,
            );
            modular(
                &mut b,
                "igbvf",
                "igbvf",
                vec![IdMatch::id(0x8086, 0x10ca)],
                ModuleState::Loaded,
            );
            if let Some(igb) = b.driver_mut("igb") {
                igb.sriov_configure = true;
            }
            b.add(root_port("0000:00:10.0", 1));
            let pf_addr = addr("0000:01:00.0");
            let mut pf = DeviceSpec::new(pf_addr, id("8086:10c9"), CLASS_ETH, PciKind::Endpoint)
                .flr()
                .driver("igb")
                .net("eth0", false, false);
            pf.sriov = Some(SriovSpec {
                total_vfs: 7,
                num_vfs: 2,
                offset: 0x80,
                stride: 2,
                vf_device: 0x10ca,
            });
            b.add(pf);
            // VF offset 0x80, stride 2 (82576).
            for (a, ifname) in [("0000:01:10.0", "eth1"), ("0000:01:10.2", "eth2")] {
                let mut vf =
                    DeviceSpec::new(addr(a), id("8086:10ca"), CLASS_ETH, PciKind::Endpoint)
                        .flr()
                        .driver("igbvf")
                        .net(ifname, false, false);
                vf.physfn = Some(pf_addr);
                vf.reset_methods = vec!["flr".to_owned()];
                b.add(vf);
            }
        }
    }
    b
}

/// A QEMU q35 guest with `intel-iommu` (kernel 6.1) and the given device topology.
pub fn qemu_x86(topo: QemuTopo) -> SimBuilder {
    build_qemu(Arch::X86_64, topo)
}

/// A QEMU `virt` guest with SMMUv3, device-tree boot (kernel 6.1), and the given topology.
pub fn qemu_arm64(topo: QemuTopo) -> SimBuilder {
    build_qemu(Arch::Aarch64, topo)
}
