//! The case registry: the emulated PCIe topologies and the cases that check them. A case is an
//! architecture, a topology and a script, `qemu-tests/cases/<arch>-<name>.sh`; the matrix runs
//! every case on every kernel and boot method (see [`crate::matrix`]).
//!
//! To add a case, add its topology to [`TOPOLOGIES`] (if new), a line to [`CASES`] and the script.

use std::time::Duration;

use crate::machine::Arch;

/// An emulated PCIe topology: the `-device` tail appended to the machine's command line.
#[derive(Debug, Clone, Copy)]
pub struct Topology {
    /// Name used in case ids and file names.
    pub name: &'static str,
    /// QEMU arguments, identical on both architectures.
    pub devices: &'static [&'static str],
}

const RP1: &str = "pcie-root-port,id=rp1,chassis=1,slot=1,bus=pcie.0,addr=0x10";
const RP2: &str = "pcie-root-port,id=rp2,chassis=2,slot=2,bus=pcie.0,addr=0x11";

/// The topologies of `shared/context/qemu-guest-tests.md` §3. NIC option ROMs are disabled
/// (`romfile=`): they only add iPXE noise to the x86 console.
pub const TOPOLOGIES: &[Topology] = &[
    Topology {
        name: "rootports",
        devices: &[
            "-device",
            RP1,
            "-device",
            RP2,
            "-device",
            "e1000e,bus=rp1,romfile=",
            "-device",
            "e1000e,bus=rp2,romfile=",
        ],
    },
    Topology {
        name: "rootports-noacs",
        devices: &[
            "-device",
            "pcie-root-port,id=rp1,chassis=1,slot=1,bus=pcie.0,addr=0x10.0,multifunction=on,disable-acs=on",
            "-device",
            "pcie-root-port,id=rp2,chassis=2,slot=2,bus=pcie.0,addr=0x10.1,disable-acs=on",
            "-device",
            "e1000e,bus=rp1,romfile=",
            "-device",
            "e1000e,bus=rp2,romfile=",
        ],
    },
    Topology {
        name: "switch",
        devices: &[
            "-device",
            RP1,
            "-device",
            "x3130-upstream,id=up1,bus=rp1",
            "-device",
            "xio3130-downstream,id=dn1,bus=up1,chassis=11,slot=1",
            "-device",
            "xio3130-downstream,id=dn2,bus=up1,chassis=12,slot=2",
            "-device",
            "e1000e,bus=dn1,romfile=",
            "-device",
            "e1000e,bus=dn2,romfile=",
        ],
    },
    Topology {
        name: "pcibridge",
        devices: &[
            "-device",
            RP1,
            "-device",
            "pcie-pci-bridge,id=br1,bus=rp1",
            "-device",
            "e1000,bus=br1,addr=1,romfile=",
            "-device",
            "e1000,bus=br1,addr=2,romfile=",
        ],
    },
    // Host safety: the guest's own network is a virtio-net behind the IOMMU (iommu_platform=on),
    // an xHCI carries a usb-storage disk (a read-only FAT view of a small host directory), and
    // two NVMe controllers of one subsystem share a namespace (native multipath: the disk the
    // guest mounts sits under the subsystem, not under either controller; a subsystem's
    // controllers share one serial, as QEMU requires).
    Topology {
        name: "hostsafety",
        devices: &[
            "-netdev",
            "user,id=n0,restrict=on",
            "-device",
            "virtio-net-pci,netdev=n0,iommu_platform=on,disable-legacy=on,addr=0x2,romfile=",
            "-device",
            "qemu-xhci,id=xhci,addr=0x4",
            "-drive",
            "if=none,id=usbdisk,file=fat:/etc/skel,format=raw,readonly=on",
            "-device",
            "usb-storage,bus=xhci.0,drive=usbdisk",
            "-device",
            "nvme-subsys,id=nvmesubsys,nqn=vfioctl-hostsafety",
            "-device",
            "nvme,serial=vfioctl-hs,subsys=nvmesubsys,addr=0x5",
            "-device",
            "nvme,serial=vfioctl-hs,subsys=nvmesubsys,addr=0x6",
            "-drive",
            "if=none,id=nvmedisk,file=fat:/etc/skel,format=raw,readonly=on",
            "-device",
            "nvme-ns,drive=nvmedisk,nsid=1",
        ],
    },
    // `rootports` plus two empty hotplug-capable root ports (buses 03 and 04) for `device_add`
    // through QMP. The IO window is reserved because firmware leaves none for an empty port.
    Topology {
        name: "rootports-hotplug",
        devices: &[
            "-device",
            RP1,
            "-device",
            RP2,
            "-device",
            "e1000e,bus=rp1,romfile=",
            "-device",
            "e1000e,bus=rp2,romfile=",
            "-device",
            "pcie-root-port,id=rp3,chassis=3,slot=3,bus=pcie.0,addr=0x12,hotplug=on,io-reserve=4K",
            "-device",
            "pcie-root-port,id=rp4,chassis=4,slot=4,bus=pcie.0,addr=0x13,hotplug=on,io-reserve=4K",
        ],
    },
    // SR-IOV: QEMU's igb (8.0 and later) is an 82576 PF with VFs at offset 0x80, stride 2.
    Topology {
        name: "sriov",
        devices: &["-device", RP1, "-device", "igb,bus=rp1,romfile="],
    },
    Topology {
        name: "multifn",
        devices: &[
            "-device",
            RP1,
            "-device",
            "e1000e,bus=rp1,addr=0.0,multifunction=on,romfile=",
            "-device",
            "e1000e,bus=rp1,addr=0.1,romfile=",
        ],
    },
];

/// Cases whose devices only the newer QEMU emulates (`igb`'s SR-IOV is QEMU 8.0+): they run on
/// it alone, never on the system QEMU.
pub const NEW_QEMU_ONLY: &[&str] = &["sriov"];

/// Single cases that run on both QEMUs: the overhead case's timings depend on the emulator
/// (QEMU 7.2 retranslates a position-independent binary at each start; 8.0 and later do not).
pub const BOTH_QEMUS: &[&str] = &["overhead"];

/// Looks a topology up by name.
pub fn topology(name: &str) -> Option<&'static Topology> {
    TOPOLOGIES.iter().find(|t| t.name == name)
}

/// One VM: an architecture and a topology, checked by `qemu-tests/cases/<id>.sh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// Guest architecture.
    pub arch: Arch,
    /// The case's name: the topology's, except for cases that reuse a topology for other checks.
    pub name: &'static str,
    /// Topology name, a key of [`TOPOLOGIES`].
    pub topology: &'static str,
    /// Packs the host's `qemu-system-x86_64` (its libraries, TCG module and firmware) into the
    /// initramfs, so the case can run `vfioctl run` with a real QEMU inside the guest. Such a
    /// case gets more guest memory and time: see [`Case::memory_mb`] and [`Case::min_timeout`].
    pub nested_qemu: bool,
    /// Packs Debian's `systemd-udevd` (from `VFIOCTL_QEMU_UDEV_ROOT`, default
    /// `/var/tmp/vfioctl-initramfs/root`, made by `packaging/test-initramfs.sh --prepare`), so the
    /// case can run vfioctl's boot rule in the real udev.
    pub udev: bool,
    /// Runs on the oldest kernel and the system QEMU only: what it checks (refusals, udev's
    /// rule) does not depend on the kernel generation, and the matrix must fit CI's budget.
    pub single: bool,
    /// Boots after every other case has finished, with no other VM beside it: its figures are
    /// timings, which a second guest on the same cores would skew.
    pub alone: bool,
}

impl Case {
    /// A case that checks a topology's groups, bind and restore: named after the topology.
    pub const fn plain(arch: Arch, topology: &'static str) -> Self {
        Self {
            arch,
            name: topology,
            topology,
            nested_qemu: false,
            udev: false,
            single: false,
            alone: false,
        }
    }

    /// `<arch>-<name>`, also the case script's file stem.
    pub fn id(&self) -> String {
        format!("{}-{}", self.arch, self.name)
    }

    /// Guest memory: 1 GiB; 2 GiB with a nested QEMU (the unpacked 60 MB initramfs, QEMU itself
    /// and the guest RAM that VFIO pins).
    pub fn memory_mb(&self) -> u32 {
        if self.nested_qemu { 2048 } else { 1024 }
    }

    /// The least time the VM gets, whatever `VFIOCTL_QEMU_TIMEOUT` says: a nested QEMU starts
    /// twice under TCG-in-TCG.
    pub fn min_timeout(&self) -> Duration {
        Duration::from_secs(if self.nested_qemu { 240 } else { 0 })
    }

    /// The time limit `/init` puts on `/case.sh` (`vfiotest.timeout`), inside the guest.
    pub fn guest_timeout(&self) -> Option<u32> {
        self.nested_qemu.then_some(200)
    }
}

/// The full matrix.
pub const CASES: &[Case] = &[
    Case::plain(Arch::X86_64, "rootports"),
    Case::plain(Arch::X86_64, "rootports-noacs"),
    Case::plain(Arch::X86_64, "switch"),
    Case::plain(Arch::X86_64, "pcibridge"),
    Case::plain(Arch::X86_64, "multifn"),
    // `vfioctl run` with a real qemu-system-x86_64 inside the guest: SIGTERM forwarding and the
    // give-back, then SIGKILL of vfioctl and `recover` from the journal.
    Case {
        arch: Arch::X86_64,
        name: "nested",
        topology: "rootports",
        nested_qemu: true,
        udev: false,
        single: false,
        alone: false,
    },
    // Refusals on a real kernel: the guest's own virtio-net, a mounted USB disk, the LPC group.
    Case {
        arch: Arch::X86_64,
        name: "hostsafety",
        topology: "hostsafety",
        nested_qemu: false,
        udev: false,
        single: true,
        alone: false,
    },
    // `vfioctl boot install`'s rule run by the real systemd-udevd: devices added afresh, and
    // hot-added through QMP.
    Case {
        arch: Arch::X86_64,
        name: "udev",
        topology: "rootports-hotplug",
        nested_qemu: false,
        udev: true,
        single: true,
        alone: false,
    },
    // Ownership across actors on a real kernel: libvirt hook calls of two domains, a manual bind,
    // a bind by plain sysfs writes, and recover during an unbind that vfio-pci holds up.
    Case {
        arch: Arch::X86_64,
        name: "ownership",
        topology: "rootports",
        nested_qemu: false,
        udev: false,
        single: true,
        alone: false,
    },
    // The Kubernetes device plugin with a fake kubelet: Allocate's paths on the real kernel.
    Case {
        arch: Arch::X86_64,
        name: "deviceplugin",
        topology: "rootports",
        nested_qemu: false,
        udev: false,
        single: true,
        alone: false,
    },
    // `vfioctl bind` + `restore` of one NIC timed against the Ten64 page's shell sequence on the
    // same NIC: the ratio is printed (a fact in the table), never asserted.
    Case {
        arch: Arch::X86_64,
        name: "overhead",
        topology: "rootports",
        nested_qemu: false,
        udev: false,
        single: true,
        alone: true,
    },
    // SR-IOV on QEMU's igb: VFs created, set up, bound and given back (QEMU 10 only, see
    // [`NEW_QEMU_ONLY`]).
    Case {
        arch: Arch::X86_64,
        name: "sriov",
        topology: "sriov",
        nested_qemu: false,
        udev: false,
        single: true,
        alone: false,
    },
    Case::plain(Arch::Aarch64, "rootports"),
    Case::plain(Arch::Aarch64, "switch"),
    Case::plain(Arch::Aarch64, "pcibridge"),
    Case::plain(Arch::Aarch64, "multifn"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo_root;

    #[test]
    fn every_case_has_a_topology_and_a_script() {
        for case in CASES {
            assert!(topology(case.topology).is_some(), "{}", case.id());
            let script = repo_root().join(format!("qemu-tests/cases/{}.sh", case.id()));
            assert!(script.exists(), "missing {}", script.display());
        }
    }

    #[test]
    fn ids_are_unique() {
        let mut ids: Vec<String> = CASES.iter().map(Case::id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), CASES.len());
    }
}
