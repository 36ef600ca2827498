//! Reading the devices a libvirt domain or a Proxmox VE VM asks for, so vfioctl's hooks can bind
//! them (whole groups, with the refusals) before the VM starts and restore them after it stops.

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::address::PciAddress;

/// Why a VM's configuration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The domain XML does not parse.
    #[error("the domain XML does not parse: {0}")]
    Xml(String),
    /// A `<hostdev>` address is incomplete or out of range.
    #[error("a <hostdev> source address is invalid: {0}")]
    Address(String),
}

fn number(text: &str) -> Option<u32> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The PCI host devices of a libvirt domain (`<hostdev mode='subsystem' type='pci'>` and
/// `<interface type='hostdev'>`, with a `<source><address domain= bus= slot= function=/>`), in
/// document order, `managed` or not: libvirt leaves a managed device that is on vfio-pci already
/// where it is, so binding it first and giving it back after libvirt's release is the same either
/// way. Mediated devices (`type='mdev'`) are left alone: their parent stays on its driver.
pub fn libvirt_pci_hostdevs(xml: &str) -> Result<Vec<PciAddress>, HookError> {
    let mut reader = Reader::from_str(xml);
    let mut found = Vec::new();
    // Depth of the <hostdev type='pci'> we are inside, and whether we are in its <source>.
    let mut in_pci_hostdev = false;
    let mut in_source = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| HookError::Xml(e.to_string()))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let attr = |name: &str| -> Option<String> {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == name)
                        .and_then(|a| {
                            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .ok()
                                .map(|v| v.into_owned())
                        })
                };
                match e.name().as_ref() {
                    // `type='mdev'` and `type='usb'` hostdevs are not PCI functions to bind.
                    "hostdev" if !empty => {
                        in_pci_hostdev = attr("type").as_deref() == Some("pci")
                            && attr("mode").as_deref() != Some("capabilities");
                    }
                    // An SR-IOV VF given as a network interface: a PCI hostdev by another name.
                    "interface" if !empty => {
                        in_pci_hostdev = attr("type").as_deref() == Some("hostdev");
                    }
                    "source" if in_pci_hostdev && !empty => in_source = true,
                    "address" if in_pci_hostdev && in_source => {
                        let field = |name: &str| attr(name).as_deref().and_then(number);
                        let describe = || {
                            format!(
                                "domain={:?} bus={:?} slot={:?} function={:?}",
                                attr("domain"),
                                attr("bus"),
                                attr("slot"),
                                attr("function")
                            )
                        };
                        let address = (|| {
                            PciAddress::new(
                                field("domain").unwrap_or(0),
                                u8::try_from(field("bus")?).ok()?,
                                u8::try_from(field("slot")?).ok()?,
                                u8::try_from(field("function")?).ok()?,
                            )
                        })()
                        .ok_or_else(|| HookError::Address(describe()))?;
                        found.push(address);
                    }
                    _ => {}
                }
            }
            Event::End(ref e) => match e.name().as_ref() {
                "hostdev" | "interface" => {
                    in_pci_hostdev = false;
                    in_source = false;
                }
                "source" => in_source = false,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(found)
}

/// One `hostpciN` entry of a Proxmox VE VM configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxmoxDevice {
    /// A function or a whole slot as Proxmox writes it (`0000:01:00.0`, `01:00.0`, `01:00`).
    Host(String),
    /// A cluster resource mapping (`mapping=name`), resolved from `/etc/pve/mapping/pci.cfg`.
    Mapping(String),
    /// An entry vfioctl leaves to Proxmox: a mediated device (`mdev=`) is created on the parent,
    /// which stays on its driver, and `driver=keep` asks for the device's own driver.
    LeftAlone {
        /// The `hostpciN` key.
        key: String,
        /// Why, in words.
        why: &'static str,
    },
}

/// The `hostpciN` devices of a Proxmox VE VM configuration (`/etc/pve/qemu-server/<vmid>.conf`),
/// from the current configuration only (snapshots start at a `[section]` line).
pub fn proxmox_hostpci(conf: &str) -> Vec<ProxmoxDevice> {
    let mut devices = Vec::new();
    for line in conf.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            break;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let is_hostpci = key
            .strip_prefix("hostpci")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !is_hostpci {
            continue;
        }
        let mut found = Vec::new();
        let mut left_alone = None;
        for (i, option) in value.trim().split(',').enumerate() {
            let (name, val) = match option.split_once('=') {
                Some((n, v)) => (n.trim(), v.trim()),
                // The first option may omit `host=`.
                None if i == 0 => ("host", option.trim()),
                None => continue,
            };
            match name {
                "host" => found.extend(
                    val.split(';')
                        .filter(|s| !s.is_empty())
                        .map(|s| ProxmoxDevice::Host(s.to_owned())),
                ),
                "mapping" => found.push(ProxmoxDevice::Mapping(val.to_owned())),
                "mdev" => {
                    left_alone = Some(
                        "a mediated device: its parent stays on its own driver, which creates it",
                    );
                }
                "driver" if val == "keep" => {
                    left_alone = Some("driver=keep: the device stays on its own driver");
                }
                _ => {}
            }
        }
        match left_alone {
            Some(why) => devices.push(ProxmoxDevice::LeftAlone {
                key: key.to_owned(),
                why,
            }),
            None => devices.extend(found),
        }
    }
    devices
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = r#"<domain type='kvm'>
  <name>ten64-vm</name>
  <devices>
    <hostdev mode='subsystem' type='pci' managed='no'>
      <source>
        <address domain='0x0001' bus='0x03' slot='0x00' function='0x0'/>
      </source>
      <address type='pci' domain='0x0000' bus='0x07' slot='0x00' function='0x0'/>
    </hostdev>
    <hostdev mode='subsystem' type='usb'>
      <source><vendor id='0x1234'/><address bus='1' device='2'/></source>
    </hostdev>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0001' bus='0x04' slot='0x00' function='0x0'/></source>
    </hostdev>
    <interface type='network'><source network='default'/><address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></interface>
  </devices>
</domain>"#;

    #[test]
    fn reads_hostdev_interfaces_and_leaves_mdevs() {
        let xml = "<domain><devices><interface type='hostdev' managed='yes'><mac address='52:54:00:6d:90:02'/><source><address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/></source></interface><hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='c2177883-f1bb-47f0-914d-32a22e3a8804'/></source></hostdev><interface type='network'><source network='default'/></interface></devices></domain>";
        let found = libvirt_pci_hostdevs(xml).unwrap();
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["0000:04:00.0"]);
    }

    #[test]
    fn proxmox_mdev_and_driver_keep_are_left_alone() {
        let conf = "hostpci0: 0000:01:00.0,mdev=nvidia-63\nhostpci1: 02:00.0,driver=keep\nhostpci2: 03:00.0\n";
        let devices = proxmox_hostpci(conf);
        assert!(matches!(&devices[0], ProxmoxDevice::LeftAlone { key, .. } if key == "hostpci0"));
        assert!(matches!(&devices[1], ProxmoxDevice::LeftAlone { key, .. } if key == "hostpci1"));
        assert_eq!(devices[2], ProxmoxDevice::Host("03:00.0".into()));
    }

    #[test]
    fn reads_pci_hostdev_sources_only() {
        let found = libvirt_pci_hostdevs(DOMAIN).unwrap();
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["0001:03:00.0", "0001:04:00.0"]);
    }

    #[test]
    fn broken_xml_is_an_error_not_a_panic() {
        assert!(libvirt_pci_hostdevs("<domain><devices><hostdev type='pci'>").is_ok());
        assert!(matches!(
            libvirt_pci_hostdevs("<a></b>"),
            Err(HookError::Xml(_))
        ));
        let bad = "<hostdev type='pci'><source><address bus='0x300' slot='0' function='0'/></source></hostdev>";
        assert!(matches!(
            libvirt_pci_hostdevs(bad),
            Err(HookError::Address(_))
        ));
    }

    #[test]
    fn reads_proxmox_hostpci_forms() {
        let conf = "boot: order=scsi0\nhostpci0: 0000:01:00.0,pcie=1,x-vga=1\nhostpci1: host=02:00.0;02:00.1,pcie=1\nhostpci2: mapping=gpu\nhostpci3: 03:00\nmemory: 4096\n[snap1]\nhostpci9: 09:00.0\n";
        assert_eq!(
            proxmox_hostpci(conf),
            [
                ProxmoxDevice::Host("0000:01:00.0".into()),
                ProxmoxDevice::Host("02:00.0".into()),
                ProxmoxDevice::Host("02:00.1".into()),
                ProxmoxDevice::Mapping("gpu".into()),
                ProxmoxDevice::Host("03:00".into()),
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_input_never_panics(text in ".{0,200}") {
            let _ = libvirt_pci_hostdevs(&text);
            let _ = proxmox_hostpci(&text);
        }
    }
}
