//! The simulated kernel behind the host layer's [`Kernel`] interface, so the plan, journal and
//! rollback code of `vfioctl-host` runs unchanged over a simulated tree.

use std::io;
use std::path::Path;

use vfioctl_host::{Kernel, ModuleError};

use crate::kernel::{SimKernel, SimModuleError};

impl Kernel for SimKernel {
    fn write_attr(&self, path: &Path, value: &str) -> io::Result<()> {
        SimKernel::write(self, path, value)
    }

    fn load_module(&self, module: &str) -> Result<(), ModuleError> {
        SimKernel::load_module(self, module).map_err(|e| to_host(module, e))
    }

    fn unload_module(&self, module: &str) -> Result<(), ModuleError> {
        SimKernel::unload_module(self, module).map_err(|e| to_host(module, e))
    }
}

/// Maps a simulated modprobe failure to the error the real modprobe would have caused.
fn to_host(module: &str, error: SimModuleError) -> ModuleError {
    match error {
        SimModuleError::Blacklisted(_) => ModuleError::Blacklisted(module.to_owned()),
        SimModuleError::NotFound(_) => ModuleError::NotFound(module.to_owned()),
        other @ (SimModuleError::InUse(_) | SimModuleError::Io(_)) => ModuleError::Failed {
            module: module.to_owned(),
            message: other.to_string(),
        },
    }
}
