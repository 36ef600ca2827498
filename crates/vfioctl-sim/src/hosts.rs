//! Hosts shaped like the cases where a bind could take something the host needs or a device the
//! user did not mean: several PCI domains, a virtio-net guest under a vIOMMU, an xHCI with a
//! mounted USB disk, an SR-IOV PF whose VF is on vfio-pci; and damage done to a built tree (a
//! half-removed device, garbage in one device).

use std::fs;
use std::io;
use std::path::Path;

use vfioctl_core::{PciAddress, VendorDevice};

use crate::spec::{BlockDev, DeviceSpec, DriverSpec, IdMatch, ModuleState, NetIf, PciKind};
use crate::topology::{QemuTopo, qemu_x86};
use crate::tree::{SimBuilder, addr};

fn id(text: &str) -> VendorDevice {
    match text.parse() {
        Ok(v) => v,
        Err(e) => panic!("bad ID in host: {e}"),
    }
}

/// Removes the first directory of `via` under the device directory `dir` (relative to `root`):
/// what a driver's sub-devices (`virtio0`, `usb2`) leave behind when it unbinds.
pub(crate) fn remove_via(root: &Path, dir: &Path, via: Option<&str>) -> io::Result<()> {
    let Some(first) = via.and_then(|v| v.split('/').find(|p| !p.is_empty())) else {
        return Ok(());
    };
    match fs::remove_dir_all(root.join(dir).join(first)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A q35 guest (the QEMU layer's x86 machine, intel-iommu) whose own network is a
/// `virtio-net-pci` at 00:02.0 with `iommu_platform=on`: the interface `eth0` lives at
/// `0000:00:02.0/virtio0/net/eth0` and carries the default route.
pub fn virtio_net_guest() -> SimBuilder {
    let mut b = qemu_x86(QemuTopo::RootPorts);
    // The guest's own interface is eth0; the test NICs come after it.
    for (nic, name) in [("0000:01:00.0", "eth1"), ("0000:02:00.0", "eth2")] {
        if let Some(d) = b.device_mut(nic) {
            for n in &mut d.net {
                n.name = name.to_owned();
            }
        }
    }
    b.add_driver(
        DriverSpec::new(
            "virtio-pci",
            "virtio_pci",
            vec![IdMatch {
                vendor: Some(0x1af4),
                device: None,
                class: 0,
                class_mask: 0,
            }],
        ),
        ModuleState::Builtin,
    );
    let mut nic = DeviceSpec::new(
        addr("0000:00:02.0"),
        id("1af4:1041"),
        0x020000,
        PciKind::RcEndpoint,
    )
    .revision(0x01)
    .driver("virtio-pci");
    nic.net.push(NetIf {
        name: "eth0".to_owned(),
        up: true,
        default_route: true,
        via: Some("virtio0".to_owned()),
    });
    b.add(nic);
    b
}

/// A q35 guest with a `qemu-xhci` at 00:04.0 and a `usb-storage` disk behind it (`usb 2-1`,
/// `sda`), whose second partition is mounted on `mount_point`.
pub fn xhci_usb_disk(mount_point: &str) -> SimBuilder {
    let mut b = qemu_x86(QemuTopo::RootPorts);
    b.add_driver(
        DriverSpec::new(
            "xhci_hcd",
            "xhci_pci",
            vec![IdMatch::class(0x0c0330, 0xffffff)],
        ),
        ModuleState::Builtin,
    );
    let mut xhci = DeviceSpec::new(
        addr("0000:00:04.0"),
        id("1b36:000d"),
        0x0c0330,
        PciKind::RcEndpoint,
    )
    .revision(0x01)
    .driver("xhci_hcd");
    xhci.block.push(BlockDev {
        controller: "usb2".to_owned(),
        disk: "sda".to_owned(),
        partitions: vec![
            ("sda1".to_owned(), None),
            ("sda2".to_owned(), Some(mount_point.to_owned())),
        ],
        via: Some("usb2/2-1/2-1:1.0/host0/target0:0:0/0:0:0:0/block".to_owned()),
    });
    b.add(xhci);
    b
}

/// A server with three PCI domains: `0000:` (host bridge, a root port with an igb NIC), an
/// Intel VMD domain `10000:` with an NVMe at `10000:e1:00.0`, and a Hyper-V style `ffff:` with a
/// ConnectX function at `ffff:00:02.0`. Neither `00:02.0` nor `e1:00.0` exists in domain 0.
pub fn multi_domain() -> SimBuilder {
    let mut b = qemu_x86(QemuTopo::RootPorts);
    for (name, module, dev_id) in [
        ("nvme", "nvme", "8086:f1a8"),
        ("mlx5_core", "mlx5_core", "15b3:101e"),
    ] {
        let (vendor, device) = (id(dev_id).vendor, id(dev_id).device);
        b.add_driver(
            DriverSpec::new(name, module, vec![IdMatch::id(vendor, device)]),
            ModuleState::Loaded,
        );
    }
    b.add(
        DeviceSpec::bridge(
            addr("10000:e0:06.0"),
            id("8086:464d"),
            PciKind::RootPort,
            0xe1,
        )
        .acs(0x005f)
        .driver("pcieport"),
    );
    b.add(
        DeviceSpec::new(
            addr("10000:e1:00.0"),
            id("8086:f1a8"),
            0x010802,
            PciKind::Endpoint,
        )
        .flr()
        .driver("nvme"),
    );
    b.add(
        DeviceSpec::new(
            addr("ffff:00:02.0"),
            id("15b3:101e"),
            0x020000,
            PciKind::Endpoint,
        )
        .flr()
        .driver("mlx5_core")
        .net("enP65535s2", false, false),
    );
    b
}

/// The QEMU SR-IOV topology (an igb PF at 01:00.0, VFs at 01:10.0 and 01:10.2) with the first
/// VF already on vfio-pci, as when a VM holds it.
pub fn sriov_vf_on_vfio() -> SimBuilder {
    let mut b = qemu_x86(QemuTopo::Sriov);
    if let Some(vf) = b.device_mut("0000:01:10.0") {
        vf.driver = Some("vfio-pci".to_owned());
        vf.driver_override = Some("vfio-pci".to_owned());
        vf.net.clear();
    }
    b
}

/// Leaves `bus/pci/devices/<address>` dangling, as while a device is being hot-removed: its
/// directory is gone, its links are not yet.
pub fn half_remove(root: &Path, address: PciAddress) -> io::Result<()> {
    let dir = crate::tree::device_dir(root, address)?;
    fs::remove_dir_all(root.join(dir))
}

/// Empties one attribute of a device (an empty `class`, as a broken driver or firmware leaves).
pub fn garble(root: &Path, address: PciAddress, attribute: &str) -> io::Result<()> {
    let dir = crate::tree::device_dir(root, address)?;
    fs::write(root.join(dir).join(attribute), "")
}
