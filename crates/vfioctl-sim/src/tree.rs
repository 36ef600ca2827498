//! Writing a simulated host into a directory: the sysfs tree, `/proc`, `/dev`, `/lib/modules`,
//! `/etc/modprobe.d` and the marker.
//!
//! The layout follows the kernel's: real directories under `sys/devices/pci<domain>:<bus>/` nested
//! as bridges nest, and relative symlinks everywhere else (`sys/bus/pci/devices/*`, `driver`,
//! `iommu_group`, `sys/class/*`), so code that resolves links lexically works as on a real host.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};

use vfioctl_core::PciAddress;

use crate::cfgspace::config_bytes;
use crate::groups::{Hierarchy, compute_groups, group_members};
use crate::snapshot::{Snapshot, snapshot};
use crate::spec::{DeviceSpec, DriverSpec, HostSpec, IdMatch, ModuleSpec, ModuleState};
use crate::state::{DeviceState, Fault, KernelState, SIM_DIR};

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
    pub fsl_mc: Option<crate::fslmc::FslMcSpec>,
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

    /// The simulated kernel serving this tree.
    pub fn kernel(&self) -> io::Result<crate::SimKernel> {
        crate::SimKernel::open(self.root())
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

fn temp_root() -> io::Result<tempfile::TempDir> {
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
        }
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

/// The device's real directory relative to the root:
/// `sys/devices/pci<domain>:<root bus>/<bridge>/.../<address>`.
pub(crate) fn device_rel_dir(h: &Hierarchy<'_>, address: PciAddress) -> PathBuf {
    let mut chain = h.ancestors(&address);
    chain.reverse();
    let root_bus = chain.first().map_or(address.bus, |a| a.bus);
    let mut dir = PathBuf::from(format!(
        "sys/devices/pci{:04x}:{root_bus:02x}",
        address.domain
    ));
    for a in chain {
        dir.push(a.to_string());
    }
    dir.push(address.to_string());
    dir
}

/// Creates a symlink at `link` (relative to `root`) pointing at `target` (relative to `root`) with
/// a relative target, as sysfs links are.
pub(crate) fn rel_symlink(root: &Path, link: &Path, target: &Path) -> io::Result<()> {
    let from: Vec<Component<'_>> = link
        .parent()
        .map_or(Vec::new(), |p| p.components().collect());
    let to: Vec<Component<'_>> = target.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for c in &to[common..] {
        rel.push(c.as_os_str());
    }
    let full = root.join(link);
    if let Some(parent) = full.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::symlink_metadata(&full) {
        Ok(_) => fs::remove_file(&full)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    symlink(rel, full)
}

/// Writes `content` to `rel` under `root`, creating parent directories.
pub(crate) fn put(root: &Path, rel: impl AsRef<Path>, content: impl AsRef<[u8]>) -> io::Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, content)
}

/// Removes a file or link if it exists.
pub(crate) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes a directory tree if it exists.
pub(crate) fn remove_dir_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The kernel's `modalias` for a PCI function.
pub(crate) fn modalias(dev: &DeviceSpec) -> String {
    format!(
        "pci:v{:08X}d{:08X}sv{:08X}sd{:08X}bc{:02X}sc{:02X}i{:02X}",
        dev.id.vendor,
        dev.id.device,
        dev.subsystem.vendor,
        dev.subsystem.device,
        (dev.class >> 16) as u8,
        (dev.class >> 8) as u8,
        dev.class as u8
    )
}

fn modules_alias_line(m: &IdMatch, module: &str) -> String {
    let opt = |v: Option<u16>| v.map_or("*".to_owned(), |v| format!("{v:08X}"));
    let byte = |shift: u32| {
        if (m.class_mask >> shift) & 0xff == 0xff {
            format!("{:02X}", (m.class >> shift) as u8)
        } else {
            "*".to_owned()
        }
    };
    format!(
        "alias pci:v{}d{}sv*sd*bc{}sc{}i{} {module}\n",
        opt(m.vendor),
        opt(m.device),
        byte(16),
        byte(8),
        byte(0)
    )
}

/// The uevent text of a PCI function.
pub(crate) fn uevent(
    address: PciAddress,
    vendor: u16,
    device: u16,
    sub: (u16, u16),
    class: u32,
    modalias: &str,
    driver: Option<&str>,
) -> String {
    let mut s = String::new();
    if let Some(d) = driver {
        s.push_str(&format!("DRIVER={d}\n"));
    }
    s.push_str(&format!(
        "PCI_CLASS={class:X}\nPCI_ID={vendor:04X}:{device:04X}\nPCI_SUBSYS_ID={:04X}:{:04X}\nPCI_SLOT_NAME={address}\nMODALIAS={modalias}\n",
        sub.0, sub.1
    ));
    s
}

struct Writer<'a> {
    root: &'a Path,
}

impl Writer<'_> {
    fn skeleton(&self, host: &HostSpec) -> io::Result<()> {
        let r = self.root;
        for d in [
            "sys/bus/pci/devices",
            "sys/bus/pci/drivers",
            "sys/bus/pci/slots",
            "sys/kernel/iommu_groups",
            "sys/class/iommu",
            "sys/class/net",
            "sys/class/block",
            "sys/module",
            "sys/devices/virtual/net/lo",
            "dev",
            "etc/modprobe.d",
            "proc/net",
        ] {
            fs::create_dir_all(r.join(d))?;
        }
        fs::create_dir_all(r.join(SIM_DIR))?;
        put(r, "sys/bus/pci/drivers_probe", "")?;
        put(r, "sys/bus/pci/drivers_autoprobe", "1\n")?;
        put(r, "sys/bus/pci/rescan", "")?;
        put(r, "sys/bus/pci/resource_alignment", "\n")?;
        put(r, "sys/devices/virtual/net/lo/operstate", "unknown\n")?;
        rel_symlink(
            r,
            Path::new("sys/class/net/lo"),
            Path::new("sys/devices/virtual/net/lo"),
        )?;
        if let Some(name) = &host.iommu {
            let dir = format!("sys/devices/virtual/iommu/{name}");
            put(r, format!("{dir}/uevent"), "")?;
            rel_symlink(r, &Path::new("sys/class/iommu").join(name), Path::new(&dir))?;
        }
        // arm64 device-tree boots leave the raw blob; ACPI boots have sys/firmware/acpi.
        if host.arch == crate::spec::Arch::Aarch64 && !host.acs_enabled_at_boot {
            put(r, "sys/firmware/fdt", "")?;
        } else {
            fs::create_dir_all(r.join("sys/firmware/acpi/tables"))?;
        }
        put(r, "proc/cmdline", format!("{}\n", host.cmdline))?;
        put(
            r,
            "proc/sys/kernel/osrelease",
            format!("{}\n", host.release),
        )?;
        for (name, content) in &host.modprobe_d {
            put(r, Path::new("etc/modprobe.d").join(name), content)?;
        }
        Ok(())
    }

    /// `blacklist` lines for blacklisted modules no modprobe.d file mentions yet, so the files
    /// agree with the marker.
    fn blacklist(&self, host: &HostSpec, modules: &[ModuleSpec]) -> io::Result<()> {
        let lines: String = modules
            .iter()
            .filter(|m| m.state == ModuleState::Blacklisted)
            .filter(|m| {
                !host.modprobe_d.iter().any(|(_, c)| {
                    c.lines()
                        .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["blacklist", &m.name])
                })
            })
            .map(|m| format!("blacklist {}\n", m.name))
            .collect();
        if lines.is_empty() {
            return Ok(());
        }
        put(
            self.root,
            "etc/modprobe.d/blacklist-vfioctl-sim.conf",
            lines,
        )
    }

    fn device(&self, host: &HostSpec, dev: &DeviceSpec, dir: &Path, primary: u8) -> io::Result<()> {
        let r = self.root;
        let abs = r.join(dir);
        fs::create_dir_all(&abs)?;
        let hex16 = |v: u16| format!("0x{v:04x}\n");
        let alias = modalias(dev);
        let files: [(&str, String); 15] = [
            ("vendor", hex16(dev.id.vendor)),
            ("device", hex16(dev.id.device)),
            ("subsystem_vendor", hex16(dev.subsystem.vendor)),
            ("subsystem_device", hex16(dev.subsystem.device)),
            ("class", format!("0x{:06x}\n", dev.class)),
            ("revision", format!("0x{:02x}\n", dev.revision)),
            (
                "driver_override",
                match &dev.driver_override {
                    Some(o) => format!("{o}\n"),
                    None => host.override_unset_text().to_owned(),
                },
            ),
            ("numa_node", format!("{}\n", dev.numa_node)),
            ("power_state", "D0\n".to_owned()),
            ("d3cold_allowed", "1\n".to_owned()),
            ("enable", "0\n".to_owned()),
            ("modalias", format!("{alias}\n")),
            (
                "uevent",
                uevent(
                    dev.address,
                    dev.id.vendor,
                    dev.id.device,
                    (dev.subsystem.vendor, dev.subsystem.device),
                    dev.class,
                    &alias,
                    None,
                ),
            ),
            ("remove", String::new()),
            ("rescan", String::new()),
        ];
        for (name, content) in files {
            fs::write(abs.join(name), content)?;
        }
        let acs_ctrl = dev.acs_control_at_boot(host);
        fs::write(abs.join("config"), config_bytes(dev, acs_ctrl, primary))?;
        if !dev.reset_methods.is_empty() {
            fs::write(
                abs.join("reset_method"),
                format!("{}\n", dev.reset_methods.join(" ")),
            )?;
            fs::write(abs.join("reset"), "")?;
        }
        if let Some(vga) = dev.boot_vga_value() {
            fs::write(abs.join("boot_vga"), if vga { "1\n" } else { "0\n" })?;
        }
        if let Some(sec) = dev.secondary_bus {
            fs::create_dir_all(
                abs.join("pci_bus")
                    .join(format!("{:04x}:{sec:02x}", dev.address.domain)),
            )?;
        }
        if let Some(sriov) = dev.sriov {
            fs::write(abs.join("sriov_totalvfs"), format!("{}\n", sriov.total_vfs))?;
            fs::write(abs.join("sriov_numvfs"), format!("{}\n", sriov.num_vfs))?;
            fs::write(abs.join("sriov_drivers_autoprobe"), "1\n")?;
        }
        rel_symlink(r, &dir.join("subsystem"), Path::new("sys/bus/pci"))?;
        rel_symlink(
            r,
            &Path::new("sys/bus/pci/devices").join(dev.address.to_string()),
            dir,
        )
    }

    fn join_group(&self, dir: &Path, address: PciAddress, group: u32, ty: &str) -> io::Result<()> {
        let r = self.root;
        let gdir = PathBuf::from(format!("sys/kernel/iommu_groups/{group}"));
        if !r.join(&gdir).join("type").exists() {
            put(r, gdir.join("type"), format!("{ty}\n"))?;
            put(r, gdir.join("reserved_regions"), "")?;
            fs::create_dir_all(r.join(&gdir).join("devices"))?;
        }
        rel_symlink(r, &dir.join("iommu_group"), &gdir)?;
        rel_symlink(r, &gdir.join("devices").join(address.to_string()), dir)
    }

    fn proc_mounts(&self, _host: &HostSpec, devices: &[DeviceSpec]) -> io::Result<()> {
        let mut text = String::new();
        for dev in devices {
            for b in &dev.block {
                for (part, mount) in &b.partitions {
                    if let Some(m) = mount {
                        let fs = if m == "/boot/efi" { "vfat" } else { "ext4" };
                        text.push_str(&format!("/dev/{part} {m} {fs} rw,relatime 0 0\n"));
                    }
                }
            }
        }
        text.push_str("proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n");
        text.push_str("sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n");
        text.push_str("devtmpfs /dev devtmpfs rw,nosuid,size=4096k,mode=755 0 0\n");
        for line in &_host.extra_mounts {
            text.push_str(line);
            text.push('\n');
        }
        put(self.root, "proc/mounts", text)
    }

    fn lib_modules(
        &self,
        host: &HostSpec,
        modules: &[ModuleSpec],
        drivers: &[DriverSpec],
    ) -> io::Result<()> {
        let base = PathBuf::from(format!("lib/modules/{}", host.release));
        let by_name: BTreeMap<&str, &ModuleSpec> =
            modules.iter().map(|m| (m.name.as_str(), m)).collect();
        let mut dep = String::new();
        let mut builtin = String::new();
        for m in modules {
            match m.state {
                ModuleState::Absent => {}
                ModuleState::Builtin => builtin.push_str(&format!("{}\n", m.path)),
                _ => {
                    let deps: Vec<&str> = m
                        .deps
                        .iter()
                        .filter_map(|d| by_name.get(d.as_str()).map(|m| m.path.as_str()))
                        .collect();
                    dep.push_str(&format!("{}: {}\n", m.path, deps.join(" ")));
                }
            }
        }
        let mut alias = String::from("# Aliases extracted from modules themselves.\n");
        for d in drivers {
            if by_name
                .get(d.module.as_str())
                .is_some_and(|m| m.state != ModuleState::Absent)
            {
                for id in &d.ids {
                    alias.push_str(&modules_alias_line(id, &d.module));
                }
            }
        }
        put(self.root, base.join("modules.dep"), dep)?;
        put(self.root, base.join("modules.builtin"), builtin)?;
        put(self.root, base.join("modules.alias"), alias)
    }
}

/// Makes a module's code present: `sys/module/<m>`, its drivers' directories, and the device
/// nodes it creates (`dev/vfio/vfio` for vfio).
pub(crate) fn module_present(root: &Path, state: &KernelState, name: &str) -> io::Result<()> {
    let Some(m) = state.module(name) else {
        return Ok(());
    };
    let mdir = PathBuf::from("sys/module").join(&m.name);
    // Built-in modules show in sys/module only when they have parameters.
    if m.state != ModuleState::Builtin || !m.parameters.is_empty() {
        fs::create_dir_all(root.join(&mdir))?;
        if m.state != ModuleState::Builtin {
            put(root, mdir.join("initstate"), "live\n")?;
            put(root, mdir.join("refcnt"), "0\n")?;
        }
        for (p, v) in &m.parameters {
            put(root, mdir.join("parameters").join(p), format!("{v}\n"))?;
        }
    }
    for d in state.drivers.iter().filter(|d| d.module == m.name) {
        let ddir = PathBuf::from("sys/bus/pci/drivers").join(&d.name);
        for f in ["bind", "unbind", "new_id", "remove_id", "uevent"] {
            put(root, ddir.join(f), "")?;
        }
        if m.state != ModuleState::Builtin {
            rel_symlink(root, &ddir.join("module"), &mdir)?;
            rel_symlink(
                root,
                &mdir.join("drivers").join(format!("pci:{}", d.name)),
                &ddir,
            )?;
        }
    }
    if state.fsl_mc.is_some() {
        for (d, _) in crate::fslmc::DRIVERS.iter().filter(|(_, dm)| *dm == m.name) {
            crate::fslmc::driver_dir(root, d)?;
        }
    }
    if m.name == "vfio" {
        put(root, "dev/vfio/vfio", "")?;
    }
    Ok(())
}

/// Resolves `sys/bus/pci/devices/<address>` to the device's directory relative to the root.
pub(crate) fn device_dir(root: &Path, address: PciAddress) -> io::Result<PathBuf> {
    let link = PathBuf::from("sys/bus/pci/devices").join(address.to_string());
    let target = fs::read_link(root.join(&link))?;
    let mut parts: Vec<std::ffi::OsString> = link
        .parent()
        .map(|p| p.iter().map(|c| c.to_owned()).collect())
        .unwrap_or_default();
    for c in target.components() {
        match c {
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(n) => parts.push(n.to_owned()),
            _ => {}
        }
    }
    Ok(parts.iter().collect())
}

fn read_hex(path: &Path) -> u32 {
    fs::read_to_string(path)
        .ok()
        .and_then(|t| vfioctl_core::ids::parse_sysfs_hex(&t))
        .unwrap_or(0)
}

/// Binds `driver` to the device in the tree: links both ways, `enable`, `uevent`, and what the
/// driver creates (network interfaces, block devices, `dev/vfio/<group>`).
pub(crate) fn attach(
    root: &Path,
    state: &KernelState,
    address: PciAddress,
    driver: &str,
    vfio_node: bool,
) -> io::Result<()> {
    let dir = device_dir(root, address)?;
    let ddir = PathBuf::from("sys/bus/pci/drivers").join(driver);
    rel_symlink(root, &dir.join("driver"), &ddir)?;
    rel_symlink(root, &ddir.join(address.to_string()), &dir)?;
    fs::write(root.join(&dir).join("enable"), "1\n")?;
    rewrite_uevent(root, &dir, address, Some(driver))?;
    if driver == "vfio-pci" {
        if vfio_node && let Some(g) = group_of(root, &dir) {
            put(root, format!("dev/vfio/{g}"), "")?;
        }
        return Ok(());
    }
    if driver == "pci-stub" {
        return Ok(());
    }
    let Some(hidden) = state.devices.get(&address) else {
        return Ok(());
    };
    for n in &hidden.net {
        let ndir = dir.join("net").join(&n.name);
        put(
            root,
            ndir.join("operstate"),
            if n.up { "up\n" } else { "down\n" },
        )?;
        put(root, ndir.join("address"), mac(address))?;
        rel_symlink(root, &Path::new("sys/class/net").join(&n.name), &ndir)?;
    }
    for b in &hidden.block {
        let cdir = dir.join("nvme").join(&b.controller);
        let disk = cdir.join(&b.disk);
        put(root, cdir.join("state"), "live\n")?;
        put(root, disk.join("dev"), "259:0\n")?;
        rel_symlink(
            root,
            &Path::new("sys/class/nvme").join(&b.controller),
            &cdir,
        )?;
        rel_symlink(root, &Path::new("sys/class/block").join(&b.disk), &disk)?;
        for (i, (part, _)) in b.partitions.iter().enumerate() {
            let pdir = disk.join(part);
            put(root, pdir.join("partition"), format!("{}\n", i + 1))?;
            put(root, pdir.join("dev"), format!("259:{}\n", i + 1))?;
            rel_symlink(root, &Path::new("sys/class/block").join(part), &pdir)?;
        }
    }
    Ok(())
}

/// Unbinds the device's driver in the tree: the reverse of [`attach`].
pub(crate) fn detach(
    root: &Path,
    state: &KernelState,
    address: PciAddress,
    driver: &str,
) -> io::Result<()> {
    let dir = device_dir(root, address)?;
    remove_if_exists(&root.join(&dir).join("driver"))?;
    remove_if_exists(
        &root
            .join("sys/bus/pci/drivers")
            .join(driver)
            .join(address.to_string()),
    )?;
    fs::write(root.join(&dir).join("enable"), "0\n")?;
    rewrite_uevent(root, &dir, address, None)?;
    if let Some(hidden) = state.devices.get(&address) {
        for n in &hidden.net {
            remove_if_exists(&root.join("sys/class/net").join(&n.name))?;
        }
        for b in &hidden.block {
            remove_if_exists(&root.join("sys/class/nvme").join(&b.controller))?;
            remove_if_exists(&root.join("sys/class/block").join(&b.disk))?;
            for (part, _) in &b.partitions {
                remove_if_exists(&root.join("sys/class/block").join(part))?;
            }
        }
    }
    remove_dir_if_exists(&root.join(&dir).join("net"))?;
    remove_dir_if_exists(&root.join(&dir).join("nvme"))?;
    Ok(())
}

/// The device's IOMMU group number, read from its `iommu_group` link.
pub(crate) fn group_of(root: &Path, dir: &Path) -> Option<u32> {
    fs::read_link(root.join(dir).join("iommu_group"))
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}

fn rewrite_uevent(
    root: &Path,
    dir: &Path,
    address: PciAddress,
    driver: Option<&str>,
) -> io::Result<()> {
    let d = root.join(dir);
    let alias = fs::read_to_string(d.join("modalias")).unwrap_or_default();
    let text = uevent(
        address,
        read_hex(&d.join("vendor")) as u16,
        read_hex(&d.join("device")) as u16,
        (
            read_hex(&d.join("subsystem_vendor")) as u16,
            read_hex(&d.join("subsystem_device")) as u16,
        ),
        read_hex(&d.join("class")),
        alias.trim_end(),
        driver,
    );
    fs::write(d.join("uevent"), text)
}

/// A stable, locally administered MAC derived from the address.
fn mac(address: PciAddress) -> String {
    format!(
        "52:54:{:02x}:{:02x}:{:02x}:{:02x}\n",
        address.domain as u8, address.bus, address.device, address.function
    )
}

/// Rewrites `proc/net/route` from the interfaces that exist now: an interface that vanished
/// (its NIC was unbound) takes its routes with it, as in the kernel.
pub(crate) fn write_routes(root: &Path, state: &KernelState) -> io::Result<()> {
    let mut text = String::from(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n",
    );
    for hidden in state.devices.values() {
        for n in hidden.net.iter().filter(|n| n.up) {
            if fs::symlink_metadata(root.join("sys/class/net").join(&n.name)).is_err() {
                continue;
            }
            if n.default_route {
                text.push_str(&format!(
                    "{}\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
                    n.name
                ));
            }
            text.push_str(&format!(
                "{}\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n",
                n.name
            ));
        }
    }
    put(root, "proc/net/route", text)
}
