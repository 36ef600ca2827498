//! Planning DPAA2 containers: a `dprc.N` goes to vfio-fsl-mc whole, with its objects.

use super::step::{DeviceState, override_steps};
use super::{BindInput, Disposition, HostUse, Plan, PlannedDevice, Refusal, RefusalKind, Step};
use crate::devref::{Bus, DeviceRef, FslMcName, GroupId, driver_name};
use crate::fslmc::FslMcObject;

fn object_state(object: &FslMcObject) -> DeviceState {
    DeviceState {
        driver: driver_name(object.driver.as_deref()),
        driver_override: driver_name(object.driver_override.as_deref()),
    }
}

fn root_container(name: &FslMcName) -> Refusal {
    Refusal {
        kind: RefusalKind::HostCritical,
        device: name.clone().into(),
        text: format!(
            "{name} is the root container the management complex gives to Linux: the host's own \
             DPAA2 devices and its fsl-mc bus run on it"
        ),
        remedy: "create a child container with restool (restool dprc create dprc.1 \
                 --options=DPRC_CFG_OPT_IRQ_CFG_ALLOWED,...), assign objects to it, and pass that \
                 one"
        .to_owned(),
        overridable: false,
    }
}

fn backs_the_host(container: &FslMcName, object: &str, host_use: &HostUse) -> Refusal {
    Refusal {
        kind: RefusalKind::HostCritical,
        device: container.clone().into(),
        text: format!(
            "{container} holds {object} which backs the host: {}",
            host_use.describe()
        ),
        remedy: "move the host's network off it first, or pass --force".to_owned(),
        overridable: true,
    }
}

/// Adds binding container `name` to `plan`. A name that is not a container, or not on this
/// host, adds nothing: the selection has said so before planning.
pub(super) fn plan_container(input: &BindInput<'_>, name: &FslMcName, plan: &mut Plan) {
    let inventory = input.fslmc;
    let text = name.to_string();
    let Some(container) = inventory.get(&text) else {
        return;
    };
    let Some(dprc) = container.as_dprc() else {
        return;
    };
    let device = DeviceRef::FslMc(name.clone());
    if inventory.is_root_container(dprc) {
        plan.refusals.push(root_container(name));
    }
    let vfio = Bus::FslMc.vfio_driver();
    let state = object_state(container);
    let already = state.driver.as_ref() == Some(&vfio);
    let mut objects = Vec::new();
    for child in inventory.children(dprc) {
        let child_ref = child.name.parse::<FslMcName>().map(DeviceRef::FslMc);
        for host_use in child_ref
            .as_ref()
            .ok()
            .and_then(|c| input.host_uses.get(c))
            .into_iter()
            .flatten()
        {
            plan.refusals
                .push(backs_the_host(name, &child.name, host_use));
        }
        if already
            && let Some(driver) = &child.driver
            && driver != vfio.as_str()
        {
            plan.warnings.push(format!(
                "{} stays on {driver}, so the VM will not get it",
                child.name
            ));
        }
        if let Ok(child_ref) = child_ref {
            let child_state = object_state(child);
            objects.push(PlannedDevice {
                device: child_ref,
                iommu_group: child.iommu_group.map(GroupId),
                target_driver: child_state.driver.clone(),
                current_driver: child_state.driver,
                current_override: child_state.driver_override,
                disposition: Disposition::InContainer,
                why: format!("an object of {name}: vfio-fsl-mc binds it with the container"),
            });
        }
    }
    if !already {
        if !input.loaded.contains(&Bus::FslMc)
            && !plan.steps.iter().any(
                |s| matches!(s, Step::LoadModule { module } if module == Bus::FslMc.vfio_module()),
            )
        {
            plan.steps.push(Step::LoadModule {
                module: Bus::FslMc.vfio_module().to_owned(),
            });
        }
        plan.steps.extend(override_steps(&device, &state, &vfio));
        if let Some(group) = container.iommu_group {
            plan.steps.push(Step::AwaitGroupNode {
                group: GroupId(group),
            });
        }
    }
    if let Some(group) = container.iommu_group {
        plan.groups.push(GroupId(group));
    }
    plan.devices.push(PlannedDevice {
        device,
        iommu_group: container.iommu_group.map(GroupId),
        current_driver: state.driver,
        current_override: state.driver_override,
        target_driver: Some(vfio),
        disposition: if already {
            Disposition::AlreadyBound
        } else {
            Disposition::Bind
        },
        why: if already {
            "already on vfio-fsl-mc".to_owned()
        } else {
            "named".to_owned()
        },
    });
    plan.devices.extend(objects);
}
