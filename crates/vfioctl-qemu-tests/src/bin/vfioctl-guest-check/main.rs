//! `vfioctl-guest-check`: the independent referee inside a QEMU guest.
//!
//! The case scripts in `qemu-tests/cases/` call this to compare what `vfioctl` reports and does
//! with what the kernel itself shows: it reads `/sys/kernel/iommu_groups`, the
//! `/sys/bus/pci/devices/*/driver` links and `driver_override` on its own, and asks VFIO for a
//! group's viability with its own `VFIO_GROUP_GET_STATUS` ioctl. Busybox has no `jq`, hence a
//! small static binary (only `serde_json`).
//!
//! Every subcommand prints what it checked and exits 0 when the check holds, 1 when it does not
//! and 2 on bad usage. The root of the sysfs/dev tree is `/` unless `VFIOCTL_GUEST_ROOT` says
//! otherwise (unit tests point it at a fake tree).

mod acs;
mod groups;
mod state;
mod sysfs;
mod vfio;
mod vfioctl;

use std::process::ExitCode;

use sysfs::Sysfs;

const USAGE: &str = "\
usage: vfioctl-guest-check <command> [args]
  sysfs                                  print devices, drivers and IOMMU groups as sysfs shows them
  groups-match                           `vfioctl groups --json` has exactly the sysfs groups
  list-match                             `vfioctl list --json` agrees with sysfs on every device
  expect-group <a,b,..> [--shared yes|no] [--reason k1|k2] [--reason-device d1|d2|null]
                                         sysfs has a group of exactly these members, and so does vfioctl
  expect-no-group <addr>                 <addr> has no IOMMU group (sysfs and vfioctl list)
  driver <addr> <name|none>              the device's bound driver
  override <addr> <value|none>           the device's driver_override
  module <name> loaded|absent            /sys/module/<name>
  vfio-node <addr> present|absent        /dev/vfio/<group of addr>
  viable <addr> yes|no                   `vfioctl check <group>` (exit 0, or 1/4 when not viable),
                                         `groups --json` and our own GET_STATUS agree
  predict-match                          `vfioctl groups --predict --json` forms the kernel's groups
                                         (exit 3 when this vfioctl cannot predict)
  acs <addr> [enabled|disabled|absent]   the port's ACS capability and controls (config space)
  exit <c1|c2..> -- <cmd> [args..]       run a command, require one of the exit codes
  group-status <group>                   print VFIO_GROUP_GET_STATUS of /dev/vfio/<group>
  hold <addr>                            open the device through VFIO as QEMU does and keep it
                                         open until killed (its unbind from vfio-pci then blocks)";

/// A failed check or bad usage, with the message to print.
pub enum CheckError {
    /// The check does not hold.
    Failed(String),
    /// The command line is wrong.
    Usage(String),
    /// The vfioctl under test cannot answer this check (exit 3).
    Unavailable,
}

/// The result of a check.
pub type Check<T = ()> = Result<T, CheckError>;

/// A failed check.
pub fn fail<T>(msg: impl Into<String>) -> Check<T> {
    Err(CheckError::Failed(msg.into()))
}

/// Bad usage.
pub fn usage<T>(msg: impl Into<String>) -> Check<T> {
    Err(CheckError::Usage(msg.into()))
}

fn run(args: &[String]) -> Check {
    let sys = Sysfs::from_env();
    let arg = |i: usize| args.get(i).map(String::as_str);
    match (arg(0), arg(1), arg(2)) {
        (Some("sysfs"), None, None) => groups::cmd_sysfs(&sys),
        (Some("groups-match"), None, None) => groups::cmd_groups_match(&sys),
        (Some("list-match"), None, None) => groups::cmd_list_match(&sys),
        (Some("predict-match"), None, None) => groups::cmd_predict_match(&sys),
        (Some("expect-group"), Some(_), _) => groups::cmd_expect_group(&sys, &args[1..]),
        (Some("expect-no-group"), Some(addr), None) => groups::cmd_expect_no_group(&sys, addr),
        (Some("driver"), Some(addr), Some(want)) => {
            state::expect_opt("driver", addr, sys.driver(addr)?, want)
        }
        (Some("override"), Some(addr), Some(want)) => {
            state::expect_opt("driver_override", addr, sys.driver_override(addr)?, want)
        }
        (Some("module"), Some(name), Some(want)) => state::cmd_module(&sys, name, want),
        (Some("vfio-node"), Some(addr), Some(want)) => state::cmd_vfio_node(&sys, addr, want),
        (Some("viable"), Some(addr), Some(want)) => state::cmd_viable(&sys, addr, want),
        (Some("acs"), Some(addr), want) if args.len() <= 3 => acs::cmd_acs(&sys, addr, want),
        (Some("exit"), Some(_), _) => state::cmd_exit(&args[1..]),
        (Some("group-status"), Some(group), None) => state::cmd_group_status(&sys, group),
        (Some("hold"), Some(addr), None) => state::cmd_hold(&sys, addr),
        _ => usage(USAGE),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CheckError::Failed(msg)) => {
            println!("CHECK FAILED: {msg}");
            ExitCode::from(1)
        }
        Err(CheckError::Usage(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(2)
        }
        Err(CheckError::Unavailable) => ExitCode::from(groups::PREDICT_UNAVAILABLE),
    }
}
