//! A small udev for the simulated kernel: reads rule files (`udev(7)` syntax) and runs them for a
//! PCI device's `add` and `bind` events, as `systemd-udevd` does. Only the keys vfioctl's rules
//! use are known (`ACTION`, `SUBSYSTEM`, `KERNEL`, `DRIVER`, `ATTR{}`, `ENV{}`, `IMPORT{db}`, `GOTO`,
//! `LABEL`); any other key is an error, so a rule the simulator cannot model never passes
//! silently.
//!
//! What matters is the order udev gives: within one event, rules are read top to bottom, every
//! `ATTR` assignment is written when its line matches (so `driver_override` is set before the
//! event's `kmod load` would run), and the udev database keeps the event's `ENV` properties.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use vfioctl_core::PciAddress;

/// Directories udev reads rules from, under the root; a name in `etc` hides the same in `lib`.
const RULE_DIRS: &[&str] = &["etc/udev/rules.d", "run/udev/rules.d", "lib/udev/rules.d"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Match,
    Nomatch,
    Assign,
}

#[derive(Debug, Clone)]
struct Token {
    key: String,
    attr: Option<String>,
    op: Op,
    value: String,
}

/// Rules read from files, in the order udev runs them.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    lines: Vec<Vec<Token>>,
}

fn bad(line: &str, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("udev rule '{line}': {why}"),
    )
}

fn parse_line(line: &str) -> io::Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| bad(line, "a key without an operator"))?;
        let key = rest[..key_end].to_owned();
        rest = &rest[key_end..];
        let mut attr = None;
        if let Some(r) = rest.strip_prefix('{') {
            let close = r.find('}').ok_or_else(|| bad(line, "unclosed {"))?;
            attr = Some(r[..close].to_owned());
            rest = &r[close + 1..];
        }
        let (op, r) = if let Some(r) = rest.strip_prefix("==") {
            (Op::Match, r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            (Op::Nomatch, r)
        } else if let Some(r) = rest.strip_prefix("+=").or_else(|| rest.strip_prefix(":=")) {
            (Op::Assign, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (Op::Assign, r)
        } else {
            return Err(bad(line, "an unknown operator"));
        };
        let r = r
            .strip_prefix('"')
            .ok_or_else(|| bad(line, "an unquoted value"))?;
        let close = r.find('"').ok_or_else(|| bad(line, "an unclosed value"))?;
        let value = r[..close].to_owned();
        rest = r[close + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
        let known = matches!(
            (key.as_str(), op),
            (
                "ACTION" | "SUBSYSTEM" | "KERNEL" | "DRIVER",
                Op::Match | Op::Nomatch
            ) | ("ATTR" | "ENV", _)
                | ("IMPORT" | "GOTO" | "LABEL", Op::Assign)
        );
        if !known || (key == "IMPORT" && attr.as_deref() != Some("db")) {
            return Err(bad(
                line,
                &format!("the simulated udev does not know {key}"),
            ));
        }
        tokens.push(Token {
            key,
            attr,
            op,
            value,
        });
    }
    Ok(tokens)
}

impl Rules {
    /// Parses one file's text.
    pub fn parse(text: &str) -> io::Result<Rules> {
        let mut lines = Vec::new();
        let mut pending = String::new();
        for raw in text.lines() {
            if let Some(body) = raw.strip_suffix('\\') {
                pending.push_str(body);
                continue;
            }
            pending.push_str(raw);
            let line = std::mem::take(&mut pending);
            let t = line.trim();
            if !t.is_empty() && !t.starts_with('#') {
                lines.push(parse_line(t)?);
            }
        }
        Ok(Rules { lines })
    }

    /// Every `*.rules` file under the root's rule directories, in file-name order.
    pub fn load(root: &Path) -> io::Result<Rules> {
        let mut files: BTreeMap<String, std::path::PathBuf> = BTreeMap::new();
        for dir in RULE_DIRS.iter().rev() {
            let Ok(entries) = fs::read_dir(root.join(dir)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".rules") {
                    files.insert(name, e.path());
                }
            }
        }
        let mut rules = Rules::default();
        for path in files.values() {
            rules
                .lines
                .extend(Rules::parse(&fs::read_to_string(path)?)?.lines);
        }
        Ok(rules)
    }
}

/// `fnmatch()` with `*`, `?` and `|` alternatives, as udev matches values.
fn glob(pattern: &str, text: &str) -> bool {
    fn one(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => one(&p[1..], t) || (!t.is_empty() && one(p, &t[1..])),
            (Some(b'?'), Some(_)) => one(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => one(&p[1..], &t[1..]),
            _ => false,
        }
    }
    pattern
        .split('|')
        .any(|alt| one(alt.as_bytes(), text.as_bytes()))
}

/// One event being processed.
pub(crate) struct Event<'a> {
    pub action: &'a str,
    pub address: PciAddress,
    pub env: BTreeMap<String, String>,
}

fn substitute(value: &str, event: &Event<'_>) -> String {
    let mut out = value.replace("$kernel", &event.address.to_string());
    out = out.replace("%k", &event.address.to_string());
    out = out.replace(
        "$driver",
        event.env.get("DRIVER").map_or("", String::as_str),
    );
    while let Some(start) = out.find("$env{") {
        let Some(len) = out[start..].find('}') else {
            break;
        };
        let key = &out[start + 5..start + len];
        let v = event.env.get(key).cloned().unwrap_or_default();
        out.replace_range(start..start + len + 1, &v);
    }
    out
}

/// The sysfs path an `ATTR{name}` of a PCI device means, following the `driver` and `subsystem`
/// links as the kernel's sysfs does.
fn attr_path(root: &Path, address: PciAddress, attr: &str) -> String {
    let dev = format!("sys/bus/pci/devices/{address}");
    if let Some(rest) = attr.strip_prefix("driver/") {
        let drv = fs::read_link(root.join(&dev).join("driver"))
            .ok()
            .and_then(|t| Some(t.file_name()?.to_string_lossy().into_owned()))
            .unwrap_or_default();
        return format!("sys/bus/pci/drivers/{drv}/{rest}");
    }
    if let Some(rest) = attr.strip_prefix("subsystem/") {
        return format!("sys/bus/pci/{rest}");
    }
    format!("{dev}/{attr}")
}

/// Runs the rules for `event`. `write` carries out each `ATTR` assignment at once (later lines
/// see its effect, as in udev); the event's properties end in `event.env`.
pub(crate) fn run(
    root: &Path,
    rules: &Rules,
    event: &mut Event<'_>,
    old_db: &BTreeMap<String, String>,
    write: &mut dyn FnMut(&str, &str) -> io::Result<()>,
) -> io::Result<()> {
    let mut skip_to: Option<String> = None;
    for line in &rules.lines {
        if let Some(label) = &skip_to {
            if line.iter().any(|t| t.key == "LABEL" && t.value == *label) {
                skip_to = None;
            }
            continue;
        }
        let matched = line.iter().filter(|t| t.op != Op::Assign).all(|t| {
            let actual = match (t.key.as_str(), &t.attr) {
                ("ACTION", _) => Some(event.action.to_owned()),
                ("SUBSYSTEM", _) => Some("pci".to_owned()),
                ("KERNEL", _) => Some(event.address.to_string()),
                ("DRIVER", _) => event.env.get("DRIVER").cloned(),
                ("ENV", Some(k)) => event.env.get(k).cloned(),
                ("ATTR", Some(a)) => {
                    fs::read_to_string(root.join(attr_path(root, event.address, a)))
                        .ok()
                        .map(|v| v.trim_end().to_owned())
                }
                _ => None,
            };
            let hit = actual.is_some_and(|a| glob(&t.value, &a));
            hit == (t.op == Op::Match)
        });
        if !matched {
            continue;
        }
        for t in line.iter().filter(|t| t.op == Op::Assign) {
            let value = substitute(&t.value, event);
            match (t.key.as_str(), t.attr.as_deref()) {
                ("ATTR", Some(a)) => write(&attr_path(root, event.address, a), &value)?,
                ("ENV", Some(k)) => {
                    event.env.insert(k.to_owned(), value);
                }
                ("IMPORT", _) => {
                    if let Some(v) = old_db.get(&value) {
                        event.env.insert(value.clone(), v.clone());
                    }
                }
                ("GOTO", _) => skip_to = Some(value),
                _ => {}
            }
        }
    }
    Ok(())
}

/// The database file of a PCI device.
pub(crate) fn db_path(root: &Path, address: PciAddress) -> std::path::PathBuf {
    root.join(format!("run/udev/data/+pci:{address}"))
}

/// Reads a device's database: its `E:KEY=value` properties.
pub(crate) fn read_db(root: &Path, address: PciAddress) -> BTreeMap<String, String> {
    fs::read_to_string(db_path(root, address))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("E:")?.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Writes a device's database, keeping only vfioctl's properties and the ones an event carries
/// that udev itself stores.
pub(crate) fn write_db(
    root: &Path,
    address: PciAddress,
    env: &BTreeMap<String, String>,
) -> io::Result<()> {
    let path = db_path(root, address);
    fs::create_dir_all(path.parent().expect("db dir"))?;
    let mut text = String::new();
    for (k, v) in env {
        text.push_str(&format!("E:{k}={v}\n"));
    }
    fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_what_it_cannot_model() {
        let rules = Rules::parse(
            "# c\nSUBSYSTEM!=\"pci\", GOTO=\"end\"\nACTION==\"add\", KERNEL==\"0000:01:00.0\", \\\n  ATTR{driver_override}=\"vfio-pci\"\nLABEL=\"end\"\n",
        )
        .unwrap();
        assert_eq!(rules.lines.len(), 3);
        assert_eq!(rules.lines[1].len(), 3);
        for bad in [
            "RUN+=\"/bin/true\"",
            "KERNEL=\"x\"",
            "ATTR{x}==unquoted",
            "IMPORT{program}=\"x\"",
        ] {
            assert!(Rules::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn globs_like_fnmatch() {
        assert!(glob("add|bind", "bind"));
        assert!(glob("0x10d*", "0x10d3"));
        assert!(glob("?x8086", "0x8086"));
        assert!(!glob("0x8086", "0x80861"));
    }
}
