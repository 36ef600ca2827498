//! A large SR-IOV host for benchmarks.

use crate::spec::{Arch, DeviceSpec, HostSpec, IdMatch, ModuleState, PciKind, SriovSpec};
use crate::tree::{SimBuilder, addr};

use super::common::{CLASS_ETH, CLASS_HOST, common_drivers, id, modular};

/// Largest number of VFs one simulated X710 PF gets (VF offset 16, stride 1: VFs past devfn 255
/// spill onto the next bus, as real ones do).
const VFS_PER_PF: usize = 250;

/// A large x86 host for benchmarks: root ports with ACS, each with an Intel X710 PF (i40e) and up
/// to 250 VFs (`8086:154c`) until about `functions` functions exist. Every VF gets its own group.
/// Every second VF is on iavf with an interface (down), as on a host that uses some of its VFs
/// itself, so `/sys/class/net` grows with the host as it does on such a host.
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
    if let Some(i40e) = b.driver_mut("i40e") {
        i40e.sriov_configure = true;
    }
    modular(
        &mut b,
        "iavf",
        "iavf",
        vec![IdMatch::id(0x8086, 0x154c)],
        ModuleState::Loaded,
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
            offset: 16,
            stride: 1,
            vf_device: 0x154c,
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
            if i % 2 == 1 {
                let (slot, func) = (devfn >> 3, devfn & 7);
                vf = vf
                    .driver("iavf")
                    .net(&format!("enp{vf_bus}s{slot}f{func}"), false, false);
            }
            b.add(vf);
            count += 1;
        }
        // Reserve the bus the VFs may spill onto.
        bus += 2;
    }
    b
}
