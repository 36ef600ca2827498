//! The emulated machine: guest architecture, boot method and the QEMU build that runs it, and
//! the QEMU command line they make together.

use std::fmt;
use std::path::{Path, PathBuf};

/// A guest architecture and how QEMU runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    /// q35 with an emulated intel-iommu.
    X86_64,
    /// virt with SMMUv3, GICv3, Cortex-A53.
    Aarch64,
}

impl Arch {
    /// Both architectures.
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The name used in case ids, `setup.env` keys and the table.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    pub(crate) fn env_key(self) -> &'static str {
        match self {
            Arch::X86_64 => "X86_64",
            Arch::Aarch64 => "AARCH64",
        }
    }

    /// The static (musl) Rust target for guest binaries.
    pub fn musl_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Aarch64 => "aarch64-unknown-linux-musl",
        }
    }

    /// The glibc target used, statically linked, when the musl targets could not be installed.
    pub fn gnu_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Aarch64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// The boot methods this architecture is tested with.
    pub fn boots(self) -> &'static [Boot] {
        match self {
            Arch::X86_64 => &[Boot::Bios],
            Arch::Aarch64 => &[Boot::Dt, Boot::Acpi],
        }
    }

    fn qemu_binary(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the kernel learns the hardware, which decides where the IOMMU and PCIe description comes
/// from: ACPI (DMAR on x86, IORT on arm64) or the device tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Boot {
    /// x86: SeaBIOS starts the `-kernel` image; the kernel reads QEMU's ACPI tables (DMAR).
    Bios,
    /// aarch64 without firmware: QEMU starts the kernel itself and hands it a device tree.
    Dt,
    /// aarch64 through edk2 (`-bios QEMU_EFI.fd`), which starts the `-kernel` image;
    /// `acpi=force` makes the kernel take ACPI (IORT) over the device tree.
    Acpi,
}

impl Boot {
    /// The name used in variant ids, filters and the table.
    pub fn name(self) -> &'static str {
        match self {
            Boot::Bios => "bios",
            Boot::Dt => "dt",
            Boot::Acpi => "acpi",
        }
    }
}

impl fmt::Display for Boot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which QEMU build runs a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QemuKind {
    /// The host's `qemu-system-*` in `PATH` (bookworm's 7.2).
    System,
    /// The newer build `setup.sh` unpacked into the cache (bookworm-backports' 10.x).
    New,
}

/// A QEMU build: where its binaries, firmware and modules are, and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qemu {
    /// System or the unpacked newer one.
    pub kind: QemuKind,
    /// `major.minor.patch`, as `--version` prints it.
    pub version: String,
    /// The unpacked root (`usr/bin`, `usr/share/qemu`, ...); `None` for the system QEMU.
    pub root: Option<PathBuf>,
}

impl Qemu {
    /// `qemu7.2`: the label in variant ids and the table.
    pub fn label(&self) -> String {
        let mut parts = self.version.split('.');
        match (parts.next(), parts.next()) {
            (Some(major), Some(minor)) => format!("qemu{major}.{minor}"),
            _ => format!("qemu{}", self.version),
        }
    }

    /// The emulator binary for `arch`.
    pub fn program(&self, arch: Arch) -> PathBuf {
        match &self.root {
            None => PathBuf::from(arch.qemu_binary()),
            Some(root) => root.join("usr/bin").join(arch.qemu_binary()),
        }
    }

    /// Environment an unpacked QEMU needs: Debian builds its accelerators and UIs as modules
    /// and looks for them in its installed path unless told otherwise.
    pub fn env(&self) -> Vec<(String, String)> {
        let Some(root) = &self.root else {
            return Vec::new();
        };
        let multiarch = match std::env::consts::ARCH {
            "aarch64" => "aarch64-linux-gnu",
            _ => "x86_64-linux-gnu",
        };
        vec![(
            "QEMU_MODULE_DIR".to_owned(),
            root.join("usr/lib")
                .join(multiarch)
                .join("qemu")
                .display()
                .to_string(),
        )]
    }

    /// `-L` for an unpacked QEMU's own data and SeaBIOS, so it never mixes in the system's.
    fn data_args(&self) -> Vec<String> {
        let Some(root) = &self.root else {
            return Vec::new();
        };
        ["usr/share/qemu", "usr/share/seabios"]
            .iter()
            .flat_map(|d| ["-L".to_owned(), root.join(d).display().to_string()])
            .collect()
    }
}

/// Everything the QEMU command line depends on besides the device tail.
#[derive(Debug, Clone)]
pub struct Machine<'a> {
    /// Guest architecture.
    pub arch: Arch,
    /// Boot method (must be one of `arch.boots()`).
    pub boot: Boot,
    /// The QEMU build.
    pub qemu: &'a Qemu,
    /// edk2 for [`Boot::Acpi`].
    pub efi_firmware: &'a Path,
    /// Guest RAM.
    pub memory_mb: u32,
}

impl Machine<'_> {
    /// The QEMU command line up to the device tail: machine, IOMMU, firmware, kernel and initrd.
    /// `append` is added to the kernel command line.
    pub fn argv(&self, kernel: &Path, initrd: &Path, append: &str) -> Vec<String> {
        let fixed: &[&str] = match self.arch {
            Arch::X86_64 => &[
                "-accel",
                "tcg",
                "-cpu",
                "max",
                "-machine",
                "q35",
                "-device",
                "intel-iommu,intremap=on,caching-mode=on",
            ],
            Arch::Aarch64 => &[
                "-accel",
                "tcg",
                "-machine",
                "virt,iommu=smmuv3,gic-version=3",
                "-cpu",
                "cortex-a53",
            ],
        };
        let mut args = vec![self.qemu.program(self.arch).display().to_string()];
        args.extend(fixed.iter().map(|s| (*s).to_owned()));
        args.extend(self.qemu.data_args());
        if self.boot == Boot::Acpi {
            args.push("-bios".to_owned());
            args.push(self.efi_firmware.display().to_string());
        }
        let console = match (self.arch, self.boot) {
            (Arch::X86_64, _) => "console=ttyS0 intel_iommu=on iommu=nopt no_timer_check",
            (Arch::Aarch64, Boot::Acpi) => "console=ttyAMA0 acpi=force",
            (Arch::Aarch64, _) => "console=ttyAMA0",
        };
        args.extend(["-smp", "1", "-m"].map(str::to_owned));
        args.push(self.memory_mb.to_string());
        args.extend(["-no-reboot", "-nodefaults", "-kernel"].map(str::to_owned));
        args.push(kernel.display().to_string());
        args.push("-initrd".to_owned());
        args.push(initrd.display().to_string());
        args.push("-append".to_owned());
        args.push(
            format!("{console} panic=-1 quiet loglevel=4 {append}")
                .trim_end()
                .to_owned(),
        );
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acpi_boot_adds_the_firmware_and_acpi_force() {
        let qemu = Qemu {
            kind: QemuKind::System,
            version: "7.2.22".to_owned(),
            root: None,
        };
        let efi = Path::new("/efi.fd");
        let m = Machine {
            arch: Arch::Aarch64,
            boot: Boot::Acpi,
            qemu: &qemu,
            efi_firmware: efi,
            memory_mb: 1024,
        };
        let argv = m.argv(Path::new("/k"), Path::new("/i"), "vfiotest.preload=1");
        assert_eq!(argv[0], "qemu-system-aarch64");
        let bios = argv.iter().position(|a| a == "-bios").unwrap();
        assert_eq!(argv[bios + 1], "/efi.fd");
        assert!(argv.last().unwrap().contains("acpi=force"));
        assert!(argv.last().unwrap().ends_with("vfiotest.preload=1"));
        let dt = Machine {
            boot: Boot::Dt,
            ..m
        };
        let argv = dt.argv(Path::new("/k"), Path::new("/i"), "");
        assert!(!argv.iter().any(|a| a == "-bios"));
        assert!(!argv.last().unwrap().contains("acpi"));
    }

    #[test]
    fn an_unpacked_qemu_runs_from_its_own_tree() {
        let qemu = Qemu {
            kind: QemuKind::New,
            version: "10.0.2".to_owned(),
            root: Some(PathBuf::from("/c/qemu-10.0.2")),
        };
        assert_eq!(qemu.label(), "qemu10.0");
        assert_eq!(
            qemu.program(Arch::X86_64),
            Path::new("/c/qemu-10.0.2/usr/bin/qemu-system-x86_64")
        );
        let env = qemu.env();
        assert_eq!(env[0].0, "QEMU_MODULE_DIR");
        assert!(env[0].1.starts_with("/c/qemu-10.0.2/usr/lib/"));
        let m = Machine {
            arch: Arch::X86_64,
            boot: Boot::Bios,
            qemu: &qemu,
            efi_firmware: Path::new("/unused"),
            memory_mb: 1024,
        };
        let argv = m.argv(Path::new("/k"), Path::new("/i"), "");
        let l = argv.iter().position(|a| a == "-L").unwrap();
        assert_eq!(argv[l + 1], "/c/qemu-10.0.2/usr/share/qemu");
    }
}
