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

    fn vf_links(&self) -> Option<&dyn vfioctl_host::vflinks::VfLinks> {
        Some(self)
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

impl vfioctl_host::vflinks::VfLinks for SimKernel {
    fn links(&self, interface: &str) -> io::Result<Vec<vfioctl_core::sriov::VfLink>> {
        Ok(self
            .vf_links(interface)?
            .into_iter()
            .map(|l| vfioctl_core::sriov::VfLink {
                mac: l.mac.parse().unwrap_or_default(),
                vlan: l.vlan,
                qos: l.qos,
                trust: Some(l.trust),
                spoofchk: Some(l.spoofchk),
            })
            .collect())
    }

    fn permanent_address(
        &self,
        interface: &str,
    ) -> io::Result<Option<vfioctl_core::sriov::MacAddress>> {
        Ok(SimKernel::permanent_address(self, interface)?.and_then(|m| m.parse().ok()))
    }

    fn set(
        &self,
        interface: &str,
        index: u32,
        change: &vfioctl_core::sriov::VfLinkChange,
    ) -> io::Result<()> {
        self.set_vf_link(interface, index, |l| {
            if let Some(m) = change.mac {
                l.mac = m.to_string();
            }
            if let Some(v) = change.vlan {
                l.vlan = v;
            }
            if let Some(t) = change.trust {
                l.trust = t;
            }
            if let Some(s) = change.spoofchk {
                l.spoofchk = s;
            }
        })
    }
}
