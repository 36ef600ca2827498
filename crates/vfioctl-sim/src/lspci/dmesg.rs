//! Reads the PCI enumeration of a kernel log (`dmesg`) into a [`Capture`]: the lines
//! `pci_setup_device()` prints (`pci 0000:00:01.1: [1022:14db] type 01 class 0x060400 PCIe Root
//! Port`), the bridges' bus ranges (`PCI bridge to [bus 01-03]`) and the IOMMU's `Adding to iommu
//! group N`. Timestamps and the one-character prefixes of a pasted `diff` are skipped, and so is
//! every line that is not about a PCI function. A log shows no capabilities, so ACS stays unknown
//! and every function says so in [`Capture::inferred`].

use std::collections::BTreeMap;

use vfioctl_core::PciAddress;
use vfioctl_core::config::PcieType;

use super::{Capture, CaptureError, CapturedDevice, address, bracket_id, err, hex};

/// The port types `pci_type_str()` prints after the class (kernels from 6.9 on; older ones
/// print none).
const TYPE_NAMES: &[(&str, Option<PcieType>)] = &[
    ("conventional PCI endpoint", None),
    ("conventional PCI bridge", None),
    ("conventional PCI CardBus bridge", None),
    ("PCIe Endpoint", Some(PcieType::Endpoint)),
    ("PCIe Legacy Endpoint", Some(PcieType::LegacyEndpoint)),
    ("PCIe Root Port", Some(PcieType::RootPort)),
    ("PCIe Switch Upstream Port", Some(PcieType::Upstream)),
    ("PCIe Switch Downstream Port", Some(PcieType::Downstream)),
    ("PCIe to PCI/PCI-X bridge", Some(PcieType::PcieToPciBridge)),
    ("PCI/PCI-X to PCIe bridge", Some(PcieType::PciToPcieBridge)),
    (
        "PCIe Root Complex Integrated Endpoint",
        Some(PcieType::RcEndpoint),
    ),
    (
        "PCIe Root Complex Event Collector",
        Some(PcieType::RcEventCollector),
    ),
];

/// The text after `pci ` with its address, or `None` for a line about something else.
fn pci_line(raw: &str) -> Option<&str> {
    let mut text = raw.trim_end();
    // A pasted `diff -U`: one column of ' ', '+' or '-'.
    if let Some(rest) = text.strip_prefix([' ', '+', '-']) {
        text = rest;
    }
    let mut text = text.trim_start();
    if text.starts_with('[')
        && let Some(end) = text.find(']')
    {
        text = text[end + 1..].trim_start();
    }
    text.strip_prefix("pci ")
}

/// `[vvvv:dddd] type TT class 0xCCCCCC [port type]`.
fn enumeration(dev: &mut CapturedDevice, text: &str, line: usize) -> Result<(), CaptureError> {
    dev.id = Some(bracket_id(text).ok_or_else(|| err(line, "no [vendor:device] ID"))?);
    let after = text.split_once("] ").map_or("", |(_, r)| r);
    let mut words = after.split_whitespace();
    let header = match (words.next(), words.next()) {
        (Some("type"), Some(t)) => hex::<u8>(t)
            .filter(|h| *h <= 2)
            .ok_or_else(|| err(line, format!("'{t}' is not a header type (00, 01 or 02)")))?,
        _ => return Err(err(line, "no 'type NN' after the ID")),
    };
    let class = match (words.next(), words.next()) {
        (Some("class"), Some(c)) => c
            .strip_prefix("0x")
            .filter(|c| c.len() == 6)
            .and_then(hex::<u32>)
            .ok_or_else(|| err(line, format!("'{c}' is not a class (0xCCSSPP)")))?,
        _ => return Err(err(line, "no 'class 0x......' after the header type")),
    };
    let rest: Vec<&str> = words.collect();
    let rest = rest.join(" ");
    dev.pcie = if rest.is_empty() {
        None
    } else {
        TYPE_NAMES
            .iter()
            .find(|(n, _)| *n == rest)
            .map(|(_, t)| *t)
            .ok_or_else(|| err(line, format!("unknown port type '{rest}'")))?
    };
    dev.caps_visible = !rest.is_empty();
    dev.class = u16::try_from(class >> 8).ok();
    dev.prog_if = u8::try_from(class & 0xff).ok();
    if header != 0 {
        dev.class_name = "PCI bridge".to_owned();
    }
    Ok(())
}

/// `[bus BB]` or `[bus BB-SS]`.
fn bus_range(text: &str, line: usize) -> Result<(u8, u8), CaptureError> {
    let inner = text
        .strip_prefix("[bus ")
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(|| err(line, format!("'{text}' is not a bus range ([bus BB-SS])")))?;
    let (s, e) = inner.split_once('-').unwrap_or((inner, inner));
    match (hex::<u8>(s), hex::<u8>(e)) {
        (Some(s), Some(e)) if s <= e => Ok((s, e)),
        _ => Err(err(line, format!("'{inner}' is not a bus range"))),
    }
}

/// Reads a kernel log. A line that starts like the kernel's own (`pci ADDRESS: `) but is cut or
/// edited where vfioctl reads it is an error naming the line.
pub fn parse_dmesg(text: &str) -> Result<Capture, CaptureError> {
    let mut devices: BTreeMap<PciAddress, CapturedDevice> = BTreeMap::new();
    let mut order: Vec<PciAddress> = Vec::new();
    let mut mentioned: Vec<(PciAddress, usize)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let Some(text) = pci_line(raw) else { continue };
        let Some((addr, what)) = text.split_once(": ") else {
            continue;
        };
        let a = address(addr).ok_or_else(|| err(line, format!("'{addr}' is not a PCI address")))?;
        if what.starts_with('[') && what.contains(" type ") {
            let dev = devices.entry(a).or_default();
            if dev.id.is_some() {
                // Enumerated again (a rescan, or both sides of a diff): the first one counts.
                continue;
            }
            dev.address = Some(a);
            dev.line = line;
            enumeration(dev, what, line)?;
            order.push(a);
        } else if let Some(range) = what.strip_prefix("PCI bridge to ") {
            let (secondary, subordinate) = bus_range(range.trim(), line)?;
            let dev = devices.entry(a).or_default();
            dev.secondary = Some(secondary);
            dev.subordinate = Some(subordinate);
            mentioned.push((a, line));
        } else if let Some(g) = what.strip_prefix("Adding to iommu group ") {
            let group = g
                .trim()
                .parse()
                .map_err(|_| err(line, format!("'{}' is not a group number", g.trim())))?;
            devices.entry(a).or_default().group = Some(group);
            mentioned.push((a, line));
        }
    }
    if let Some((a, line)) = mentioned
        .iter()
        .find(|(a, _)| devices.get(a).is_none_or(|d| d.id.is_none()))
    {
        return Err(err(
            *line,
            format!(
                "{a} is never enumerated in this log (cut before its '[vendor:device] type' line?)"
            ),
        ));
    }
    let mut inferred = Vec::new();
    let mut out = Vec::new();
    for a in order {
        let Some(dev) = devices.remove(&a) else {
            continue;
        };
        inferred.push(format!(
            "{a}: a kernel log shows no capabilities: ACS unknown, taken as absent"
        ));
        out.push(dev);
    }
    if out.is_empty() {
        return Err(err(
            text.lines().count().max(1),
            "no PCI enumeration lines ('pci ADDRESS: [vvvv:dddd] type NN class 0x...')",
        ));
    }
    Ok(Capture {
        devices: out,
        inferred,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
[    0.131754] pci 000c:00:00.0: [1def:e100] type 00 class 0x060000 conventional PCI endpoint
[    0.131856] pci 000c:00:01.0: [1def:e101] type 01 class 0x060400 PCIe Root Port
[    0.131868] pci 000c:00:01.0: PCI bridge to [bus 01-02]
[    0.131900] usb 1-1: new device
 pci 000c:01:00.0: [1002:7480] type 00 class 0x030000 PCIe Legacy Endpoint
[    0.476185] pci 000c:00:00.0: Adding to iommu group 0
[    0.476220] pci 000c:00:01.0: Adding to iommu group 1
+pci 000c:01:00.0: Adding to iommu group 1
";

    #[test]
    fn reads_enumeration_bus_ranges_and_groups() {
        let c = parse_dmesg(LOG).unwrap();
        assert_eq!(c.devices.len(), 3);
        let rp = &c.devices[1];
        assert_eq!(rp.pcie, Some(PcieType::RootPort));
        assert_eq!((rp.secondary, rp.subordinate), (Some(1), Some(2)));
        assert_eq!(rp.group, Some(1));
        assert_eq!(rp.class, Some(0x0604));
        assert_eq!(c.devices[0].pcie, None);
        assert_eq!(c.devices[2].group, Some(1));
        assert!(c.inferred.iter().all(|i| i.contains("ACS unknown")));
    }

    #[test]
    fn cut_or_edited_lines_name_their_line() {
        let cut = LOG.replace("class 0x060400 PCIe Root Port", "class 0x0604");
        assert_eq!(parse_dmesg(&cut).unwrap_err().line, 2);
        let edited = LOG.replace("PCIe Legacy Endpoint", "PCIe Legacy Endpiont");
        let e = parse_dmesg(&edited).unwrap_err();
        assert_eq!(e.line, 5);
        assert!(e.to_string().contains("unknown port type"), "{e}");
        let group = LOG.replace("iommu group 0", "iommu group zero");
        assert_eq!(parse_dmesg(&group).unwrap_err().line, 6);
        let range = LOG.replace("[bus 01-02]", "[bus 02-01]");
        assert_eq!(parse_dmesg(&range).unwrap_err().line, 3);
        // The enumeration of a function that gets a group was cut away.
        let lost: String = LOG
            .lines()
            .filter(|l| !l.contains("7480"))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = parse_dmesg(&lost).unwrap_err();
        assert_eq!(e.line, 7, "{e}");
        assert!(parse_dmesg("nothing about PCI\n").is_err());
    }

    #[test]
    fn arbitrary_text_never_panics() {
        for text in [
            "pci ",
            "pci :",
            "pci 0000:00:00.0: [",
            "pci 0000:00:00.0: [1:2] type",
            "]pci x: y",
        ] {
            let _ = parse_dmesg(text);
        }
    }
}
