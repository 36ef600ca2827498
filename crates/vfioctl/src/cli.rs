//! Command-line definitions. Help text lives in the doc comments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::exit::EXIT_CODES_HELP;

/// Safe, explainable and reversible VFIO passthrough of PCI devices and DPAA2 containers.
///
/// vfioctl lists PCI functions and their IOMMU groups, explains why a group is shared, binds whole
/// groups to vfio-pci and gives every device back to the driver it had before.
#[derive(Debug, Parser)]
// The usage lines name `vfioctl` whatever the file is called (the test binary included).
#[command(name = "vfioctl", bin_name = "vfioctl", version, after_long_help = EXIT_CODES_HELP, after_help = EXIT_CODES_HELP)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Work on the sysfs, /proc, /dev and /run under DIR instead of / (like lspci's
    /// -O sysfs.path=); for simulated trees, chroots and tests.
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Print machine-readable JSON: every document carries "version": 1, and fields are only ever
    /// added, never renamed.
    #[arg(long, global = true)]
    pub json: bool,
    /// The pci.ids database for names (default: /usr/share/misc/pci.ids, then
    /// /usr/share/hwdata/pci.ids; numeric IDs when none is found).
    #[arg(long, global = true, value_name = "PATH")]
    pub pci_ids: Option<PathBuf>,
    /// Say more: list adds subsystem, IOMMU group, NUMA node, power state and reset methods
    /// under each device; groups the ACS of each member; doctor the file each finding read;
    /// bind, apply and run the sysfs writes; boot install each file; groups --predict every fact.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Say only what was asked for: no notes.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// When to colour the output (JSON is never coloured).
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub color: crate::term::ColorWhen,
    /// Read VM definitions from DIR instead of ROOT/etc/vfioctl/vms (ROOT: --root); DIR must
    /// exist.
    #[arg(long, global = true, value_name = "DIR")]
    pub config: Option<PathBuf>,
}

/// The commands.
#[derive(Debug, Subcommand)]
// Only the subcommand that runs is built: building all of them was a third of a start-up. A
// deferred command's arguments struct is applied after its variant, so the structs below carry
// plain comments: a doc comment would become the command's about, over the variant's.
#[command(defer = true)]
pub(crate) enum Command {
    /// List PCI functions with their driver, driver_override and IOMMU group.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show every IOMMU group, its members, and why it holds more than one device.
    #[command(visible_alias = "iommu-groups")]
    Groups(GroupsArgs),
    /// Show everything about one device: identity, driver, group, parents, power, reset, users.
    Show(ShowArgs),
    /// Bind devices, a whole IOMMU group at a time, to vfio-pci.
    #[command(visible_alias = "detach")]
    Bind(BindArgs),
    /// Give devices back to the drivers they had before vfioctl bound them.
    #[command(visible_alias = "reattach")]
    Restore(RestoreArgs),
    /// Give back every device of an interrupted or finished run (restore --all).
    Recover(RecoverArgs),
    /// Ask the kernel whether IOMMU groups are usable by a VM now (VFIO_GROUP_GET_STATUS).
    Check(CheckArgs),
    /// Run as a libvirt qemu hook or a Proxmox VE hookscript (installed under
    /// /usr/share/vfioctl/hooks).
    Hook(HookArgs),
    /// Write one sysfs attribute under --root (used by vfioctl itself for unbinds that may hang).
    #[command(name = "__write-attr", hide = true)]
    WriteAttr(WriteAttrArgs),
    /// Write the man pages and shell completions (for packaging).
    #[command(hide = true)]
    GenerateDocs(GenerateDocsArgs),
    /// Find what will make passthrough fail (IOMMU, interrupts, modules, /dev/vfio, power,
    /// reset, groups, risky settings, known devices), host-wide or for the named devices.
    Doctor(DoctorArgs),
    /// Print the QEMU arguments that pass devices (whole IOMMU groups) to a guest.
    QemuArgs(QemuArgs),
    /// Print libvirt hostdev elements for devices (whole IOMMU groups).
    LibvirtXml(LibvirtArgs),
    /// VM definitions (/etc/vfioctl/vms/NAME.toml): list, check against this host, QEMU command
    /// line.
    Vm(VmArgs),
    #[command(flatten)]
    Definitions(DefinitionsCommand),
    /// Every root port, switch downstream port and physical slot: would a card placed there get
    /// an IOMMU group of its own, and if not, which bridge breaks isolation.
    Slots(SlotsArgs),
    /// Early binding: a udev rule and initramfs files that take the devices of boot VMs for
    /// vfio-pci before any host driver probes them (install, remove, status).
    Boot(BootArgs),
    /// DPAA2 containers made for VMs with restool: create, destroy.
    Dpaa2(crate::cmd::dpaa2::Dpaa2Args),
    /// SR-IOV virtual functions: list, create (sriov_numvfs), set (MAC, VLAN, trust, spoofchk).
    Vf(crate::cmd::vf::VfArgs),
    /// This node's passthrough-ready IOMMU groups for Proxmox VE mappings, OpenStack Nova or
    /// KubeVirt; --check FILE says which entries of an earlier export no longer match.
    Export(crate::cmd::export::ExportArgs),
    #[command(flatten)]
    Plugin(PluginCommand),
}

// The commands below have an option named like a global one (`--config`), which must be theirs
// before clap copies the global options into them: a deferred command gets its own options only
// after that copy, and the two would clash. So they are built with the command line, and sit
// in the list above where they were.

/// Commands on the VM definitions (`--config DIR`).
#[derive(Debug, Subcommand)]
pub(crate) enum DefinitionsCommand {
    /// Bind the devices of every VM marked `boot = true` (idempotent; vfioctl-apply.service runs
    /// it at boot).
    Apply(ApplyArgs),
    /// Compare every VM's devices with the host: bound, not bound, drifted, missing.
    Status(StatusArgs),
    /// Bind a VM's devices, run its QEMU, and give the devices back when QEMU exits.
    Run(RunArgs),
}

/// The node agent of clusters.
#[derive(Debug, Subcommand)]
pub(crate) enum PluginCommand {
    /// A Kubernetes device plugin (kubelet API v1beta1) that binds and advertises whole IOMMU
    /// groups, and gives them back at SIGTERM.
    DevicePlugin(crate::cmd::device_plugin::DevicePluginArgs),
}

// `vfioctl boot`.
#[derive(Debug, Args)]
pub(crate) struct BootArgs {
    #[command(subcommand)]
    pub command: BootCommand,
}

/// `vfioctl boot ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum BootCommand {
    /// Write the udev rule (address and identity of every device of a VM with boot = true), put
    /// it and the vfio modules into the initramfs, and regenerate the initramfs.
    Install(BootInstallArgs),
    /// Remove every file `boot install` wrote, and regenerate the initramfs.
    Remove(BootRemoveArgs),
    /// For each boot device: on vfio-pci or not, whether a host driver bound it this boot,
    /// whether its identity drifted; and whether the rule matches the definitions.
    Status(StatusArgs),
}

/// `vfioctl boot install`.
#[derive(Debug, Args)]
pub(crate) struct BootInstallArgs {
    /// Print every file and command, and change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// The initramfs generator: auto (the one installed), initramfs-tools, dracut, mkinitcpio,
    /// or none (only the udev rule).
    #[arg(long, value_name = "GENERATOR", default_value = "auto")]
    pub initramfs: vfioctl_core::boot::initramfs::GeneratorChoice,
    /// Do not regenerate the initramfs; print the command instead.
    #[arg(long)]
    pub no_regenerate: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// `vfioctl boot remove`.
#[derive(Debug, Args)]
pub(crate) struct BootRemoveArgs {
    /// Print what would be removed, and change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Do not regenerate the initramfs; print the command instead.
    #[arg(long)]
    pub no_regenerate: bool,
}

/// Where VM definitions are read from.
#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// Read VM definitions from DIR instead of ROOT/etc/vfioctl/vms (ROOT: --root); DIR must
    /// exist. Also accepted before the command, like --root.
    #[arg(long, value_name = "DIR")]
    pub config: Option<PathBuf>,
}

// `vfioctl vm`.
#[derive(Debug, Args)]
pub(crate) struct VmArgs {
    #[command(subcommand)]
    pub command: VmCommand,
}

/// `vfioctl vm ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum VmCommand {
    /// List the VM definitions, their devices, and whether each file is valid.
    #[command(visible_alias = "ls")]
    List(VmListArgs),
    /// Check a VM against this host: device identities, IOMMU groups, safety refusals, QEMU.
    Check(VmNameArgs),
    /// Print the VM's full QEMU command line (--json: an argv array).
    QemuArgs(VmNameArgs),
}

/// `vfioctl vm list`.
#[derive(Debug, Args)]
pub(crate) struct VmListArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// `vfioctl vm check|qemu-args <name>`.
#[derive(Debug, Args)]
pub(crate) struct VmNameArgs {
    /// The VM (the stem of its .toml file).
    pub name: String,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// `vfioctl apply`.
#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    /// Print what would be bound, and change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Seconds to wait for a driver to let go of a device before giving up.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// `vfioctl status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// `vfioctl run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The VM (the stem of its .toml file).
    pub name: String,
    /// Print what would be bound and the exact QEMU command line, and change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Seconds to wait for a driver to let go of a device before giving up.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

// `vfioctl recover`.
#[derive(Debug, Args)]
pub(crate) struct RecoverArgs {
    /// Print what would be done, and change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Seconds to wait for an unbind still stuck in the kernel (and for a driver to let go).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Give back even devices whose QEMU is still running.
    #[arg(long)]
    pub force: bool,
}

// `vfioctl list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only the device at this address (DDDD:BB:DD.F, or BB:DD.F for domain 0); repeat for
    /// more.
    #[arg(short = 's', long = "slot", value_name = "ADDRESS")]
    pub slot: Vec<String>,
    /// Only devices with these IDs, as lspci -d takes them: 10de, 10de:*, 10de:2684, :2684.
    #[arg(short = 'd', long = "id", value_name = "VENDOR[:DEVICE]")]
    pub id: Option<String>,
    /// Only devices bound to this driver ("none" for devices without one).
    #[arg(long, value_name = "NAME")]
    pub driver: Option<String>,
    /// Show the bus hierarchy as a tree.
    #[arg(short, long)]
    pub tree: bool,
    /// Under each device, as lspci -k: the kernel driver in use, the kernel modules whose
    /// aliases match its modalias (the likely driver to give it back to), and its VFIO device
    /// file (/dev/vfio/devices/vfioN) when it has one.
    #[arg(short = 'k', long = "kernel")]
    pub kernel: bool,
}

// `vfioctl groups`.
#[derive(Debug, Args)]
pub(crate) struct GroupsArgs {
    /// Only the groups of these devices or group numbers.
    #[arg(value_name = "DEVICE|GROUP")]
    pub filter: Vec<String>,
    /// Predict the groups the kernel would form, from config space and topology alone (the
    /// kernel's pci_device_group() walk with its ACS and DMA-alias quirks). Works with the IOMMU
    /// off; with it on, also lists where the kernel's groups differ and why that may be.
    #[arg(long)]
    pub predict: bool,
    /// The kernel release whose behaviour --predict models (default: the running kernel's, from
    /// ROOT/proc/sys/kernel/osrelease).
    #[arg(long, value_name = "X.Y", requires = "predict")]
    pub kernel: Option<String>,
    /// Wrap the reason and verdict lines to N columns (0: do not wrap). Default, as ls chooses:
    /// $COLUMNS, then the terminal's width, then 80.
    #[arg(long, value_name = "N")]
    pub width: Option<usize>,
}

// `vfioctl slots`.
#[derive(Debug, Args)]
pub(crate) struct SlotsArgs {
    /// The kernel release whose behaviour is modelled (default: the running kernel's).
    #[arg(long, value_name = "X.Y")]
    pub kernel: Option<String>,
}

// `vfioctl show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The device (DDDD:BB:DD.F, BB:DD.F, or a network interface name).
    pub device: String,
}

// `vfioctl bind`.
#[derive(Debug, Args)]
pub(crate) struct BindArgs {
    /// Devices: addresses (0001:03:00.0), vendor:device IDs (every match), or interface names.
    #[arg(required = true, value_name = "DEVICE")]
    pub devices: Vec<String>,
    /// Bind only the named functions, not the rest of their IOMMU groups (the group stays
    /// unusable by a VM until the rest follow).
    #[arg(long)]
    pub only: bool,
    /// Override the host-safety refusals (mounted disks, networks in use, the console). Never
    /// splits a group: that needs --only.
    #[arg(long)]
    pub force: bool,
    /// Print the plan and the exact sysfs writes, and change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Give /dev/vfio/GROUP to this user (the one that runs QEMU).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Seconds to wait for a driver to let go of a device before giving up.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    /// Record who the devices were bound for (a VM name) in the journal.
    #[arg(long, value_name = "NAME", hide = true)]
    pub owner: Option<String>,
}

// `vfioctl restore`.
#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// Devices to give back (their journaled group members go with them).
    #[arg(value_name = "DEVICE")]
    pub devices: Vec<String>,
    /// Give back every device vfioctl bound.
    #[arg(long, conflicts_with = "devices")]
    pub all: bool,
    /// Give back everything journaled for VM NAME: its devices, the DPAA2 containers and VFs
    /// made for it, the MACs set on them.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["devices", "all"])]
    pub vm: Option<String>,
    /// Give back even devices whose QEMU is still running.
    #[arg(long)]
    pub force: bool,
    /// Print what would be done, and change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Seconds to wait for a driver to let go of a device before giving up.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
}

// `vfioctl check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// IOMMU group numbers or devices.
    #[arg(required = true, value_name = "GROUP|DEVICE")]
    pub targets: Vec<String>,
}

// `vfioctl doctor`.
#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// Devices to judge (addresses or interface names): device checks then cover only them and
    /// their IOMMU groups, and each gets a verdict. Without any, the whole host is checked.
    #[arg(value_name = "DEVICE")]
    pub devices: Vec<String>,
}

// `vfioctl qemu-args`.
#[derive(Debug, Args)]
pub(crate) struct QemuArgs {
    /// Devices (addresses, vendor:device IDs, interface names) and DPAA2 containers (dprc.N).
    #[arg(required = true, value_name = "DEVICE|DPRC")]
    pub devices: Vec<String>,
    /// The guest machine type: q35 (x86-64) or virt (aarch64). Default: this host's.
    #[arg(long, value_name = "TYPE")]
    pub machine: Option<String>,
    /// Only the named functions, not every endpoint of their IOMMU groups.
    #[arg(long)]
    pub only: bool,
    /// Use iommufd and the VFIO device files (/dev/iommu, /dev/vfio/devices/vfioN; kernel 6.6+,
    /// QEMU 8.2+) instead of /dev/vfio/GROUP: adds -object iommufd,id=iommufd0 and iommufd= on
    /// each vfio-pci device. Peer-to-peer DMA between the devices is lost.
    #[arg(long)]
    pub iommufd: bool,
}

// `vfioctl libvirt-xml`.
#[derive(Debug, Args)]
pub(crate) struct LibvirtArgs {
    /// Devices (addresses, vendor:device IDs, interface names).
    #[arg(required = true, value_name = "DEVICE")]
    pub devices: Vec<String>,
    /// Only the named functions, not every endpoint of their IOMMU groups.
    #[arg(long)]
    pub only: bool,
    /// Give each device a guest address from guest bus N up (N: the index of a free
    /// pcie-root-port controller of the domain, 3 or 0x03), keeping its functions together in
    /// one guest slot as on the host.
    #[arg(long, value_name = "N", value_parser = parse_bus)]
    pub guest_bus: Option<u8>,
    /// Write one file per <hostdev> element into DIR (what virsh attach-device takes) and print
    /// their paths.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Add <driver iommufd='yes'/> to each element (a kernel and libvirt with iommufd):
    /// QEMU then uses /dev/iommu and /dev/vfio/devices/vfioN. Peer-to-peer DMA between the
    /// devices is lost.
    #[arg(long)]
    pub iommufd: bool,
}

/// A bus number, decimal or `0x` hex, as libvirt writes it.
fn parse_bus(text: &str) -> Result<u8, String> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u8::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("'{text}' is not a bus number (0 to 255, or 0x00 to 0xff)"))
}

// `vfioctl generate-docs`.
#[derive(Debug, Args)]
pub(crate) struct GenerateDocsArgs {
    /// Directory to write `man/` and `completions/` into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

// `vfioctl hook`.
#[derive(Debug, Args)]
pub(crate) struct HookArgs {
    /// Seconds to wait for a driver to let go of a device before giving up (default 10).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    #[command(subcommand)]
    pub target: HookTarget,
}

/// Which VM manager calls the hook.
#[derive(Debug, Subcommand)]
pub(crate) enum HookTarget {
    /// libvirt's qemu hook: binds a domain's PCI hostdevs on prepare, restores them on release.
    /// Reads the domain XML from standard input.
    Libvirt {
        /// The domain name.
        domain: String,
        /// libvirt's operation (prepare, start, started, stopped, release, ...).
        operation: String,
        /// libvirt's sub-operation (begin, end, ...).
        sub_operation: String,
        /// libvirt's extra argument.
        extra: Option<String>,
    },
    /// A Proxmox VE hookscript: binds a VM's hostpciN devices before start, restores them after
    /// stop.
    Proxmox {
        /// The VM id.
        vmid: String,
        /// The phase (pre-start, post-start, pre-stop, post-stop).
        phase: String,
    },
}

// `vfioctl __write-attr`.
#[derive(Debug, Args)]
pub(crate) struct WriteAttrArgs {
    /// The attribute, as on `/` (`/sys/bus/pci/drivers/e1000e/unbind`).
    pub path: String,
    /// The value.
    pub value: String,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn every_command_builds_with_the_global_options_copied_in() {
        // Builds every deferred command after the copy of the global options, as parsing one does.
        super::Cli::command().debug_assert();
    }
}
