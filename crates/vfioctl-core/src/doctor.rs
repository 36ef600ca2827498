//! `doctor`: find what will make passthrough fail before QEMU does.
//!
//! The host layer reads everything into a plain [`DoctorFacts`]; [`run`] turns facts and the
//! [`Inventory`] into [`Finding`]s, each with a stable `id`, a severity, what was read and what to
//! do. Nothing here reads a file, so every check is tested with hand-built facts.
//!
//! The check ids are stable (scripts match on them):
//!
//! | id | severity | fires when |
//! |---|---|---|
//! | `iommu-off` | error | no `/sys/class/iommu` entry and no IOMMU group |
//! | `iommu-no-groups` | error | an IOMMU is registered but no group exists |
//! | `iommu-identity-groups` | info | groups in identity (passthrough) mode (`iommu=pt`) |
//! | `smmu-bypass` | info | `arm-smmu.disable_bypass=0` |
//! | `interrupt-remapping-off` | error | `intremap=off` on x86 |
//! | `interrupt-remapping-unsupported` | error | a VT-d unit's ecap lacks IR (bit 3) |
//! | `interrupt-remapping-unknown` | info | x86, but IR support is not readable (AMD-Vi) |
//! | `msi-isolation-missing` | error | arm64 without a GICv3 ITS |
//! | `msi-isolation-unknown` | info | arm64, and neither `/proc/interrupts` nor a device tree |
//! | `unsafe-interrupts-allowed` | warning | `vfio_iommu_type1.allow_unsafe_interrupts` is on |
//! | `noiommu-mode` | warning | `vfio.enable_unsafe_noiommu_mode` is on |
//! | `module-missing` | error | a VFIO module is not loaded, built in or in `modules.dep` |
//! | `module-not-loaded` | warning | vfio-pci (or vfio-fsl-mc) can be loaded but is not |
//! | `module-unknown` | info | not loaded, and `/lib/modules/<release>` is unreadable |
//! | `module-blacklisted` | error/warning | `install <m> /bin/false` / `blacklist <m>` |
//! | `dev-vfio-missing` | error | vfio is loaded but `/dev/vfio/vfio` is absent |
//! | `dev-vfio-mode` | warning | `/dev/vfio/vfio` is not mode 0666 |
//! | `group-node-missing` | error | a group has a member on vfio-pci but no `/dev/vfio/N` |
//! | `idle-d3` | warning | vfio-pci idle D3 is on, on arm64 or with devices asleep |
//! | `device-d3cold` | warning | a device is in D3cold |
//! | `device-d3hot` | info | a device is in D3hot |
//! | `reset-none` | warning | a device has no reset method |
//! | `reset-bus-shared` | warning/info | only a bus reset, and other devices share the bus |
//! | `reset-method-unknown` | info | the kernel predates `reset_method` (5.15) |
//! | `group-never-viable` | error | a bridge in the group is on a DMA driver (`shpchp`) |
//! | `group-not-viable` | error | a group is half bound to vfio-pci |
//! | `group-not-bound` | info | a named device's group still has members on host drivers |
//! | `group-shared` | info | a group holds more than one device, with the reason |
//! | `group-member-host-uses` | error | a shared group holds a device the host uses |
//! | `device-no-group` | error | a device has no IOMMU group while the IOMMU is on |
//! | `device-is-bridge` | error | a named device is a bridge |
//! | `host-device` | error | a named device backs the host (disk, network, console) |
//! | `acs-override` | warning | `pcie_acs_override=` on the command line |
//! | `vfio-pci-ids` | warning | `vfio-pci.ids=` or `options vfio-pci ids=` |
//! | `driverctl-override` | warning | a file in `/etc/driverctl.d` |
//! | `foreign-driver-override` | warning | `driver_override` set by something other than vfioctl |
//! | `journal-damaged` | warning | vfioctl's journal does not parse |
//! | `known-device-works` / `-misbehaves` / `-broken` | info/warning/error | the known-devices table |
//! | `known-devices-invalid` | error | `/etc/vfioctl/devices.toml` does not parse |
//! | `fsl-mc-vfio-missing` | error | DPAA2 host without a vfio-fsl-mc driver |
//! | `fsl-mc-irq-cfg` | info | DPAA2 host: containers for VMs need `DPRC_CFG_OPT_IRQ_CFG_ALLOWED` |
//! | `boot-framebuffer`, `vtconsole-bound`, `stale-module-name`, `pci-stub-leftover` | | early boot: see `crate::boot::checks` |
//!
//! Kernel references: `drivers/vfio/vfio_iommu_type1.c` (`allow_unsafe_interrupts`, isolated
//! MSI), `drivers/vfio/pci/vfio_pci.c` (`disable_idle_d3`, `ids`), `drivers/iommu/intel/iommu.h`
//! (`ecap_ir_support`: bit 3 of the VT-d extended capability register),
//! `drivers/pci/pci.c` (`reset_method`, `pci_parent_bus_reset`), kmod's `modprobe.d(5)`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::address::PciAddress;
use crate::device::{Inventory, PciDevice};
use crate::groups::{explain_group, viability};
use crate::known::{KnownDevices, KnownStatus};
use crate::plan::HostUse;

/// How bad a finding is. Errors and warnings make `doctor` exit 4; infos do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Passthrough will fail (or is unsafe) until this is fixed.
    Error,
    /// Passthrough may fail, or works with a risk worth knowing.
    Warning,
    /// Worth knowing; nothing is wrong.
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
        })
    }
}

/// One thing `doctor` found. The field names are part of the versioned JSON schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable kebab-case identifier of the check (`iommu-off`).
    pub id: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// The device it is about, when it is about one.
    pub device: Option<PciAddress>,
    /// What was read to find it, as on `/`.
    pub path: String,
    /// What is wrong, in one sentence.
    pub message: String,
    /// What to do about it.
    pub remedy: String,
}

impl Finding {
    fn new(
        id: &'static str,
        severity: Severity,
        device: Option<PciAddress>,
        path: impl Into<String>,
        message: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Self {
        Self {
            id,
            severity,
            device,
            path: path.into(),
            message: message.into(),
            remedy: remedy.into(),
        }
    }

    /// Errors and warnings are problems; infos are not.
    pub fn is_problem(&self) -> bool {
        self.severity != Severity::Info
    }
}

/// The host's CPU architecture, as far as the facts tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arch {
    /// x86-64: Intel VT-d or AMD-Vi, interrupt remapping.
    X86_64,
    /// arm64: SMMU, GICv3 ITS for MSI isolation.
    Aarch64,
    /// Could not tell.
    #[default]
    Unknown,
}

/// Whether a kernel module can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleStatus {
    /// `/sys/module/<name>` exists.
    Loaded,
    /// Listed in `modules.builtin`.
    Builtin,
    /// Listed in `modules.dep`: `modprobe` can load it.
    Available,
    /// Neither loaded, built in nor in `modules.dep`.
    Missing,
    /// Not loaded, and `/lib/modules/<release>` could not be read to tell the rest.
    Unknown,
}

impl ModuleStatus {
    /// Its code is in the running kernel.
    pub fn is_present(self) -> bool {
        matches!(self, Self::Loaded | Self::Builtin)
    }
}

/// One directive of a modprobe.d file that `doctor` cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// `blacklist <module>`: no loading through aliases (udev); `modprobe <module>` still works.
    Blacklist {
        /// The module (canonical, `_` for `-`).
        module: String,
    },
    /// `install <module> <command>`: modprobe runs the command instead of loading the module.
    Install {
        /// The module (canonical).
        module: String,
        /// The command.
        command: String,
    },
    /// `options <module> <params>`.
    Options {
        /// The module (canonical).
        module: String,
        /// `name=value` pairs, names canonical.
        params: Vec<(String, String)>,
    },
}

/// A directive and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModprobeEntry {
    /// The file, as on `/`.
    pub path: String,
    /// 1-based line where the directive starts.
    pub line: usize,
    /// The directive.
    pub directive: Directive,
    /// The line as written (continuations joined).
    pub text: String,
}

/// Canonical module or parameter name: the kernel treats `-` and `_` alike.
pub fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

/// The name users type for a module (`vfio-pci`): underscores as dashes.
pub fn dashed(name: &str) -> String {
    name.replace('_', "-")
}

/// Parses one modprobe.d file (`modprobe.d(5)`): `#` comments, `\` continuations, and the
/// `blacklist`, `install` and `options` directives; everything else is skipped.
pub fn parse_modprobe_conf(path: &str, text: &str) -> Vec<ModprobeEntry> {
    let mut entries = Vec::new();
    let mut pending = String::new();
    let mut start = 0;
    for (index, raw) in text.lines().enumerate() {
        if pending.is_empty() {
            start = index + 1;
        }
        if let Some(body) = raw.strip_suffix('\\') {
            pending.push_str(body);
            pending.push(' ');
            continue;
        }
        pending.push_str(raw);
        let line = std::mem::take(&mut pending);
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        let mut words = trimmed.split_whitespace();
        let (Some(command), Some(module)) = (words.next(), words.next()) else {
            continue;
        };
        let module = canonical(module);
        let directive = match command {
            "blacklist" => Directive::Blacklist { module },
            "install" => Directive::Install {
                module,
                command: words.collect::<Vec<_>>().join(" "),
            },
            "options" => Directive::Options {
                module,
                params: words
                    .map(|w| match w.split_once('=') {
                        Some((k, v)) => (canonical(k), v.trim_matches('"').to_owned()),
                        None => (canonical(w), String::new()),
                    })
                    .collect(),
            },
            _ => continue,
        };
        entries.push(ModprobeEntry {
            path: path.to_owned(),
            line: start,
            directive,
            text: trimmed.to_owned(),
        });
    }
    entries
}

/// A kernel command-line parameter: name (canonical: `-` as `_`) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Canonical name (`vfio_pci.ids`).
    pub name: String,
    /// Value, empty when the parameter has none.
    pub value: String,
    /// As written.
    pub text: String,
}

/// Splits `/proc/cmdline` into parameters the way the kernel does (quotes group, `--` ends the
/// kernel's part).
pub fn parse_cmdline(cmdline: &str) -> Vec<Param> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in cmdline.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
        .into_iter()
        .take_while(|w| w != "--")
        .map(|w| {
            let (name, value) = w.split_once('=').unwrap_or((w.as_str(), ""));
            Param {
                name: canonical(name),
                value: value.to_owned(),
                text: w.clone(),
            }
        })
        .collect()
}

/// A driverctl override file (`/etc/driverctl.d/<bus>-<device>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverctlOverride {
    /// The file, as on `/`.
    pub path: String,
    /// The device part of the name (`0000:01:00.0`), and the bus (`pci`).
    pub bus: String,
    /// The device.
    pub device: String,
    /// The driver it forces (the file's content).
    pub driver: String,
}

/// DPAA2 facts, present when the host has an fsl-mc bus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FslMcFacts {
    /// `/sys/bus/fsl-mc/drivers/vfio-fsl-mc` exists.
    pub vfio_driver: bool,
}

/// Everything `doctor` needs from the host, read once by the host layer.
#[derive(Debug, Clone, Default)]
pub struct DoctorFacts {
    /// CPU architecture.
    pub arch: Arch,
    /// `/proc/cmdline`, `None` when unreadable.
    pub cmdline: Option<String>,
    /// Names under `/sys/class/iommu` (`dmar0`, `ivhd0`, `smmu3.0x...`).
    pub iommu_units: Vec<String>,
    /// `/sys/kernel/iommu_groups/N/type`, by group.
    pub group_types: BTreeMap<u32, String>,
    /// `/sys/class/iommu/dmar*/intel-iommu/ecap`, by unit; `None` when unreadable.
    pub dmar_ecap: BTreeMap<String, Option<u64>>,
    /// `/proc/interrupts` names an ITS MSI domain (`true`), or only other MSI domains (`false`);
    /// `None` when unreadable or when no device uses MSIs yet.
    pub its_in_interrupts: Option<bool>,
    /// The device tree has a GICv3 ITS (`msi-controller`); `None` without a device tree.
    pub its_in_device_tree: Option<bool>,
    /// `vfio_iommu_type1`'s `allow_unsafe_interrupts`; `None` when the module is not loaded.
    pub allow_unsafe_interrupts: Option<bool>,
    /// `vfio`'s `enable_unsafe_noiommu_mode`.
    pub noiommu_mode: Option<bool>,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel_release: Option<String>,
    /// The VFIO modules, by canonical name.
    pub modules: BTreeMap<String, ModuleStatus>,
    /// Directives from modprobe.d files.
    pub modprobe: Vec<ModprobeEntry>,
    /// Mode bits of `/dev/vfio/vfio`; `None` when it does not exist.
    pub vfio_container_mode: Option<u32>,
    /// Groups with a `/dev/vfio/<N>` node.
    pub vfio_group_nodes: BTreeSet<u32>,
    /// `/dev/vfio/devices` exists (the cdev interface of iommufd).
    pub vfio_cdev: bool,
    /// vfio-pci's `disable_idle_d3`; `None` when the module is not loaded.
    pub disable_idle_d3: Option<bool>,
    /// driverctl override files.
    pub driverctl: Vec<DriverctlOverride>,
    /// Devices vfioctl has bound (from its journal).
    pub journaled: BTreeSet<PciAddress>,
    /// Why the journal is damaged, when it is.
    pub journal_problem: Option<String>,
    /// Why the journal could not be opened (permissions), when it could not: vfioctl's own
    /// overrides then cannot be told from others.
    pub journal_unreadable: Option<String>,
    /// How the host uses each device.
    pub host_uses: BTreeMap<PciAddress, Vec<HostUse>>,
    /// The known-devices table (shipped, merged with the host's).
    pub known: KnownDevices,
    /// Problems with the host's known-devices file (`file:line:column: message`).
    pub known_problems: Vec<(String, String)>,
    /// DPAA2, when `/sys/bus/fsl-mc` exists.
    pub fsl_mc: Option<FslMcFacts>,
    /// Early boot: framebuffers, consoles, module configs (checks in `crate::boot::checks`).
    pub boot: crate::boot::checks::BootFacts,
}

/// The VFIO modules every PCI passthrough needs, canonical names.
pub const VFIO_MODULES: &[&str] = &["vfio", "vfio_iommu_type1", "vfio_pci"];
/// The DPAA2 VFIO module.
pub const VFIO_FSL_MC_MODULE: &str = "vfio_fsl_mc";

/// The Ten64 VFIO page, the source of the idle-D3 advice and the DPAA2 notes.
pub const TEN64_VFIO_PAGE: &str = "https://ten64doc.traverse.com.au/software/vfio/";

struct Ctx<'a> {
    facts: &'a DoctorFacts,
    inv: &'a Inventory,
    params: Vec<Param>,
    /// Devices device-specific checks look at (named devices and their group mates), or all.
    scope: Option<BTreeSet<PciAddress>>,
    named: &'a [PciAddress],
}

impl Ctx<'_> {
    fn in_scope(&self, address: &PciAddress) -> bool {
        self.scope.as_ref().is_none_or(|s| s.contains(address))
    }

    /// Devices a VM could be given: endpoints (not bridges, not host bridges) in scope. Looking
    /// at the whole host, devices the host itself uses (its disk, its network) are left out.
    fn endpoints(&self) -> impl Iterator<Item = &PciDevice> {
        self.inv.devices().iter().filter(|d| {
            is_endpoint(d)
                && match &self.scope {
                    Some(scope) => scope.contains(&d.address),
                    None => !self.facts.host_uses.contains_key(&d.address),
                }
        })
    }

    /// Endpoints in scope, the host's own included.
    fn all_endpoints(&self) -> impl Iterator<Item = &PciDevice> {
        self.inv
            .devices()
            .iter()
            .filter(|d| is_endpoint(d) && self.in_scope(&d.address))
    }

    fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().rev().find(|p| p.name == name)
    }

    fn module(&self, name: &str) -> Option<ModuleStatus> {
        self.facts.modules.get(name).copied()
    }

    fn modprobe_options<'b>(
        &'b self,
        module: &'b str,
        param: &'b str,
    ) -> impl Iterator<Item = (&'b ModprobeEntry, &'b str)> + 'b {
        self.facts
            .modprobe
            .iter()
            .filter_map(move |e| match &e.directive {
                Directive::Options { module: m, params } if m == module => params
                    .iter()
                    .find(|(k, _)| k == param)
                    .map(|(_, v)| (e, v.as_str())),
                _ => None,
            })
    }
}

/// Not a bridge, and not a host bridge or other bridge-class function.
fn is_endpoint(d: &PciDevice) -> bool {
    !d.is_bridge() && d.class.base() != 0x06
}

fn truthy(value: &str) -> bool {
    matches!(value.trim(), "1" | "y" | "Y" | "yes" | "on" | "true")
}

fn sys_dev(address: &PciAddress, attr: &str) -> String {
    format!("/sys/bus/pci/devices/{address}/{attr}")
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    let parts: Vec<String> = items.iter().map(ToString::to_string).collect();
    match parts.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Runs every check. With `named` empty the whole host is examined; otherwise device-specific
/// checks only look at the named devices and the members of their IOMMU groups (host-wide checks,
/// such as the IOMMU and the modules, always run).
pub fn run(facts: &DoctorFacts, inv: &Inventory, named: &[PciAddress]) -> Vec<Finding> {
    let scope = (!named.is_empty()).then(|| {
        named
            .iter()
            .flat_map(|a| {
                let mut m = inv.group_members(a);
                m.push(*a);
                m
            })
            .collect()
    });
    let ctx = Ctx {
        facts,
        inv,
        params: facts
            .cmdline
            .as_deref()
            .map(parse_cmdline)
            .unwrap_or_default(),
        scope,
        named,
    };
    let mut out = Vec::new();
    check_iommu(&ctx, &mut out);
    check_interrupts(&ctx, &mut out);
    check_modules(&ctx, &mut out);
    check_dev_nodes(&ctx, &mut out);
    check_power(&ctx, &mut out);
    check_reset(&ctx, &mut out);
    check_groups(&ctx, &mut out);
    check_named(&ctx, &mut out);
    check_risky(&ctx, &mut out);
    check_known(&ctx, &mut out);
    check_fsl_mc(&ctx, &mut out);
    out.extend(crate::boot::checks::run(
        &facts.boot,
        facts.cmdline.as_deref(),
        facts.kernel_release.as_deref(),
        |a| ctx.in_scope(a),
    ));
    out.sort_by_key(|f| f.severity);
    out
}

fn iommu_remedy(ctx: &Ctx<'_>, off: Option<&Param>) -> String {
    let mut remedy = String::new();
    if let Some(p) = off {
        remedy.push_str(&format!("remove {} from the kernel command line; ", p.text));
    }
    let x86 = "enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware setup and boot with \
               intel_iommu=on (Intel; AMD-Vi is on by default), optionally with iommu=pt";
    let arm = "make sure the firmware describes the SMMU (device tree or ACPI IORT) and the kernel \
               has the SMMU driver (CONFIG_ARM_SMMU / CONFIG_ARM_SMMU_V3)";
    remedy.push_str(match ctx.facts.arch {
        Arch::X86_64 => x86,
        Arch::Aarch64 => arm,
        Arch::Unknown => {
            "on x86: enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on \
                          (Intel); on arm64: have the firmware describe the SMMU"
        }
    });
    remedy.push_str(", then reboot");
    remedy
}

fn check_iommu(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let off = ctx.params.iter().rev().find(|p| {
        (p.name == "intel_iommu" && p.value.split(',').any(|v| v == "off"))
            || (p.name == "amd_iommu" && p.value.split(',').any(|v| v == "off"))
            || (p.name == "iommu" && p.value == "off")
    });
    if !ctx.inv.iommu_enabled {
        let why = match off {
            Some(p) => format!(" (the kernel command line has {})", p.text),
            None => String::new(),
        };
        out.push(Finding::new(
            "iommu-off",
            Severity::Error,
            None,
            "/sys/class/iommu",
            format!(
                "no IOMMU is active: /sys/class/iommu is empty and there are no IOMMU groups{why}, \
                 so VFIO cannot isolate any device"
            ),
            iommu_remedy(ctx, off),
        ));
        return;
    }
    if ctx.inv.groups.is_empty() {
        out.push(Finding::new(
            "iommu-no-groups",
            Severity::Error,
            None,
            "/sys/kernel/iommu_groups",
            format!(
                "an IOMMU is registered ({}) but /sys/kernel/iommu_groups is empty: no device is \
                 translated, so VFIO has nothing to open",
                ctx.facts.iommu_units.join(", ")
            ),
            iommu_remedy(ctx, off),
        ));
    }
    let identity: Vec<u32> = ctx
        .facts
        .group_types
        .iter()
        .filter(|(g, t)| {
            t.trim() == "identity"
                && ctx.inv.groups.get(g).is_none_or(|members| {
                    ctx.scope.is_none() || members.iter().any(|m| ctx.in_scope(m))
                })
        })
        .map(|(g, _)| *g)
        .collect();
    if let Some(first) = identity.first() {
        let cause = ctx
            .params
            .iter()
            .find(|p| {
                (p.name == "iommu" && p.value == "pt")
                    || (p.name == "iommu.passthrough" && truthy(&p.value))
            })
            .map(|p| format!(" ({} on the command line)", p.text))
            .unwrap_or_default();
        out.push(Finding::new(
            "iommu-identity-groups",
            Severity::Info,
            None,
            format!("/sys/kernel/iommu_groups/{first}/type"),
            format!(
                "IOMMU group{} {} {} in identity (passthrough) mode{cause}: the host's own DMA \
                 there is not translated; VFIO still gives a group its own translated domain when \
                 a VM opens it",
                if identity.len() == 1 { "" } else { "s" },
                join(&identity),
                if identity.len() == 1 { "is" } else { "are" }
            ),
            "nothing to do for passthrough; drop iommu=pt / iommu.passthrough=1 if the host's \
             devices should be isolated from each other too",
        ));
    }
    if let Some(p) = ctx
        .param("arm_smmu.disable_bypass")
        .filter(|p| !truthy(&p.value))
    {
        out.push(Finding::new(
            "smmu-bypass",
            Severity::Info,
            None,
            "/proc/cmdline",
            format!(
                "{}: devices the SMMU has not attached to a domain bypass it and can reach all \
                 memory; devices given to a VM are attached, so passthrough is not affected",
                p.text
            ),
            "fine for passthrough; remove it once every host device has a driver, for stricter \
             isolation",
        ));
    }
}

fn check_interrupts(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let f = ctx.facts;
    let unsafe_allowed = f.allow_unsafe_interrupts == Some(true)
        || ctx
            .param("vfio_iommu_type1.allow_unsafe_interrupts")
            .is_some_and(|p| truthy(&p.value))
        || ctx
            .modprobe_options("vfio_iommu_type1", "allow_unsafe_interrupts")
            .any(|(_, v)| truthy(v));
    // Without isolation VFIO refuses (error) unless unsafe interrupts are allowed, which then
    // gets its own warning.
    let severity = if unsafe_allowed {
        Severity::Warning
    } else {
        Severity::Error
    };
    if ctx.inv.iommu_enabled {
        let x86 = f.arch == Arch::X86_64
            || f.iommu_units
                .iter()
                .any(|u| u.starts_with("dmar") || u.starts_with("ivhd"));
        let arm = f.arch == Arch::Aarch64;
        if x86 {
            check_interrupt_remapping(ctx, severity, out);
        } else if arm {
            check_its(ctx, severity, out);
        }
    }
    if unsafe_allowed {
        out.push(Finding::new(
            "unsafe-interrupts-allowed",
            Severity::Warning,
            None,
            "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts",
            "vfio_iommu_type1.allow_unsafe_interrupts is on: a VM can forge MSI writes that reach \
             the host's interrupt controller (an escape path VFIO normally refuses)",
            "fix interrupt isolation (interrupt remapping on x86, GICv3 ITS on arm64) and remove \
             allow_unsafe_interrupts from the kernel command line and /etc/modprobe.d",
        ));
    }
    let noiommu = f.noiommu_mode == Some(true)
        || ctx
            .param("vfio.enable_unsafe_noiommu_mode")
            .is_some_and(|p| truthy(&p.value));
    if noiommu {
        out.push(Finding::new(
            "noiommu-mode",
            Severity::Warning,
            None,
            "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode",
            "vfio's unsafe no-IOMMU mode is on: devices can be used through VFIO without any DMA \
             isolation (fine for DPDK on a trusted host, never for a VM)",
            "remove vfio.enable_unsafe_noiommu_mode from the kernel command line and \
             /etc/modprobe.d, and enable the IOMMU instead",
        ));
    }
}

fn check_interrupt_remapping(ctx: &Ctx<'_>, severity: Severity, out: &mut Vec<Finding>) {
    let f = ctx.facts;
    if let Some(p) = ctx
        .param("intremap")
        .filter(|p| p.value.split(',').any(|v| v == "off"))
    {
        out.push(Finding::new(
            "interrupt-remapping-off",
            severity,
            None,
            "/proc/cmdline",
            format!(
                "{} turns interrupt remapping off: MSIs from a VM's device are not isolated, so \
                 VFIO refuses to attach devices",
                p.text
            ),
            format!("remove {} from the kernel command line and reboot", p.text),
        ));
        return;
    }
    let known: Vec<(&String, u64)> = f
        .dmar_ecap
        .iter()
        .filter_map(|(u, e)| e.map(|e| (u, e)))
        .collect();
    // VT-d extended capability register, bit 3: Interrupt Remapping support. The kernel enables
    // remapping only when every unit has it.
    let lacking: Vec<&String> = known
        .iter()
        .filter(|(_, e)| e & (1 << 3) == 0)
        .map(|(u, _)| *u)
        .collect();
    if let Some(first) = lacking.first() {
        out.push(Finding::new(
            "interrupt-remapping-unsupported",
            severity,
            None,
            format!("/sys/class/iommu/{first}/intel-iommu/ecap"),
            format!(
                "{} cannot remap interrupts (VT-d extended capability bit 3 is clear), so MSIs from \
                 a VM's device are not isolated and VFIO refuses to attach devices",
                join(&lacking)
            ),
            "enable interrupt remapping in the firmware setup if it has the option; otherwise \
             this platform cannot pass devices through safely (allow_unsafe_interrupts=1 trades \
             safety for function)",
        ));
    } else if known.is_empty() || known.len() < f.dmar_ecap.len() {
        let what = if f.iommu_units.iter().any(|u| u.starts_with("ivhd")) {
            "AMD-Vi does not show interrupt remapping in sysfs"
        } else {
            "no readable /sys/class/iommu/dmar*/intel-iommu/ecap"
        };
        out.push(Finding::new(
            "interrupt-remapping-unknown",
            Severity::Info,
            None,
            "/sys/class/iommu",
            format!("whether interrupt remapping is on could not be determined ({what})"),
            "look for 'Interrupt remapping enabled' (or 'AMD-Vi: Interrupt remapping enabled') in \
             dmesg",
        ));
    }
}

fn check_its(ctx: &Ctx<'_>, severity: Severity, out: &mut Vec<Finding>) {
    let f = ctx.facts;
    match (f.its_in_interrupts, f.its_in_device_tree) {
        (Some(true), _) | (_, Some(true)) => {}
        (None, None) => out.push(Finding::new(
            "msi-isolation-unknown",
            Severity::Info,
            None,
            "/proc/interrupts",
            "whether MSIs are isolated (GICv3 ITS) could not be determined: neither \
             /proc/interrupts nor /proc/device-tree is readable",
            "check that the interrupt controller is a GICv3 with an ITS ('ITS' in dmesg or \
             ITS-MSI in /proc/interrupts)",
        )),
        (interrupts, _) => out.push(Finding::new(
            "msi-isolation-missing",
            severity,
            None,
            if interrupts.is_some() {
                "/proc/interrupts"
            } else {
                "/proc/device-tree"
            },
            "no GICv3 ITS was found (no ITS-MSI in /proc/interrupts, no msi-controller in the \
             device tree): MSIs from a VM's device are not isolated, so VFIO refuses to attach \
             devices",
            "use firmware whose device tree enables the GICv3 ITS (the LS1088A on the Ten64 has \
             one), or accept the risk with vfio_iommu_type1.allow_unsafe_interrupts=1",
        )),
    }
}

fn module_paths(name: &str) -> String {
    format!("/sys/module/{name}")
}

fn check_modules(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let f = ctx.facts;
    let mut wanted: Vec<&str> = VFIO_MODULES.to_vec();
    if f.fsl_mc.is_some() {
        wanted.push(VFIO_FSL_MC_MODULE);
    }
    for entry in &f.modprobe {
        match &entry.directive {
            Directive::Blacklist { module } if wanted.contains(&module.as_str()) => {
                out.push(Finding::new(
                    "module-blacklisted",
                    Severity::Warning,
                    None,
                    entry.path.clone(),
                    format!(
                        "{} line {} ('{}') blacklists {}: udev will not load it for a device, \
                         although 'modprobe {}' still does",
                        entry.path,
                        entry.line,
                        entry.text,
                        dashed(module),
                        dashed(module)
                    ),
                    format!("delete line {} of {}", entry.line, entry.path),
                ));
            }
            Directive::Install { module, command } if wanted.contains(&module.as_str()) => {
                let refuses = command.split_whitespace().next().is_some_and(|c| {
                    c.ends_with("/false") || c.ends_with("/true") || c == "false" || c == "true"
                });
                if refuses {
                    out.push(Finding::new(
                        "module-blacklisted",
                        Severity::Error,
                        None,
                        entry.path.clone(),
                        format!(
                            "{} line {} ('{}') stops {} from ever loading: modprobe runs '{}' \
                             instead",
                            entry.path,
                            entry.line,
                            entry.text,
                            dashed(module),
                            command
                        ),
                        format!("delete line {} of {}", entry.line, entry.path),
                    ));
                }
            }
            _ => {}
        }
    }
    let release = f.kernel_release.as_deref().unwrap_or("$(uname -r)");
    let mut not_loaded = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    for name in &wanted {
        let status = ctx.module(name).unwrap_or(ModuleStatus::Unknown);
        match status {
            ModuleStatus::Loaded | ModuleStatus::Builtin => {}
            ModuleStatus::Available => not_loaded.push(*name),
            // The DPAA2 check says what a missing vfio-fsl-mc means.
            _ if *name == VFIO_FSL_MC_MODULE => {}
            ModuleStatus::Missing => {
                let (severity, extra) = if *name == "vfio_iommu_type1" {
                    (
                        Severity::Warning,
                        " (fine only if the kernel provides the VFIO container through iommufd, \
                         CONFIG_IOMMUFD_VFIO_CONTAINER)",
                    )
                } else {
                    (Severity::Error, "")
                };
                out.push(Finding::new(
                    "module-missing",
                    severity,
                    None,
                    format!("/lib/modules/{release}/modules.dep"),
                    format!(
                        "the kernel has no {} module: it is not loaded, not built in and not in \
                         modules.dep{extra}",
                        dashed(name)
                    ),
                    format!(
                        "install a kernel built with CONFIG_{} (or its modules package, e.g. \
                         linux-modules-extra)",
                        name.to_uppercase()
                    ),
                ));
            }
            ModuleStatus::Unknown => unknown.push(dashed(name)),
        }
    }
    if !unknown.is_empty() {
        out.push(Finding::new(
            "module-unknown",
            Severity::Info,
            None,
            format!("/lib/modules/{release}"),
            format!(
                "{} {} not loaded, and /lib/modules/{release} could not be read to tell whether \
                 {} can be",
                join(&unknown),
                if unknown.len() == 1 { "is" } else { "are" },
                if unknown.len() == 1 { "it" } else { "they" },
            ),
            if unknown.len() == 1 {
                format!("modprobe {}", unknown[0])
            } else {
                format!("modprobe -a {}", unknown.join(" "))
            },
        ));
    }
    if not_loaded.contains(&"vfio_pci") {
        let others: Vec<String> = not_loaded
            .iter()
            .filter(|n| **n != "vfio_pci" && **n != VFIO_FSL_MC_MODULE)
            .map(|n| dashed(n))
            .collect();
        let also = if others.is_empty() {
            String::new()
        } else {
            format!(" (nor {})", join(&others))
        };
        out.push(Finding::new(
            "module-not-loaded",
            Severity::Warning,
            None,
            module_paths("vfio_pci"),
            format!(
                "vfio-pci is not loaded{also}: QEMU cannot open a device until it is ('vfioctl \
                 bind' loads it itself)"
            ),
            "modprobe vfio-pci (it brings vfio and vfio_iommu_type1 with it); to load it at \
             boot: echo vfio-pci > /etc/modules-load.d/vfio-pci.conf",
        ));
        // vfio-pci brings the PCI family along; only vfio-fsl-mc needs its own word.
        not_loaded.retain(|n| *n == VFIO_FSL_MC_MODULE);
    }
    for name in not_loaded {
        let (severity, why) = match name {
            "vfio_iommu_type1" => (
                Severity::Info,
                "the kernel loads it when a VM first opens a VFIO container".to_owned(),
            ),
            VFIO_FSL_MC_MODULE => (
                Severity::Warning,
                "DPAA2 containers cannot be bound to vfio-fsl-mc until it is".to_owned(),
            ),
            _ => (
                Severity::Warning,
                "QEMU cannot open a device until it is".to_owned(),
            ),
        };
        out.push(Finding::new(
            "module-not-loaded",
            severity,
            None,
            module_paths(name),
            format!("{} is not loaded: {why}", dashed(name)),
            format!("modprobe {}", dashed(name)),
        ));
    }
}

fn check_dev_nodes(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let f = ctx.facts;
    if ctx.module("vfio").is_some_and(ModuleStatus::is_present) {
        match f.vfio_container_mode {
            None => out.push(Finding::new(
                "dev-vfio-missing",
                Severity::Error,
                None,
                "/dev/vfio/vfio",
                "/dev/vfio/vfio does not exist although vfio is loaded: QEMU cannot open a VFIO \
                 container",
                "check that devtmpfs is mounted on /dev and udev runs (as a stopgap: mknod \
                 /dev/vfio/vfio c 10 196 && chmod 0666 /dev/vfio/vfio)",
            )),
            Some(mode) if mode & 0o777 != 0o666 => out.push(Finding::new(
                "dev-vfio-mode",
                Severity::Warning,
                None,
                "/dev/vfio/vfio",
                format!(
                    "/dev/vfio/vfio has mode {:04o}, not 0666: QEMU running as a user gets \
                     'Permission denied' (systemd v254 made it 0600)",
                    mode & 0o7777
                ),
                "chmod 0666 /dev/vfio/vfio; to keep it, add a udev rule \
                 'SUBSYSTEM==\"vfio\", KERNEL==\"vfio\", MODE=\"0666\"' (or update systemd)",
            )),
            Some(_) => {}
        }
    }
    for (group, members) in &ctx.inv.groups {
        if !members.iter().any(|m| ctx.in_scope(m)) || f.vfio_group_nodes.contains(group) {
            continue;
        }
        let on_vfio = members.iter().find(|m| {
            ctx.inv.get(m).is_some_and(|d| {
                d.driver
                    .as_deref()
                    .is_some_and(|drv| drv == "vfio-pci" || drv.ends_with("_vfio_pci"))
            })
        });
        if let Some(member) = on_vfio {
            let cdev = if f.vfio_cdev {
                " (this kernel has /dev/vfio/devices: if it was built without CONFIG_VFIO_GROUP, \
                 only the iommufd cdev interface exists and QEMU must use it)"
            } else {
                ""
            };
            out.push(Finding::new(
                "group-node-missing",
                Severity::Error,
                Some(*member),
                format!("/dev/vfio/{group}"),
                format!(
                    "{member} is on vfio-pci but /dev/vfio/{group} does not exist{cdev}: QEMU \
                     fails with 'no such file' opening group {group}"
                ),
                "check that udev runs and devtmpfs is mounted on /dev; rebinding the device \
                 ('vfioctl restore' then 'vfioctl bind') recreates the node",
            ));
        }
    }
}

fn idle_d3_disabled(ctx: &Ctx<'_>) -> bool {
    ctx.facts.disable_idle_d3 == Some(true)
        || ctx
            .param("vfio_pci.disable_idle_d3")
            .is_some_and(|p| truthy(&p.value))
        || ctx
            .modprobe_options("vfio_pci", "disable_idle_d3")
            .any(|(_, v)| truthy(v))
}

fn check_power(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let mut asleep = Vec::new();
    for d in ctx.endpoints() {
        let Some(state) = d.power_state.as_deref() else {
            continue;
        };
        let path = sys_dev(&d.address, "power_state");
        let on_vfio = d.driver.as_deref() == Some("vfio-pci");
        match state {
            "D3cold" => {
                asleep.push(d.address);
                let d3cold = if d.d3cold_allowed == Some(true) {
                    format!(
                        "echo 0 > {} to keep it out of D3cold, and ",
                        sys_dev(&d.address, "d3cold_allowed")
                    )
                } else {
                    String::new()
                };
                out.push(Finding::new(
                    "device-d3cold",
                    Severity::Warning,
                    Some(d.address),
                    path,
                    format!(
                        "{} is in D3cold (powered off); waking it for a VM fails on some \
                         platforms ('Unable to change power state from D3cold to D0')",
                        d.address
                    ),
                    format!("{d3cold}boot with vfio-pci.disable_idle_d3=1"),
                ));
            }
            "D3hot" => {
                asleep.push(d.address);
                out.push(Finding::new(
                    "device-d3hot",
                    Severity::Info,
                    Some(d.address),
                    path,
                    format!(
                        "{} is in D3hot{}; if a VM then reports it 'stuck in D3', keep vfio-pci \
                         from putting idle devices to sleep",
                        d.address,
                        if on_vfio {
                            " (vfio-pci parks idle devices there)"
                        } else {
                            ""
                        }
                    ),
                    "boot with vfio-pci.disable_idle_d3=1",
                ));
            }
            _ => {}
        }
    }
    let arm = ctx.facts.arch == Arch::Aarch64;
    if (arm || !asleep.is_empty()) && !idle_d3_disabled(ctx) {
        let loaded = ctx.facts.disable_idle_d3.is_some();
        let why = if arm {
            format!(
                "the Ten64 VFIO page advises turning it off on arm64 boards ({TEN64_VFIO_PAGE})"
            )
        } else {
            format!("{} already asleep", join(&asleep))
        };
        out.push(Finding::new(
            "idle-d3",
            Severity::Warning,
            None,
            if loaded {
                "/sys/module/vfio_pci/parameters/disable_idle_d3"
            } else {
                "/proc/cmdline"
            },
            format!(
                "vfio-pci puts idle devices into D3, and some never wake up for the VM ('stuck in \
                 D3'); {why}"
            ),
            "add vfio-pci.disable_idle_d3=1 to the kernel command line (or 'options vfio-pci \
             disable_idle_d3=1' to /etc/modprobe.d/vfio.conf) and reboot",
        ));
    }
}

/// `major.minor` of a kernel release such as `6.8.0-45-generic`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn check_reset(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    // Since 5.15 the kernel hides reset_method when a device has no reset method at all; before,
    // the attribute does not exist. Without the release, any device showing one tells.
    let has_attribute = match ctx.facts.kernel_release.as_deref().and_then(kernel_version) {
        Some(version) => version >= (5, 15),
        None => ctx.inv.devices().iter().any(|d| d.reset_method.is_some()),
    };
    if !has_attribute {
        if ctx.endpoints().next().is_some() {
            out.push(Finding::new(
                "reset-method-unknown",
                Severity::Info,
                None,
                "/sys/bus/pci/devices/*/reset_method",
                "this kernel has no reset_method attribute (it came in 5.15), so reset support \
                 could not be checked",
                "look for a 'reset' file in each device's sysfs directory: it exists when the \
                 kernel can reset the function",
            ));
        }
        return;
    }
    for d in ctx.endpoints() {
        let path = sys_dev(&d.address, "reset_method");
        let methods = d.reset_method.as_deref().unwrap_or_default();
        if methods.is_empty() {
            out.push(Finding::new(
                "reset-none",
                Severity::Warning,
                Some(d.address),
                path,
                format!(
                    "{} has no reset method: a VM gets it in whatever state the host or the \
                     previous VM left it, and it cannot be reset between VMs",
                    d.address
                ),
                "give it only to guests that tolerate that, or load a device-specific reset \
                 module (e.g. vendor-reset) if one exists for it",
            ));
            continue;
        }
        if methods.iter().all(|m| m == "bus") {
            let siblings: Vec<PciAddress> = ctx
                .inv
                .devices()
                .iter()
                .filter(|o| {
                    o.address != d.address
                        && o.address.domain == d.address.domain
                        && o.address.bus == d.address.bus
                })
                .map(|o| o.address)
                .collect();
            if !siblings.is_empty() {
                // Group mates go to the VM together anyway, so the reset only hits the VM's own
                // devices; anything else on the bus is collateral.
                let mates = ctx.inv.group_members(&d.address);
                let outside: Vec<PciAddress> = siblings
                    .iter()
                    .filter(|a| d.iommu_group.is_none() || !mates.contains(a))
                    .copied()
                    .collect();
                let (severity, tail, remedy) = if outside.is_empty() {
                    (
                        Severity::Info,
                        " (its IOMMU group mates, which go to the same VM anyway)".to_owned(),
                        "nothing to do: give the whole group to one VM".to_owned(),
                    )
                } else {
                    (
                        Severity::Warning,
                        " on the same bus".to_owned(),
                        format!(
                            "give {} to the same VM, or keep them unused while it runs",
                            join(&outside)
                        ),
                    )
                };
                out.push(Finding::new(
                    "reset-bus-shared",
                    severity,
                    Some(d.address),
                    path,
                    format!(
                        "{} can only be reset by a secondary bus reset, which also resets {}{tail}",
                        d.address,
                        join(&siblings)
                    ),
                    remedy,
                ));
            }
        }
    }
}

fn describe_uses(uses: &[HostUse]) -> String {
    let parts: Vec<String> = uses
        .iter()
        .map(|u| match u {
            HostUse::Mount { block, mount_point } => format!("{block} is mounted on {mount_point}"),
            HostUse::Network { interface, detail } => format!("{interface} {detail}"),
            HostUse::Console => "it carries the console".to_owned(),
        })
        .collect();
    join(&parts)
}

fn check_groups(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let inv = ctx.inv;
    for (group, members) in &inv.groups {
        if !members.iter().any(|m| ctx.in_scope(m)) {
            continue;
        }
        let endpoints: Vec<PciAddress> = members
            .iter()
            .filter(|a| inv.get(a).is_some_and(is_endpoint))
            .copied()
            .collect();
        let rule = viability(inv, members);
        for blocker in rule.blockers.iter().filter(|b| b.permanent) {
            out.push(Finding::new(
                "group-never-viable",
                Severity::Error,
                Some(blocker.device),
                sys_dev(&blocker.device, "driver"),
                format!(
                    "IOMMU group {group} can never be given to a VM while bridge {} is on {}: that \
                     driver does DMA of its own, and vfio-pci does not take bridges",
                    blocker.device, blocker.driver
                ),
                format!(
                    "unbind it (echo {} > /sys/bus/pci/drivers/{}/unbind) and keep {} from \
                     binding it again (blacklist {} in /etc/modprobe.d), or move the card to a \
                     slot behind another bridge",
                    blocker.device, blocker.driver, blocker.driver, blocker.driver
                ),
            ));
        }
        let focus = ctx
            .named
            .iter()
            .find(|a| members.contains(a))
            .copied()
            .or_else(|| endpoints.first().copied());
        let fixable: Vec<String> = rule
            .blockers
            .iter()
            .filter(|b| !b.permanent)
            .map(|b| format!("{} is on {}", b.device, b.driver))
            .collect();
        let on_vfio: Vec<PciAddress> = members
            .iter()
            .filter(|a| {
                inv.get(a)
                    .and_then(|d| d.driver.as_deref())
                    .is_some_and(|drv| drv == "vfio-pci" || drv.ends_with("_vfio_pci"))
            })
            .copied()
            .collect();
        if !fixable.is_empty() && !on_vfio.is_empty() {
            out.push(Finding::new(
                "group-not-viable",
                Severity::Error,
                on_vfio.first().copied(),
                format!("/sys/kernel/iommu_groups/{group}/devices"),
                format!(
                    "IOMMU group {group} is half bound: {} {} on vfio-pci but {}; QEMU fails with \
                     'group {group} is not viable'",
                    join(&on_vfio),
                    if on_vfio.len() == 1 { "is" } else { "are" },
                    join(&fixable)
                ),
                format!(
                    "vfioctl bind {} (moves the rest of the group to vfio-pci), or vfioctl \
                     restore {} (gives it all back to the host)",
                    on_vfio[0], on_vfio[0]
                ),
            ));
        } else if !fixable.is_empty()
            && let Some(named) = ctx.named.iter().find(|a| members.contains(a))
        {
            out.push(Finding::new(
                "group-not-bound",
                Severity::Info,
                Some(*named),
                format!("/sys/kernel/iommu_groups/{group}/devices"),
                format!(
                    "IOMMU group {group} is not usable by a VM yet: {}",
                    join(&fixable)
                ),
                format!("vfioctl bind {named} (moves the whole group to vfio-pci)"),
            ));
        }
        if endpoints.len() > 1 {
            let reason = explain_group(inv, members);
            let functions: Vec<PciAddress> = members
                .iter()
                .filter(|a| inv.get(a).is_some_and(|d| !d.is_bridge()))
                .copied()
                .collect();
            out.push(Finding::new(
                "group-shared",
                Severity::Info,
                focus,
                format!("/sys/kernel/iommu_groups/{group}/devices"),
                format!(
                    "IOMMU group {group} holds {}: {}",
                    join(&functions),
                    reason.text
                ),
                "give them to the same VM together ('vfioctl bind' takes the whole group)",
            ));
            for user in &endpoints {
                let Some(uses) = ctx.facts.host_uses.get(user) else {
                    continue;
                };
                let others: Vec<PciAddress> =
                    endpoints.iter().filter(|a| *a != user).copied().collect();
                out.push(Finding::new(
                    "group-member-host-uses",
                    Severity::Error,
                    Some(*user),
                    format!("/sys/kernel/iommu_groups/{group}/devices"),
                    format!(
                        "{user} backs the host ({}) and shares IOMMU group {group} with {}: none \
                         of them can go to a VM without taking it from the host",
                        describe_uses(uses),
                        join(&others)
                    ),
                    format!(
                        "move {user}'s work elsewhere first, or put the card(s) in a slot with \
                         its own IOMMU group"
                    ),
                ));
            }
        }
    }
    if inv.iommu_enabled {
        for d in ctx.endpoints().filter(|d| d.iommu_group.is_none()) {
            out.push(Finding::new(
                "device-no-group",
                Severity::Error,
                Some(d.address),
                sys_dev(&d.address, "iommu_group"),
                format!(
                    "{} has no IOMMU group although the IOMMU is on: the IOMMU does not cover it, \
                     so VFIO cannot take it ('no iommu_group found')",
                    d.address
                ),
                "check the firmware's IOMMU description (DMAR/IVRS/IORT or the device tree's \
                 iommu-map) for this PCIe controller; dmesg shows which devices the IOMMU \
                 driver added",
            ));
        }
    }
}

fn check_named(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    for address in ctx.named {
        let Some(d) = ctx.inv.get(address) else {
            continue;
        };
        if d.is_bridge() {
            out.push(Finding::new(
                "device-is-bridge",
                Severity::Error,
                Some(*address),
                sys_dev(address, "config"),
                format!(
                    "{address} is a {} (a bridge): vfio-pci only takes endpoints",
                    d.role()
                ),
                "name the devices behind it instead ('vfioctl list --tree')",
            ));
        }
        if let Some(uses) = ctx.facts.host_uses.get(address) {
            out.push(Finding::new(
                "host-device",
                Severity::Error,
                Some(*address),
                sys_dev(address, "driver"),
                format!("{address} backs the host: {}", describe_uses(uses)),
                "move the host's use of it elsewhere first ('vfioctl bind --force' overrides, at \
                 your own risk)",
            ));
        }
    }
}

fn check_risky(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let f = ctx.facts;
    if let Some(p) = ctx.param("pcie_acs_override") {
        out.push(Finding::new(
            "acs-override",
            Severity::Warning,
            None,
            "/proc/cmdline",
            format!(
                "{} is on the kernel command line: the IOMMU groups are a lie, devices in \
                 'separate' groups can still reach each other by peer-to-peer DMA",
                p.text
            ),
            "trust the groups only as far as you trust every device in the real group; remove \
             the override (and the patched kernel) to see the true groups",
        ));
    }
    let ids_remedy = "bind by address instead ('vfioctl bind <address>' uses driver_override) and \
                      remove the ids= setting";
    let describe_ids = |value: &str| {
        let ids: Vec<&str> = value.split(',').filter(|s| !s.is_empty()).collect();
        let matching: Vec<PciAddress> = ctx
            .inv
            .devices()
            .iter()
            .filter(|d| {
                ids.iter().any(|id| {
                    id.split(':').take(2).collect::<Vec<_>>().join(":") == d.id.to_string()
                })
            })
            .map(|d| d.address)
            .collect();
        let now = if matching.is_empty() {
            String::new()
        } else {
            format!(" (here: {})", join(&matching))
        };
        format!("{}{now}", ids.join(", "))
    };
    if let Some(p) = ctx.param("vfio_pci.ids") {
        out.push(Finding::new(
            "vfio-pci-ids",
            Severity::Warning,
            None,
            "/proc/cmdline",
            format!(
                "{} makes vfio-pci take every device with ID {} at boot, including identical \
                 devices the host needs",
                p.text,
                describe_ids(&p.value)
            ),
            ids_remedy,
        ));
    }
    for (entry, value) in ctx.modprobe_options("vfio_pci", "ids") {
        out.push(Finding::new(
            "vfio-pci-ids",
            Severity::Warning,
            None,
            entry.path.clone(),
            format!(
                "{} line {} ('{}') makes vfio-pci take every device with ID {}, including \
                 identical devices the host needs",
                entry.path,
                entry.line,
                entry.text,
                describe_ids(value)
            ),
            ids_remedy,
        ));
    }
    for o in &f.driverctl {
        let device = o.device.parse::<PciAddress>().ok();
        if let Some(a) = device
            && !ctx.in_scope(&a)
        {
            continue;
        }
        out.push(Finding::new(
            "driverctl-override",
            Severity::Warning,
            device,
            o.path.clone(),
            format!(
                "driverctl forces {} {} onto {} at every boot; vfioctl cannot give it back to its \
                 own driver while this stays",
                o.bus, o.device, o.driver
            ),
            format!(
                "driverctl unset-override {} (or delete {})",
                o.device, o.path
            ),
        ));
    }
    for d in ctx
        .inv
        .devices()
        .iter()
        .filter(|d| ctx.in_scope(&d.address))
    {
        let Some(over) = d.driver_override.as_deref() else {
            continue;
        };
        if f.journaled.contains(&d.address) {
            continue;
        }
        let by_driverctl = f
            .driverctl
            .iter()
            .any(|o| o.device == d.address.to_string());
        if by_driverctl {
            continue;
        }
        let (severity, unsure) = match &f.journal_unreadable {
            Some(why) => (
                Severity::Info,
                format!(" (vfioctl's journal could not be read to tell: {why})"),
            ),
            None => (Severity::Warning, String::new()),
        };
        out.push(Finding::new(
            "foreign-driver-override",
            severity,
            Some(d.address),
            sys_dev(&d.address, "driver_override"),
            format!(
                "{} has driver_override={over}, set by something other than vfioctl (a script, \
                 udev rule or earlier tool){unsure}: only {over} can bind it, and 'vfioctl \
                 restore' does not know its original driver",
                d.address
            ),
            format!(
                "if nothing needs it: echo > {} (then echo {} > /sys/bus/pci/drivers_probe)",
                sys_dev(&d.address, "driver_override"),
                d.address
            ),
        ));
    }
    if let Some(problem) = &f.journal_problem {
        out.push(Finding::new(
            "journal-damaged",
            Severity::Warning,
            None,
            "/run/vfioctl/journal.json",
            format!("vfioctl's journal could not be read: {problem}"),
            "inspect /run/vfioctl/journal.json; move it away to start over, then restore devices \
             by hand ('vfioctl restore <device>')",
        ));
    }
}

fn check_known(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    for (path, problem) in &ctx.facts.known_problems {
        out.push(Finding::new(
            "known-devices-invalid",
            Severity::Error,
            None,
            path.clone(),
            format!("the known-devices table is not usable and was ignored: {problem}"),
            format!("fix {path} (see data/known-devices.toml in vfioctl for the format)"),
        ));
    }
    for d in ctx.all_endpoints() {
        let Some(k) = ctx.facts.known.get(d.id) else {
            continue;
        };
        let what = k.name.clone().unwrap_or_else(|| d.id.to_string());
        let source = k
            .source
            .as_deref()
            .map(|s| format!(" (source: {s})"))
            .unwrap_or_default();
        let (id, severity, remedy) = match k.status {
            KnownStatus::Works => ("known-device-works", Severity::Info, "nothing to do"),
            KnownStatus::Misbehaves => (
                "known-device-misbehaves",
                Severity::Warning,
                "test with the guest you will run before relying on it; keep a way to recover \
                 the VM (serial console, another boot entry)",
            ),
            KnownStatus::Broken => (
                "known-device-broken",
                Severity::Error,
                "use another device for this VM",
            ),
        };
        out.push(Finding::new(
            id,
            severity,
            Some(d.address),
            sys_dev(&d.address, "device"),
            format!("{} is a {what} [{}]: {}{source}", d.address, d.id, k.note),
            remedy,
        ));
    }
}

fn check_fsl_mc(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let Some(fsl) = &ctx.facts.fsl_mc else {
        return;
    };
    let status = ctx
        .module(VFIO_FSL_MC_MODULE)
        .unwrap_or(ModuleStatus::Unknown);
    if !fsl.vfio_driver && matches!(status, ModuleStatus::Missing | ModuleStatus::Unknown) {
        out.push(Finding::new(
            "fsl-mc-vfio-missing",
            if status == ModuleStatus::Missing {
                Severity::Error
            } else {
                Severity::Warning
            },
            None,
            "/sys/bus/fsl-mc/drivers/vfio-fsl-mc",
            "this host has DPAA2 (fsl-mc) but no vfio-fsl-mc driver: DPAA2 containers (dprc.N) \
             cannot be passed to a VM",
            "use a kernel with CONFIG_VFIO_FSL_MC (mainline since 5.11) or NXP's LSDK kernel",
        ));
    }
    out.push(Finding::new(
        "fsl-mc-irq-cfg",
        Severity::Info,
        None,
        "/sys/bus/fsl-mc",
        "a DPAA2 container given to a VM must be created with DPRC_CFG_OPT_IRQ_CFG_ALLOWED (restool \
         dprc create ... --options=DPRC_CFG_OPT_IRQ_CFG_ALLOWED,...) so the MC firmware can route \
         its interrupts to the VM; containers used by DPDK do not need it",
        format!("see {TEN64_VFIO_PAGE}"),
    ));
}

/// Whether one named device can go to a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The device.
    pub device: PciAddress,
    /// True when no error stands in the way.
    pub can_go: bool,
    /// Other endpoints of its IOMMU group, which must go to the same VM.
    pub with: Vec<PciAddress>,
    /// The errors that stand in the way.
    pub because: Vec<String>,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.can_go {
            write!(f, "{} can go to a VM", self.device)?;
            if !self.with.is_empty() {
                write!(f, " (together with {})", join(&self.with))?;
            }
            Ok(())
        } else {
            write!(
                f,
                "{} cannot go to a VM, because {}",
                self.device,
                self.because.join("; ")
            )
        }
    }
}

/// One verdict per named device: errors that are host-wide or about the device or a member of its
/// group stand in its way; warnings do not.
pub fn verdicts(findings: &[Finding], inv: &Inventory, named: &[PciAddress]) -> Vec<Verdict> {
    named
        .iter()
        .map(|address| {
            let members = inv.group_members(address);
            let because: Vec<String> = findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                // A half-bound group fails QEMU now, but binding the whole group fixes it.
                .filter(|f| f.id != "group-not-viable")
                .filter(|f| {
                    f.device
                        .is_none_or(|d| d == *address || members.contains(&d))
                })
                .map(|f| f.message.clone())
                .collect();
            let with = members
                .iter()
                .filter(|a| *a != address && inv.get(a).is_some_and(is_endpoint))
                .copied()
                .collect();
            Verdict {
                device: *address,
                can_go: because.is_empty(),
                with,
                because,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigInfo, PcieType};
    use crate::device::tests::addr;
    use crate::ids::ClassCode;

    const TABLE: &str = include_str!("../../../data/known-devices.toml");

    fn endpoint(a: &str, id: &str, group: Option<u32>, driver: Option<&str>) -> PciDevice {
        let mut d = PciDevice::new(addr(a), id.parse().unwrap(), ClassCode(0x020000));
        d.config = ConfigInfo {
            header_type: Some(0),
            multifunction: Some(false),
            pcie_type: Some(PcieType::Endpoint),
            extended_readable: true,
            ..ConfigInfo::default()
        };
        d.iommu_group = group;
        d.driver = driver.map(str::to_owned);
        d.power_state = Some("D0".into());
        d.d3cold_allowed = Some(true);
        d.reset_method = Some(vec!["flr".into(), "bus".into()]);
        d
    }

    fn bridge(a: &str, group: Option<u32>, driver: &str) -> PciDevice {
        let mut d = PciDevice::new(addr(a), "8086:a110".parse().unwrap(), ClassCode(0x060400));
        d.config = ConfigInfo {
            header_type: Some(1),
            multifunction: Some(false),
            pcie_type: Some(PcieType::RootPort),
            extended_readable: true,
            ..ConfigInfo::default()
        };
        d.iommu_group = group;
        d.driver = Some(driver.into());
        d.has_secondary_bus = true;
        d
    }

    /// A healthy x86 host: a root port (group 0) and a NIC on vfio-pci (group 1).
    fn healthy() -> (DoctorFacts, Vec<PciDevice>) {
        let mut nic = endpoint("0000:01:00.0", "8086:10d3", Some(1), Some("vfio-pci"));
        nic.parent = Some(addr("0000:00:01.0"));
        let devices = vec![bridge("0000:00:01.0", Some(0), "pcieport"), nic];
        let facts = DoctorFacts {
            arch: Arch::X86_64,
            cmdline: Some("BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on".into()),
            iommu_units: vec!["dmar0".into()],
            group_types: [(0, "DMA-FQ".to_owned()), (1, "DMA".to_owned())].into(),
            dmar_ecap: [("dmar0".to_owned(), Some(0xf050da))].into(),
            its_in_interrupts: None,
            its_in_device_tree: None,
            allow_unsafe_interrupts: Some(false),
            noiommu_mode: Some(false),
            kernel_release: Some("6.8.0".into()),
            modules: VFIO_MODULES
                .iter()
                .map(|m| ((*m).to_owned(), ModuleStatus::Loaded))
                .collect(),
            modprobe: Vec::new(),
            vfio_container_mode: Some(0o20666),
            vfio_group_nodes: [1].into(),
            vfio_cdev: false,
            disable_idle_d3: Some(false),
            driverctl: Vec::new(),
            journaled: [addr("0000:01:00.0")].into(),
            journal_problem: None,
            journal_unreadable: None,
            host_uses: BTreeMap::new(),
            known: KnownDevices::parse(TABLE, "<built-in>").unwrap(),
            known_problems: Vec::new(),
            fsl_mc: None,
            boot: Default::default(),
        };
        (facts, devices)
    }

    fn inventory(devices: Vec<PciDevice>) -> Inventory {
        let mut groups: BTreeMap<u32, Vec<PciAddress>> = BTreeMap::new();
        for d in &devices {
            if let Some(g) = d.iommu_group {
                groups.entry(g).or_default().push(d.address);
            }
        }
        let on = !groups.is_empty();
        Inventory::new(devices, on, groups)
    }

    fn ids(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.id).collect()
    }

    fn run_with(
        change: impl FnOnce(&mut DoctorFacts, &mut Vec<PciDevice>),
    ) -> (Vec<Finding>, Inventory) {
        let (mut facts, mut devices) = healthy();
        change(&mut facts, &mut devices);
        let inv = inventory(devices);
        (run(&facts, &inv, &[]), inv)
    }

    fn fires(id: &str, change: impl FnOnce(&mut DoctorFacts, &mut Vec<PciDevice>)) -> Finding {
        let (findings, _) = run_with(change);
        findings
            .iter()
            .find(|f| f.id == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} did not fire: {:?}", ids(&findings)))
    }

    fn quiet(id: &str, change: impl FnOnce(&mut DoctorFacts, &mut Vec<PciDevice>)) {
        let (findings, _) = run_with(change);
        assert!(
            !ids(&findings).contains(&id),
            "{id} fired: {:#?}",
            findings.iter().find(|f| f.id == id)
        );
    }

    #[test]
    fn healthy_host_has_no_findings() {
        let (findings, _) = run_with(|_, _| {});
        assert!(findings.is_empty(), "{findings:#?}");
    }

    #[test]
    fn shipped_table_parses_and_lists_the_ten64_devices() {
        let t = KnownDevices::parse(TABLE, "data/known-devices.toml").unwrap();
        for (id, status) in [
            ("168c:003e", KnownStatus::Works),
            ("1ac1:089a", KnownStatus::Works),
            ("1b4b:9230", KnownStatus::Misbehaves),
            ("1b4b:9215", KnownStatus::Misbehaves),
        ] {
            assert_eq!(t.get(id.parse().unwrap()).unwrap().status, status, "{id}");
        }
    }

    #[test]
    fn cmdline_and_modprobe_parsers() {
        let p = parse_cmdline("a=1 vfio-pci.ids=10de:2684,10de:22ba \"x=y z\" -- init=2");
        assert_eq!(p[1].name, "vfio_pci.ids");
        assert_eq!(p[1].value, "10de:2684,10de:22ba");
        assert_eq!(p[2].value, "y z");
        assert_eq!(p.len(), 3);
        let e = parse_modprobe_conf(
            "/etc/modprobe.d/x.conf",
            "# c\nblacklist vfio-pci\noptions vfio_pci \\\n  ids=1b4b:9230 disable_idle_d3=1\n",
        );
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0].directive,
            Directive::Blacklist {
                module: "vfio_pci".into()
            }
        );
        assert_eq!(e[1].line, 3);
        assert!(matches!(&e[1].directive, Directive::Options { params, .. } if params.len() == 2));
    }

    #[test]
    fn iommu_off() {
        let f = fires("iommu-off", |f, d| {
            for dev in d.iter_mut() {
                dev.iommu_group = None;
            }
            f.iommu_units.clear();
            f.cmdline = Some("root=/dev/sda1 intel_iommu=off".into());
        });
        assert_eq!(f.severity, Severity::Error);
        assert!(f.message.contains("intel_iommu=off"));
        assert!(f.remedy.contains("remove intel_iommu=off"));
        assert!(f.remedy.contains("intel_iommu=on"));
        quiet("iommu-off", |_, _| {});
    }

    #[test]
    fn iommu_without_groups() {
        let (facts, devices) = healthy();
        let inv = Inventory::new(devices, true, BTreeMap::new());
        assert!(ids(&run(&facts, &inv, &[])).contains(&"iommu-no-groups"));
        quiet("iommu-no-groups", |_, _| {});
    }

    #[test]
    fn identity_groups() {
        let f = fires("iommu-identity-groups", |f, _| {
            f.group_types.insert(1, "identity".into());
            f.cmdline = Some("iommu=pt".into());
        });
        assert_eq!(f.severity, Severity::Info);
        assert!(f.message.contains("iommu=pt"));
        quiet("iommu-identity-groups", |_, _| {});
    }

    #[test]
    fn smmu_bypass() {
        fires("smmu-bypass", |f, _| {
            f.cmdline = Some("arm-smmu.disable_bypass=0".into());
        });
        quiet("smmu-bypass", |f, _| {
            f.cmdline = Some("arm-smmu.disable_bypass=1".into());
        });
    }

    #[test]
    fn interrupt_remapping() {
        let f = fires("interrupt-remapping-unsupported", |f, _| {
            f.dmar_ecap.insert("dmar1".into(), Some(0xf050d2));
        });
        assert!(f.message.contains("dmar1"));
        assert_eq!(f.severity, Severity::Error);
        fires("interrupt-remapping-off", |f, _| {
            f.cmdline = Some("intremap=off".into());
        });
        fires("interrupt-remapping-unknown", |f, _| {
            f.iommu_units = vec!["ivhd0".into()];
            f.dmar_ecap.clear();
        });
        quiet("interrupt-remapping-unsupported", |_, _| {});
        quiet("interrupt-remapping-off", |_, _| {});
        quiet("interrupt-remapping-unknown", |_, _| {});
        // Allowed unsafe interrupts make it a warning, with a warning of its own.
        let (findings, _) = run_with(|f, _| {
            f.dmar_ecap.insert("dmar0".into(), Some(0));
            f.allow_unsafe_interrupts = Some(true);
        });
        assert_eq!(findings[0].id, "interrupt-remapping-unsupported");
        assert_eq!(findings[0].severity, Severity::Warning);
        assert!(ids(&findings).contains(&"unsafe-interrupts-allowed"));
    }

    fn arm(f: &mut DoctorFacts) {
        f.arch = Arch::Aarch64;
        f.iommu_units = vec!["smmu.0x0000000005000000".into()];
        f.dmar_ecap.clear();
        f.disable_idle_d3 = Some(true);
    }

    #[test]
    fn msi_isolation_on_arm64() {
        fires("msi-isolation-missing", |f, _| {
            arm(f);
            f.its_in_interrupts = Some(false);
        });
        fires("msi-isolation-unknown", |f, _| arm(f));
        quiet("msi-isolation-missing", |f, _| {
            arm(f);
            f.its_in_interrupts = Some(false);
            f.its_in_device_tree = Some(true);
        });
        quiet("msi-isolation-unknown", |f, _| {
            arm(f);
            f.its_in_interrupts = Some(true);
        });
    }

    #[test]
    fn unsafe_interrupts_and_noiommu() {
        fires("unsafe-interrupts-allowed", |f, _| {
            f.cmdline = Some("vfio_iommu_type1.allow_unsafe_interrupts=1".into());
        });
        quiet("unsafe-interrupts-allowed", |_, _| {});
        fires("noiommu-mode", |f, _| f.noiommu_mode = Some(true));
        quiet("noiommu-mode", |_, _| {});
    }

    #[test]
    fn modules() {
        let f = fires("module-not-loaded", |f, _| {
            f.modules.insert("vfio_pci".into(), ModuleStatus::Available);
            f.modules.insert("vfio".into(), ModuleStatus::Available);
        });
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.remedy.starts_with("modprobe vfio-pci"), "{}", f.remedy);
        assert!(f.message.contains("nor vfio"));
        let f = fires("module-missing", |f, _| {
            f.modules.insert("vfio_pci".into(), ModuleStatus::Missing);
        });
        assert_eq!(f.severity, Severity::Error);
        assert!(f.remedy.contains("CONFIG_VFIO_PCI"));
        fires("module-unknown", |f, _| {
            f.modules.insert("vfio_pci".into(), ModuleStatus::Unknown);
        });
        quiet("module-not-loaded", |f, _| {
            f.modules.insert("vfio_pci".into(), ModuleStatus::Builtin);
        });
        quiet("module-missing", |_, _| {});
        quiet("module-unknown", |_, _| {});
    }

    #[test]
    fn blacklisted_modules() {
        let f = fires("module-blacklisted", |f, _| {
            f.modprobe = parse_modprobe_conf(
                "/etc/modprobe.d/no-vfio.conf",
                "install vfio-pci /bin/false\n",
            );
        });
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(f.path, "/etc/modprobe.d/no-vfio.conf");
        let f = fires("module-blacklisted", |f, _| {
            f.modprobe = parse_modprobe_conf("/etc/modprobe.d/b.conf", "# x\nblacklist vfio_pci\n");
        });
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.remedy.contains("line 2"));
        quiet("module-blacklisted", |f, _| {
            f.modprobe = parse_modprobe_conf(
                "/etc/modprobe.d/b.conf",
                "blacklist nouveau\ninstall vfio-pci /sbin/modprobe --ignore-install vfio-pci\n",
            );
        });
    }

    #[test]
    fn dev_vfio() {
        let f = fires("dev-vfio-mode", |f, _| {
            f.vfio_container_mode = Some(0o20600);
        });
        assert!(f.message.contains("0600"), "{}", f.message);
        fires("dev-vfio-missing", |f, _| f.vfio_container_mode = None);
        quiet("dev-vfio-mode", |_, _| {});
        quiet("dev-vfio-missing", |f, _| {
            f.vfio_container_mode = None;
            f.modules.insert("vfio".into(), ModuleStatus::Available);
        });
        let f = fires("group-node-missing", |f, _| f.vfio_group_nodes.clear());
        assert_eq!(f.path, "/dev/vfio/1");
        quiet("group-node-missing", |f, d| {
            f.vfio_group_nodes.clear();
            d[1].driver = Some("e1000e".into());
        });
    }

    #[test]
    fn power() {
        let f = fires("idle-d3", |f, _| {
            arm(f);
            f.disable_idle_d3 = Some(false);
            f.its_in_interrupts = Some(true);
        });
        assert!(f.message.contains(TEN64_VFIO_PAGE));
        assert!(f.remedy.contains("vfio-pci.disable_idle_d3=1"));
        fires("idle-d3", |_, d| d[1].power_state = Some("D3hot".into()));
        quiet("idle-d3", |_, _| {});
        quiet("idle-d3", |f, d| {
            d[1].power_state = Some("D3hot".into());
            f.disable_idle_d3 = None;
            f.cmdline = Some("vfio-pci.disable_idle_d3=1".into());
        });
        let f = fires("device-d3cold", |_, d| {
            d[1].power_state = Some("D3cold".into());
        });
        assert!(f.remedy.contains("d3cold_allowed"));
        quiet("device-d3cold", |_, _| {});
        let f = fires("device-d3hot", |_, d| {
            d[1].power_state = Some("D3hot".into());
        });
        assert_eq!(f.severity, Severity::Info);
        quiet("device-d3hot", |_, _| {});
    }

    #[test]
    fn reset() {
        fires("reset-none", |_, d| d[1].reset_method = Some(Vec::new()));
        // 5.15+ hides the attribute of a device without any reset method.
        fires("reset-none", |_, d| d[1].reset_method = None);
        fires("reset-none", |f, d| {
            f.kernel_release = None;
            d[1].reset_method = None;
            d[0].reset_method = Some(Vec::new());
        });
        quiet("reset-none", |_, _| {});
        fires("reset-method-unknown", |f, d| {
            f.kernel_release = Some("5.10.0-35-arm64".into());
            d[1].reset_method = None;
        });
        fires("reset-method-unknown", |f, d| {
            f.kernel_release = None;
            d[1].reset_method = None;
        });
        quiet("reset-method-unknown", |_, _| {});
        let f = fires("reset-bus-shared", |_, d| {
            d[1].reset_method = Some(vec!["bus".into()]);
            let mut audio = endpoint("0000:01:00.1", "8086:10d4", Some(2), Some("snd_hda_intel"));
            audio.parent = Some(addr("0000:00:01.0"));
            d.push(audio);
        });
        assert!(f.message.contains("0000:01:00.1"), "{}", f.message);
        assert_eq!(f.severity, Severity::Warning);
        // A sibling in the same group goes to the same VM: worth knowing, nothing more.
        let f = fires("reset-bus-shared", |_, d| {
            d[1].reset_method = Some(vec!["bus".into()]);
            let mut audio = endpoint("0000:01:00.1", "8086:10d4", Some(1), Some("vfio-pci"));
            audio.parent = Some(addr("0000:00:01.0"));
            d.push(audio);
        });
        assert_eq!(f.severity, Severity::Info);
        quiet("reset-bus-shared", |_, d| {
            d[1].reset_method = Some(vec!["bus".into()]);
        });
    }

    fn shared_group(f: &mut DoctorFacts, d: &mut Vec<PciDevice>) {
        let mut tpu = endpoint("0000:01:00.1", "1ac1:089a", Some(1), None);
        tpu.parent = Some(addr("0000:00:01.0"));
        d.push(tpu);
        f.journaled.clear();
    }

    #[test]
    fn groups() {
        let f = fires("group-shared", shared_group);
        assert!(
            f.message.contains("0000:01:00.0 and 0000:01:00.1"),
            "{}",
            f.message
        );
        quiet("group-shared", |_, _| {});
        let f = fires("group-never-viable", |_, d| {
            let mut b = bridge("0000:02:00.0", Some(1), "shpchp");
            b.config.pcie_type = Some(PcieType::PcieToPciBridge);
            d.push(b);
        });
        assert_eq!(f.device, Some(addr("0000:02:00.0")));
        assert!(f.remedy.contains("shpchp/unbind"));
        quiet("group-never-viable", |_, _| {});
        let f = fires("group-member-host-uses", |f, d| {
            shared_group(f, d);
            f.host_uses.insert(
                addr("0000:01:00.1"),
                vec![HostUse::Mount {
                    block: "sda1".into(),
                    mount_point: "/".into(),
                }],
            );
        });
        assert!(f.message.contains("sda1 is mounted on /"));
        quiet("group-member-host-uses", |f, _| {
            // Used by the host but alone in its group: nothing else is held back.
            f.host_uses
                .insert(addr("0000:01:00.0"), vec![HostUse::Console]);
        });
        let f = fires("group-not-viable", |f, d| {
            shared_group(f, d);
            d[2].driver = Some("apex".into());
        });
        assert!(
            f.message.contains("0000:01:00.1 is on apex"),
            "{}",
            f.message
        );
        assert_eq!(f.severity, Severity::Error);
        quiet("group-not-viable", shared_group);
        quiet("group-not-viable", |f, d| {
            // Nothing bound yet: nothing is half done.
            shared_group(f, d);
            d[1].driver = Some("e1000e".into());
            d[2].driver = Some("apex".into());
        });
        fires("device-no-group", |_, d| {
            d.push(endpoint("0000:03:00.0", "8086:1533", None, Some("igb")));
        });
        quiet("device-no-group", |_, _| {});
    }

    #[test]
    fn risky_setups() {
        let f = fires("acs-override", |f, _| {
            f.cmdline = Some("pcie_acs_override=downstream,multifunction".into());
        });
        assert!(f.message.contains("lie"));
        quiet("acs-override", |_, _| {});
        let f = fires("vfio-pci-ids", |f, _| {
            f.cmdline = Some("vfio-pci.ids=8086:10d3".into());
        });
        assert!(f.message.contains("here: 0000:01:00.0"), "{}", f.message);
        let f = fires("vfio-pci-ids", |f, _| {
            f.modprobe = parse_modprobe_conf(
                "/etc/modprobe.d/vfio.conf",
                "options vfio-pci ids=10de:2684\n",
            );
        });
        assert_eq!(f.path, "/etc/modprobe.d/vfio.conf");
        quiet("vfio-pci-ids", |f, _| {
            f.modprobe = parse_modprobe_conf(
                "/etc/modprobe.d/vfio.conf",
                "options vfio-pci disable_idle_d3=1\n",
            );
        });
        let f = fires("driverctl-override", |f, _| {
            f.driverctl.push(DriverctlOverride {
                path: "/etc/driverctl.d/pci-0000:01:00.0".into(),
                bus: "pci".into(),
                device: "0000:01:00.0".into(),
                driver: "vfio-pci".into(),
            });
        });
        assert!(f.remedy.contains("driverctl unset-override 0000:01:00.0"));
        quiet("driverctl-override", |_, _| {});
        fires("foreign-driver-override", |f, d| {
            d[1].driver_override = Some("vfio-pci".into());
            f.journaled.clear();
        });
        quiet("foreign-driver-override", |_, d| {
            // vfioctl bound it: the journal knows.
            d[1].driver_override = Some("vfio-pci".into());
        });
        let f = fires("foreign-driver-override", |f, d| {
            d[1].driver_override = Some("vfio-pci".into());
            f.journaled.clear();
            f.journal_unreadable = Some("permission denied".into());
        });
        assert_eq!(f.severity, Severity::Info);
        fires("journal-damaged", |f, _| {
            f.journal_problem = Some("expected value at line 1".into());
        });
        quiet("journal-damaged", |_, _| {});
    }

    #[test]
    fn known_devices() {
        let f = fires("known-device-misbehaves", |_, d| {
            d[1].id = "1b4b:9230".parse().unwrap();
        });
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.message.contains("panic"));
        let f = fires("known-device-works", |_, d| {
            d[1].id = "168c:003e".parse().unwrap();
        });
        assert_eq!(f.severity, Severity::Info);
        fires("known-device-broken", |f, d| {
            d[1].id = "1b4b:9230".parse().unwrap();
            let local = KnownDevices::parse(
                "version = 1\n[[device]]\nid = \"1b4b:9230\"\nstatus = \"broken\"\nnote = \"x\"\n",
                "/etc/vfioctl/devices.toml",
            )
            .unwrap();
            f.known = f.known.clone().merged(local);
        });
        quiet("known-device-misbehaves", |_, _| {});
        quiet("known-device-works", |_, _| {});
        quiet("known-device-broken", |_, _| {});
        fires("known-devices-invalid", |f, _| {
            f.known_problems.push((
                "/etc/vfioctl/devices.toml".into(),
                "/etc/vfioctl/devices.toml:3:1: unknown field".into(),
            ));
        });
        quiet("known-devices-invalid", |_, _| {});
    }

    #[test]
    fn fsl_mc() {
        let f = fires("fsl-mc-vfio-missing", |f, _| {
            f.fsl_mc = Some(FslMcFacts { vfio_driver: false });
            f.modules
                .insert(VFIO_FSL_MC_MODULE.into(), ModuleStatus::Missing);
        });
        assert!(f.remedy.contains("CONFIG_VFIO_FSL_MC"));
        quiet("fsl-mc-vfio-missing", |f, _| {
            f.fsl_mc = Some(FslMcFacts { vfio_driver: true });
            f.modules
                .insert(VFIO_FSL_MC_MODULE.into(), ModuleStatus::Loaded);
        });
        let f = fires("module-not-loaded", |f, _| {
            f.fsl_mc = Some(FslMcFacts { vfio_driver: false });
            f.modules
                .insert(VFIO_FSL_MC_MODULE.into(), ModuleStatus::Available);
        });
        assert_eq!(f.remedy, "modprobe vfio-fsl-mc");
        let (findings, _) = run_with(|f, _| {
            f.fsl_mc = Some(FslMcFacts { vfio_driver: false });
            f.modules
                .insert(VFIO_FSL_MC_MODULE.into(), ModuleStatus::Available);
            f.modules.insert("vfio_pci".into(), ModuleStatus::Available);
        });
        let remedies: Vec<&str> = findings
            .iter()
            .filter(|f| f.id == "module-not-loaded")
            .map(|f| f.remedy.as_str())
            .collect();
        assert_eq!(remedies.len(), 2, "{remedies:?}");
        assert!(remedies.contains(&"modprobe vfio-fsl-mc"));
        fires("fsl-mc-irq-cfg", |f, _| {
            f.fsl_mc = Some(FslMcFacts { vfio_driver: true });
        });
        quiet("fsl-mc-irq-cfg", |_, _| {});
    }

    #[test]
    fn named_devices_scope_and_verdicts() {
        let (mut facts, mut devices) = healthy();
        shared_group(&mut facts, &mut devices);
        let mut other = endpoint("0000:05:00.0", "8086:1533", Some(5), Some("igb"));
        other.reset_method = Some(Vec::new());
        devices.push(other);
        facts.host_uses.insert(
            addr("0000:05:00.0"),
            vec![HostUse::Network {
                interface: "eth0".into(),
                detail: "carries the default route".into(),
            }],
        );
        let inv = inventory(devices);
        let named = [addr("0000:01:00.1")];
        let findings = run(&facts, &inv, &named);
        // 0000:05:00.0's missing reset is outside the scope.
        assert!(!ids(&findings).contains(&"reset-none"), "{findings:#?}");
        let v = verdicts(&findings, &inv, &named);
        assert!(v[0].can_go);
        assert_eq!(
            v[0].to_string(),
            "0000:01:00.1 can go to a VM (together with 0000:01:00.0)"
        );
        let named = [addr("0000:05:00.0")];
        let findings = run(&facts, &inv, &named);
        assert!(ids(&findings).contains(&"host-device"));
        assert!(ids(&findings).contains(&"reset-none"));
        let v = verdicts(&findings, &inv, &named);
        assert!(!v[0].can_go);
        assert!(
            v[0].to_string()
                .starts_with("0000:05:00.0 cannot go to a VM, because 0000:05:00.0 backs the host"),
            "{}",
            v[0]
        );
        let mut bound_elsewhere = inv.clone();
        let mut devices: Vec<PciDevice> = bound_elsewhere.devices().to_vec();
        for d in &mut devices {
            d.driver = match d.address.to_string().as_str() {
                "0000:01:00.0" => Some("e1000e".into()),
                "0000:01:00.1" => Some("apex".into()),
                _ => d.driver.clone(),
            };
        }
        bound_elsewhere = Inventory::new(devices, true, bound_elsewhere.groups.clone());
        let named1 = [addr("0000:01:00.1")];
        let findings = run(&facts, &bound_elsewhere, &named1);
        let hint = findings.iter().find(|f| f.id == "group-not-bound").unwrap();
        assert_eq!(hint.severity, Severity::Info);
        assert!(hint.remedy.starts_with("vfioctl bind 0000:01:00.1"));
        assert!(!ids(&run(&facts, &bound_elsewhere, &[])).contains(&"group-not-bound"));
        let named = [addr("0000:00:01.0")];
        let findings = run(&facts, &inv, &named);
        assert!(ids(&findings).contains(&"device-is-bridge"));
    }

    #[test]
    fn host_bridges_and_the_hosts_own_devices_are_not_candidates() {
        quiet("reset-none", |f, d| {
            let mut host_bridge = endpoint("0000:00:00.0", "8086:0d57", None, None);
            host_bridge.class = ClassCode(0x060000);
            host_bridge.reset_method = None;
            d.push(host_bridge);
            d[1].reset_method = None;
            f.host_uses
                .insert(addr("0000:01:00.0"), vec![HostUse::Console]);
        });
        // The known-devices table still speaks about the host's own devices.
        fires("known-device-misbehaves", |f, d| {
            d[1].id = "1b4b:9230".parse().unwrap();
            f.host_uses
                .insert(addr("0000:01:00.0"), vec![HostUse::Console]);
        });
    }

    #[test]
    fn findings_are_sorted_errors_first() {
        let (findings, _) = run_with(|f, d| {
            f.noiommu_mode = Some(true);
            f.modules.insert("vfio_pci".into(), ModuleStatus::Missing);
            d[1].power_state = Some("D3hot".into());
        });
        let severities: Vec<Severity> = findings.iter().map(|f| f.severity).collect();
        let mut sorted = severities.clone();
        sorted.sort();
        assert_eq!(severities, sorted);
    }
}
