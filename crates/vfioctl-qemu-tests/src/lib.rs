//! Real-kernel test layer: boots stock Debian kernels under QEMU (TCG) with emulated PCIe
//! topologies and an IOMMU, and runs `vfioctl` inside against real sysfs and VFIO.
//!
//! Everything here runs on the host. The pieces:
//! - `qemu-tests/setup.sh` installs QEMU and unpacks the kernels into the cache dir and writes
//!   `setup.env`, which [`Setup::load`] reads;
//! - [`build_guest_binaries`] cross-builds `vfioctl` and `vfioctl-guest-check` as static binaries
//!   for each guest architecture;
//! - `qemu-tests/build-initramfs.sh` packs one initramfs per case ([`prepare_case`]);
//! - [`run_cases`] boots one VM per case, at most `jobs` at a time, and reads the sentinel line
//!   that the guest `/init` prints on the serial console.
//!
//! The gated integration test `tests/qemu.rs` drives it all; see `qemu-tests/README.md`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The line the guest prints last; everything after it on the line is the result.
pub const SENTINEL: &str = "VFIOCTL-CASE-RESULT:";

/// A guest architecture and how QEMU runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    /// q35 with an emulated intel-iommu.
    X86_64,
    /// virt with SMMUv3, GICv3, Cortex-A53, device-tree boot.
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

    fn env_key(self) -> &'static str {
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

    /// The QEMU command line up to the device tail: machine, IOMMU, kernel and initrd.
    fn qemu_base(self, kernel: &Path, initrd: &Path, memory_mb: u32, append: &str) -> Vec<String> {
        let mut args: Vec<String> = match self {
            Arch::X86_64 => vec![
                "qemu-system-x86_64",
                "-accel",
                "tcg",
                "-cpu",
                "max",
                "-machine",
                "q35",
                "-device",
                "intel-iommu,intremap=on,caching-mode=on",
            ],
            Arch::Aarch64 => vec![
                "qemu-system-aarch64",
                "-accel",
                "tcg",
                "-machine",
                "virt,iommu=smmuv3,gic-version=3",
                "-cpu",
                "cortex-a53",
            ],
        }
        .into_iter()
        .map(str::to_owned)
        .collect();
        let console = match self {
            Arch::X86_64 => "console=ttyS0 intel_iommu=on iommu=nopt no_timer_check",
            Arch::Aarch64 => "console=ttyAMA0",
        };
        args.extend(["-smp", "1", "-m"].into_iter().map(str::to_owned));
        args.push(memory_mb.to_string());
        args.extend(
            ["-no-reboot", "-nodefaults", "-kernel"]
                .into_iter()
                .map(str::to_owned),
        );
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

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An emulated PCIe topology: the `-device` tail appended to the machine's command line.
#[derive(Debug, Clone, Copy)]
pub struct Topology {
    /// Name used in case ids and file names.
    pub name: &'static str,
    /// QEMU arguments, identical on both architectures.
    pub devices: &'static [&'static str],
}

const RP1: &str = "pcie-root-port,id=rp1,chassis=1,slot=1,bus=pcie.0,addr=0x10";
const RP2: &str = "pcie-root-port,id=rp2,chassis=2,slot=2,bus=pcie.0,addr=0x11";

/// The topologies of `shared/context/qemu-guest-tests.md` §3. NIC option ROMs are disabled
/// (`romfile=`): they only add iPXE noise to the x86 console.
pub const TOPOLOGIES: &[Topology] = &[
    Topology {
        name: "rootports",
        devices: &[
            "-device",
            RP1,
            "-device",
            RP2,
            "-device",
            "e1000e,bus=rp1,romfile=",
            "-device",
            "e1000e,bus=rp2,romfile=",
        ],
    },
    Topology {
        name: "rootports-noacs",
        devices: &[
            "-device",
            "pcie-root-port,id=rp1,chassis=1,slot=1,bus=pcie.0,addr=0x10.0,multifunction=on,disable-acs=on",
            "-device",
            "pcie-root-port,id=rp2,chassis=2,slot=2,bus=pcie.0,addr=0x10.1,disable-acs=on",
            "-device",
            "e1000e,bus=rp1,romfile=",
            "-device",
            "e1000e,bus=rp2,romfile=",
        ],
    },
    Topology {
        name: "switch",
        devices: &[
            "-device",
            RP1,
            "-device",
            "x3130-upstream,id=up1,bus=rp1",
            "-device",
            "xio3130-downstream,id=dn1,bus=up1,chassis=11,slot=1",
            "-device",
            "xio3130-downstream,id=dn2,bus=up1,chassis=12,slot=2",
            "-device",
            "e1000e,bus=dn1,romfile=",
            "-device",
            "e1000e,bus=dn2,romfile=",
        ],
    },
    Topology {
        name: "pcibridge",
        devices: &[
            "-device",
            RP1,
            "-device",
            "pcie-pci-bridge,id=br1,bus=rp1",
            "-device",
            "e1000,bus=br1,addr=1,romfile=",
            "-device",
            "e1000,bus=br1,addr=2,romfile=",
        ],
    },
    Topology {
        name: "multifn",
        devices: &[
            "-device",
            RP1,
            "-device",
            "e1000e,bus=rp1,addr=0.0,multifunction=on,romfile=",
            "-device",
            "e1000e,bus=rp1,addr=0.1,romfile=",
        ],
    },
    // Host safety: the guest's own network is a virtio-net behind the IOMMU (iommu_platform=on),
    // and an xHCI carries a usb-storage disk (a read-only FAT view of a small host directory).
    Topology {
        name: "hostsafety",
        devices: &[
            "-netdev",
            "user,id=n0,restrict=on",
            "-device",
            "virtio-net-pci,netdev=n0,iommu_platform=on,disable-legacy=on,addr=0x2,romfile=",
            "-device",
            "qemu-xhci,id=xhci,addr=0x4",
            "-drive",
            "if=none,id=usbdisk,file=fat:/etc/skel,format=raw,readonly=on",
            "-device",
            "usb-storage,bus=xhci.0,drive=usbdisk",
        ],
    },
];

/// Looks a topology up by name.
pub fn topology(name: &str) -> Option<&'static Topology> {
    TOPOLOGIES.iter().find(|t| t.name == name)
}

/// One VM: an architecture and a topology, checked by `qemu-tests/cases/<id>.sh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// Guest architecture.
    pub arch: Arch,
    /// The case's name: the topology's, except for cases that reuse a topology for other checks.
    pub name: &'static str,
    /// Topology name, a key of [`TOPOLOGIES`].
    pub topology: &'static str,
    /// Packs the host's `qemu-system-x86_64` (its libraries, TCG module and firmware) into the
    /// initramfs, so the case can run `vfioctl run` with a real QEMU inside the guest. Such a
    /// case gets more guest memory and time: see [`Case::memory_mb`] and [`Case::min_timeout`].
    pub nested_qemu: bool,
    /// Packs Debian's `systemd-udevd` (from `VFIOCTL_QEMU_UDEV_ROOT`, default
    /// `/var/tmp/vfioctl-initramfs/root`, made by `packaging/test-initramfs.sh --prepare`), so the
    /// case can run vfioctl's boot rule in the real udev.
    pub udev: bool,
}

impl Case {
    /// A case that checks a topology's groups, bind and restore: named after the topology.
    pub const fn plain(arch: Arch, topology: &'static str) -> Self {
        Self {
            arch,
            name: topology,
            topology,
            nested_qemu: false,
            udev: false,
        }
    }

    /// `<arch>-<name>`, also the case script's file stem.
    pub fn id(&self) -> String {
        format!("{}-{}", self.arch, self.name)
    }

    /// Guest memory: 1 GiB; 2 GiB with a nested QEMU (the unpacked 60 MB initramfs, QEMU itself
    /// and the guest RAM that VFIO pins).
    pub fn memory_mb(&self) -> u32 {
        if self.nested_qemu { 2048 } else { 1024 }
    }

    /// The least time the VM gets, whatever `VFIOCTL_QEMU_TIMEOUT` says: a nested QEMU starts
    /// twice under TCG-in-TCG.
    pub fn min_timeout(&self) -> Duration {
        Duration::from_secs(if self.nested_qemu { 240 } else { 0 })
    }

    /// The time limit `/init` puts on `/case.sh` (`vfiotest.timeout`), inside the guest.
    pub fn guest_timeout(&self) -> Option<u32> {
        self.nested_qemu.then_some(200)
    }
}

/// The full matrix.
pub const CASES: &[Case] = &[
    Case::plain(Arch::X86_64, "rootports"),
    Case::plain(Arch::X86_64, "rootports-noacs"),
    Case::plain(Arch::X86_64, "switch"),
    Case::plain(Arch::X86_64, "pcibridge"),
    Case::plain(Arch::X86_64, "multifn"),
    // Refusals on a real kernel: the guest's own virtio-net, a mounted USB disk, the LPC group.
    Case::plain(Arch::X86_64, "hostsafety"),
    // `vfioctl run` with a real qemu-system-x86_64 inside the guest: SIGTERM forwarding and the
    // give-back, then SIGKILL of vfioctl and `recover` from the journal.
    Case {
        arch: Arch::X86_64,
        name: "nested",
        topology: "rootports",
        nested_qemu: true,
        udev: false,
    },
    // `vfioctl boot install`'s rule run by the real systemd-udevd: devices added afresh.
    Case {
        arch: Arch::X86_64,
        name: "udev",
        topology: "rootports",
        nested_qemu: false,
        udev: true,
    },
    Case::plain(Arch::Aarch64, "switch"),
    Case::plain(Arch::Aarch64, "pcibridge"),
];

/// Keeps the cases named in `filter`: a comma-separated list of case ids (`x86_64-switch`), case
/// names (`switch`, `nested`) or architecture names. An empty filter keeps all.
pub fn select_cases(filter: &str) -> Vec<Case> {
    let words: Vec<&str> = filter
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    CASES
        .iter()
        .filter(|c| {
            words.is_empty()
                || words
                    .iter()
                    .any(|w| *w == c.id() || *w == c.name || *w == c.arch.name())
        })
        .copied()
        .collect()
}

/// A harness error: what failed, in one line.
#[derive(Debug)]
pub struct HarnessError(pub String);

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

/// Result of this module's fallible steps.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(HarnessError(msg.into()))
}

fn io_err(what: &str, path: &Path, e: &io::Error) -> HarnessError {
    HarnessError(format!("failed to {what} {}: {e}", path.display()))
}

/// The workspace root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.to_owned(), Path::to_owned)
}

/// `$VFIOCTL_QEMU_CACHE`, or `qemu-tests/work` in the repo.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("VFIOCTL_QEMU_CACHE")
        .map_or_else(|| repo_root().join("qemu-tests/work"), PathBuf::from)
}

/// What `setup.sh` prepared, per architecture.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The raw `KEY=value` pairs of `setup.env`.
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
        let vars = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Ok(Self { vars })
    }

    fn get(&self, key: &str) -> Result<&str> {
        match self.vars.get(key) {
            Some(v) => Ok(v),
            None => err(format!("setup.env has no {key}; rerun qemu-tests/setup.sh")),
        }
    }

    /// Kernel version (`uname -r` in the guest).
    pub fn kver(&self, arch: Arch) -> Result<&str> {
        self.get(&format!("KVER_{}", arch.env_key()))
    }

    fn path(&self, prefix: &str, arch: Arch) -> Result<PathBuf> {
        self.get(&format!("{prefix}_{}", arch.env_key()))
            .map(PathBuf::from)
    }

    /// `musl` or `gnu` (static glibc fallback).
    pub fn rust_mode(&self) -> &str {
        self.vars.get("RUST_MODE").map_or("musl", String::as_str)
    }
}

/// Static guest binaries of one architecture.
#[derive(Debug, Clone)]
pub struct GuestBinaries {
    /// The `vfioctl` binary.
    pub vfioctl: PathBuf,
    /// The in-guest checker.
    pub guest_check: PathBuf,
    /// More files for the initramfs, as `src:dst` (dst relative to the guest's `/`).
    pub extra: Vec<String>,
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), PathBuf::from)
}

/// Cross-builds `vfioctl` and `vfioctl-guest-check` as static release binaries for `arch`.
pub fn build_guest_binaries(arch: Arch, rust_mode: &str) -> Result<GuestBinaries> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let target = if rust_mode == "gnu" {
        arch.gnu_target()
    } else {
        arch.musl_target()
    };
    let env_target = target.to_uppercase().replace('-', "_");
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(repo_root())
        .args(["build", "--release", "--target", target])
        .args(["-p", "vfioctl", "--bin", "vfioctl"])
        .args(["-p", "vfioctl-qemu-tests", "--bin", "vfioctl-guest-check"]);
    if rust_mode == "gnu" {
        cmd.env(
            format!("CARGO_TARGET_{env_target}_RUSTFLAGS"),
            "-C target-feature=+crt-static",
        );
        if arch == Arch::Aarch64 {
            cmd.env(
                format!("CARGO_TARGET_{env_target}_LINKER"),
                "aarch64-linux-gnu-gcc",
            );
        }
    } else if arch == Arch::Aarch64 {
        // No cross gcc needed: link with the rust-lld that ships with the toolchain.
        let sysroot = Command::new("rustc")
            .args(["--print", "sysroot"])
            .output()
            .map_err(|e| HarnessError(format!("failed to run rustc --print sysroot: {e}")))?;
        let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_owned();
        let lld = Path::new(&sysroot).join("lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld");
        cmd.env(format!("CARGO_TARGET_{env_target}_LINKER"), lld);
    }
    eprintln!("[qemu-tests] building guest binaries for {arch} ({target})");
    let status = cmd
        .status()
        .map_err(|e| HarnessError(format!("failed to run {cargo}: {e}")))?;
    if !status.success() {
        return err(format!("cargo build for {target} failed ({status})"));
    }
    let dir = target_dir().join(target).join("release");
    Ok(GuestBinaries {
        vfioctl: dir.join("vfioctl"),
        guest_check: dir.join("vfioctl-guest-check"),
        extra: Vec::new(),
    })
}

/// Options for one run of the matrix.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where the per-case dirs (`runs/<id>/`) go.
    pub work: PathBuf,
    /// Run `cases/smoke.sh` in every VM instead of the case's own script.
    pub smoke: bool,
    /// Load vfio-pci in `/init` before the case.
    pub preload: bool,
    /// Wall-clock limit per VM (a case may ask for more: [`Case::min_timeout`]).
    pub timeout: Duration,
    /// VMs at once.
    pub jobs: usize,
}

/// A case ready to boot.
#[derive(Debug, Clone)]
pub struct PreparedCase {
    /// What it is.
    pub case: Case,
    /// Kernel version.
    pub kver: String,
    /// `runs/<id>/`: initrd, `run.sh`, `serial.log`, `qemu.err`.
    pub dir: PathBuf,
    /// The complete QEMU command line.
    pub argv: Vec<String>,
    /// Wall-clock limit for the VM.
    pub timeout: Duration,
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=,:+".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Packs the case's initramfs and writes its QEMU command line (also as `run.sh` for hand runs).
pub fn prepare_case(
    case: Case,
    setup: &Setup,
    bins: &GuestBinaries,
    opts: &RunOptions,
) -> Result<PreparedCase> {
    let Some(topo) = topology(case.topology) else {
        return err(format!(
            "case {}: unknown topology {}",
            case.id(),
            case.topology
        ));
    };
    let qemu_tests = repo_root().join("qemu-tests");
    let script = if opts.smoke {
        qemu_tests.join("cases/smoke.sh")
    } else {
        qemu_tests.join(format!("cases/{}.sh", case.id()))
    };
    if !script.exists() {
        return err(format!("no case script {}", script.display()));
    }
    let dir = opts.work.join("runs").join(case.id());
    fs::create_dir_all(&dir).map_err(|e| io_err("create", &dir, &e))?;
    let kver = setup.kver(case.arch)?.to_owned();
    let initrd = dir.join("initrd.gz");
    let mut extra = vec![
        format!("{}:bin/vfioctl", bins.vfioctl.display()),
        format!("{}:bin/vfioctl-guest-check", bins.guest_check.display()),
        format!("{}:case.sh", script.display()),
        format!(
            "{}:lib/case-lib.sh",
            qemu_tests.join("cases/lib.sh").display()
        ),
    ];
    extra.extend(bins.extra.iter().cloned());
    let mut pack = Command::new("bash");
    if case.nested_qemu && !opts.smoke {
        pack.env("NESTED_QEMU", nested_qemu_binary(case.arch)?);
    }
    if case.udev && !opts.smoke {
        let root = std::env::var_os("VFIOCTL_QEMU_UDEV_ROOT").map_or_else(
            || PathBuf::from("/var/tmp/vfioctl-initramfs/root"),
            PathBuf::from,
        );
        if !root.join("usr/bin/udevadm").exists() {
            return err(format!(
                "case {}: no Debian udev in {} (run packaging/test-initramfs.sh --prepare)",
                case.id(),
                root.display()
            ));
        }
        pack.env("GUEST_UDEV_ROOT", root);
    }
    let out = pack
        .arg(qemu_tests.join("build-initramfs.sh"))
        .arg(&initrd)
        .arg(setup.path("MODROOT", case.arch)?)
        .arg(&kver)
        .arg(setup.path("BUSYBOX", case.arch)?)
        .args(&extra)
        .output()
        .map_err(|e| HarnessError(format!("failed to run build-initramfs.sh: {e}")))?;
    if !out.status.success() {
        return err(format!(
            "build-initramfs.sh for {} failed: {}",
            case.id(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut append = Vec::new();
    if opts.preload {
        append.push("vfiotest.preload=1".to_owned());
    }
    if let Some(t) = case.guest_timeout() {
        append.push(format!("vfiotest.timeout={t}"));
    }
    let mut argv = case.arch.qemu_base(
        &setup.path("KERNEL", case.arch)?,
        &initrd,
        case.memory_mb(),
        &append.join(" "),
    );
    argv.extend(topo.devices.iter().map(|s| (*s).to_owned()));

    // For hand runs: the same VM on the terminal, with extra kernel arguments from $EXTRA_APPEND
    // (e.g. vfiotest.shell=1 for a shell after the case).
    let mut hand: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
    if let Some(pos) = argv.iter().position(|a| a == "-append") {
        hand[pos + 1] = format!("\"{} ${{EXTRA_APPEND:-}}\"", argv[pos + 1]);
    }
    // One option and its value per line.
    let mut lines: Vec<String> = Vec::new();
    for (arg, quoted) in argv.iter().zip(hand) {
        match lines.last_mut() {
            Some(last) if !arg.starts_with('-') => {
                last.push(' ');
                last.push_str(&quoted);
            }
            _ => lines.push(quoted),
        }
    }
    let run_sh = format!(
        "#!/usr/bin/env bash\n# {} on {kver}: rerun by hand; Ctrl-A X quits QEMU.\n\
         # EXTRA_APPEND adds kernel arguments, e.g. EXTRA_APPEND=vfiotest.shell=1 for a shell.\n\
         set -euo pipefail\nexec {} \\\n  -nographic -serial mon:stdio \"$@\"\n",
        case.id(),
        lines.join(" \\\n  ")
    );
    let run_path = dir.join("run.sh");
    fs::write(&run_path, run_sh).map_err(|e| io_err("write", &run_path, &e))?;
    Ok(PreparedCase {
        case,
        kver,
        dir,
        argv,
        timeout: opts.timeout.max(case.min_timeout()),
    })
}

/// The host's `qemu-system-x86_64`, packed for a nested QEMU. Only an x86-64 host's binary runs
/// in an x86-64 guest.
fn nested_qemu_binary(arch: Arch) -> Result<PathBuf> {
    if arch != Arch::X86_64 || std::env::consts::ARCH != "x86_64" {
        return err(format!(
            "a nested QEMU needs an x86_64 guest on an x86_64 host, not {arch} on {}",
            std::env::consts::ARCH
        ));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("qemu-system-x86_64"))
        .find(|p| p.is_file())
        .map_or_else(
            || err("no qemu-system-x86_64 in PATH to pack as the nested QEMU"),
            Ok,
        )
}

/// How a VM ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The guest printed `VFIOCTL-CASE-RESULT: PASS`.
    Pass,
    /// The guest printed `FAIL <reason>`, or the VM ended without a sentinel.
    Fail(String),
    /// The guest printed `SKIP <reason>`: the vfioctl under test lacks a subcommand the case needs.
    /// The checks before that point passed.
    Skip(String),
    /// The VM was killed at the time limit.
    Timeout,
}

impl Outcome {
    /// True for [`Outcome::Pass`].
    pub fn passed(&self) -> bool {
        *self == Outcome::Pass
    }

    /// Whether this outcome fails the run: anything but a pass, except a skip unless `strict`.
    pub fn fails_run(&self, strict: bool) -> bool {
        match self {
            Outcome::Pass => false,
            Outcome::Skip(_) => strict,
            Outcome::Fail(_) | Outcome::Timeout => true,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Pass => f.write_str("PASS"),
            Outcome::Fail(reason) => write!(f, "FAIL {reason}"),
            Outcome::Skip(reason) => write!(f, "SKIP {reason}"),
            Outcome::Timeout => f.write_str("TIMEOUT"),
        }
    }
}

/// Reads the result from a serial log: the last sentinel line wins.
pub fn parse_sentinel(log: &str) -> Option<Outcome> {
    log.lines().rev().find_map(|line| {
        let rest = line[line.find(SENTINEL)? + SENTINEL.len()..].trim();
        Some(if rest == "PASS" {
            Outcome::Pass
        } else if let Some(reason) = rest.strip_prefix("SKIP") {
            Outcome::Skip(reason.trim().to_owned())
        } else {
            Outcome::Fail(rest.strip_prefix("FAIL").unwrap_or(rest).trim().to_owned())
        })
    })
}

/// One finished VM.
#[derive(Debug, Clone)]
pub struct CaseReport {
    /// The case.
    pub case: Case,
    /// Kernel version.
    pub kver: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Wall clock, QEMU start to exit.
    pub seconds: f64,
    /// The serial log.
    pub log: PathBuf,
}

/// The first line `/init` prints; a log without it never got to user space.
pub const INIT_MARKER: &str = "=== vfioctl guest:";

/// Boots one prepared case and waits for it, at most its `timeout`. A VM that dies before `/init`
/// runs (a TCG timing panic under host load, say) is booted once more; the first log is kept as
/// `serial.log.1`.
pub fn run_case(p: &PreparedCase) -> Result<CaseReport> {
    let log = p.dir.join("serial.log");
    let (mut outcome, mut seconds, text) = boot_once(p, p.timeout)?;
    if !outcome.passed() && !text.contains(INIT_MARKER) {
        let first = p.dir.join("serial.log.1");
        let _ = fs::rename(&log, &first);
        eprintln!(
            "[qemu-tests] {}: guest never reached /init ({outcome}); booting once more",
            p.case.id()
        );
        let (o, s, _) = boot_once(p, p.timeout)?;
        outcome = match o {
            Outcome::Pass => Outcome::Pass,
            other => Outcome::Fail(format!(
                "{other} (after a retry; first boot: see serial.log.1)"
            )),
        };
        seconds += s;
    }
    Ok(CaseReport {
        case: p.case,
        kver: p.kver.clone(),
        outcome,
        seconds,
        log,
    })
}

fn boot_once(p: &PreparedCase, timeout: Duration) -> Result<(Outcome, f64, String)> {
    let log = p.dir.join("serial.log");
    let errlog = p.dir.join("qemu.err");
    let _ = fs::remove_file(&log);
    let err_file = fs::File::create(&errlog).map_err(|e| io_err("create", &errlog, &e))?;
    let Some((program, args)) = p.argv.split_first() else {
        return err("empty QEMU command line");
    };
    let start = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .args(["-display", "none", "-monitor", "none", "-serial"])
        .arg(format!("file:{}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file)
        .spawn()
        .map_err(|e| HarnessError(format!("failed to start {program}: {e}")))?;
    let timed_out = loop {
        match child.try_wait() {
            Ok(Some(_)) => break false,
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break true;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return err(format!("failed to wait for QEMU: {e}")),
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let text = fs::read(&log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let outcome = match parse_sentinel(&text) {
        Some(o) => o,
        None if timed_out => Outcome::Timeout,
        None => Outcome::Fail(no_sentinel_reason(
            &text,
            &fs::read_to_string(&errlog).unwrap_or_default(),
        )),
    };
    Ok((outcome, seconds, text))
}

/// Why a VM ended without a sentinel: a kernel panic line, else QEMU's last error.
fn no_sentinel_reason(serial: &str, qemu_err: &str) -> String {
    if let Some(panic) = serial.lines().find(|l| l.contains("Kernel panic")) {
        let msg = panic[panic.find("Kernel panic").unwrap_or(0)..].trim();
        return format!("no sentinel: {msg}");
    }
    match qemu_err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.contains("warning:"))
    {
        Some(line) => format!("no sentinel; qemu: {}", line.trim()),
        None => "no sentinel in serial log".to_owned(),
    }
}

/// Boots all prepared cases, at most `jobs` at once; reports come back in input order. The
/// longest case (a nested QEMU) starts first, so the short ones fill the other slot meanwhile.
pub fn run_cases(prepared: &[PreparedCase], jobs: usize) -> Vec<Result<CaseReport>> {
    let mut order: Vec<usize> = (0..prepared.len()).collect();
    order.sort_by_key(|&i| !prepared[i].case.nested_qemu);
    let queue: Mutex<VecDeque<usize>> = Mutex::new(order.into());
    let results: Mutex<Vec<Option<Result<CaseReport>>>> =
        Mutex::new(prepared.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
                    let Some(i) = next else { break };
                    let report = run_case(&prepared[i]);
                    if let Ok(r) = &report {
                        eprintln!(
                            "[qemu-tests] {:<26} {} ({:.1} s)",
                            r.case.id(),
                            r.outcome,
                            r.seconds
                        );
                    }
                    if let Ok(mut res) = results.lock() {
                        res[i] = Some(report);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.unwrap_or_else(|| err("case was not run")))
        .collect()
}

/// The summary table: `case | arch | kernel | result | seconds`.
pub fn render_table(reports: &[CaseReport]) -> String {
    let rows: Vec<[String; 5]> = reports
        .iter()
        .map(|r| {
            [
                r.case.name.to_owned(),
                r.case.arch.to_string(),
                r.kver.clone(),
                r.outcome.to_string(),
                format!("{:.1}", r.seconds),
            ]
        })
        .collect();
    let header = ["case", "arch", "kernel", "result", "seconds"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[String; 5]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(&header);
    out.push_str(&format!(
        "|{}|\n",
        widths.map(|w| "-".repeat(w + 2)).join("|")
    ));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_has_a_topology_and_a_script() {
        for case in CASES {
            assert!(topology(case.topology).is_some(), "{}", case.id());
            let script = repo_root().join(format!("qemu-tests/cases/{}.sh", case.id()));
            assert!(script.exists(), "missing {}", script.display());
        }
    }

    #[test]
    fn selects_cases_by_id_name_or_arch() {
        assert_eq!(select_cases("").len(), CASES.len());
        assert_eq!(select_cases("aarch64").len(), 2);
        assert_eq!(select_cases("switch").len(), 2);
        // A case that reuses a topology is selected by its own name only.
        assert_eq!(select_cases("rootports").len(), 1);
        assert_eq!(select_cases("nested")[0].topology, "rootports");
        assert_eq!(select_cases("x86_64-multifn, aarch64-pcibridge").len(), 2);
        assert!(select_cases("nothing").is_empty());
    }

    #[test]
    fn parses_the_last_sentinel() {
        let log = "noise\r\nVFIOCTL-CASE-RESULT: FAIL early\nmore\n\u{1b}[0mVFIOCTL-CASE-RESULT: PASS\r\n";
        assert_eq!(parse_sentinel(log), Some(Outcome::Pass));
        let log = "VFIOCTL-CASE-RESULT: FAIL bind of 0000:03:00.0 left e1000e\n";
        assert_eq!(
            parse_sentinel(log),
            Some(Outcome::Fail("bind of 0000:03:00.0 left e1000e".to_owned()))
        );
        assert_eq!(parse_sentinel("[ 1.0] Kernel panic\n"), None);
        let skip = parse_sentinel("VFIOCTL-CASE-RESULT: SKIP no bind\n").unwrap();
        assert_eq!(skip, Outcome::Skip("no bind".to_owned()));
        assert!(!skip.fails_run(false));
        assert!(skip.fails_run(true));
        assert!(Outcome::Timeout.fails_run(false));
    }

    #[test]
    fn explains_a_missing_sentinel() {
        let serial =
            "[ 0.04] Kernel panic - not syncing: timer doesn't work\n[ 0.04] Call Trace:\n";
        assert_eq!(
            no_sentinel_reason(serial, "qemu: warning: nic e1000e.0 has no peer\n"),
            "no sentinel: Kernel panic - not syncing: timer doesn't work"
        );
        assert_eq!(
            no_sentinel_reason("", "qemu: could not load kernel\nqemu: warning: x\n"),
            "no sentinel; qemu: qemu: could not load kernel"
        );
        assert_eq!(no_sentinel_reason("", ""), "no sentinel in serial log");
    }

    #[test]
    fn renders_the_table() {
        let report = CaseReport {
            case: CASES[0],
            kver: "6.1.0-56-amd64".to_owned(),
            outcome: Outcome::Pass,
            seconds: 7.94,
            log: PathBuf::from("x"),
        };
        let table = render_table(&[report]);
        assert!(
            table.starts_with("| case      | arch   | kernel         | result | seconds |\n"),
            "{table}"
        );
        assert!(
            table.contains("| rootports | x86_64 | 6.1.0-56-amd64 | PASS   | 7.9     |"),
            "{table}"
        );
    }

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(
            shell_quote("e1000e,bus=rp1,romfile="),
            "e1000e,bus=rp1,romfile="
        );
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
