//! Matching and probing: `bind`, `unbind`, `drivers_probe` and what a driver does on probe.

use std::fs;
use std::io;
use std::path::PathBuf;

use vfioctl_core::config::{PcieType, parse_config};
use vfioctl_core::{PciAddress, VendorDevice};

use crate::spec::{DriverSpec, ProbeFilter};
use crate::state::{Errno, KernelState};
use crate::tree::{attach, detach, device_dir, group_of, read_hex, remove_if_exists, write_routes};

use super::{SimKernel, WriteFlags, errno};

/// A device as the kernel sees it when matching and probing, read back from the tree.
#[derive(Debug)]
pub(super) struct DevView {
    pub(super) address: PciAddress,
    pub(super) dir: PathBuf,
    pub(super) id: VendorDevice,
    pub(super) class: u32,
    pub(super) header_type: u8,
    pub(super) pcie_type: Option<PcieType>,
    pub(super) driver_override: Option<String>,
    pub(super) driver: Option<String>,
    pub(super) group: Option<u32>,
}

impl SimKernel {
    /// `bus_find_device_by_name()` (`sysfs_streq`: a trailing newline is fine).
    pub(super) fn view_by_name(&self, name: &str) -> io::Result<DevView> {
        let address: PciAddress = name
            .strip_suffix('\n')
            .unwrap_or(name)
            .parse()
            .map_err(|_| errno(Errno::Enodev))?;
        self.view(address)
    }

    pub(super) fn view(&self, address: PciAddress) -> io::Result<DevView> {
        let dir = device_dir(&self.root, address).map_err(|_| errno(Errno::Enodev))?;
        let abs = self.root.join(&dir);
        let config = fs::read(abs.join("config")).unwrap_or_default();
        let info = parse_config(&config);
        let driver_override = fs::read_to_string(abs.join("driver_override"))
            .ok()
            .and_then(|t| {
                let v = t.trim_end_matches('\n').trim();
                (!v.is_empty() && v != "(null)").then(|| v.to_owned())
            });
        let driver = fs::read_link(abs.join("driver"))
            .ok()
            .and_then(|t| Some(t.file_name()?.to_string_lossy().into_owned()));
        Ok(DevView {
            address,
            id: VendorDevice {
                vendor: read_hex(&abs.join("vendor")) as u16,
                device: read_hex(&abs.join("device")) as u16,
            },
            class: read_hex(&abs.join("class")),
            header_type: info.header_type.unwrap_or(0),
            pcie_type: info.pcie_type,
            driver_override,
            driver,
            group: group_of(&self.root, &dir),
            dir,
        })
    }

    /// `pci_match_device()`: an override decides alone; else dynamic IDs, then the static table.
    pub(super) fn matches(drv: &DriverSpec, dev: &DevView) -> bool {
        match &dev.driver_override {
            Some(o) => *o == drv.name,
            None => drv
                .dynamic_ids
                .iter()
                .chain(&drv.ids)
                .any(|m| m.matches(dev.id, dev.class)),
        }
    }

    /// The driver's `probe()`: `Ok(true)` bound, `Ok(false)` reported success without binding
    /// (fault), `Err` the errno `bind` returns.
    pub(super) fn probe(
        &self,
        state: &KernelState,
        drv: &DriverSpec,
        dev: &DevView,
        flags: WriteFlags,
    ) -> io::Result<bool> {
        match drv.probe {
            ProbeFilter::Any => {}
            ProbeFilter::PciePorts => {
                if !matches!(
                    dev.pcie_type,
                    Some(PcieType::RootPort | PcieType::Upstream | PcieType::Downstream)
                ) {
                    return Err(errno(Errno::Enodev));
                }
            }
            ProbeFilter::PciBridges => {
                if dev.header_type != 1 {
                    return Err(errno(Errno::Enodev));
                }
            }
            ProbeFilter::Vfio => {
                if dev.header_type != 0 {
                    return Err(errno(Errno::Einval));
                }
                if dev.group.is_none() && !state.noiommu {
                    return Err(errno(Errno::Einval));
                }
            }
        }
        if flags.probe_no_bind {
            return Ok(false);
        }
        attach(
            &self.root,
            state,
            dev.address,
            &drv.name,
            !flags.no_vfio_node,
        )?;
        write_routes(&self.root, state)?;
        Ok(true)
    }

    pub(super) fn loaded_driver(&self, state: &KernelState, name: &str) -> io::Result<DriverSpec> {
        match state.driver(name) {
            Some(d) if state.driver_loaded(name) => Ok(d.clone()),
            _ => Err(errno(Errno::Enoent)),
        }
    }

    /// `bind_store()`.
    pub(super) fn bind(
        &self,
        state: &KernelState,
        drv: &str,
        value: &str,
        flags: WriteFlags,
    ) -> io::Result<()> {
        let drv = self.loaded_driver(state, drv)?;
        let dev = self.view_by_name(value)?;
        if !Self::matches(&drv, &dev) {
            return Err(errno(Errno::Enodev));
        }
        if dev.driver.is_some() {
            return Err(errno(Errno::Ebusy));
        }
        self.probe(state, &drv, &dev, flags).map(|_| ())
    }

    /// `unbind_store()`.
    pub(super) fn unbind(&self, state: &mut KernelState, drv: &str, value: &str) -> io::Result<()> {
        let dev = self.view_by_name(value)?;
        if dev.driver.as_deref() != Some(drv) {
            return Err(errno(Errno::Enodev));
        }
        // A PF driver's remove() disables SR-IOV: its VFs go first.
        if state.sriov.contains_key(&dev.address) {
            self.disable_sriov(state, dev.address)?;
        }
        self.detach_device(state, &dev)
    }

    pub(super) fn detach_device(&self, state: &KernelState, dev: &DevView) -> io::Result<()> {
        let Some(drv) = &dev.driver else {
            return Ok(());
        };
        detach(&self.root, state, dev.address, drv)?;
        if drv == "vfio-pci"
            && let Some(g) = dev.group
            && !self.group_has_vfio_member(g)
        {
            remove_if_exists(&self.root.join(format!("dev/vfio/{g}")))?;
        }
        write_routes(&self.root, state)
    }

    pub(super) fn group_has_vfio_member(&self, group: u32) -> bool {
        let dir = self
            .root
            .join(format!("sys/kernel/iommu_groups/{group}/devices"));
        let Ok(entries) = fs::read_dir(dir) else {
            return false;
        };
        entries.filter_map(Result::ok).any(|e| {
            fs::read_link(e.path().join("driver"))
                .ok()
                .is_some_and(|t| t.file_name().is_some_and(|n| n == "vfio-pci"))
        })
    }

    /// `device_attach()`: the first loaded driver that matches and whose probe succeeds. Probe
    /// errors are ignored so the next driver can try (and `drivers_probe` still succeeds).
    pub(super) fn attach_any(
        &self,
        state: &KernelState,
        dev: &DevView,
        flags: WriteFlags,
    ) -> io::Result<()> {
        let candidates: Vec<DriverSpec> = state
            .drivers
            .iter()
            .filter(|d| state.driver_loaded(&d.name) && Self::matches(d, dev))
            .cloned()
            .collect();
        for drv in candidates {
            match self.probe(state, &drv, dev, flags) {
                Ok(_) => return Ok(()),
                Err(e) if e.raw_os_error().is_some() => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub(super) fn autoprobe(&self) -> bool {
        fs::read_to_string(self.root.join("sys/bus/pci/drivers_autoprobe"))
            .map(|t| t.trim() != "0")
            .unwrap_or(true)
    }

    /// `driver_attach()`: probes every unbound device the driver matches.
    pub(super) fn driver_attach(
        &self,
        state: &KernelState,
        drv: &str,
        flags: WriteFlags,
    ) -> io::Result<()> {
        let Some(drv) = state.driver(drv).cloned() else {
            return Ok(());
        };
        for address in self.addresses()? {
            let dev = self.view(address)?;
            if dev.driver.is_none() && Self::matches(&drv, &dev) {
                match self.probe(state, &drv, &dev, flags) {
                    Err(e) if e.raw_os_error().is_none() => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    pub(super) fn addresses(&self) -> io::Result<Vec<PciAddress>> {
        let mut out: Vec<PciAddress> = fs::read_dir(self.root.join("sys/bus/pci/devices"))?
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        out.sort_unstable();
        Ok(out)
    }
}
