//! The definition file: its keys, parsed and validated with line and column.

use crate::render::backend::Backend;
use std::collections::BTreeMap;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use toml::Spanned;

use crate::address::PciAddress;
use crate::fslmc::DprcName;
use crate::ids::VendorDevice;
use crate::render::qemu::Machine;

use super::dpaa2::{MadeContainer, RawMadeContainer};
use super::{Disk, Location, VM_FORMAT_VERSION, VmParseError};

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

pub(super) fn identity(id: VendorDevice, subsystem: Option<VendorDevice>) -> String {
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
    /// The VFIO backend: `legacy` (`/dev/vfio/GROUP`, the default) or `iommufd`.
    #[serde(default, skip_serializing_if = "Backend::is_legacy")]
    pub backend: Backend,
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
    /// DPAA2 containers made for each run (`[[dpaa2]]`), in file order.
    pub dpaa2: Vec<MadeContainer>,
    /// SR-IOV VFs named by PF and index; the host layer resolves each into a device.
    pub vfs: Vec<super::vf::VmVf>,
    /// PFs whose VFs `apply` and `run` create (`[[sriov]]`), in file order.
    pub sriov: Vec<super::vf::VmSriov>,
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
    #[serde(default, rename = "vf", deserialize_with = "super::vf::de_vfs")]
    vfs: Vec<super::vf::VmVf>,
    #[serde(default)]
    sriov: Vec<Spanned<super::vf::VmSriov>>,
    #[serde(default)]
    dpaa2: Vec<Spanned<RawMadeContainer>>,
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
        let mut dpaa2 = Vec::new();
        for spanned in raw.dpaa2 {
            let span = spanned.span();
            dpaa2.push(spanned.into_inner().validate(text, span)?);
        }
        let sriov = super::vf::validate_tables(text, raw.sriov, &raw.vfs)?;
        if devices.is_empty() && dprc.is_empty() && dpaa2.is_empty() && raw.vfs.is_empty() {
            return Err(VmParseError {
                location: Some(Location { line: 1, column: 1 }),
                message: "the definition has no [[device]], no dprc and no [[dpaa2]]: nothing \
                          to pass through"
                    .to_owned(),
            });
        }
        let qemu = match raw.qemu {
            None => None,
            Some(spanned) => {
                let span = spanned.span();
                let qemu = spanned.into_inner();
                Self::validate_qemu(text, span, &qemu, &dprc, &dpaa2)?;
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
            dpaa2,
            vfs: raw.vfs,
            sriov,
            qemu,
        })
    }

    fn validate_qemu(
        text: &str,
        span: Range<usize>,
        qemu: &QemuConfig,
        dprc: &[DprcName],
        dpaa2: &[MadeContainer],
    ) -> Result<(), VmParseError> {
        let fail = |message: String| Err(VmParseError::at(text, Some(span.clone()), message));
        let first = dprc
            .first()
            .map(ToString::to_string)
            .or_else(|| dpaa2.first().map(|_| "a [[dpaa2]] container".to_owned()));
        if qemu.machine != Machine::Virt
            && let Some(first) = first
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
            if let Some(reason) = disk.rejected_by_qemu(qemu.machine) {
                return fail(reason);
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
