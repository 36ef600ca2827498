//! What vfioctl says: its `--json` output, parsed.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

use crate::{Check, fail};

/// Runs `vfioctl <args>` and parses its stdout as JSON.
pub(crate) fn vfioctl_json(args: &[&str]) -> Check<Value> {
    let out = match Command::new(vfioctl_bin()).args(args).output() {
        Ok(o) => o,
        Err(e) => return fail(format!("cannot run vfioctl {}: {e}", args.join(" "))),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return fail(format!(
            "vfioctl {} exited with {}: {}{}",
            args.join(" "),
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let value: Value = match serde_json::from_str(&stdout) {
        Ok(v) => v,
        Err(e) => {
            return fail(format!(
                "vfioctl {} printed no valid JSON ({e}): {}",
                args.join(" "),
                stdout.trim()
            ));
        }
    };
    if value.get("version").and_then(Value::as_u64) != Some(1) {
        return fail(format!(
            "vfioctl {}: missing \"version\": 1",
            args.join(" ")
        ));
    }
    Ok(value)
}

pub(crate) fn vfioctl_bin() -> String {
    std::env::var("VFIOCTL_BIN").unwrap_or_else(|_| "vfioctl".to_owned())
}

/// vfioctl's groups as id → (members, the whole JSON object).
pub(crate) fn vfioctl_groups(json: &Value) -> Check<BTreeMap<u64, (BTreeSet<String>, Value)>> {
    let Some(groups) = json.get("groups").and_then(Value::as_array) else {
        return fail("vfioctl groups --json: no \"groups\" array");
    };
    let mut out = BTreeMap::new();
    for g in groups {
        let Some(id) = g.get("id").and_then(Value::as_u64) else {
            return fail(format!("group without numeric id: {g}"));
        };
        let Some(devices) = g.get("devices").and_then(Value::as_array) else {
            return fail(format!("group {id} without \"devices\" array"));
        };
        let members = devices
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        out.insert(id, (members, g.clone()));
    }
    Ok(out)
}

pub(crate) fn show(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(" ")
}

/// The member sets of vfioctl's groups, without their ids.
pub(crate) fn vfioctl_group_members(json: &Value) -> Check<BTreeSet<BTreeSet<String>>> {
    Ok(vfioctl_groups_or_unnumbered(json)?.into_iter().collect())
}

/// Like [`vfioctl_groups`], but a group without an id (a prediction) is kept too.
fn vfioctl_groups_or_unnumbered(json: &Value) -> Check<Vec<BTreeSet<String>>> {
    let Some(groups) = json.get("groups").and_then(Value::as_array) else {
        return fail("vfioctl groups --json: no \"groups\" array");
    };
    groups
        .iter()
        .map(|g| match g.get("devices").and_then(Value::as_array) {
            Some(devices) => Ok(devices
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()),
            None => fail(format!("group without \"devices\" array: {g}")),
        })
        .collect()
}
