//! vfioctl for tests: the shipped entry point, with the simulated kernel serving every `--root`
//! tree built by vfioctl-sim. Never `/`, and never a tree without the simulator's marker, so the
//! tests that read this machine's sysfs see the running kernel as the shipped binary does.
#![forbid(unsafe_code)]

use std::sync::Arc;

use vfioctl_host::ops::dpaa2::{Restool, RestoolBinary};
use vfioctl_host::{HostRoot, Kernel, RealKernel};
use vfioctl_sim::SimKernel;
use vfioctl_sim::restool::SimRestool;

/// Simulated kernels for marked trees, the running kernel otherwise.
struct SimulatedTrees;

impl vfioctl::KernelSource for SimulatedTrees {
    fn kernel(&self, root: &HostRoot) -> Arc<dyn Kernel> {
        if !root.is_real_root()
            && let Ok(sim) = SimKernel::open(root.path())
        {
            return Arc::new(sim);
        }
        Arc::new(RealKernel)
    }

    /// The restool stand-in for marked trees unless a program is named.
    fn restool(&self, root: &HostRoot, program: Option<std::path::PathBuf>) -> Box<dyn Restool> {
        if program.is_none() && !root.is_real_root() && SimKernel::open(root.path()).is_ok() {
            return Box::new(SimRestool::new(root.path()));
        }
        Box::new(RestoolBinary::new(program))
    }
}

fn main() -> std::process::ExitCode {
    vfioctl::run(&SimulatedTrees)
}
