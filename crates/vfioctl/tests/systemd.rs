//! The shipped systemd unit passes `systemd-analyze verify`, with its ExecStart pointed at the
//! binary under test (verify insists that the command exists).
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::{Path, PathBuf};
use std::process::Command;

fn systemd_analyze() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|dir| dir.join("systemd-analyze"))
        .find(|p| p.is_file())
}

#[test]
fn vfioctl_apply_service_verifies() {
    let unit_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/systemd/vfioctl-apply.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    for line in [
        "Type=oneshot",
        "RemainAfterExit=yes",
        "ExecStart=/usr/bin/vfioctl apply",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
    assert!(unit.contains("libvirtd.service") && unit.contains("virtqemud.service"));
    // Ordered after udev has finished probing (not just queued the events), before Proxmox's VMs.
    let after = unit.lines().find(|l| l.starts_with("After=")).unwrap();
    assert!(after.contains("systemd-udev-settle.service"), "{after}");
    assert!(
        unit.lines()
            .any(|l| l == "Wants=systemd-udev-settle.service")
    );
    assert!(
        unit.lines()
            .any(|l| l.starts_with("Before=") && l.contains("pve-guests.service"))
    );
    assert!(!unit.lines().any(|l| l.starts_with("ExecStop")));

    let Some(analyze) = systemd_analyze() else {
        eprintln!("skipped: systemd-analyze is not installed (Debian: apt install systemd)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("vfioctl-apply.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/vfioctl", env!("CARGO_BIN_EXE_vfioctl")),
    )
    .unwrap();
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify reports unknown keys and bad values as warnings and still exits 0: any line about our
    // unit is a failure.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("vfioctl-apply"))
        .collect();
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    assert!(ours.is_empty(), "systemd-analyze verify warned:\n{stderr}");
}
