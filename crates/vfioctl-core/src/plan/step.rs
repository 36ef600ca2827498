//! Typed steps, and the one place that maps a step to the sysfs attribute it writes.
//!
//! Dry runs print these writes, the executor performs them, and the journal's recovery replays
//! restore steps built the same way, so what is shown is exactly what is done.

use serde::Serialize;

use crate::devref::{DeviceRef, DriverName, GroupId};

/// One sysfs write, with its path as it would be on `/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Write {
    /// The attribute (`/sys/bus/pci/devices/0001:03:00.0/driver_override`).
    pub path: String,
    /// What is written.
    pub value: String,
}

/// One step of carrying out a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Load a kernel module.
    LoadModule {
        /// The module.
        module: String,
    },
    /// Set a device's `driver_override` (`None` clears it).
    SetOverride {
        /// The device.
        device: DeviceRef,
        /// The driver only that may bind it.
        driver: Option<DriverName>,
    },
    /// Unbind a device from its driver: a write that blocks while the driver has users.
    Unbind {
        /// The device.
        device: DeviceRef,
        /// Its driver.
        driver: DriverName,
    },
    /// Ask the bus to probe a device (`drivers_probe`), which honours `driver_override`.
    Probe {
        /// The device.
        device: DeviceRef,
    },
    /// Bind a device to one named driver (`drivers/<driver>/bind`).
    BindDriver {
        /// The device.
        device: DeviceRef,
        /// The driver.
        driver: DriverName,
    },
    /// Wait until the device's driver is the expected one (probes report success even when
    /// nothing bound).
    AwaitDriver {
        /// The device.
        device: DeviceRef,
        /// The driver expected (`None`: unbound).
        driver: Option<DriverName>,
    },
    /// Wait until `/dev/vfio/<group>` exists.
    AwaitGroupNode {
        /// The group.
        group: GroupId,
    },
    /// Set an SR-IOV PF's `sriov_drivers_autoprobe` (whether new VFs probe host drivers).
    SetVfAutoprobe {
        /// The PF.
        device: DeviceRef,
        /// The value.
        on: bool,
    },
    /// Set an SR-IOV PF's `sriov_numvfs`: creates or removes VFs (the kernel takes a new
    /// nonzero count only from 0).
    SetNumVfs {
        /// The PF.
        device: DeviceRef,
        /// The count.
        count: u32,
    },
    /// Change one VF's link settings on its PF's network interface (netlink `RTM_SETLINK`, not
    /// a sysfs write).
    SetVfLink {
        /// The PF.
        device: DeviceRef,
        /// The PF's interface.
        interface: String,
        /// The VF's index.
        index: u32,
        /// What changes.
        change: crate::sriov::VfLinkChange,
    },
}

/// `/sys/bus/<bus>/devices/<device>/<attr>`.
pub fn device_attr(device: &DeviceRef, attr: &str) -> String {
    format!(
        "/sys/bus/{}/devices/{device}/{attr}",
        device.bus().sysfs_name()
    )
}

fn driver_attr(device: &DeviceRef, driver: &DriverName, attr: &str) -> String {
    format!(
        "/sys/bus/{}/drivers/{driver}/{attr}",
        device.bus().sysfs_name()
    )
}

impl Step {
    /// The sysfs write this step makes, if it makes one.
    pub fn write(&self) -> Option<Write> {
        let (path, value) = match self {
            Self::SetOverride { device, driver } => (
                device_attr(device, "driver_override"),
                // A lone newline is how sysfs is told to clear the override.
                driver
                    .as_ref()
                    .map_or_else(|| "\n".to_owned(), ToString::to_string),
            ),
            Self::Unbind { device, driver } => {
                (driver_attr(device, driver, "unbind"), device.to_string())
            }
            Self::BindDriver { device, driver } => {
                (driver_attr(device, driver, "bind"), device.to_string())
            }
            Self::Probe { device } => (
                format!("/sys/bus/{}/drivers_probe", device.bus().sysfs_name()),
                device.to_string(),
            ),
            Self::SetVfAutoprobe { device, on } => (
                device_attr(device, "sriov_drivers_autoprobe"),
                if *on { "1" } else { "0" }.to_owned(),
            ),
            Self::SetNumVfs { device, count } => {
                (device_attr(device, "sriov_numvfs"), count.to_string())
            }
            Self::LoadModule { .. }
            | Self::AwaitDriver { .. }
            | Self::AwaitGroupNode { .. }
            | Self::SetVfLink { .. } => {
                return None;
            }
        };
        Some(Write { path, value })
    }

    /// The device the step is about, if it is about one.
    pub fn device(&self) -> Option<&DeviceRef> {
        match self {
            Self::SetOverride { device, .. }
            | Self::Unbind { device, .. }
            | Self::Probe { device }
            | Self::BindDriver { device, .. }
            | Self::AwaitDriver { device, .. }
            | Self::SetVfAutoprobe { device, .. }
            | Self::SetNumVfs { device, .. }
            | Self::SetVfLink { device, .. } => Some(device),
            Self::LoadModule { .. } | Self::AwaitGroupNode { .. } => None,
        }
    }

    /// The step as a line of a dry run: the write, or the module load.
    pub fn describe(&self) -> Option<String> {
        match self {
            Self::LoadModule { module } => Some(format!("modprobe {module}")),
            Self::SetVfLink {
                interface,
                index,
                change,
                ..
            } => Some(format!(
                "netlink: {interface} vf {index} {}",
                change.describe()
            )),
            _ => self
                .write()
                .map(|w| format!("{} <- {}", w.path, shown_value(&w.value))),
        }
    }
}

/// A written value as people read it: the clearing newline said in words.
pub fn shown_value(value: &str) -> String {
    if value == "\n" {
        "(newline: clears it)".to_owned()
    } else {
        value.to_owned()
    }
}

/// The steps that move one device to `target` through `driver_override`: set the override,
/// unbind the current driver, ask the bus to probe, then check the result.
pub fn override_steps(device: &DeviceRef, current: &DeviceState, target: &DriverName) -> Vec<Step> {
    let mut steps = Vec::new();
    if current.driver_override.as_ref() != Some(target) {
        steps.push(Step::SetOverride {
            device: device.clone(),
            driver: Some(target.clone()),
        });
    }
    if let Some(driver) = &current.driver {
        steps.push(Step::Unbind {
            device: device.clone(),
            driver: driver.clone(),
        });
    }
    steps.push(match device.bus() {
        crate::devref::Bus::Pci => Step::Probe {
            device: device.clone(),
        },
        // vfio-fsl-mc has no match table and fsl-mc's probe order is the container's: only a
        // direct bind under the override is certain to land on it.
        crate::devref::Bus::FslMc => Step::BindDriver {
            device: device.clone(),
            driver: target.clone(),
        },
    });
    steps.push(Step::AwaitDriver {
        device: device.clone(),
        driver: Some(target.clone()),
    });
    steps
}

/// What a device's driver binding looks like now (or looked like before vfioctl touched it).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
pub struct DeviceState {
    /// Its driver.
    pub driver: Option<DriverName>,
    /// Its `driver_override`.
    pub driver_override: Option<DriverName>,
}

/// The steps that return a device from `current` to `original`. Each step checks the state it
/// finds, so running them again after a crash is safe.
pub fn restore_steps(
    device: &DeviceRef,
    current: &DeviceState,
    original: &DeviceState,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let moves = current.driver != original.driver;
    if moves && let Some(driver) = &current.driver {
        steps.push(Step::Unbind {
            device: device.clone(),
            driver: driver.clone(),
        });
    }
    if current.driver_override != original.driver_override {
        steps.push(Step::SetOverride {
            device: device.clone(),
            driver: original.driver_override.clone(),
        });
    }
    if moves {
        if let Some(driver) = &original.driver {
            // The very driver it had, not whichever the bus would pick first.
            steps.push(Step::BindDriver {
                device: device.clone(),
                driver: driver.clone(),
            });
        }
        steps.push(Step::AwaitDriver {
            device: device.clone(),
            driver: original.driver.clone(),
        });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drv(name: &str) -> DriverName {
        name.parse().unwrap()
    }

    #[test]
    fn one_mapping_for_both_buses() {
        let pci: DeviceRef = "0001:03:00.0".parse().unwrap();
        let dprc: DeviceRef = "dprc.2".parse().unwrap();
        let write = |s: Step| s.write().map(|w| format!("{} <- {:?}", w.path, w.value));
        assert_eq!(
            write(Step::Unbind {
                device: pci.clone(),
                driver: drv("ath10k_pci")
            })
            .unwrap(),
            "/sys/bus/pci/drivers/ath10k_pci/unbind <- \"0001:03:00.0\""
        );
        assert_eq!(
            write(Step::SetOverride {
                device: dprc.clone(),
                driver: None
            })
            .unwrap(),
            "/sys/bus/fsl-mc/devices/dprc.2/driver_override <- \"\\n\""
        );
        assert_eq!(
            write(Step::Probe { device: pci }).unwrap(),
            "/sys/bus/pci/drivers_probe <- \"0001:03:00.0\""
        );
        assert!(write(Step::AwaitGroupNode { group: GroupId(1) }).is_none());
    }

    #[test]
    fn restore_returns_to_the_original_driver_not_the_default() {
        let dev: DeviceRef = "0001:03:00.0".parse().unwrap();
        let now = DeviceState {
            driver: Some(drv("vfio-pci")),
            driver_override: Some(drv("vfio-pci")),
        };
        let original = DeviceState {
            driver: Some(drv("ath10k_pci")),
            driver_override: None,
        };
        let writes: Vec<String> = restore_steps(&dev, &now, &original)
            .iter()
            .filter_map(|s| s.write().map(|w| format!("{} <- {:?}", w.path, w.value)))
            .collect();
        assert_eq!(
            writes,
            [
                "/sys/bus/pci/drivers/vfio-pci/unbind <- \"0001:03:00.0\"",
                "/sys/bus/pci/devices/0001:03:00.0/driver_override <- \"\\n\"",
                "/sys/bus/pci/drivers/ath10k_pci/bind <- \"0001:03:00.0\"",
            ]
        );
        assert!(restore_steps(&dev, &original, &original).is_empty());
    }
}
