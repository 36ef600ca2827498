//! The kernel vfioctl talks to, given by whoever builds the binary, and the write helper.

use std::sync::Arc;

use vfioctl_host::apply::write_helper_exit_code;
use vfioctl_host::{HostRoot, Kernel, RealKernel};

use crate::context::Context;
use crate::exit::Exit;

/// Gives the kernel that serves a root. The shipped binary always answers the running kernel;
/// a test binary may answer a simulated one for its own trees.
pub trait KernelSource {
    /// The kernel that reacts to writes under `root`.
    fn kernel(&self, root: &HostRoot) -> Arc<dyn Kernel>;

    /// The restool that manages the MC behind `root`: `program`, else `restool` from `PATH`.
    fn restool(
        &self,
        _root: &HostRoot,
        program: Option<std::path::PathBuf>,
    ) -> Box<dyn vfioctl_host::ops::dpaa2::Restool> {
        Box::new(vfioctl_host::ops::dpaa2::RestoolBinary::new(program))
    }
}

/// The running kernel, whatever the root: sysfs writes and `modprobe`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealKernelSource;

impl KernelSource for RealKernelSource {
    fn kernel(&self, _root: &HostRoot) -> Arc<dyn Kernel> {
        Arc::new(RealKernel)
    }
}

/// The host the library's use cases act on: the run's root and kernel, with unbinds done in a
/// child process of this same binary (so a test binary's child serves the same kernel as its
/// parent).
pub(crate) fn host(ctx: &Context) -> vfioctl_host::ops::Host {
    let host = vfioctl_host::ops::Host::new(ctx.root.clone(), Arc::clone(&ctx.kernel))
        .with_restool(Arc::clone(&ctx.restool));
    // A kernel that forks its writes never starts the helper: no need to ask where we are.
    if ctx.kernel.forks_writes() {
        return host;
    }
    match std::env::current_exe() {
        Ok(program) => host.with_write_helper(program),
        Err(_) => host,
    }
}

/// `vfioctl __write-attr`: one write, its errno as the exit status. Only sysfs paths are
/// accepted, so the helper cannot be turned into a way to write arbitrary files as root.
pub(crate) fn write_attr_helper(ctx: &Context, args: &crate::cli::WriteAttrArgs) -> Exit {
    let escapes = std::path::Path::new(&args.path)
        .components()
        .any(|c| c == std::path::Component::ParentDir);
    let code = if !args.path.starts_with("/sys/") || escapes {
        EINVAL
    } else {
        match ctx
            .kernel
            .write_attr(&ctx.root.join(&args.path), &args.value)
        {
            Ok(()) => 0,
            Err(e) => write_helper_exit_code(e.raw_os_error()),
        }
    };
    std::process::exit(code)
}

/// The errno the kernel gives for a write it will not take.
const EINVAL: i32 = 22;
