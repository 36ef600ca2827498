//! Named hosts: real machines and the QEMU topologies the project's guest tests boot.
//!
//! Each returns a [`SimBuilder`] so a test can tweak one detail before building. IDs, classes and
//! drivers are the real ones; groups come from the emulated `pci_device_group()` and match what the
//! real kernels produced (see `/work/shared/context/qemu-guest-tests.md` §4).

use vfioctl_core::VendorDevice;

use crate::spec::{
    Arch, BlockDev, DeviceSpec, DriverSpec, GroupRule, HostSpec, IdMatch, ModuleSpec, ModuleState,
    PciKind, ProbeFilter, SriovSpec,
};
use crate::tree::{SimBuilder, addr};

fn id(text: &str) -> VendorDevice {
    match text.parse() {
        Ok(v) => v,
        Err(e) => panic!("bad ID in topology: {e}"),
    }
}

/// Class code of PCI-to-PCI bridges.
const CLASS_BRIDGE: u32 = 0x060400;
/// Class code of host bridges.
const CLASS_HOST: u32 = 0x060000;
/// Class code of Ethernet controllers.
const CLASS_ETH: u32 = 0x020000;

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

/// `pcieport`, `pci-stub` and the vfio family; vfio-pci `Loaded` or `Loadable`.
fn common_drivers(b: &mut SimBuilder, vfio: ModuleState) {
    b.add_driver(
        DriverSpec::new(
            "pcieport",
            "pcieport",
            vec![
                IdMatch::class(CLASS_BRIDGE, 0xffffff),
                IdMatch::class(0x060401, 0xffffff),
            ],
        )
        .probe(ProbeFilter::PciePorts),
        ModuleState::Builtin,
    );
    b.add_driver(
        DriverSpec::new("pci-stub", "pci_stub", Vec::new()),
        ModuleState::Builtin,
    );
    let loaded = vfio;
    let x86 = b.host.arch == Arch::X86_64;
    let mut family = vec![
        ("vfio", vec![], vec![("enable_unsafe_noiommu_mode", "N")]),
        (
            "vfio_iommu_type1",
            vec!["vfio"],
            vec![
                ("allow_unsafe_interrupts", "N"),
                ("dma_entry_limit", "65535"),
            ],
        ),
        ("vfio_pci_core", vec!["vfio"], vec![]),
        (
            "vfio_pci",
            vec!["vfio_pci_core", "vfio", "vfio_iommu_type1"],
            vec![
                ("disable_denylist", "N"),
                ("disable_idle_d3", "N"),
                ("disable_vga", "N"),
                ("enable_sriov", "N"),
                ("ids", ""),
                ("nointxmask", "N"),
            ],
        ),
    ];
    if x86 {
        family.insert(0, ("irqbypass", vec![], vec![]));
        family[3].1.push("irqbypass");
    }
    for (name, deps, params) in family {
        let mut m = ModuleSpec::new(name, loaded);
        m.deps = deps.into_iter().map(str::to_owned).collect();
        m.parameters = params
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        m.path = match name {
            "irqbypass" => "kernel/virt/lib/irqbypass.ko".to_owned(),
            "vfio" => "kernel/drivers/vfio/vfio.ko".to_owned(),
            "vfio_iommu_type1" => "kernel/drivers/vfio/vfio_iommu_type1.ko".to_owned(),
            _ => format!("kernel/drivers/vfio/pci/{}.ko", name.replace('_', "-")),
        };
        b.add_module(m);
    }
    b.add_driver(
        DriverSpec::new("vfio-pci", "vfio_pci", Vec::new()).probe(ProbeFilter::Vfio),
        loaded,
    );
}

fn modular(b: &mut SimBuilder, driver: &str, module: &str, ids: Vec<IdMatch>, state: ModuleState) {
    b.add_driver(DriverSpec::new(driver, module, ids), state);
}

/// The Traverse Ten64 (NXP LS1088A, arm64, device-tree boot), as its VFIO page lists it.
///
/// Three PCIe controllers (domains 0-2) with Freescale root ports; a Pericom switch on domain 1
/// carries a QCA6174 Wi-Fi card (ath10k_pci) and a Coral TPU (no driver); a Micron P1 NVMe on
/// domain 2 holds `/`. No ACS anywhere (device-tree boot), so each domain is one group.
pub fn ten64() -> SimBuilder {
    let mut b = SimBuilder::new(HostSpec {
        arch: Arch::Aarch64,
        release: "6.6.52-ten64".to_owned(),
        cmdline: "console=ttyS0,115200 root=/dev/nvme0n1p2 arm-smmu.disable_bypass=0".to_owned(),
        iommu: Some("smmu.0x0000000005000000".to_owned()),
        group_type: "DMA".to_owned(),
        acs_enabled_at_boot: false,
        override_unset_null: true,
        extra_mounts: Vec::new(),
        modprobe_d: Vec::new(),
    });
    common_drivers(&mut b, ModuleState::Loadable);
    modular(
        &mut b,
        "ath10k_pci",
        "ath10k_pci",
        vec![IdMatch::id(0x168c, 0x003e)],
        ModuleState::Loaded,
    );
    modular(
        &mut b,
        "nvme",
        "nvme",
        vec![IdMatch::class(0x010802, 0xffffff)],
        ModuleState::Builtin,
    );
    // The Coral's gasket/apex driver is not in this kernel.
    modular(
        &mut b,
        "apex",
        "apex",
        vec![IdMatch::id(0x1ac1, 0x089a)],
        ModuleState::Absent,
    );

    let rp = id("1957:80c0");
    let pericom = id("12d8:b304");
    for domain in ["0000", "0001", "0002"] {
        b.add(
            DeviceSpec::bridge(addr(&format!("{domain}:00:00.0")), rp, PciKind::RootPort, 1)
                .revision(0x10)
                .driver("pcieport"),
        );
    }
    b.add(
        DeviceSpec::bridge(addr("0001:01:00.0"), pericom, PciKind::Upstream, 2)
            .revision(0x01)
            .driver("pcieport"),
    );
    for (slot, bus) in [("01", 3), ("02", 4)] {
        b.add(
            DeviceSpec::bridge(
                addr(&format!("0001:02:{slot}.0")),
                pericom,
                PciKind::Downstream,
                bus,
            )
            .revision(0x01)
            .driver("pcieport"),
        );
    }
    b.add(
        DeviceSpec::new(
            addr("0001:03:00.0"),
            id("168c:003e"),
            0x028000,
            PciKind::Endpoint,
        )
        .revision(0x32)
        .driver("ath10k_pci")
        .net("wlan0", false, false),
    );
    b.add(
        DeviceSpec::new(
            addr("0001:04:00.0"),
            id("1ac1:089a"),
            0x0880ff,
            PciKind::Endpoint,
        )
        .flr(),
    );
    let mut nvme = DeviceSpec::new(
        addr("0002:01:00.0"),
        id("c0a9:2263"),
        0x010802,
        PciKind::Endpoint,
    )
    .revision(0x03)
    .flr()
    .driver("nvme");
    nvme.block.push(BlockDev {
        via: None,
        controller: "nvme0".to_owned(),
        disk: "nvme0n1".to_owned(),
        partitions: vec![
            ("nvme0n1p1".to_owned(), None),
            ("nvme0n1p2".to_owned(), Some("/".to_owned())),
        ],
    });
    b.add(nvme);
    b
}

/// The Ten64 with its DPAA2 side: the fsl-mc bus with the host's container `dprc.1` (bound to
/// `fsl_mc_dprc`, its objects on their drivers) and `dprc.2` made by restool for a VM (unplugged,
/// unbound, so its objects are not visible yet). vfio-fsl-mc is loadable.
pub fn ten64_dpaa2() -> SimBuilder {
    let mut b = ten64();
    for (name, state) in [
        ("fsl_mc_bus", ModuleState::Builtin),
        ("fsl_mc_dpio", ModuleState::Builtin),
        ("fsl_dpaa2_eth", ModuleState::Loaded),
    ] {
        b.add_module(ModuleSpec::new(name, state));
    }
    let mut vfio = ModuleSpec::new("vfio_fsl_mc", ModuleState::Loadable);
    vfio.deps = vec!["vfio".to_owned()];
    vfio.path = "kernel/drivers/vfio/fsl-mc/vfio-fsl-mc.ko".to_owned();
    b.add_module(vfio);
    b.fsl_mc = Some(crate::fslmc::ten64_fsl_mc());
    b
}

/// A typical x86 desktop with a GPU to pass through.
///
/// - 00:01.0 CPU root port without ACS: NVIDIA GPU 01:00.0 (nvidia, boot VGA) + HDMI audio
///   01:00.1 share its group.
/// - PCH root ports 00:1c.0 / 00:1c.4 / 00:1d.0 / 00:1d.4 with ACS enabled: Marvell SATA (ahci),
///   I210 `enp3s0` (igb, default route), I210 `enp4s0` (down), NVMe holding `/`.
/// - Chipset 00:1f.0/.3/.4 (multifunction, no ACS) share a group.
/// - vfio-pci loaded; nouveau blacklisted.
pub fn x86_desktop() -> SimBuilder {
    let mut b = SimBuilder::new(HostSpec {
        arch: Arch::X86_64,
        release: "6.8.0-45-generic".to_owned(),
        cmdline: "BOOT_IMAGE=/boot/vmlinuz-6.8.0-45-generic root=/dev/nvme0n1p2 ro quiet splash intel_iommu=on iommu=pt".to_owned(),
        iommu: Some("dmar0".to_owned()),
        group_type: "DMA-FQ".to_owned(),
        acs_enabled_at_boot: true,
        override_unset_null: true,
        extra_mounts: Vec::new(),
        modprobe_d: vec![(
            "blacklist-nouveau.conf".to_owned(),
            "blacklist nouveau\noptions nouveau modeset=0\n".to_owned(),
        )],
    });
    common_drivers(&mut b, ModuleState::Loaded);
    let nv = || {
        vec![IdMatch {
            vendor: Some(0x10de),
            device: None,
            class: 0x030000,
            class_mask: 0xff0000,
        }]
    };
    modular(&mut b, "nvidia", "nvidia", nv(), ModuleState::Loaded);
    modular(&mut b, "nouveau", "nouveau", nv(), ModuleState::Blacklisted);
    for (drv, module, ids, state) in [
        (
            "snd_hda_intel",
            "snd_hda_intel",
            vec![IdMatch::class(0x040300, 0xffff00)],
            ModuleState::Loaded,
        ),
        (
            "ahci",
            "ahci",
            vec![IdMatch::class(0x010601, 0xffffff)],
            ModuleState::Builtin,
        ),
        (
            "igb",
            "igb",
            vec![IdMatch::id(0x8086, 0x1533)],
            ModuleState::Loaded,
        ),
        (
            "nvme",
            "nvme",
            vec![IdMatch::class(0x010802, 0xffffff)],
            ModuleState::Builtin,
        ),
        (
            "lpc_ich",
            "lpc_ich",
            vec![IdMatch::id(0x8086, 0xa305)],
            ModuleState::Loaded,
        ),
        (
            "i801_smbus",
            "i2c_i801",
            vec![IdMatch::id(0x8086, 0xa323)],
            ModuleState::Loaded,
        ),
    ] {
        modular(&mut b, drv, module, ids, state);
    }

    b.add(DeviceSpec::new(
        addr("0000:00:00.0"),
        id("8086:3e30"),
        CLASS_HOST,
        PciKind::PciFunction,
    ));
    b.add(
        DeviceSpec::bridge(addr("0000:00:01.0"), id("8086:1901"), PciKind::RootPort, 1)
            .driver("pcieport"),
    );
    let mut gpu = DeviceSpec::new(
        addr("0000:01:00.0"),
        id("10de:2684"),
        0x030000,
        PciKind::Endpoint,
    )
    .revision(0xa1)
    .multifunction()
    .driver("nvidia");
    gpu.boot_vga = Some(true);
    gpu.subsystem = id("1043:889c");
    b.add(gpu);
    b.add(
        DeviceSpec::new(
            addr("0000:01:00.1"),
            id("10de:22ba"),
            0x040300,
            PciKind::Endpoint,
        )
        .revision(0xa1)
        .multifunction()
        .driver("snd_hda_intel"),
    );
    for (port, dev_id, bus) in [
        ("0000:00:1c.0", "8086:a338", 2),
        ("0000:00:1c.4", "8086:a33c", 3),
        ("0000:00:1d.0", "8086:a330", 4),
        ("0000:00:1d.4", "8086:a334", 5),
    ] {
        b.add(
            DeviceSpec::bridge(addr(port), id(dev_id), PciKind::RootPort, bus)
                .multifunction()
                .acs(0x005f)
                .driver("pcieport"),
        );
    }
    b.add(
        DeviceSpec::new(
            addr("0000:02:00.0"),
            id("1b4b:9230"),
            0x010601,
            PciKind::Endpoint,
        )
        .revision(0x11)
        .driver("ahci"),
    );
    b.add(
        DeviceSpec::new(
            addr("0000:03:00.0"),
            id("8086:1533"),
            CLASS_ETH,
            PciKind::Endpoint,
        )
        .revision(0x03)
        .flr()
        .driver("igb")
        .net("enp3s0", true, true),
    );
    b.add(
        DeviceSpec::new(
            addr("0000:04:00.0"),
            id("8086:1533"),
            CLASS_ETH,
            PciKind::Endpoint,
        )
        .revision(0x03)
        .flr()
        .driver("igb")
        .net("enp4s0", false, false),
    );
    let mut nvme = DeviceSpec::new(
        addr("0000:05:00.0"),
        id("144d:a80a"),
        0x010802,
        PciKind::Endpoint,
    )
    .flr()
    .driver("nvme");
    nvme.block.push(BlockDev {
        via: None,
        controller: "nvme0".to_owned(),
        disk: "nvme0n1".to_owned(),
        partitions: vec![
            ("nvme0n1p1".to_owned(), Some("/boot/efi".to_owned())),
            ("nvme0n1p2".to_owned(), Some("/".to_owned())),
        ],
    });
    b.add(nvme);
    for (a, dev_id, class, drv) in [
        ("0000:00:1f.0", "8086:a305", 0x060100, Some("lpc_ich")),
        ("0000:00:1f.3", "8086:a348", 0x040300, Some("snd_hda_intel")),
        ("0000:00:1f.4", "8086:a323", 0x0c0500, Some("i801_smbus")),
    ] {
        let mut d =
            DeviceSpec::new(addr(a), id(dev_id), class, PciKind::PciFunction).multifunction();
        d.driver = drv.map(str::to_owned);
        b.add(d);
    }
    b
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
            b.add(root_port("0000:00:10.0", 1));
            let pf_addr = addr("0000:01:00.0");
            let mut pf = DeviceSpec::new(pf_addr, id("8086:10c9"), CLASS_ETH, PciKind::Endpoint)
                .flr()
                .driver("igb")
                .net("eth0", false, false);
            pf.sriov = Some(SriovSpec {
                total_vfs: 7,
                num_vfs: 2,
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

/// Largest number of VFs one simulated X710 PF gets (VF offset 16, stride 1: VFs past devfn 255
/// spill onto the next bus, as real ones do).
const VFS_PER_PF: usize = 250;

/// A large x86 host for benchmarks: root ports with ACS, each with an Intel X710 PF (i40e) and up
/// to 250 VFs (`8086:154c`, no driver) until about `functions` functions exist. Every VF gets its
/// own group.
pub fn sriov_host(functions: usize) -> SimBuilder {
    let mut b = SimBuilder::new(HostSpec {
        arch: Arch::X86_64,
        release: "6.8.0-45-generic".to_owned(),
        cmdline: "root=/dev/sda1 ro intel_iommu=on iommu=pt".to_owned(),
        iommu: Some("dmar0".to_owned()),
        group_type: "DMA".to_owned(),
        acs_enabled_at_boot: true,
        override_unset_null: true,
        extra_mounts: Vec::new(),
        modprobe_d: Vec::new(),
    });
    common_drivers(&mut b, ModuleState::Loaded);
    modular(
        &mut b,
        "i40e",
        "i40e",
        vec![IdMatch::id(0x8086, 0x1572)],
        ModuleState::Loaded,
    );
    modular(
        &mut b,
        "iavf",
        "iavf",
        vec![IdMatch::id(0x8086, 0x154c)],
        ModuleState::Loadable,
    );
    b.add(DeviceSpec::new(
        addr("0000:00:00.0"),
        id("8086:2020"),
        CLASS_HOST,
        PciKind::PciFunction,
    ));
    let mut count = 1usize;
    let mut bus: u16 = 1;
    let mut port = 0u16;
    while count < functions && bus < 0xfe {
        // Root ports at 00:01.0, 00:01.1, ... 00:1e.7.
        let (slot, func) = (1 + port / 8, port % 8);
        if slot > 0x1e {
            break;
        }
        port += 1;
        let rp_addr = vfioctl_core::PciAddress::new(0, 0, slot as u8, func as u8)
            .unwrap_or_else(|| addr("0000:00:01.0"));
        let mut rp = DeviceSpec::bridge(rp_addr, id("8086:2030"), PciKind::RootPort, bus as u8)
            .acs(0x005f)
            .driver("pcieport");
        rp.multifunction = true;
        b.add(rp);
        let pf_addr = vfioctl_core::PciAddress::new(0, bus as u8, 0, 0).unwrap_or(rp_addr);
        let n_vfs = VFS_PER_PF.min(functions.saturating_sub(count + 2));
        let mut pf = DeviceSpec::new(pf_addr, id("8086:1572"), CLASS_ETH, PciKind::Endpoint)
            .flr()
            .driver("i40e")
            .net(&format!("enp{bus}s0f0"), false, false);
        pf.sriov = Some(SriovSpec {
            total_vfs: VFS_PER_PF as u32,
            num_vfs: n_vfs as u32,
        });
        b.add(pf);
        count += 2;
        for i in 0..n_vfs {
            let devfn = 16 + i;
            let vf_bus = bus + (devfn / 256) as u16;
            let devfn = (devfn % 256) as u8;
            let Some(vf_addr) =
                vfioctl_core::PciAddress::new(0, vf_bus as u8, devfn >> 3, devfn & 7)
            else {
                continue;
            };
            let mut vf =
                DeviceSpec::new(vf_addr, id("8086:154c"), CLASS_ETH, PciKind::Endpoint).flr();
            vf.physfn = Some(pf_addr);
            vf.reset_methods = vec!["flr".to_owned()];
            b.add(vf);
            count += 1;
        }
        // Reserve the bus the VFs may spill onto.
        bus += 2;
    }
    b
}
