//! VM definitions end to end: the real binary against simulated kernels (vfioctl-sim), with a
//! stand-in QEMU that records its arguments and exits, crashes, or waits for a signal.
// Helpers outside #[test] fns are test code too; a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vfioctl_sim::SimTree;
use vfioctl_sim::topology::{ten64, x86_desktop};

const WIFI: &str = "0001:03:00.0";
const TPU: &str = "0001:04:00.0";

/// The stand-in QEMU: records its arguments (one per line) and the drivers of the Ten64's cards
/// as it saw them, then behaves as `STANDIN_MODE` says: `exit:N`, `signal:NAME` (dies of it), or
/// `wait` (writes its PID to the ready file and runs until SIGTERM or SIGINT, then exits 42).
const STANDIN: &str = r#"#!/bin/sh
ulimit -c 0
printf '%s\n' "$@" > "$STANDIN_DIR/argv"
for dev in 0001:03:00.0 0001:04:00.0; do
  link=$(readlink "$STANDIN_ROOT/sys/bus/pci/devices/$dev/driver" 2>/dev/null)
  echo "$dev ${link##*/}" >> "$STANDIN_DIR/drivers"
done
case "$STANDIN_MODE" in
  exit:*) exit "${STANDIN_MODE#exit:}" ;;
  signal:*) kill -s "${STANDIN_MODE#signal:}" $$ ; sleep 5 ; exit 99 ;;
  wait)
    trap 'echo TERM >> "$STANDIN_DIR/signals"; exit 42' TERM
    trap 'echo INT >> "$STANDIN_DIR/signals"; exit 42' INT
    echo $$ > "$STANDIN_DIR/ready.tmp" && mv "$STANDIN_DIR/ready.tmp" "$STANDIN_DIR/ready"
    while :; do sleep 0.05; done ;;
  help) echo 'name "vfio-pci", bus PCI'; [ -n "$STANDIN_FSL" ] && echo 'name "vfio-fsl-mc"' ; exit 0 ;;
esac
exit 0
"#;

/// A simulated host with VM definitions and a stand-in QEMU.
struct Host {
    tree: SimTree,
    qemu_dir: tempfile::TempDir,
}

impl Host {
    fn new(tree: SimTree) -> Self {
        let qemu_dir = tempfile::tempdir().unwrap();
        // Written by a child process, so no descriptor open for writing in this (multi-threaded,
        // forking) test process can make exec fail with ETXTBSY.
        let path = qemu_dir.path().join("qemu-system-aarch64");
        let mut child = Command::new("sh")
            .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
            .arg(&path)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(STANDIN.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        fs::create_dir_all(tree.root().join("etc/vfioctl/vms")).unwrap();
        Self { tree, qemu_dir }
    }

    fn ten64() -> Self {
        Self::new(ten64().build_temp().unwrap())
    }

    fn root(&self) -> &Path {
        self.tree.root()
    }

    fn qemu(&self) -> PathBuf {
        self.qemu_dir.path().join("qemu-system-aarch64")
    }

    fn define(&self, name: &str, text: &str) -> PathBuf {
        let text = text.replace("@QEMU@", &self.qemu().display().to_string());
        let path = self.root().join(format!("etc/vfioctl/vms/{name}.toml"));
        fs::write(&path, text).unwrap();
        path
    }

    fn vfioctl(&self, mode: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vfioctl"));
        cmd.arg("--root")
            .arg(self.root())
            .env("STANDIN_DIR", self.qemu_dir.path())
            .env("STANDIN_ROOT", self.root())
            .env("STANDIN_MODE", mode)
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, mode: &str, args: &[&str]) -> Output {
        self.vfioctl(mode).args(args).output().unwrap()
    }

    fn driver(&self, address: &str) -> Option<String> {
        fs::read_link(
            self.root()
                .join(format!("sys/bus/pci/devices/{address}/driver")),
        )
        .ok()
        .map(|t| t.file_name().unwrap().to_string_lossy().into_owned())
    }

    fn recorded(&self, file: &str) -> String {
        fs::read_to_string(self.qemu_dir.path().join(file)).unwrap_or_default()
    }

    fn journal(&self) -> String {
        fs::read_to_string(self.root().join("run/vfioctl/journal.json")).unwrap_or_default()
    }

    /// The Ten64's cards are as the host had them: Wi-Fi on ath10k_pci, the TPU on nothing.
    fn assert_given_back(&self) {
        assert_eq!(self.driver(WIFI).as_deref(), Some("ath10k_pci"));
        assert_eq!(self.driver(TPU), None);
        let journal = self.journal();
        assert!(
            !journal.contains(WIFI),
            "journal still lists devices: {journal}"
        );
        // vfioctl loaded vfio-pci for the VM, and unloaded it once nothing used it.
        assert!(!self.root().join("sys/bus/pci/drivers/vfio-pci").exists());
    }

    /// Waits for the stand-in to say it is running; returns its PID.
    fn wait_ready(&self) -> i32 {
        let ready = self.qemu_dir.path().join("ready");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = fs::read_to_string(&ready)
                && let Ok(pid) = text.trim().parse()
            {
                return pid;
            }
            assert!(Instant::now() < deadline, "the stand-in QEMU never started");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn kill(pid: i32, signal: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The Ten64 VM of the README, without a DPAA2 container (`topology::ten64()` has no fsl-mc bus;
/// `ten64_dpaa2()` does).
const TEN64_VM: &str = r#"version = 1
boot = true

[[device]]
address = "0001:03:00.0"
id = "168c:003e"

[[device]]
address = "0001:04:00.0"
id = "1ac1:089a"

[qemu]
binary = "@QEMU@"
machine = "virt"
memory = "1G"
cpus = 2
append = "console=ttyAMA0 root=/dev/vda2"
extra_args = ["-nographic"]
"#;

#[test]
fn run_binds_passes_the_command_line_and_gives_back_on_exit() {
    let host = Host::ten64();
    host.define("ten64", TEN64_VM);
    let expected = host.run("exit:0", &["--json", "vm", "qemu-args", "ten64"]);
    assert!(expected.status.success(), "{}", text(&expected.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&expected.stdout).unwrap();
    let argv: Vec<String> = doc["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(argv[0], host.qemu().display().to_string());

    let out = host.run("exit:0", &["run", "ten64"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // QEMU got exactly the rendered arguments, one argv entry each (no shell in between).
    let recorded: Vec<String> = host.recorded("argv").lines().map(str::to_owned).collect();
    assert_eq!(recorded, argv[1..]);
    assert!(recorded.contains(&"console=ttyAMA0 root=/dev/vda2".to_owned()));
    // While it ran, both cards of the group were on vfio-pci.
    assert_eq!(
        host.recorded("drivers"),
        format!("{WIFI} vfio-pci\n{TPU} vfio-pci\n")
    );
    host.assert_given_back();
}

#[test]
fn run_exits_with_qemus_status_and_gives_back() {
    let host = Host::ten64();
    host.define("ten64", TEN64_VM);
    let out = host.run("exit:7", &["run", "ten64"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    host.assert_given_back();
}

#[test]
fn run_reports_a_crashed_qemu_as_128_plus_signal_and_gives_back() {
    let host = Host::ten64();
    host.define("ten64", TEN64_VM);
    let out = host.run("signal:SEGV", &["run", "ten64"]);
    assert_eq!(out.status.code(), Some(128 + 11), "{}", text(&out.stderr));
    host.assert_given_back();
}

fn forwarded(signal: &str, recorded: &str) {
    let host = Host::ten64();
    host.define("ten64", TEN64_VM);
    let mut child = host
        .vfioctl("wait")
        .args(["run", "ten64"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    host.wait_ready();
    assert_eq!(host.driver(WIFI).as_deref(), Some("vfio-pci"));
    kill(child.id() as i32, signal);
    let out = wait_with_deadline(&mut child, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(42), "{}", text(&out.stderr));
    assert_eq!(host.recorded("signals"), format!("{recorded}\n"));
    host.assert_given_back();
}

fn wait_with_deadline(child: &mut std::process::Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("vfioctl did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    Output {
        status: child.wait().unwrap(),
        stdout,
        stderr,
    }
}

#[test]
fn run_forwards_sigterm_to_qemu_and_gives_back() {
    forwarded("TERM", "TERM");
}

#[test]
fn run_forwards_sigint_to_qemu_and_gives_back() {
    forwarded("INT", "INT");
}

#[test]
fn a_killed_run_is_given_back_by_restore_all() {
    let host = Host::ten64();
    host.define("ten64", TEN64_VM);
    let mut child = host
        .vfioctl("wait")
        .args(["run", "ten64"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let qemu_pid = host.wait_ready();
    // SIGKILL cannot be caught: vfioctl dies with the devices bound, and QEMU lives on.
    kill(child.id() as i32, "KILL");
    let _ = child.wait();
    kill(qemu_pid, "TERM");
    assert_eq!(host.driver(WIFI).as_deref(), Some("vfio-pci"));
    let journal = host.journal();
    assert!(journal.contains(WIFI) && journal.contains(TPU), "{journal}");
    assert!(journal.contains("\"owner\": \"vm:ten64\""), "{journal}");
    // status sees a boot VM that is as configured; restore --all gives everything back.
    let status = host.run("exit:0", &["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stdout));
    let out = host.run("exit:0", &["restore", "--all"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    host.assert_given_back();
    let status = host.run("exit:0", &["status"]);
    assert_eq!(status.status.code(), Some(4), "{}", text(&status.stdout));
}

#[test]
fn run_dry_run_prints_the_plan_and_the_command_line_and_changes_nothing() {
    let host = Host::ten64();
    host.define("ten64", TEN64_VM);
    let before = host.tree.snapshot().unwrap();
    let out = host.run("exit:0", &["run", "--dry-run", "ten64"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("ath10k_pci -> vfio-pci"), "{stdout}");
    assert!(
        stdout.contains("-device vfio-pci,host=0001:03:00.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("'console=ttyAMA0 root=/dev/vda2'"),
        "{stdout}"
    );
    assert!(host.recorded("argv").is_empty(), "QEMU must not run");
    assert!(before.diff(&host.tree.snapshot().unwrap()).is_empty());
}

#[test]
fn a_device_whose_identity_changed_is_refused_naming_both() {
    let host = Host::ten64();
    host.define("ten64", &TEN64_VM.replace("168c:003e", "8086:2723"));
    let before = host.tree.snapshot().unwrap();
    for args in [&["run", "ten64"][..], &["vm", "qemu-args", "ten64"][..]] {
        let out = host.run("exit:0", args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("0001:03:00.0 should be 8086:2723 but is 168c:003e"),
            "{stderr}"
        );
    }
    assert!(host.recorded("argv").is_empty());
    let changed: Vec<String> = before
        .diff(&host.tree.snapshot().unwrap())
        .into_iter()
        // The lock and state directory under run/ are made before planning; nothing else changes.
        .filter(|d| !d.starts_with("run"))
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
    let check = host.run("exit:0", &["vm", "check", "ten64"]);
    assert_eq!(check.status.code(), Some(4));
    assert!(text(&check.stdout).contains("DRIFTED"));
}

#[test]
fn a_malformed_definition_is_reported_with_file_line_and_column() {
    let host = Host::ten64();
    let path = host.define(
        "ten64",
        &TEN64_VM.replace("cpus = 2", "cpus = 2\nmemroy = \"2G\""),
    );
    let out = host.run("exit:0", &["vm", "check", "ten64"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let expected = format!("error: {}:17:1: ", path.display());
    assert!(stderr.starts_with(&expected), "{stderr}");
    assert!(stderr.contains("memroy"), "{stderr}");
    // The list shows it as invalid, and apply does not get past it silently.
    let out = host.run("exit:0", &["vm", "list"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(text(&out.stdout).contains(":17:1: "));
    let out = host.run("exit:0", &["apply"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn apply_is_idempotent_and_refuses_a_drifted_vm_but_does_the_others() {
    let host = Host::ten64();
    host.define("ten64", TEN64_VM);
    // A second boot VM whose card was replaced: refused, without stopping the first.
    host.define(
        "nvme-guest",
        "version = 1\nboot = true\n[[device]]\naddress = \"0002:01:00.0\"\nid = \"144d:a808\"\n",
    );
    let out = host.run("exit:0", &["apply"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("ten64: bound 0001:03:00.0, 0001:04:00.0"),
        "{stdout}"
    );
    assert!(stdout.contains("nvme-guest: refused"), "{stdout}");
    assert!(
        stdout.contains("0002:01:00.0 should be 144d:a808 but is c0a9:2263"),
        "{stdout}"
    );
    assert_eq!(host.driver(WIFI).as_deref(), Some("vfio-pci"));
    assert_eq!(host.driver("0002:01:00.0").as_deref(), Some("nvme"));

    fs::remove_file(host.root().join("etc/vfioctl/vms/nvme-guest.toml")).unwrap();
    let before = host.tree.snapshot().unwrap();
    let out = host.run("exit:0", &["apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ten64: already bound"));
    assert!(before.diff(&host.tree.snapshot().unwrap()).is_empty());

    let status = host.run("exit:0", &["--json", "status"]);
    assert_eq!(status.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(doc["vms"][0]["devices"][0]["state"], "bound");
    // The journal's owner is the VM.
    assert!(host.journal().contains("\"owner\": \"vm:ten64\""));
}

#[test]
fn two_boot_vms_claiming_one_group_are_both_refused() {
    let host = Host::ten64();
    host.define("ten64", TEN64_VM);
    host.define(
        "wifi-only",
        "version = 1\nboot = true\n[[device]]\naddress = \"0001:03:00.0\"\nid = \"168c:003e\"\n",
    );
    let out = host.run("exit:0", &["apply"]);
    assert_eq!(out.status.code(), Some(3));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("ten64: refused"), "{stdout}");
    assert!(stdout.contains("wifi-only: refused"), "{stdout}");
    assert!(
        stdout.contains("is claimed by boot VM wifi-only too"),
        "{stdout}"
    );
    assert_eq!(host.driver(WIFI).as_deref(), Some("ath10k_pci"));
}

#[test]
fn status_reports_configured_versus_actual() {
    let host = Host::ten64();
    host.define("ten64", TEN64_VM);
    host.define(
        "moved",
        "version = 1\n[[device]]\naddress = \"0001:05:00.0\"\nid = \"1ac1:089a\"\n",
    );
    let out = host.run("exit:0", &["status"]);
    // A boot VM not bound: exit 4.
    assert_eq!(out.status.code(), Some(4));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("VM ten64 (boot, NOT as configured)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("0001:03:00.0  168c:003e  not bound (on ath10k_pci)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("0001:05:00.0  ----:----  missing"),
        "{stdout}"
    );
    assert!(
        stdout.contains("a 1ac1:089a is now at 0001:04:00.0"),
        "{stdout}"
    );
}

#[test]
fn check_lists_unlisted_group_members_and_finds_qemu() {
    let host = Host::ten64();
    // Only the Wi-Fi card: the TPU shares its group and would go with it.
    host.define(
        "wifi",
        &TEN64_VM.replace(
            "[[device]]\naddress = \"0001:04:00.0\"\nid = \"1ac1:089a\"\n",
            "",
        ),
    );
    let out = host.run("help", &["vm", "check", "wifi"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("not listed: 0001:04:00.0"), "{stdout}");
    assert!(
        stdout.contains("it is bound and passed to the guest anyway"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("QEMU: {}", host.qemu().display())),
        "{stdout}"
    );
}

#[test]
fn check_of_a_dpaa2_vm_asks_qemu_for_vfio_fsl_mc() {
    let host = Host::new(vfioctl_sim::topology::ten64_dpaa2().build_temp().unwrap());
    host.define(
        "dpaa2",
        &TEN64_VM.replace("boot = true\n", "boot = true\ndprc = [\"dprc.2\"]\n"),
    );
    // The container, bound to vfio-fsl-mc.
    let out = host.run("exit:0", &["bind", "dprc.2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // A mainline QEMU: no vfio-fsl-mc.
    let out = host.run("help", &["vm", "check", "dpaa2"]);
    assert_eq!(out.status.code(), Some(4));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("has no vfio-fsl-mc device"), "{stdout}");
    assert!(stdout.contains("NXP's QEMU"), "{stdout}");
    // NXP's QEMU.
    let out = host
        .vfioctl("help")
        .env("STANDIN_FSL", "1")
        .args(["vm", "check", "dpaa2"])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("(has vfio-fsl-mc)"), "{stdout}");
    assert!(stdout.contains("dprc.2  bound"), "{stdout}");
    // And the command line passes it.
    let out = host.run("exit:0", &["vm", "qemu-args", "dpaa2"]);
    assert!(text(&out.stdout).contains("-device vfio-fsl-mc,host=dprc.2"));
}

#[test]
fn desktop_vm_renders_gpu_and_audio_as_one_multifunction_device() {
    let host = Host::new(x86_desktop().build_temp().unwrap());
    let list = host.run("exit:0", &["--json", "list"]);
    let doc: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    // Find the GPU and its audio function in whatever the simulated desktop has.
    let devices = doc["devices"].as_array().unwrap();
    let gpu = devices
        .iter()
        .find(|d| d["class"].as_str().unwrap().starts_with("03"))
        .expect("the desktop has a GPU");
    let gpu_address = gpu["address"].as_str().unwrap();
    let slot = &gpu_address[..gpu_address.len() - 1];
    let audio = devices
        .iter()
        .find(|d| d["address"].as_str().unwrap() == format!("{slot}1"))
        .expect("the GPU has an audio function");
    let definition = format!(
        "version = 1\n[[device]]\naddress = \"{gpu_address}\"\nid = \"{}:{}\"\n[[device]]\n\
         address = \"{slot}1\"\nid = \"{}:{}\"\n[qemu]\nmachine = \"q35\"\nmemory = \"8G\"\n",
        gpu["vendor_id"].as_str().unwrap(),
        gpu["device_id"].as_str().unwrap(),
        audio["vendor_id"].as_str().unwrap(),
        audio["device_id"].as_str().unwrap(),
    );
    host.define("desktop", &definition);
    let out = host.run("exit:0", &["vm", "qemu-args", "desktop"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("qemu-system-x86_64 \\\n  -name desktop \\\n  -machine q35"));
    assert!(
        stdout.contains(&format!(
            "host={gpu_address},id=hostdev0,bus=rp1,addr=00.0,multifunction=on"
        )),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("host={slot}1,id=hostdev1,bus=rp1,addr=00.1")));
}

#[test]
fn run_of_a_dpaa2_vm_binds_the_container_and_gives_it_back() {
    let host = Host::new(vfioctl_sim::topology::ten64_dpaa2().build_temp().unwrap());
    host.define(
        "ten64",
        &TEN64_VM.replace("boot = true\n", "boot = true\ndprc = [\"dprc.2\"]\n"),
    );
    // The stand-in QEMU records the container's driver as it saw it.
    let script = host.qemu();
    let standin = fs::read_to_string(&script).unwrap().replace(
        "case \"$STANDIN_MODE\" in",
        "link=$(readlink \"$STANDIN_ROOT/sys/bus/fsl-mc/devices/dprc.2/driver\" 2>/dev/null)\n\
         echo \"dprc.2 ${link##*/}\" >> \"$STANDIN_DIR/drivers\"\ncase \"$STANDIN_MODE\" in",
    );
    let tmp = script.with_extension("new");
    fs::write(&tmp, standin).unwrap();
    let status = Command::new("sh")
        .args(["-c", "chmod 755 \"$1\" && mv \"$1\" \"$2\"", "sh"])
        .arg(&tmp)
        .arg(&script)
        .status()
        .unwrap();
    assert!(status.success());

    let out = host.run("exit:0", &["run", "ten64"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(host.recorded("argv").contains("vfio-fsl-mc,host=dprc.2"));
    assert!(
        host.recorded("drivers").contains("dprc.2 vfio-fsl-mc"),
        "{}",
        host.recorded("drivers")
    );
    host.assert_given_back();
    let dprc_driver = fs::read_link(host.root().join("sys/bus/fsl-mc/devices/dprc.2/driver"));
    assert!(
        dprc_driver.is_err(),
        "dprc.2 is still bound: {dprc_driver:?}"
    );
    assert!(!host.journal().contains("dprc.2"), "{}", host.journal());
}
