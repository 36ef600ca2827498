//! What a simulated host is made of: devices, drivers, modules and host-wide knobs.
//!
//! These are plain data with public fields so that tests can take a named topology and tweak one
//! detail (unbind a device, drop an ACS capability, blacklist a module) before building the tree.

use serde::{Deserialize, Serialize};
use vfioctl_core::config::REQ_ACS_FLAGS;
use vfioctl_core::{PciAddress, VendorDevice};

/// CPU architecture of the simulated host; decides a few naming conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// x86-64 (Intel VT-d, `dmar0`).
    X86_64,
    /// arm64 (SMMU).
    Aarch64,
}

/// What kind of PCI function a device is; decides header type and PCIe capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PciKind {
    /// PCI Express endpoint (type 0 header, port type 0).
    Endpoint,
    /// Root-complex integrated endpoint (port type 9).
    RcEndpoint,
    /// Root-complex event collector (port type 10).
    RcEventCollector,
    /// PCIe root port (type 1 header, port type 4).
    RootPort,
    /// Switch upstream port (type 1 header, port type 5).
    Upstream,
    /// Switch downstream port (type 1 header, port type 6).
    Downstream,
    /// PCIe-to-PCI bridge (type 1 header, port type 7).
    PcieToPciBridge,
    /// Conventional PCI function (type 0 header, no PCIe capability): host bridges, chipset
    /// functions, devices behind PCI bridges.
    PciFunction,
    /// Conventional PCI-to-PCI bridge (type 1 header, no PCIe capability).
    PciBridge,
}

impl PciKind {
    /// True for kinds with a type-1 header (and a secondary bus).
    pub fn is_bridge(self) -> bool {
        matches!(
            self,
            Self::RootPort
                | Self::Upstream
                | Self::Downstream
                | Self::PcieToPciBridge
                | Self::PciBridge
        )
    }

    /// The PCIe capability's port-type field, `None` for conventional PCI.
    pub fn pcie_type(self) -> Option<u8> {
        match self {
            Self::Endpoint => Some(0x0),
            Self::RootPort => Some(0x4),
            Self::Upstream => Some(0x5),
            Self::Downstream => Some(0x6),
            Self::PcieToPciBridge => Some(0x7),
            Self::RcEndpoint => Some(0x9),
            Self::RcEventCollector => Some(0xa),
            Self::PciFunction | Self::PciBridge => None,
        }
    }
}

/// The ACS extended capability of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcsSpec {
    /// ACS Capability register (`0x005f` on QEMU's and many Intel root ports).
    pub capability: u16,
    /// ACS Control register as firmware left it; `None` lets the host decide (the kernel's
    /// `pci_enable_acs()` sets `capability & (SV|RR|CR|UF)` when it enables ACS at boot, else 0).
    pub control: Option<u16>,
}

/// How a device gets its IOMMU group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupRule {
    /// Computed by the emulation of the kernel's `pci_device_group()`.
    #[default]
    Computed,
    /// This exact group number, whatever the topology says.
    Fixed(u32),
    /// No group at all (no `iommu_group` link): the arm64 stream-ID clash, or a device the IOMMU
    /// never probed.
    None,
}

/// A network interface a NIC function backs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetIf {
    /// Interface name (`enp3s0`).
    pub name: String,
    /// Operational state is `up` (else `down`).
    pub up: bool,
    /// The interface carries the default route (listed in `proc/net/route`).
    pub default_route: bool,
    /// Directories between the PCI function and `net/` (`virtio2`, `mlx5_core.eth.0`); `None`
    /// for an interface directly under the function.
    #[serde(default)]
    pub via: Option<String>,
}

/// A block device a storage function backs (an NVMe namespace and its partitions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDev {
    /// Controller name under `<dev>/nvme/` (`nvme0`).
    pub controller: String,
    /// Disk name (`nvme0n1`).
    pub disk: String,
    /// Partitions with their mount point, if mounted (`("nvme0n1p2", Some("/"))`).
    pub partitions: Vec<(String, Option<String>)>,
    /// The path from the PCI function to the directory holding the disk, for disks that are not
    /// NVMe namespaces (`usb2/2-1/2-1:1.0/host0/target0:0:0/0:0:0:0/block`); `None`: under
    /// `nvme/<controller>`.
    #[serde(default)]
    pub via: Option<String>,
}

/// SR-IOV capability of a physical function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SriovSpec {
    /// `sriov_totalvfs`.
    pub total_vfs: u32,
    /// `sriov_numvfs` (the VFs themselves are separate devices with `physfn` set).
    pub num_vfs: u32,
    /// First VF Offset: the first VF's routing ID is the PF's plus this.
    #[serde(default = "one")]
    pub offset: u16,
    /// VF Stride: the distance between the routing IDs of consecutive VFs.
    #[serde(default = "one")]
    pub stride: u16,
    /// The VFs' device ID (`sriov_vf_device`); their vendor and class are the PF's.
    #[serde(default)]
    pub vf_device: u16,
}

fn one() -> u16 {
    1
}

/// One PCI function of the simulated host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSpec {
    /// Its address.
    pub address: PciAddress,
    /// Vendor and device ID.
    pub id: VendorDevice,
    /// Subsystem vendor and device ID.
    pub subsystem: VendorDevice,
    /// 24-bit class code.
    pub class: u32,
    /// Revision ID.
    pub revision: u8,
    /// Kind of function.
    pub kind: PciKind,
    /// Header type bit 7: the slot has several functions.
    pub multifunction: bool,
    /// The ACS capability, if the device has one.
    pub acs: Option<AcsSpec>,
    /// Device Capabilities bit 28 (Function Level Reset); only meaningful for PCIe.
    pub flr: bool,
    /// Secondary bus number, for bridges.
    pub secondary_bus: Option<u8>,
    /// Driver bound at boot.
    pub driver: Option<String>,
    /// `driver_override` at boot.
    pub driver_override: Option<String>,
    /// How the IOMMU group is decided.
    pub group: GroupRule,
    /// `numa_node` (-1 for none).
    pub numa_node: i32,
    /// `reset_method` entries; empty means the attribute is absent.
    pub reset_methods: Vec<String>,
    /// Network interfaces (present while a driver is bound).
    pub net: Vec<NetIf>,
    /// Block devices (present while a driver is bound).
    pub block: Vec<BlockDev>,
    /// SR-IOV capability, for physical functions.
    pub sriov: Option<SriovSpec>,
    /// The physical function, for virtual functions.
    pub physfn: Option<PciAddress>,
    /// `boot_vga` value for display devices (`None`: decided by class, 0).
    pub boot_vga: Option<bool>,
}

impl DeviceSpec {
    /// A device with the defaults of its kind: no driver, no ACS, computed group.
    pub fn new(address: PciAddress, id: VendorDevice, class: u32, kind: PciKind) -> Self {
        let pcie = kind.pcie_type().is_some();
        Self {
            address,
            id,
            subsystem: id,
            class,
            revision: 0,
            kind,
            multifunction: false,
            acs: None,
            flr: false,
            secondary_bus: None,
            driver: None,
            driver_override: None,
            group: GroupRule::Computed,
            numa_node: -1,
            // Bridges can reset their secondary bus; FLR-less endpoints rely on the parent's.
            reset_methods: if pcie && !kind.is_bridge() {
                vec!["bus".to_owned()]
            } else {
                Vec::new()
            },
            net: Vec::new(),
            block: Vec::new(),
            sriov: None,
            physfn: None,
            boot_vga: None,
        }
    }

    /// A bridge of `kind` with secondary bus `secondary`.
    pub fn bridge(address: PciAddress, id: VendorDevice, kind: PciKind, secondary: u8) -> Self {
        let mut d = Self::new(address, id, 0x060400, kind);
        d.secondary_bus = Some(secondary);
        d
    }

    /// Sets the driver bound at boot.
    pub fn driver(mut self, driver: &str) -> Self {
        self.driver = Some(driver.to_owned());
        self
    }

    /// Gives the device an ACS capability (control left to the host's boot behaviour).
    pub fn acs(mut self, capability: u16) -> Self {
        self.acs = Some(AcsSpec {
            capability,
            control: None,
        });
        self
    }

    /// Gives the device an ACS capability with an explicit control register.
    pub fn acs_control(mut self, capability: u16, control: u16) -> Self {
        self.acs = Some(AcsSpec {
            capability,
            control: Some(control),
        });
        self
    }

    /// Marks the function as part of a multifunction device.
    pub fn multifunction(mut self) -> Self {
        self.multifunction = true;
        self
    }

    /// Enables Function Level Reset (and lists `flr` first in `reset_method`).
    pub fn flr(mut self) -> Self {
        self.flr = true;
        if !self.reset_methods.iter().any(|m| m == "flr") {
            self.reset_methods.insert(0, "flr".to_owned());
        }
        self
    }

    /// Adds a network interface.
    pub fn net(mut self, name: &str, up: bool, default_route: bool) -> Self {
        self.net.push(NetIf {
            name: name.to_owned(),
            up,
            default_route,
            via: None,
        });
        self
    }

    /// Sets the revision ID.
    pub fn revision(mut self, revision: u8) -> Self {
        self.revision = revision;
        self
    }

    /// Sets the group rule.
    pub fn group(mut self, rule: GroupRule) -> Self {
        self.group = rule;
        self
    }

    /// Header type byte as config space holds it (bit 7: multifunction).
    pub fn header_type(&self) -> u8 {
        let base = if self.kind.is_bridge() { 1 } else { 0 };
        base | if self.multifunction { 0x80 } else { 0 }
    }

    /// The ACS control register as the booted kernel leaves it.
    pub fn acs_control_at_boot(&self, host: &HostSpec) -> Option<u16> {
        self.acs.map(|acs| {
            acs.control.unwrap_or(if host.acs_enabled_at_boot {
                acs.capability & REQ_ACS_FLAGS
            } else {
                0
            })
        })
    }

    /// `boot_vga` value, for display-class devices only.
    pub fn boot_vga_value(&self) -> Option<bool> {
        ((self.class >> 16) == 0x03).then(|| self.boot_vga.unwrap_or(false))
    }
}

/// The state of a kernel module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleState {
    /// Built into the kernel: always present, cannot be loaded or unloaded.
    Builtin,
    /// Loaded now.
    Loaded,
    /// Not loaded; `modprobe` would load it.
    Loadable,
    /// Not loaded; blacklisted in `etc/modprobe.d` so `modprobe` refuses.
    Blacklisted,
    /// Not shipped for this kernel.
    Absent,
}

impl ModuleState {
    /// True when the module's code is in the running kernel.
    pub fn is_present(self) -> bool {
        matches!(self, Self::Builtin | Self::Loaded)
    }
}

/// One entry of a PCI driver's ID table (`struct pci_device_id`); `None` fields match anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMatch {
    /// Vendor ID.
    pub vendor: Option<u16>,
    /// Device ID.
    pub device: Option<u16>,
    /// Class code, compared under `class_mask`.
    pub class: u32,
    /// Mask applied to the device's class before comparing (0: any class).
    pub class_mask: u32,
}

impl IdMatch {
    /// Matches one vendor:device pair.
    pub fn id(vendor: u16, device: u16) -> Self {
        Self {
            vendor: Some(vendor),
            device: Some(device),
            class: 0,
            class_mask: 0,
        }
    }

    /// Matches a class code under a mask.
    pub fn class(class: u32, class_mask: u32) -> Self {
        Self {
            vendor: None,
            device: None,
            class,
            class_mask,
        }
    }

    /// The kernel's `pci_match_one_device()`.
    pub fn matches(&self, id: VendorDevice, class: u32) -> bool {
        self.vendor.is_none_or(|v| v == id.vendor)
            && self.device.is_none_or(|d| d == id.device)
            && (class & self.class_mask) == (self.class & self.class_mask)
    }
}

/// Extra conditions a driver's `probe()` checks after the ID table matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeFilter {
    /// Binds whatever matched.
    #[default]
    Any,
    /// `pcieport`: only root, upstream and downstream ports.
    PciePorts,
    /// `shpchp` (as on arm64 QEMU): only PCIe-to-PCI and conventional PCI bridges.
    PciBridges,
    /// vfio-pci: type-0 headers with an IOMMU group (`vfio_pci_probe()`).
    Vfio,
}

/// A PCI driver the simulated kernel knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverSpec {
    /// Driver name as in `sys/bus/pci/drivers/<name>` (`vfio-pci`).
    pub name: String,
    /// Module providing it (`vfio_pci`).
    pub module: String,
    /// Static ID table.
    pub ids: Vec<IdMatch>,
    /// Dynamic IDs added through `new_id`.
    #[serde(default)]
    pub dynamic_ids: Vec<IdMatch>,
    /// Extra probe conditions.
    #[serde(default)]
    pub probe: ProbeFilter,
    /// The driver has a `sriov_configure` callback: writes to `sriov_numvfs` of a PF it is
    /// bound to can create and remove VFs (else they fail with ENOENT).
    #[serde(default)]
    pub sriov_configure: bool,
}

impl DriverSpec {
    /// A driver provided by `module` with an ID table.
    pub fn new(name: &str, module: &str, ids: Vec<IdMatch>) -> Self {
        Self {
            name: name.to_owned(),
            module: module.to_owned(),
            ids,
            dynamic_ids: Vec::new(),
            probe: ProbeFilter::Any,
            sriov_configure: false,
        }
    }

    /// Sets the probe filter.
    pub fn probe(mut self, probe: ProbeFilter) -> Self {
        self.probe = probe;
        self
    }
}

/// A kernel module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleSpec {
    /// Module name with underscores (`vfio_pci`).
    pub name: String,
    /// Its state.
    pub state: ModuleState,
    /// Modules it needs (loaded first, as `modprobe` does from `modules.dep`).
    pub deps: Vec<String>,
    /// `parameters/<name>` files and their content without the newline.
    pub parameters: Vec<(String, String)>,
    /// Path of the `.ko` under `lib/modules/<release>/` (for `modules.dep`).
    pub path: String,
}

impl ModuleSpec {
    /// A module in `state` with no dependencies or parameters.
    pub fn new(name: &str, state: ModuleState) -> Self {
        Self {
            name: name.to_owned(),
            state,
            deps: Vec::new(),
            parameters: Vec::new(),
            path: format!("kernel/drivers/misc/{}.ko", name.replace('_', "-")),
        }
    }
}

/// Host-wide facts and knobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSpec {
    /// Architecture.
    pub arch: Arch,
    /// `uname -r`.
    pub release: String,
    /// `proc/cmdline` without the newline.
    pub cmdline: String,
    /// Name under `sys/class/iommu` (`dmar0`); `None` when the IOMMU is off.
    pub iommu: Option<String>,
    /// `sys/kernel/iommu_groups/N/type` (`DMA` or `DMA-FQ`).
    pub group_type: String,
    /// The kernel enables ACS on devices that have it while enumerating (x86, arm64 ACPI). False
    /// emulates arm64 device-tree boots, where `pci_request_acs()` comes too late and every port
    /// keeps ACS control 0.
    pub acs_enabled_at_boot: bool,
    /// What `driver_override` reads when unset: `(null)` on older kernels, empty on newer.
    pub override_unset_null: bool,
    /// Extra lines of `proc/mounts` besides the ones for block devices.
    pub extra_mounts: Vec<String>,
    /// Files under `etc/modprobe.d/` (name, content).
    pub modprobe_d: Vec<(String, String)>,
}

impl HostSpec {
    /// What `driver_override` reads when unset.
    pub fn override_unset_text(&self) -> &'static str {
        if self.override_unset_null {
            "(null)\n"
        } else {
            "\n"
        }
    }
}

/// One DPAA2 container (DPRC) and the objects the MC firmware has put in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Name (`dprc.2`).
    pub name: String,
    /// The container holding it; `None` for the root container.
    pub parent: Option<String>,
    /// Objects inside (`dpni.1`, `dpio.1`, ...), child containers excluded.
    pub objects: Vec<String>,
    /// The driver holding the container at boot (`fsl_mc_dprc` for the host's, `None` for a
    /// restool-made one).
    pub driver: Option<String>,
    /// Plugged containers match their driver's table; an unplugged one (as restool creates it)
    /// binds only through `driver_override`.
    pub plugged: bool,
}

/// The fsl-mc bus of a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FslMcSpec {
    /// The MC's platform device directory, relative to the root.
    pub base: String,
    /// Every container.
    pub containers: Vec<ContainerSpec>,
    /// What the MC firmware knows beyond the containers (restool's view).
    #[serde(default)]
    pub mc: crate::restool::McState,
}
