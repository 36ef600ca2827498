//! The real-kernel matrix: one QEMU VM per case (see `qemu-tests/README.md`).
//!
//! Gated: without `VFIOCTL_QEMU_TESTS=1` this test returns at once, so a plain `cargo test`
//! stays fast and needs no QEMU. Knobs:
//! - `VFIOCTL_QEMU_SMOKE=1`: every VM runs `cases/smoke.sh` (boot + initramfs + sentinel only);
//! - `VFIOCTL_QEMU_CASES=a,b`: case ids (`x86_64-switch`), topologies or architectures;
//! - `VFIOCTL_QEMU_STRICT=1`: a case that ends as SKIP (vfioctl lacks a subcommand it needs)
//!   fails the run; by default a SKIP is reported but does not fail;
//! - `VFIOCTL_QEMU_STANDIN=1`: harness self-test; `qemu-tests/standin/vfioctl-standin.sh`
//!   answers `bind`/`restore`/`check` in the guest, the real vfioctl everything else;
//! - `VFIOCTL_QEMU_PRELOAD=1`: load vfio-pci in `/init` before the case;
//! - `VFIOCTL_QEMU_TIMEOUT` (seconds per VM, default 120; `nested` always gets at least 240),
//!   `VFIOCTL_QEMU_JOBS` (default 2);
//! - `VFIOCTL_QEMU_VFIOCTL_X86_64`, `VFIOCTL_QEMU_VFIOCTL_AARCH64`: a static vfioctl binary to
//!   test instead of the one built from this tree;
//! - `VFIOCTL_QEMU_EXTRA_FILES_X86_64`, `..._AARCH64`: more initramfs files, `src:dst,src:dst`;
//! - `VFIOCTL_QEMU_CACHE`: the cache dir `setup.sh` filled (default `qemu-tests/work`).

use std::time::{Duration, Instant};

use vfioctl_qemu_tests::{
    Arch, CaseReport, RunOptions, Setup, build_guest_binaries, cache_dir, prepare_case,
    render_table, repo_root, run_cases, select_cases,
};

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn qemu_guest_cases() {
    if !env_flag("VFIOCTL_QEMU_TESTS") {
        eprintln!("qemu_guest_cases: skipped (set VFIOCTL_QEMU_TESTS=1 after qemu-tests/setup.sh)");
        return;
    }
    let started = Instant::now();
    let strict = env_flag("VFIOCTL_QEMU_STRICT");
    let standin = env_flag("VFIOCTL_QEMU_STANDIN");
    let cache = cache_dir();
    let setup = Setup::load(&cache).unwrap();
    let opts = RunOptions {
        work: cache.clone(),
        smoke: env_flag("VFIOCTL_QEMU_SMOKE"),
        preload: env_flag("VFIOCTL_QEMU_PRELOAD"),
        timeout: Duration::from_secs(env_num("VFIOCTL_QEMU_TIMEOUT", 120)),
        jobs: usize::try_from(env_num("VFIOCTL_QEMU_JOBS", 2)).unwrap_or(2),
    };
    let cases = select_cases(&std::env::var("VFIOCTL_QEMU_CASES").unwrap_or_default());
    assert!(!cases.is_empty(), "VFIOCTL_QEMU_CASES selects no case");

    let mut prepared = Vec::new();
    for arch in Arch::ALL {
        if !cases.iter().any(|c| c.arch == arch) {
            continue;
        }
        let t = Instant::now();
        let mut bins = build_guest_binaries(arch, setup.rust_mode()).unwrap();
        let override_var = format!("VFIOCTL_QEMU_VFIOCTL_{}", arch.name().to_uppercase());
        if let Some(path) = std::env::var_os(&override_var) {
            eprintln!("[qemu-tests] {arch}: using vfioctl from {override_var}");
            bins.vfioctl = path.into();
        }
        let extra_var = format!("VFIOCTL_QEMU_EXTRA_FILES_{}", arch.name().to_uppercase());
        if let Ok(specs) = std::env::var(&extra_var) {
            bins.extra = specs
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if standin {
            // Harness self-test: the shell stand-in answers bind/restore/check and hands
            // everything else to the real binary, packed as /bin/vfioctl-real.
            bins.extra
                .push(format!("{}:bin/vfioctl-real", bins.vfioctl.display()));
            bins.vfioctl = repo_root().join("qemu-tests/standin/vfioctl-standin.sh");
        }
        eprintln!(
            "[qemu-tests] {arch} guest binaries built in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        for case in cases.iter().filter(|c| c.arch == arch) {
            prepared.push(prepare_case(*case, &setup, &bins, &opts).unwrap());
        }
    }
    eprintln!(
        "[qemu-tests] {} initramfs ready after {:.1} s; booting {} VM(s) at a time{}",
        prepared.len(),
        started.elapsed().as_secs_f64(),
        opts.jobs,
        if opts.smoke { " (smoke mode)" } else { "" }
    );

    let results = run_cases(&prepared, opts.jobs);
    let mut reports: Vec<CaseReport> = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(report) => reports.push(report),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let table = render_table(&reports);
    let summary = cache.join("runs/summary.txt");
    let _ = std::fs::write(&summary, &table);
    eprintln!(
        "\n{table}\n(logs: {}/runs/<case>/serial.log; total {:.1} s)",
        cache.display(),
        started.elapsed().as_secs_f64()
    );

    let failed: Vec<String> = reports
        .iter()
        .filter(|r| r.outcome.fails_run(strict))
        .map(|r| format!("{}: {} (log {})", r.case.id(), r.outcome, r.log.display()))
        .chain(errors)
        .collect();
    assert!(
        failed.is_empty(),
        "{} case(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}
