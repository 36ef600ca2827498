//! Plans: what binding or restoring a set of devices will do, decided before anything is done.
//!
//! A plan is built from the inventory, the devices the user named, and facts about how the host
//! uses its devices. It names every device that moves (a whole IOMMU group, unless `--only`), what
//! driver each has and will have, the exact sysfs writes in order, and the refusals that stop it.
//! The host layer carries it out; `--dry-run` prints it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::address::PciAddress;
use crate::device::{Inventory, PciDevice};
use crate::groups::viability;

/// The driver vfioctl binds PCI devices to.
pub const VFIO_PCI: &str = "vfio-pci";
/// The module that provides it.
pub const VFIO_PCI_MODULE: &str = "vfio-pci";

pub use crate::safety::HostUse;

/// Options of a bind.
#[derive(Debug, Clone, Default)]
pub struct BindOptions {
    /// Bind only the named functions, not their whole groups.
    pub only: bool,
    /// Override the host-safety refusals.
    pub force: bool,
}

/// What happens to one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// It moves to vfio-pci.
    Bind,
    /// It is on vfio-pci already.
    AlreadyBound,
    /// A bridge or port that stays on its (DMA-safe) driver.
    StaysOnPortDriver,
    /// A group member left on its driver because of `--only`.
    LeftOut,
}

/// One device in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedDevice {
    /// The device.
    pub address: PciAddress,
    /// Its IOMMU group.
    pub iommu_group: Option<u32>,
    /// Its driver now.
    pub current_driver: Option<String>,
    /// Its `driver_override` now.
    pub current_override: Option<String>,
    /// The driver it will have.
    pub target_driver: Option<String>,
    /// What happens to it.
    pub disposition: Disposition,
    /// Why, in words.
    pub why: String,
}

/// Why a plan may not go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    /// A device backs the host's disk, network or console.
    HostCritical,
    /// A bridge or port was named directly; vfio-pci does not take bridges.
    NotEndpoint,
    /// The group can never become usable (a bridge on a driver vfio cannot replace).
    NeverViable,
    /// The host has no IOMMU, so vfio-pci cannot bind anything.
    NoIommu,
    /// A device backs what the running host cannot lose (its root filesystem, the network
    /// that carries it); `--force` does not override it.
    HostEssential,
    /// A host-critical function (host bridge, LPC bridge, SMBus, IOMMU) or its group.
    PlatformFunction,
    /// An SR-IOV PF whose VFs are in use: unbinding it would destroy them.
    SriovVfsInUse,
}

/// A reason the plan may not go ahead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// The kind.
    pub kind: RefusalKind,
    /// The device it is about.
    pub device: PciAddress,
    /// One sentence naming the device and the reason.
    pub text: String,
    /// What to do.
    pub remedy: String,
    /// `--force` overrides it.
    pub overridable: bool,
}

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
    /// Write a sysfs attribute.
    Write(Write),
    /// Unbind a device from its driver (a write that may block while the driver has users).
    Unbind {
        /// The device.
        device: PciAddress,
        /// Its driver.
        driver: String,
        /// The write.
        write: Write,
    },
    /// Wait until the device's driver is the expected one.
    AwaitDriver {
        /// The device.
        device: PciAddress,
        /// The driver expected (`None`: unbound).
        driver: Option<String>,
    },
    /// Unbind an fsl-mc object from its driver.
    UnbindObject {
        /// The object (`dprc.2`).
        object: String,
        /// Its driver.
        driver: String,
        /// The write.
        write: Write,
    },
    /// Wait until an fsl-mc object's driver is the expected one.
    AwaitObjectDriver {
        /// The object.
        object: String,
        /// The driver expected (`None`: unbound).
        driver: Option<String>,
    },
    /// Wait until `/dev/vfio/<group>` exists.
    AwaitGroupNode {
        /// The group.
        group: u32,
    },
}

/// A bind plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindPlan {
    /// Every device considered, in address order.
    pub devices: Vec<PlannedDevice>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// What stops the plan.
    pub refusals: Vec<Refusal>,
    /// Things the user should know that do not stop it.
    pub warnings: Vec<String>,
    /// The groups the plan touches.
    pub groups: Vec<u32>,
}

impl BindPlan {
    /// The writes alone, in order (for `--dry-run --json`).
    pub fn writes(&self) -> Vec<&Write> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Write(w)
                | Step::Unbind { write: w, .. }
                | Step::UnbindObject { write: w, .. } => Some(w),
                _ => None,
            })
            .collect()
    }

    /// The devices that will change driver.
    pub fn to_bind(&self) -> impl Iterator<Item = &PlannedDevice> {
        self.devices
            .iter()
            .filter(|d| d.disposition == Disposition::Bind)
    }

    /// Refusals that still stand given `force`.
    pub fn blocking_refusals(&self, force: bool) -> Vec<&Refusal> {
        self.refusals
            .iter()
            .filter(|r| !(force && r.overridable))
            .collect()
    }
}

fn sysfs_device(address: &PciAddress, attr: &str) -> String {
    format!("/sys/bus/pci/devices/{address}/{attr}")
}

fn write(path: String, value: impl Into<String>) -> Write {
    Write {
        path,
        value: value.into(),
    }
}

/// The writes that move one device to `driver` through `driver_override`: set the override,
/// unbind the current driver, ask the bus to probe, then check the result (drivers_probe reports
/// success even when nothing bound).
pub fn override_steps(dev: &PciDevice, driver: &str) -> Vec<Step> {
    let address = dev.address;
    let mut steps = Vec::new();
    if dev.driver_override.as_deref() != Some(driver) {
        steps.push(Step::Write(write(
            sysfs_device(&address, "driver_override"),
            driver,
        )));
    }
    if let Some(current) = &dev.driver {
        steps.push(Step::Unbind {
            device: address,
            driver: current.clone(),
            write: write(
                format!("/sys/bus/pci/drivers/{current}/unbind"),
                address.to_string(),
            ),
        });
    }
    steps.push(Step::Write(write(
        "/sys/bus/pci/drivers_probe".to_owned(),
        address.to_string(),
    )));
    steps.push(Step::AwaitDriver {
        device: address,
        driver: Some(driver.to_owned()),
    });
    steps
}

/// Plans binding `named` (and, without `--only`, every endpoint of their groups) to vfio-pci.
///
/// `host_uses` says how the host uses each device; `vfio_loaded` whether the vfio-pci driver is
/// registered already.
pub fn plan_bind(
    inventory: &Inventory,
    named: &[PciAddress],
    host_uses: &BTreeMap<PciAddress, Vec<HostUse>>,
    vfio_loaded: bool,
    options: &BindOptions,
) -> BindPlan {
    let mut refusals = Vec::new();
    let mut warnings = Vec::new();
    let named_set: BTreeSet<PciAddress> = named.iter().copied().collect();

    if !inventory.iommu_enabled
        && let Some(first) = named.first()
    {
        refusals.push(Refusal {
            kind: RefusalKind::NoIommu,
            device: *first,
            text: "the IOMMU is off on this host, so vfio-pci cannot bind any device".to_owned(),
            remedy: "enable VT-d/AMD-Vi or the SMMU in the firmware and boot with \
                     intel_iommu=on (Intel) or amd_iommu=on (AMD); see 'vfioctl doctor'"
                .to_owned(),
            overridable: false,
        });
    }

    // Which devices the plan covers: the named ones and, unless --only, their groups.
    let mut covered: BTreeSet<PciAddress> = BTreeSet::new();
    let mut groups: BTreeSet<u32> = BTreeSet::new();
    for address in named {
        let Some(dev) = inventory.get(address) else {
            continue;
        };
        if dev.is_bridge() {
            refusals.push(Refusal {
                kind: RefusalKind::NotEndpoint,
                device: *address,
                text: format!(
                    "{address} is a {} (a bridge); vfio-pci only takes endpoints",
                    dev.role()
                ),
                remedy: "name the devices below it; bridges stay on their port driver".to_owned(),
                overridable: false,
            });
            continue;
        }
        covered.insert(*address);
        if let Some(group) = dev.iommu_group {
            groups.insert(group);
            covered.extend(inventory.group_members(address));
        } else if inventory.iommu_enabled {
            warnings.push(format!(
                "{address} has no IOMMU group: the IOMMU does not cover it, and the kernel will \
                 refuse to bind it to vfio-pci"
            ));
        }
    }

    let mut devices = Vec::new();
    let mut steps = Vec::new();
    if !vfio_loaded {
        steps.push(Step::LoadModule {
            module: VFIO_PCI_MODULE.to_owned(),
        });
    }
    for address in &covered {
        let Some(dev) = inventory.get(address) else {
            continue;
        };
        let on_vfio = dev.driver.as_deref() == Some(VFIO_PCI);
        let (disposition, why) = if dev.is_bridge() {
            (
                Disposition::StaysOnPortDriver,
                format!(
                    "{} stays on {}: bridges do not go to VMs",
                    dev.role(),
                    dev.driver.as_deref().unwrap_or("no driver")
                ),
            )
        } else if on_vfio {
            (Disposition::AlreadyBound, "already on vfio-pci".to_owned())
        } else if options.only && !named_set.contains(address) {
            (
                Disposition::LeftOut,
                "left on its driver (--only): the group stays unusable until it follows".to_owned(),
            )
        } else if named_set.contains(address) {
            (Disposition::Bind, "named".to_owned())
        } else {
            (
                Disposition::Bind,
                format!(
                    "shares IOMMU group {} with a named device",
                    dev.iommu_group.map_or("-".to_owned(), |g| g.to_string())
                ),
            )
        };
        if disposition == Disposition::Bind {
            warnings.extend(crate::safety::sriov_warning(dev));
            steps.extend(override_steps(dev, VFIO_PCI));
        }
        devices.push(PlannedDevice {
            address: *address,
            iommu_group: dev.iommu_group,
            current_driver: dev.driver.clone(),
            current_override: dev.driver_override.clone(),
            target_driver: match disposition {
                Disposition::Bind | Disposition::AlreadyBound => Some(VFIO_PCI.to_owned()),
                _ => dev.driver.clone(),
            },
            disposition,
            why,
        });
    }

    let moving: Vec<PciAddress> = devices
        .iter()
        .filter(|d| d.disposition == Disposition::Bind)
        .map(|d| d.address)
        .collect();
    refusals.extend(crate::safety::refusals(
        inventory, host_uses, named, &moving,
    ));
    for group in &groups {
        let members = inventory.groups.get(group).cloned().unwrap_or_default();
        let v = viability(inventory, &members);
        for blocker in v.blockers.iter().filter(|b| b.permanent) {
            refusals.push(Refusal {
                kind: RefusalKind::NeverViable,
                device: blocker.device,
                text: format!(
                    "IOMMU group {group} can never be used by a VM while {} stays on {}: it is a \
                     bridge, vfio-pci cannot take it, and {} is not a driver VFIO trusts to do no DMA",
                    blocker.device, blocker.driver, blocker.driver
                ),
                remedy: format!(
                    "unbind {} from {} (it then has no driver, which VFIO accepts)",
                    blocker.device, blocker.driver
                ),
                overridable: true,
            });
        }
        if options.only {
            let left: Vec<String> = devices
                .iter()
                .filter(|d| d.iommu_group == Some(*group) && d.disposition == Disposition::LeftOut)
                .map(|d| d.address.to_string())
                .collect();
            if !left.is_empty() {
                warnings.push(format!(
                    "IOMMU group {group} stays unusable by a VM until {} also leave their host \
                     drivers",
                    left.join(", ")
                ));
            }
        }
        if devices
            .iter()
            .any(|d| d.iommu_group == Some(*group) && d.disposition == Disposition::Bind)
        {
            steps.push(Step::AwaitGroupNode { group: *group });
        }
    }

    BindPlan {
        devices,
        steps,
        refusals,
        warnings,
        groups: groups.into_iter().collect(),
    }
}

/// What a device looked like before vfioctl touched it: what restore returns it to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OriginalState {
    /// The device.
    pub address: PciAddress,
    /// Its driver then.
    pub driver: Option<String>,
    /// Its `driver_override` then.
    pub driver_override: Option<String>,
    /// Its IOMMU group then.
    pub iommu_group: Option<u32>,
}

/// The steps that return a device from its current state to `original`. Each step checks the
/// state it finds, so running them again after a crash is safe.
pub fn restore_steps(current: &PciDevice, original: &OriginalState) -> Vec<Step> {
    let address = current.address;
    let mut steps = Vec::new();
    if let Some(driver) = &current.driver
        && current.driver != original.driver
    {
        steps.push(Step::Unbind {
            device: address,
            driver: driver.clone(),
            write: write(
                format!("/sys/bus/pci/drivers/{driver}/unbind"),
                address.to_string(),
            ),
        });
    }
    if current.driver_override != original.driver_override {
        steps.push(Step::Write(write(
            sysfs_device(&address, "driver_override"),
            original
                .driver_override
                .clone()
                .unwrap_or_else(|| "\n".to_owned()),
        )));
    }
    if let Some(driver) = &original.driver
        && current.driver != original.driver
    {
        // Bind to the very driver it had, not whichever the bus would pick first.
        steps.push(Step::Write(write(
            format!("/sys/bus/pci/drivers/{driver}/bind"),
            address.to_string(),
        )));
    }
    if current.driver != original.driver {
        steps.push(Step::AwaitDriver {
            device: address,
            driver: original.driver.clone(),
        });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigInfo, PcieType};
    use crate::device::tests::addr;
    use crate::ids::ClassCode;

    fn endpoint(a: &str, driver: Option<&str>, group: u32) -> PciDevice {
        let mut d = PciDevice::new(addr(a), "168c:003e".parse().unwrap(), ClassCode(0x028000));
        d.driver = driver.map(str::to_owned);
        d.iommu_group = Some(group);
        d.config = ConfigInfo {
            header_type: Some(0),
            pcie_type: Some(PcieType::Endpoint),
            ..ConfigInfo::default()
        };
        d
    }

    fn port(a: &str, group: u32) -> PciDevice {
        let mut d = PciDevice::new(addr(a), "12d8:b304".parse().unwrap(), ClassCode(0x060400));
        d.driver = Some("pcieport".into());
        d.iommu_group = Some(group);
        d.config.header_type = Some(1);
        d
    }

    fn ten64_like() -> Inventory {
        let groups = BTreeMap::from([(
            1,
            vec![
                addr("0001:00:00.0"),
                addr("0001:03:00.0"),
                addr("0001:04:00.0"),
            ],
        )]);
        Inventory::new(
            vec![
                port("0001:00:00.0", 1),
                endpoint("0001:03:00.0", Some("ath10k_pci"), 1),
                endpoint("0001:04:00.0", None, 1),
            ],
            true,
            groups,
        )
    }

    #[test]
    fn naming_one_function_plans_the_whole_group() {
        let plan = plan_bind(
            &ten64_like(),
            &[addr("0001:03:00.0")],
            &BTreeMap::new(),
            true,
            &BindOptions::default(),
        );
        let bound: Vec<_> = plan.to_bind().map(|d| d.address.to_string()).collect();
        assert_eq!(bound, ["0001:03:00.0", "0001:04:00.0"]);
        assert!(plan.refusals.is_empty());
        let port = &plan.devices[0];
        assert_eq!(port.disposition, Disposition::StaysOnPortDriver);
    }

    #[test]
    fn writes_are_override_unbind_probe_never_new_id() {
        let plan = plan_bind(
            &ten64_like(),
            &[addr("0001:03:00.0")],
            &BTreeMap::new(),
            false,
            &BindOptions::default(),
        );
        let writes: Vec<(String, String)> = plan
            .writes()
            .iter()
            .map(|w| (w.path.clone(), w.value.clone()))
            .collect();
        assert_eq!(
            writes,
            [
                (
                    "/sys/bus/pci/devices/0001:03:00.0/driver_override".into(),
                    "vfio-pci".into()
                ),
                (
                    "/sys/bus/pci/drivers/ath10k_pci/unbind".into(),
                    "0001:03:00.0".into()
                ),
                ("/sys/bus/pci/drivers_probe".into(), "0001:03:00.0".into()),
                (
                    "/sys/bus/pci/devices/0001:04:00.0/driver_override".into(),
                    "vfio-pci".into()
                ),
                ("/sys/bus/pci/drivers_probe".into(), "0001:04:00.0".into()),
            ]
        );
        assert!(matches!(plan.steps[0], Step::LoadModule { .. }));
        assert!(!plan.writes().iter().any(|w| w.path.ends_with("new_id")));
    }

    #[test]
    fn host_use_of_a_group_member_refuses_overridably() {
        let uses = BTreeMap::from([(
            addr("0001:04:00.0"),
            vec![HostUse::Mount {
                block: "nvme0n1p2".into(),
                mount_point: "/srv".into(),
                via: Vec::new(),
            }],
        )]);
        let plan = plan_bind(
            &ten64_like(),
            &[addr("0001:03:00.0")],
            &uses,
            true,
            &BindOptions::default(),
        );
        assert_eq!(plan.refusals.len(), 1);
        assert!(plan.refusals[0].text.contains("mounted on /srv"));
        assert!(plan.blocking_refusals(true).is_empty());
    }

    #[test]
    fn only_leaves_the_rest_and_warns() {
        let options = BindOptions {
            only: true,
            force: false,
        };
        let plan = plan_bind(
            &ten64_like(),
            &[addr("0001:03:00.0")],
            &BTreeMap::new(),
            true,
            &options,
        );
        assert_eq!(plan.to_bind().count(), 1);
        assert!(plan.warnings.iter().any(|w| w.contains("stays unusable")));
    }

    #[test]
    fn naming_a_bridge_is_refused_for_good() {
        let plan = plan_bind(
            &ten64_like(),
            &[addr("0001:00:00.0")],
            &BTreeMap::new(),
            true,
            &BindOptions::default(),
        );
        assert_eq!(plan.refusals[0].kind, RefusalKind::NotEndpoint);
        assert_eq!(plan.blocking_refusals(true).len(), 1);
    }

    #[test]
    fn already_bound_group_plans_no_writes() {
        let mut inv = ten64_like();
        inv = Inventory::new(
            inv.devices()
                .iter()
                .cloned()
                .map(|mut d| {
                    if !d.is_bridge() {
                        d.driver = Some("vfio-pci".into());
                        d.driver_override = Some("vfio-pci".into());
                    }
                    d
                })
                .collect(),
            true,
            inv.groups.clone(),
        );
        let plan = plan_bind(
            &inv,
            &[addr("0001:03:00.0")],
            &BTreeMap::new(),
            true,
            &BindOptions::default(),
        );
        assert!(plan.writes().is_empty());
        assert_eq!(plan.to_bind().count(), 0);
    }

    #[test]
    fn restore_returns_to_the_original_driver_not_the_default() {
        let mut now = endpoint("0001:03:00.0", Some("vfio-pci"), 1);
        now.driver_override = Some("vfio-pci".into());
        let original = OriginalState {
            address: now.address,
            driver: Some("ath10k_pci".into()),
            driver_override: None,
            iommu_group: Some(1),
        };
        let writes: Vec<String> = restore_steps(&now, &original)
            .iter()
            .filter_map(|s| match s {
                Step::Write(w) | Step::Unbind { write: w, .. } => {
                    Some(format!("{} <- {:?}", w.path, w.value))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            writes,
            [
                "/sys/bus/pci/drivers/vfio-pci/unbind <- \"0001:03:00.0\"",
                "/sys/bus/pci/devices/0001:03:00.0/driver_override <- \"\\n\"",
                "/sys/bus/pci/drivers/ath10k_pci/bind <- \"0001:03:00.0\"",
            ]
        );
    }

    #[test]
    fn restore_of_a_restored_device_does_nothing() {
        let now = endpoint("0001:03:00.0", Some("ath10k_pci"), 1);
        let original = OriginalState {
            address: now.address,
            driver: Some("ath10k_pci".into()),
            driver_override: None,
            iommu_group: Some(1),
        };
        assert!(restore_steps(&now, &original).is_empty());
    }
}
