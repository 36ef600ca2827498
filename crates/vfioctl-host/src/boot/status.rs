//! `vfioctl boot status`: for each boot device, is it on vfio-pci, did a host driver ever bind it
//! this boot, did its identity drift; and is the rule installed as the definitions say.

use std::path::Path;

use serde::Serialize;

use vfioctl_core::boot::BootDevice;
use vfioctl_core::boot::udev::{HOST_DRIVER_KEY, RULE_PATH, db_property, render_rule};
use vfioctl_core::plan::VFIO_PCI;
use vfioctl_core::{Inventory, VendorDevice};

use super::{BootError, definitions_boot_devices, load_manifest, read_optional};
use crate::HostRoot;

/// Where one boot device stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BootState {
    /// On vfio-pci.
    Vfio,
    /// On a host driver.
    Host,
    /// On no driver.
    Unbound,
    /// Another device is at the address: the rule left it to the host.
    Drifted,
    /// No device at the address.
    Missing,
}

/// One boot device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceStatus {
    /// The device as configured.
    #[serde(flatten)]
    pub device: BootDevice,
    /// What is at the address.
    pub found_id: Option<VendorDevice>,
    /// Its subsystem.
    pub found_subsystem: Option<VendorDevice>,
    /// Its driver.
    pub driver: Option<String>,
    /// Its `driver_override`.
    pub driver_override: Option<String>,
    /// Where it stands.
    pub state: BootState,
    /// A host driver that bound it this boot: its driver now, or the one the rule recorded in
    /// the udev database. `None` when none did, or when there is no udev database to tell.
    pub host_driver: Option<String>,
    /// The udev database has an entry for it (without one, `host_driver` tells only the present).
    pub udev_db: bool,
    /// One sentence about it.
    pub detail: String,
}

/// The rule file against what the definitions say now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleState {
    /// Not installed.
    Missing,
    /// Installed and as the definitions say.
    Current,
    /// Installed, but the definitions changed since: run `boot install` again.
    Stale,
}

/// Everything `boot status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct BootStatus {
    /// The rule, as on `/`.
    pub rule_path: String,
    /// The rule's state.
    pub rule: RuleState,
    /// The initramfs generator of the last install.
    pub generator: Option<String>,
    /// Every boot device.
    pub devices: Vec<DeviceStatus>,
    /// The rule is current and every device is on vfio-pci and no host driver touched it.
    pub ok: bool,
}

fn device_status(root: &HostRoot, inventory: &Inventory, d: BootDevice) -> DeviceStatus {
    let found = inventory.get(&d.address);
    let db = std::fs::read_to_string(root.join(format!("run/udev/data/+pci:{}", d.address))).ok();
    let recorded = db.as_deref().and_then(|t| db_property(t, HOST_DRIVER_KEY));
    let driver = found.and_then(|f| f.driver.clone());
    let identity_ok =
        found.is_some_and(|f| f.id == d.id && d.subsystem.is_none_or(|s| f.subsystem == Some(s)));
    let state = match (found, &driver) {
        (None, _) => BootState::Missing,
        (Some(_), _) if !identity_ok => BootState::Drifted,
        (Some(_), Some(drv)) if drv == VFIO_PCI => BootState::Vfio,
        (Some(_), Some(_)) => BootState::Host,
        (Some(_), None) => BootState::Unbound,
    };
    let host_driver = match state {
        BootState::Host => driver.clone(),
        _ => recorded,
    };
    let detail = match state {
        BootState::Missing => format!("no device at {}: nothing was taken", d.address),
        BootState::Drifted => {
            let f = found.expect("drifted means found");
            let is = match f.subsystem {
                Some(s) if d.subsystem.is_some() => format!("{} (subsystem {s})", f.id),
                _ => f.id.to_string(),
            };
            format!(
                "{} should be {} but is {is}: the rule left it to the host",
                d.address,
                d.expected()
            )
        }
        BootState::Vfio => match &host_driver {
            Some(h) => format!("on vfio-pci, but {h} bound it first this boot (the rule moved it)"),
            None if db.is_some() => "on vfio-pci; no host driver bound it this boot".to_owned(),
            None => "on vfio-pci (no udev database to tell whether a host driver bound it first)"
                .to_owned(),
        },
        BootState::Host => format!(
            "on the host driver {}: the rule did not take it (not installed when it was added, \
             or not in the initramfs)",
            driver.as_deref().unwrap_or_default()
        ),
        BootState::Unbound => "on no driver: vfio-pci is not loaded (modprobe vfio-pci)".to_owned(),
    };
    DeviceStatus {
        found_id: found.map(|f| f.id),
        found_subsystem: found.and_then(|f| f.subsystem),
        driver_override: found.and_then(|f| f.driver_override.clone()),
        driver,
        state,
        host_driver,
        udev_db: db.is_some(),
        detail,
        device: d,
    }
}

/// Reads the boot status.
///
/// # Errors
///
/// A definition or the manifest cannot be read.
pub fn status(root: &HostRoot, dir: &Path, inventory: &Inventory) -> Result<BootStatus, BootError> {
    let devices = definitions_boot_devices(dir)?;
    let installed = read_optional(&root.join(RULE_PATH))?;
    let rule = match installed {
        None => RuleState::Missing,
        Some(t) if t == render_rule(&devices) => RuleState::Current,
        Some(_) => RuleState::Stale,
    };
    let generator = load_manifest(root)?.and_then(|m| m.generator);
    let devices: Vec<DeviceStatus> = devices
        .into_iter()
        .map(|d| device_status(root, inventory, d))
        .collect();
    let ok = rule == RuleState::Current
        && devices
            .iter()
            .all(|d| d.state == BootState::Vfio && d.host_driver.is_none());
    Ok(BootStatus {
        rule_path: format!("/{RULE_PATH}"),
        rule,
        generator,
        devices,
        ok,
    })
}
