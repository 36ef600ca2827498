//! vfioctl's exit codes: the contract scripts rely on.

/// Exit codes, documented in `--help` and the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Exit {
    /// Everything asked was done (or was already so).
    Success = 0,
    /// An operation failed; what it had changed was rolled back.
    Failed = 1,
    /// Bad usage or input: an address that does not parse or does not exist, a damaged tree.
    Usage = 2,
    /// Refused by a safety rule (would take the host's disk, network or console, or split a group).
    Refused = 3,
    /// `doctor` (or `status`, `check`) found problems.
    Problems = 4,
    /// Needs privileges vfioctl does not have (run as root).
    Privileges = 5,
}

/// The table printed at the end of `--help`.
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success (or nothing to do)
  1  an operation failed; its changes were rolled back
  2  bad usage or input (unknown device, malformed address, damaged sysfs tree)
  3  refused by a safety rule (host disk, network, console, or a split IOMMU group)
  4  diagnostics found problems (doctor, status, check)
  5  needs privileges (run as root)";
