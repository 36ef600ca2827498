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

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use serde_json::Value;

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
  exit <c1|c2..> -- <cmd> [args..]       run a command, require one of the exit codes
  group-status <group>                   print VFIO_GROUP_GET_STATUS of /dev/vfio/<group>";

/// A failed check or bad usage, with the message to print.
enum CheckError {
    Failed(String),
    Usage(String),
}

type Check<T = ()> = Result<T, CheckError>;

fn fail<T>(msg: impl Into<String>) -> Check<T> {
    Err(CheckError::Failed(msg.into()))
}

fn usage<T>(msg: impl Into<String>) -> Check<T> {
    Err(CheckError::Usage(msg.into()))
}

/// The kernel's view, read straight from sysfs under `root`.
struct Sysfs {
    root: PathBuf,
}

impl Sysfs {
    fn from_env() -> Self {
        let root = std::env::var_os("VFIOCTL_GUEST_ROOT")
            .map_or_else(|| PathBuf::from("/"), PathBuf::from);
        Self { root }
    }

    fn pci_dir(&self) -> PathBuf {
        self.root.join("sys/bus/pci/devices")
    }

    fn devices(&self) -> Check<Vec<String>> {
        let mut out = Vec::new();
        for name in read_dir_names(&self.pci_dir())? {
            out.push(name);
        }
        out.sort();
        Ok(out)
    }

    /// Group id → member addresses.
    fn groups(&self) -> Check<BTreeMap<u64, BTreeSet<String>>> {
        let base = self.root.join("sys/kernel/iommu_groups");
        let mut out = BTreeMap::new();
        if !base.exists() {
            return Ok(out);
        }
        for name in read_dir_names(&base)? {
            let Ok(id) = name.parse::<u64>() else {
                continue;
            };
            let members = read_dir_names(&base.join(&name).join("devices"))?;
            out.insert(id, members.into_iter().collect());
        }
        Ok(out)
    }

    fn link_name(&self, addr: &str, attr: &str) -> Check<Option<String>> {
        let path = self.pci_dir().join(addr).join(attr);
        match fs::read_link(&path) {
            Ok(target) => Ok(target.file_name().map(|n| n.to_string_lossy().into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.pci_dir().join(addr).exists() {
                    Ok(None)
                } else {
                    fail(format!("no PCI device {addr} in sysfs"))
                }
            }
            Err(e) => fail(format!("cannot read {}: {e}", path.display())),
        }
    }

    fn driver(&self, addr: &str) -> Check<Option<String>> {
        self.link_name(addr, "driver")
    }

    fn group_of(&self, addr: &str) -> Check<Option<u64>> {
        match self.link_name(addr, "iommu_group")? {
            None => Ok(None),
            Some(name) => match name.parse() {
                Ok(id) => Ok(Some(id)),
                Err(_) => fail(format!("{addr}: odd iommu_group link {name}")),
            },
        }
    }

    fn driver_override(&self, addr: &str) -> Check<Option<String>> {
        let path = self.pci_dir().join(addr).join("driver_override");
        let text = read_trim(&path)?;
        Ok(if text.is_empty() || text == "(null)" {
            None
        } else {
            Some(text)
        })
    }

    fn id_attr(&self, addr: &str, attr: &str) -> Check<String> {
        read_trim(&self.pci_dir().join(addr).join(attr)).map(|s| normalize_hex(&s))
    }
}

fn read_dir_names(dir: &Path) -> Check<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => return fail(format!("cannot list {}: {e}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => names.push(entry.file_name().to_string_lossy().into_owned()),
            Err(e) => return fail(format!("cannot list {}: {e}", dir.display())),
        }
    }
    names.sort();
    Ok(names)
}

fn read_trim(path: &Path) -> Check<String> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(s.trim().to_owned()),
        Err(e) => fail(format!("cannot read {}: {e}", path.display())),
    }
}

/// `0x8086`, `8086` and `0X8086` all become `8086`.
fn normalize_hex(s: &str) -> String {
    let s = s.trim().to_ascii_lowercase();
    s.strip_prefix("0x").unwrap_or(&s).to_owned()
}

/// Runs `vfioctl <args>` and parses its stdout as JSON.
fn vfioctl_json(args: &[&str]) -> Check<Value> {
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

fn vfioctl_bin() -> String {
    std::env::var("VFIOCTL_BIN").unwrap_or_else(|_| "vfioctl".to_owned())
}

/// vfioctl's groups as id → (members, the whole JSON object).
fn vfioctl_groups(json: &Value) -> Check<BTreeMap<u64, (BTreeSet<String>, Value)>> {
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

fn show(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(" ")
}

fn cmd_sysfs(sys: &Sysfs) -> Check {
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

fn cmd_groups_match(sys: &Sysfs) -> Check {
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

fn cmd_list_match(sys: &Sysfs) -> Check {
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
struct GroupExpectation {
    members: BTreeSet<String>,
    shared: Option<bool>,
    reasons: Option<Vec<String>>,
    reason_devices: Option<Vec<String>>,
}

fn parse_group_expectation(args: &[String]) -> Check<GroupExpectation> {
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

fn cmd_expect_group(sys: &Sysfs, args: &[String]) -> Check {
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

fn cmd_expect_no_group(sys: &Sysfs, addr: &str) -> Check {
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

fn expect_opt(what: &str, addr: &str, got: Option<String>, want: &str) -> Check {
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

fn parse_yes_no(s: &str) -> Check<bool> {
    match s {
        "yes" | "true" | "present" | "loaded" => Ok(true),
        "no" | "false" | "absent" => Ok(false),
        other => usage(format!("expected yes/no, got {other}")),
    }
}

fn require_group(sys: &Sysfs, addr: &str) -> Check<u64> {
    match sys.group_of(addr)? {
        Some(g) => Ok(g),
        None => fail(format!("{addr} has no IOMMU group")),
    }
}

fn cmd_vfio_node(sys: &Sysfs, addr: &str, want: &str) -> Check {
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

fn cmd_viable(sys: &Sysfs, addr: &str, want: &str) -> Check {
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

fn cmd_exit(args: &[String]) -> Check {
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

const VFIO_GROUP_FLAGS_VIABLE: u32 = 1;
/// `_IO(VFIO_TYPE, VFIO_BASE + 3)` with `VFIO_TYPE = ';'` and `VFIO_BASE = 100`.
const VFIO_GROUP_GET_STATUS: u64 = (0x3b << 8) | 103;

#[repr(C)]
struct VfioGroupStatus {
    argsz: u32,
    flags: u32,
}

unsafe extern "C" {
    fn ioctl(fd: i32, request: u64, ...) -> i32;
}

/// `VFIO_GROUP_GET_STATUS` on a group node; returns the flags.
fn group_status(node: &Path) -> Result<u32, String> {
    use std::os::fd::AsRawFd;
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(node)
        .map_err(|e| format!("cannot open {}: {e}", node.display()))?;
    let mut status = VfioGroupStatus { argsz: 8, flags: 0 };
    // SAFETY: the fd is open for the duration of the call, and the kernel writes at most `argsz`
    // bytes into `status`, a live, properly sized `#[repr(C)]` vfio_group_status.
    let rc = unsafe { ioctl(file.as_raw_fd(), VFIO_GROUP_GET_STATUS, &raw mut status) };
    if rc < 0 {
        return Err(format!("ioctl failed: {}", std::io::Error::last_os_error()));
    }
    Ok(status.flags)
}

fn run(args: &[String]) -> Check {
    let sys = Sysfs::from_env();
    let arg = |i: usize| args.get(i).map(String::as_str);
    match (arg(0), arg(1), arg(2)) {
        (Some("sysfs"), None, None) => cmd_sysfs(&sys),
        (Some("groups-match"), None, None) => cmd_groups_match(&sys),
        (Some("list-match"), None, None) => cmd_list_match(&sys),
        (Some("expect-group"), Some(_), _) => cmd_expect_group(&sys, &args[1..]),
        (Some("expect-no-group"), Some(addr), None) => cmd_expect_no_group(&sys, addr),
        (Some("driver"), Some(addr), Some(want)) => {
            expect_opt("driver", addr, sys.driver(addr)?, want)
        }
        (Some("override"), Some(addr), Some(want)) => {
            expect_opt("driver_override", addr, sys.driver_override(addr)?, want)
        }
        (Some("module"), Some(name), Some(want)) => {
            let loaded = sys
                .root
                .join("sys/module")
                .join(name.replace('-', "_"))
                .exists();
            if loaded == parse_yes_no(want)? {
                println!(
                    "module {name}: {}",
                    if loaded { "loaded" } else { "absent" }
                );
                Ok(())
            } else {
                fail(format!(
                    "module {name} is {}",
                    if loaded { "loaded" } else { "absent" }
                ))
            }
        }
        (Some("vfio-node"), Some(addr), Some(want)) => cmd_vfio_node(&sys, addr, want),
        (Some("viable"), Some(addr), Some(want)) => cmd_viable(&sys, addr, want),
        (Some("exit"), Some(_), _) => cmd_exit(&args[1..]),
        (Some("group-status"), Some(group), None) => {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fake tree: two NICs in group 4 (one bound to e1000e), one bridge in group 3.
    fn fake_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (addr, group, driver) in [
            ("0000:01:00.0", 3, None),
            ("0000:02:01.0", 4, Some("e1000e")),
            ("0000:02:02.0", 4, None),
        ] {
            let dev = root.join("sys/devices/pci0000:00").join(addr);
            fs::create_dir_all(&dev).unwrap();
            fs::write(dev.join("vendor"), "0x8086\n").unwrap();
            fs::write(dev.join("device"), "0x10d3\n").unwrap();
            fs::write(dev.join("driver_override"), "(null)\n").unwrap();
            let gdir = root.join(format!("sys/kernel/iommu_groups/{group}/devices"));
            fs::create_dir_all(&gdir).unwrap();
            symlink(&dev, gdir.join(addr)).unwrap();
            symlink(
                root.join(format!("sys/kernel/iommu_groups/{group}")),
                dev.join("iommu_group"),
            )
            .unwrap();
            if let Some(d) = driver {
                let ddir = root.join("sys/bus/pci/drivers").join(d);
                fs::create_dir_all(&ddir).unwrap();
                symlink(&ddir, dev.join("driver")).unwrap();
            }
            fs::create_dir_all(root.join("sys/bus/pci/devices")).unwrap();
            symlink(&dev, root.join("sys/bus/pci/devices").join(addr)).unwrap();
        }
        dir
    }

    #[test]
    fn reads_groups_drivers_and_overrides() {
        let dir = fake_tree();
        let sys = Sysfs {
            root: dir.path().to_owned(),
        };
        let groups = sys.groups().ok().unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(show(&groups[&4]), "0000:02:01.0 0000:02:02.0");
        assert_eq!(
            sys.driver("0000:02:01.0").ok().unwrap().as_deref(),
            Some("e1000e")
        );
        assert_eq!(sys.driver("0000:02:02.0").ok().unwrap(), None);
        assert_eq!(sys.group_of("0000:01:00.0").ok().unwrap(), Some(3));
        assert_eq!(sys.driver_override("0000:01:00.0").ok().unwrap(), None);
        assert_eq!(sys.id_attr("0000:01:00.0", "vendor").ok().unwrap(), "8086");
        assert!(sys.driver("0000:09:00.0").is_err());
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

    #[test]
    fn normalizes_hex_ids() {
        assert_eq!(normalize_hex("0x8086"), "8086");
        assert_eq!(normalize_hex("10D3"), "10d3");
    }

    #[test]
    fn exit_checks_status_codes() {
        let args = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(cmd_exit(&args(&["0", "--", "true"])).is_ok());
        assert!(cmd_exit(&args(&["1|3", "--", "false"])).is_ok());
        assert!(cmd_exit(&args(&["0", "--", "false"])).is_err());
        assert!(cmd_exit(&args(&["0", "true"])).is_err());
    }
}
