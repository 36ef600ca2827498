//! The DPAA2 facts `doctor` reads back from restool: the MC firmware version, and for every
//! container but the root one its options, its objects and what says a VM is meant to have it
//! (bound to vfio-fsl-mc, listed in a VM definition, made for an owner). Only restool's read
//! commands are run (`-m`, `dprc info`, `dprc show`).

use vfioctl_core::doctor::{ContainerFacts, DoctorFacts};
use vfioctl_core::dpaa2::{parse_container_objects, parse_container_options, parse_mc_version};

use crate::executor::chain;
use crate::journal::Journal;
use crate::ops::dpaa2::Restool;
use crate::vms::{self, VFIO_FSL_MC};
use crate::{HostError, HostRoot};

/// Adds what restool says to `facts.fsl_mc` (a host without an fsl-mc bus is left alone).
pub fn gather(
    root: &HostRoot,
    restool: &dyn Restool,
    facts: &mut DoctorFacts,
) -> Result<(), HostError> {
    let Some(fsl) = facts.fsl_mc.as_mut() else {
        return Ok(());
    };
    match restool.run(&["-m".to_owned()]) {
        Ok(out) => fsl.mc_version = parse_mc_version(&out),
        Err(e) => {
            fsl.restool_problem = Some(chain(&e));
            return Ok(());
        }
    }
    let inventory = crate::fslmc::read_fslmc(root)?;
    // A damaged journal or definition is doctor's other checks' to report; here it only
    // leaves a reason out.
    let journal = Journal::load(root).unwrap_or_default();
    let definitions: Vec<_> = vms::list(&vms::vms_dir(root, None))
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect();
    for object in inventory.containers().filter(|o| o.container.is_some()) {
        let name = object.name.clone();
        let listed = definitions.iter().find(|vm| {
            object
                .as_dprc()
                .is_some_and(|d| vm.definition.dprc.contains(&d))
        });
        let made = journal.dpaa2.iter().find(|r| {
            r.made
                .container
                .as_ref()
                .is_some_and(|c| c.to_string() == name)
        });
        let for_vm = if object.driver.as_deref() == Some(VFIO_FSL_MC) {
            Some(format!("bound to {VFIO_FSL_MC}"))
        } else if let Some(vm) = listed {
            Some(format!("listed by VM {}", vm.name))
        } else {
            made.map(|r| format!("made for {}", r.owner))
        };
        let ask = |verb: &str| restool.run(&["dprc".to_owned(), verb.to_owned(), name.clone()]);
        let options = ask("info").ok().map(|out| parse_container_options(&out));
        let object_types = ask("show").ok().map(|out| {
            parse_container_objects(&name, &out)
                .iter()
                .map(|n| n.kind().to_owned())
                .collect()
        });
        fsl.containers.push(ContainerFacts {
            name,
            for_vm,
            options,
            object_types,
        });
    }
    Ok(())
}
