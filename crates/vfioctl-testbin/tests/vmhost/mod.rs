//! A simulated host with VM definitions and a stand-in QEMU that records its arguments and
//! exits, crashes, or waits for a signal, shared by the VM tests.
#![allow(dead_code, reason = "each test file uses part of it")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic is the failure report"
)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vfioctl_sim::SimTree;
use vfioctl_sim::topology::ten64;

pub(crate) const WIFI: &str = "0001:03:00.0";
pub(crate) const TPU: &str = "0001:04:00.0";

/// The stand-in QEMU: records its arguments (one per line) and the drivers of the Ten64's cards
/// as it saw them, then behaves as `STANDIN_MODE` says: `exit:N`, `signal:NAME` (dies of it), or
/// `wait` (writes its PID to the ready file and runs until SIGTERM or SIGINT, then exits 42).
pub(crate) const STANDIN: &str = r#"#!/bin/sh
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
pub(crate) struct Host {
    pub tree: SimTree,
    pub qemu_dir: tempfile::TempDir,
}

impl Host {
    pub(crate) fn new(tree: SimTree) -> Self {
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

    pub(crate) fn ten64() -> Self {
        Self::new(ten64().build_temp().unwrap())
    }

    pub(crate) fn root(&self) -> &Path {
        self.tree.root()
    }

    pub(crate) fn qemu(&self) -> PathBuf {
        self.qemu_dir.path().join("qemu-system-aarch64")
    }

    pub(crate) fn define(&self, name: &str, text: &str) -> PathBuf {
        let text = text.replace("@QEMU@", &self.qemu().display().to_string());
        let path = self.root().join(format!("etc/vfioctl/vms/{name}.toml"));
        fs::write(&path, text).unwrap();
        path
    }

    pub(crate) fn vfioctl(&self, mode: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vfioctl-testbin"));
        cmd.arg("--root")
            .arg(self.root())
            .env("STANDIN_DIR", self.qemu_dir.path())
            .env("STANDIN_ROOT", self.root())
            .env("STANDIN_MODE", mode)
            .stdin(Stdio::null());
        cmd
    }

    pub(crate) fn run(&self, mode: &str, args: &[&str]) -> Output {
        self.vfioctl(mode).args(args).output().unwrap()
    }

    pub(crate) fn driver(&self, address: &str) -> Option<String> {
        fs::read_link(
            self.root()
                .join(format!("sys/bus/pci/devices/{address}/driver")),
        )
        .ok()
        .map(|t| t.file_name().unwrap().to_string_lossy().into_owned())
    }

    pub(crate) fn recorded(&self, file: &str) -> String {
        fs::read_to_string(self.qemu_dir.path().join(file)).unwrap_or_default()
    }

    pub(crate) fn journal(&self) -> String {
        fs::read_to_string(self.root().join("run/vfioctl/journal.json")).unwrap_or_default()
    }

    /// The Ten64's cards are as the host had them: Wi-Fi on ath10k_pci, the TPU on nothing.
    pub(crate) fn assert_given_back(&self) {
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
    pub(crate) fn wait_ready(&self) -> i32 {
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

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn kill(pid: i32, signal: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The Ten64 VM of the README, without a DPAA2 container (`topology::ten64()` has no fsl-mc bus;
/// `ten64_dpaa2()` does).
pub(crate) const TEN64_VM: &str = r#"version = 1
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
