//! What grouping predictions need from the host besides its PCI functions: the kernel release,
//! the architecture, ACPI or device tree, the IOMMU driver, and the physical slots.

use std::fs;

use vfioctl_core::doctor::Arch;
use vfioctl_core::predict::{CpuArch, Firmware, IommuKind, KernelVersion, SlotSite};

use crate::read::{dir_names, read_attr};
use crate::{HostError, HostRoot};

/// The host facts a prediction rests on, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformFacts {
    /// `proc/sys/kernel/osrelease`, when readable.
    pub release: Option<String>,
    /// Its `major.minor`, when it parses.
    pub kernel: Option<KernelVersion>,
    /// Architecture.
    pub arch: CpuArch,
    /// ACPI or device tree.
    pub firmware: Firmware,
    /// The IOMMU driver, from `sys/class/iommu`.
    pub iommu: IommuKind,
    /// `sys/bus/pci/slots/*`.
    pub slots: Vec<SlotSite>,
}

fn firmware(root: &HostRoot) -> Firmware {
    // arm64 unflattens the device tree only when ACPI is off, and /sys/firmware/acpi exists only
    // when ACPI is on; fdt is the raw blob a device-tree boot leaves.
    if root.join("sys/firmware/acpi").is_dir() {
        Firmware::Acpi
    } else if root.join("sys/firmware/devicetree/base").is_dir()
        || fs::symlink_metadata(root.join("sys/firmware/fdt")).is_ok()
    {
        Firmware::DeviceTree
    } else {
        Firmware::Unknown
    }
}

/// `address` of a slot: `dddd:bb:dd` (or `dddd:bb` for a slot whose device number is unknown).
fn slot_site(name: String, address: &str) -> Option<SlotSite> {
    let mut parts = address.trim().split(':');
    let domain = u32::from_str_radix(parts.next()?, 16).ok()?;
    let bus = u8::from_str_radix(parts.next()?, 16).ok()?;
    let device = parts
        .next()
        .map_or(Some(0), |d| u8::from_str_radix(d, 16).ok())?;
    Some(SlotSite {
        name,
        domain,
        bus,
        device,
    })
}

/// Reads the platform facts under `root`.
pub fn read_platform(root: &HostRoot) -> Result<PlatformFacts, HostError> {
    let units = dir_names(&root.join("sys/class/iommu"));
    let arch = match crate::facts::arch(root, &units)? {
        Arch::X86_64 => CpuArch::X86_64,
        Arch::Aarch64 => CpuArch::Aarch64,
        Arch::Unknown => CpuArch::Unknown,
    };
    let release = match read_attr(&root.join("proc/sys/kernel/osrelease")) {
        Ok(t) => t.map(|t| t.trim().to_owned()),
        Err(HostError::Read { .. }) => None,
        Err(e) => return Err(e),
    };
    let kernel = release.as_deref().and_then(|r| r.parse().ok());
    let mut slots = Vec::new();
    for name in dir_names(&root.join("sys/bus/pci/slots")) {
        let rel = root.join(format!("sys/bus/pci/slots/{name}/address"));
        if let Ok(Some(address)) = read_attr(&rel)
            && let Some(site) = slot_site(name, &address)
        {
            slots.push(site);
        }
    }
    let firmware = firmware(root);
    // Device trees boot arm64 far more than anything vfioctl's predictions distinguish.
    let arch = if arch == CpuArch::Unknown && firmware == Firmware::DeviceTree {
        CpuArch::Aarch64
    } else {
        arch
    };
    Ok(PlatformFacts {
        release,
        kernel,
        arch,
        firmware,
        iommu: IommuKind::from_units(&units),
        slots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_addresses_parse() {
        let s = slot_site("3".into(), "0000:02:00\n").unwrap();
        assert_eq!((s.domain, s.bus, s.device), (0, 2, 0));
        assert!(slot_site("x".into(), "zz").is_none());
    }
}
