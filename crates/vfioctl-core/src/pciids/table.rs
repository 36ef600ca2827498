//! The parsed database: names in one arena, indexed by sorted tables, and the lookups by ID.

use std::ops::Range;

use crate::ids::{ClassCode, VendorDevice};

/// A name stored in the arena: byte offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) start: u32,
    pub(super) len: u32,
}

/// An entry with a 16-bit ID (vendor, device) and the range of its children in the next table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Node<K> {
    pub(super) id: K,
    pub(super) name: Span,
    pub(super) children: Range<u32>,
}

/// A subsystem entry: subsystem vendor and device, and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Subsystem {
    pub(super) id: (u16, u16),
    pub(super) name: Span,
}

/// A parsed `pci.ids` database, or the part of it [`PciIds::parse_for`] kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PciIds {
    /// Every kept name, back to back.
    pub(super) names: String,
    pub(super) vendors: Vec<Node<u16>>,
    pub(super) devices: Vec<Node<u16>>,
    pub(super) subsystems: Vec<Subsystem>,
    pub(super) classes: Vec<Node<u8>>,
    pub(super) subclasses: Vec<Node<u8>>,
    pub(super) prog_ifs: Vec<Node<u8>>,
}

impl PciIds {
    pub(super) fn name(&self, span: Span) -> &str {
        let start = span.start as usize;
        self.names
            .get(start..start + span.len as usize)
            .unwrap_or_default()
    }

    /// The name of a vendor (`168c` → `Qualcomm Atheros`).
    pub fn vendor_name(&self, vendor: u16) -> Option<&str> {
        find(&self.vendors, vendor).map(|v| self.name(v.name))
    }

    /// The name of a device (`168c:003e` → `QCA6174 802.11ac Wireless Network Adapter`), without
    /// the vendor name.
    pub fn device_name(&self, vendor: u16, device: u16) -> Option<&str> {
        self.device(vendor, device).map(|d| self.name(d.name))
    }

    /// The name of a subsystem (a board built around a device), looked up like lspci does: the
    /// subsystem entry under the device, else the device itself when the subsystem IDs repeat the
    /// device IDs.
    pub fn subsystem_name(&self, id: VendorDevice, subsystem: VendorDevice) -> Option<&str> {
        let found = self.device(id.vendor, id.device).and_then(|d| {
            let list = self.subsystems.get(range(&d.children))?;
            let key = (subsystem.vendor, subsystem.device);
            let at = list.partition_point(|s| s.id < key);
            list.get(at).filter(|s| s.id == key)
        });
        match found {
            Some(s) => Some(self.name(s.name)),
            None if id == subsystem => self.device_name(id.vendor, id.device),
            None => None,
        }
    }

    /// The most specific name of a class code: its programming interface, else its subclass, else
    /// its base class (`0x0c0330` → `XHCI`, `0x028000` → `Network controller`).
    pub fn class_name(&self, class: ClassCode) -> Option<&str> {
        self.prog_if_name(class)
            .or_else(|| self.subclass_name(class))
            .or_else(|| self.base_class_name(class))
    }

    /// The name lspci shows on a device line: the subclass, else the base class; lspci never puts
    /// the programming interface there (`-v` prints it separately as `prog-if`).
    pub fn subclass_or_class_name(&self, class: ClassCode) -> Option<&str> {
        self.subclass_name(class)
            .or_else(|| self.base_class_name(class))
    }

    /// The name of the base class only (`0x02....` → `Network controller`).
    pub fn base_class_name(&self, class: ClassCode) -> Option<&str> {
        find(&self.classes, class.base()).map(|c| self.name(c.name))
    }

    /// The name of the subclass only (`0x0300..` → `VGA compatible controller`).
    pub fn subclass_name(&self, class: ClassCode) -> Option<&str> {
        self.subclass(class).map(|s| self.name(s.name))
    }

    /// The name of the programming interface only (`0x0c0330` → `XHCI`).
    pub fn prog_if_name(&self, class: ClassCode) -> Option<&str> {
        let subclass = self.subclass(class)?;
        let list = self.prog_ifs.get(range(&subclass.children))?;
        find(list, class.prog_if()).map(|p| self.name(p.name))
    }

    /// Number of vendors kept.
    pub fn vendor_count(&self) -> usize {
        self.vendors.len()
    }

    /// Number of devices kept, over all vendors.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// True when nothing was parsed (no vendors and no classes), e.g. an empty or foreign file.
    pub fn is_empty(&self) -> bool {
        self.vendors.is_empty() && self.classes.is_empty()
    }

    pub(super) fn device(&self, vendor: u16, device: u16) -> Option<&Node<u16>> {
        let v = find(&self.vendors, vendor)?;
        find(self.devices.get(range(&v.children))?, device)
    }

    pub(super) fn subclass(&self, class: ClassCode) -> Option<&Node<u8>> {
        let c = find(&self.classes, class.base())?;
        find(self.subclasses.get(range(&c.children))?, class.subclass())
    }
}

pub(super) fn range(r: &Range<u32>) -> Range<usize> {
    r.start as usize..r.end as usize
}

/// The first node with `id` in a sorted slice.
pub(super) fn find<K: Ord + Copy>(nodes: &[Node<K>], id: K) -> Option<&Node<K>> {
    let at = nodes.partition_point(|n| n.id < id);
    nodes.get(at).filter(|n| n.id == id)
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{FIXTURE, vd};
    use super::*;

    #[test]
    fn names_vendors_and_devices() {
        let ids = PciIds::parse(FIXTURE);
        assert_eq!(ids.vendor_name(0x168c), Some("Qualcomm Atheros"));
        assert_eq!(
            ids.device_name(0x168c, 0x003e),
            Some("QCA6174 802.11ac Wireless Network Adapter")
        );
        assert_eq!(ids.device_name(0x1ac1, 0x089a), Some("Coral Edge TPU"));
        assert_eq!(ids.device_name(0xc0a9, 0x2263), Some("P1 NVMe PCIe SSD"));
        assert_eq!(
            ids.device_name(0x10de, 0x22ba),
            Some("AD102 High Definition Audio Controller")
        );
        assert_eq!(ids.device_name(0x1957, 0x80c0), None);
        assert_eq!(ids.vendor_name(0xffff), None);
    }

    #[test]
    fn subsystem_names_come_from_the_device_entry() {
        let ids = PciIds::parse(FIXTURE);
        assert_eq!(
            ids.subsystem_name(vd("168c:003e"), vd("1a56:1535")),
            Some("Killer Wireless-n/a/ac 1535 Wireless Network Adapter")
        );
        assert_eq!(
            ids.subsystem_name(vd("8086:1533"), vd("8086:0001")),
            Some("Ethernet Server Adapter I210-T1")
        );
        assert_eq!(ids.subsystem_name(vd("8086:1533"), vd("8086:0002")), None);
    }

    #[test]
    fn subsystem_equal_to_device_falls_back_to_device_name() {
        let ids = PciIds::parse(FIXTURE);
        assert_eq!(
            ids.subsystem_name(vd("1ac1:089a"), vd("1ac1:089a")),
            Some("Coral Edge TPU")
        );
    }

    #[test]
    fn class_name_is_most_specific() {
        let ids = PciIds::parse(FIXTURE);
        assert_eq!(ids.class_name(ClassCode(0x0c0330)), Some("XHCI"));
        assert_eq!(
            ids.class_name(ClassCode(0x0c0300)),
            Some("USB controller"),
            "unknown prog-if falls back to the subclass"
        );
        assert_eq!(
            ids.class_name(ClassCode(0x087700)),
            Some("Generic system peripheral"),
            "unknown subclass falls back to the class"
        );
        assert_eq!(ids.class_name(ClassCode(0xff0000)), None);
    }

    #[test]
    fn device_line_never_shows_prog_if() {
        let ids = PciIds::parse(FIXTURE);
        assert_eq!(
            ids.subclass_or_class_name(ClassCode(0x0c0330)),
            Some("USB controller")
        );
    }
}
