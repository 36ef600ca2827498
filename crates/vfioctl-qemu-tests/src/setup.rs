//! What `qemu-tests/setup.sh` prepared, as `setup.env` in the cache dir describes it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::machine::{Arch, Qemu, QemuKind};
use crate::{HarnessError, Result, err};

/// One unpacked kernel of one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// The generation: the Debian suite it comes from (`bookworm`, `trixie`, `trixie-backports`).
    pub label: String,
    /// `uname -r` in the guest.
    pub kver: String,
    /// The unpacked package: holds `boot/vmlinuz-<kver>` and `lib/modules/<kver>`.
    pub modroot: PathBuf,
}

impl Kernel {
    /// The kernel image QEMU boots.
    pub fn image(&self) -> PathBuf {
        self.modroot
            .join("boot")
            .join(format!("vmlinuz-{}", self.kver))
    }
}

/// The parsed `setup.env`.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The raw `KEY=value` pairs.
    pub vars: BTreeMap<String, String>,
}

impl Setup {
    /// Reads `<cache>/setup.env`.
    pub fn load(cache: &Path) -> Result<Self> {
        let path = cache.join("setup.env");
        let text = fs::read_to_string(&path).map_err(|e| {
            HarnessError(format!(
                "failed to read {} (run qemu-tests/setup.sh): {e}",
                path.display()
            ))
        })?;
        Ok(Self::parse(&text))
    }

    /// Parses `KEY=value` lines; `#` starts a comment line.
    pub fn parse(text: &str) -> Self {
        let vars = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Self { vars }
    }

    fn get(&self, key: &str) -> Result<&str> {
        match self.vars.get(key) {
            Some(v) => Ok(v),
            None => err(format!("setup.env has no {key}; rerun qemu-tests/setup.sh")),
        }
    }

    /// The kernel generations, oldest first, as `setup.sh` fetched them for `arch`.
    pub fn kernels(&self, arch: Arch) -> Result<Vec<Kernel>> {
        let dir = PathBuf::from(self.get("KERNEL_DIR")?);
        self.get("KERNELS")?
            .split_whitespace()
            .map(|label| {
                let key = format!(
                    "KVER_{}_{}",
                    arch.env_key(),
                    label.to_ascii_uppercase().replace('-', "_")
                );
                let kver = self.get(&key)?.to_owned();
                Ok(Kernel {
                    label: label.to_owned(),
                    modroot: dir.join(&kver),
                    kver,
                })
            })
            .collect()
    }

    /// A static busybox for the guest.
    pub fn busybox(&self, arch: Arch) -> Result<PathBuf> {
        self.get(&format!("BUSYBOX_{}", arch.env_key()))
            .map(PathBuf::from)
    }

    /// edk2 for the aarch64 ACPI boot.
    pub fn efi_firmware(&self) -> Result<PathBuf> {
        self.get("EFI_AARCH64").map(PathBuf::from)
    }

    /// The system QEMU, and the newer unpacked one when `setup.sh` fetched it.
    pub fn qemus(&self) -> Result<Vec<Qemu>> {
        let system = Qemu {
            kind: QemuKind::System,
            version: String::new(),
            root: None,
        };
        let mut out = vec![Qemu {
            version: qemu_version(&system.program(Arch::X86_64))?,
            ..system
        }];
        if let Some(root) = self.vars.get("QEMU_NEW_DIR") {
            let new = Qemu {
                kind: QemuKind::New,
                version: String::new(),
                root: Some(PathBuf::from(root)),
            };
            let mut cmd = Command::new(new.program(Arch::X86_64));
            cmd.envs(new.env());
            out.push(Qemu {
                version: version_of(cmd, &new.program(Arch::X86_64))?,
                ..new
            });
        }
        Ok(out)
    }

    /// `musl` or `gnu` (static glibc fallback).
    pub fn rust_mode(&self) -> &str {
        self.vars.get("RUST_MODE").map_or("musl", String::as_str)
    }
}

fn qemu_version(program: &Path) -> Result<String> {
    version_of(Command::new(program), program)
}

fn version_of(mut cmd: Command, program: &Path) -> Result<String> {
    let out = cmd.arg("--version").output().map_err(|e| {
        HarnessError(format!(
            "failed to run {} --version: {e}",
            program.display()
        ))
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_qemu_version(&text).map_or_else(
        || {
            err(format!(
                "{} --version printed no version: {}",
                program.display(),
                text.trim()
            ))
        },
        Ok,
    )
}

/// `QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)` gives `7.2.22`.
fn parse_qemu_version(text: &str) -> Option<String> {
    let rest = text.split("version ").nth(1)?;
    let v: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    (!v.is_empty()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENV: &str = "\
# Written by qemu-tests/setup.sh
KERNELS=bookworm trixie-backports
KVER_X86_64_BOOKWORM=6.1.0-57-amd64
KVER_AARCH64_BOOKWORM=6.1.0-57-arm64
KVER_X86_64_TRIXIE_BACKPORTS=7.3.4+bpo-amd64
KVER_AARCH64_TRIXIE_BACKPORTS=7.3.4+bpo-arm64
KERNEL_DIR=/c/kernels
BUSYBOX_X86_64=/bin/busybox
";

    #[test]
    fn reads_the_kernel_generations() {
        let setup = Setup::parse(ENV);
        let kernels = setup.kernels(Arch::Aarch64).unwrap();
        assert_eq!(kernels.len(), 2);
        assert_eq!(kernels[1].label, "trixie-backports");
        assert_eq!(kernels[1].kver, "7.3.4+bpo-arm64");
        assert_eq!(
            kernels[1].image(),
            Path::new("/c/kernels/7.3.4+bpo-arm64/boot/vmlinuz-7.3.4+bpo-arm64")
        );
        assert_eq!(
            setup.busybox(Arch::X86_64).unwrap(),
            Path::new("/bin/busybox")
        );
        let missing = setup.busybox(Arch::Aarch64).unwrap_err().to_string();
        assert!(missing.contains("BUSYBOX_AARCH64"), "{missing}");
    }

    #[test]
    fn an_old_setup_env_asks_for_a_rerun() {
        let old = Setup::parse("KVER_X86_64=6.1.0-56-amd64\n");
        let e = old.kernels(Arch::X86_64).unwrap_err().to_string();
        assert!(e.contains("rerun qemu-tests/setup.sh"), "{e}");
    }

    #[test]
    fn parses_qemu_versions() {
        assert_eq!(
            parse_qemu_version(
                "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright"
            )
            .as_deref(),
            Some("7.2.22")
        );
        assert_eq!(parse_qemu_version("nothing"), None);
    }
}
