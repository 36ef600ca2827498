//! What the named hosts share: ID parsing, class codes and the drivers every host has.

use vfioctl_core::VendorDevice;

use crate::spec::{Arch, DriverSpec, IdMatch, ModuleSpec, ModuleState, ProbeFilter};
use crate::tree::SimBuilder;

pub(super) fn id(text: &str) -> VendorDevice {
    match text.parse() {
        Ok(v) => v,
        Err(e) => panic!("bad ID in topology: {e}"),
    }
}

/// Class code of PCI-to-PCI bridges.
pub(super) const CLASS_BRIDGE: u32 = 0x060400;

/// Class code of host bridges.
pub(super) const CLASS_HOST: u32 = 0x060000;

/// Class code of Ethernet controllers.
pub(super) const CLASS_ETH: u32 = 0x020000;

/// `pcieport`, `pci-stub` and the vfio family; vfio-pci `Loaded` or `Loadable`.
pub(super) fn common_drivers(b: &mut SimBuilder, vfio: ModuleState) {
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

pub(super) fn modular(
    b: &mut SimBuilder,
    driver: &str,
    module: &str,
    ids: Vec<IdMatch>,
    state: ModuleState,
) {
    b.add_driver(DriverSpec::new(driver, module, ids), state);
}
