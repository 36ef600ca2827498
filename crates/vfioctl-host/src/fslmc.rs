//! Reading the fsl-mc bus (NXP DPAA2). Containers bind through the same plan and transaction
//! as PCI functions.
//!
//! Objects live under the management complex's platform device, nested as the kernel adds them
//! (`.../fsl-mc/dprc.1/dprc.2/dpni.3`); `/sys/bus/fsl-mc/devices/<name>` links to them. A
//! container's objects exist in sysfs only while a driver holds the container.

use std::fs;
use std::path::Path;

use crate::read::{dir_names, link_name, parse_driver_override, read_attr, resolve_link};
use crate::{HostError, HostRoot};
use vfioctl_core::fslmc::{FslMcInventory, FslMcObject, VFIO_FSL_MC};

/// True when the host has an fsl-mc bus.
pub fn has_fslmc(root: &HostRoot) -> bool {
    root.join("sys/bus/fsl-mc").is_dir()
}

/// Reads one object from its sysfs directory.
pub fn read_object(name: &str, dir: &Path) -> Result<FslMcObject, HostError> {
    let obj_type = name.split_once('.').map_or(name, |(t, _)| t).to_owned();
    let container = dir
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok());
    let net_interfaces = dir_names(&dir.join("net"));
    Ok(FslMcObject {
        name: name.to_owned(),
        obj_type,
        driver: link_name(&dir.join("driver"))?,
        driver_override: read_attr(&dir.join("driver_override"))?
            .as_deref()
            .and_then(parse_driver_override),
        iommu_group: link_name(&dir.join("iommu_group"))?.and_then(|g| g.parse().ok()),
        container,
        net_interfaces,
    })
}

/// Reads every object on the fsl-mc bus; empty when the host has none.
pub fn read_fslmc(root: &HostRoot) -> Result<FslMcInventory, HostError> {
    let devices = root.join("sys/bus/fsl-mc/devices");
    let Ok(entries) = fs::read_dir(&devices) else {
        return Ok(FslMcInventory::default());
    };
    let mut objects = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Names are `<type>.<id>`; anything else is not an object the kernel made.
        let Some((kind, id)) = name.split_once('.') else {
            continue;
        };
        if kind.is_empty() || id.parse::<u32>().is_err() {
            continue;
        }
        let dir = resolve_link(root.path(), &entry.path())?;
        objects.push(read_object(&name, &dir)?);
    }
    Ok(FslMcInventory::new(objects))
}

/// How the host uses the network interfaces of each fsl-mc object, by object name.
pub fn fslmc_host_uses(
    root: &HostRoot,
    inventory: &FslMcInventory,
    usage: &crate::usage::HostUsage,
) -> std::collections::BTreeMap<String, Vec<vfioctl_core::plan::HostUse>> {
    inventory
        .objects()
        .iter()
        .filter_map(|object| {
            let uses: Vec<_> = object
                .net_interfaces
                .iter()
                .filter_map(|iface| crate::apply::net_host_use(root, usage, iface))
                .collect();
            (!uses.is_empty()).then(|| (object.name.clone(), uses))
        })
        .collect()
}

/// True when the `vfio-fsl-mc` driver is registered.
pub fn vfio_fslmc_loaded(root: &HostRoot) -> bool {
    root.join(format!("sys/bus/fsl-mc/drivers/{VFIO_FSL_MC}"))
        .is_dir()
}
