//! Before booting: the static guest binaries, one initramfs per case and kernel, and each
//! variant's QEMU command line (also written as `run.sh` for hand runs).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cases::{Case, topology};
use crate::machine::{Arch, Machine};
use crate::matrix::Variant;
use crate::setup::{Kernel, Setup};
use crate::{HarnessError, Result, err, io_err, repo_root};

/// Static guest binaries of one architecture.
#[derive(Debug, Clone)]
pub struct GuestBinaries {
    /// The `vfioctl` binary.
    pub vfioctl: PathBuf,
    /// The in-guest checker.
    pub guest_check: PathBuf,
    /// The fake kubelet of the device plugin case.
    pub fake_kubelet: PathBuf,
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
        .args(["-p", "vfioctl-qemu-tests", "--bin", "vfioctl-guest-check"])
        .args(["--bin", "vfioctl-fake-kubelet"]);
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
        fake_kubelet: dir.join("vfioctl-fake-kubelet"),
        extra: Vec::new(),
    })
}

/// Options for one run of the matrix.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where the per-variant dirs (`runs/<id>/`) and the initramfs (`initrds/`) go.
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

/// A variant ready to boot.
#[derive(Debug, Clone)]
pub struct PreparedCase {
    /// What it is.
    pub variant: Variant,
    /// `runs/<id>/`: `run.sh`, `serial.log`, `qemu.err`.
    pub dir: PathBuf,
    /// Environment for QEMU (an unpacked QEMU's module dir).
    pub env: Vec<(String, String)>,
    /// The complete QEMU command line.
    pub argv: Vec<String>,
    /// Wall-clock limit for the VM.
    pub timeout: Duration,
}

impl PreparedCase {
    /// The case.
    pub fn case(&self) -> Case {
        self.variant.case
    }
}

pub(crate) fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=,:+".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Initramfs already packed in this run, by case id and kernel version: the boot methods and
/// QEMU builds of one case and kernel share one.
pub type Initrds = BTreeMap<(String, String), PathBuf>;

/// Packs (or reuses) the variant's initramfs and writes its QEMU command line, also as `run.sh`.
pub fn prepare_case(
    variant: &Variant,
    setup: &Setup,
    bins: &GuestBinaries,
    opts: &RunOptions,
    initrds: &mut Initrds,
) -> Result<PreparedCase> {
    let case = variant.case;
    let Some(topo) = topology(case.topology) else {
        return err(format!(
            "case {}: unknown topology {}",
            case.id(),
            case.topology
        ));
    };
    let dir = opts.work.join("runs").join(variant.id());
    fs::create_dir_all(&dir).map_err(|e| io_err("create", &dir, &e))?;
    let key = (case.id(), variant.kernel.kver.clone());
    let initrd = match initrds.get(&key) {
        Some(path) => path.clone(),
        None => {
            let path = pack_initramfs(case, &variant.kernel, setup, bins, opts)?;
            initrds.insert(key, path.clone());
            path
        }
    };
    let mut append = vec![format!("vfiotest.boot={}", variant.boot)];
    if opts.preload {
        append.push("vfiotest.preload=1".to_owned());
    }
    if let Some(t) = case.guest_timeout() {
        append.push(format!("vfiotest.timeout={t}"));
    }
    let efi = if variant.boot == crate::Boot::Acpi {
        setup.efi_firmware()?
    } else {
        PathBuf::new()
    };
    let machine = Machine {
        arch: case.arch,
        boot: variant.boot,
        qemu: &variant.qemu,
        efi_firmware: &efi,
        memory_mb: case.memory_mb(),
    };
    let mut argv = machine.argv(&variant.kernel.image(), &initrd, &append.join(" "));
    argv.extend(topo.devices.iter().map(|s| (*s).to_owned()));
    let env = variant.qemu.env();
    let run_path = dir.join("run.sh");
    fs::write(&run_path, hand_script(variant, &env, &argv))
        .map_err(|e| io_err("write", &run_path, &e))?;
    Ok(PreparedCase {
        variant: variant.clone(),
        dir,
        env,
        argv,
        timeout: opts.timeout.max(case.min_timeout()),
    })
}

/// `run.sh`: the same VM on the terminal, with extra kernel arguments from `$EXTRA_APPEND`
/// (e.g. `vfiotest.shell=1` for a shell after the case).
fn hand_script(variant: &Variant, env: &[(String, String)], argv: &[String]) -> String {
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
    let exports: String = env
        .iter()
        .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
        .collect();
    format!(
        "#!/usr/bin/env bash\n# {} on {}: rerun by hand; Ctrl-A X quits QEMU.\n\
         # EXTRA_APPEND adds kernel arguments, e.g. EXTRA_APPEND=vfiotest.shell=1 for a shell.\n\
         set -euo pipefail\n{exports}exec {} \\\n  -nographic -serial mon:stdio \"$@\"\n",
        variant.id(),
        variant.kernel.kver,
        lines.join(" \\\n  ")
    )
}

fn pack_initramfs(
    case: Case,
    kernel: &Kernel,
    setup: &Setup,
    bins: &GuestBinaries,
    opts: &RunOptions,
) -> Result<PathBuf> {
    let qemu_tests = repo_root().join("qemu-tests");
    let script = if opts.smoke {
        qemu_tests.join("cases/smoke.sh")
    } else {
        qemu_tests.join(format!("cases/{}.sh", case.id()))
    };
    if !script.exists() {
        return err(format!("no case script {}", script.display()));
    }
    let dir = opts.work.join("initrds");
    fs::create_dir_all(&dir).map_err(|e| io_err("create", &dir, &e))?;
    let initrd = dir.join(format!("{}.{}.gz", case.id(), kernel.label));
    let mut extra = vec![
        format!("{}:bin/vfioctl", bins.vfioctl.display()),
        format!("{}:bin/vfioctl-guest-check", bins.guest_check.display()),
        format!("{}:bin/vfioctl-fake-kubelet", bins.fake_kubelet.display()),
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
        .arg(&kernel.modroot)
        .arg(&kernel.kver)
        .arg(setup.busybox(case.arch)?)
        .args(&extra)
        .output()
        .map_err(|e| HarnessError(format!("failed to run build-initramfs.sh: {e}")))?;
    if !out.status.success() {
        return err(format!(
            "build-initramfs.sh for {} on {} failed: {}",
            case.id(),
            kernel.kver,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(initrd)
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

#[cfg(test)]
mod tests {
    use super::*;

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
