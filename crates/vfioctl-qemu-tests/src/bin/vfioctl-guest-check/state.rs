//! Checks of device state: drivers, overrides, modules, VFIO nodes, viability and exit codes.

use std::process::Command;

use serde_json::Value;

use crate::sysfs::Sysfs;
use crate::vfio::{VFIO_GROUP_FLAGS_VIABLE, group_status};
use crate::vfioctl::{vfioctl_bin, vfioctl_groups, vfioctl_json};
use crate::{Check, fail, usage};

#[expect(
    clippy::needless_pass_by_value,
    reason = "every caller hands over the value it just read"
)]
pub(crate) fn expect_opt(what: &str, addr: &str, got: Option<String>, want: &str) -> Check {
    let want = (want != "none").then(|| want.to_owned());
    if got == want {
        println!("{what} {addr}: {}", got.as_deref().unwrap_or("none"));
        Ok(())
    } else {
        fail(format!(
            "{addr}: {what} is {}, expected {}",
            got.as_deref().unwrap_or("none"),
            want.as_deref().unwrap_or("none")
        ))
    }
}

pub(crate) fn parse_yes_no(s: &str) -> Check<bool> {
    match s {
        "yes" | "true" | "present" | "loaded" => Ok(true),
        "no" | "false" | "absent" => Ok(false),
        other => usage(format!("expected yes/no, got {other}")),
    }
}

pub(crate) fn require_group(sys: &Sysfs, addr: &str) -> Check<u64> {
    match sys.group_of(addr)? {
        Some(g) => Ok(g),
        None => fail(format!("{addr} has no IOMMU group")),
    }
}

pub(crate) fn cmd_vfio_node(sys: &Sysfs, addr: &str, want: &str) -> Check {
    let want = parse_yes_no(want)?;
    let group = require_group(sys, addr)?;
    let present = sys.root.join("dev/vfio").join(group.to_string()).exists();
    if present == want {
        println!(
            "vfio-node: /dev/vfio/{group} {}",
            if present { "present" } else { "absent" }
        );
        Ok(())
    } else {
        fail(format!(
            "/dev/vfio/{group} is {}",
            if present { "present" } else { "absent" }
        ))
    }
}

pub(crate) fn cmd_viable(sys: &Sysfs, addr: &str, want: &str) -> Check {
    let want = parse_yes_no(want)?;
    let group = require_group(sys, addr)?;
    let out = match Command::new(vfioctl_bin())
        .args(["check", &group.to_string()])
        .output()
    {
        Ok(o) => o,
        Err(e) => return fail(format!("cannot run vfioctl check: {e}")),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let said_viable = stdout
        .lines()
        .any(|l| l.contains("viable") && !l.contains("not viable"));
    let said_not = stdout.contains("not viable");
    println!(
        "vfioctl check {group}: exit {:?}: {}",
        out.status.code(),
        stdout.trim()
    );
    // vfioctl's exit-code table: `check` exits 4 ("diagnostics found problems") when a group is
    // not viable.
    let code_ok = match out.status.code() {
        Some(0) => want,
        Some(4) => !want,
        _ => false,
    };
    if !code_ok || said_viable != want || said_not == want {
        return fail(format!(
            "vfioctl check {group} exited {:?} saying {:?}; expected {}",
            out.status.code(),
            stdout.trim(),
            if want {
                "viable (exit 0)"
            } else {
                "not viable (exit 1 or 4)"
            }
        ));
    }
    // `groups --json` may also carry a "viable" flag per group; when it does, it must agree.
    let json = vfioctl_json(&["groups", "--json"])?;
    if let Some((_, g)) = vfioctl_groups(&json)?.get(&group)
        && let Some(viable) = g.get("viable").and_then(Value::as_bool)
    {
        println!("vfioctl groups --json: group {group} viable={viable}");
        if viable != want {
            return fail(format!(
                "vfioctl groups --json says group {group} viable={viable}, expected {want}"
            ));
        }
    }
    let node = sys.root.join("dev/vfio").join(group.to_string());
    match group_status(&node) {
        Ok(flags) => {
            let viable = flags & VFIO_GROUP_FLAGS_VIABLE != 0;
            println!("own GET_STATUS on {}: flags={flags:#x}", node.display());
            if viable != want {
                return fail(format!(
                    "own GET_STATUS on group {group}: viable={viable}, expected {want}"
                ));
            }
        }
        // Without a group node the group cannot be viable; that agrees with "no" only.
        Err(e) if !want => println!("own GET_STATUS not possible ({e}); counts as not viable"),
        Err(e) => return fail(format!("own GET_STATUS on group {group}: {e}")),
    }
    Ok(())
}

pub(crate) fn cmd_exit(args: &[String]) -> Check {
    let Some(sep) = args.iter().position(|a| a == "--") else {
        return usage("exit <codes> -- <cmd> [args]");
    };
    let (Some(codes), Some(cmd)) = (args.first(), args.get(sep + 1)) else {
        return usage("exit <codes> -- <cmd> [args]");
    };
    let mut accepted = Vec::new();
    for c in codes.split('|') {
        match c.parse::<i32>() {
            Ok(c) => accepted.push(c),
            Err(_) => return usage(format!("bad exit code {c}")),
        }
    }
    let rest = &args[sep + 2..];
    println!("$ {cmd} {}", rest.join(" "));
    let status = match Command::new(cmd).args(rest).status() {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot run {cmd}: {e}")),
    };
    match status.code() {
        Some(c) if accepted.contains(&c) => {
            println!("exit {c} (accepted {codes})");
            Ok(())
        }
        other => fail(format!(
            "{cmd} {} exited {other:?}, expected {codes}",
            rest.join(" ")
        )),
    }
}

/// `/sys/module/<name>` exists (`loaded`) or not (`absent`).
pub(crate) fn cmd_module(sys: &Sysfs, name: &str, want: &str) -> Check {
    let loaded = sys
        .root
        .join("sys/module")
        .join(name.replace('-', "_"))
        .exists();
    let state = if loaded { "loaded" } else { "absent" };
    if loaded == parse_yes_no(want)? {
        println!("module {name}: {state}");
        Ok(())
    } else {
        fail(format!("module {name} is {state}"))
    }
}

/// Prints `VFIO_GROUP_GET_STATUS` of `/dev/vfio/<group>`.
pub(crate) fn cmd_group_status(sys: &Sysfs, group: &str) -> Check {
    let node = sys.root.join("dev/vfio").join(group);
    match group_status(&node) {
        Ok(flags) => {
            let viable = flags & VFIO_GROUP_FLAGS_VIABLE != 0;
            println!("group {group}: flags={flags:#x} viable={viable}");
            Ok(())
        }
        Err(e) => fail(e),
    }
}

/// Holds the device open through VFIO until killed (see [`crate::vfio::hold_device`]).
pub(crate) fn cmd_hold(sys: &Sysfs, addr: &str) -> Check {
    let group = require_group(sys, addr)?;
    crate::vfio::hold_device(&sys.root.join("dev/vfio"), group, addr).or_else(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_checks_status_codes() {
        let args = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(cmd_exit(&args(&["0", "--", "true"])).is_ok());
        assert!(cmd_exit(&args(&["1|3", "--", "false"])).is_ok());
        assert!(cmd_exit(&args(&["0", "--", "false"])).is_err());
        assert!(cmd_exit(&args(&["0", "true"])).is_err());
    }
}
