//! The journal: what every device looked like before vfioctl touched it, written before the first
//! write so that a crash, a failed step or a later `restore` can always give it back.
//!
//! It lives in `<root>/run/vfioctl/journal.json` (tmpfs: device bindings do not survive a reboot
//! either). The directory is created 0700 and files 0600, and nothing is opened through a
//! symlink, so a link planted there cannot redirect a root write. The file is replaced
//! atomically (write a new file, fsync, rename), so a reader sees the old journal or the new one,
//! never half of one; anything that does not parse and validate is reported, not trusted.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};

use serde::{Deserialize, Serialize};
use vfioctl_core::plan::OriginalState;
use vfioctl_core::{DeviceRef, Owner};

use crate::HostRoot;

/// Version of the journal format this vfioctl writes; format 1 is still read.
pub const JOURNAL_VERSION: u32 = 2;
const MAX_JOURNAL: u64 = 8 * 1024 * 1024;

/// Where a device is in its life under vfioctl.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// A bind was started and has not finished: after a crash, restore it.
    Binding,
    /// Bound to vfio by vfioctl.
    Bound,
}

/// One device vfioctl has changed, PCI function or DPAA2 container alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalEntry {
    /// What to give back.
    pub original: OriginalState,
    /// How far the bind got.
    pub state: EntryState,
    /// Seconds since the epoch when the bind started.
    pub since: u64,
    /// Who it was bound for: the only one that gives it back.
    pub owner: Owner,
    /// The QEMU process holding it, while `vfioctl run` supervises one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_pid: Option<u32>,
}

/// A write helper process (`vfioctl-unbind` or `vfioctl __write-attr`) that has not returned yet: an unbind the
/// kernel may still be holding. Recovery must not touch the device before it is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteHelper {
    /// Its process id.
    pub pid: u32,
    /// The device it writes for.
    pub device: DeviceRef,
    /// The attribute, as on `/`.
    pub path: String,
    /// The value.
    pub value: String,
    /// Seconds since the epoch when it started.
    pub since: u64,
}

/// Everything vfioctl must be able to undo.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    /// Format version.
    pub version: u32,
    /// Devices of both buses, in the order they were bound.
    pub entries: Vec<JournalEntry>,
    /// Modules vfioctl loaded (and may unload when nothing uses them any more).
    #[serde(default)]
    pub modules_loaded: Vec<String>,
    /// Write helpers still in flight.
    #[serde(default)]
    pub helpers: Vec<WriteHelper>,
    /// DPAA2 containers made for owners (`vfioctl dpaa2 create`); absent from older files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dpaa2: Vec<vfioctl_core::dpaa2::Record>,
    /// SR-IOV PFs whose VF count or autoprobe vfioctl changed (`vfioctl vf create`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sriov: Vec<SriovRecord>,
    /// VF link settings vfioctl changed (`vfioctl vf set`), each with what puts it back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vf_links: Vec<VfLinkRecord>,
}

/// A PF's SR-IOV configuration before vfioctl changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SriovRecord {
    /// The PF.
    pub pf: vfioctl_core::PciAddress,
    /// `sriov_numvfs` and `sriov_drivers_autoprobe` before.
    pub original: vfioctl_core::sriov::SriovConfig,
    /// vfioctl re-created the VFs (the count went through 0): even at the original count they
    /// are not the VFs the host had (their drivers, their settings), so restoring re-creates
    /// them under the original autoprobe.
    #[serde(default)]
    pub recreated: bool,
    /// Who changed it.
    pub owner: Owner,
    /// Seconds since the epoch when it was changed.
    pub since: u64,
}

/// A VF's link settings vfioctl changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VfLinkRecord {
    /// The PF.
    pub pf: vfioctl_core::PciAddress,
    /// The VF.
    pub vf: vfioctl_core::PciAddress,
    /// The PF's interface.
    pub interface: String,
    /// The VF's index.
    pub index: u32,
    /// The change that puts the settings back.
    pub undo: vfioctl_core::sriov::VfLinkChange,
    /// Who changed them.
    pub owner: Owner,
    /// Seconds since the epoch when they were changed.
    pub since: u64,
}

/// A problem with the journal or the lock.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The state directory cannot be created or used.
    #[error("cannot use {path}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The state directory or a file in it is a symlink or not ours.
    #[error("{path} is a symlink or not owned by this user; refusing to write through it")]
    Unsafe {
        /// The path.
        path: PathBuf,
    },
    /// Reading or writing the journal failed.
    #[error("cannot {action} the journal {path}")]
    Io {
        /// read or write.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The journal does not parse or validate.
    #[error("the journal {path} is damaged ({problem})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Another vfioctl holds the lock.
    #[error("another vfioctl is changing devices (it holds {path}); waited {waited:?}")]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        waited: Duration,
    },
}

impl JournalError {
    /// What the user can do.
    pub fn remedy(&self) -> String {
        match self {
            Self::Dir { source, .. } | Self::Io { source, .. }
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                "run vfioctl as root".to_owned()
            }
            Self::Dir { .. } | Self::Io { .. } => {
                "make /run writable (it must be a tmpfs with free space); nothing was changed"
                    .to_owned()
            }
            Self::Unsafe { path } => format!(
                "remove {} (someone planted it) and run again; nothing was changed",
                path.display()
            ),
            Self::Corrupt { path, .. } => format!(
                "inspect {} and the devices by hand ('vfioctl list'); move the file away to \
                 start over, then restore devices with 'vfioctl restore <device>'",
                path.display()
            ),
            Self::Busy { .. } => "wait for the other vfioctl to finish, then run again".to_owned(),
        }
    }
}

/// The state directory `<root>/run/vfioctl`, created safely.
pub fn state_dir(root: &HostRoot) -> Result<PathBuf, JournalError> {
    let dir = root.join("run/vfioctl");
    match fs::symlink_metadata(&dir) {
        Ok(meta) => {
            if !meta.file_type().is_dir() {
                return Err(JournalError::Unsafe { path: dir });
            }
            check_owner(&dir, &meta)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|source| JournalError::Dir {
                    path: dir.clone(),
                    source,
                })?;
            // DirBuilder's mode is filtered by the umask; state must not be readable by others.
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(|source| {
                JournalError::Dir {
                    path: dir.clone(),
                    source,
                }
            })?;
        }
        Err(source) => return Err(JournalError::Dir { path: dir, source }),
    }
    Ok(dir)
}

fn check_owner(path: &Path, meta: &fs::Metadata) -> Result<(), JournalError> {
    use std::os::unix::fs::MetadataExt;
    if meta.uid() != effective_uid() {
        return Err(JournalError::Unsafe {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// vfioctl never changes its effective uid, and the state directory is checked at every open
/// and save: once is enough to ask the kernel.
fn effective_uid() -> u32 {
    static EUID: OnceLock<u32> = OnceLock::new();
    *EUID.get_or_init(|| rustix::process::geteuid().as_raw())
}

/// The name of this process's temporary journal. Cached: the only children vfioctl forks
/// (write helpers) make one write and exit, and never save a journal.
fn tmp_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| format!("journal.json.{}.tmp", std::process::id()))
}

/// Opens `path` with `flags` (and `mode` where it is created), close-on-exec and never through
/// a symlink. One system call: the C library's open() adds a second for close-on-exec under
/// musl, and the journal is opened and saved several times by every bind.
fn open_state_file(path: &Path, flags: OFlags, mode: u32) -> io::Result<File> {
    let fd = rustix::fs::open(
        path,
        flags | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(mode),
    )?;
    Ok(File::from(fd))
}

/// An exclusive lock on `<root>/run/vfioctl/lock`, held until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock, waiting up to `wait` for another vfioctl to finish.
    pub fn acquire(root: &HostRoot, wait: Duration) -> Result<Self, JournalError> {
        let dir = state_dir(root)?;
        let path = dir.join("lock");
        let file = open_state_file(&path, OFlags::RDWR | OFlags::CREATE, 0o600)
            .map_err(|source| open_error(&path, "open", source))?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(fs::TryLockError::WouldBlock) if start.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(JournalError::Busy {
                        path,
                        waited: start.elapsed(),
                    });
                }
                Err(fs::TryLockError::Error(source)) => {
                    return Err(JournalError::Io {
                        action: "lock",
                        path,
                        source,
                    });
                }
            }
        }
    }
}

fn open_error(path: &Path, action: &'static str, source: io::Error) -> JournalError {
    // ELOOP from O_NOFOLLOW: the name is a symlink.
    if source.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        JournalError::Unsafe {
            path: path.to_path_buf(),
        }
    } else {
        JournalError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

impl Journal {
    /// The journal's path.
    pub fn path(root: &HostRoot) -> PathBuf {
        root.join("run/vfioctl/journal.json")
    }

    /// Loads the journal; an absent one is empty.
    pub fn load(root: &HostRoot) -> Result<Self, JournalError> {
        let path = Self::path(root);
        let file = match open_state_file(&path, OFlags::RDONLY, 0) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Self::empty());
            }
            Err(source) => return Err(open_error(&path, "read", source)),
        };
        // Room for a journal of a few dozen entries: std's read_to_string would otherwise probe
        // with 32-byte reads, as `take` hides the file's size.
        let mut text = String::with_capacity(16 * 1024);
        file.take(MAX_JOURNAL)
            .read_to_string(&mut text)
            .map_err(|source| JournalError::Corrupt {
                path: path.clone(),
                problem: format!("unreadable: {source}"),
            })?;
        Self::parse(&text).map_err(|problem| JournalError::Corrupt { path, problem })
    }

    /// Parses and validates journal text, of this format or of format 1.
    pub fn parse(text: &str) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let Version { version } = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let journal = match version {
            JOURNAL_VERSION => serde_json::from_str(text).map_err(|e| e.to_string())?,
            1 => crate::journal_v1::parse(text)?,
            other => {
                return Err(format!(
                    "version {other} is not a version this vfioctl reads (1 or {JOURNAL_VERSION})"
                ));
            }
        };
        validate(&journal)?;
        Ok(journal)
    }

    /// Writes the journal atomically.
    pub fn save(&self, root: &HostRoot) -> Result<(), JournalError> {
        let dir = state_dir(root)?;
        let path = Self::path(root);
        let tmp = dir.join(tmp_name());
        let mut text = serde_json::to_string_pretty(self).map_err(|e| JournalError::Io {
            action: "encode",
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        text.push('\n');
        let create =
            || open_state_file(&tmp, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL, 0o600);
        let write = || -> io::Result<()> {
            // A file of this name is left only by a vfioctl of the same pid that crashed while
            // saving (before a reboot emptied /run): it is stale.
            let mut file = match create() {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    fs::remove_file(&tmp)?;
                    create()?
                }
                other => other?,
            };
            file.write_all(text.as_bytes())?;
            file.sync_all()
        };
        if let Err(source) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(open_error(&tmp, "write", source));
        }
        if let Ok(meta) = fs::symlink_metadata(&path)
            && meta.file_type().is_symlink()
        {
            let _ = fs::remove_file(&tmp);
            return Err(JournalError::Unsafe { path });
        }
        fs::rename(&tmp, &path).map_err(|source| {
            let _ = fs::remove_file(&tmp);
            JournalError::Io {
                action: "write",
                path,
                source,
            }
        })
    }

    /// The entry of a device.
    pub fn entry(&self, device: &DeviceRef) -> Option<&JournalEntry> {
        self.entries.iter().find(|e| e.original.device == *device)
    }

    /// Entries of binds that were started and never finished.
    pub fn interrupted(&self) -> impl Iterator<Item = &JournalEntry> {
        self.entries
            .iter()
            .filter(|e| e.state == EntryState::Binding)
    }

    /// Removes the entries of these devices.
    pub fn remove(&mut self, devices: &[DeviceRef]) {
        self.entries
            .retain(|e| !devices.contains(&e.original.device));
    }

    /// An empty journal of this format.
    pub fn empty() -> Self {
        Self {
            version: JOURNAL_VERSION,
            ..Self::default()
        }
    }
}

fn validate(journal: &Journal) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for entry in &journal.entries {
        if !seen.insert(&entry.original.device) {
            return Err(format!("{} appears twice", entry.original.device));
        }
    }
    Ok(())
}

/// Driver names are kernel identifiers: no slashes, no whitespace, no control characters.
pub fn valid_driver_name(name: &str) -> bool {
    vfioctl_core::DriverName::is_valid(name)
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, HostRoot) {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("sys/bus/pci")).unwrap();
        let root = HostRoot::open(tmp.path()).unwrap();
        (tmp, root)
    }

    #[test]
    fn save_then_load_round_trips_with_private_modes() {
        let (_tmp, root) = root();
        let journal = Journal {
            version: JOURNAL_VERSION,
            entries: vec![JournalEntry {
                original: OriginalState {
                    device: "0001:03:00.0".parse().unwrap(),
                    state: vfioctl_core::plan::DeviceState {
                        driver: Some("ath10k_pci".parse().unwrap()),
                        driver_override: None,
                    },
                    iommu_group: Some(vfioctl_core::GroupId(1)),
                },
                state: EntryState::Bound,
                since: 1,
                owner: Owner::Vm("ten64".into()),
                qemu_pid: None,
            }],
            modules_loaded: vec![],
            helpers: vec![],
            dpaa2: vec![vfioctl_core::dpaa2::Record {
                owner: Owner::Vm("ten64".into()),
                root: "dprc.1".parse().unwrap(),
                made: vfioctl_core::dpaa2::Made {
                    container: Some("dprc.3".parse().unwrap()),
                    objects: vec!["dpni.4".parse().unwrap()],
                    ..Default::default()
                },
                since: 1,
            }],
            sriov: vec![SriovRecord {
                pf: "0000:01:00.0".parse().unwrap(),
                original: vfioctl_core::sriov::SriovConfig {
                    numvfs: 0,
                    autoprobe: true,
                },
                recreated: false,
                owner: Owner::Manual,
                since: 1,
            }],
            vf_links: vec![],
        };
        journal.save(&root).unwrap();
        assert_eq!(Journal::load(&root).unwrap(), journal);
        let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(root.join("run/vfioctl")), 0o700);
        assert_eq!(mode(Journal::path(&root)), 0o600);
    }

    #[test]
    fn truncated_journal_is_reported_not_trusted() {
        let (_tmp, root) = root();
        state_dir(&root).unwrap();
        fs::write(
            Journal::path(&root),
            "{\"version\": 1, \"entries\": [{\"orig",
        )
        .unwrap();
        assert!(matches!(
            Journal::load(&root),
            Err(JournalError::Corrupt { .. })
        ));
    }

    #[test]
    fn planted_symlink_is_refused() {
        let (tmp, root) = root();
        state_dir(&root).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("elsewhere"), Journal::path(&root)).unwrap();
        assert!(matches!(
            Journal::load(&root),
            Err(JournalError::Unsafe { .. })
        ));
        assert!(matches!(
            Journal::default().save(&root),
            Err(JournalError::Unsafe { .. })
        ));
        assert!(!tmp.path().join("elsewhere").exists());
    }

    #[test]
    fn planted_symlink_directory_is_refused() {
        let (tmp, root) = root();
        fs::create_dir_all(tmp.path().join("run")).unwrap();
        fs::create_dir_all(tmp.path().join("target")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("target"), tmp.path().join("run/vfioctl"))
            .unwrap();
        assert!(matches!(state_dir(&root), Err(JournalError::Unsafe { .. })));
    }

    #[test]
    fn format_1_journals_are_read_with_both_buses() {
        let text = r#"{"version":1,"entries":[{"original":{"address":"0001:03:00.0","driver":"ath10k_pci","driver_override":null,"iommu_group":1},"state":"bound","since":5,"owner":"pve-100"}],"modules_loaded":["vfio-pci"],"fsl_mc":[{"original":{"object":"dprc.2","driver":"fsl_mc_dprc","driver_override":null,"iommu_group":4},"state":"bound","since":6,"owner":null}]}"#;
        let journal = Journal::parse(text).unwrap();
        assert_eq!(journal.version, JOURNAL_VERSION);
        let devices: Vec<String> = journal
            .entries
            .iter()
            .map(|e| format!("{} {}", e.original.device, e.owner))
            .collect();
        assert_eq!(devices, ["0001:03:00.0 proxmox:100", "dprc.2 manual"]);
        assert_eq!(journal.modules_loaded, ["vfio-pci"]);
    }

    #[test]
    fn journal_with_bad_driver_name_is_corrupt() {
        let text = r#"{"version":1,"entries":[{"original":{"address":"0000:01:00.0","driver":"../../x","driver_override":null,"iommu_group":1},"state":"bound","since":0}]}"#;
        assert!(Journal::parse(text).is_err());
        let text = r#"{"version":2,"entries":[{"original":{"device":"0000:01:00.0","driver":"a/b","driver_override":null,"iommu_group":1},"state":"bound","since":0,"owner":"manual"}]}"#;
        assert!(Journal::parse(text).is_err());
    }

    #[test]
    fn second_lock_waits_then_reports_busy() {
        let (_tmp, root) = root();
        let _held = Lock::acquire(&root, Duration::ZERO).unwrap();
        assert!(matches!(
            Lock::acquire(&root, Duration::from_millis(50)),
            Err(JournalError::Busy { .. })
        ));
    }
}
