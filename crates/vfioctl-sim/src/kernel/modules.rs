//! Module loading and unloading, as `modprobe` and `modprobe -r` do it.

use std::fs;

use vfioctl_core::PciAddress;

use crate::spec::ModuleState;
use crate::state::KernelState;
use crate::tree::{module_present, remove_dir_if_exists};

use super::{SimKernel, SimModuleError, WriteFlags};

impl SimKernel {
    /// Loads a module as `modprobe` does: its dependencies first, then the module; its drivers
    /// then probe every unbound device they match (module init), honouring `driver_override`.
    pub fn load_module(&self, name: &str) -> Result<(), SimModuleError> {
        let _lock = self.lock()?;
        let mut state = self.state()?;
        let module = module_named(&state, name)?;
        let mut order = Vec::new();
        Self::dep_order(&state, &module, &mut order, 0);
        for m in &order {
            match state.module_state(m) {
                ModuleState::Builtin | ModuleState::Loaded => {}
                ModuleState::Loadable => {}
                ModuleState::Blacklisted => return Err(SimModuleError::Blacklisted(m.clone())),
                ModuleState::Absent => return Err(SimModuleError::NotFound(m.clone())),
            }
        }
        let mut newly = Vec::new();
        for m in &order {
            if let Some(spec) = state.modules.iter_mut().find(|s| &s.name == m)
                && spec.state == ModuleState::Loadable
            {
                spec.state = ModuleState::Loaded;
                newly.push(m.clone());
            }
        }
        for m in &newly {
            module_present(&self.root, &state, m)?;
        }
        if self.autoprobe() {
            for m in &newly {
                let drivers: Vec<String> = state
                    .drivers
                    .iter()
                    .filter(|d| &d.module == m)
                    .map(|d| d.name.clone())
                    .collect();
                for d in drivers {
                    self.driver_attach(&state, &d, WriteFlags::default())?;
                }
            }
            if !newly.is_empty() {
                crate::fslmc::attach_all(&self.root, &state)?;
            }
        }
        state.save(&self.root)?;
        Ok(())
    }

    /// Unloads a module as `modprobe -r` does: refused while a device is bound to one of its
    /// drivers or another loaded module needs it; then its dependencies that nothing else needs go
    /// too, so loading and unloading leaves the tree as it was.
    pub fn unload_module(&self, name: &str) -> Result<(), SimModuleError> {
        let _lock = self.lock()?;
        let mut state = self.state()?;
        let module = module_named(&state, name)?;
        if state.module_state(&module) == ModuleState::Builtin {
            return Err(SimModuleError::InUse(module));
        }
        let mut queue = vec![module.clone()];
        while let Some(m) = queue.pop() {
            if state.module_state(&m) != ModuleState::Loaded {
                continue;
            }
            let needed = state
                .modules
                .iter()
                .any(|o| o.state == ModuleState::Loaded && o.deps.contains(&m));
            let bound = state.drivers.iter().filter(|d| d.module == m).any(|d| {
                let dir = self.root.join("sys/bus/pci/drivers").join(&d.name);
                fs::read_dir(&dir).is_ok_and(|entries| {
                    entries.flatten().any(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .parse::<PciAddress>()
                            .is_ok()
                    })
                })
            }) || crate::fslmc::DRIVERS.iter().filter(|(_, dm)| *dm == m).any(
                |(d, _)| {
                    fs::read_dir(self.root.join("sys/bus/fsl-mc/drivers").join(d)).is_ok_and(
                        |entries| {
                            entries.flatten().any(|e| {
                                e.file_type().is_ok_and(|t| t.is_symlink())
                                    && e.file_name() != "module"
                            })
                        },
                    )
                },
            );
            if needed || bound {
                if m == module {
                    return Err(SimModuleError::InUse(m));
                }
                continue;
            }
            let deps = state.module(&m).map(|s| s.deps.clone()).unwrap_or_default();
            for d in state.drivers.iter().filter(|d| d.module == m) {
                remove_dir_if_exists(&self.root.join("sys/bus/pci/drivers").join(&d.name))?;
            }
            for (d, _) in crate::fslmc::DRIVERS.iter().filter(|(_, dm)| *dm == m) {
                remove_dir_if_exists(&self.root.join("sys/bus/fsl-mc/drivers").join(d))?;
            }
            remove_dir_if_exists(&self.root.join("sys/module").join(&m))?;
            if m == "vfio" {
                let _ = fs::remove_file(self.root.join("dev/vfio/vfio"));
                let _ = fs::remove_dir(self.root.join("dev/vfio"));
            }
            if let Some(spec) = state.modules.iter_mut().find(|s| s.name == m) {
                spec.state = ModuleState::Loadable;
            }
            queue.extend(deps);
        }
        state.save(&self.root)?;
        Ok(())
    }

    pub(super) fn dep_order(
        state: &KernelState,
        module: &str,
        out: &mut Vec<String>,
        depth: usize,
    ) {
        if depth > 32 || out.iter().any(|m| m == module) {
            return;
        }
        if let Some(m) = state.module(module) {
            for d in &m.deps {
                Self::dep_order(state, d, out, depth + 1);
            }
        }
        out.push(module.to_owned());
    }
}

/// The module `name` means, as modprobe reads it: a module name with `-` or `_`, or the name of a
/// driver the module provides (`vfio-pci` for `vfio_pci`).
fn module_named(state: &KernelState, name: &str) -> Result<String, SimModuleError> {
    let name = name.replace('-', "_");
    if let Some(m) = state.module(&name) {
        return Ok(m.name.clone());
    }
    match state.driver(&name.replace('_', "-")) {
        Some(d) => Ok(d.module.clone()),
        None => Err(SimModuleError::NotFound(name)),
    }
}
