//! `vfioctl run` end to end: the test binary against simulated kernels (vfioctl-sim), with a
//! stand-in QEMU that records its arguments and exits, crashes, or waits for a signal.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod vmhost;

use std::fs;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vmhost::{Host, TEN64_VM, TPU, WIFI, kill, text};

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
