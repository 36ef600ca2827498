//! Early binding: what `vfioctl boot install` writes so that the devices of VMs marked
//! `boot = true` are never touched by a host driver, at boot, on hotplug, or when VFs appear.
//!
//! - [`udev`] renders the udev rule: on a device's `add` event it sets `driver_override` to
//!   vfio-pci, matched by address **and** identity, in the same event that loads the host driver's
//!   module (udev applies `ATTR` assignments while it reads the rules, and runs the `kmod load` of
//!   `80-drivers.rules` only afterwards), so the override is in place before any probe.
//! - [`initramfs`] renders what each initramfs generator needs to carry the rule and the vfio
//!   modules into early boot (initramfs-tools, dracut, mkinitcpio).
//! - [`checks`] are `doctor`'s checks for early boot: a boot framebuffer sitting in a device's
//!   BAR, a console on it, and stale module names (`vfio_virqfd`, `pci-stub`) in old configs.
//!
//! Everything here is pure: the host layer reads definitions and writes the files.

pub mod checks;
pub mod initramfs;
pub mod udev;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::address::PciAddress;
use crate::ids::VendorDevice;
use crate::vm::{VmDefinition, VmName};

/// The modules vfio-pci needs, in load order. `vfio_virqfd` is not among them: Linux 6.2 folded
/// it into `vfio`, and naming it makes modprobe and initramfs generators fail on newer kernels.
pub const BOOT_MODULES: &[&str] = &["vfio", "vfio_iommu_type1", "vfio_pci"];

/// One device taken at boot: where it is and what must be there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootDevice {
    /// The VM that gets it.
    pub vm: VmName,
    /// Its address.
    pub address: PciAddress,
    /// The `vendor:device` that must be at the address.
    pub id: VendorDevice,
    /// The subsystem that must be there too, when the definition names one.
    pub subsystem: Option<VendorDevice>,
}

/// Two boot VMs name one address with different identities: no rule can satisfy both.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{address} is in boot VMs {first} and {second} with different identities ({first_id} and \
     {second_id})"
)]
pub struct BootConflict {
    /// The address.
    pub address: PciAddress,
    /// The first VM naming it.
    pub first: VmName,
    /// What the first expects.
    pub first_id: String,
    /// The second VM naming it.
    pub second: VmName,
    /// What the second expects.
    pub second_id: String,
}

/// The devices of every definition marked `boot = true`, in address order. An address named by
/// two boot VMs with the same identity is taken once (by the first in name order); `apply`
/// reports the clash of owners itself.
///
/// # Errors
///
/// Two boot VMs expect different devices at one address.
pub fn boot_devices<'a>(
    definitions: impl IntoIterator<Item = (&'a VmName, &'a VmDefinition)>,
) -> Result<Vec<BootDevice>, BootConflict> {
    let mut by_address: BTreeMap<PciAddress, BootDevice> = BTreeMap::new();
    for (name, def) in definitions {
        if !def.boot {
            continue;
        }
        for d in &def.devices {
            let device = BootDevice {
                vm: name.clone(),
                address: d.address,
                id: d.id,
                subsystem: d.subsystem,
            };
            match by_address.get(&d.address) {
                Some(first) if (first.id, first.subsystem) != (d.id, d.subsystem) => {
                    return Err(BootConflict {
                        address: d.address,
                        first: first.vm.clone(),
                        first_id: d_identity(first.id, first.subsystem),
                        second: name.clone(),
                        second_id: d.expected(),
                    });
                }
                Some(_) => {}
                None => {
                    by_address.insert(d.address, device);
                }
            }
        }
    }
    Ok(by_address.into_values().collect())
}

fn d_identity(id: VendorDevice, subsystem: Option<VendorDevice>) -> String {
    match subsystem {
        Some(s) => format!("{id} (subsystem {s})"),
        None => id.to_string(),
    }
}

impl BootDevice {
    /// The expected identity in words: `8086:10d3` or `8086:10d3 (subsystem 8086:0000)`.
    pub fn expected(&self) -> String {
        d_identity(self.id, self.subsystem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(text: &str) -> VmDefinition {
        VmDefinition::parse(text).unwrap()
    }

    #[test]
    fn only_boot_vms_and_each_address_once() {
        let a = def(
            "version = 1\nboot = true\n[[device]]\naddress = \"0000:02:00.0\"\nid = \"8086:10d3\"\n[[device]]\naddress = \"0000:01:00.0\"\nid = \"8086:10d3\"\nsubsystem = \"8086:0000\"\n",
        );
        let b = def(
            "version = 1\nboot = true\n[[device]]\naddress = \"0000:02:00.0\"\nid = \"8086:10d3\"\n",
        );
        let c = def("version = 1\n[[device]]\naddress = \"0000:03:00.0\"\nid = \"8086:10d3\"\n");
        let (na, nb, nc) = (
            "a".parse().unwrap(),
            "b".parse().unwrap(),
            "c".parse().unwrap(),
        );
        let devices = boot_devices([(&na, &a), (&nb, &b), (&nc, &c)]).unwrap();
        let addresses: Vec<String> = devices.iter().map(|d| d.address.to_string()).collect();
        assert_eq!(addresses, ["0000:01:00.0", "0000:02:00.0"]);
        assert_eq!(devices[0].expected(), "8086:10d3 (subsystem 8086:0000)");
        assert_eq!(devices[1].vm.as_str(), "a");
    }

    #[test]
    fn different_identities_at_one_address_conflict() {
        let a = def(
            "version = 1\nboot = true\n[[device]]\naddress = \"0000:02:00.0\"\nid = \"8086:10d3\"\n",
        );
        let b = def(
            "version = 1\nboot = true\n[[device]]\naddress = \"0000:02:00.0\"\nid = \"10de:2684\"\n",
        );
        let (na, nb) = ("a".parse().unwrap(), "b".parse().unwrap());
        let err = boot_devices([(&na, &a), (&nb, &b)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0000:02:00.0 is in boot VMs a and b with different identities (8086:10d3 and 10de:2684)"
        );
    }
}
