//! The real-kernel matrix: one QEMU VM per case, kernel, boot method and QEMU build (see
//! `qemu-tests/README.md`).
//!
//! Gated: without `VFIOCTL_QEMU_TESTS=1` this test returns at once, so a plain `cargo test`
//! stays fast and needs no QEMU. Knobs:
//! - `VFIOCTL_QEMU_SMOKE=1`: every VM runs `cases/smoke.sh` (boot + initramfs + sentinel only);
//! - `VFIOCTL_QEMU_CASES=a,b`: case ids (`x86_64-switch`), case names or architectures;
//! - `VFIOCTL_QEMU_KERNELS=a,b`: kernel generations (`bookworm`, `trixie`, `trixie-backports`)
//!   or kernel versions;
//! - `VFIOCTL_QEMU_BOOTS=a,b`: `bios`, `dt`, `acpi`;
//! - `VFIOCTL_QEMU_QEMUS=a,b`: `system`, `new` or labels (`qemu7.2`, `qemu10.0`);
//! - `VFIOCTL_QEMU_NEW=none|newest|all`: the kernels the newer QEMU runs on (default `newest`);
//! - `VFIOCTL_QEMU_STRICT=1`: a case that ends as SKIP (vfioctl lacks a subcommand it needs)
//!   fails the run; by default a SKIP is reported but does not fail;
//! - `VFIOCTL_QEMU_PREDICT_STRICT=1`: a variant where `groups --predict` forms other groups than
//!   the kernel fails the run; by default the differences are listed but do not fail it;
//! - `VFIOCTL_QEMU_STANDIN=1`: harness self-test; `qemu-tests/standin/vfioctl-standin.sh`
//!   answers `bind`/`restore`/`check` in the guest, the real vfioctl everything else;
//! - `VFIOCTL_QEMU_PRELOAD=1`: load vfio-pci in `/init` before the case;
//! - `VFIOCTL_QEMU_TIMEOUT` (seconds per VM, default 120; `nested` always gets at least 240),
//!   `VFIOCTL_QEMU_JOBS` (default 2);
//! - `VFIOCTL_QEMU_VFIOCTL_X86_64`, `VFIOCTL_QEMU_VFIOCTL_AARCH64`: a static vfioctl binary to
//!   test instead of the one built from this tree;
//! - `VFIOCTL_QEMU_EXTRA_FILES_X86_64`, `..._AARCH64`: more initramfs files, `src:dst,src:dst`;
//! - `VFIOCTL_QEMU_CACHE`: the cache dir `setup.sh` filled (default `qemu-tests/work`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use vfioctl_qemu_tests::prepare::Initrds;
use vfioctl_qemu_tests::{
    Arch, CaseReport, Filter, NewQemu, RunOptions, Setup, build_guest_binaries, cache_dir, expand,
    prepare_case, render_layouts, render_predict_differences, render_table, repo_root, run_cases,
};

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

fn env_str(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
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
    let predict_strict = env_flag("VFIOCTL_QEMU_PREDICT_STRICT");
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
    let filter = Filter {
        cases: env_str("VFIOCTL_QEMU_CASES"),
        kernels: env_str("VFIOCTL_QEMU_KERNELS"),
        boots: env_str("VFIOCTL_QEMU_BOOTS"),
        qemus: env_str("VFIOCTL_QEMU_QEMUS"),
    };
    let new_var = std::env::var("VFIOCTL_QEMU_NEW").unwrap_or_else(|_| "newest".to_owned());
    let new_qemu = NewQemu::parse(&new_var)
        .unwrap_or_else(|| panic!("VFIOCTL_QEMU_NEW={new_var}: expected none, newest or all"));
    let kernels: BTreeMap<Arch, _> = Arch::ALL
        .into_iter()
        .map(|a| (a, setup.kernels(a).unwrap()))
        .collect();
    let qemus = setup.qemus().unwrap();
    let variants = expand(
        &filter,
        &|a| kernels.get(&a).cloned().unwrap_or_default(),
        &qemus,
        new_qemu,
    );
    assert!(
        !variants.is_empty(),
        "the VFIOCTL_QEMU_* filters select no variant"
    );

    let mut prepared = Vec::new();
    let mut initrds = Initrds::new();
    for arch in Arch::ALL {
        if !variants.iter().any(|v| v.case.arch == arch) {
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
        for v in variants.iter().filter(|v| v.case.arch == arch) {
            prepared.push(prepare_case(v, &setup, &bins, &opts, &mut initrds).unwrap());
        }
    }
    let boot_start = Instant::now();
    eprintln!(
        "[qemu-tests] {} VMs ({} initramfs) ready after {:.1} s; booting {} at a time{}",
        prepared.len(),
        initrds.len(),
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
    let vm_seconds: f64 = reports.iter().map(|r| r.seconds).sum();
    let summary = format!(
        "{}\n{}\n{}\n{} VMs: {:.1} s of VM time in {:.1} s wall with {} at a time; total {:.1} s \
         (guest binaries and initramfs included)\n",
        render_table(&reports),
        render_layouts(&reports),
        render_predict_differences(&reports),
        reports.len(),
        vm_seconds,
        boot_start.elapsed().as_secs_f64(),
        opts.jobs,
        started.elapsed().as_secs_f64()
    );
    let path = cache.join("runs/summary.txt");
    let _ = std::fs::write(&path, &summary);
    eprintln!(
        "\n{summary}(logs: {}/runs/<variant>/serial.log)",
        cache.display()
    );

    let failed: Vec<String> = reports
        .iter()
        .filter(|r| r.outcome.fails_run(strict))
        .map(|r| {
            format!(
                "{}: {} (log {})",
                r.variant.id(),
                r.outcome,
                r.log.display()
            )
        })
        .chain(
            reports
                .iter()
                .filter(|r| predict_strict && r.predict_diff.is_some())
                .map(|r| {
                    format!(
                        "{}: groups --predict differs: {}",
                        r.variant.id(),
                        r.predict_diff.as_deref().unwrap_or_default()
                    )
                }),
        )
        .chain(errors)
        .collect();
    assert!(
        failed.is_empty(),
        "{} case(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}
