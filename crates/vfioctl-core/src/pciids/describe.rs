//! Devices described the way `lspci -nn` prints them.

use std::fmt;

use crate::device::PciDevice;
use crate::ids::{ClassCode, VendorDevice};

use super::table::PciIds;

impl PciIds {
    /// A line describing a device the way `lspci -nn` does; see [`Described`].
    pub fn describe(&self, class: ClassCode, id: VendorDevice) -> Described<'_> {
        Described {
            ids: self,
            class,
            id,
            revision: None,
        }
    }

    /// [`PciIds::describe`] for a device, with lspci's `(rev xx)` suffix.
    pub fn describe_device(&self, device: &PciDevice) -> Described<'_> {
        Described {
            revision: device.revision,
            ..self.describe(device.class, device.id)
        }
    }
}

/// A device described the way `lspci -nn` prints it after the address:
/// `Network controller [0280]: Qualcomm Atheros QCA6174 802.11ac Wireless Network Adapter [168c:003e]`.
///
/// Missing names fall back with lspci's own words (pciutils `lib/names.c`), so scripts and eyes
/// trained on lspci read it the same:
///
/// | known | rendered |
/// |---|---|
/// | class and subclass, or class only | `Network controller [0280]` |
/// | no class name | `Class [0280]` |
/// | vendor and device | `Qualcomm Atheros QCA6174 ... [168c:003e]` |
/// | vendor only | `Freescale Semiconductor Inc Device [1957:80c0]` |
/// | neither | `Device [1957:80c0]` |
///
/// A non-zero revision adds ` (rev 32)`; lspci omits revision 0 too. These fallbacks were checked
/// against lspci 3.9.0 run with `-i` on an empty and a vendor-only database, and the full
/// rendering matched `lspci -nn -D` line for line on a host with the real database.
#[derive(Debug, Clone, Copy)]
pub struct Described<'a> {
    ids: &'a PciIds,
    class: ClassCode,
    id: VendorDevice,
    revision: Option<u8>,
}

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class4 = (self.class.0 >> 8) & 0xffff;
        match self.ids.subclass_or_class_name(self.class) {
            Some(name) => write!(f, "{name} [{class4:04x}]: ")?,
            None => write!(f, "Class [{class4:04x}]: ")?,
        }
        let VendorDevice { vendor, device } = self.id;
        match (
            self.ids.vendor_name(vendor),
            self.ids.device_name(vendor, device),
        ) {
            (Some(v), Some(d)) => write!(f, "{v} {d}")?,
            (Some(v), None) => write!(f, "{v} Device")?,
            (None, _) => f.write_str("Device")?,
        }
        write!(f, " [{vendor:04x}:{device:04x}]")?;
        if let Some(rev) = self.revision.filter(|&r| r != 0) {
            write!(f, " (rev {rev:02x})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{FIXTURE, vd};
    use super::*;
    use crate::device::PciDevice;

    #[test]
    fn describes_like_lspci_nn() {
        let ids = PciIds::parse(FIXTURE);
        assert_eq!(
            ids.describe(ClassCode(0x028000), vd("168c:003e"))
                .to_string(),
            "Network controller [0280]: Qualcomm Atheros QCA6174 802.11ac Wireless Network Adapter [168c:003e]"
        );
        assert_eq!(
            ids.describe(ClassCode(0x030000), vd("10de:2684"))
                .to_string(),
            "VGA compatible controller [0300]: NVIDIA Corporation AD102 [GeForce RTX 4090] [10de:2684]"
        );
    }

    #[test]
    fn describe_falls_back_with_lspci_words() {
        let ids = PciIds::parse(FIXTURE);
        assert_eq!(
            ids.describe(ClassCode(0x060400), vd("1957:80c0"))
                .to_string(),
            "PCI bridge [0604]: Freescale Semiconductor Inc Device [1957:80c0]"
        );
        assert_eq!(
            ids.describe(ClassCode(0x087700), vd("1ac1:089a"))
                .to_string(),
            "Generic system peripheral [0877]: Global Unichip Corp. Coral Edge TPU [1ac1:089a]"
        );
        assert_eq!(
            ids.describe(ClassCode(0xff0000), vd("abcd:0001"))
                .to_string(),
            "Class [ff00]: Device [abcd:0001]"
        );
    }

    #[test]
    fn describe_device_adds_nonzero_revision() {
        let ids = PciIds::parse(FIXTURE);
        let mut d = PciDevice::new(
            "0001:03:00.0".parse().unwrap(),
            vd("168c:003e"),
            ClassCode(0x028000),
        );
        d.revision = Some(0x32);
        assert!(
            ids.describe_device(&d)
                .to_string()
                .ends_with("[168c:003e] (rev 32)")
        );
        d.revision = Some(0);
        assert!(ids.describe_device(&d).to_string().ends_with("[168c:003e]"));
    }

    #[test]
    fn empty_database_describes_numerically() {
        let ids = PciIds::parse("");
        assert!(ids.is_empty());
        assert_eq!(
            ids.describe(ClassCode(0x010802), vd("c0a9:2263"))
                .to_string(),
            "Class [0108]: Device [c0a9:2263]"
        );
    }

    #[test]
    fn ten64_inventory_reads_like_lspci_nn() {
        let ids = PciIds::parse(FIXTURE);
        let inv = crate::render::tests::ten64();
        let text: Vec<String> = inv
            .devices()
            .iter()
            .map(|d| format!("{} {}", d.address, ids.describe_device(d)))
            .collect();
        insta::assert_snapshot!(text.join("\n"));
    }
}
