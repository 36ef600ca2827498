//! The Traverse Ten64, with and without its DPAA2 side.

use crate::spec::{
    Arch, BlockDev, DeviceSpec, HostSpec, IdMatch, ModuleSpec, ModuleState, PciKind,
};
use crate::tree::{SimBuilder, addr};

use super::common::{common_drivers, id, modular};

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
