//! NXP DPAA2 objects on the `fsl-mc` bus.
//!
//! On Layerscape SoCs (the Ten64's LS1088A) the network hardware is not PCI: the management
//! complex firmware carves it into objects (DPNI, DPMAC, DPIO, ...) grouped in containers called
//! DPRCs. A container is the unit of VFIO assignment, named `dprc.<n>` in
//! `/sys/bus/fsl-mc/devices`, bound to the `vfio-fsl-mc` driver and given to QEMU as
//! `-device vfio-fsl-mc,host=dprc.2`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The name of a DPAA2 resource container, `dprc.<n>` as the kernel names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DprcName(u32);

/// Why a string is not a DPRC name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a DPAA2 container name (expected dprc.<number>, e.g. dprc.2)")]
pub struct DprcNameError(pub String);

impl DprcName {
    /// The container with this number.
    pub fn new(id: u32) -> Self {
        Self(id)
    }

    /// The container number (`2` for `dprc.2`).
    pub fn id(self) -> u32 {
        self.0
    }
}

impl FromStr for DprcName {
    type Err = DprcNameError;

    /// Accepts the kernel's form only: `dprc.` and a decimal number without sign or leading
    /// zeros, so every accepted name prints back the same and matches a sysfs entry.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || DprcNameError(text.to_owned());
        let digits = text.strip_prefix("dprc.").ok_or_else(err)?;
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if !canonical {
            return Err(err());
        }
        digits.parse().map(Self).map_err(|_| err())
    }
}

impl fmt::Display for DprcName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dprc.{}", self.0)
    }
}

impl Serialize for DprcName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DprcName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The driver that hands DPAA2 containers to VFIO.
pub const VFIO_FSL_MC: &str = "vfio-fsl-mc";
/// The module that provides it.
pub const VFIO_FSL_MC_MODULE: &str = "vfio_fsl_mc";

/// One object on the fsl-mc bus: a container (`dprc.N`) or an object inside one (`dpni.3`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FslMcObject {
    /// The kernel's name, `<type>.<id>`.
    pub name: String,
    /// The object type (`dprc`, `dpni`, `dpio`, `dpbp`, `dpmcp`, `dpcon`, `dpmac`, `dpci`, ...).
    pub obj_type: String,
    /// The driver bound now.
    pub driver: Option<String>,
    /// `driver_override`, `None` when unset.
    pub driver_override: Option<String>,
    /// IOMMU group (containers have one each; objects share their container's).
    pub iommu_group: Option<u32>,
    /// The container this object sits in; `None` for the root container.
    pub container: Option<DprcName>,
    /// Network interfaces this object backs (a `dpni` bound to `fsl_dpaa2_eth`).
    pub net_interfaces: Vec<String>,
}

impl FslMcObject {
    /// The container name, when this object is a container.
    pub fn as_dprc(&self) -> Option<DprcName> {
        self.name.parse().ok()
    }
}

/// Every object on the fsl-mc bus.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FslMcInventory {
    objects: Vec<FslMcObject>,
}

impl FslMcInventory {
    /// Builds the inventory, sorted by name.
    pub fn new(mut objects: Vec<FslMcObject>) -> Self {
        objects.sort_by(|a, b| {
            (a.obj_type.as_str(), object_id(&a.name))
                .cmp(&(b.obj_type.as_str(), object_id(&b.name)))
        });
        Self { objects }
    }

    /// True when the host has no fsl-mc bus or no objects on it.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// All objects.
    pub fn objects(&self) -> &[FslMcObject] {
        &self.objects
    }

    /// The object with this name.
    pub fn get(&self, name: &str) -> Option<&FslMcObject> {
        self.objects.iter().find(|o| o.name == name)
    }

    /// Containers, in number order.
    pub fn containers(&self) -> impl Iterator<Item = &FslMcObject> {
        self.objects.iter().filter(|o| o.obj_type == "dprc")
    }

    /// The objects directly inside a container.
    pub fn children(&self, dprc: DprcName) -> impl Iterator<Item = &FslMcObject> {
        self.objects
            .iter()
            .filter(move |o| o.container == Some(dprc))
    }

    /// True for the root container: the one the management complex firmware gives to Linux,
    /// on which the host's own DPAA2 devices (and its fsl-mc bus) run.
    pub fn is_root_container(&self, dprc: DprcName) -> bool {
        self.get(&dprc.to_string())
            .is_some_and(|o| o.container.is_none())
    }
}

fn object_id(name: &str) -> u32 {
    name.rsplit_once('.')
        .and_then(|(_, id)| id.parse().ok())
        .unwrap_or(u32::MAX)
}

/// Plans binding one container to vfio-fsl-mc.
///
/// `net_uses` holds, per object name, how the host uses its interfaces.
pub fn plan_container_bind(
    inventory: &FslMcInventory,
    dprc: DprcName,
    net_uses: &std::collections::BTreeMap<String, Vec<crate::plan::HostUse>>,
    vfio_loaded: bool,
) -> Result<ContainerPlan, ContainerPlanError> {
    use crate::plan::{RefusalKind, Step, Write};
    let name = dprc.to_string();
    let container = inventory
        .get(&name)
        .ok_or_else(|| ContainerPlanError::NotFound(name.clone()))?;
    let mut refusals = Vec::new();
    let mut warnings = Vec::new();
    let mut steps = Vec::new();
    if inventory.is_root_container(dprc) {
        refusals.push(FslMcRefusal {
            kind: RefusalKind::HostCritical,
            text: format!(
                "{name} is the root container the management complex gives to Linux: the host's \
                 own DPAA2 devices and its fsl-mc bus run on it"
            ),
            remedy: "create a child container with restool (restool dprc create dprc.1 \
                     --options=DPRC_CFG_OPT_IRQ_CFG_ALLOWED,...), assign objects to it, and \
                     pass that one"
                .to_owned(),
            overridable: false,
        });
    }
    for child in inventory.children(dprc) {
        for host_use in net_uses.get(&child.name).into_iter().flatten() {
            refusals.push(FslMcRefusal {
                kind: RefusalKind::HostCritical,
                text: format!(
                    "{name} holds {} which backs the host: {}",
                    child.name,
                    match host_use {
                        crate::plan::HostUse::Network {
                            interface, detail, ..
                        } => {
                            format!("interface {interface} {detail}")
                        }
                        other => format!("{other:?}"),
                    }
                ),
                remedy: "move the host's network off it first, or pass --force".to_owned(),
                overridable: true,
            });
        }
        if let Some(driver) = &child.driver
            && driver != VFIO_FSL_MC
            && container.driver.as_deref() == Some(VFIO_FSL_MC)
        {
            warnings.push(format!(
                "{} stays on {driver}, so the VM will not get it",
                child.name
            ));
        }
    }
    let already = container.driver.as_deref() == Some(VFIO_FSL_MC);
    if !already {
        if !vfio_loaded {
            steps.push(Step::LoadModule {
                module: VFIO_FSL_MC_MODULE.to_owned(),
            });
        }
        if container.driver_override.as_deref() != Some(VFIO_FSL_MC) {
            steps.push(Step::Write(Write {
                path: format!("/sys/bus/fsl-mc/devices/{name}/driver_override"),
                value: VFIO_FSL_MC.to_owned(),
            }));
        }
        if let Some(driver) = &container.driver {
            steps.push(Step::UnbindObject {
                object: name.clone(),
                driver: driver.clone(),
                write: Write {
                    path: format!("/sys/bus/fsl-mc/drivers/{driver}/unbind"),
                    value: name.clone(),
                },
            });
        }
        // vfio-fsl-mc has no match table: only the override lets this bind succeed.
        steps.push(Step::Write(Write {
            path: format!("/sys/bus/fsl-mc/drivers/{VFIO_FSL_MC}/bind"),
            value: name.clone(),
        }));
        steps.push(Step::AwaitObjectDriver {
            object: name.clone(),
            driver: Some(VFIO_FSL_MC.to_owned()),
        });
        if let Some(group) = container.iommu_group {
            steps.push(Step::AwaitGroupNode { group });
        }
    }
    Ok(ContainerPlan {
        container: name,
        current_driver: container.driver.clone(),
        current_override: container.driver_override.clone(),
        iommu_group: container.iommu_group,
        already_bound: already,
        children: inventory
            .children(dprc)
            .map(|c| (c.name.clone(), c.driver.clone()))
            .collect(),
        steps,
        refusals,
        warnings,
    })
}

/// A container bind plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerPlan {
    /// The container.
    pub container: String,
    /// Its driver now.
    pub current_driver: Option<String>,
    /// Its override now.
    pub current_override: Option<String>,
    /// Its IOMMU group.
    pub iommu_group: Option<u32>,
    /// It is on vfio-fsl-mc already.
    pub already_bound: bool,
    /// Its objects and their drivers now.
    pub children: Vec<(String, Option<String>)>,
    /// The steps.
    pub steps: Vec<crate::plan::Step>,
    /// What stops it.
    pub refusals: Vec<FslMcRefusal>,
    /// What the user should know.
    pub warnings: Vec<String>,
}

/// A reason a container may not be bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FslMcRefusal {
    /// The kind (shared with PCI refusals).
    pub kind: crate::plan::RefusalKind,
    /// One sentence.
    pub text: String,
    /// What to do.
    pub remedy: String,
    /// `--force` overrides it.
    pub overridable: bool,
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerPlanError {
    /// No such container.
    #[error("no DPAA2 container {0} on this host")]
    NotFound(String),
}

/// What a container looked like before vfioctl touched it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectOriginal {
    /// The object (`dprc.2`).
    pub object: String,
    /// Its driver then.
    pub driver: Option<String>,
    /// Its override then.
    pub driver_override: Option<String>,
    /// Its IOMMU group then.
    pub iommu_group: Option<u32>,
}

/// The steps that return a container from `current` to `original`.
pub fn container_restore_steps(
    current: &FslMcObject,
    original: &ObjectOriginal,
) -> Vec<crate::plan::Step> {
    use crate::plan::{Step, Write};
    let name = &current.name;
    let mut steps = Vec::new();
    if let Some(driver) = &current.driver
        && current.driver != original.driver
    {
        steps.push(Step::UnbindObject {
            object: name.clone(),
            driver: driver.clone(),
            write: Write {
                path: format!("/sys/bus/fsl-mc/drivers/{driver}/unbind"),
                value: name.clone(),
            },
        });
    }
    if current.driver_override != original.driver_override {
        steps.push(Step::Write(Write {
            path: format!("/sys/bus/fsl-mc/devices/{name}/driver_override"),
            value: original
                .driver_override
                .clone()
                .unwrap_or_else(|| "\n".to_owned()),
        }));
    }
    if let Some(driver) = &original.driver
        && current.driver != original.driver
    {
        steps.push(Step::Write(Write {
            path: format!("/sys/bus/fsl-mc/drivers/{driver}/bind"),
            value: name.clone(),
        }));
    }
    if current.driver != original.driver {
        steps.push(Step::AwaitObjectDriver {
            object: name.clone(),
            driver: original.driver.clone(),
        });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_kernel_name() {
        let d: DprcName = "dprc.2".parse().unwrap();
        assert_eq!(d.id(), 2);
        assert_eq!(d.to_string(), "dprc.2");
    }

    #[test]
    fn rejects_non_canonical_names() {
        for bad in [
            "",
            "dprc",
            "dprc.",
            "dprc.02",
            "dprc.+2",
            "dprc.-1",
            "dprc.2 ",
            "DPRC.2",
            "dpni.2",
            "dprc.99999999999",
        ] {
            assert!(bad.parse::<DprcName>().is_err(), "{bad} parsed");
        }
        assert_eq!("dprc.0".parse::<DprcName>(), Ok(DprcName::new(0)));
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(n in any::<u32>()) {
            let d = DprcName::new(n);
            prop_assert_eq!(d.to_string().parse::<DprcName>(), Ok(d));
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in "(dprc\\.)?.{0,12}") {
            let _ = text.parse::<DprcName>();
        }
    }
}
