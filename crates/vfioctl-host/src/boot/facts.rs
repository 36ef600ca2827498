//! Reading the facts of `doctor`'s early-boot checks: framebuffers in `/proc/iomem`, devices'
//! BARs, virtual-terminal consoles, and the module lists and configs where stale names linger.

use std::collections::BTreeMap;

use vfioctl_core::Inventory;
use vfioctl_core::boot::checks::{BootFacts, VtConsole, framebuffers, parse_iomem, parse_resource};

use crate::HostRoot;
use crate::read::dir_names;

/// Files that list modules to load, and directories of such files (`*.conf`).
const MODULE_FILES: &[&str] = &[
    "etc/modules",
    "etc/initramfs-tools/modules",
    "etc/mkinitcpio.conf",
    "etc/dracut.conf",
];
const MODULE_DIRS: &[&str] = &[
    "etc/modules-load.d",
    "etc/modprobe.d",
    "etc/dracut.conf.d",
    "etc/mkinitcpio.conf.d",
];

/// `/proc/iomem` of a large server runs to hundreds of kilobytes; module configs are small.
const MAX_FILE: u64 = 4 * 1024 * 1024;

fn read(root: &HostRoot, rel: &str) -> Option<String> {
    let bytes = crate::read::read_bytes(&root.join(rel), MAX_FILE).ok()??;
    String::from_utf8(bytes).ok()
}

/// Reads the early-boot facts. Unreadable files count as absent: these checks only advise.
pub fn gather(root: &HostRoot, inventory: &Inventory) -> BootFacts {
    let mut facts = BootFacts {
        framebuffers: read(root, "proc/iomem")
            .map(|t| framebuffers(&parse_iomem(&t)))
            .unwrap_or_default(),
        ..BootFacts::default()
    };
    if !facts.framebuffers.is_empty() {
        facts.bars = device_bars(root, inventory);
        for name in dir_names(&root.join("sys/class/vtconsole")) {
            let attr = |a: &str| read(root, &format!("sys/class/vtconsole/{name}/{a}"));
            facts.vtconsoles.push(VtConsole {
                driver: attr("name").unwrap_or_default().trim().to_owned(),
                bound: attr("bind").is_some_and(|b| b.trim() == "1"),
                name,
            });
        }
    }
    for rel in MODULE_FILES {
        if let Some(t) = read(root, rel) {
            facts.module_configs.push((format!("/{rel}"), t));
        }
    }
    for dir in MODULE_DIRS {
        for name in dir_names(&root.join(dir)) {
            let rel = format!("{dir}/{name}");
            if name.ends_with(".conf")
                && let Some(t) = read(root, &rel)
            {
                facts.module_configs.push((format!("/{rel}"), t));
            }
        }
    }
    facts
}

/// The memory BARs of every device, from its `resource` file.
pub fn device_bars(
    root: &HostRoot,
    inventory: &Inventory,
) -> BTreeMap<vfioctl_core::PciAddress, Vec<(usize, u64, u64)>> {
    inventory
        .devices()
        .iter()
        .filter_map(|d| {
            let text =
                std::fs::read_to_string(root.pci_device(&d.address).join("resource")).ok()?;
            Some((d.address, parse_resource(&text)))
        })
        .collect()
}

/// For `bind`: a sentence for each device among `devices` whose BAR holds the boot framebuffer
/// (what is wrong, then what to do), so that the user hears it before vfio-pci fails to open it.
pub fn framebuffer_warnings(
    root: &HostRoot,
    devices: impl IntoIterator<Item = vfioctl_core::PciAddress>,
) -> Vec<String> {
    let devices: Vec<vfioctl_core::PciAddress> = devices.into_iter().collect();
    if devices.is_empty() {
        return Vec::new();
    }
    let fbs = read(root, "proc/iomem")
        .map(|t| framebuffers(&parse_iomem(&t)))
        .unwrap_or_default();
    if fbs.is_empty() {
        return Vec::new();
    }
    let bars = devices
        .into_iter()
        .filter_map(|a| {
            let text = std::fs::read_to_string(root.pci_device(&a).join("resource")).ok()?;
            Some((a, parse_resource(&text)))
        })
        .collect();
    vfioctl_core::boot::checks::framebuffer_conflicts(&fbs, &bars)
        .iter()
        .map(|c| format!("{}; {}", c.message(), c.remedy()))
        .collect()
}
