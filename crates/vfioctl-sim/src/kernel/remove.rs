//! Device removal (`remove`, hot-unplug): the device, everything behind it, and its links.

use std::fs;
use std::io;

use vfioctl_core::PciAddress;

use crate::state::KernelState;
use crate::tree::{device_dir, remove_dir_if_exists, remove_if_exists, write_routes};

use super::SimKernel;
use super::probe::DevView;

impl SimKernel {
    /// Removes a device and everything behind it, as `pci_stop_and_remove_bus_device()` does.
    pub(super) fn remove_device(
        &self,
        state: &mut KernelState,
        address: PciAddress,
    ) -> io::Result<()> {
        let Ok(top) = device_dir(&self.root, address) else {
            return Ok(());
        };
        // A PF going away disables SR-IOV first, wherever its VFs sit.
        let pfs: Vec<PciAddress> = state
            .sriov
            .keys()
            .copied()
            .filter(|pf| device_dir(&self.root, *pf).is_ok_and(|d| d.starts_with(&top)))
            .collect();
        for pf in pfs {
            self.disable_sriov(state, pf)?;
        }
        // Devices behind a bridge live inside its directory.
        let mut doomed = Vec::new();
        for a in self.addresses()? {
            if let Ok(dir) = device_dir(&self.root, a)
                && dir.starts_with(&top)
            {
                doomed.push(a);
            }
        }
        // Children first, as the kernel removes them.
        doomed.sort_by_key(|a| {
            std::cmp::Reverse(
                device_dir(&self.root, *a)
                    .map(|d| d.components().count())
                    .unwrap_or(0),
            )
        });
        for a in doomed {
            let dev = self.view(a)?;
            self.detach_device(state, &dev)?;
            if let Some(g) = dev.group {
                let gdir = self.root.join(format!("sys/kernel/iommu_groups/{g}"));
                remove_if_exists(&gdir.join("devices").join(a.to_string()))?;
                let empty = fs::read_dir(gdir.join("devices"))
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(true);
                if empty {
                    remove_dir_if_exists(&gdir)?;
                }
            }
            self.drop_virtfn_link(&dev)?;
            remove_if_exists(&self.root.join("sys/bus/pci/devices").join(a.to_string()))?;
            remove_dir_if_exists(&self.root.join(&dev.dir))?;
            state.devices.remove(&a);
            state.sriov.remove(&a);
        }
        write_routes(&self.root, state)
    }

    /// A VF that goes away takes its `virtfnN` link in the PF with it.
    pub(super) fn drop_virtfn_link(&self, vf: &DevView) -> io::Result<()> {
        let Some(pf) = fs::read_link(self.root.join(&vf.dir).join("physfn"))
            .ok()
            .and_then(|t| t.file_name()?.to_str()?.parse::<PciAddress>().ok())
        else {
            return Ok(());
        };
        let Ok(pf_dir) = device_dir(&self.root, pf) else {
            return Ok(());
        };
        let name = vf.address.to_string();
        for entry in fs::read_dir(self.root.join(pf_dir))?.filter_map(Result::ok) {
            let is_virtfn = entry.file_name().to_string_lossy().starts_with("virtfn");
            if is_virtfn
                && fs::read_link(entry.path())
                    .ok()
                    .is_some_and(|t| t.file_name().is_some_and(|n| n == name.as_str()))
            {
                remove_if_exists(&entry.path())?;
            }
        }
        Ok(())
    }
}
