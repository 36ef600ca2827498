//! The decisions of the Kubernetes device plugin, without I/O: its configuration, which ready
//! IOMMU group is advertised under which resource, a device's health, and what `Allocate`
//! answers. The host layer serves them over the kubelet's gRPC API.

mod config;

pub use config::{ConfigError, PluginConfig, Resource, Selector};

use serde::Serialize;

use crate::export::{ReadyGroup, ReadyMember, kubevirt};
use crate::{Inventory, PciAddress, VendorDevice};

/// One advertised device: a whole IOMMU group under one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Advertised {
    /// The resource it is advertised under.
    pub resource: String,
    /// The group.
    pub group: ReadyGroup,
}

/// The groups to advertise: each ready group every endpoint of which a selector of one resource
/// matches, under the first such resource. A group whose endpoints match different resources,
/// or only some of them, is left out: a group goes to a pod whole or not at all.
pub fn advertised(config: &PluginConfig, ready: &[ReadyGroup]) -> Vec<Advertised> {
    ready
        .iter()
        .filter_map(|group| {
            config
                .resources
                .iter()
                .find(|r| group.members.iter().all(|m| r.matches(m)))
                .map(|r| Advertised {
                    resource: r.name.clone(),
                    group: group.clone(),
                })
        })
        .collect()
}

/// Why an advertised device is not usable now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unhealthy {
    /// A member is gone.
    #[error("{address} ({id}) is gone")]
    Gone {
        /// The member.
        address: PciAddress,
        /// Its identity.
        id: VendorDevice,
    },
    /// A member's identity changed.
    #[error("{address} should be {expected} but is {found}")]
    Changed {
        /// The member.
        address: PciAddress,
        /// Its identity when advertised.
        expected: VendorDevice,
        /// Its identity now.
        found: VendorDevice,
    },
    /// A member left vfio-pci.
    #[error("{address} is on {} instead of vfio-pci", driver.as_deref().unwrap_or("no driver"))]
    NotOnVfio {
        /// The member.
        address: PciAddress,
        /// Its driver now.
        driver: Option<String>,
    },
    /// The group is not viable: an endpoint of it is on a driver that does DMA of its own.
    #[error("IOMMU group {group} is not viable: {}", blockers.join(", "))]
    NotViable {
        /// The group.
        group: u32,
        /// `ADDRESS is on DRIVER` for each blocker.
        blockers: Vec<String>,
    },
}

fn member_health(inv: &Inventory, m: &ReadyMember) -> Result<(), Unhealthy> {
    let Some(device) = inv.get(&m.address) else {
        return Err(Unhealthy::Gone {
            address: m.address,
            id: m.id,
        });
    };
    if device.id != m.id {
        return Err(Unhealthy::Changed {
            address: m.address,
            expected: m.id,
            found: device.id,
        });
    }
    if !device
        .driver
        .as_deref()
        .is_some_and(crate::plan::is_vfio_pci_driver)
    {
        return Err(Unhealthy::NotOnVfio {
            address: m.address,
            driver: device.driver.clone(),
        });
    }
    Ok(())
}

/// Whether the group is usable now: every member still there, with the same identity, on
/// vfio-pci, and the group viable (every endpoint in the kernel's group on a vfio driver or on
/// none, so a device that joined the group counts too).
pub fn health(inv: &Inventory, group: &ReadyGroup) -> Result<(), Unhealthy> {
    for m in &group.members {
        member_health(inv, m)?;
    }
    let number = group
        .members
        .first()
        .and_then(|m| inv.get(&m.address))
        .and_then(|d| d.iommu_group)
        .unwrap_or(group.group);
    let members = inv.groups.get(&number).cloned().unwrap_or_default();
    let viability = crate::groups::viability(inv, &members);
    if !viability.viable {
        return Err(Unhealthy::NotViable {
            group: number,
            blockers: viability
                .blockers
                .iter()
                .map(|b| format!("{} is on {}", b.device, b.driver))
                .collect(),
        });
    }
    Ok(())
}

/// A device node a container gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceNode {
    /// The path in the container.
    pub container_path: String,
    /// The path on the host.
    pub host_path: String,
    /// Cgroup permissions.
    pub permissions: &'static str,
}

/// What one container's `Allocate` gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Allocation {
    /// `/dev/vfio/vfio` and each group's node, read-write.
    pub devices: Vec<DeviceNode>,
    /// `PCI_RESOURCE_<NAME>`: every endpoint address of the allocated groups, comma-separated,
    /// as KubeVirt's virt-launcher reads it.
    pub envs: Vec<(String, String)>,
}

/// The allocation of `groups` (the container's devices, all of `resource`).
pub fn allocation(resource: &str, groups: &[(u32, &ReadyGroup)]) -> Allocation {
    let node = |path: String| DeviceNode {
        container_path: path.clone(),
        host_path: path,
        permissions: "rw",
    };
    let mut devices = vec![node("/dev/vfio/vfio".to_owned())];
    let mut addresses = Vec::new();
    for (number, group) in groups {
        devices.push(node(format!("/dev/vfio/{number}")));
        addresses.extend(group.addresses().map(|a| a.to_string()));
    }
    Allocation {
        devices,
        envs: vec![(kubevirt::env_var(resource), addresses.join(","))],
    }
}
