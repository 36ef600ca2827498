//! The tolerant `pci.ids` parser: a malformed line is skipped, never an error.

use std::collections::BTreeSet;

use crate::device::Inventory;

use super::table::{Node, PciIds, Span, Subsystem, range};

/// Which block the parser is in; decides what indented lines mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    /// Before the first vendor, or after a line that ends any block.
    None,
    /// Inside a kept vendor block.
    Vendor,
    /// Inside a vendor block the caller did not ask for: indented lines are skipped unparsed.
    SkippedVendor,
    /// Inside a class block.
    Class,
}

/// Parses exactly `N` hex digits (no sign, unlike `from_str_radix`).
fn hex_exact<const N: usize>(bytes: &[u8]) -> Option<u32> {
    if bytes.len() != N {
        return None;
    }
    bytes.iter().try_fold(0u32, |acc, &b| {
        let digit = (b as char).to_digit(16)?;
        Some(acc << 4 | digit)
    })
}

/// Splits `ID<whitespace>Name` where the ID is `N` hex digits; `None` when malformed or the name
/// is empty.
fn id_and_name<const N: usize>(line: &str) -> Option<(u32, &str)> {
    let id = hex_exact::<N>(line.as_bytes().get(..N)?)?;
    let rest = line.get(N..)?;
    // The format separates ID and name with two spaces; accept any whitespace, but demand some,
    // so `10dex  Foo` is not read as vendor 10de.
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let name = rest.trim();
    (!name.is_empty()).then_some((id, name))
}

/// Converts a table length to the `u32` the index ranges use. The arena and tables stay far below
/// 4 GiB for any real database; beyond that, parsing stops adding entries instead of wrapping.
fn index(len: usize) -> Option<u32> {
    u32::try_from(len).ok()
}

impl PciIds {
    /// Parses a whole `pci.ids` text. Malformed lines are skipped; this never fails or panics.
    pub fn parse(text: &str) -> Self {
        Self::parse_filtered(text, None)
    }

    /// Parses only the vendors in `wanted_vendors` (plus the whole class section), which is what
    /// `vfioctl list` needs: a host has a dozen vendors out of the database's thousands.
    ///
    /// Subsystem names live under the *device's* vendor, so those are kept with it; to name a
    /// subsystem vendor (lspci's `Subsystem: Lenovo ...`), include it in `wanted_vendors` as
    /// well ([`PciIds::vendors_of`] does).
    pub fn parse_for(text: &str, wanted_vendors: &BTreeSet<u16>) -> Self {
        Self::parse_filtered(text, Some(wanted_vendors))
    }

    /// The vendor IDs needed to name every device of an inventory: device and subsystem vendors.
    pub fn vendors_of(inventory: &Inventory) -> BTreeSet<u16> {
        inventory
            .devices()
            .iter()
            .flat_map(|d| [Some(d.id.vendor), d.subsystem.map(|s| s.vendor)])
            .flatten()
            .collect()
    }

    fn parse_filtered(text: &str, wanted: Option<&BTreeSet<u16>>) -> Self {
        let mut ids = Self::default();
        let mut section = Section::None;
        for line in lines(text) {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let bytes = line.as_bytes();
            match bytes.first() {
                // Comments sit inside vendor blocks in the real file, so they do not end a block.
                None | Some(b'#') => continue,
                Some(b'\t') => {
                    // The common case when filtering: thousands of device lines of vendors we do
                    // not want, dropped after looking at one byte.
                    if section == Section::SkippedVendor {
                        continue;
                    }
                    if bytes.get(1) == Some(&b'\t') {
                        ids.child2(section, &line[2..]);
                    } else {
                        ids.child1(section, &line[1..]);
                    }
                }
                Some(b'C') if bytes.get(1) == Some(&b' ') => {
                    section = match id_and_name::<2>(&line[2..]) {
                        Some((id, name)) if ids.push_class(id as u8, name) => Section::Class,
                        _ => Section::None,
                    };
                }
                Some(_) => {
                    section = match id_and_name::<4>(line) {
                        Some((id, _)) if wanted.is_some_and(|w| !w.contains(&(id as u16))) => {
                            Section::SkippedVendor
                        }
                        Some((id, name)) if ids.push_vendor(id as u16, name) => Section::Vendor,
                        // An unknown top-level line (a future section, garbage) ends the block so
                        // its indented lines are not filed under the previous vendor.
                        _ => Section::None,
                    };
                }
            }
        }
        ids.sort();
        ids
    }

    /// Copies `name` into the arena.
    fn intern(&mut self, name: &str) -> Option<Span> {
        let start = index(self.names.len())?;
        let len = index(name.len())?;
        index(self.names.len().checked_add(name.len())?)?;
        self.names.push_str(name);
        Some(Span { start, len })
    }

    fn push_vendor(&mut self, id: u16, name: &str) -> bool {
        let (Some(name), Some(at)) = (self.intern(name), index(self.devices.len())) else {
            return false;
        };
        self.vendors.push(Node {
            id,
            name,
            children: at..at,
        });
        true
    }

    fn push_class(&mut self, id: u8, name: &str) -> bool {
        let (Some(name), Some(at)) = (self.intern(name), index(self.subclasses.len())) else {
            return false;
        };
        self.classes.push(Node {
            id,
            name,
            children: at..at,
        });
        true
    }

    /// A line with one tab: a device of the current vendor or a subclass of the current class.
    fn child1(&mut self, section: Section, line: &str) {
        match section {
            Section::Vendor => {
                let Some((id, name)) = id_and_name::<4>(line) else {
                    return;
                };
                let (Some(name), Some(at)) = (self.intern(name), index(self.subsystems.len()))
                else {
                    return;
                };
                let device = Node {
                    id: id as u16,
                    name,
                    children: at..at,
                };
                push_child(&mut self.vendors, &mut self.devices, device);
            }
            Section::Class => {
                let Some((id, name)) = id_and_name::<2>(line) else {
                    return;
                };
                let (Some(name), Some(at)) = (self.intern(name), index(self.prog_ifs.len())) else {
                    return;
                };
                let subclass = Node {
                    id: id as u8,
                    name,
                    children: at..at,
                };
                push_child(&mut self.classes, &mut self.subclasses, subclass);
            }
            Section::None | Section::SkippedVendor => {}
        }
    }

    /// A line with two tabs: a subsystem of the current device or a programming interface of the
    /// current subclass. Ignored when there is no current device or subclass.
    fn child2(&mut self, section: Section, line: &str) {
        match section {
            Section::Vendor => {
                // Only when the current vendor has a device: otherwise the line would land under
                // the previous vendor's last device.
                if self.vendors.last().is_none_or(|v| v.children.is_empty()) {
                    return;
                }
                let b = line.as_bytes();
                let (Some(subvendor), Some(b' ' | b'\t')) =
                    (b.get(..4).and_then(hex_exact::<4>), b.get(4))
                else {
                    return;
                };
                let Some((subdevice, name)) = line.get(5..).and_then(id_and_name::<4>) else {
                    return;
                };
                let Some(name) = self.intern(name) else {
                    return;
                };
                let subsystem = Subsystem {
                    id: (subvendor as u16, subdevice as u16),
                    name,
                };
                push_child(&mut self.devices, &mut self.subsystems, subsystem);
            }
            Section::Class => {
                if self.classes.last().is_none_or(|c| c.children.is_empty()) {
                    return;
                }
                let Some((id, name)) = id_and_name::<2>(line) else {
                    return;
                };
                let Some(name) = self.intern(name) else {
                    return;
                };
                let prog_if = Node {
                    id: id as u8,
                    name,
                    children: 0..0,
                };
                push_child(&mut self.subclasses, &mut self.prog_ifs, prog_if);
            }
            Section::None | Section::SkippedVendor => {}
        }
    }

    /// Sorts every table by ID so lookups can binary-search. The real file is sorted already, so
    /// this is a linear check there; a stable sort keeps the first of duplicate IDs first, and
    /// lookups return that one.
    fn sort(&mut self) {
        sort_nodes(&mut self.vendors);
        sort_nodes(&mut self.classes);
        for v in &self.vendors {
            if let Some(devices) = self.devices.get_mut(range(&v.children)) {
                sort_nodes(devices);
            }
        }
        for c in &self.classes {
            if let Some(subclasses) = self.subclasses.get_mut(range(&c.children)) {
                sort_nodes(subclasses);
            }
        }
        for d in &self.devices {
            if let Some(subsystems) = self.subsystems.get_mut(range(&d.children))
                && !subsystems.is_sorted_by_key(|s| s.id)
            {
                subsystems.sort_by_key(|s| s.id);
            }
        }
        for s in &self.subclasses {
            if let Some(prog_ifs) = self.prog_ifs.get_mut(range(&s.children)) {
                sort_nodes(prog_ifs);
            }
        }
    }
}

/// Appends `child` to `children` as the last child of the last of `parents`; nothing when there
/// is no parent, or when the table has outgrown the `u32` indices.
fn push_child<P, C>(parents: &mut [Node<P>], children: &mut Vec<C>, child: C) {
    let (Some(parent), Some(end)) = (parents.last_mut(), index(children.len() + 1)) else {
        return;
    };
    children.push(child);
    parent.children.end = end;
}

fn sort_nodes<K: Ord + Copy>(nodes: &mut [Node<K>]) {
    if !nodes.is_sorted_by_key(|n| n.id) {
        nodes.sort_by_key(|n| n.id);
    }
}

/// The lines of `text`, split where memchr finds each `\n` (vectorised: pci.ids has about
/// 40,000 lines, most of them of vendors the host does not have).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', text.as_bytes())
        .chain(std::iter::once(text.len()))
        .map(move |end| {
            // `\n` is ASCII, so both ends are character boundaries.
            let line = &text[start..end];
            start = end + 1;
            line
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::super::fixture::{FIXTURE, vd};
    use super::*;
    use crate::device::PciDevice;
    use crate::ids::{ClassCode, VendorDevice};

    #[test]
    fn comment_inside_vendor_block_keeps_the_vendor() {
        let ids = PciIds::parse(FIXTURE);
        assert_eq!(
            ids.device_name(0x1b4b, 0x9230),
            Some("88SE9230 PCIe 2.0 x2 4-port SATA 6 Gb/s RAID Controller")
        );
    }

    #[test]
    fn lines_under_a_malformed_vendor_are_dropped() {
        let ids = PciIds::parse(FIXTURE);
        // `zzzz` is not a vendor, so `dead` must not become a device of c0a9 (the vendor before).
        assert_eq!(ids.device_name(0xc0a9, 0xdead), None);
        assert_eq!(ids.device_count(), 9);
    }

    #[test]
    fn filtered_parse_keeps_only_wanted_vendors_and_all_classes() {
        let wanted = BTreeSet::from([0x168c, 0x8086]);
        let ids = PciIds::parse_for(FIXTURE, &wanted);
        assert_eq!(ids.vendor_count(), 2);
        assert_eq!(ids.vendor_name(0x10de), None);
        assert_eq!(ids.device_name(0x10de, 0x2684), None);
        assert_eq!(
            ids.device_name(0x8086, 0x1533),
            Some("I210 Gigabit Network Connection")
        );
        assert_eq!(
            ids.subsystem_name(vd("168c:003e"), vd("1a56:1535")),
            Some("Killer Wireless-n/a/ac 1535 Wireless Network Adapter")
        );
        assert_eq!(ids.class_name(ClassCode(0x010802)), Some("NVM Express"));
    }

    #[test]
    fn skipped_vendor_subsystems_do_not_leak_into_the_previous_device() {
        // 8086 is wanted, 10de is not: its subsystem line must not attach to 8086:1533.
        let text = "8086  Intel\n\t1533  I210\n10de  NVIDIA\n\t2684  AD102\n\t\t10de 167c  FE\n";
        let ids = PciIds::parse_for(text, &BTreeSet::from([0x8086]));
        assert_eq!(ids.subsystem_name(vd("8086:1533"), vd("10de:167c")), None);
    }

    #[test]
    fn unsorted_and_duplicate_entries_are_found_first_wins() {
        let text = "8086  Intel\n\t1533  B\n\t0001  A\n1234  X\n8086  Intel again\n";
        let ids = PciIds::parse(text);
        assert_eq!(ids.vendor_name(0x8086), Some("Intel"));
        assert_eq!(ids.device_name(0x8086, 0x0001), Some("A"));
        assert_eq!(ids.device_name(0x8086, 0x1533), Some("B"));
        assert_eq!(ids.vendor_name(0x1234), Some("X"));
    }

    #[test]
    fn crlf_and_tab_separators_are_tolerated() {
        let ids = PciIds::parse("168c\tQualcomm Atheros\r\n\t003e  QCA6174\r\n");
        assert_eq!(ids.vendor_name(0x168c), Some("Qualcomm Atheros"));
        assert_eq!(ids.device_name(0x168c, 0x003e), Some("QCA6174"));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let text = "+8086  signed\n8086x  long\n808  short\n8086\n8086  \n\t\t8086 0001  orphan\n\
                    C zz  bad class\n\tff  orphan subclass\nC 02\n";
        let ids = PciIds::parse(text);
        assert!(ids.is_empty(), "{ids:?}");
    }

    #[test]
    fn inventory_vendors_include_subsystem_vendors() {
        let mut d = PciDevice::new(
            "0001:03:00.0".parse().unwrap(),
            vd("168c:003e"),
            ClassCode(0x028000),
        );
        d.subsystem = Some(vd("1a56:1535"));
        let inv = Inventory::new(vec![d], true, Default::default());
        assert_eq!(PciIds::vendors_of(&inv), BTreeSet::from([0x168c, 0x1a56]));
    }

    /// Against the host's real database (`apt-get install pci.ids`, or set `VFIOCTL_PCI_IDS`).
    /// Ignored by default: unit tests make no assumptions about the host (crosvm's rule).
    #[test]
    #[ignore = "reads the host's pci.ids; run with --ignored"]
    fn real_database_names_the_ten64_devices() {
        let path = std::env::var("VFIOCTL_PCI_IDS")
            .unwrap_or_else(|_| "/usr/share/misc/pci.ids".to_owned());
        let text = std::fs::read_to_string(&path).expect("pci.ids is readable");
        let ids = PciIds::parse(&text);
        assert!(ids.vendor_count() > 1000);
        assert_eq!(
            ids.describe(ClassCode(0x028000), vd("168c:003e"))
                .to_string(),
            "Network controller [0280]: Qualcomm Atheros QCA6174 802.11ac Wireless Network Adapter [168c:003e]"
        );
        let few = PciIds::parse_for(&text, &BTreeSet::from([0x168c, 0x1ac1]));
        assert_eq!(few.vendor_count(), 2);
        assert_eq!(few.device_name(0x1ac1, 0x089a), Some("Coral Edge TPU"));
        assert_eq!(few.class_name(ClassCode(0x0c0330)), Some("XHCI"));
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "(?s).{0,400}") {
            let ids = PciIds::parse(&text);
            let _ = ids.describe(ClassCode(0x020000), vd("1234:5678")).to_string();
        }

        #[test]
        fn pci_ids_shaped_text_never_panics(
            lines in proptest::collection::vec(
                "(#|C |\t|\t\t)?[0-9a-fA-FxX ]{0,10}[ \t]{0,3}[a-zé\\[\\] ]{0,8}", 0..40),
            vendor in any::<u16>(),
            device in any::<u16>(),
            class in 0u32..0x100_0000,
        ) {
            let text = lines.join("\n");
            let ids = PciIds::parse(&text);
            let id = VendorDevice { vendor, device };
            let _ = ids.describe(ClassCode(class), id).to_string();
            let _ = ids.subsystem_name(id, id);
            let _ = ids.class_name(ClassCode(class));
            let few = PciIds::parse_for(&text, &BTreeSet::from([vendor]));
            prop_assert!(few.vendor_count() <= ids.vendor_count());
        }
    }
}
