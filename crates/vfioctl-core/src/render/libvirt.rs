//! libvirt `<hostdev>` elements for passing PCI functions to a domain.
//!
//! One element per function, to paste into the domain's `<devices>` or to give to
//! `virsh attach-device`:
//!
//! ```xml
//! <hostdev mode="subsystem" type="pci" managed="no">
//!   <source>
//!     <address domain="0x0001" bus="0x03" slot="0x00" function="0x0"/>
//!   </source>
//! </hostdev>
//! ```
//!
//! `managed="no"` because vfioctl binds and restores the devices itself; with `managed="yes"`
//! libvirt would detach and reattach them on its own and the two would fight over the drivers.
//! The writer (quick-xml) quotes attributes with `"`, where `virsh dumpxml` shows `'`; XML treats
//! both the same.
//!
//! Only the host (source) address is written. libvirt then gives each function its own guest
//! slot (a root port each on q35), so a multifunction device appears as separate single-function
//! devices; most guest drivers accept that. Keeping host function numbers in the guest would need a
//! `<address type="pci" ... multifunction="on"/>` guest address with a bus number, and guest bus
//! numbers depend on the controllers libvirt adds to the whole domain, which this fragment cannot
//! know.

use quick_xml::Writer;
use quick_xml::events::{BytesText, Event};

use crate::address::PciAddress;
use crate::device::Inventory;
use crate::render::{Passthrough, RenderError, layout};

/// The `<hostdev>` elements passing `request` to a libvirt domain, pretty-printed with two-space
/// indentation, one element after another, in [`layout`] order.
///
/// # Errors
///
/// Those of [`layout`]; [`RenderError::FslMcUnsupportedByLibvirt`] for any DPAA2 container;
/// [`RenderError::DomainTooWide`] for a PCI domain above `0xffff` (Intel VMD).
pub fn hostdev_xml(inv: &Inventory, request: &Passthrough) -> Result<String, RenderError> {
    if let Some(&dprc) = request.dprc.iter().min() {
        return Err(RenderError::FslMcUnsupportedByLibvirt(dprc));
    }
    let functions: Vec<PciAddress> = layout(inv, &request.pci)?
        .into_iter()
        .flat_map(|slot| slot.functions)
        .map(|f| f.host)
        .collect();
    // Check every address before writing any, so an error never leaves half a document.
    if let Some(wide) = functions.iter().find(|a| a.domain > 0xffff) {
        return Err(RenderError::DomainTooWide(*wide));
    }
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    for (i, address) in functions.iter().enumerate() {
        if i > 0 {
            // The writer indents nested elements but not siblings at the top level.
            writer
                .write_event(Event::Text(BytesText::new("\n")))
                .map_err(RenderError::Xml)?;
        }
        write_hostdev(&mut writer, address).map_err(RenderError::Xml)?;
    }
    let mut xml = String::from_utf8(writer.into_inner())
        .map_err(|e| RenderError::Xml(std::io::Error::other(e)))?;
    if !xml.is_empty() {
        xml.push('\n');
    }
    Ok(xml)
}

fn write_hostdev(writer: &mut Writer<Vec<u8>>, address: &PciAddress) -> std::io::Result<()> {
    let domain = format!("{:#06x}", address.domain);
    let bus = format!("{:#04x}", address.bus);
    let slot = format!("{:#04x}", address.device);
    let function = format!("{:#x}", address.function);
    writer
        .create_element("hostdev")
        .with_attributes([("mode", "subsystem"), ("type", "pci"), ("managed", "no")])
        .write_inner_content(|w| {
            w.create_element("source")
                .write_inner_content(|w| {
                    w.create_element("address")
                        .with_attributes([
                            ("domain", domain.as_str()),
                            ("bus", bus.as_str()),
                            ("slot", slot.as_str()),
                            ("function", function.as_str()),
                        ])
                        .write_empty()
                        .map(|_| ())
                })
                .map(|_| ())
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fslmc::DprcName;
    use crate::render::tests::{desktop, ten64};

    fn addr(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    #[test]
    fn ten64_wifi_and_tpu() {
        let request = Passthrough {
            pci: vec![addr("0001:04:00.0"), addr("0001:03:00.0")],
            dprc: vec![],
        };
        insta::assert_snapshot!(hostdev_xml(&ten64(), &request).unwrap());
    }

    #[test]
    fn desktop_gpu_with_audio() {
        let request = Passthrough {
            pci: vec![addr("0000:01:00.1"), addr("0000:01:00.0")],
            dprc: vec![],
        };
        insta::assert_snapshot!(hostdev_xml(&desktop(), &request).unwrap());
    }

    #[test]
    fn dprc_is_refused() {
        let request = Passthrough {
            pci: vec![addr("0001:03:00.0")],
            dprc: vec![DprcName::new(2)],
        };
        assert!(matches!(
            hostdev_xml(&ten64(), &request),
            Err(RenderError::FslMcUnsupportedByLibvirt(_))
        ));
    }

    #[test]
    fn vmd_domain_is_refused() {
        let request = Passthrough {
            pci: vec![addr("0000:05:00.0"), addr("10000:e1:00.0")],
            dprc: vec![],
        };
        let err = hostdev_xml(&desktop(), &request).unwrap_err();
        assert_eq!(
            err.to_string(),
            "10000:e1:00.0 has a PCI domain wider than 16 bits, which a libvirt address cannot express"
        );
    }

    #[test]
    fn empty_request_renders_nothing() {
        assert_eq!(hostdev_xml(&ten64(), &Passthrough::default()).unwrap(), "");
    }

    #[test]
    fn output_is_well_formed_xml() {
        let request = Passthrough {
            pci: vec![addr("0000:01:00.0"), addr("0000:01:00.1")],
            dprc: vec![],
        };
        let xml = hostdev_xml(&desktop(), &request).unwrap();
        // Wrapped in a root, the fragment must parse cleanly to the end.
        let doc = format!("<devices>{xml}</devices>");
        let mut reader = quick_xml::Reader::from_str(&doc);
        let mut hostdevs = 0;
        loop {
            match reader.read_event().unwrap() {
                Event::Eof => break,
                Event::Start(e) if e.name().as_ref() == "hostdev" => hostdevs += 1,
                _ => {}
            }
        }
        assert_eq!(hostdevs, 2);
    }
}
