//! DPAA2 containers made for VMs: the restool commands that create a child container of the
//! host's root container, fill it with the objects a guest's DPAA2 Ethernet driver needs, wire
//! its DPNI, and take all of it apart again; and the parsers of restool's answers.
//!
//! Command syntax and answers were read in restool's own sources (`dprc_commands.c`): `dprc
//! create <parent> --options=<comma list>` answers `dprc.N object created (...)`; `dprc assign
//! <parent> --object=<obj> --target=<child> --plugged=<0|1>` refuses a plugged object; `dprc
//! unassign <parent> --object=<obj> --target=<child>` moves an unplugged object back; `dprc
//! connect <c> --endpoint1=<a> --endpoint2=<b>` and `dprc disconnect <c> --endpoint=<a>`;
//! failures print `MC error: <text> (status 0x..)` on stderr.

mod record;

pub use record::{Made, Record};

use std::fmt;

use crate::devref::FslMcName;

/// The container options a VM's container needs. `IRQ_CFG_ALLOWED` lets the MC firmware direct
/// the objects' interrupts to the guest (the Ten64 passthrough page); the guest's driver
/// allocates and creates objects inside its container, which needs the other three.
pub const VM_CONTAINER_OPTIONS: &[&str] = &[
    "DPRC_CFG_OPT_SPAWN_ALLOWED",
    "DPRC_CFG_OPT_ALLOC_ALLOWED",
    "DPRC_CFG_OPT_OBJ_CREATE_ALLOWED",
    "DPRC_CFG_OPT_IRQ_CFG_ALLOWED",
];

/// The object types a guest's `fsl-dpaa2-eth` needs in its container: the network interface,
/// a buffer pool, a software portal, a channel and a management portal.
pub const GUEST_OBJECTS: &[&str] = &["dpni", "dpbp", "dpio", "dpcon", "dpmcp"];

/// What the new container's DPNI is connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// A physical port (`dpmac.N`).
    Dpmac(FslMcName),
    /// A DPDMUX interface (`dpdmux.N.I` names the interface; `dpdmux.N` its first downlink).
    Dpdmux(FslMcName),
}

impl Link {
    /// The endpoint as restool takes it.
    pub fn endpoint(&self) -> String {
        match self {
            Self::Dpmac(n) => n.to_string(),
            Self::Dpdmux(n) => format!("{n}.1"),
        }
    }
}

/// One object a step names: known already, or the one an earlier step of this run creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Obj {
    /// An existing object.
    Named(FslMcName),
    /// The object of this type the run creates (its number is known once restool answers).
    New(&'static str),
}

impl fmt::Display for Obj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Named(n) => write!(f, "{n}"),
            Self::New(kind) => write!(f, "{kind}.<new>"),
        }
    }
}

/// One restool command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `restool dprc create <parent> --options=...`.
    CreateContainer {
        /// The container it is made in.
        parent: FslMcName,
    },
    /// `restool <type> create`: the MC makes it, unplugged, in the root container.
    CreateObject {
        /// The object type.
        kind: &'static str,
    },
    /// `restool dprc assign <parent> --object=<obj> --target=<target> --plugged=<0|1>`.
    Assign {
        /// The container that holds the object now.
        parent: Obj,
        /// The object.
        object: Obj,
        /// Where it goes (the parent itself to change only its plugged state).
        target: Obj,
        /// Its plugged state afterwards.
        plugged: bool,
    },
    /// `restool dprc unassign <parent> --object=<obj> --target=<child>`: back to the parent.
    Unassign {
        /// The parent it goes back to.
        parent: FslMcName,
        /// The object.
        object: FslMcName,
        /// The child holding it.
        target: FslMcName,
    },
    /// `restool dprc connect <container> --endpoint1=<a> --endpoint2=<b>`.
    Connect {
        /// The container both endpoints are seen from.
        container: FslMcName,
        /// The new DPNI.
        dpni: Obj,
        /// What it is connected to.
        link: Link,
    },
    /// `restool dprc disconnect <container> --endpoint=<a>`.
    Disconnect {
        /// The container the endpoint is seen from.
        container: FslMcName,
        /// Either endpoint.
        endpoint: FslMcName,
    },
    /// `restool <type> destroy <obj>`.
    DestroyObject {
        /// The object.
        object: FslMcName,
    },
    /// `restool dprc destroy <container>`.
    DestroyContainer {
        /// The container.
        container: FslMcName,
    },
}

impl Step {
    /// The argv after `restool`, with the names known so far filled in.
    pub fn argv(&self, made: &Made) -> Vec<String> {
        let obj = |o: &Obj| {
            made.resolve(o)
                .map_or_else(|| o.to_string(), |n| n.to_string())
        };
        let v = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        match self {
            Self::CreateContainer { parent } => {
                let mut argv = v(&["dprc", "create"]);
                argv.push(parent.to_string());
                argv.push(format!("--options={}", VM_CONTAINER_OPTIONS.join(",")));
                argv
            }
            Self::CreateObject { kind } => v(&[kind, "create"]),
            Self::Assign {
                parent,
                object,
                target,
                plugged,
            } => vec![
                "dprc".to_owned(),
                "assign".to_owned(),
                obj(parent),
                format!("--object={}", obj(object)),
                format!("--target={}", obj(target)),
                format!("--plugged={}", u8::from(*plugged)),
            ],
            Self::Unassign {
                parent,
                object,
                target,
            } => vec![
                "dprc".to_owned(),
                "unassign".to_owned(),
                parent.to_string(),
                format!("--object={object}"),
                format!("--target={target}"),
            ],
            Self::Connect {
                container,
                dpni,
                link,
            } => vec![
                "dprc".to_owned(),
                "connect".to_owned(),
                container.to_string(),
                format!("--endpoint1={}", obj(dpni)),
                format!("--endpoint2={}", link.endpoint()),
            ],
            Self::Disconnect {
                container,
                endpoint,
            } => vec![
                "dprc".to_owned(),
                "disconnect".to_owned(),
                container.to_string(),
                format!("--endpoint={endpoint}"),
            ],
            Self::DestroyObject { object } => {
                vec![
                    object.kind().to_owned(),
                    "destroy".to_owned(),
                    object.to_string(),
                ]
            }
            Self::DestroyContainer { container } => {
                vec![
                    "dprc".to_owned(),
                    "destroy".to_owned(),
                    container.to_string(),
                ]
            }
        }
    }
}

/// The commands that make a VM's container under `root`: the container, one object of each
/// type a guest needs (made in the root, then moved in plugged), and the DPNI's link.
pub fn create_steps(root: &FslMcName, link: Option<&Link>) -> Vec<Step> {
    let mut steps = vec![Step::CreateContainer {
        parent: root.clone(),
    }];
    steps.extend(GUEST_OBJECTS.iter().map(|kind| Step::CreateObject { kind }));
    steps.extend(GUEST_OBJECTS.iter().map(|kind| Step::Assign {
        parent: Obj::Named(root.clone()),
        object: Obj::New(kind),
        target: Obj::New("dprc"),
        plugged: true,
    }));
    if let Some(link) = link {
        steps.push(Step::Connect {
            container: root.clone(),
            dpni: Obj::New("dpni"),
            link: link.clone(),
        });
    }
    steps
}

/// The name restool reports for a `create`: the first `<type>.<n>` of that type in its answer.
/// Its text is its only API and has changed between releases (`dprc.3 object created (...)`,
/// `dpni.4 is created under dprc.1`), so only the name is relied upon.
pub fn parse_created(kind: &str, output: &str) -> Option<FslMcName> {
    output
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ':' | '(' | ')'))
        .filter_map(|word| word.trim_end_matches('.').parse::<FslMcName>().ok())
        .find(|n| n.kind() == kind)
}

/// The options `restool dprc info` prints, one `DPRC_CFG_OPT_*` name a line.
pub fn parse_container_options(output: &str) -> Vec<String> {
    output
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("DPRC_CFG_OPT_"))
        .map(str::to_owned)
        .collect()
}

/// The MC firmware version in `restool -m`'s answer (`MC firmware version: 10.28.1`, restool's
/// `print_mc_version()`; the kernel's fsl-mc bus logs the same words at probe).
pub fn parse_mc_version(output: &str) -> Option<crate::doctor::McVersion> {
    output.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("MC firmware version:")?.trim();
        let mut parts = rest.split('.').map(|p| p.trim().parse::<u32>().ok());
        let (major, minor, revision) = (parts.next()??, parts.next()??, parts.next()??);
        Some(crate::doctor::McVersion {
            major,
            minor,
            revision,
        })
    })
}

/// The objects `restool dprc show <container>` lists: the first word of each line that is an
/// object name, other than the container itself (its heading names it; the column headings and
/// the plugged state are not names).
pub fn parse_container_objects(container: &str, output: &str) -> Vec<FslMcName> {
    output
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse::<FslMcName>().ok())
        .filter(|n| n.to_string() != container)
        .collect()
}

/// The MC's own words in a failed restool's stderr (`MC error: <text> (status 0x..)`).
pub fn parse_mc_error(stderr: &str) -> Option<&str> {
    stderr.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("MC error: ")?;
        Some(rest.rsplit_once(" (status").map_or(rest, |(t, _)| t))
    })
}

#[cfg(test)]
mod tests;
