//! The DPAA2 checks of what restool reads back: the MC firmware version, and the options and
//! objects of each container meant for a VM.
//!
//! restool's sources (nxp-qoriq/restool `restool.c`) map MC firmware majors 8, 9 and 10 to the
//! object command sets they speak and refuse any other major ("invalid MC firmware version");
//! Traverse's μVirt DPAA2 setup asks for firmware 10.20 or later.

use super::ctx::Ctx;
use super::facts::{ContainerFacts, McVersion, TEN64_VFIO_PAGE};
use super::finding::{Finding, Severity};
use crate::dpaa2::GUEST_OBJECTS;

/// The MC firmware majors restool has command sets for.
const RESTOOL_MAJORS: std::ops::RangeInclusive<u32> = 8..=10;
/// The oldest firmware the Ten64's VM host (μVirt) recommends for DPAA2 passthrough.
const RECOMMENDED: McVersion = McVersion {
    major: 10,
    minor: 20,
    revision: 0,
};

pub(super) fn check(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let Some(fsl) = &ctx.facts.fsl_mc else {
        return;
    };
    if let Some(why) = &fsl.restool_problem {
        out.push(Finding::new(
            "fsl-mc-restool",
            Severity::Info,
            None,
            "restool",
            format!(
                "restool could not be asked ({why}), so the MC firmware version and the \
                 containers' options and objects were not checked"
            ),
            "install restool (NXP's nxp-qoriq/restool; Debian and LSDK package it) to have them \
             checked",
        ));
    }
    if let Some(version) = fsl.mc_version {
        firmware(version, out);
    }
    for c in &fsl.containers {
        if let Some(why) = &c.for_vm {
            container(c, why, out);
        }
    }
}

fn firmware(version: McVersion, out: &mut Vec<Finding>) {
    if !RESTOOL_MAJORS.contains(&version.major) {
        out.push(Finding::new(
            "fsl-mc-firmware-unsupported",
            Severity::Warning,
            None,
            "restool -m",
            format!(
                "the MC firmware is {version}: restool has commands for firmware majors 8, 9 and \
                 10 only, so it cannot make or change containers"
            ),
            "update the MC firmware (LSDK or the board vendor's firmware image)",
        ));
    } else if version < RECOMMENDED {
        out.push(Finding::new(
            "fsl-mc-firmware-old",
            Severity::Warning,
            None,
            "restool -m",
            format!(
                "the MC firmware is {version}, older than {}.{}, which the Ten64's VM host \
                 (μVirt) asks for DPAA2 passthrough and DPDMUX setup",
                RECOMMENDED.major, RECOMMENDED.minor
            ),
            format!("update the MC firmware; see {TEN64_VFIO_PAGE}"),
        ));
    }
}

fn container(c: &ContainerFacts, why: &str, out: &mut Vec<Finding>) {
    let path = format!("restool dprc info {}", c.name);
    if let Some(options) = &c.options
        && !options.iter().any(|o| o == "DPRC_CFG_OPT_IRQ_CFG_ALLOWED")
    {
        out.push(Finding::new(
            "fsl-mc-container-no-irq-cfg",
            Severity::Error,
            None,
            path,
            format!(
                "{} ({why}) was created without DPRC_CFG_OPT_IRQ_CFG_ALLOWED, so the MC firmware \
                 cannot route its interrupts to the guest",
                c.name
            ),
            format!(
                "a container's options are fixed when it is made: make a new one with 'vfioctl \
                 dpaa2 create --for-vm NAME' (or [[dpaa2]] in the VM's definition); see \
                 {TEN64_VFIO_PAGE}"
            ),
        ));
    }
    if let Some(types) = &c.object_types {
        let missing: Vec<&str> = GUEST_OBJECTS
            .iter()
            .copied()
            .filter(|k| !types.iter().any(|t| t == k))
            .collect();
        if !missing.is_empty() {
            out.push(Finding::new(
                "fsl-mc-container-objects",
                Severity::Warning,
                None,
                format!("restool dprc show {}", c.name),
                format!(
                    "{} ({why}) has no {}: a guest's DPAA2 Ethernet driver needs a DPNI, DPBP, \
                     DPIO, DPCON and DPMCP in its container",
                    c.name,
                    missing.join(", ")
                ),
                format!(
                    "assign them with 'restool dprc assign dprc.1 --object=<obj> --target={} \
                     --plugged=1', or make the container with 'vfioctl dpaa2 create'",
                    c.name
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::doctor::testkit::*;
    use crate::doctor::*;

    fn host(f: &mut DoctorFacts, version: Option<(u32, u32)>, container: ContainerFacts) {
        f.fsl_mc = Some(FslMcFacts {
            vfio_driver: true,
            mc_version: version.map(|(major, minor)| McVersion {
                major,
                minor,
                revision: 0,
            }),
            containers: vec![container],
            ..FslMcFacts::default()
        });
    }

    fn complete(for_vm: Option<&str>) -> ContainerFacts {
        ContainerFacts {
            name: "dprc.2".to_owned(),
            for_vm: for_vm.map(str::to_owned),
            options: Some(vec![
                "DPRC_CFG_OPT_SPAWN_ALLOWED".to_owned(),
                "DPRC_CFG_OPT_IRQ_CFG_ALLOWED".to_owned(),
            ]),
            object_types: Some(
                ["dpni", "dpbp", "dpio", "dpcon", "dpmcp"]
                    .map(str::to_owned)
                    .to_vec(),
            ),
        }
    }

    #[test]
    fn firmware_versions() {
        let f = fires("fsl-mc-firmware-unsupported", |f, _| {
            host(f, Some((7, 2)), complete(None));
        });
        assert!(f.message.contains("7.2.0"), "{}", f.message);
        let f = fires("fsl-mc-firmware-old", |f, _| {
            host(f, Some((10, 18)), complete(None));
        });
        assert!(f.message.contains("10.18.0"), "{}", f.message);
        for id in ["fsl-mc-firmware-old", "fsl-mc-firmware-unsupported"] {
            quiet(id, |f, _| host(f, Some((10, 28)), complete(None)));
            quiet(id, |f, _| host(f, None, complete(None)));
        }
    }

    #[test]
    fn a_vms_container_without_the_irq_option_or_objects() {
        let f = fires("fsl-mc-container-no-irq-cfg", |f, _| {
            let mut c = complete(Some("listed by VM web"));
            c.options = Some(vec!["DPRC_CFG_OPT_SPAWN_ALLOWED".to_owned()]);
            host(f, None, c);
        });
        assert!(
            f.message.contains("dprc.2 (listed by VM web)"),
            "{}",
            f.message
        );
        let f = fires("fsl-mc-container-objects", |f, _| {
            let mut c = complete(Some("bound to vfio-fsl-mc"));
            c.object_types = Some(vec!["dpni".to_owned(), "dpbp".to_owned()]);
            host(f, None, c);
        });
        assert!(f.message.contains("no dpio, dpcon, dpmcp"), "{}", f.message);
        for id in ["fsl-mc-container-no-irq-cfg", "fsl-mc-container-objects"] {
            quiet(id, |f, _| {
                host(f, None, complete(Some("bound to vfio-fsl-mc")));
            });
            // A container no VM is meant to have (DPDK's, say) needs neither.
            quiet(id, |f, _| {
                let mut c = complete(None);
                c.options = Some(Vec::new());
                c.object_types = Some(Vec::new());
                host(f, None, c);
            });
            // What restool did not tell is not reported as missing.
            quiet(id, |f, _| {
                let mut c = complete(Some("bound to vfio-fsl-mc"));
                c.options = None;
                c.object_types = None;
                host(f, None, c);
            });
        }
    }

    #[test]
    fn restool_that_cannot_be_asked_is_said() {
        fires("fsl-mc-restool", |f, _| {
            f.fsl_mc = Some(FslMcFacts {
                restool_problem: Some("cannot run restool".to_owned()),
                ..FslMcFacts::default()
            });
        });
        quiet("fsl-mc-restool", |f, _| host(f, None, complete(None)));
    }
}
