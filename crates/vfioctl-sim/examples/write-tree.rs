//! Writes a named simulated host to a directory, for `vfioctl --root DIR` by hand and for the
//! benchmarks.
//!
//! Usage: `write-tree <ten64|ten64-dpaa2|x86-desktop|qemu-x86-<topo>|qemu-arm64-<topo>|sriov> <dir> [--functions N]`
//! where `<topo>` is rootports, rootports-noacs, switch, pcibridge or multifn.

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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
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
