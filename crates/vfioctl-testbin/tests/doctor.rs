//! `vfioctl doctor` end to end: the test binary over simulated kernels (vfioctl-sim) and,
//! read-only, over this machine's `/`.
// Helpers outside #[test] fns are test code too; a panic is the failure report.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;
use vfioctl_sim::topology;

fn vfioctl(root: &Path) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("vfioctl-testbin"));
    cmd.arg("--root").arg(root);
    cmd
}

struct Run {
    code: i32,
    stdout: String,
}

fn run(root: &Path, args: &[&str]) -> Run {
    let out = vfioctl(root).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
    }
}

fn findings(root: &Path, args: &[&str]) -> (i32, Vec<Value>) {
    let mut all = vec!["doctor", "--json"];
    all.extend_from_slice(args);
    let r = run(root, &all);
    let doc: Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    assert_eq!(doc["version"], 1);
    (r.code, doc["findings"].as_array().unwrap().clone())
}

fn find<'a>(findings: &'a [Value], id: &str) -> Vec<&'a Value> {
    findings.iter().filter(|f| f["id"] == id).collect()
}

fn ids(findings: &[Value]) -> Vec<String> {
    findings
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn ten64_without_vfio_pci_loaded() {
    let tree = topology::ten64().build_temp().unwrap();
    let (code, f) = findings(tree.root(), &[]);
    assert_eq!(code, 4);

    let module = find(&f, "module-not-loaded");
    assert_eq!(module.len(), 1, "{:?}", ids(&f));
    assert_eq!(module[0]["severity"], "warning");
    assert!(
        module[0]["remedy"]
            .as_str()
            .unwrap()
            .starts_with("modprobe vfio-pci"),
        "{}",
        module[0]
    );

    // Both miniPCIe cards sit behind the Pericom switch, in one group, and the reason is named.
    let shared: Vec<&Value> = find(&f, "group-shared")
        .into_iter()
        .filter(|s| s["message"].as_str().unwrap().contains("0001:03:00.0"))
        .collect();
    assert_eq!(shared.len(), 1, "{:?}", ids(&f));
    let message = shared[0]["message"].as_str().unwrap();
    assert!(
        message.contains("0001:03:00.0 and 0001:04:00.0"),
        "{message}"
    );
    assert!(message.contains("ACS"), "{message}");
    assert!(message.contains("same VM"), "{message}");

    let d3 = find(&f, "idle-d3");
    assert_eq!(d3.len(), 1, "{:?}", ids(&f));
    assert!(
        d3[0]["remedy"]
            .as_str()
            .unwrap()
            .contains("vfio-pci.disable_idle_d3=1")
    );

    // Host-wide facts about this arm64 board.
    assert!(ids(&f).contains(&"smmu-bypass".to_owned()));
    assert!(!ids(&f).contains(&"iommu-off".to_owned()));
    // The NVMe holds / : it is not judged as a candidate host-wide.
    assert!(
        f.iter()
            .all(|x| x["device"] != "0002:01:00.0" || x["severity"] == "info"),
        "{f:#?}"
    );
}

#[test]
fn ten64_named_devices_get_verdicts() {
    let tree = topology::ten64().build_temp().unwrap();
    let r = run(tree.root(), &["doctor", "0001:03:00.0", "0002:01:00.0"]);
    assert_eq!(r.code, 4, "{}", r.stdout);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let tail = &lines[lines.len() - 2..];
    assert_eq!(
        tail[0], "0001:03:00.0 can go to a VM (together with 0001:04:00.0)",
        "{}",
        r.stdout
    );
    assert!(
        tail[1].starts_with("0002:01:00.0 cannot go to a VM, because 0002:01:00.0 backs the host"),
        "{}",
        r.stdout
    );
    assert!(tail[1].contains("nvme0n1p2 is mounted on /"), "{}", tail[1]);
    // Text output: grouped by severity, each finding with an indented remedy.
    assert!(
        r.stdout.starts_with("Errors:\n  error[host-device]: "),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("\n    remedy: "));
    let json = run(tree.root(), &["doctor", "--json", "0001:03:00.0"]);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["verdicts"][0]["device"], "0001:03:00.0");
    assert_eq!(doc["verdicts"][0]["can_go"], true);
    assert_eq!(doc["verdicts"][0]["with"][0], "0001:04:00.0");
    // The QCA6174 is in the known-devices table as working.
    assert!(
        r.stdout.contains("info[known-device-works]: 0001:03:00.0"),
        "{}",
        r.stdout
    );
}

#[test]
fn ten64_host_table_overrides_and_bad_tables_are_reported() {
    let tree = topology::ten64().build_temp().unwrap();
    let etc = tree.root().join("etc/vfioctl");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("devices.toml"),
        "version = 1\n\n[[device]]\nid = \"168c:003e\"\nstatus = \"broken\"\n\
         note = \"our batch needs a firmware update\"\n",
    )
    .unwrap();
    let r = run(tree.root(), &["doctor", "0001:03:00.0"]);
    assert!(
        r.stdout
            .contains("error[known-device-broken]: 0001:03:00.0"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("0001:03:00.0 cannot go to a VM, because"),
        "{}",
        r.stdout
    );

    std::fs::write(
        etc.join("devices.toml"),
        "version = 1\n\n[[device]]\nid = \"168c:003e\"\nstatus = \"works\"\nnote = \"x\"\nurl = \"y\"\n",
    )
    .unwrap();
    let (_, f) = findings(tree.root(), &[]);
    let bad = find(&f, "known-devices-invalid");
    assert_eq!(bad.len(), 1, "{:?}", ids(&f));
    assert_eq!(bad[0]["path"], "/etc/vfioctl/devices.toml");
    assert!(
        bad[0]["message"]
            .as_str()
            .unwrap()
            .contains("/etc/vfioctl/devices.toml:7:1:"),
        "{}",
        bad[0]
    );
    // The shipped table still applies.
    assert!(ids(&f).contains(&"known-device-works".to_owned()));
}

#[test]
fn x86_desktop_flags_the_marvell_sata_controller() {
    let tree = topology::x86_desktop().build_temp().unwrap();
    let (code, f) = findings(tree.root(), &[]);
    assert_eq!(code, 4);
    let marvell = find(&f, "known-device-misbehaves");
    assert_eq!(marvell.len(), 1, "{:?}", ids(&f));
    assert_eq!(marvell[0]["device"], "0000:02:00.0");
    assert_eq!(marvell[0]["severity"], "warning");
    assert!(
        marvell[0]["message"].as_str().unwrap().contains("panic"),
        "{}",
        marvell[0]
    );
    // VT-d on, vfio-pci loaded: none of the arm64 or module advice applies.
    for quiet in [
        "iommu-off",
        "module-not-loaded",
        "module-missing",
        "idle-d3",
    ] {
        assert!(!ids(&f).contains(&quiet.to_owned()), "{quiet}: {f:#?}");
    }
    // iommu=pt on the command line is explained, not flagged.
    for i in find(&f, "iommu-identity-groups") {
        assert_eq!(i["severity"], "info");
    }
}

#[test]
fn x86_desktop_blacklisted_vfio_pci_and_ids_option() {
    let tree = topology::x86_desktop().build_temp().unwrap();
    std::fs::write(
        tree.root().join("etc/modprobe.d/vfio.conf"),
        "options vfio-pci ids=1b4b:9230\ninstall vfio-pci /bin/false\n",
    )
    .unwrap();
    let (code, f) = findings(tree.root(), &[]);
    assert_eq!(code, 4);
    let bl = find(&f, "module-blacklisted");
    assert_eq!(bl.len(), 1, "{:?}", ids(&f));
    assert_eq!(bl[0]["severity"], "error");
    assert_eq!(bl[0]["path"], "/etc/modprobe.d/vfio.conf");
    let ids_finding = find(&f, "vfio-pci-ids");
    assert_eq!(ids_finding.len(), 1);
    assert!(
        ids_finding[0]["message"]
            .as_str()
            .unwrap()
            .contains("here: 0000:02:00.0"),
        "{}",
        ids_finding[0]
    );
}

#[test]
fn unknown_device_is_a_usage_error() {
    let tree = topology::ten64().build_temp().unwrap();
    let r = run(tree.root(), &["doctor", "0009:00:00.0"]);
    assert_eq!(r.code, 2);
}

/// This machine, read-only. On the build host (a VM with virtio devices and no IOMMU) doctor must
/// say the IOMMU is off, with the kernel parameter to turn it on, and exit 4; elsewhere it must at
/// least run cleanly and produce a valid document.
#[test]
fn real_root_read_only() {
    let root = Path::new("/");
    if !root.join("sys/bus/pci").is_dir() {
        return;
    }
    let (code, f) = findings(root, &[]);
    let no_iommu = std::fs::read_dir("/sys/class/iommu").map_or(true, |mut d| d.next().is_none())
        && std::fs::read_dir("/sys/kernel/iommu_groups").map_or(true, |mut d| d.next().is_none());
    if no_iommu {
        assert_eq!(code, 4);
        let off = find(&f, "iommu-off");
        assert_eq!(off.len(), 1, "{f:#?}");
        assert_eq!(off[0]["severity"], "error");
        let remedy = off[0]["remedy"].as_str().unwrap();
        assert!(
            remedy.contains("intel_iommu=on") || remedy.contains("SMMU"),
            "{remedy}"
        );
    } else {
        assert!(code == 0 || code == 4, "exit {code}");
    }
    for x in &f {
        for key in ["id", "severity", "device", "path", "message", "remedy"] {
            assert!(x.get(key).is_some(), "{key} missing in {x}");
        }
    }
    let text = run(root, &["doctor"]);
    assert_eq!(text.code, code);
}

#[test]
fn clean_qemu_guest_exits_zero() {
    let mut b = topology::qemu_x86(vfioctl_sim::QemuTopo::RootPorts);
    for m in ["vfio", "vfio_iommu_type1", "vfio_pci"] {
        b.set_module_state(m, vfioctl_sim::ModuleState::Loaded);
    }
    // The Q35 chipset's SATA and SMBus functions have no reset in the simulation; give them one.
    for a in ["0000:00:1f.2", "0000:00:1f.3"] {
        if let Some(d) = b.device_mut(a) {
            d.reset_methods = vec!["pm".to_owned()];
        }
    }
    let tree = b.build_temp().unwrap();
    let node = tree.root().join("dev/vfio/vfio");
    if node.exists() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let r = run(tree.root(), &["doctor"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("No problems found"), "{}", r.stdout);
    // The same facts, with allow_unsafe_interrupts switched on, are a problem.
    let param = tree
        .root()
        .join("sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts");
    std::fs::write(&param, "Y\n").unwrap();
    let (code, f) = findings(tree.root(), &[]);
    assert_eq!(code, 4);
    assert_eq!(
        ids(&f)
            .iter()
            .filter(|i| *i == "unsafe-interrupts-allowed")
            .count(),
        1
    );
}

#[test]
fn ten64_half_bound_group_is_not_viable() {
    let mut b = topology::ten64();
    for m in ["vfio", "vfio_iommu_type1", "vfio_pci"] {
        b.set_module_state(m, vfioctl_sim::ModuleState::Loaded);
    }
    let tpu = b.device_mut("0001:04:00.0").unwrap();
    *tpu = tpu.clone().driver("vfio-pci");
    let tree = b.build_temp().unwrap();
    let (code, f) = findings(tree.root(), &[]);
    assert_eq!(code, 4);
    let half = find(&f, "group-not-viable");
    assert_eq!(half.len(), 1, "{:?}", ids(&f));
    assert_eq!(half[0]["device"], "0001:04:00.0");
    let message = half[0]["message"].as_str().unwrap();
    assert!(
        message.contains("0001:03:00.0 is on ath10k_pci"),
        "{message}"
    );
    assert!(message.contains("is not viable"), "{message}");
    assert!(
        half[0]["remedy"]
            .as_str()
            .unwrap()
            .starts_with("vfioctl bind 0001:04:00.0")
    );
    // vfio-pci is loaded now: no module advice.
    assert!(!ids(&f).contains(&"module-not-loaded".to_owned()));
}

#[test]
fn ten64_dpaa2_needs_vfio_fsl_mc_and_irq_cfg() {
    let tree = topology::ten64_dpaa2().build_temp().unwrap();
    let (_, f) = findings(tree.root(), &[]);
    // vfio-fsl-mc is loadable but not loaded.
    let module: Vec<&Value> = find(&f, "module-not-loaded")
        .into_iter()
        .filter(|m| m["path"] == "/sys/module/vfio_fsl_mc")
        .collect();
    assert_eq!(module.len(), 1, "{f:#?}");
    assert_eq!(module[0]["remedy"], "modprobe vfio-fsl-mc");
    assert!(!ids(&f).contains(&"fsl-mc-vfio-missing".to_owned()));
    let irq = find(&f, "fsl-mc-irq-cfg");
    assert_eq!(irq.len(), 1);
    assert_eq!(irq[0]["severity"], "info");
    assert!(
        irq[0]["message"]
            .as_str()
            .unwrap()
            .contains("DPRC_CFG_OPT_IRQ_CFG_ALLOWED")
    );

    // A kernel without the module at all.
    let mut b = topology::ten64_dpaa2();
    b.set_module_state("vfio_fsl_mc", vfioctl_sim::ModuleState::Absent);
    let tree = b.build_temp().unwrap();
    let (code, f) = findings(tree.root(), &[]);
    assert_eq!(code, 4);
    let missing = find(&f, "fsl-mc-vfio-missing");
    assert_eq!(missing.len(), 1, "{:?}", ids(&f));
    assert_eq!(missing[0]["severity"], "error");
    assert!(
        missing[0]["remedy"]
            .as_str()
            .unwrap()
            .contains("CONFIG_VFIO_FSL_MC")
    );
}

/// On a host large enough that doctor reads its host uses on a thread of their own, a VF that
/// carries the default route is still the host's, named or not.
#[test]
fn large_host_keeps_a_vf_that_carries_the_default_route() {
    let tree = topology::sriov_host(1024).build_temp().unwrap();
    let vf = "0000:01:02.1";
    assert!(
        tree.root()
            .join("sys/class/net/enp1s2f1")
            .symlink_metadata()
            .is_ok(),
        "the sriov layout gives {vf} an interface"
    );
    std::fs::write(
        tree.root().join("proc/net/route"),
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
         enp1s2f1\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
    )
    .unwrap();
    let (code, f) = findings(tree.root(), &[vf]);
    assert_eq!(code, 4);
    let host = find(&f, "host-device");
    assert_eq!(host.len(), 1, "{f:#?}");
    assert_eq!(host[0]["device"], vf);
    assert!(
        host[0]["message"]
            .as_str()
            .unwrap()
            .contains("enp1s2f1 carries the default route"),
        "{:#?}",
        host[0]
    );
}
