//! Vendor, device and class names from the host's pci.ids.

use std::path::{Path, PathBuf};

use vfioctl_core::pciids::PciIds;
use vfioctl_core::{Inventory, PciDevice};
use vfioctl_host::HostRoot;

/// Where distributions install pci.ids, in lspci's order of preference.
const DEFAULT_PATHS: &[&str] = &["usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids"];

/// Names for IDs; empty when no pci.ids was found (then IDs show as numbers, as lspci does).
#[derive(Debug, Default)]
pub(crate) struct Names {
    ids: PciIds,
}

impl Names {
    /// Loads the names the inventory needs from `explicit`, or from the host's default pci.ids.
    ///
    /// The default is looked up on the real `/` even under `--root`: a simulated or copied tree
    /// rarely carries its own database, and names do not change what vfioctl does.
    pub(crate) fn load(
        root: &HostRoot,
        explicit: Option<&Path>,
        inventory: &Inventory,
    ) -> Result<Self, String> {
        let candidates: Vec<PathBuf> = match explicit {
            Some(path) => vec![path.to_path_buf()],
            None => DEFAULT_PATHS
                .iter()
                .flat_map(|p| [root.join(p), Path::new("/").join(p)])
                .collect(),
        };
        for path in &candidates {
            match std::fs::read(path) {
                Ok(bytes) => {
                    // pci.ids is UTF-8: checking it so is several times faster than the lossy
                    // conversion, which is kept for a file that is not.
                    let text = String::from_utf8(bytes)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                    let ids = PciIds::parse_for(&text, &PciIds::vendors_of(inventory));
                    return Ok(Self { ids });
                }
                Err(e) if explicit.is_some() => {
                    return Err(format!(
                        "cannot read the pci.ids file {}: {e}",
                        path.display()
                    ));
                }
                Err(_) => {}
            }
        }
        Ok(Self::default())
    }

    /// Vendor name.
    pub(crate) fn vendor(&self, vendor: u16) -> Option<&str> {
        self.ids.vendor_name(vendor)
    }
    /// Device name.
    pub(crate) fn device(&self, vendor: u16, device: u16) -> Option<&str> {
        self.ids.device_name(vendor, device)
    }
    /// Class name, most specific known.
    pub(crate) fn class(&self, class: u32) -> Option<&str> {
        self.ids.class_name(vfioctl_core::ClassCode(class))
    }
    /// The `lspci -nn` description.
    pub(crate) fn describe(&self, dev: &PciDevice) -> String {
        self.ids.describe_device(dev).to_string()
    }
}
