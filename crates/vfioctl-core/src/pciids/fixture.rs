//! The small `pci.ids` text the tests parse.

use crate::ids::VendorDevice;

/// The Ten64's and a desktop's devices, with real names from pci.ids 2023.04.10, plus some
/// garbage lines the parser must step over.
pub(super) const FIXTURE: &str = "\
# pci.ids fixture
#\tVersion: test

10de  NVIDIA Corporation
\t2684  AD102 [GeForce RTX 4090]
\t22ba  AD102 High Definition Audio Controller
12d8  Pericom Semiconductor
168c  Qualcomm Atheros
\t003e  QCA6174 802.11ac Wireless Network Adapter
\t\t1a56 1535  Killer Wireless-n/a/ac 1535 Wireless Network Adapter
1957  Freescale Semiconductor Inc
\t0080  MPC8349E
1ac1  Global Unichip Corp.
\t089a  Coral Edge TPU
1b36  Red Hat, Inc.
\t000c  QEMU PCIe Root port
1b4b  Marvell Technology Group Ltd.
# A comment inside a vendor block does not end it.
\t9230  88SE9230 PCIe 2.0 x2 4-port SATA 6 Gb/s RAID Controller
8086  Intel Corporation
\t1533  I210 Gigabit Network Connection
\t\t8086 0001  Ethernet Server Adapter I210-T1
c0a9  Micron/Crucial Technology
\t2263  P1 NVMe PCIe SSD
zzzz  Not a vendor
\tdead  Filed nowhere
\t\tbeef cafe  Filed nowhere either

# List of known device classes, subclasses and programming interfaces
C 01  Mass storage controller
\t06  SATA controller
\t\t01  AHCI 1.0
\t08  Non-Volatile memory controller
\t\t02  NVM Express
C 02  Network controller
\t00  Ethernet controller
\t80  Network controller
C 03  Display controller
\t00  VGA compatible controller
\t\t00  VGA controller
C 04  Multimedia controller
\t03  Audio device
C 06  Bridge
\t04  PCI bridge
\t\t00  Normal decode
C 08  Generic system peripheral
\t80  System peripheral
C 0c  Serial bus controller
\t03  USB controller
\t\t30  XHCI
";

/// Parses `vvvv:dddd`.
pub(super) fn vd(s: &str) -> VendorDevice {
    s.parse().unwrap()
}
