//! The udev rule that takes boot devices for vfio-pci when they are added.
//!
//! Two lines per device (`udev(7)` syntax):
//!
//! - `add`: the address (`KERNEL`) **and** the identity (`ATTR{vendor}`, `ATTR{device}`, and
//!   `ATTR{subsystem_vendor}`/`ATTR{subsystem_device}` when the definition names a subsystem) must
//!   match, then `ATTR{driver_override}="vfio-pci"`. udev applies `ATTR` assignments while it
//!   walks the rules and runs `RUN{builtin}+="kmod load $env{MODALIAS}"` (80-drivers.rules) only
//!   after the last rule, so the override is set before the host driver's module is loaded by
//!   this event. A device whose identity does not match is left alone: a new card in the slot or
//!   renumbered buses never hand the wrong device to vfio-pci. The line then asks the kernel to
//!   probe the device (`drivers_probe`): when vfio-pci is already loaded (dracut loads forced
//!   drivers before udev starts) nothing else would, and a device without a driver for its
//!   override is left alone by it.
//! - `bind`: when a host driver bound a device whose override is already vfio-pci (the kernel
//!   probes a hot-added device or a new VF itself, before udev sees its `add`, when the host
//!   driver is already loaded), the driver's name is kept in the udev database as
//!   `VFIOCTL_HOST_DRIVER` and the device is moved: unbind, then `drivers_probe`, which only
//!   vfio-pci can take. `vfioctl restore` clears the override first, so giving a device back
//!   never triggers it. `IMPORT{db}` carries the name over later events, so `boot status` can
//!   say whether a host driver ever touched the device this boot.
//!
//! This is how driverctl persists overrides, with the identity check it lacks and without its
//! unbind-after-the-fact at cold boot.

use std::fmt::Write as _;

use super::BootDevice;
use crate::plan::VFIO_PCI;

/// Where the rule is installed, under the root. Numbered before `80-drivers.rules` for readers;
/// correctness does not depend on it, since `kmod load` runs after every rule.
pub const RULE_PATH: &str = "etc/udev/rules.d/61-vfioctl-boot.rules";

/// The udev database key naming a host driver that bound a boot device.
pub const HOST_DRIVER_KEY: &str = "VFIOCTL_HOST_DRIVER";

/// The rule file for `devices`.
pub fn render_rule(devices: &[BootDevice]) -> String {
    let mut text = String::from(
        "# Written by `vfioctl boot install` from the VM definitions marked boot = true.\n\
         # Do not edit: change the definitions and run `vfioctl boot install` again;\n\
         # `vfioctl boot remove` deletes this file.\n\
         #\n\
         # add:  address AND identity match -> driver_override=vfio-pci, before any driver probes.\n\
         # bind: a host driver bound it anyway (hotplug or a VF with its driver loaded) -> recorded\n\
         #       as VFIOCTL_HOST_DRIVER in the udev database and moved to vfio-pci.\n",
    );
    text.push_str("SUBSYSTEM!=\"pci\", GOTO=\"vfioctl_boot_end\"\n");
    text.push_str("ACTION==\"remove\", GOTO=\"vfioctl_boot_end\"\n");
    for d in devices {
        let kernel = format!("KERNEL==\"{}\"", d.address);
        let mut identity = format!(
            "ATTR{{vendor}}==\"0x{:04x}\", ATTR{{device}}==\"0x{:04x}\"",
            d.id.vendor, d.id.device
        );
        if let Some(s) = d.subsystem {
            let _ = write!(
                identity,
                ", ATTR{{subsystem_vendor}}==\"0x{:04x}\", ATTR{{subsystem_device}}==\"0x{:04x}\"",
                s.vendor, s.device
            );
        }
        let _ = write!(
            text,
            "\n# VM {}: {} must be {}\n\
             {kernel}, IMPORT{{db}}=\"{HOST_DRIVER_KEY}\"\n\
             ACTION==\"add\", {kernel}, {identity}, ATTR{{driver_override}}=\"{VFIO_PCI}\", \
             ATTR{{subsystem/drivers_probe}}=\"$kernel\"\n\
             ACTION==\"bind\", {kernel}, DRIVER!=\"{VFIO_PCI}\", \
             ATTR{{driver_override}}==\"{VFIO_PCI}\", ENV{{{HOST_DRIVER_KEY}}}=\"$env{{DRIVER}}\", \
             ATTR{{driver/unbind}}=\"$kernel\", ATTR{{subsystem/drivers_probe}}=\"$kernel\"\n",
            d.vm,
            d.address,
            d.expected()
        );
    }
    text.push_str("\nLABEL=\"vfioctl_boot_end\"\n");
    text
}

/// The value of `key` in a udev database file (`/run/udev/data/+pci:<address>`: `E:KEY=value`
/// lines), when set.
pub fn db_property(db: &str, key: &str) -> Option<String> {
    db.lines()
        .filter_map(|l| l.strip_prefix("E:"))
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(vm: &str, address: &str, id: &str, subsystem: Option<&str>) -> BootDevice {
        BootDevice {
            vm: vm.parse().unwrap(),
            address: address.parse().unwrap(),
            id: id.parse().unwrap(),
            subsystem: subsystem.map(|s| s.parse().unwrap()),
        }
    }

    #[test]
    fn rule_for_two_devices() {
        let rule = render_rule(&[
            device("gpu", "0000:01:00.0", "10de:2684", Some("1043:8933")),
            device("ten64", "0001:03:00.0", "168c:003e", None),
        ]);
        insta::assert_snapshot!(rule);
    }

    #[test]
    fn every_device_line_names_address_and_identity() {
        let rule = render_rule(&[device("a", "0000:02:00.0", "8086:10d3", None)]);
        let add = rule
            .lines()
            .find(|l| l.starts_with("ACTION==\"add\""))
            .unwrap();
        for part in [
            "KERNEL==\"0000:02:00.0\"",
            "ATTR{vendor}==\"0x8086\"",
            "ATTR{device}==\"0x10d3\"",
            "ATTR{driver_override}=\"vfio-pci\"",
        ] {
            assert!(add.contains(part), "{add} lacks {part}");
        }
        assert!(!add.contains("subsystem_vendor"));
    }

    #[test]
    fn reads_the_udev_database() {
        let db = "I:1234\nE:ID_VENDOR_FROM_DATABASE=Intel\nE:VFIOCTL_HOST_DRIVER=e1000e\nG:x\n";
        assert_eq!(db_property(db, HOST_DRIVER_KEY).as_deref(), Some("e1000e"));
        assert_eq!(
            db_property("E:VFIOCTL_HOST_DRIVER=\n", HOST_DRIVER_KEY),
            None
        );
        assert_eq!(db_property("", HOST_DRIVER_KEY), None);
    }
}
