//! Reading VM definitions (`<root>/etc/vfioctl/vms/<name>.toml`), the state of DPAA2 containers,
//! and asking a QEMU binary which devices it has.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vfioctl_core::fslmc::DprcName;
use vfioctl_core::vm::{Location, VmDefinition, VmName, VmNameError};

use crate::HostRoot;
use crate::read::link_name;

/// Where definitions live, under the root.
pub const VMS_DIR: &str = "etc/vfioctl/vms";
/// The largest definition read (a definition is a few hundred bytes).
const MAX_DEFINITION: u64 = 1024 * 1024;

/// The definitions directory: `dir` when given (`--config`), else `<root>/etc/vfioctl/vms`.
pub fn vms_dir(root: &HostRoot, dir: Option<&Path>) -> PathBuf {
    dir.map_or_else(|| root.join(VMS_DIR), Path::to_path_buf)
}

/// A definition read from its file.
#[derive(Debug, Clone)]
pub struct VmFile {
    /// The VM's name (the file's stem).
    pub name: VmName,
    /// The file.
    pub path: PathBuf,
    /// What it says.
    pub definition: VmDefinition,
}

/// Why a definition could not be used.
#[derive(Debug, thiserror::Error)]
pub enum VmFileError {
    /// The name is not a VM name.
    #[error(transparent)]
    BadName(#[from] VmNameError),
    /// No such definition.
    #[error("no VM named '{name}' ({path} does not exist)")]
    NotFound {
        /// The name asked for.
        name: String,
        /// The file looked for.
        path: PathBuf,
    },
    /// A `--config` directory that does not exist: an empty set would hide a typo.
    #[error("the VM definitions directory {path} does not exist")]
    NoConfigDir {
        /// The directory given.
        path: PathBuf,
    },
    /// A file that looks like a definition but whose name vfioctl does not read.
    #[error("{path} is ignored: {reason}")]
    IgnoredName {
        /// The file.
        path: PathBuf,
        /// Why its name is not a definition's.
        reason: String,
    },
    /// The file or directory could not be read.
    #[error("failed to read {path}")]
    Read {
        /// What was read.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is not a valid definition.
    #[error("{}", render_parse(.path, .location, .message))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Where in it.
        location: Option<Location>,
        /// What is wrong.
        message: String,
    },
}

fn render_parse(path: &Path, location: &Option<Location>, message: &str) -> String {
    match location {
        Some(l) => format!("{}:{}:{}: {message}", path.display(), l.line, l.column),
        None => format!("{}: {message}", path.display()),
    }
}

impl VmFileError {
    /// What the user can do about it.
    pub fn remedy(&self) -> String {
        match self {
            Self::BadName(_) => "name a VM by its file's stem, e.g. 'ten64' for ten64.toml".into(),
            Self::NotFound { .. } => {
                "see 'vfioctl vm list' for the definitions there are, or pass --config DIR".into()
            }
            Self::NoConfigDir { .. } => {
                "check the path given to --config, or leave it out to read /etc/vfioctl/vms".into()
            }
            Self::IgnoredName { .. } => {
                "rename it to NAME.toml, NAME made of letters, digits, '-', '_' and '.'".into()
            }
            Self::Read { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                "run vfioctl as root, or make the file readable".into()
            }
            Self::Read { .. } => "check that the file is a readable regular file".into(),
            Self::Invalid { .. } => {
                "fix the file at that line (the README documents every key)".into()
            }
        }
    }
}

/// Reads one definition file and parses it.
pub fn read_definition(name: VmName, path: &Path) -> Result<VmFile, VmFileError> {
    let read_error = |source| VmFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = fs::File::open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            VmFileError::NotFound {
                name: name.to_string(),
                path: path.to_path_buf(),
            }
        } else {
            read_error(source)
        }
    })?;
    if !file.metadata().map_err(read_error)?.is_file() {
        return Err(read_error(io::Error::other("not a regular file")));
    }
    let mut text = String::new();
    file.take(MAX_DEFINITION)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    let definition = VmDefinition::parse(&text).map_err(|e| VmFileError::Invalid {
        path: path.to_path_buf(),
        location: e.location,
        message: e.message,
    })?;
    Ok(VmFile {
        name,
        path: path.to_path_buf(),
        definition,
    })
}

/// Loads the definition of VM `name` from `dir`.
pub fn load(dir: &Path, name: &str) -> Result<VmFile, VmFileError> {
    let name: VmName = name.parse()?;
    let path = dir.join(format!("{name}.toml"));
    read_definition(name, &path)
}

/// Loads VM `name` from the `--config` directory when given, else `<root>/etc/vfioctl/vms`,
/// with its VFs resolved (a PF named by MAC through `links`).
pub fn load_at(
    root: &HostRoot,
    links: Option<&dyn crate::vflinks::VfLinks>,
    config: Option<&Path>,
    name: &str,
) -> Result<VmFile, VmFileError> {
    let dir = vms_dir(root, config);
    if config.is_some() && fs::symlink_metadata(&dir).is_err() {
        return Err(VmFileError::NoConfigDir { path: dir });
    }
    let mut file = load(&dir, name)?;
    crate::vmvf::resolve_all(root, links, &mut file)?;
    Ok(file)
}

/// Every definition in the `--config` directory when given (which must exist), else in
/// `<root>/etc/vfioctl/vms` (which may not: a host without VMs), with their VFs resolved.
pub fn list_at(
    root: &HostRoot,
    links: Option<&dyn crate::vflinks::VfLinks>,
    config: Option<&Path>,
) -> Result<Vec<Result<VmFile, VmFileError>>, VmFileError> {
    let dir = vms_dir(root, config);
    if config.is_some() && fs::symlink_metadata(&dir).is_err() {
        return Err(VmFileError::NoConfigDir { path: dir });
    }
    Ok(list(&dir)?
        .into_iter()
        .map(|file| {
            let mut file = file?;
            crate::vmvf::resolve_all(root, links, &mut file)?;
            Ok(file)
        })
        .collect())
}

/// Why a file that ends in `.toml` (in any case) is not read as a definition, if it is not.
fn ignored_because(file_name: &std::ffi::OsStr) -> Option<String> {
    let Some(name) = file_name.to_str() else {
        return Some("its name is not UTF-8".to_owned());
    };
    let (stem, suffix) = name.rsplit_once('.')?;
    // A leading dot is how a definition is put aside on purpose.
    if name.starts_with('.') || !suffix.eq_ignore_ascii_case("toml") {
        return None;
    }
    if suffix != "toml" {
        return Some(format!("definitions end in .toml, not .{suffix}"));
    }
    stem.parse::<VmName>().err().map(|e| e.to_string())
}

/// Every `<name>.toml` in `dir`, in name order, each loaded or with its error. A missing
/// directory holds no definitions. A file that looks like a definition but is not read for its
/// name (`My VM.toml`, `vm.TOML`, non-ASCII) is listed as an [`VmFileError::IgnoredName`] error,
/// so a typo never silently drops a VM; other files (`README`, `x.toml~`, `.x.toml`) are left
/// alone.
pub fn list(dir: &Path) -> Result<Vec<Result<VmFile, VmFileError>>, VmFileError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(VmFileError::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut names: Vec<VmName> = Vec::new();
    let mut ignored: Vec<(PathBuf, String)> = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        if let Some(reason) = ignored_because(&file_name) {
            ignored.push((entry.path(), reason));
        } else if let Some(stem) = file_name.to_str().and_then(|n| n.strip_suffix(".toml"))
            && let Ok(name) = stem.parse()
        {
            names.push(name);
        }
    }
    names.sort();
    ignored.sort();
    let mut all: Vec<Result<VmFile, VmFileError>> = names
        .into_iter()
        .map(|name| {
            let path = dir.join(format!("{name}.toml"));
            read_definition(name, &path)
        })
        .collect();
    all.extend(
        ignored
            .into_iter()
            .map(|(path, reason)| Err(VmFileError::IgnoredName { path, reason })),
    );
    Ok(all)
}

/// A DPAA2 container on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DprcState {
    /// No such container in `/sys/bus/fsl-mc/devices`.
    Missing,
    /// The container, and its driver.
    Present(Option<String>),
}

pub use vfioctl_core::fslmc::VFIO_FSL_MC;

/// Whether a container exists, and which driver it has.
pub fn dprc_state(root: &HostRoot, dprc: DprcName) -> Result<DprcState, crate::HostError> {
    let dir = root.join(format!("sys/bus/fsl-mc/devices/{dprc}"));
    if fs::symlink_metadata(&dir).is_err() {
        return Ok(DprcState::Missing);
    }
    Ok(DprcState::Present(link_name(&dir.join("driver"))?))
}

/// Finds a program as `execvp` would: a path as given, or a name in `PATH`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

/// Why a QEMU binary could not be asked about its devices.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// It could not be started.
    #[error("cannot run {program}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// It did not answer in time (and was killed).
    #[error("{program} -device help did not finish within {timeout:?}")]
    Timeout {
        /// The program.
        program: String,
        /// How long it had.
        timeout: Duration,
    },
}

/// Runs `<qemu> -device help` (never through a shell) and returns what it printed, killing it
/// after `timeout`.
pub fn qemu_device_help(program: &Path, timeout: Duration) -> Result<String, ProbeError> {
    let name = program.display().to_string();
    let mut child = Command::new(program)
        .args(["-device", "help"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ProbeError::Spawn {
            program: name.clone(),
            source,
        })?;
    // Read on threads so that a full pipe cannot stall the child while we wait for it.
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut pipe| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.by_ref().take(4 * 1024 * 1024).read_to_end(&mut bytes);
            bytes
        })
    })
    .collect();
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProbeError::Timeout {
                    program: name,
                    timeout,
                });
            }
        }
    }
    let mut text = String::new();
    for reader in readers {
        text.push_str(&String::from_utf8_lossy(&reader.join().unwrap_or_default()));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const MINIMAL: &str =
        "version = 1\n[[device]]\naddress = \"0001:03:00.0\"\nid = \"168c:003e\"\n";

    #[test]
    fn loads_lists_and_reports_file_line_column() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("good.toml"), MINIMAL).unwrap();
        fs::write(
            dir.path().join("bad.toml"),
            format!("{MINIMAL}colour = \"red\"\n"),
        )
        .unwrap();
        fs::write(dir.path().join(".hidden.toml"), MINIMAL).unwrap();
        fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let vm = load(dir.path(), "good").unwrap();
        assert_eq!(vm.name.as_str(), "good");
        let all = list(dir.path()).unwrap();
        assert_eq!(all.len(), 2);
        let err = all[0].as_ref().unwrap_err().to_string();
        let expected = format!("{}:5:1: ", dir.path().join("bad.toml").display());
        assert!(err.starts_with(&expected), "{err}");
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn files_ignored_for_their_names_are_reported_after_the_definitions() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "good.toml",
            "My VM.toml",
            "router.TOML",
            "café.toml",
            ".off.toml",
        ] {
            fs::write(dir.path().join(name), MINIMAL).unwrap();
        }
        fs::write(dir.path().join("good.toml~"), MINIMAL).unwrap();
        let all = list(dir.path()).unwrap();
        let shown: Vec<String> = all
            .iter()
            .map(|e| match e {
                Ok(vm) => vm.name.to_string(),
                Err(e) => e
                    .to_string()
                    .replace(&format!("{}/", dir.path().display()), ""),
            })
            .collect();
        insta::assert_debug_snapshot!(shown);
    }

    #[test]
    fn a_config_directory_that_does_not_exist_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("sys/bus/pci/devices")).unwrap();
        let root = HostRoot::open(root.path()).unwrap();
        let missing = Path::new("/nonexistent/vms");
        let e = list_at(&root, None, Some(missing)).unwrap_err();
        assert!(matches!(e, VmFileError::NoConfigDir { .. }), "{e}");
        assert!(matches!(
            load_at(&root, None, Some(missing), "x"),
            Err(VmFileError::NoConfigDir { .. })
        ));
        // The default directory may be absent: a host without VMs.
        assert!(list_at(&root, None, None).unwrap().is_empty());
    }

    #[test]
    fn names_never_leave_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load(dir.path(), "../etc/passwd"),
            Err(VmFileError::BadName(_))
        ));
        assert!(matches!(
            load(dir.path(), "absent"),
            Err(VmFileError::NotFound { .. })
        ));
        assert!(list(&dir.path().join("nowhere")).unwrap().is_empty());
    }

    #[test]
    fn probing_a_qemu_reads_its_output_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("qemu");
        fs::write(
            &fake,
            "#!/bin/sh\n[ \"$1 $2\" = \"-device help\" ] && echo 'name \"vfio-fsl-mc\"'\n",
        )
        .unwrap();
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
        let text = qemu_device_help(&fake, Duration::from_secs(5)).unwrap();
        assert!(text.contains("vfio-fsl-mc"));
        assert_eq!(find_program(fake.to_str().unwrap()), Some(fake.clone()));
        assert!(find_program("/nonexistent/qemu").is_none());

        let slow = dir.path().join("slow");
        fs::write(&slow, "#!/bin/sh\nexec sleep 30\n").unwrap();
        fs::set_permissions(&slow, fs::Permissions::from_mode(0o755)).unwrap();
        let start = Instant::now();
        assert!(matches!(
            qemu_device_help(&slow, Duration::from_millis(200)),
            Err(ProbeError::Timeout { .. })
        ));
        assert!(start.elapsed() < Duration::from_secs(10));
    }
}
