//! `vfioctl boot install|remove|status`: the files that take boot devices for vfio-pci before any
//! host driver, written under the root and recorded so that `remove` deletes exactly them.
//!
//! Every file written is listed in `/var/lib/vfioctl/boot.json` (the manifest). A file of
//! vfioctl's own is removed whole; lines added to a host's file (`/etc/initramfs-tools/modules`)
//! sit between marker lines and only they are removed.

pub mod facts;
pub mod status;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use vfioctl_core::boot::initramfs::{
    BootFile, FileKind, Generator, GeneratorChoice, has_block, with_block, without_block,
};
use vfioctl_core::boot::udev::{RULE_PATH, render_rule};
use vfioctl_core::boot::{BootConflict, BootDevice, boot_devices};

use crate::HostRoot;
use crate::vms::{self, VmFile, VmFileError};

/// The manifest of what `boot install` wrote, under the root.
pub const MANIFEST: &str = "var/lib/vfioctl/boot.json";

/// Why a `boot` command could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// A definition could not be read; it might be a boot VM.
    #[error("cannot tell which devices to take at boot")]
    Definition(#[source] VmFileError),
    /// Two boot VMs want different devices at one address.
    #[error(transparent)]
    Conflict(#[from] BootConflict),
    /// No VM is marked `boot = true`.
    #[error("no VM definition in {dir} has boot = true: there is nothing to take at boot")]
    NothingToTake {
        /// The definitions directory.
        dir: PathBuf,
    },
    /// A file could not be read.
    #[error("failed to read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file could not be written or removed.
    #[error("failed to write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The manifest does not parse.
    #[error("{path} is not a manifest vfioctl wrote")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The initramfs could not be regenerated.
    #[error("'{command}' failed ({status})")]
    Regenerate {
        /// The command.
        command: String,
        /// How it ended, or why it did not start.
        status: String,
    },
}

impl BootError {
    /// What the user can do about it.
    pub fn remedy(&self) -> String {
        match self {
            Self::Definition(e) => e.remedy(),
            Self::Conflict(_) => "keep each address in one boot VM, or make the identities agree".into(),
            Self::NothingToTake { .. } => {
                "set boot = true in the definitions of the VMs whose devices must never reach a host driver".into()
            }
            Self::Read { source, .. } | Self::Write { source, .. }
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                "run vfioctl as root".into()
            }
            Self::Read { .. } | Self::Write { .. } => "check the file and the filesystem it is on".into(),
            Self::Manifest { .. } => {
                "move it aside and run 'vfioctl boot install' again (then check /etc/udev/rules.d and the initramfs configs by hand)".into()
            }
            Self::Regenerate { .. } => {
                "read the generator's output above, fix it, and run the command again".into()
            }
        }
    }
}

/// The record of what was written (the manifest's content).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version (1).
    pub version: u32,
    /// The generator the files were written for, if any.
    pub generator: Option<String>,
    /// Every file, as on `/`.
    pub files: Vec<ManifestFile>,
}

/// One recorded file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// The path, as on `/`.
    pub path: String,
    /// Whole file, or a block in a host's file.
    pub block: bool,
    /// What was written (the block's lines, for a block).
    pub content: String,
}

/// What a file needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// It does not exist yet.
    Create,
    /// It exists with other content.
    Update,
    /// It already holds what would be written.
    Unchanged,
    /// It is vfioctl's, from an earlier install, and is no longer needed.
    Remove,
}

/// One file of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedFile {
    /// The path, as on `/`.
    pub path: String,
    /// What vfioctl writes (for a block: the lines inside it).
    pub content: String,
    /// Whole file or block.
    pub kind: FileKind,
    /// Its mode when created.
    pub mode: u32,
    /// What happens to it.
    pub change: Change,
}

/// What `boot install` would do.
#[derive(Debug, Clone, Serialize)]
pub struct InstallPlan {
    /// The devices taken at boot.
    pub devices: Vec<BootDevice>,
    /// The initramfs generator written for.
    pub generator: Option<Generator>,
    /// Every file.
    pub files: Vec<PlannedFile>,
    /// The command that rebuilds the initramfs.
    pub regenerate: Option<Vec<String>>,
}

/// The boot devices of every definition in `dir`.
///
/// # Errors
///
/// A definition that cannot be read (it could be a boot VM), or two boot VMs in conflict.
pub fn definitions_boot_devices(dir: &Path) -> Result<Vec<BootDevice>, BootError> {
    let files: Vec<VmFile> = vms::list(dir)
        .map_err(BootError::Definition)?
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(BootError::Definition)?;
    Ok(boot_devices(
        files.iter().map(|f| (&f.name, &f.definition)),
    )?)
}

/// The generators whose programs the root has.
pub fn present_generators(root: &HostRoot) -> Vec<Generator> {
    Generator::ALL
        .into_iter()
        .filter(|g| g.markers().iter().any(|m| root.join(m).exists()))
        .collect()
}

fn read_optional(path: &Path) -> Result<Option<String>, BootError> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(BootError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Reads the manifest; none when nothing was installed.
pub fn load_manifest(root: &HostRoot) -> Result<Option<Manifest>, BootError> {
    let path = root.join(MANIFEST);
    let Some(text) = read_optional(&path)? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| BootError::Manifest { path, source })
}

/// Plans `boot install` for the definitions in `dir`.
///
/// # Errors
///
/// See [`definitions_boot_devices`]; no boot device at all; unreadable files.
pub fn plan_install(
    root: &HostRoot,
    dir: &Path,
    choice: GeneratorChoice,
) -> Result<InstallPlan, BootError> {
    let devices = definitions_boot_devices(dir)?;
    if devices.is_empty() {
        return Err(BootError::NothingToTake {
            dir: root.display_path(dir),
        });
    }
    let generator = choice.resolve(&present_generators(root));
    let mut wanted = vec![BootFile {
        path: RULE_PATH.to_owned(),
        content: render_rule(&devices),
        mode: 0o644,
        kind: FileKind::Whole,
    }];
    if let Some(g) = generator {
        wanted.extend(g.files());
    }
    let mut files = Vec::new();
    for f in wanted {
        let existing = read_optional(&root.join(&f.path))?;
        let change = match (&existing, f.kind) {
            (None, _) => Change::Create,
            (Some(t), FileKind::Whole) if *t == f.content => Change::Unchanged,
            (Some(t), FileKind::Block) if has_block(t, &f.content) => Change::Unchanged,
            (Some(_), _) => Change::Update,
        };
        files.push(PlannedFile {
            path: format!("/{}", f.path),
            content: f.content,
            kind: f.kind,
            mode: f.mode,
            change,
        });
    }
    // Files of an earlier install (another generator) that this one no longer writes.
    for old in load_manifest(root)?.map(|m| m.files).unwrap_or_default() {
        if !files.iter().any(|f| f.path == old.path) {
            files.push(PlannedFile {
                path: old.path,
                content: old.content,
                kind: if old.block {
                    FileKind::Block
                } else {
                    FileKind::Whole
                },
                mode: 0,
                change: Change::Remove,
            });
        }
    }
    Ok(InstallPlan {
        devices,
        generator,
        regenerate: generator.map(|g| g.regenerate().iter().map(|s| (*s).to_owned()).collect()),
        files,
    })
}

fn write_file(path: &Path, content: &str, mode: u32) -> Result<(), BootError> {
    let err = |source| BootError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    // Written aside and renamed, so a crash never leaves a half rule for udev to read.
    let tmp = path.with_extension("vfioctl-tmp");
    fs::write(&tmp, content).map_err(err)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}

fn remove_recorded(root: &HostRoot, path: &str, block: bool) -> Result<(), BootError> {
    let abs = root.join(path);
    if block {
        if let Some(text) = read_optional(&abs)? {
            let mode = fs::metadata(&abs).map_or(0o644, |m| m.permissions().mode() & 0o7777);
            write_file(&abs, &without_block(&text), mode)?;
        }
        return Ok(());
    }
    match fs::remove_file(&abs) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(BootError::Write {
            path: abs,
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Carries out a plan: writes every file, removes the ones no longer needed, records them all.
///
/// # Errors
///
/// A file could not be written.
pub fn install(root: &HostRoot, plan: &InstallPlan) -> Result<(), BootError> {
    let mut manifest = Manifest {
        version: 1,
        generator: plan.generator.map(|g| g.name().to_owned()),
        files: Vec::new(),
    };
    for f in &plan.files {
        let abs = root.join(&f.path);
        let block = f.kind == FileKind::Block;
        match f.change {
            Change::Remove => {
                remove_recorded(root, &f.path, block)?;
                continue;
            }
            Change::Unchanged => {}
            Change::Create | Change::Update if block => {
                let existing = read_optional(&abs)?.unwrap_or_default();
                let mode = fs::metadata(&abs).map_or(f.mode, |m| m.permissions().mode() & 0o7777);
                write_file(&abs, &with_block(&existing, &f.content), mode)?;
            }
            Change::Create | Change::Update => write_file(&abs, &f.content, f.mode)?,
        }
        manifest.files.push(ManifestFile {
            path: f.path.clone(),
            block,
            content: f.content.clone(),
        });
    }
    let text = serde_json::to_string_pretty(&manifest).map_err(|source| BootError::Manifest {
        path: root.join(MANIFEST),
        source,
    })?;
    write_file(&root.join(MANIFEST), &text, 0o644)
}

/// What `boot remove` removes (or, with `apply`, removed): the files of the manifest. The
/// manifest itself goes last, so an interrupted remove can be run again.
///
/// # Errors
///
/// The manifest does not parse, or a file could not be removed.
pub fn remove(root: &HostRoot, apply: bool) -> Result<Option<Manifest>, BootError> {
    let Some(manifest) = load_manifest(root)? else {
        return Ok(None);
    };
    if apply {
        for f in &manifest.files {
            remove_recorded(root, &f.path, f.block)?;
        }
        remove_recorded(root, MANIFEST, false)?;
    }
    Ok(Some(manifest))
}

/// The generator recorded in a manifest.
pub fn manifest_generator(manifest: &Manifest) -> Option<Generator> {
    let name = manifest.generator.as_deref()?;
    Generator::ALL.into_iter().find(|g| g.name() == name)
}

/// Runs the generator's rebuild command. Only on the real root: under another root the host's
/// generator would build images for the wrong system, so the caller prints the command instead.
///
/// # Errors
///
/// The command could not start or failed.
pub fn regenerate(generator: Generator) -> Result<String, BootError> {
    let argv = generator.regenerate();
    let command = argv.join(" ");
    let output = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|e| BootError::Regenerate {
            command: command.clone(),
            status: e.to_string(),
        })?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    if output.status.success() {
        Ok(text)
    } else {
        Err(BootError::Regenerate {
            command,
            status: format!("{}: {}", output.status, text.trim()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(defs: &[(&str, &str)]) -> (tempfile::TempDir, HostRoot) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("sys/bus/pci/devices")).unwrap();
        let vms = dir.path().join(vms::VMS_DIR);
        fs::create_dir_all(&vms).unwrap();
        for (name, text) in defs {
            fs::write(vms.join(format!("{name}.toml")), text).unwrap();
        }
        let root = HostRoot::open(dir.path()).unwrap();
        (dir, root)
    }

    const NIC: &str =
        "version = 1\nboot = true\n[[device]]\naddress = \"0000:01:00.0\"\nid = \"8086:10d3\"\n";

    #[test]
    fn install_records_and_remove_deletes_exactly_what_was_written() {
        let (dir, root) = root_with(&[("nic", NIC)]);
        fs::create_dir_all(dir.path().join("usr/sbin")).unwrap();
        fs::write(dir.path().join("usr/sbin/update-initramfs"), "").unwrap();
        fs::create_dir_all(dir.path().join("etc/initramfs-tools")).unwrap();
        let host_modules = "# host's own\nnvme\n";
        fs::write(dir.path().join("etc/initramfs-tools/modules"), host_modules).unwrap();
        let vms_dir = vms::vms_dir(&root, None);

        let plan = plan_install(&root, &vms_dir, GeneratorChoice::Auto).unwrap();
        assert_eq!(plan.generator, Some(Generator::InitramfsTools));
        let changes: Vec<(&str, Change)> = plan
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.change))
            .collect();
        assert_eq!(
            changes,
            [
                ("/etc/udev/rules.d/61-vfioctl-boot.rules", Change::Create),
                ("/etc/initramfs-tools/hooks/vfioctl-boot", Change::Create),
                ("/etc/initramfs-tools/modules", Change::Update),
            ]
        );
        install(&root, &plan).unwrap();
        let hook = dir.path().join("etc/initramfs-tools/hooks/vfioctl-boot");
        assert_eq!(
            fs::metadata(&hook).unwrap().permissions().mode() & 0o777,
            0o755
        );
        let again = plan_install(&root, &vms_dir, GeneratorChoice::Auto).unwrap();
        assert!(again.files.iter().all(|f| f.change == Change::Unchanged));

        // Switching generators removes the old generator's files.
        let dracut =
            plan_install(&root, &vms_dir, GeneratorChoice::Named(Generator::Dracut)).unwrap();
        let removed: Vec<&str> = dracut
            .files
            .iter()
            .filter(|f| f.change == Change::Remove)
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(
            removed,
            [
                "/etc/initramfs-tools/hooks/vfioctl-boot",
                "/etc/initramfs-tools/modules"
            ]
        );
        install(&root, &dracut).unwrap();
        assert!(!hook.exists());
        assert_eq!(
            fs::read_to_string(dir.path().join("etc/initramfs-tools/modules")).unwrap(),
            host_modules
        );

        let manifest = remove(&root, true).unwrap().unwrap();
        assert_eq!(manifest.files.len(), 2);
        for f in &manifest.files {
            assert!(!root.join(&f.path).exists(), "{} left", f.path);
        }
        assert!(!root.join(MANIFEST).exists());
        assert!(remove(&root, true).unwrap().is_none());
    }

    #[test]
    fn refuses_without_boot_vms_or_with_an_unreadable_definition() {
        let (_dir, root) = root_with(&[(
            "idle",
            "version = 1\n[[device]]\naddress = \"0000:01:00.0\"\nid = \"8086:10d3\"\n",
        )]);
        let vms_dir = vms::vms_dir(&root, None);
        let err = plan_install(&root, &vms_dir, GeneratorChoice::None).unwrap_err();
        assert!(matches!(err, BootError::NothingToTake { .. }), "{err}");
        let (_dir, root) = root_with(&[("nic", NIC), ("bad", "version = 1\nboot = true\n")]);
        let err =
            plan_install(&root, &vms::vms_dir(&root, None), GeneratorChoice::None).unwrap_err();
        assert!(matches!(err, BootError::Definition(_)), "{err}");
    }
}
