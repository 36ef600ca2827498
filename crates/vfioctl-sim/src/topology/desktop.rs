//! An x86 desktop with a GPU to pass through.

use crate::spec::{Arch, BlockDev, DeviceSpec, HostSpec, IdMatch, ModuleState, PciKind};
use crate::tree::{SimBuilder, addr};

use super::common::{CLASS_ETH, CLASS_HOST, common_drivers, id, modular};

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
