//! vfioctl for tests: the shipped entry point, with the simulated kernel serving every `--root`
//! tree built by vfioctl-sim. Never `/`, and never a tree without the simulator's marker, so the
//! tests that read this machine's sysfs see the running kernel as the shipped binary does.
#![forbid(unsafe_code)]

use std::sync::Arc;

use vfioctl_host::{HostRoot, Kernel, RealKernel};
use vfioctl_sim::SimKernel;

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
}

fn main() -> std::process::ExitCode {
    vfioctl::run(&SimulatedTrees)
}
