//! `doctor`'s DPAA2 checks on the simulated Ten64, with what the restool stand-in reads back:
//! the MC firmware version, and the options and objects of the containers meant for VMs.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::path::Path;

use common::shown::{host, shown};
use vfioctl_host::ops::dpaa2::Restool;
use vfioctl_sim::KernelState;
use vfioctl_sim::restool::SimRestool;
use vfioctl_sim::topology::ten64_dpaa2;

const IDS: &[&str] = &[
    "fsl-mc-firmware-old",
    "fsl-mc-firmware-unsupported",
    "fsl-mc-container-no-irq-cfg",
    "fsl-mc-container-objects",
    "fsl-mc-restool",
];

/// The DPAA2 findings of a `doctor --json`, as `id: message` lines.
fn dpaa2_findings(root: &Path) -> Vec<String> {
    let doc = common::json(root, &["doctor"], 4);
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| IDS.contains(&f["id"].as_str().unwrap()))
        .map(|f| {
            format!(
                "{}: {}",
                f["id"].as_str().unwrap(),
                f["message"].as_str().unwrap()
            )
        })
        .collect()
}

fn firmware(root: &Path, version: &str) {
    let mut state = KernelState::load(root).unwrap();
    state.fsl_mc.as_mut().unwrap().mc.firmware = Some(version.to_owned());
    state.save(root).unwrap();
}

fn define(root: &Path, name: &str, dprc: &str) {
    std::fs::create_dir_all(root.join("etc/vfioctl/vms")).unwrap();
    std::fs::write(
        root.join(format!("etc/vfioctl/vms/{name}.toml")),
        format!("version = 1\ndprc = [\"{dprc}\"]\n"),
    )
    .unwrap();
}

#[test]
fn a_container_made_for_a_vm_on_current_firmware_is_quiet() {
    let t = host(ten64_dpaa2());
    assert!(shown(t.root(), "dpaa2 create --for-vm db --dpmac dpmac.2").contains("[exit 0]"));
    define(t.root(), "db", "dprc.3");
    assert_eq!(dpaa2_findings(t.root()), Vec::<String>::new());
}

#[test]
fn old_firmware_and_a_bare_container_listed_by_a_vm_are_flagged() {
    let t = host(ten64_dpaa2());
    firmware(t.root(), "10.18.0");
    // Made by hand without the IRQ option, and left empty.
    let restool = SimRestool::new(t.root());
    let argv = [
        "dprc",
        "create",
        "dprc.1",
        "--options=DPRC_CFG_OPT_SPAWN_ALLOWED",
    ];
    let out = restool.run(&argv.map(str::to_owned)).unwrap();
    assert!(out.starts_with("dprc.3 "), "{out}");
    define(t.root(), "web", "dprc.3");
    insta::assert_snapshot!(dpaa2_findings(t.root()).join("\n"));
    firmware(t.root(), "7.2.0");
    let findings = dpaa2_findings(t.root());
    assert!(
        findings
            .iter()
            .any(|f| f.starts_with("fsl-mc-firmware-unsupported: the MC firmware is 7.2.0")),
        "{findings:?}"
    );
}
