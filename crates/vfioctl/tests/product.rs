//! The shipped binary is the product alone: no simulated kernel is linked into it, so no
//! `--root` tree can change how it behaves.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

#[test]
fn the_shipped_binary_holds_no_simulator() {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_vfioctl")).unwrap();
    for needle in [vfioctl_sim::MARKER, "vfioctl-sim/src", "SimKernel"] {
        assert!(
            !binary.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "the vfioctl binary contains {needle:?}"
        );
    }
}
