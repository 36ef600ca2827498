//! Choosing the kernel vfioctl talks to: the real one, or the simulated kernel of a test tree.

use std::sync::Arc;

use vfioctl_host::apply::WRITE_HELPER_OTHER_ERROR;
use vfioctl_host::{HostRoot, Kernel, RealKernel};

use crate::context::Context;
use crate::exit::Exit;

/// `vfioctl __write-attr`: one write, its errno as the exit status. Only sysfs paths are
/// accepted, so the helper cannot be turned into a way to write arbitrary files as root.
pub fn write_attr_helper(ctx: &Context, args: &crate::cli::WriteAttrArgs) -> Exit {
    let escapes = std::path::Path::new(&args.path)
        .components()
        .any(|c| c == std::path::Component::ParentDir);
    let code = if !args.path.starts_with("/sys/") || escapes {
        EINVAL
    } else {
        match for_root(&ctx.root).write_attr(&ctx.root.join(&args.path), &args.value) {
            Ok(()) => 0,
            Err(e) => e
                .raw_os_error()
                .filter(|c| (1..WRITE_HELPER_OTHER_ERROR).contains(c))
                .unwrap_or(WRITE_HELPER_OTHER_ERROR),
        }
    };
    std::process::exit(code)
}

/// The errno the kernel gives for a write it will not take.
const EINVAL: i32 = 22;

/// The kernel for this root. A simulated kernel is used only for a `--root` tree that carries the
/// simulator's marker, never for `/`.
pub fn for_root(root: &HostRoot) -> Arc<dyn Kernel> {
    #[cfg(feature = "simulated-kernel")]
    if !root.is_real_root()
        && let Some(sim) = sim::SimAdapter::open(root.path())
    {
        return Arc::new(sim);
    }
    let _ = root;
    Arc::new(RealKernel)
}

#[cfg(feature = "simulated-kernel")]
mod sim {
    use std::io;
    use std::path::Path;

    use vfioctl_host::{Kernel, ModuleError};
    use vfioctl_sim::SimKernel;

    /// The simulated kernel behind the host layer's `Kernel` trait.
    pub struct SimAdapter(SimKernel);

    impl SimAdapter {
        pub fn open(root: &Path) -> Option<Self> {
            SimKernel::open(root).ok().map(Self)
        }
    }

    impl Kernel for SimAdapter {
        fn write_attr(&self, path: &Path, value: &str) -> io::Result<()> {
            self.0.write(path, value)
        }
        fn load_module(&self, module: &str) -> Result<(), ModuleError> {
            self.0.load_module(module).map_err(|e| convert(module, e))
        }
        fn unload_module(&self, module: &str) -> Result<(), ModuleError> {
            self.0.unload_module(module).map_err(|e| convert(module, e))
        }
    }

    fn convert(module: &str, error: vfioctl_sim::SimModuleError) -> ModuleError {
        use vfioctl_sim::SimModuleError as E;
        match error {
            E::Blacklisted(_) => ModuleError::Blacklisted(module.to_owned()),
            E::NotFound(_) => ModuleError::NotFound(module.to_owned()),
            #[allow(unreachable_patterns)]
            other => ModuleError::Failed {
                module: module.to_owned(),
                message: other.to_string(),
            },
        }
    }
}

/// The host the library's use cases act on: this root, its kernel, and unbinds in a child
/// process of this same binary.
pub fn host(root: &HostRoot) -> vfioctl_host::ops::Host {
    let host = vfioctl_host::ops::Host::new(root.clone(), for_root(root));
    match std::env::current_exe() {
        Ok(program) => host.with_write_helper(program),
        Err(_) => host,
    }
}
