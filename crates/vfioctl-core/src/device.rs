//! One PCI function as sysfs describes it, and the inventory of all of them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::address::{PciAddress, PciSelector, SelectorError};
use crate::config::{ConfigInfo, PcieType, REQ_ACS_FLAGS};
use crate::ids::{ClassCode, VendorDevice};

/// Drivers whose binding keeps a group viable for VFIO: vfio drivers own the DMA, and these set
/// `driver_managed_dma` in the kernel (5.19+ DMA-ownership model), so they never do DMA of their
/// own.
pub const DMA_SAFE_DRIVERS: &[&str] = &["pcieport", "pci-stub", "vfio-pci"];

/// True for a driver that leaves an IOMMU group usable by VFIO (vfio-pci and its variant drivers
/// such as `mlx5_vfio_pci`, or a `driver_managed_dma` driver).
pub fn driver_is_vfio_compatible(driver: &str) -> bool {
    DMA_SAFE_DRIVERS.contains(&driver) || driver.ends_with("_vfio_pci") || driver == "vfio-fsl-mc"
}

/// One PCI function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PciDevice {
    /// The kernel's name for the function.
    pub address: PciAddress,
    /// Vendor and device IDs.
    pub id: VendorDevice,
    /// Subsystem vendor and device IDs, when sysfs has them.
    pub subsystem: Option<VendorDevice>,
    /// Class code.
    pub class: ClassCode,
    /// Revision ID.
    pub revision: Option<u8>,
    /// The driver bound now (basename of the `driver` link).
    pub driver: Option<String>,
    /// `driver_override`, `None` when unset (`(null)` or empty).
    pub driver_override: Option<String>,
    /// IOMMU group number, `None` when the device has no `iommu_group` link.
    pub iommu_group: Option<u32>,
    /// The upstream bridge, `None` on a root bus.
    pub parent: Option<PciAddress>,
    /// What config space told us.
    pub config: ConfigInfo,
    /// NUMA node, `None` when the kernel says -1 or has no attribute.
    pub numa_node: Option<i32>,
    /// `power_state` (`D0`, `D3hot`, `D3cold`, ...).
    pub power_state: Option<String>,
    /// `d3cold_allowed`.
    pub d3cold_allowed: Option<bool>,
    /// `reset_method`, in the kernel's order; `None` when the attribute is absent (no method, or a
    /// kernel older than 5.15), empty when it exists and lists nothing.
    pub reset_method: Option<Vec<String>>,
    /// `boot_vga` is 1: the firmware console may live on this device.
    pub boot_vga: bool,
    /// Network interfaces this function backs (`net/*`).
    pub net_interfaces: Vec<String>,
    /// The physical function, when this is an SR-IOV virtual function.
    pub physfn: Option<PciAddress>,
    /// Virtual functions, when this is an SR-IOV physical function.
    pub virtfns: Vec<PciAddress>,
    /// `sriov_numvfs`, when this function can do SR-IOV.
    pub sriov_numvfs: Option<u32>,
    /// `sriov_totalvfs`, when this function can do SR-IOV.
    pub sriov_totalvfs: Option<u32>,
    /// `sriov_drivers_autoprobe`: new VFs probe host drivers, when this function can do SR-IOV.
    pub sriov_drivers_autoprobe: Option<bool>,
    /// The function has a `pci_bus` directory: it is a bridge with a secondary bus.
    pub has_secondary_bus: bool,
}

impl PciDevice {
    /// A device with only the mandatory attributes; the rest empty. Used by readers and tests.
    pub fn new(address: PciAddress, id: VendorDevice, class: ClassCode) -> Self {
        Self {
            address,
            id,
            subsystem: None,
            class,
            revision: None,
            driver: None,
            driver_override: None,
            iommu_group: None,
            parent: None,
            config: ConfigInfo::default(),
            numa_node: None,
            power_state: None,
            d3cold_allowed: None,
            reset_method: None,
            boot_vga: false,
            net_interfaces: Vec::new(),
            physfn: None,
            virtfns: Vec::new(),
            sriov_numvfs: None,
            sriov_totalvfs: None,
            sriov_drivers_autoprobe: None,
            has_secondary_bus: false,
        }
    }

    /// True for bridges and ports: a type-1 or type-2 header, a bridge class, or a secondary bus.
    /// vfio-pci refuses them, and they stay on their port driver when a group is assigned.
    pub fn is_bridge(&self) -> bool {
        match self.config.header_type {
            Some(h) => h == 1 || h == 2,
            None => self.class.is_pci_bridge() || self.has_secondary_bus,
        }
    }

    /// The kernel's `pdev->multifunction`: the header's multifunction bit, or any function other
    /// than 0. `pci_scan_slot()` marks every function it finds past function 0 as multifunction
    /// whatever its own header says (QEMU, for one, sets the bit on function 0 only); an SR-IOV
    /// virtual function is never one (`pci_iov_add_virtfn()` clears it).
    pub fn is_multifunction(&self) -> bool {
        self.physfn.is_none()
            && (self.config.multifunction == Some(true) || self.address.function != 0)
    }

    /// True for a PCI Express function (it has the PCIe capability).
    pub fn is_pcie(&self) -> bool {
        self.config.pcie_type.is_some()
    }

    /// The kernel's `pci_acs_enabled(dev, REQ_ACS_FLAGS)`, decided from config space.
    ///
    /// Returns `None` when config space was not readable far enough to know (an unprivileged read
    /// of a PCIe device's `config` stops at 64 bytes, before the ACS capability).
    pub fn acs_isolates(&self) -> Option<bool> {
        let Some(pcie_type) = self.config.pcie_type else {
            // Conventional PCI never isolates: every device on the bus can see DMA. When even the
            // header was unreadable, we cannot tell PCI from PCIe.
            return self.config.header_type.map(|_| false);
        };
        let acs_decides = match pcie_type {
            PcieType::PcieToPciBridge | PcieType::PciToPcieBridge | PcieType::RcEventCollector => {
                return Some(false);
            }
            PcieType::Downstream | PcieType::RootPort => true,
            PcieType::Endpoint
            | PcieType::LegacyEndpoint
            | PcieType::Upstream
            | PcieType::RcEndpoint => self.is_multifunction(),
            PcieType::Other(_) => false,
        };
        if !acs_decides {
            return Some(true);
        }
        if !self.config.extended_readable {
            return None;
        }
        Some(
            self.config
                .acs
                .is_some_and(|acs| acs.flags_enabled(REQ_ACS_FLAGS)),
        )
    }

    /// Words naming what kind of function this is ("root port", "endpoint", "PCI bridge").
    pub fn role(&self) -> &'static str {
        match self.config.pcie_type {
            Some(t) => t.describe(),
            None if self.is_bridge() => "PCI bridge",
            None => "PCI function",
        }
    }
}

/// A device the reader skipped: its sysfs files were unreadable, garbage, or vanished while
/// being read (a device being hot-removed). lspci skips such devices too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedDevice {
    /// Its name under `/sys/bus/pci/devices` (maybe not even an address).
    pub name: String,
    /// The sysfs path that failed, as on `/`.
    pub path: String,
    /// Why, in the OS's words ("No such file or directory").
    pub reason: String,
}

impl SkippedDevice {
    /// The warning every command gives about it.
    pub fn warning(&self) -> String {
        format!(
            "warning: skipped PCI device {}: {} (commands about other devices are not affected)",
            self.name, self.reason
        )
    }
}

/// Everything vfioctl knows about the host's PCI functions, sorted by address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Inventory {
    devices: Vec<PciDevice>,
    /// Devices that could not be read, and why; every command about other devices ignores them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedDevice>,
    /// `/sys/class/iommu` has at least one entry, or IOMMU groups exist.
    pub iommu_enabled: bool,
    /// The members of each IOMMU group, as the kernel lists them under
    /// `/sys/kernel/iommu_groups/N/devices`.
    pub groups: BTreeMap<u32, Vec<PciAddress>>,
}

impl Inventory {
    /// Builds an inventory; sorts the devices by address.
    pub fn new(
        mut devices: Vec<PciDevice>,
        iommu_enabled: bool,
        groups: BTreeMap<u32, Vec<PciAddress>>,
    ) -> Self {
        devices.sort_by_key(|d| d.address);
        devices.dedup_by_key(|d| d.address);
        Self {
            devices,
            skipped: Vec::new(),
            iommu_enabled,
            groups,
        }
    }

    /// All devices, sorted by address.
    pub fn devices(&self) -> &[PciDevice] {
        &self.devices
    }

    /// The device at `address`.
    pub fn get(&self, address: &PciAddress) -> Option<&PciDevice> {
        self.devices
            .binary_search_by_key(address, |d| d.address)
            .ok()
            .map(|i| &self.devices[i])
    }

    /// Resolves what a user typed to one device.
    pub fn resolve(&self, selector: &PciSelector) -> Result<&PciDevice, SelectorError> {
        let address = selector.resolve(self.devices.iter().map(|d| &d.address))?;
        self.get(&address)
            .ok_or_else(|| SelectorError::NotFound(selector.to_string()))
    }

    /// Every device matching a `vendor:device` ID.
    pub fn by_id(&self, id: VendorDevice) -> impl Iterator<Item = &PciDevice> {
        self.devices.iter().filter(move |d| d.id == id)
    }

    /// The chain of upstream bridges from `address` to its root port, nearest first.
    pub fn ancestors(&self, address: &PciAddress) -> Vec<&PciDevice> {
        let mut chain = Vec::new();
        let mut next = self.get(address).and_then(|d| d.parent);
        while let Some(parent) = next {
            // A corrupt tree could make a cycle; a chain cannot be longer than the device count.
            if chain.len() > self.devices.len() {
                break;
            }
            let Some(dev) = self.get(&parent) else { break };
            chain.push(dev);
            next = dev.parent;
        }
        chain
    }

    /// Direct children (devices whose parent is `address`).
    pub fn children(&self, address: &PciAddress) -> impl Iterator<Item = &PciDevice> {
        let address = *address;
        self.devices
            .iter()
            .filter(move |d| d.parent == Some(address))
    }

    /// The members of the group of `address`, or just the device itself when it has no group.
    pub fn group_members(&self, address: &PciAddress) -> Vec<PciAddress> {
        match self.get(address).and_then(|d| d.iommu_group) {
            Some(group) => self.groups.get(&group).cloned().unwrap_or_default(),
            None => vec![*address],
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{Acs, ConfigInfo};

    pub(crate) fn addr(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    #[test]
    fn root_port_without_acs_does_not_isolate() {
        let mut d = PciDevice::new(
            addr("0000:00:1c.0"),
            "8086:a110".parse().unwrap(),
            ClassCode(0x060400),
        );
        d.config = ConfigInfo {
            header_type: Some(1),
            multifunction: Some(false),
            pcie_type: Some(PcieType::RootPort),
            extended_readable: true,
            ..ConfigInfo::default()
        };
        assert_eq!(d.acs_isolates(), Some(false));
        d.config.acs = Some(Acs {
            offset: 0x148,
            capability: 0x5f,
            control: 0x1d,
        });
        assert_eq!(d.acs_isolates(), Some(true));
    }

    #[test]
    fn single_function_endpoint_isolates_without_acs() {
        let mut d = PciDevice::new(
            addr("0000:01:00.0"),
            "8086:10d3".parse().unwrap(),
            ClassCode(0x020000),
        );
        d.config.pcie_type = Some(PcieType::Endpoint);
        d.config.multifunction = Some(false);
        assert_eq!(d.acs_isolates(), Some(true));
    }

    #[test]
    fn unreadable_extended_space_is_unknown_for_ports() {
        let mut d = PciDevice::new(
            addr("0000:00:1c.0"),
            "8086:a110".parse().unwrap(),
            ClassCode(0x060400),
        );
        d.config.pcie_type = Some(PcieType::RootPort);
        d.config.extended_readable = false;
        assert_eq!(d.acs_isolates(), None);
    }
}
