//! Turns a real machine's `lspci` capture into simulated devices, with only what it shows.
//!
//! Reads the output of `lspci -vv`, `-vvv`, `-vvnn`, `-PP` (device paths) and `-x`/`-xxx`/`-xxxx`
//! (hex dumps), as people paste it into bug reports: mail-wrapped lines are joined, unknown
//! indented lines are skipped. What the capture leaves out and the importer has to guess (IDs
//! from names, a multifunction bit from siblings, a parent from bus ranges) is listed in
//! [`Capture::inferred`]. Anything that cannot be lspci's own output (a broken address, a hex
//! dump with a bad byte, an unknown port type) is an error naming the line.

use std::collections::BTreeMap;

use vfioctl_core::config::PcieType;
use vfioctl_core::{PciAddress, VendorDevice};

mod dmesg;
mod import;

pub use dmesg::parse_dmesg;
pub use import::{ImportOptions, Imported, builder, import};

/// Why a capture cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct CaptureError {
    /// 1-based line number in the capture.
    pub line: usize,
    /// What is wrong there.
    pub message: String,
}

/// One function as the capture shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturedDevice {
    /// Its address.
    pub address: Option<PciAddress>,
    /// Line of its header.
    pub line: usize,
    /// The upstream bridge named by a `-PP` path.
    pub path_parent: Option<PciAddress>,
    /// Vendor and device ID, when `-nn` printed them (or a dump has them).
    pub id: Option<VendorDevice>,
    /// Subsystem IDs.
    pub subsystem: Option<VendorDevice>,
    /// The class name lspci printed.
    pub class_name: String,
    /// The rest of the header line (vendor and device names).
    pub names: String,
    /// 16-bit class from `-nn`.
    pub class: Option<u16>,
    /// Programming interface.
    pub prog_if: Option<u8>,
    /// Revision.
    pub revision: Option<u8>,
    /// PCI Express port type.
    pub pcie: Option<PcieType>,
    /// Any capability line was shown (run as root, or capabilities visible).
    pub caps_visible: bool,
    /// ACS capability and control from the decoded text.
    pub acs: Option<(u16, u16)>,
    /// Secondary bus of a bridge (`Bus:` line).
    pub secondary: Option<u8>,
    /// Subordinate bus of a bridge.
    pub subordinate: Option<u8>,
    /// `IOMMU group: N`.
    pub group: Option<u32>,
    /// `Kernel driver in use`.
    pub driver: Option<String>,
    /// The hex dump, when there is one.
    pub dump: Vec<u8>,
}

/// A whole capture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    /// Every function, in capture order.
    pub devices: Vec<CapturedDevice>,
    /// What had to be guessed.
    pub inferred: Vec<String>,
}

fn err(line: usize, message: impl Into<String>) -> CaptureError {
    CaptureError {
        line,
        message: message.into(),
    }
}

fn hex<T: TryFrom<u32>>(text: &str) -> Option<T> {
    u32::from_str_radix(text, 16)
        .ok()
        .and_then(|v| T::try_from(v).ok())
}

/// `[dddd:]bb:dd.f`, the address lspci prints.
fn address(text: &str) -> Option<PciAddress> {
    let full = if text.matches(':').count() == 1 {
        format!("0000:{text}")
    } else {
        text.to_owned()
    };
    full.parse().ok()
}

/// True for a line that starts a device block: an address (or a `-PP` path) then a space.
fn header_address(line: &str) -> Option<&str> {
    let first = line.split(' ').next()?;
    let last = first.rsplit('/').next()?;
    let ok =
        last.len() >= 7 && last.as_bytes().get(last.len() - 2) == Some(&b'.') && last.contains(':');
    ok.then_some(first)
}

/// Hex-dump line `xx0: b0 b1 ... b15`.
fn dump_line(line: &str) -> Option<(usize, &str)> {
    let (off, rest) = line.split_once(": ")?;
    if off.is_empty() || off.len() > 3 || !off.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some((usize::from_str_radix(off, 16).ok()?, rest))
}

fn acs_flags(text: &str, line: usize) -> Result<u16, CaptureError> {
    let mut bits = 0;
    for token in text.split_whitespace() {
        let (name, on) = match token.strip_suffix('+') {
            Some(n) => (n, true),
            None => match token.strip_suffix('-') {
                Some(n) => (n, false),
                None => return Err(err(line, format!("ACS flag '{token}' has no + or -"))),
            },
        };
        let bit = match name {
            "SrcValid" => 0x01,
            "TransBlk" => 0x02,
            "ReqRedir" => 0x04,
            "CmpltRedir" => 0x08,
            "UpstreamFwd" => 0x10,
            "EgressCtrl" => 0x20,
            "DirectTrans" => 0x40,
            other => return Err(err(line, format!("unknown ACS flag '{other}'"))),
        };
        if on {
            bits |= bit;
        }
    }
    Ok(bits)
}

fn port_type(text: &str, line: usize) -> Result<PcieType, CaptureError> {
    let t = text.split([',', '(']).next().unwrap_or("").trim();
    Ok(match t {
        "Endpoint" => PcieType::Endpoint,
        "Legacy Endpoint" => PcieType::LegacyEndpoint,
        "Root Port" => PcieType::RootPort,
        "Upstream Port" => PcieType::Upstream,
        "Downstream Port" => PcieType::Downstream,
        "PCI-Express to PCI/PCI-X Bridge" => PcieType::PcieToPciBridge,
        "PCI/PCI-X to PCI-Express Bridge" => PcieType::PciToPcieBridge,
        "Root Complex Integrated Endpoint" => PcieType::RcEndpoint,
        "Root Complex Event Collector" => PcieType::RcEventCollector,
        other => {
            return Err(err(
                line,
                format!("unknown PCI Express port type '{other}'"),
            ));
        }
    })
}

/// The last `[vvvv:dddd]` in `text`.
fn bracket_id(text: &str) -> Option<VendorDevice> {
    let mut found = None;
    let mut rest = text;
    while let Some(start) = rest.find('[') {
        let after = &rest[start + 1..];
        let Some(end) = after.find(']') else { break };
        let inner = &after[..end];
        if inner.len() == 9
            && inner.is_ascii()
            && inner.as_bytes()[4] == b':'
            && let (Some(v), Some(d)) = (hex(&inner[..4]), hex(&inner[5..]))
        {
            found = Some(VendorDevice {
                vendor: v,
                device: d,
            });
        }
        rest = &after[end..];
    }
    found
}

fn parse_header(dev: &mut CapturedDevice, text: &str, line: usize) -> Result<(), CaptureError> {
    let (path, rest) = text.split_once(' ').unwrap_or((text, ""));
    let parts: Vec<&str> = path.split('/').collect();
    let domain_prefix = parts[0].matches(':').count() == 2;
    let full = |p: &str| -> Option<PciAddress> {
        if domain_prefix && p.matches(':').count() == 1 {
            address(&format!("{}:{p}", &parts[0][..parts[0].find(':')?]))
        } else {
            address(p)
        }
    };
    let last = parts.last().copied().unwrap_or("");
    dev.address =
        Some(full(last).ok_or_else(|| err(line, format!("'{last}' is not a PCI address")))?);
    if parts.len() > 1 {
        let p = parts[parts.len() - 2];
        dev.path_parent =
            Some(full(p).ok_or_else(|| err(line, format!("'{p}' is not a PCI address")))?);
    }
    let Some((class_part, names)) = rest.split_once(": ") else {
        return Err(err(line, "the device line has no class (truncated?)"));
    };
    dev.class_name = class_part.trim().to_owned();
    if let Some(open) = class_part.rfind('[') {
        dev.class_name = class_part[..open].trim().to_owned();
        let code = class_part[open + 1..].trim_end_matches(']');
        dev.class =
            Some(hex(code).ok_or_else(|| err(line, format!("'{code}' is not a class code")))?);
    }
    dev.id = bracket_id(names);
    if let Some(i) = names.find("(rev ") {
        let r = names[i + 5..].split(')').next().unwrap_or("");
        dev.revision = Some(hex(r).ok_or_else(|| err(line, format!("'{r}' is not a revision")))?);
    }
    if let Some(i) = names.find("(prog-if ") {
        let p = names[i + 9..].split([' ', ')']).next().unwrap_or("");
        dev.prog_if =
            Some(hex(p).ok_or_else(|| err(line, format!("'{p}' is not a programming interface")))?);
    }
    dev.names = names.split(['(']).next().unwrap_or(names).trim().to_owned();
    dev.line = line;
    Ok(())
}

fn parse_detail(dev: &mut CapturedDevice, text: &str, line: usize) -> Result<(), CaptureError> {
    if let Some(rest) = text.strip_prefix("Capabilities: ") {
        dev.caps_visible = true;
        if let Some(i) = rest.find("] Express (") {
            let after = &rest[i..];
            let t = after.split_once(") ").map_or("", |(_, t)| t);
            dev.pcie = Some(port_type(t, line)?);
        }
    } else if let Some(rest) = text.strip_prefix("ACSCap:") {
        let cap = acs_flags(rest, line)?;
        dev.acs = Some((cap, dev.acs.map_or(0, |a| a.1)));
    } else if let Some(rest) = text.strip_prefix("ACSCtl:") {
        let ctl = acs_flags(rest, line)?;
        let Some((cap, _)) = dev.acs else {
            return Err(err(line, "ACSCtl without ACSCap before it"));
        };
        dev.acs = Some((cap, ctl));
    } else if let Some(rest) = text.strip_prefix("Bus: ") {
        for field in rest.split(", ") {
            let (k, v) = field.split_once('=').unwrap_or((field, ""));
            let parsed =
                || hex::<u8>(v).ok_or_else(|| err(line, format!("'{field}' is not a bus number")));
            match k {
                "secondary" => dev.secondary = Some(parsed()?),
                "subordinate" => dev.subordinate = Some(parsed()?),
                _ => {}
            }
        }
    } else if let Some(rest) = text.strip_prefix("IOMMU group: ") {
        dev.group = Some(
            rest.trim()
                .parse()
                .map_err(|_| err(line, format!("'{rest}' is not a group number")))?,
        );
    } else if let Some(rest) = text.strip_prefix("Kernel driver in use: ") {
        dev.driver = Some(rest.trim().to_owned());
    } else if let Some(rest) = text.strip_prefix("Subsystem: ") {
        dev.subsystem = bracket_id(rest);
    }
    Ok(())
}

/// Reads an lspci capture.
pub fn parse_lspci(text: &str) -> Result<Capture, CaptureError> {
    let mut capture = Capture::default();
    let mut current: Option<CapturedDevice> = None;
    // Lines pasted into mail get wrapped: a column-0 line that is neither a header nor a dump
    // continues the previous one.
    let mut lines: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim_end();
        let starts_block =
            !l.starts_with([' ', '\t']) && (header_address(l).is_some() || dump_line(l).is_some());
        let indented = l.starts_with([' ', '\t']);
        match lines.last_mut() {
            Some((_, prev)) if !l.is_empty() && !starts_block && !indented && !prev.is_empty() => {
                prev.push(' ');
                prev.push_str(l);
            }
            _ => lines.push((i + 1, l.to_owned())),
        }
    }
    for (n, l) in lines {
        if l.trim().is_empty() {
            continue;
        }
        if !l.starts_with([' ', '\t']) {
            if let Some((off, bytes)) = dump_line(&l) {
                let dev = current
                    .as_mut()
                    .ok_or_else(|| err(n, "a hex dump before any device"))?;
                if off != dev.dump.len() {
                    return Err(err(
                        n,
                        format!(
                            "hex dump jumps to offset {off:#x}, expected {:#x}",
                            dev.dump.len()
                        ),
                    ));
                }
                let values: Vec<&str> = bytes.split_whitespace().collect();
                if values.len() != 16 {
                    return Err(err(
                        n,
                        format!(
                            "hex dump line has {} bytes, not 16 (truncated?)",
                            values.len()
                        ),
                    ));
                }
                for v in values {
                    dev.dump.push(
                        hex(v)
                            .filter(|_| v.len() == 2)
                            .ok_or_else(|| err(n, format!("'{v}' is not a byte")))?,
                    );
                }
                continue;
            }
            if header_address(&l).is_some() {
                capture.devices.extend(current.take());
                let mut dev = CapturedDevice::default();
                parse_header(&mut dev, &l, n)?;
                current = Some(dev);
                continue;
            }
            // Command lines (`lspci -xxxx -s 00:1c.4`) and other prose between blocks.
            continue;
        }
        if let Some(dev) = current.as_mut() {
            parse_detail(dev, l.trim(), n)?;
        }
    }
    capture.devices.extend(current);
    let mut seen = BTreeMap::new();
    for d in &capture.devices {
        if let Some(prev) = seen.insert(d.address, d.line) {
            return Err(err(
                d.line,
                format!(
                    "{} appears twice (first on line {prev})",
                    d.address.map_or_else(String::new, |a| a.to_string())
                ),
            ));
        }
    }
    Ok(capture)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::PciKind;

    const SAMPLE: &str = "\
00:1c.0 PCI bridge [0604]: Intel Corporation Device [8086:8d10] (rev d5) (prog-if 00 [Normal decode])
\tIOMMU group: 3
\tBus: primary=00, secondary=02, subordinate=02, sec-latency=0
\tCapabilities: [40] Express (v2) Root Port (Slot+), MSI 00
\t\tACSCap:\tSrcValid+ TransBlk+ ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans-
\t\tACSCtl:\tSrcValid- TransBlk- ReqRedir- CmpltRedir- UpstreamFwd- EgressCtrl- DirectTrans-
\tKernel driver in use: pcieport

00:1c.0/02:00.0 Ethernet controller [0200]: Intel Corporation I211 Gigabit Network Connection [8086:1539] (rev 03)
\tSubsystem: ASUSTeK Computer Inc. Device [1043:85f0]
\tCapabilities: [a0] Express (v2) Endpoint, MSI 00
\tIOMMU group: 4
";

    #[test]
    fn reads_ids_topology_acs_and_groups() {
        let c = parse_lspci(SAMPLE).unwrap();
        assert_eq!(c.devices.len(), 2);
        let rp = &c.devices[0];
        assert_eq!(rp.id.unwrap().device, 0x8d10);
        assert_eq!(rp.acs, Some((0x1f, 0)));
        assert_eq!(rp.secondary, Some(2));
        assert_eq!(c.devices[1].path_parent, rp.address);
        let imported = import(&c);
        assert_eq!(imported.devices[0].kind, PciKind::RootPort);
        assert_eq!(imported.groups.values().flatten().count(), 2);
        assert!(imported.inferred.is_empty(), "{:?}", imported.inferred);
    }

    #[test]
    fn truncated_lines_name_their_line() {
        let cut = SAMPLE.replace("Root Port (Slot+), MSI 00", "Root Po");
        assert_eq!(parse_lspci(&cut).unwrap_err().line, 4);
        let bad = "00:00.0 Host bridge: X\n00: 86 80 zz\n";
        assert_eq!(parse_lspci(bad).unwrap_err().line, 2);
        let short = "00:00.0 Host bridge [0600]: X [8086:1234]\n00: 86 80 34 12\n";
        let e = parse_lspci(short).unwrap_err();
        assert!(e.message.contains("truncated"), "{e}");
        assert!(parse_lspci("00:1c Host bridge").is_ok_and(|c| c.devices.is_empty()));
        assert_eq!(parse_lspci("0z:00.0 Host bridge: X\n").unwrap_err().line, 1);
    }

    #[test]
    fn names_stand_in_for_missing_ids() {
        let c = parse_lspci(
            "00:00.0 Ethernet controller: Freescale Semiconductor Inc Device e100 (rev 01)\n",
        )
        .unwrap();
        let i = import(&c);
        assert_eq!(
            i.devices[0].id,
            VendorDevice {
                vendor: 0x1957,
                device: 0xe100
            }
        );
        assert!(i.inferred.iter().any(|t| t.contains("no -nn")));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_and_cut_captures_never_panic(cut in 0usize..600, noise in "[ -~\t\né€]{0,200}") {
            let text: String = SAMPLE.chars().take(cut).collect();
            let _ = parse_lspci(&text).map(|c| import(&c));
            let _ = parse_lspci(&format!("{text}{noise}")).map(|c| import(&c));
            let _ = parse_lspci(&noise).map(|c| import(&c));
        }
    }
}
