//! The host description ([`SimBuilder`]) and writing it into a directory ([`SimTree`]).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use vfioctl_core::PciAddress;

use crate::groups::{Hierarchy, compute_groups, group_members};
use crate::snapshot::{Snapshot, snapshot};
use crate::spec::{DeviceSpec, DriverSpec, HostSpec, ModuleSpec, ModuleState};
use crate::state::{DeviceState, Fault, KernelState};

use super::files::{device_rel_dir, rel_symlink};
use super::live::{attach, module_present, write_routes};
use super::writer::Writer;

/// A simulated host, ready to be written into a directory.
#[derive(Debug, Clone)]
pub struct SimBuilder {
    /// Host-wide facts and knobs.
    pub host: HostSpec,
    /// Every PCI function.
    pub devices: Vec<DeviceSpec>,
    /// Every PCI driver the kernel knows (loaded or not, see `modules`).
    pub drivers: Vec<DriverSpec>,
    /// Every module and its state.
    pub modules: Vec<ModuleSpec>,
    /// Faults to inject (stored in the marker).
    pub faults: Vec<Fault>,
    /// Abort after this many successful writes (stored in the marker).
    pub crash_after_write: Option<u64>,
    /// vfio no-IOMMU mode.
    pub noiommu: bool,
    /// The fsl-mc (DPAA2) bus, if the host has one.
    pub fsl_mc: Option<crate::spec::FslMcSpec>,
    /// A kernel with iommufd and the VFIO device cdev (see [`crate::cdev`]); Debian's have
    /// neither, so it is off unless a test asks for it.
    pub iommufd: bool,
}

/// A tree written into a temporary directory that is removed on drop.
#[derive(Debug)]
pub struct SimTree {
    dir: tempfile::TempDir,
}

impl SimTree {
    /// The root directory (pass it as vfioctl's `--root`).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps the directory on disk (for debugging a failed test) and returns its path.
    pub fn keep(self) -> PathBuf {
        self.dir.keep()
    }

    /// A canonical description of the whole tree (see [`Snapshot`]).
    pub fn snapshot(&self) -> io::Result<Snapshot> {
        snapshot(self.root())
    }
}

pub(super) fn temp_root() -> io::Result<tempfile::TempDir> {
    let make = |base: &Path| {
        tempfile::Builder::new()
            .prefix("vfioctl-sim-")
            .tempdir_in(base)
    };
    if let Some(base) = std::env::var_os("VFIOCTL_SIM_TMPDIR") {
        return make(Path::new(&base));
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = make(shm)
    {
        return Ok(dir);
    }
    tempfile::Builder::new().prefix("vfioctl-sim-").tempdir()
}

/// Parses an address written in a topology; topologies are code, so a typo is a bug.
pub(crate) fn addr(text: &str) -> PciAddress {
    match text.parse() {
        Ok(a) => a,
        Err(e) => panic!("bad address in topology: {e}"),
    }
}

impl SimBuilder {
    /// An empty host.
    pub fn new(host: HostSpec) -> Self {
        Self {
            host,
            devices: Vec::new(),
            drivers: Vec::new(),
            modules: Vec::new(),
            faults: Vec::new(),
            crash_after_write: None,
            noiommu: false,
            fsl_mc: None,
            iommufd: false,
        }
    }

    /// Adds a device (replacing one at the same address).
    pub fn add(&mut self, dev: DeviceSpec) -> &mut Self {
        self.devices.retain(|d| d.address != dev.address);
        self.devices.push(dev);
        self
    }

    /// Adds a driver and, if unknown yet, its module in `state`.
    pub fn add_driver(&mut self, driver: DriverSpec, state: ModuleState) -> &mut Self {
        if !self.modules.iter().any(|m| m.name == driver.module) {
            self.modules.push(ModuleSpec::new(&driver.module, state));
        }
        self.drivers.retain(|d| d.name != driver.name);
        self.drivers.push(driver);
        self
    }

    /// Adds or replaces a module.
    pub fn add_module(&mut self, module: ModuleSpec) -> &mut Self {
        self.modules.retain(|m| m.name != module.name);
        self.modules.push(module);
        self
    }

    /// The device at `address` (`DDDD:BB:DD.F`), for tweaking.
    pub fn device_mut(&mut self, address: &str) -> Option<&mut DeviceSpec> {
        let a: PciAddress = address.parse().ok()?;
        self.devices.iter_mut().find(|d| d.address == a)
    }

    /// The module named `name`, for tweaking.
    pub fn module_mut(&mut self, name: &str) -> Option<&mut ModuleSpec> {
        let name = name.replace('-', "_");
        self.modules.iter_mut().find(|m| m.name == name)
    }

    /// Sets a module's state (adding the module if unknown).
    pub fn set_module_state(&mut self, name: &str, state: ModuleState) -> &mut Self {
        match self.module_mut(name) {
            Some(m) => m.state = state,
            None => {
                self.modules
                    .push(ModuleSpec::new(&name.replace('-', "_"), state));
            }
        }
        self
    }

    /// Adds a fault to inject.
    pub fn fault(&mut self, fault: Fault) -> &mut Self {
        self.faults.push(fault);
        self
    }

    /// Each device's group as the simulated kernel assigns it.
    pub fn device_groups(&self) -> BTreeMap<PciAddress, Option<u32>> {
        compute_groups(&self.devices, &self.host)
    }

    /// The groups as `sys/kernel/iommu_groups` will list them (empty when the IOMMU is off).
    pub fn groups(&self) -> BTreeMap<u32, Vec<PciAddress>> {
        if self.host.iommu.is_none() {
            return BTreeMap::new();
        }
        group_members(&self.device_groups())
    }

    /// The hidden kernel state the marker will hold.
    pub fn kernel_state(&self) -> KernelState {
        KernelState {
            arch: self.host.arch,
            release: self.host.release.clone(),
            override_unset_null: self.host.override_unset_null,
            drivers: self.drivers.clone(),
            modules: self.modules.clone(),
            devices: self
                .devices
                .iter()
                .filter(|d| !d.net.is_empty() || !d.block.is_empty())
                .map(|d| {
                    (
                        d.address,
                        DeviceState {
                            net: d.net.clone(),
                            block: d.block.clone(),
                        },
                    )
                })
                .collect(),
            noiommu: self.noiommu,
            faults: self.faults.clone(),
            crash_after_write: self.crash_after_write,
            fsl_mc: self.fsl_mc.clone(),
            iommufd: self.iommufd,
            no_perm_address: false,
            sriov: self.sriov_state(),
        }
    }

    fn sriov_state(&self) -> BTreeMap<PciAddress, crate::sriov::PfState> {
        let h = Hierarchy::new(&self.devices);
        self.devices
            .iter()
            .filter_map(|d| {
                let spec = d.sriov?;
                let vf_net: Vec<Option<crate::spec::NetIf>> = h
                    .devices()
                    .filter(|v| v.physfn == Some(d.address))
                    .map(|v| v.net.first().cloned())
                    .collect();
                let vfs = vf_net.len();
                Some((
                    d.address,
                    crate::sriov::PfState {
                        total: spec.total_vfs,
                        offset: spec.offset,
                        stride: spec.stride,
                        vf_id: vfioctl_core::VendorDevice {
                            vendor: d.id.vendor,
                            device: spec.vf_device,
                        },
                        class: d.class,
                        own_groups: crate::groups::vfs_isolated(&h, &self.host, d.address),
                        group_type: self.host.group_type.clone(),
                        assigned: Vec::new(),
                        links: vec![crate::sriov::VfLink::default(); vfs],
                        vf_net,
                    },
                ))
            })
            .collect()
    }

    /// The PCI driver named `name`, for tweaking.
    pub fn driver_mut(&mut self, name: &str) -> Option<&mut DriverSpec> {
        self.drivers.iter_mut().find(|d| d.name == name)
    }

    /// Writes the tree into a new temporary directory: under `$VFIOCTL_SIM_TMPDIR` if set, else
    /// `/dev/shm` when usable (sysfs is a memory filesystem, and a disk-backed temp dir makes a
    /// 4,096-function tree take a minute instead of a second), else the system temp dir.
    pub fn build_temp(&self) -> io::Result<SimTree> {
        let dir = temp_root()?;
        self.build(dir.path())?;
        Ok(SimTree { dir })
    }

    /// Writes the tree under `root` (which should be empty).
    pub fn build(&self, root: &Path) -> io::Result<()> {
        if root == Path::new("/") {
            // Never let a mistake write a fake kernel over the real one.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "refusing to build a simulated tree at /",
            ));
        }
        let state = self.kernel_state();
        // A boot-time binding to a driver whose code is not in the kernel would leave a dangling
        // `driver` link: a topology bug, reported rather than written.
        for dev in &self.devices {
            if let Some(d) = &dev.driver
                && !state.driver_loaded(d)
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{} is bound to {d}, which is not a loaded PCI driver",
                        dev.address
                    ),
                ));
            }
        }
        let w = Writer { root };
        w.skeleton(&self.host)?;
        if self.iommufd {
            crate::cdev::kernel_files(root, &self.host.release)?;
        }
        w.blacklist(&self.host, &self.modules)?;
        for m in &self.modules {
            if m.state.is_present() {
                module_present(root, &state, &m.name)?;
            }
        }
        let h = Hierarchy::new(&self.devices);
        let groups = if self.host.iommu.is_some() {
            self.device_groups()
        } else {
            BTreeMap::new()
        };
        for dev in h.devices() {
            let primary = dev.address.bus;
            let dir = device_rel_dir(&h, dev.address);
            w.device(&self.host, dev, &dir, primary)?;
            if let Some(Some(g)) = groups.get(&dev.address) {
                w.join_group(&dir, dev.address, *g, &self.host.group_type)?;
            }
        }
        // SR-IOV links need both ends to exist.
        for dev in h.devices() {
            if let Some(pf) = dev.physfn {
                let dir = device_rel_dir(&h, dev.address);
                let pf_dir = device_rel_dir(&h, pf);
                rel_symlink(root, &dir.join("physfn"), &pf_dir)?;
            }
            if dev.sriov.is_some() {
                let dir = device_rel_dir(&h, dev.address);
                let vfs: Vec<&DeviceSpec> = h
                    .devices()
                    .filter(|v| v.physfn == Some(dev.address))
                    .collect();
                for (i, vf) in vfs.iter().enumerate() {
                    let vf_dir = device_rel_dir(&h, vf.address);
                    rel_symlink(root, &dir.join(format!("virtfn{i}")), &vf_dir)?;
                }
            }
        }
        for dev in h.devices() {
            if let Some(drv) = &dev.driver {
                attach(root, &state, dev.address, drv, true)?;
            }
        }
        // After the PCI devices, so fsl-mc groups number after theirs.
        crate::fslmc::build(root, &state)?;
        write_routes(root, &state)?;
        w.proc_mounts(&self.host, &self.devices)?;
        w.lib_modules(&self.host, &self.modules, &self.drivers)?;
        state.save(root)
    }
}
