//! Attribute texts derived from a device: `modalias` and `uevent`.

use std::fs;
use std::io;
use std::path::Path;

use vfioctl_core::PciAddress;

use crate::spec::DeviceSpec;

use super::files::read_hex;

/// The kernel's `modalias` for a PCI function.
pub(crate) fn modalias(dev: &DeviceSpec) -> String {
    format!(
        "pci:v{:08X}d{:08X}sv{:08X}sd{:08X}bc{:02X}sc{:02X}i{:02X}",
        dev.id.vendor,
        dev.id.device,
        dev.subsystem.vendor,
        dev.subsystem.device,
        (dev.class >> 16) as u8,
        (dev.class >> 8) as u8,
        dev.class as u8
    )
}

/// The uevent text of a PCI function.
pub(crate) fn uevent(
    address: PciAddress,
    vendor: u16,
    device: u16,
    sub: (u16, u16),
    class: u32,
    modalias: &str,
    driver: Option<&str>,
) -> String {
    let mut s = String::new();
    if let Some(d) = driver {
        s.push_str(&format!("DRIVER={d}\n"));
    }
    s.push_str(&format!(
        "PCI_CLASS={class:X}\nPCI_ID={vendor:04X}:{device:04X}\nPCI_SUBSYS_ID={:04X}:{:04X}\nPCI_SLOT_NAME={address}\nMODALIAS={modalias}\n",
        sub.0, sub.1
    ));
    s
}

pub(super) fn rewrite_uevent(
    root: &Path,
    dir: &Path,
    address: PciAddress,
    driver: Option<&str>,
) -> io::Result<()> {
    let d = root.join(dir);
    let alias = fs::read_to_string(d.join("modalias")).unwrap_or_default();
    let text = uevent(
        address,
        read_hex(&d.join("vendor")) as u16,
        read_hex(&d.join("device")) as u16,
        (
            read_hex(&d.join("subsystem_vendor")) as u16,
            read_hex(&d.join("subsystem_device")) as u16,
        ),
        read_hex(&d.join("class")),
        alias.trim_end(),
        driver,
    );
    fs::write(d.join("uevent"), text)
}
