//! Checks of groups and devices: vfioctl's `groups`/`list` against sysfs, and expected groups.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use crate::state::parse_yes_no;
use crate::sysfs::{Sysfs, normalize_hex};
use crate::vfioctl::{show, vfioctl_bin, vfioctl_group_members, vfioctl_groups, vfioctl_json};
use crate::{Check, CheckError, fail, usage};

pub(crate) fn cmd_sysfs(sys: &Sysfs) -> Check {
    for addr in sys.devices()? {
        let driver = sys.driver(&addr)?.unwrap_or_else(|| "-".to_owned());
        let group = sys
            .group_of(&addr)?
            .map_or_else(|| "none".to_owned(), |g| g.to_string());
        let over = sys
            .driver_override(&addr)?
            .unwrap_or_else(|| "-".to_owned());
        println!("device {addr} driver={driver} group={group} override={over}");
    }
    for (id, members) in sys.groups()? {
        println!("group {id}: {}", show(&members));
    }
    Ok(())
}

pub(crate) fn cmd_groups_match(sys: &Sysfs) -> Check {
    let json = vfioctl_json(&["groups", "--json"])?;
    let kernel = sys.groups()?;
    if json.get("iommu_enabled").and_then(Value::as_bool) != Some(!kernel.is_empty()) {
        return fail(format!(
            "iommu_enabled should be {} (sysfs has {} groups)",
            !kernel.is_empty(),
            kernel.len()
        ));
    }
    let ours = vfioctl_groups(&json)?;
    let mut problems = Vec::new();
    for (id, members) in &kernel {
        match ours.get(id) {
            None => problems.push(format!(
                "group {id} ({}) missing from vfioctl",
                show(members)
            )),
            Some((m, _)) if m != members => {
                problems.push(format!(
                    "group {id}: sysfs has {}, vfioctl has {}",
                    show(members),
                    show(m)
                ));
            }
            Some(_) => {}
        }
    }
    for id in ours.keys().filter(|id| !kernel.contains_key(id)) {
        problems.push(format!(
            "vfioctl reports group {id} that sysfs does not have"
        ));
    }
    if problems.is_empty() {
        println!("groups-match: {} groups agree", kernel.len());
        Ok(())
    } else {
        fail(problems.join("; "))
    }
}

pub(crate) fn cmd_list_match(sys: &Sysfs) -> Check {
    let json = vfioctl_json(&["list", "--json"])?;
    let Some(devices) = json.get("devices").and_then(Value::as_array) else {
        return fail("vfioctl list --json: no \"devices\" array");
    };
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for d in devices {
        let Some(addr) = d.get("address").and_then(Value::as_str) else {
            return fail(format!("device without address: {d}"));
        };
        seen.insert(addr.to_owned());
        if !sys.pci_dir().join(addr).exists() {
            problems.push(format!("{addr} is not in sysfs"));
            continue;
        }
        let str_field = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_owned);
        if str_field("driver") != sys.driver(addr)? {
            problems.push(format!(
                "{addr}: driver {:?}, sysfs {:?}",
                str_field("driver"),
                sys.driver(addr)?
            ));
        }
        if str_field("driver_override") != sys.driver_override(addr)? {
            problems.push(format!(
                "{addr}: driver_override {:?}, sysfs {:?}",
                str_field("driver_override"),
                sys.driver_override(addr)?
            ));
        }
        let group = d.get("iommu_group").and_then(Value::as_u64);
        if group != sys.group_of(addr)? {
            problems.push(format!(
                "{addr}: iommu_group {group:?}, sysfs {:?}",
                sys.group_of(addr)?
            ));
        }
        for (field, attr) in [("vendor_id", "vendor"), ("device_id", "device")] {
            let ours = str_field(field).map(|s| normalize_hex(&s));
            let kernel = sys.id_attr(addr, attr)?;
            if ours.as_deref() != Some(kernel.as_str()) {
                problems.push(format!("{addr}: {field} {ours:?}, sysfs {kernel}"));
            }
        }
    }
    let kernel: BTreeSet<String> = sys.devices()?.into_iter().collect();
    for missing in kernel.difference(&seen) {
        problems.push(format!("{missing} missing from vfioctl list"));
    }
    if problems.is_empty() {
        println!("list-match: {} devices agree", seen.len());
        Ok(())
    } else {
        fail(problems.join("; "))
    }
}

/// Options of `expect-group`: each is a `|`-separated set of accepted values.
#[derive(Default)]
pub(crate) struct GroupExpectation {
    members: BTreeSet<String>,
    shared: Option<bool>,
    reasons: Option<Vec<String>>,
    reason_devices: Option<Vec<String>>,
}

pub(crate) fn parse_group_expectation(args: &[String]) -> Check<GroupExpectation> {
    let Some((members, rest)) = args.split_first() else {
        return usage("expect-group needs a member list");
    };
    let mut exp = GroupExpectation {
        members: members
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        ..GroupExpectation::default()
    };
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let Some(value) = it.next() else {
            return usage(format!("{flag} needs a value"));
        };
        let alternatives = || value.split('|').map(str::to_owned).collect::<Vec<_>>();
        match flag.as_str() {
            "--shared" => exp.shared = Some(parse_yes_no(value)?),
            "--reason" => exp.reasons = Some(alternatives()),
            "--reason-device" => exp.reason_devices = Some(alternatives()),
            other => return usage(format!("unknown option {other}")),
        }
    }
    Ok(exp)
}

pub(crate) fn cmd_expect_group(sys: &Sysfs, args: &[String]) -> Check {
    let exp = parse_group_expectation(args)?;
    let kernel = sys.groups()?;
    let Some((&id, _)) = kernel.iter().find(|(_, m)| **m == exp.members) else {
        let all: Vec<String> = kernel
            .iter()
            .map(|(id, m)| format!("{id}: {}", show(m)))
            .collect();
        return fail(format!(
            "sysfs has no group of exactly {} (groups: {})",
            show(&exp.members),
            all.join(", ")
        ));
    };
    println!("expect-group: sysfs group {id} = {}", show(&exp.members));
    let json = vfioctl_json(&["groups", "--json"])?;
    let ours = vfioctl_groups(&json)?;
    let Some((members, group)) = ours.get(&id) else {
        return fail(format!("vfioctl groups has no group {id}"));
    };
    if *members != exp.members {
        return fail(format!(
            "vfioctl group {id} has {}, expected {}",
            show(members),
            show(&exp.members)
        ));
    }
    println!("expect-group: vfioctl says {group}");
    if let Some(shared) = exp.shared {
        let got = group.get("shared").and_then(Value::as_bool);
        if got != Some(shared) {
            return fail(format!("group {id}: shared {got:?}, expected {shared}"));
        }
    }
    let reason = group.get("reason");
    if let Some(kinds) = &exp.reasons {
        let got = reason
            .and_then(|r| r.get("kind"))
            .and_then(Value::as_str)
            .unwrap_or("<none>");
        if !kinds.iter().any(|k| k == got) {
            return fail(format!(
                "group {id}: reason kind {got}, expected {}",
                kinds.join("|")
            ));
        }
    }
    if let Some(devices) = &exp.reason_devices {
        let got = reason
            .and_then(|r| r.get("device"))
            .and_then(Value::as_str)
            .unwrap_or("null");
        if !devices.iter().any(|d| d == got) {
            return fail(format!(
                "group {id}: reason device {got}, expected {}",
                devices.join("|")
            ));
        }
    }
    Ok(())
}

pub(crate) fn cmd_expect_no_group(sys: &Sysfs, addr: &str) -> Check {
    if let Some(g) = sys.group_of(addr)? {
        return fail(format!("{addr} is in group {g} in sysfs"));
    }
    let json = vfioctl_json(&["list", "--json"])?;
    let entry = json
        .get("devices")
        .and_then(Value::as_array)
        .and_then(|ds| {
            ds.iter()
                .find(|d| d.get("address").and_then(Value::as_str) == Some(addr))
        });
    match entry {
        None => fail(format!("vfioctl list does not show {addr}")),
        Some(d) if d.get("iommu_group").is_some_and(|g| !g.is_null()) => fail(format!(
            "vfioctl list gives {addr} iommu_group {}",
            d["iommu_group"]
        )),
        Some(_) => {
            println!("expect-no-group: {addr} has no group in sysfs nor in vfioctl list");
            Ok(())
        }
    }
}

/// The predicted groups without the members that join only when a driver binds
/// (`awaiting_driver`) and have no group in sysfs yet (one that had a driver keeps its group).
fn bound_members(
    json: &Value,
    kernel: &BTreeSet<BTreeSet<String>>,
) -> Check<BTreeSet<BTreeSet<String>>> {
    let groups = vfioctl_group_members(json)?;
    let grouped: BTreeSet<&String> = kernel.iter().flatten().collect();
    let awaiting: BTreeSet<String> = json["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["awaiting_driver"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .filter(|a| !grouped.contains(a))
        .collect();
    Ok(groups
        .into_iter()
        .map(|g| g.difference(&awaiting).cloned().collect::<BTreeSet<_>>())
        .filter(|g| !g.is_empty())
        .collect())
}

/// Exit status of `predict-match` when the vfioctl under test has no `groups --predict`.
pub(crate) const PREDICT_UNAVAILABLE: u8 = 3;

/// `vfioctl groups --predict --json` forms exactly the kernel's groups (compared by members:
/// a prediction has no kernel group numbers). Devices the kernel left without a group must not
/// be in a predicted group either.
pub(crate) fn cmd_predict_match(sys: &Sysfs) -> Check {
    let out = match Command::new(vfioctl_bin())
        .args(["groups", "--predict", "--json"])
        .output()
    {
        Ok(o) => o,
        Err(e) => return fail(format!("cannot run vfioctl groups --predict: {e}")),
    };
    if out.status.code() == Some(2) {
        println!(
            "predict-match: this vfioctl has no groups --predict: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return Err(CheckError::Unavailable);
    }
    let json = vfioctl_json(&["groups", "--predict", "--json"])?;
    if json.get("predicted").and_then(Value::as_bool) != Some(true) {
        return fail("vfioctl groups --predict --json: no \"predicted\": true");
    }
    let kernel: BTreeSet<BTreeSet<String>> = sys.groups()?.into_values().collect();
    let predicted = bound_members(&json, &kernel)?;
    let only_kernel: Vec<String> = kernel.difference(&predicted).map(show).collect();
    let only_predicted: Vec<String> = predicted.difference(&kernel).map(show).collect();
    if only_kernel.is_empty() && only_predicted.is_empty() {
        println!(
            "predict-match: {} predicted groups equal the kernel's",
            kernel.len()
        );
        return Ok(());
    }
    let side = |groups: &[String]| {
        if groups.is_empty() {
            "none".to_owned()
        } else {
            format!("[{}]", groups.join("] ["))
        }
    };
    fail(format!(
        "predicted groups differ from the kernel's: kernel only {}; predicted only {}",
        side(&only_kernel),
        side(&only_predicted)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_awaiting_a_driver_are_not_compared() {
        let json = serde_json::json!({"groups": [
            {"devices": ["0000:00:00.0"], "awaiting_driver": ["0000:00:00.0"]},
            {"devices": ["0000:00:10.0", "0000:01:00.0"], "awaiting_driver": ["0000:01:00.0"]},
        ]});
        let set = |l: &[&str]| -> BTreeSet<String> { l.iter().map(|s| (*s).to_owned()).collect() };
        // 01:00.0 had a driver once, so sysfs shows its group: it is compared.
        let kernel: BTreeSet<BTreeSet<String>> = [set(&["0000:00:10.0", "0000:01:00.0"])].into();
        let got = bound_members(&json, &kernel).ok().unwrap();
        assert_eq!(got, kernel);
    }

    #[test]
    fn parses_group_expectations() {
        let args: Vec<String> = [
            "0000:03:00.0,0000:02:00.0",
            "--shared",
            "yes",
            "--reason",
            "a|b",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let exp = parse_group_expectation(&args).ok().unwrap();
        assert_eq!(exp.members.len(), 2);
        assert_eq!(exp.shared, Some(true));
        assert_eq!(exp.reasons, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert!(exp.reason_devices.is_none());
        assert!(parse_group_expectation(&["x".to_owned(), "--shared".to_owned()]).is_err());
    }
}
