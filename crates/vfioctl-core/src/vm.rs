//! VM definitions: which devices a VM gets, named by address *and* identity, and how QEMU runs it.
//!
//! A definition lives in `/etc/vfioctl/vms/<name>.toml`:
//!
//! ```toml
//! version = 1
//! boot = true             # bound at boot by `vfioctl apply`
//! user = "qemu"           # owns /dev/vfio/<group>
//!
//! [[device]]
//! address = "0001:03:00.0"
//! id = "168c:003e"        # what must be found at that address
//! subsystem = "1a56:143a" # optional, stricter
//!
//! dprc = ["dprc.2"]       # DPAA2 containers
//!
//! [qemu]
//! machine = "virt"
//! memory = "2G"
//! ```
//!
//! A device is named by its address because that is what the kernel binds, and by its identity
//! because addresses move: a firmware update renumbers buses, a new card takes a slot. When the
//! device at an address is not the one the definition expects, vfioctl refuses it and names both,
//! instead of silently handing the host's NVMe disk to a guest.
//!
//! Parsing and validation are pure: the host layer reads the file, this module turns its text into
//! a [`VmDefinition`] or an error with a line and column, compares it with an [`Inventory`], and
//! renders the QEMU command line.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use toml::Spanned;

use crate::address::PciAddress;
use crate::device::Inventory;
use crate::fslmc::DprcName;
use crate::ids::VendorDevice;
use crate::plan::VFIO_PCI;
use crate::render::qemu::{Machine, qemu_args};
use crate::render::{Passthrough, RenderError};

/// The version of the definition format this vfioctl reads and writes.
pub const VM_FORMAT_VERSION: u32 = 1;

/// The name of a VM: the stem of its `<name>.toml`, so never a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VmName(String);

/// Why a string is not a VM name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a VM name (letters, digits, '_', '.' and '-', not starting with '.' or '-', \
     at most 64 characters)"
)]
pub struct VmNameError(pub String);

impl VmName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for VmName {
    type Err = VmNameError;

    /// Accepts `[A-Za-z0-9_.-]+`: no `/`, so a name can never leave the definitions directory, and
    /// no leading `.` (hidden files, `..`) or `-` (it would read as an option).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && !text.starts_with(['.', '-'])
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(VmNameError(text.to_owned()))
        }
    }
}

impl fmt::Display for VmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for VmName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A position in a definition file, both 1-based; the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Location {
    /// Line.
    pub line: usize,
    /// Column.
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `text`.
    pub fn of(text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Self { line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Why a definition's text is not a valid definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct VmParseError {
    /// Where the problem is, when known.
    pub location: Option<Location>,
    /// What is wrong, as one lowercase sentence.
    pub message: String,
}

impl VmParseError {
    fn at(text: &str, span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        Self {
            location: span.map(|s| Location::of(text, s.start)),
            message: message.into(),
        }
    }

    /// The error as compilers print it: `file:line:column: message`.
    pub fn render(&self, file: &str) -> String {
        match self.location {
            Some(l) => format!("{file}:{}:{}: {}", l.line, l.column, self.message),
            None => format!("{file}: {}", self.message),
        }
    }
}

/// One PCI function a VM gets: where it is, and what must be found there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmDevice {
    /// The function's address (`0001:03:00.0`).
    pub address: PciAddress,
    /// The `vendor:device` ID expected at that address.
    pub id: VendorDevice,
    /// The subsystem `vendor:device` expected, when given (tells two cards of one chip apart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsystem: Option<VendorDevice>,
    /// Where its `[[device]]` entry is in the file.
    #[serde(skip)]
    pub location: Option<Location>,
}

impl VmDevice {
    /// The expected identity in words: `168c:003e` or `168c:003e (subsystem 1a56:143a)`.
    pub fn expected(&self) -> String {
        identity(self.id, self.subsystem)
    }
}

fn identity(id: VendorDevice, subsystem: Option<VendorDevice>) -> String {
    match subsystem {
        Some(s) => format!("{id} (subsystem {s})"),
        None => id.to_string(),
    }
}

/// A QEMU memory size: a number of bytes with an optional `K`, `M`, `G` or `T` suffix, as `-m`
/// takes it (`2G`, `512M`; a bare number means MiB to QEMU).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MemorySize(String);

impl MemorySize {
    /// The size as QEMU's `-m` takes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for MemorySize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
        let suffix_len = text.len() - digits.len();
        let ok = !digits.is_empty()
            && digits.len() <= 12
            && suffix_len <= 1
            && digits.bytes().all(|b| b.is_ascii_digit())
            && digits.bytes().any(|b| b != b'0');
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "'{text}' is not a memory size (expected a number with an optional K, M, G or T \
                 suffix, e.g. \"4G\")"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for MemorySize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A disk image given to the guest with `-drive`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// The image file.
    pub file: String,
    /// Its format (`raw`, `qcow2`); named, never probed, because probing a raw image lets the
    /// guest turn it into something else.
    #[serde(default = "default_format")]
    pub format: String,
    /// The interface (`virtio`, `ide`, `none`, ...).
    #[serde(default = "default_interface")]
    pub interface: String,
    /// Read-only.
    #[serde(default)]
    pub readonly: bool,
}

fn default_format() -> String {
    "raw".to_owned()
}

fn default_interface() -> String {
    "virtio".to_owned()
}

fn de_machine<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Machine, D::Error> {
    String::deserialize(deserializer)?
        .parse()
        .map_err(serde::de::Error::custom)
}

fn ser_machine<S: serde::Serializer>(machine: &Machine, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(machine.name())
}

/// How QEMU runs the VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QemuConfig {
    /// The QEMU binary: a name looked up in `PATH`, or a path (default: the machine's,
    /// `qemu-system-x86_64` for q35, `qemu-system-aarch64` for virt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
    /// The machine type: `q35` or `virt`.
    #[serde(deserialize_with = "de_machine", serialize_with = "ser_machine")]
    pub machine: Machine,
    /// The accelerator (`kvm`, `tcg`): `-accel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accel: Option<String>,
    /// The CPU model (`host`, `max`, `cortex-a53`): `-cpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory: `-m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemorySize>,
    /// Virtual CPUs: `-smp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// A kernel to boot directly: `-kernel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// Its initrd: `-initrd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd: Option<String>,
    /// Firmware (OVMF, QEMU_EFI, U-Boot): `-bios`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// The kernel command line: `-append`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append: Option<String>,
    /// Disk images, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<Disk>,
    /// Arguments appended as they are, after everything vfioctl renders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
}

impl QemuConfig {
    /// The binary to run: the configured one, or the machine's.
    pub fn binary(&self) -> &str {
        self.binary
            .as_deref()
            .unwrap_or_else(|| self.machine.qemu_binary())
    }
}

/// A parsed and validated VM definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VmDefinition {
    /// Format version (1).
    pub version: u32,
    /// What the VM is for.
    pub description: Option<String>,
    /// Bind its devices at boot (`vfioctl apply`).
    pub boot: bool,
    /// The user that gets `/dev/vfio/<group>` (the one QEMU runs as).
    pub user: Option<String>,
    /// PCI functions, in file order.
    pub devices: Vec<VmDevice>,
    /// DPAA2 containers.
    pub dprc: Vec<DprcName>,
    /// How QEMU runs it; absent for VMs started by something else (libvirt).
    pub qemu: Option<QemuConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    version: Spanned<u32>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    boot: bool,
    #[serde(default)]
    user: Option<Spanned<String>>,
    #[serde(default, rename = "device")]
    devices: Vec<Spanned<VmDevice>>,
    #[serde(default)]
    dprc: Vec<Spanned<DprcName>>,
    #[serde(default)]
    qemu: Option<Spanned<QemuConfig>>,
}

/// A user name as `useradd` accepts it, or a numeric UID.
fn valid_user(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 32
        && (bytes.iter().all(u8::is_ascii_digit)
            || ((bytes[0].is_ascii_alphabetic() || bytes[0] == b'_')
                && bytes.iter().enumerate().all(|(i, &b)| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'_' | b'-' | b'.')
                        || (b == b'$' && i == bytes.len() - 1)
                })))
}

/// A word QEMU takes inside an option (`kvm`, `host`, `qcow2`): no commas, no spaces.
fn valid_word(word: &str) -> bool {
    !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'='))
}

impl VmDefinition {
    /// Parses and validates a definition's text. Errors carry the line and column of the problem.
    ///
    /// # Errors
    ///
    /// TOML syntax errors, unknown keys, values of the wrong type or shape, an unsupported
    /// `version`, a device listed twice, nothing to pass through, DPAA2 containers on `q35`.
    pub fn parse(text: &str) -> Result<Self, VmParseError> {
        let raw: RawDefinition = toml::from_str(text)
            .map_err(|e| VmParseError::at(text, e.span(), e.message().trim_end().to_owned()))?;
        if *raw.version.get_ref() != VM_FORMAT_VERSION {
            return Err(VmParseError::at(
                text,
                Some(raw.version.span()),
                format!(
                    "version {} is not supported: this vfioctl reads version {VM_FORMAT_VERSION}",
                    raw.version.get_ref()
                ),
            ));
        }
        let user = match raw.user {
            Some(user) if !valid_user(user.get_ref()) => {
                return Err(VmParseError::at(
                    text,
                    Some(user.span()),
                    format!("'{}' is not a user name or UID", user.get_ref()),
                ));
            }
            other => other.map(Spanned::into_inner),
        };
        let mut seen: BTreeMap<PciAddress, Location> = BTreeMap::new();
        let mut devices = Vec::new();
        for spanned in raw.devices {
            let location = Location::of(text, spanned.span().start);
            let mut device = spanned.into_inner();
            if let Some(first) = seen.insert(device.address, location) {
                return Err(VmParseError {
                    location: Some(location),
                    message: format!(
                        "device {} is listed twice (first on line {})",
                        device.address, first.line
                    ),
                });
            }
            device.location = Some(location);
            devices.push(device);
        }
        let mut dprc = Vec::new();
        for spanned in &raw.dprc {
            if dprc.contains(spanned.get_ref()) {
                return Err(VmParseError::at(
                    text,
                    Some(spanned.span()),
                    format!("{} is listed twice", spanned.get_ref()),
                ));
            }
            dprc.push(*spanned.get_ref());
        }
        if devices.is_empty() && dprc.is_empty() {
            return Err(VmParseError {
                location: Some(Location { line: 1, column: 1 }),
                message: "the definition has no [[device]] and no dprc: nothing to pass through"
                    .to_owned(),
            });
        }
        let qemu = match raw.qemu {
            None => None,
            Some(spanned) => {
                let span = spanned.span();
                let qemu = spanned.into_inner();
                Self::validate_qemu(text, span, &qemu, &dprc)?;
                Some(qemu)
            }
        };
        Ok(Self {
            version: VM_FORMAT_VERSION,
            description: raw.description,
            boot: raw.boot,
            user,
            devices,
            dprc,
            qemu,
        })
    }

    fn validate_qemu(
        text: &str,
        span: Range<usize>,
        qemu: &QemuConfig,
        dprc: &[DprcName],
    ) -> Result<(), VmParseError> {
        let fail = |message: String| Err(VmParseError::at(text, Some(span.clone()), message));
        if qemu.machine != Machine::Virt
            && let Some(first) = dprc.first()
        {
            return fail(format!(
                "{first} is a DPAA2 container, which only the virt machine (qemu-system-aarch64) \
                 can take; [qemu] machine is {}",
                qemu.machine
            ));
        }
        for (key, value) in [("accel", &qemu.accel), ("cpu", &qemu.cpu)] {
            if let Some(v) = value
                && !valid_word(v)
            {
                return fail(format!("[qemu] {key} = {v:?} is not a QEMU {key} name"));
            }
        }
        if qemu.cpus == Some(0) {
            return fail("[qemu] cpus must be at least 1".to_owned());
        }
        if qemu.binary.as_deref() == Some("") {
            return fail("[qemu] binary is empty".to_owned());
        }
        for disk in &qemu.disks {
            if disk.file.is_empty() {
                return fail("a [qemu] disk has an empty file".to_owned());
            }
            for (key, value) in [("format", &disk.format), ("interface", &disk.interface)] {
                if !valid_word(value) || value.contains('=') {
                    return fail(format!(
                        "disk {}: {key} = {value:?} is not a QEMU {key}",
                        disk.file
                    ));
                }
            }
        }
        // An argv cannot carry NUL bytes; TOML strings can.
        let strings = [
            &qemu.binary,
            &qemu.kernel,
            &qemu.initrd,
            &qemu.firmware,
            &qemu.append,
        ];
        let has_nul = strings
            .iter()
            .any(|s| s.as_deref().is_some_and(|s| s.contains('\0')))
            || qemu.extra_args.iter().any(|a| a.contains('\0'))
            || qemu.disks.iter().any(|d| d.file.contains('\0'));
        if has_nul {
            return fail("[qemu] holds a NUL character, which no command line can".to_owned());
        }
        Ok(())
    }

    /// The addresses of the PCI functions, in file order.
    pub fn addresses(&self) -> Vec<PciAddress> {
        self.devices.iter().map(|d| d.address).collect()
    }
}

/// How a configured device compares with what the host has at its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeviceState {
    /// The expected device, on vfio-pci.
    Bound,
    /// The expected device, on another driver or none.
    NotBound {
        /// Its driver.
        driver: Option<String>,
    },
    /// Another device is at the address.
    Drifted {
        /// What is there.
        found_id: VendorDevice,
        /// Its subsystem.
        found_subsystem: Option<VendorDevice>,
        /// Where devices with the expected identity are now.
        moved_to: Vec<PciAddress>,
    },
    /// No device at the address.
    Missing {
        /// Where devices with the expected identity are now.
        moved_to: Vec<PciAddress>,
    },
}

impl DeviceState {
    /// The state as one word for tables and JSON.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Bound => "bound",
            Self::NotBound { .. } => "not_bound",
            Self::Drifted { .. } => "drifted",
            Self::Missing { .. } => "missing",
        }
    }

    /// True when the host has the expected device at the address.
    pub fn identity_ok(&self) -> bool {
        matches!(self, Self::Bound | Self::NotBound { .. })
    }
}

/// One configured device checked against the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceCheck {
    /// The device as configured.
    pub device: VmDevice,
    /// What the host has.
    #[serde(flatten)]
    pub state: DeviceState,
}

impl DeviceCheck {
    /// One sentence about a device whose identity does not match, naming both identities and
    /// where the expected device went; `None` when the identity matches.
    pub fn drift_message(&self) -> Option<String> {
        let d = &self.device;
        let moved = |moved_to: &[PciAddress]| match moved_to {
            [] => String::new(),
            list => format!("; a {} is now at {}", d.expected(), crate::comma_list(list)),
        };
        match &self.state {
            DeviceState::Bound | DeviceState::NotBound { .. } => None,
            DeviceState::Drifted {
                found_id,
                found_subsystem,
                moved_to,
            } => Some(format!(
                "{} should be {} but is {}{}",
                d.address,
                d.expected(),
                identity(*found_id, *found_subsystem),
                moved(moved_to)
            )),
            DeviceState::Missing { moved_to } => Some(format!(
                "{} should be {} but there is no device at that address{}",
                d.address,
                d.expected(),
                moved(moved_to)
            )),
        }
    }
}

fn matches_identity(dev: &crate::PciDevice, expected: &VmDevice) -> bool {
    dev.id == expected.id && expected.subsystem.is_none_or(|s| dev.subsystem == Some(s))
}

/// Checks every configured device against the inventory: is the expected device at its address,
/// and is it on vfio-pci.
pub fn check_devices(def: &VmDefinition, inventory: &Inventory) -> Vec<DeviceCheck> {
    def.devices
        .iter()
        .map(|expected| {
            let moved_to = || {
                inventory
                    .devices()
                    .iter()
                    .filter(|d| d.address != expected.address && matches_identity(d, expected))
                    .map(|d| d.address)
                    .collect()
            };
            let state = match inventory.get(&expected.address) {
                None => DeviceState::Missing {
                    moved_to: moved_to(),
                },
                Some(dev) if !matches_identity(dev, expected) => DeviceState::Drifted {
                    found_id: dev.id,
                    found_subsystem: dev.subsystem,
                    moved_to: moved_to(),
                },
                Some(dev) if dev.driver.as_deref() == Some(VFIO_PCI) => DeviceState::Bound,
                Some(dev) => DeviceState::NotBound {
                    driver: dev.driver.clone(),
                },
            };
            DeviceCheck {
                device: expected.clone(),
                state,
            }
        })
        .collect()
}

/// The endpoints of one IOMMU group a definition touches: those it lists and those it does not
/// (which are bound with them anyway, since a group goes to one VM whole).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupCoverage {
    /// The group.
    pub group: u32,
    /// Endpoints the definition lists.
    pub listed: Vec<PciAddress>,
    /// Endpoints it does not list.
    pub unlisted: Vec<PciAddress>,
}

/// The IOMMU groups of the configured devices that exist on the host, in ascending order.
pub fn group_coverage(def: &VmDefinition, inventory: &Inventory) -> Vec<GroupCoverage> {
    let listed: BTreeSet<PciAddress> = def.addresses().into_iter().collect();
    let groups: BTreeSet<u32> = listed
        .iter()
        .filter_map(|a| inventory.get(a))
        .filter_map(|d| d.iommu_group)
        .collect();
    groups
        .into_iter()
        .map(|group| {
            let endpoints = inventory
                .groups
                .get(&group)
                .into_iter()
                .flatten()
                .filter(|a| inventory.get(a).is_some_and(|d| !d.is_bridge()));
            let (yes, no): (Vec<PciAddress>, Vec<PciAddress>) =
                endpoints.partition(|a| listed.contains(a));
            GroupCoverage {
                group,
                listed: yes,
                unlisted: no,
            }
        })
        .collect()
}

/// What the VM gets: its listed functions, every other endpoint of their groups, and its DPAA2
/// containers.
pub fn passthrough(def: &VmDefinition, inventory: &Inventory) -> Passthrough {
    let mut pci: BTreeSet<PciAddress> = def.addresses().into_iter().collect();
    for coverage in group_coverage(def, inventory) {
        pci.extend(coverage.unlisted);
    }
    Passthrough {
        pci: pci.into_iter().collect(),
        dprc: def.dprc.clone(),
    }
}

/// Why a QEMU command line cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum CommandLineError {
    /// The definition has no `[qemu]` table.
    #[error("the definition has no [qemu] table, so vfioctl does not know how to start it")]
    NoQemu,
    /// The devices cannot be rendered.
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// Doubles the commas of a value inside a QEMU option list, QEMU's own escape
/// (`file=a,,b.img` is the file `a,b.img`).
pub fn qemu_escape(value: &str) -> String {
    value.replace(',', ",,")
}

/// The full QEMU command line of a VM, binary first, as an argv (never a shell string): the
/// machine, accelerator, CPU, memory, firmware and kernel, disks, the `-device` arguments of
/// [`qemu_args`] for its devices (whole groups) and containers, then `extra_args` as they are.
///
/// # Errors
///
/// No `[qemu]` table, or devices that cannot be rendered (see [`qemu_args`]).
pub fn command_line(
    name: &VmName,
    def: &VmDefinition,
    inventory: &Inventory,
) -> Result<Vec<String>, CommandLineError> {
    let qemu = def.qemu.as_ref().ok_or(CommandLineError::NoQemu)?;
    let mut argv: Vec<String> = vec![qemu.binary().to_owned()];
    let mut push = |option: &str, value: String| {
        argv.push(option.to_owned());
        argv.push(value);
    };
    push("-name", qemu_escape(name.as_str()));
    push("-machine", qemu.machine.name().to_owned());
    if let Some(accel) = &qemu.accel {
        push("-accel", accel.clone());
    }
    if let Some(cpu) = &qemu.cpu {
        push("-cpu", cpu.clone());
    }
    if let Some(memory) = &qemu.memory {
        push("-m", memory.as_str().to_owned());
    }
    if let Some(cpus) = qemu.cpus {
        push("-smp", cpus.to_string());
    }
    if let Some(firmware) = &qemu.firmware {
        push("-bios", firmware.clone());
    }
    if let Some(kernel) = &qemu.kernel {
        push("-kernel", kernel.clone());
    }
    if let Some(initrd) = &qemu.initrd {
        push("-initrd", initrd.clone());
    }
    if let Some(append) = &qemu.append {
        push("-append", append.clone());
    }
    for disk in &qemu.disks {
        let mut drive = format!(
            "file={},format={},if={}",
            qemu_escape(&disk.file),
            disk.format,
            disk.interface
        );
        if disk.readonly {
            drive.push_str(",readonly=on");
        }
        push("-drive", drive);
    }
    argv.extend(qemu_args(
        inventory,
        &passthrough(def, inventory),
        qemu.machine,
    )?);
    argv.extend(qemu.extra_args.iter().cloned());
    Ok(argv)
}

/// Two VMs that claim the same IOMMU group (or the same container): only one can have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claim {
    /// The VM that claims it first (in name order).
    pub first: VmName,
    /// The other VM.
    pub second: VmName,
    /// What both claim, in words (`IOMMU group 3`, `dprc.2`).
    pub what: String,
}

/// The groups and containers claimed by more than one of `vms`.
pub fn claims(vms: &[(VmName, &VmDefinition)], inventory: &Inventory) -> Vec<Claim> {
    let mut owner: BTreeMap<String, &VmName> = BTreeMap::new();
    let mut found = Vec::new();
    let mut sorted: Vec<&(VmName, &VmDefinition)> = vms.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, def) in sorted {
        let mut things: BTreeSet<String> = group_coverage(def, inventory)
            .into_iter()
            .map(|c| format!("IOMMU group {}", c.group))
            .collect();
        things.extend(def.dprc.iter().map(ToString::to_string));
        for thing in things {
            match owner.get(&thing) {
                Some(first) => found.push(Claim {
                    first: (*first).clone(),
                    second: name.clone(),
                    what: thing,
                }),
                None => {
                    owner.insert(thing, name);
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::qemu::shell_quote;
    use crate::render::tests::{desktop, ten64};
    use pretty_assertions::assert_eq;

    const TEN64: &str = r#"version = 1
description = "Ten64: Wi-Fi and Coral TPU, plus a DPAA2 container"
boot = true
user = "qemu"
dprc = ["dprc.2"]

[[device]]
address = "0001:03:00.0"
id = "168c:003e"

[[device]]
address = "0001:04:00.0"
id = "1ac1:089a"

[qemu]
binary = "/usr/bin/qemu-system-aarch64"
machine = "virt"
accel = "kvm"
cpu = "host"
memory = "1G"
cpus = 2
kernel = "/var/lib/vfioctl/ten64/Image"
initrd = "/var/lib/vfioctl/ten64/initrd.img"
append = "console=ttyAMA0 root=/dev/vda2"
disks = [{ file = "/var/lib/vfioctl/ten64/disk,1.qcow2", format = "qcow2" }]
extra_args = ["-nographic", "-serial", "mon:stdio"]
"#;

    const DESKTOP: &str = r#"version = 1
description = "Gaming VM: RTX 4090 and its HDMI audio"

[[device]]
address = "0000:01:00.0"
id = "10de:2684"

[[device]]
address = "0000:01:00.1"
id = "10de:22ba"

[qemu]
machine = "q35"
accel = "kvm"
cpu = "host"
memory = "16G"
cpus = 8
firmware = "/usr/share/OVMF/OVMF_CODE.fd"
disks = [
  { file = "/var/lib/vms/win11.qcow2", format = "qcow2" },
  { file = "/var/lib/vms/virtio-win.iso", interface = "ide", readonly = true },
]
extra_args = ["-vga", "none", "-display", "none"]
"#;

    fn name(s: &str) -> VmName {
        s.parse().unwrap()
    }

    /// The binary, then one option and its value per line, each quoted for a shell when needed.
    fn lines(argv: &[String]) -> String {
        let argv: Vec<String> = argv.iter().map(|a| shell_quote(a).into_owned()).collect();
        let mut out = vec![argv[0].clone()];
        let mut i = 1;
        while i < argv.len() {
            match argv.get(i + 1) {
                Some(next) if argv[i].starts_with('-') && !next.starts_with('-') => {
                    out.push(format!("{} {next}", argv[i]));
                    i += 2;
                }
                _ => {
                    out.push(argv[i].clone());
                    i += 1;
                }
            }
        }
        out.join("\n")
    }

    #[test]
    fn ten64_definition_parses() {
        let def = VmDefinition::parse(TEN64).unwrap();
        assert!(def.boot);
        assert_eq!(def.user.as_deref(), Some("qemu"));
        assert_eq!(def.dprc, [DprcName::new(2)]);
        assert_eq!(def.devices.len(), 2);
        assert_eq!(def.devices[0].location.map(|l| l.line), Some(7));
        assert_eq!(def.qemu.as_ref().unwrap().machine, Machine::Virt);
    }

    #[test]
    fn ten64_command_line() {
        let def = VmDefinition::parse(TEN64).unwrap();
        let argv = command_line(&name("ten64-wifi-tpu"), &def, &ten64()).unwrap();
        insta::assert_snapshot!(lines(&argv));
    }

    #[test]
    fn desktop_command_line() {
        let def = VmDefinition::parse(DESKTOP).unwrap();
        let argv = command_line(&name("desktop"), &def, &desktop()).unwrap();
        insta::assert_snapshot!(lines(&argv));
    }

    #[test]
    fn unlisted_group_members_are_passed_and_reported() {
        let text = TEN64.replace(
            "[[device]]\naddress = \"0001:04:00.0\"\nid = \"1ac1:089a\"\n",
            "",
        );
        let def = VmDefinition::parse(&text).unwrap();
        let coverage = group_coverage(&def, &ten64());
        assert_eq!(coverage.len(), 1);
        assert_eq!(coverage[0].group, 3);
        assert_eq!(coverage[0].unlisted, ["0001:04:00.0".parse().unwrap()]);
        let request = passthrough(&def, &ten64());
        assert_eq!(request.pci.len(), 2);
    }

    #[test]
    fn a_different_device_at_the_address_is_drift_naming_both() {
        let text = TEN64.replace("id = \"168c:003e\"", "id = \"8086:2723\"");
        let def = VmDefinition::parse(&text).unwrap();
        let checks = check_devices(&def, &ten64());
        assert_eq!(checks[0].state.word(), "drifted");
        assert_eq!(
            checks[0].drift_message().unwrap(),
            "0001:03:00.0 should be 8086:2723 but is 168c:003e"
        );
        assert!(checks[1].state.identity_ok());
    }

    #[test]
    fn a_moved_device_is_found_elsewhere() {
        let text = TEN64.replace("address = \"0001:04:00.0\"", "address = \"0001:05:00.0\"");
        let def = VmDefinition::parse(&text).unwrap();
        let checks = check_devices(&def, &ten64());
        assert_eq!(
            checks[1].drift_message().unwrap(),
            "0001:05:00.0 should be 1ac1:089a but there is no device at that address; a \
             1ac1:089a is now at 0001:04:00.0"
        );
    }

    #[test]
    fn a_subsystem_mismatch_is_drift() {
        let text = TEN64.replace(
            "id = \"168c:003e\"",
            "id = \"168c:003e\"\nsubsystem = \"1a56:143a\"",
        );
        let def = VmDefinition::parse(&text).unwrap();
        let checks = check_devices(&def, &ten64());
        assert_eq!(
            checks[0].drift_message().unwrap(),
            "0001:03:00.0 should be 168c:003e (subsystem 1a56:143a) but is 168c:003e"
        );
    }

    #[test]
    fn bound_and_not_bound() {
        let def = VmDefinition::parse(TEN64).unwrap();
        let checks = check_devices(&def, &ten64());
        assert_eq!(
            checks[0].state,
            DeviceState::NotBound {
                driver: Some("ath10k_pci".into())
            }
        );
    }

    fn error(text: &str) -> String {
        VmDefinition::parse(text)
            .unwrap_err()
            .render("/etc/vfioctl/vms/t.toml")
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let text = "version = 1\n[[device]]\naddress = \"0001:03:00.0\n";
        let e = error(text);
        assert!(e.starts_with("/etc/vfioctl/vms/t.toml:3:"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused_where_they_are() {
        let text = TEN64.replace("cpus = 2", "cpus = 2\nmemroy = \"2G\"");
        let e = error(&text);
        assert!(e.starts_with("/etc/vfioctl/vms/t.toml:22:1: "), "{e}");
        assert!(e.contains("memroy"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_where_they_are() {
        let e = error(&TEN64.replace("\"0001:04:00.0\"", "\"0001:04:00\""));
        assert!(e.starts_with("/etc/vfioctl/vms/t.toml:12:11: "), "{e}");
        assert!(e.contains("is not a PCI address"), "{e}");
        let e = error(&TEN64.replace("\"1ac1:089a\"", "\"1ac1\""));
        assert!(e.starts_with("/etc/vfioctl/vms/t.toml:13:6: "), "{e}");
        let e = error(&TEN64.replace("\"dprc.2\"", "\"dprc.02\""));
        assert!(e.starts_with("/etc/vfioctl/vms/t.toml:5:"), "{e}");
        let e = error(&TEN64.replace("\"virt\"", "\"pc\""));
        assert!(e.contains("'pc' is not a supported machine type"), "{e}");
        let e = error(&TEN64.replace("\"1G\"", "\"lots\""));
        assert!(e.contains("is not a memory size"), "{e}");
    }

    #[test]
    fn semantic_errors_carry_lines_too() {
        let e = error(&TEN64.replace("version = 1", "version = 2"));
        assert_eq!(
            e,
            "/etc/vfioctl/vms/t.toml:1:11: version 2 is not supported: this vfioctl reads version 1"
        );
        let e = error(&TEN64.replace("0001:04:00.0", "0001:03:00.0"));
        assert_eq!(
            e,
            "/etc/vfioctl/vms/t.toml:11:1: device 0001:03:00.0 is listed twice (first on line 7)"
        );
        let e = error(&TEN64.replace("machine = \"virt\"", "machine = \"q35\""));
        assert!(e.contains("dprc.2 is a DPAA2 container"), "{e}");
        let e = error(&TEN64.replace("user = \"qemu\"", "user = \"qe mu\""));
        assert!(e.starts_with("/etc/vfioctl/vms/t.toml:4:8: "), "{e}");
        let e = error("version = 1\n");
        assert!(e.contains("nothing to pass through"), "{e}");
        let e = error(&TEN64.replace("\"-nographic\"", "\"-nographic\\u0000\""));
        assert!(e.contains("NUL"), "{e}");
    }

    #[test]
    fn vm_names_are_never_paths() {
        for good in ["ten64", "win-11", "a.b_c", "VM1"] {
            assert!(good.parse::<VmName>().is_ok(), "{good}");
        }
        for bad in ["", ".", "..", ".hidden", "-x", "a/b", "../etc", "a b", "ä"] {
            assert!(bad.parse::<VmName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn location_counts_characters() {
        assert_eq!(Location::of("ab\ncd", 4), Location { line: 2, column: 2 });
        assert_eq!(Location::of("äb", 2), Location { line: 1, column: 2 });
        assert_eq!(Location::of("", 9), Location { line: 1, column: 1 });
    }

    #[test]
    fn commas_in_disk_files_are_escaped() {
        let def = VmDefinition::parse(TEN64).unwrap();
        let argv = command_line(&name("t"), &def, &ten64()).unwrap();
        assert!(argv.contains(
            &"file=/var/lib/vfioctl/ten64/disk,,1.qcow2,format=qcow2,if=virtio".to_owned()
        ));
    }

    #[test]
    fn no_qemu_table_cannot_render() {
        let def = VmDefinition::parse(DESKTOP.split("[qemu]").next().unwrap()).unwrap();
        assert!(matches!(
            command_line(&name("d"), &def, &desktop()),
            Err(CommandLineError::NoQemu)
        ));
    }

    #[test]
    fn two_vms_claiming_one_group_are_found() {
        let a = VmDefinition::parse(TEN64).unwrap();
        let text = TEN64.replace(
            "[[device]]\naddress = \"0001:03:00.0\"\nid = \"168c:003e\"\n",
            "",
        );
        let b = VmDefinition::parse(&text).unwrap();
        let found = claims(&[(name("b"), &b), (name("a"), &a)], &ten64());
        let words: Vec<String> = found
            .iter()
            .map(|c| format!("{} {} {}", c.first, c.second, c.what))
            .collect();
        assert_eq!(words, ["a b IOMMU group 3", "a b dprc.2"]);
    }

    #[test]
    fn the_shipped_example_parses_and_renders() {
        let text = include_str!("../../../packaging/examples/ten64-wifi-tpu.toml");
        let def = VmDefinition::parse(text).unwrap();
        assert!(def.boot);
        assert_eq!(def.dprc, [DprcName::new(2)]);
        let argv = command_line(&name("ten64-wifi-tpu"), &def, &ten64()).unwrap();
        assert_eq!(argv[0], "/opt/nxp-qemu/bin/qemu-system-aarch64");
        assert!(argv.contains(&"vfio-fsl-mc,host=dprc.2".to_owned()));
    }

    proptest::proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(text in "(?s).{0,200}") {
            let _ = VmDefinition::parse(&text);
        }
    }
}
