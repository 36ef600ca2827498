//! `dpaa2 create` and `dpaa2 destroy`: DPAA2 containers made for an owner with restool, every
//! step journaled before the next, so a failure part way takes apart what was made.

use std::path::PathBuf;
use std::process::Command;

use vfioctl_core::dpaa2::{Link, Made, Record, Step, create_steps, parse_created, parse_mc_error};
use vfioctl_core::{FslMcName, Owner};

use crate::HostRoot;
use crate::journal::{Journal, JournalError, Lock, now};
use crate::ops::LOCK_WAIT;

/// Runs restool: argv in (after `restool`), its standard output out. Never through a shell.
pub trait Restool {
    /// Runs one command.
    fn run(&self, argv: &[String]) -> Result<String, RestoolError>;
}

/// Why a restool command failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoolError {
    /// The program could not be started.
    #[error("cannot run {program}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It ran and refused.
    #[error("'restool {}' failed: {reason}", argv.join(" "))]
    Refused {
        /// The command.
        argv: Vec<String>,
        /// The MC's words, else restool's last line.
        reason: String,
    },
}

/// The `restool` binary: the one given, else the first in `PATH`.
#[derive(Debug, Clone)]
pub struct RestoolBinary {
    program: PathBuf,
}

impl RestoolBinary {
    /// `program`, or `restool` from `PATH`.
    pub fn new(program: Option<PathBuf>) -> Self {
        Self {
            program: program.unwrap_or_else(|| PathBuf::from("restool")),
        }
    }
}

impl Restool for RestoolBinary {
    fn run(&self, argv: &[String]) -> Result<String, RestoolError> {
        let out = Command::new(&self.program)
            .args(argv)
            .output()
            .map_err(|source| RestoolError::Spawn {
                program: self.program.clone(),
                source,
            })?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(refused(argv, &stderr))
    }
}

/// The refusal for a failed command, in the MC's words where restool gave them.
pub fn refused(argv: &[String], stderr: &str) -> RestoolError {
    let reason = parse_mc_error(stderr)
        .map(str::to_owned)
        .or_else(|| {
            stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_owned())
        })
        .unwrap_or_else(|| "no reason given".to_owned());
    RestoolError::Refused {
        argv: argv.to_vec(),
        reason,
    }
}

/// Why a DPAA2 use case failed.
#[derive(Debug, thiserror::Error)]
pub enum Dpaa2Error {
    /// The journal or its lock.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A create step failed; what it had made was taken apart (`left` says what was not).
    #[error("creating the container failed")]
    CreateFailed {
        /// The step that failed.
        #[source]
        source: RestoolError,
        /// What the rollback could not take apart (still journaled).
        left: Option<Box<Dpaa2Error>>,
    },
    /// A teardown step failed; what is left stays journaled.
    #[error("taking {container} apart stopped part way")]
    Teardown {
        /// The container (or `<none>` before one was made).
        container: String,
        /// The step that failed.
        #[source]
        source: RestoolError,
    },
    /// restool answered but the new object's name was not in its answer.
    #[error("restool did not name the {kind} it made")]
    Unnamed {
        /// The object type.
        kind: String,
    },
    /// The container is bound to vfio (a VM may hold it): it is given back first.
    #[error("{0} is bound to vfio-fsl-mc")]
    InUse(FslMcName),
    /// No container made by vfioctl has this name.
    #[error("{0} was not made by vfioctl")]
    NotMade(FslMcName),
}

impl Dpaa2Error {
    /// What the user can do.
    pub fn remedy(&self) -> String {
        match self {
            Self::Journal(e) => e.remedy(),
            Self::CreateFailed { left: None, .. } => {
                "nothing was left behind; free objects in the root container or fix the cause, then try again".to_owned()
            }
            Self::CreateFailed { left: Some(_), .. } | Self::Teardown { .. } => {
                "what is left is journaled: run 'vfioctl dpaa2 destroy dprc.N' (or 'vfioctl recover', which takes apart every made container no longer bound) again once the cause is fixed".to_owned()
            }
            Self::Unnamed { .. } => "check 'restool --version' and report its output".to_owned(),
            Self::InUse(c) => format!("stop the VM and run 'vfioctl restore {c}' first"),
            Self::NotMade(_) => {
                "only containers 'vfioctl dpaa2 create' made are destroyed; use restool by hand for others".to_owned()
            }
        }
    }
}

/// What `create` asks for.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// Who the container is for.
    pub owner: Owner,
    /// The host's root container.
    pub root: FslMcName,
    /// What its DPNI is connected to.
    pub link: Option<Link>,
}

/// The restool commands of a create, as a dry run prints them (new names as `<type>.<new>`).
pub fn create_plan(request: &CreateRequest) -> Vec<Vec<String>> {
    create_steps(&request.root, request.link.as_ref())
        .iter()
        .map(|s| s.argv(&Made::default()))
        .collect()
}

/// The restool commands a create that made `made` ran, with the names restool gave.
pub fn create_commands(request: &CreateRequest, made: &Made) -> Vec<Vec<String>> {
    create_steps(&request.root, request.link.as_ref())
        .iter()
        .map(|s| s.argv(made))
        .collect()
}

/// Creates, fills and wires a container for `request.owner`. Each step's result is journaled
/// before the next step runs; a failure takes apart what was made.
pub fn create(
    root: &HostRoot,
    restool: &dyn Restool,
    request: &CreateRequest,
) -> Result<Record, Dpaa2Error> {
    let _lock = Lock::acquire(root, LOCK_WAIT)?;
    let mut journal = Journal::load(root)?;
    create_in(root, restool, &mut journal, request)
}

/// [`create`] for a caller that holds the lock and has loaded `journal`.
pub(crate) fn create_in(
    root: &HostRoot,
    restool: &dyn Restool,
    journal: &mut Journal,
    request: &CreateRequest,
) -> Result<Record, Dpaa2Error> {
    let index = journal.dpaa2.len();
    journal.dpaa2.push(Record {
        owner: request.owner.clone(),
        root: request.root.clone(),
        made: Made::default(),
        since: now(),
    });
    journal.save(root)?;
    for step in create_steps(&request.root, request.link.as_ref()) {
        if let Err(source) = run_create_step(restool, &step, &mut journal.dpaa2[index].made) {
            journal.save(root)?;
            let left = teardown(root, restool, journal, index).err().map(Box::new);
            return Err(Dpaa2Error::CreateFailed { source, left });
        }
        journal.save(root)?;
    }
    Ok(journal.dpaa2[index].clone())
}

fn run_create_step(
    restool: &dyn Restool,
    step: &Step,
    made: &mut Made,
) -> Result<(), RestoolError> {
    let argv = step.argv(made);
    let out = restool.run(&argv)?;
    let named = |kind: &str| {
        parse_created(kind, &out).ok_or_else(|| RestoolError::Refused {
            argv: argv.clone(),
            reason: format!("its answer names no {kind}"),
        })
    };
    match step {
        Step::CreateContainer { .. } => made.container = Some(named("dprc")?),
        Step::CreateObject { kind } => made.objects.push(named(kind)?),
        Step::Assign { object, .. } => made.assigned.extend(made.resolve(object)),
        Step::Connect { dpni, .. } => made.connected = made.resolve(dpni),
        _ => {}
    }
    Ok(())
}

/// Takes apart the record at `index`, journaling each step; the record goes once all is gone.
fn teardown(
    root: &HostRoot,
    restool: &dyn Restool,
    journal: &mut Journal,
    index: usize,
) -> Result<(), Dpaa2Error> {
    let record = journal.dpaa2[index].clone();
    for step in record.made.teardown(&record.root) {
        let argv = step.argv(&record.made);
        if let Err(source) = restool.run(&argv) {
            journal.save(root)?;
            return Err(Dpaa2Error::Teardown {
                container: record
                    .made
                    .container
                    .as_ref()
                    .map_or_else(|| "<none>".to_owned(), ToString::to_string),
                source,
            });
        }
        journal.dpaa2[index].made.undone(&step);
    }
    journal.dpaa2.remove(index);
    journal.save(root)?;
    Ok(())
}

/// The teardown commands `destroy` would run for `container`.
pub fn destroy_plan(
    root: &HostRoot,
    container: &FslMcName,
) -> Result<Vec<Vec<String>>, Dpaa2Error> {
    let journal = Journal::load(root)?;
    let record = find(&journal, container)
        .map(|i| &journal.dpaa2[i])
        .ok_or_else(|| Dpaa2Error::NotMade(container.clone()))?;
    Ok(record
        .made
        .teardown(&record.root)
        .iter()
        .map(|s| s.argv(&record.made))
        .collect())
}

/// Takes apart a container vfioctl made, giving its objects back to the MC.
pub fn destroy(
    root: &HostRoot,
    restool: &dyn Restool,
    container: &FslMcName,
) -> Result<(), Dpaa2Error> {
    let _lock = Lock::acquire(root, LOCK_WAIT)?;
    let mut journal = Journal::load(root)?;
    let index = find(&journal, container).ok_or_else(|| Dpaa2Error::NotMade(container.clone()))?;
    if journal
        .entry(&vfioctl_core::DeviceRef::FslMc(container.clone()))
        .is_some()
    {
        return Err(Dpaa2Error::InUse(container.clone()));
    }
    teardown(root, restool, &mut journal, index)
}

/// Takes apart every container made for `owner` (the `restore` of that owner), returning their
/// names.
pub fn destroy_owned(
    root: &HostRoot,
    restool: &dyn Restool,
    owner: &Owner,
) -> Result<Vec<FslMcName>, Dpaa2Error> {
    let _lock = Lock::acquire(root, LOCK_WAIT)?;
    let mut journal = Journal::load(root)?;
    destroy_where(root, restool, &mut journal, |r| &r.owner == owner)
}

/// Takes apart, for a caller holding the lock, every record `pick` chooses, returning the
/// containers' names; the first failure stops it (what is left stays journaled).
pub(crate) fn destroy_where(
    root: &HostRoot,
    restool: &dyn Restool,
    journal: &mut Journal,
    pick: impl Fn(&Record) -> bool,
) -> Result<Vec<FslMcName>, Dpaa2Error> {
    let mut gone = Vec::new();
    while let Some(index) = journal.dpaa2.iter().position(&pick) {
        gone.extend(journal.dpaa2[index].made.container.clone());
        teardown(root, restool, journal, index)?;
    }
    Ok(gone)
}

fn find(journal: &Journal, container: &FslMcName) -> Option<usize> {
    journal
        .dpaa2
        .iter()
        .position(|r| r.made.container.as_ref() == Some(container))
}
