//! The pure core of vfioctl: PCI addresses and IDs, devices and their IOMMU groups, why groups are
//! shared, plans for binding and restoring, and the renderers for QEMU and libvirt.
//!
//! Nothing here does I/O. The host layer (`vfioctl-host`) reads sysfs into these types and carries
//! out the plans built here, which keeps every decision testable without a kernel.
//!
//! Kernel ABI references: `Documentation/ABI/testing/sysfs-bus-pci`,
//! `Documentation/driver-api/vfio.rst`, `drivers/iommu/iommu.c` (`pci_device_group`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod address;
pub mod boot;
pub mod config;
pub mod critical;
pub mod device;
pub mod deviceplugin;
pub mod devref;
pub mod doctor;
pub mod dpaa2;
pub mod export;
pub mod fslmc;
pub mod groups;
pub mod hooks;
pub mod ids;
pub mod known;
pub mod modalias;
pub mod ownership;
pub mod passthrough;
pub mod pciids;
pub mod plan;
pub mod predict;
pub mod pve;
pub mod render;
pub mod safety;
pub mod select;
pub mod sriov;
pub mod text;
pub mod vm;

pub use address::{AddressError, PciAddress, PciSelector, SelectorError};

/// Joins displayable items with `, ` for messages (`0001:03:00.0, 0001:04:00.0`).
pub fn comma_list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let mut text = String::new();
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        text.push_str(&item.to_string());
    }
    text
}
pub use device::{Inventory, PciDevice, SkippedDevice};
pub use devref::{Bus, DeviceRef, DriverName, FslMcName, GroupId, Owner};
pub use ids::{ClassCode, VendorDevice};
pub use text::{JsonFormatter, echoed, escape_controls, write_json};
