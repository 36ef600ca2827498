//! Vendor, device and class names for display.

/// Names for IDs, from the host's pci.ids when one is available.
#[derive(Debug, Default)]
pub struct Names {}

impl Names {
    /// Vendor name.
    pub fn vendor(&self, _vendor: u16) -> Option<&str> {
        None
    }
    /// Device name.
    pub fn device(&self, _vendor: u16, _device: u16) -> Option<&str> {
        None
    }
    /// Class name, most specific known.
    pub fn class(&self, _class: u32) -> Option<&str> {
        None
    }
}
