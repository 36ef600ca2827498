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
//! By default only the host (source) address is written, and libvirt gives each function its own
//! guest slot (a root port each on q35), so a multifunction device appears as separate
//! single-function devices. With a guest bus (`--guest-bus N`: the `index` of a free
//! `pcie-root-port` controller of the domain), each physical device gets one guest bus, from N
//! up, at slot 0 with the host's function numbers, and function 0 carries
//! `multifunction="on"`: the guest sees the device laid out as on the host, as `qemu-args`
//! renders it. Guest bus numbers are libvirt controller indexes, which depend on the whole
//! domain, so vfioctl does not guess them.
//!
//! `virsh attach-device` takes one element per file: [`hostdevs`] gives them one by one (the
//! CLI's `--out-dir`), [`hostdev_xml`] all together for pasting into `<devices>`.

use super::backend::Backend;
use quick_xml::Writer;
use quick_xml::events::{BytesText, Event};

use crate::address::PciAddress;
use crate::device::Inventory;
use crate::render::{Passthrough, RenderError, layout};

/// Where a function sits in the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestAddress {
    /// The guest bus (a libvirt PCI controller index).
    pub bus: u8,
    /// The function number in the guest slot.
    pub function: u8,
    /// Function 0 of a slot with more than one function.
    pub multifunction: bool,
}

/// One `<hostdev>` element: what `virsh attach-device DOMAIN FILE` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostdev {
    /// The host function it passes.
    pub host: PciAddress,
    /// Its guest address, when a guest bus was asked for.
    pub guest: Option<GuestAddress>,
    /// The element, pretty-printed with two-space indentation, ending in a newline.
    pub xml: String,
}

/// One `<hostdev>` element per function of `request`, in [`layout`] order. With `guest_bus`,
/// each slot gets its own guest bus from `guest_bus` up and keeps its function layout.
///
/// # Errors
///
/// Those of [`layout`]; [`RenderError::FslMcUnsupportedByLibvirt`] for any DPAA2 container;
/// [`RenderError::DomainTooWide`] for a PCI domain above `0xffff` (Intel VMD);
/// [`RenderError::GuestBusOverflow`] when the slots need buses past `0xff`.
pub fn hostdevs(
    inv: &Inventory,
    request: &Passthrough,
    guest_bus: Option<u8>,
) -> Result<Vec<Hostdev>, RenderError> {
    hostdevs_for(inv, request, guest_bus, Backend::Legacy)
}

/// [`hostdevs`] for a VFIO `backend`: with iommufd, each element has `<driver iommufd='yes'/>`
///.
///
/// # Errors
///
/// Those of [`hostdevs`].
pub fn hostdevs_for(
    inv: &Inventory,
    request: &Passthrough,
    guest_bus: Option<u8>,
    backend: Backend,
) -> Result<Vec<Hostdev>, RenderError> {
    if let Some(&dprc) = request.dprc.iter().min() {
        return Err(RenderError::FslMcUnsupportedByLibvirt(dprc));
    }
    let slots = layout(inv, &request.pci)?;
    if let Some(first) = guest_bus
        && usize::from(first) + slots.len() > 0x100
    {
        return Err(RenderError::GuestBusOverflow {
            first,
            slots: slots.len(),
        });
    }
    let mut functions: Vec<(PciAddress, Option<GuestAddress>)> = Vec::new();
    for (i, slot) in slots.iter().enumerate() {
        for function in &slot.functions {
            let guest = guest_bus.map(|first| GuestAddress {
                // In range: checked above.
                bus: first + u8::try_from(i).unwrap_or(u8::MAX),
                function: function.guest_function,
                multifunction: slot.is_multifunction() && function.guest_function == 0,
            });
            functions.push((function.host, guest));
        }
    }
    // Check every address before writing any, so an error never leaves half a document.
    if let Some((wide, _)) = functions.iter().find(|(a, _)| a.domain > 0xffff) {
        return Err(RenderError::DomainTooWide(*wide));
    }
    functions
        .into_iter()
        .map(|(host, guest)| {
            let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
            write_hostdev(&mut writer, &host, guest.as_ref(), backend).map_err(RenderError::Xml)?;
            writer
                .write_event(Event::Text(BytesText::new("\n")))
                .map_err(RenderError::Xml)?;
            let xml = String::from_utf8(writer.into_inner())
                .map_err(|e| RenderError::Xml(std::io::Error::other(e)))?;
            Ok(Hostdev { host, guest, xml })
        })
        .collect()
}

/// The `<hostdev>` elements of [`hostdevs`], one after another (several root elements: paste them
/// into the domain's `<devices>`; `virsh attach-device` needs one per file).
///
/// # Errors
///
/// Those of [`hostdevs`].
pub fn hostdev_xml(
    inv: &Inventory,
    request: &Passthrough,
    guest_bus: Option<u8>,
) -> Result<String, RenderError> {
    Ok(hostdevs(inv, request, guest_bus)?
        .into_iter()
        .map(|h| h.xml)
        .collect())
}

fn write_hostdev(
    writer: &mut Writer<Vec<u8>>,
    address: &PciAddress,
    guest: Option<&GuestAddress>,
    backend: Backend,
) -> std::io::Result<()> {
    let domain = format!("{:#06x}", address.domain);
    let bus = format!("{:#04x}", address.bus);
    let slot = format!("{:#04x}", address.device);
    let function = format!("{:#x}", address.function);
    writer
        .create_element("hostdev")
        .with_attributes([("mode", "subsystem"), ("type", "pci"), ("managed", "no")])
        .write_inner_content(|w| {
            if backend == Backend::Iommufd {
                w.create_element("driver")
                    .with_attribute(("iommufd", "yes"))
                    .write_empty()?;
            }
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
                .map(|_| ())?;
            if let Some(guest) = guest {
                let bus = format!("{:#04x}", guest.bus);
                let function = format!("{:#x}", guest.function);
                let mut attributes = vec![
                    ("type", "pci"),
                    ("domain", "0x0000"),
                    ("bus", bus.as_str()),
                    ("slot", "0x00"),
                    ("function", function.as_str()),
                ];
                if guest.multifunction {
                    attributes.push(("multifunction", "on"));
                }
                w.create_element("address")
                    .with_attributes(attributes)
                    .write_empty()?;
            }
            Ok(())
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
        insta::assert_snapshot!(hostdev_xml(&ten64(), &request, None).unwrap());
    }

    #[test]
    fn desktop_gpu_with_audio() {
        let request = Passthrough {
            pci: vec![addr("0000:01:00.1"), addr("0000:01:00.0")],
            dprc: vec![],
        };
        insta::assert_snapshot!(hostdev_xml(&desktop(), &request, None).unwrap());
    }

    #[test]
    fn dprc_is_refused() {
        let request = Passthrough {
            pci: vec![addr("0001:03:00.0")],
            dprc: vec![DprcName::new(2)],
        };
        assert!(matches!(
            hostdev_xml(&ten64(), &request, None),
            Err(RenderError::FslMcUnsupportedByLibvirt(_))
        ));
    }

    #[test]
    fn vmd_domain_is_refused() {
        let request = Passthrough {
            pci: vec![addr("0000:05:00.0"), addr("10000:e1:00.0")],
            dprc: vec![],
        };
        let err = hostdev_xml(&desktop(), &request, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "10000:e1:00.0 has a PCI domain wider than 16 bits, which a libvirt address cannot express"
        );
    }

    #[test]
    fn empty_request_renders_nothing() {
        assert_eq!(
            hostdev_xml(&ten64(), &Passthrough::default(), None).unwrap(),
            ""
        );
    }

    #[test]
    fn output_is_well_formed_xml() {
        let request = Passthrough {
            pci: vec![addr("0000:01:00.0"), addr("0000:01:00.1")],
            dprc: vec![],
        };
        let xml = hostdev_xml(&desktop(), &request, None).unwrap();
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

    #[test]
    fn a_guest_bus_keeps_the_multifunction_layout() {
        let request = Passthrough {
            pci: vec![addr("0000:01:00.1"), addr("0000:01:00.0")],
            dprc: vec![],
        };
        let all = hostdevs(&desktop(), &request, Some(3)).unwrap();
        assert_eq!(all.len(), 2);
        insta::assert_snapshot!(all.iter().map(|h| h.xml.as_str()).collect::<String>());
        let err = hostdevs(&desktop(), &request, Some(0xff));
        assert!(err.is_ok(), "one slot fits on bus 0xff");
    }

    #[test]
    fn too_many_slots_for_the_guest_buses_is_an_error() {
        let request = Passthrough {
            pci: vec![addr("0001:03:00.0"), addr("0001:04:00.0")],
            dprc: vec![],
        };
        let err = hostdevs(&ten64(), &request, Some(0xff)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "2 guest slots from bus 0xff run past bus 0xff"
        );
    }
}
