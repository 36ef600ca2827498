//! Real-kernel test layer: boots stock Debian kernels under QEMU (TCG) with emulated PCIe
//! topologies and an IOMMU, and runs `vfioctl` inside against real sysfs and VFIO.
//!
//! Everything here runs on the host. The pieces:
//! - `qemu-tests/setup.sh` installs QEMU, unpacks three kernel generations and a newer QEMU into
//!   the cache dir and writes `setup.env`, which [`Setup::load`] reads;
//! - [`cases`] holds the topologies and the case registry; [`matrix`] crosses the cases with the
//!   kernels, the boot methods and the QEMU builds into [`Variant`]s;
//! - [`build_guest_binaries`] cross-builds `vfioctl` and `vfioctl-guest-check` as static binaries
//!   for each guest architecture;
//! - [`prepare_case`] packs one initramfs per variant (`qemu-tests/build-initramfs.sh`) and writes
//!   its QEMU command line;
//! - [`run_cases`] boots the VMs, at most `jobs` at a time, and reads the sentinel line and the
//!   facts that the guest prints on the serial console;
//! - [`report`] renders the matrix table and compares the group layouts across variants.
//!
//! The gated integration test `tests/qemu.rs` drives it all; see `qemu-tests/README.md`.

pub mod cases;
pub mod machine;
pub mod matrix;
pub mod monitor;
pub mod prepare;
pub mod report;
pub mod run;
pub mod setup;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub use cases::{CASES, Case, TOPOLOGIES, Topology, topology};
pub use machine::{Arch, Boot, Qemu, QemuKind};
pub use matrix::{Filter, NewQemu, Variant, expand};
pub use prepare::{GuestBinaries, PreparedCase, RunOptions, build_guest_binaries, prepare_case};
pub use report::{group_layout, render_layouts, render_predict_differences, render_table};
pub use run::{
    CaseReport, Outcome, parse_facts, parse_predict_diff, parse_sentinel, run_case, run_cases,
};
pub use setup::{Kernel, Setup};

/// The line the guest prints last; everything after it on the line is the result.
pub const SENTINEL: &str = "VFIOCTL-CASE-RESULT:";

/// The prefix of a measured fact the guest prints (`VFIOCTL-FACT: rp-acs=enabled`); the runner
/// collects them into the report.
pub const FACT: &str = "VFIOCTL-FACT:";

/// The first line `/init` prints; a log without it never got to user space.
pub const INIT_MARKER: &str = "=== vfioctl guest:";

/// A harness error: what failed, in one line.
#[derive(Debug)]
pub struct HarnessError(pub String);

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

/// Result of this crate's fallible steps.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

pub(crate) fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(HarnessError(msg.into()))
}

pub(crate) fn io_err(what: &str, path: &Path, e: &io::Error) -> HarnessError {
    HarnessError(format!("failed to {what} {}: {e}", path.display()))
}

/// The workspace root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.to_owned(), Path::to_owned)
}

/// `$VFIOCTL_QEMU_CACHE`, or `qemu-tests/work` in the repo.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("VFIOCTL_QEMU_CACHE")
        .map_or_else(|| repo_root().join("qemu-tests/work"), PathBuf::from)
}
