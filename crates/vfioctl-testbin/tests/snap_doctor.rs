//! Snapshots of `doctor`, host-wide and for named devices, on the simulated Ten64 (with and
//! without its DPAA2 bus) and the simulated x86 desktop.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use common::shown::{host, shown};
use vfioctl_sim::topology::{ten64, ten64_dpaa2, x86_desktop};

#[test]
fn ten64_doctor() {
    let t = host(ten64_dpaa2());
    for (name, line) in [
        ("ten64_doctor", "doctor"),
        ("ten64_doctor_wifi", "doctor 0001:03:00.0"),
        ("ten64_doctor_nvme", "doctor 0002:01:00.0"),
    ] {
        insta::assert_snapshot!(name, shown(t.root(), line));
    }
    let plain = host(ten64());
    insta::assert_snapshot!("ten64_no_dpaa2_doctor", shown(plain.root(), "doctor"));
}

#[test]
fn desktop_doctor() {
    let t = host(x86_desktop());
    for (name, line) in [
        ("desktop_doctor", "doctor"),
        ("desktop_doctor_gpu", "doctor 0000:01:00.0"),
        ("desktop_doctor_nic", "doctor enp3s0"),
    ] {
        insta::assert_snapshot!(name, shown(t.root(), line));
    }
}
