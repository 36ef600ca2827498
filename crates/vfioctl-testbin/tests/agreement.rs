//! Every command that decides what goes to a VM gives the same answer on an Intel desktop: the
//! same functions for the GPU's group, and the same refusal for the onboard audio, whose group
//! holds the LPC bridge and the SMBus (`vfioctl_core::passthrough` decides for all of them).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{driver, json, kernel_state, tree, vfioctl};
use vfioctl_sim::topology;

const GPU: &str = "0000:01:00.0";
const AUDIO: &str = "0000:00:1f.3";

fn run(root: &Path, args: &[&str], stdin: Option<&str>) -> (Option<i32>, String, String) {
    let mut cmd = vfioctl(root);
    cmd.args(args);
    if let Some(text) = stdin {
        cmd.write_stdin(text.as_bytes().to_vec());
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `vendor:device` of `address`, from `list --json`.
fn id_of(root: &Path, address: &str) -> String {
    let list = json(root, &["list"], 0);
    let dev = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["address"] == address)
        .unwrap();
    format!(
        "{}:{}",
        dev["vendor_id"].as_str().unwrap(),
        dev["device_id"].as_str().unwrap()
    )
}

fn define(root: &Path, name: &str, address: &str) {
    let dir = root.join("etc/vfioctl/vms");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{name}.toml")),
        format!(
            "version = 1\n[[device]]\naddress = \"{address}\"\nid = \"{}\"\n[qemu]\nmachine = \
             \"q35\"\nmemory = \"4G\"\n",
            id_of(root, address)
        ),
    )
    .unwrap();
}

/// A libvirt domain passing `address` through, as the hook reads it on standard input.
fn domain(address: &str) -> String {
    let (domain, rest) = address.split_once(':').unwrap();
    let (bus, rest) = rest.split_once(':').unwrap();
    let (slot, function) = rest.split_once('.').unwrap();
    format!(
        "<domain type='kvm'><name>desk</name><devices><hostdev mode='subsystem' type='pci' \
         managed='no'><source><address domain='0x{domain}' bus='0x{bus}' slot='0x{slot}' \
         function='0x{function}'/></source></hostdev></devices></domain>\n"
    )
}

fn set(items: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    items.into_iter().collect()
}

/// The `host=` addresses of `-device vfio-pci,...` arguments.
fn hosts_in(text: &str) -> BTreeSet<String> {
    set(text
        .split(|c: char| c == ',' || c.is_whitespace() || c == '"')
        .filter_map(|w| w.strip_prefix("host="))
        .map(str::to_owned))
}

#[test]
fn the_gpu_group_is_the_same_functions_in_every_command() {
    let t = tree(topology::x86_desktop());
    let root = t.root();
    let plan = json(root, &["bind", GPU, "--dry-run"], 0);
    let bound = set(plan["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["disposition"] == "bind")
        .map(|d| d["address"].as_str().unwrap().to_owned()));
    assert!(bound.len() > 1, "the GPU shares its group: {plan}");

    // Exit 4: doctor has warnings for this host, but no error stands in the GPU's way.
    let doctor = json(root, &["doctor", GPU], 4);
    let verdict = &doctor["verdicts"][0];
    assert_eq!(verdict["can_go"], true, "{doctor}");
    let mut from_doctor = set(verdict["with"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned()));
    from_doctor.insert(GPU.to_owned());
    assert_eq!(from_doctor, bound, "doctor");

    let (code, qemu, err) = run(root, &["qemu-args", GPU], None);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(hosts_in(&qemu), bound, "qemu-args: {qemu}");

    let (code, xml, err) = run(root, &["libvirt-xml", GPU], None);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        xml.matches("<hostdev ").count(),
        bound.len(),
        "libvirt-xml: {xml}"
    );

    define(root, "gpu", GPU);
    let (_, check, err) = run(root, &["vm", "check", "gpu"], None);
    for mate in bound.iter().filter(|a| *a != GPU) {
        assert!(
            check.contains(&format!("not listed: {mate}")),
            "vm check: {check}{err}"
        );
    }

    // The libvirt hook binds exactly those functions.
    let (code, _, err) = run(
        root,
        &["hook", "libvirt", "desk", "prepare", "begin", "-"],
        Some(&domain(GPU)),
    );
    assert_eq!(code, Some(0), "{err}");
    for a in &bound {
        assert_eq!(driver(root, a).as_deref(), Some("vfio-pci"), "hook: {a}");
    }
}

#[test]
fn the_onboard_audio_is_refused_with_one_sentence_by_every_command() {
    let t = tree(topology::x86_desktop());
    let root = t.root();
    let before = kernel_state(&t);
    let (code, _, bind) = run(root, &["bind", AUDIO, "--dry-run"], None);
    assert_eq!(code, Some(3), "{bind}");
    let sentence = bind
        .lines()
        .find_map(|l| l.strip_prefix("error: refused: "))
        .unwrap()
        .to_owned();
    assert!(
        sentence.contains("LPC bridge 0000:00:1f.0")
            && sentence.contains("SMBus 0000:00:1f.4")
            && sentence.contains("cannot go to a VM on this board"),
        "{sentence}"
    );
    for args in [vec!["qemu-args", AUDIO], vec!["libvirt-xml", AUDIO]] {
        let (code, _, err) = run(root, &args, None);
        assert_eq!(code, Some(3), "{args:?}: {err}");
        assert!(err.contains(&sentence), "{args:?}: {err}");
    }
    let doctor = json(root, &["doctor", AUDIO], 4);
    let verdict = &doctor["verdicts"][0];
    assert_eq!(verdict["can_go"], false, "{doctor}");
    assert!(
        verdict["because"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b.as_str() == Some(sentence.as_str())),
        "{doctor}"
    );
    // What would go with it, had the board allowed it: the group's functions, LPC bridge too.
    let with = set(verdict["with"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned()));
    assert!(
        with.contains("0000:00:1f.0") && with.contains("0000:00:1f.4"),
        "{with:?}"
    );

    define(root, "audio", AUDIO);
    let (code, check, err) = run(root, &["vm", "check", "audio"], None);
    assert_ne!(code, Some(0), "{check}");
    assert!(check.contains(&sentence), "vm check: {check}{err}");
    let (code, _, err) = run(
        root,
        &["hook", "libvirt", "desk", "prepare", "begin", "-"],
        Some(&domain(AUDIO)),
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains(&sentence), "hook: {err}");
    std::fs::remove_dir_all(root.join("etc/vfioctl")).unwrap();
    let after: Vec<String> = before
        .diff(&kernel_state(&t))
        .into_iter()
        .filter(|p| !p.starts_with("run") && !p.starts_with("etc"))
        .collect();
    assert!(after.is_empty(), "refusals changed {after:?}");
}
