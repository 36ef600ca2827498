//! Writes a named simulated host to a directory, for `vfioctl --root DIR` by hand and for the
//! benchmarks.
//!
//! Usage: `write-tree <ten64|ten64-dpaa2|x86-desktop|qemu-x86-<topo>|qemu-arm64-<topo>|sriov> <dir> [--functions N]`
//! where `<topo>` is rootports, rootports-noacs, switch, pcibridge or multifn; or
//! `write-tree --from-lspci FILE <dir> [--arch x86_64|aarch64] [--device-tree] [--kernel RELEASE]
//! [--iommu NAME]`, which turns a real machine's `lspci -vv[nn][xxxx][PP]` capture into a tree
//! with only what the capture shows (the IOMMU off unless `--iommu` names one, which also writes
//! the capture's groups) and prints what it had to infer. `--from-dmesg FILE` does the same with
//! a kernel log's PCI enumeration (no capabilities: ACS is taken as absent, and said so).

use std::process::ExitCode;

use vfioctl_sim::{QemuTopo, SimBuilder, topology};

fn qemu_topo(name: &str) -> Option<QemuTopo> {
    Some(match name {
        "rootports" => QemuTopo::RootPorts,
        "rootports-noacs" => QemuTopo::RootPortsNoAcs,
        "switch" => QemuTopo::Switch,
        "pcibridge" => QemuTopo::PciBridge,
        "multifn" => QemuTopo::MultiFunction,
        _ => return None,
    })
}

fn builder(name: &str, functions: usize) -> Option<SimBuilder> {
    Some(match name {
        "ten64" => topology::ten64(),
        "ten64-dpaa2" => topology::ten64_dpaa2(),
        "x86-desktop" => topology::x86_desktop(),
        "sriov" => topology::sriov_host(functions),
        other => {
            if let Some(topo) = other.strip_prefix("qemu-x86-") {
                topology::qemu_x86(qemu_topo(topo)?)
            } else if let Some(topo) = other.strip_prefix("qemu-arm64-") {
                topology::qemu_arm64(qemu_topo(topo)?)
            } else {
                return None;
            }
        }
    })
}

fn from_capture(args: &[String], dmesg: bool) -> ExitCode {
    let usage = "usage: write-tree --from-lspci|--from-dmesg FILE DIR [--arch x86_64|aarch64] [--device-tree] [--kernel RELEASE] [--iommu NAME]";
    let (Some(file), Some(dir)) = (args.first(), args.get(1)) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let mut options = vfioctl_sim::lspci::ImportOptions {
        arch: vfioctl_sim::Arch::X86_64,
        release: "6.1.0".to_owned(),
        device_tree: false,
        iommu: None,
    };
    let mut rest = args[2..].iter();
    while let Some(flag) = rest.next() {
        match (flag.as_str(), rest.clone().next()) {
            ("--device-tree", _) => options.device_tree = true,
            ("--arch", Some(v)) => {
                options.arch = match v.as_str() {
                    "x86_64" => vfioctl_sim::Arch::X86_64,
                    "aarch64" => vfioctl_sim::Arch::Aarch64,
                    _ => {
                        eprintln!("{usage}");
                        return ExitCode::from(2);
                    }
                };
                rest.next();
            }
            ("--kernel", Some(v)) => {
                options.release = v.clone();
                rest.next();
            }
            ("--iommu", Some(v)) => {
                options.iommu = Some(v.clone());
                rest.next();
            }
            _ => {
                eprintln!("{usage}");
                return ExitCode::from(2);
            }
        }
    }
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read {file}: {e}");
            return ExitCode::from(1);
        }
    };
    let parsed = if dmesg {
        vfioctl_sim::lspci::parse_dmesg(&text)
    } else {
        vfioctl_sim::lspci::parse_lspci(&text)
    };
    let capture = match parsed {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{file}: {e}");
            return ExitCode::from(1);
        }
    };
    let imported = vfioctl_sim::lspci::import(&capture);
    if let Err(e) =
        vfioctl_sim::lspci::builder(&imported, &options).build(std::path::Path::new(dir))
    {
        eprintln!("cannot write {dir}: {e}");
        return ExitCode::from(1);
    }
    for line in &imported.inferred {
        println!("inferred: {line}");
    }
    println!("{dir}: {} functions", imported.devices.len());
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--from-lspci") => return from_capture(&args[1..], false),
        Some("--from-dmesg") => return from_capture(&args[1..], true),
        _ => {}
    }
    let usage = "usage: write-tree <ten64|ten64-dpaa2|x86-desktop|sriov|qemu-x86-<topo>|qemu-arm64-<topo>> <dir> [--functions N]";
    let (Some(name), Some(dir)) = (args.first(), args.get(1)) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let functions = match args.get(2).map(String::as_str) {
        Some("--functions") => match args.get(3).and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => {
                eprintln!("{usage}");
                return ExitCode::from(2);
            }
        },
        Some(_) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
        None => 256,
    };
    let Some(builder) = builder(name, functions) else {
        eprintln!("unknown topology '{name}'\n{usage}");
        return ExitCode::from(2);
    };
    if let Err(e) = builder.build(std::path::Path::new(dir)) {
        eprintln!("cannot write {dir}: {e}");
        return ExitCode::from(1);
    }
    println!("{dir}");
    ExitCode::SUCCESS
}
