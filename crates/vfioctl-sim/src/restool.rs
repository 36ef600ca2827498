//! A restool stand-in: argv in, the MC firmware's answers out, and the simulated fsl-mc bus
//! changed as the kernel's DPRC driver would show it.
//!
//! Each argv is checked against restool's documented syntax (`dprc_commands.c`: positional
//! container, `--name=value` options, `--plugged` only on assign) before anything happens.
//! The MC semantics follow restool's checks and `fsl_dprc.h`: objects are created unplugged in
//! the root container, only unplugged objects move between containers, destroying a container
//! returns its objects to its parent. The MC's refusal texts and the "in use" refusal of a
//! container a driver holds are this stand-in's words, not measured on hardware.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vfioctl_host::ops::dpaa2::{Restool, RestoolError, refused};

use crate::fslmc::{add_object, bound_driver, object_dir, remove_object};
use crate::spec::{ContainerSpec, FslMcSpec};
use crate::state::KernelState;

/// The MC's state that the containers alone do not say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct McState {
    /// Objects in the unplugged state (no driver matches them without an override).
    #[serde(default)]
    pub unplugged: Vec<String>,
    /// Links made with `dprc connect`.
    #[serde(default)]
    pub links: Vec<(String, String)>,
    /// The options of containers made with `dprc create`.
    #[serde(default)]
    pub options: BTreeMap<String, Vec<String>>,
    /// How many objects of each type the MC can hold; absent types are unlimited.
    #[serde(default)]
    pub capacity: BTreeMap<String, usize>,
    /// The firmware version `restool -m` reports (default [`DEFAULT_FIRMWARE`]).
    #[serde(default)]
    pub firmware: Option<String>,
}

/// The MC firmware version the stand-in reports unless told otherwise: a 10.x release, as
/// current LSDK firmware is (a choice, not measured on a Ten64).
pub const DEFAULT_FIRMWARE: &str = "10.28.1";

/// Object types the stand-in creates and destroys.
const KINDS: &[&str] = &["dpni", "dpbp", "dpio", "dpcon", "dpmcp"];
/// Options `dprc create --options=` takes (restool's table, with the IRQ option newer MC
/// firmware and restool accept).
const OPTIONS: &[&str] = &[
    "DPRC_CFG_OPT_SPAWN_ALLOWED",
    "DPRC_CFG_OPT_ALLOC_ALLOWED",
    "DPRC_CFG_OPT_OBJ_CREATE_ALLOWED",
    "DPRC_CFG_OPT_TOPOLOGY_CHANGES_ALLOWED",
    "DPRC_CFG_OPT_IRQ_CFG_ALLOWED",
    "DPRC_CFG_OPT_AIOP",
];

/// restool on a simulated tree.
#[derive(Debug)]
pub struct SimRestool {
    root: PathBuf,
    fail_at: Option<usize>,
    calls: Cell<usize>,
    log: RefCell<Vec<Vec<String>>>,
}

impl SimRestool {
    /// The stand-in for the tree at `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            fail_at: None,
            calls: Cell::new(0),
            log: RefCell::new(Vec::new()),
        }
    }

    /// The MC refuses the `n`th command (from 0) for want of free objects.
    pub fn failing_at(root: &Path, n: usize) -> Self {
        Self {
            fail_at: Some(n),
            ..Self::new(root)
        }
    }

    /// Every command run so far.
    pub fn log(&self) -> Vec<Vec<String>> {
        self.log.borrow().clone()
    }
}

impl Restool for SimRestool {
    fn run(&self, argv: &[String]) -> Result<String, RestoolError> {
        let call = self.calls.get();
        self.calls.set(call + 1);
        self.log.borrow_mut().push(argv.to_vec());
        // The global option alone, as restool's print_mc_version() answers it.
        if let [flag] = argv
            && (flag == "-m" || flag == "--mc-version")
        {
            let mut state =
                KernelState::load(&self.root).map_err(|e| refused(argv, &e.to_string()))?;
            let mc = &bus(&mut state).map_err(|e| refused(argv, &e))?.mc;
            let version = mc.firmware.as_deref().unwrap_or(DEFAULT_FIRMWARE);
            return Ok(format!("MC firmware version: {version}\n"));
        }
        let cmd = Cmd::parse(argv).map_err(|e| refused(argv, &e))?;
        if self.fail_at == Some(call) {
            return Err(refused(argv, "MC error: No free objects (status 0x8)\n"));
        }
        let mut state = KernelState::load(&self.root).map_err(|e| refused(argv, &e.to_string()))?;
        let out = mc(&self.root, &mut state, &cmd).map_err(|e| refused(argv, &e))?;
        state
            .save(&self.root)
            .map_err(|e| refused(argv, &e.to_string()))?;
        Ok(out)
    }
}

/// One parsed command line.
#[derive(Debug)]
struct Cmd {
    kind: String,
    verb: String,
    target: Option<String>,
    opts: BTreeMap<String, String>,
}

impl Cmd {
    fn parse(argv: &[String]) -> Result<Self, String> {
        let [kind, verb, rest @ ..] = argv else {
            return Err("usage: restool <object-type> <command> [ARGS...]".to_owned());
        };
        let mut target = None;
        let mut opts = BTreeMap::new();
        for arg in rest {
            if let Some(opt) = arg.strip_prefix("--") {
                let (k, v) = opt
                    .split_once('=')
                    .ok_or_else(|| format!("option --{opt} takes --{opt}=<value> here"))?;
                opts.insert(k.to_owned(), v.to_owned());
            } else if target.replace(arg.clone()).is_some() {
                return Err(format!("Unexpected argument: '{arg}'"));
            }
        }
        let allowed: &[&str] = match (kind.as_str(), verb.as_str()) {
            ("dprc", "create") => &["options"],
            ("dprc", "assign") => &["object", "target", "plugged"],
            ("dprc", "unassign") => &["object", "target"],
            ("dprc", "connect") => &["endpoint1", "endpoint2"],
            ("dprc", "disconnect") => &["endpoint"],
            ("dprc", "destroy" | "info" | "show") => &[],
            ("dprc", "list") if target.is_none() => &[],
            (k, "create") if KINDS.contains(&k) && target.is_none() => &[],
            (k, "destroy") if KINDS.contains(&k) => &[],
            _ => return Err(format!("Invalid command: '{kind} {verb}'")),
        };
        if let Some(bad) = opts.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!("Invalid option: '--{bad}'"));
        }
        let needs_target = !(verb == "list" || (verb == "create" && kind != "dprc"));
        if needs_target && target.is_none() {
            return Err("<object> argument missing".to_owned());
        }
        let cmd = Self {
            kind: kind.clone(),
            verb: verb.clone(),
            target,
            opts,
        };
        cmd.check()?;
        Ok(cmd)
    }

    /// restool's own argument checks, before it asks the MC anything.
    fn check(&self) -> Result<(), String> {
        let is = |v: Option<&String>, kind: &str| {
            v.is_some_and(|t| {
                t.split_once('.')
                    .is_some_and(|(k, n)| k == kind && n.parse::<u32>().is_ok())
            })
        };
        let target_kind = if self.verb == "destroy" {
            self.kind.as_str()
        } else {
            "dprc"
        };
        if self.target.is_some() && !is(self.target.as_ref(), target_kind) {
            return Err(format!(
                "Invalid object name: '{}'",
                self.target.as_deref().unwrap_or("")
            ));
        }
        if let Some(list) = self.opts.get("options")
            && let Some(bad) = list.split(',').find(|o| !OPTIONS.contains(o))
        {
            return Err(format!("Invalid option: '{bad}'"));
        }
        if self.verb == "assign" || self.verb == "unassign" {
            if !self.opts.contains_key("object") {
                return Err("Invalid command line".to_owned());
            }
            match self.opts.get("plugged").map(String::as_str) {
                None | Some("0" | "1") => {}
                Some(v) => return Err(format!("Invalid --plugged arg: '{v}'")),
            }
            let to_self = self
                .opts
                .get("target")
                .is_none_or(|t| Some(t) == self.target.as_ref());
            if self.verb == "assign" && to_self && !self.opts.contains_key("plugged") {
                return Err("--plugged option required in this case".to_owned());
            }
        }
        for key in ["endpoint1", "endpoint2"] {
            if self.verb == "connect" && !self.opts.contains_key(key) {
                return Err(format!("--{key} option missing"));
            }
        }
        if self.verb == "disconnect" && !self.opts.contains_key("endpoint") {
            return Err("--endpoint option missing".to_owned());
        }
        Ok(())
    }
}

fn mc_error(text: &str) -> String {
    format!("MC error: {text} (status 0x1)\n")
}

fn bus(state: &mut KernelState) -> Result<&mut FslMcSpec, String> {
    state
        .fsl_mc
        .as_mut()
        .ok_or_else(|| "cannot open /dev/mc_restool: No such file or directory".to_owned())
}

fn next_id(bus: &FslMcSpec, kind: &str) -> u32 {
    let names = bus
        .containers
        .iter()
        .flat_map(|c| std::iter::once(&c.name).chain(&c.objects));
    names
        .filter_map(|n| n.strip_prefix(kind)?.strip_prefix('.')?.parse::<u32>().ok())
        .max()
        .map_or(0, |m| m + 1)
}

fn holder(bus: &FslMcSpec, object: &str) -> Option<usize> {
    bus.containers
        .iter()
        .position(|c| c.objects.iter().any(|o| o == object))
}

fn index(bus: &FslMcSpec, container: &str) -> Result<usize, String> {
    bus.containers
        .iter()
        .position(|c| c.name == container)
        .ok_or_else(|| format!("{container} does not exist\n"))
}

/// Shows `name` under `container` when a driver holds the container (its scan finds it).
fn show(root: &Path, state: &KernelState, container: &str, name: &str) -> Result<(), String> {
    if let Ok(dir) = object_dir(root, container)
        && bound_driver(root, &dir).is_some()
    {
        add_object(root, state, name, &dir).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn hide(root: &Path, name: &str) -> Result<(), String> {
    match object_dir(root, name) {
        Ok(dir) => {
            // The DPRC driver's rescan removes the device, which unbinds it first.
            if let Some(d) = bound_driver(root, &dir) {
                let link = root.join("sys/bus/fsl-mc/drivers").join(d).join(name);
                std::fs::remove_file(link).map_err(|e| e.to_string())?;
            }
            remove_object(root, name, &dir).map_err(|e| e.to_string())
        }
        Err(_) => Ok(()),
    }
}

/// The MC doing one command.
fn mc(root: &Path, state: &mut KernelState, cmd: &Cmd) -> Result<String, String> {
    let target = cmd.target.clone().unwrap_or_default();
    let opt = |k: &str| cmd.opts.get(k).cloned().unwrap_or_default();
    let b = bus(state)?;
    let root_dprc = b
        .containers
        .iter()
        .find(|c| c.parent.is_none())
        .map(|c| c.name.clone());
    match (cmd.kind.as_str(), cmd.verb.as_str()) {
        ("dprc", "create") => {
            index(b, &target)?;
            let id = next_id(b, "dprc");
            let name = format!("dprc.{id}");
            b.containers.push(ContainerSpec {
                name: name.clone(),
                parent: Some(target.clone()),
                objects: Vec::new(),
                driver: None,
                plugged: false,
            });
            let options = opt("options");
            let options = if options.is_empty() {
                vec![OPTIONS[0].to_owned(), OPTIONS[1].to_owned()]
            } else {
                options.split(',').map(str::to_owned).collect()
            };
            b.mc.options.insert(name.clone(), options);
            show(root, state, &target, &name)?;
            Ok(format!(
                "{name} object created (using MC portal id {id}, portal addr {:#x})\n",
                0x0008_0c00_0000_u64 + u64::from(id) * 0x0001_0000
            ))
        }
        ("dprc", "destroy") => {
            let i = index(b, &target)?;
            let parent = b.containers[i]
                .parent
                .clone()
                .ok_or_else(|| format!("The root DPRC ({target}) cannot be destroyed\n"))?;
            if object_dir(root, &target)
                .ok()
                .and_then(|d| bound_driver(root, &d))
                .is_some()
            {
                return Err(mc_error("Resource busy: the container is in use"));
            }
            let c = b.containers.remove(i);
            let p = index(b, &parent)?;
            b.containers[p].objects.extend(c.objects.iter().cloned());
            b.mc.options.remove(&target);
            hide(root, &target)?;
            for o in &c.objects {
                show(root, state, &parent, o)?;
            }
            Ok(format!("{target} object destroyed\n"))
        }
        ("dprc", "assign" | "unassign") => {
            let object = opt("object");
            let to = cmd
                .opts
                .get("target")
                .cloned()
                .unwrap_or_else(|| target.clone());
            let (from, dest) = if cmd.verb == "assign" {
                (&target, &to)
            } else {
                (&to, &target)
            };
            let f = index(b, from)?;
            let d = index(b, dest)?;
            if !b.containers[f].objects.contains(&object) {
                return Err(format!("{object} does not exist in {from}\n"));
            }
            let unplugged = b.mc.unplugged.contains(&object);
            if f != d && !unplugged {
                let verb = if cmd.verb == "assign" {
                    "assigned"
                } else {
                    "unassigned"
                };
                return Err(format!(
                    "{object} cannot be {verb} because it is currently in plugged state\n"
                ));
            }
            b.containers[f].objects.retain(|o| o != &object);
            b.containers[d].objects.push(object.clone());
            match cmd.opts.get("plugged").map(String::as_str) {
                Some("1") => b.mc.unplugged.retain(|o| o != &object),
                Some(_) if !unplugged => b.mc.unplugged.push(object.clone()),
                _ => {}
            }
            if f != d {
                let dest = dest.clone();
                hide(root, &object)?;
                show(root, state, &dest, &object)?;
            }
            Ok(String::new())
        }
        ("dprc", "connect") => {
            let (a, z) = (opt("endpoint1"), opt("endpoint2"));
            for e in [&a, &z] {
                let base = e.split('.').take(2).collect::<Vec<_>>().join(".");
                if holder(b, &base).is_none() {
                    return Err(mc_error(&format!("{e} does not exist")));
                }
                if b.mc.links.iter().any(|(x, y)| x == e || y == e) {
                    return Err(mc_error(&format!("{e} is already connected")));
                }
            }
            b.mc.links.push((a, z));
            Ok(String::new())
        }
        ("dprc", "disconnect") => {
            let e = opt("endpoint");
            let before = b.mc.links.len();
            b.mc.links.retain(|(x, y)| x != &e && y != &e);
            if b.mc.links.len() == before {
                return Err(mc_error(&format!("{e} is not connected")));
            }
            Ok(String::new())
        }
        ("dprc", "info") => {
            index(b, &target)?;
            let options = b.mc.options.get(&target).cloned().unwrap_or_default();
            let id = target.trim_start_matches("dprc.");
            let mut out = format!(
                "container id: {id}\nicid: {id}\nportal id: {id}\nversion: 6.6\ndprc options: {:#x}\n",
                options.len()
            );
            for o in options {
                out.push_str(&format!("\t{o}\n"));
            }
            Ok(out)
        }
        ("dprc", "show") => {
            let c = &b.containers[index(b, &target)?];
            let mut out = format!("{target} contains {} objects:\n", c.objects.len());
            for o in &c.objects {
                out.push_str(&format!("{o}\n"));
            }
            Ok(out)
        }
        ("dprc", "list") => Ok(b
            .containers
            .iter()
            .map(|c| format!("{}\n", c.name))
            .collect()),
        (kind, "create") => {
            let root_dprc = root_dprc.ok_or_else(|| mc_error("no root container"))?;
            let count = b
                .containers
                .iter()
                .flat_map(|c| &c.objects)
                .filter(|o| o.starts_with(&format!("{kind}.")))
                .count();
            if b.mc.capacity.get(kind).is_some_and(|max| count >= *max) {
                return Err(mc_error(&format!("No free {kind} objects")));
            }
            let name = format!("{kind}.{}", next_id(b, kind));
            let r = index(b, &root_dprc)?;
            b.containers[r].objects.push(name.clone());
            b.mc.unplugged.push(name.clone());
            show(root, state, &root_dprc, &name)?;
            Ok(format!("{name} is created under {root_dprc}\n"))
        }
        (_, "destroy") => {
            if holder(b, &target).is_none() {
                return Err(format!("{target} does not exist\n"));
            }
            if !b.mc.unplugged.contains(&target) {
                return Err(mc_error(&format!("{target} is plugged")));
            }
            if b.mc.links.iter().any(|(x, y)| x == &target || y == &target) {
                return Err(mc_error(&format!("{target} is connected")));
            }
            for c in &mut b.containers {
                c.objects.retain(|o| o != &target);
            }
            b.mc.unplugged.retain(|o| o != &target);
            hide(root, &target)?;
            Ok(format!("{target} is destroyed\n"))
        }
        _ => Err(format!("Invalid command: '{} {}'", cmd.kind, cmd.verb)),
    }
}
