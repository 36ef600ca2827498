//! The hook handlers: vfioctl inside libvirt's and Proxmox VE's VM life cycle.
//!
//! libvirt runs `/etc/libvirt/hooks/qemu <domain> <operation> <sub-operation> <extra>` with the
//! domain XML on standard input; a non-zero exit on `prepare` stops the domain from starting and
//! shows our standard error in libvirt's error. Proxmox VE runs a VM's hookscript as
//! `<script> <vmid> <phase>`. Either way the devices go through the same plan and refusals as
//! `bind`, whole groups at a time, journaled with the domain or VM as owner, and come back to
//! their original drivers afterwards.

use std::path::PathBuf;

use vfioctl_core::hooks::{HookError, ProxmoxDevice, libvirt_pci_hostdevs, proxmox_hostpci};
use vfioctl_core::ownership::{Claim, claim};
use vfioctl_core::plan::BindOptions;
use vfioctl_core::pve::{MappingError, parse_pci_cfg};
use vfioctl_core::{AddressError, DeviceRef, Owner, PciAddress};

use super::bind::{BindReport, BindRequest, bind};
use super::restore::{RestoreReport, RestoreRequest, RestoreTargets, restore};
use super::{Host, OpError};
use crate::executor::Timeouts;
use crate::journal::Journal;
use crate::read::{Depth, read_inventory_at};

/// Why a hook could not read what the VM asks for.
#[derive(Debug, thiserror::Error)]
pub enum HookInputError {
    /// The domain XML is not usable.
    #[error("domain {domain}")]
    Domain {
        /// The domain.
        domain: String,
        /// What is wrong with its XML.
        #[source]
        source: HookError,
    },
    /// Not a Proxmox VM id.
    #[error("'{0}' is not a Proxmox VM id")]
    BadVmid(String),
    /// The VM's configuration could not be read.
    #[error("cannot read {path}")]
    Conf {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A cluster resource mapping that does not resolve on this node.
    #[error("VM {vmid}")]
    Mapping {
        /// The VM.
        vmid: String,
        /// Why.
        #[source]
        source: Box<MappingError>,
    },
    /// This node's name is unknown.
    #[error("cannot tell this node's name from {path}")]
    NoNodeName {
        /// The file read.
        path: PathBuf,
    },
    /// A `hostpci` entry that names no device of this host.
    #[error("VM {vmid}: no PCI device at {text}")]
    NoDevice {
        /// The VM.
        vmid: String,
        /// The entry.
        text: String,
    },
    /// A `hostpci` entry that is no address.
    #[error("VM {vmid}")]
    Address {
        /// The VM.
        vmid: String,
        /// Why.
        #[source]
        source: AddressError,
    },
}

impl HookInputError {
    /// What the user can do.
    pub fn remedy(&self) -> Option<&'static str> {
        match self {
            Self::Mapping { .. } => Some(
                "check the mapping in Datacenter > Resource Mappings against 'vfioctl list' (the \
                 hardware may have changed)",
            ),
            Self::NoNodeName { .. } => Some("write this node's name to /etc/hostname"),
            Self::NoDevice { .. } | Self::Address { .. } => {
                Some("check the VM's hostpci lines against 'vfioctl list'")
            }
            _ => None,
        }
    }
}

/// What a hook call did.
#[derive(Debug)]
pub enum HookAction {
    /// The call is for an operation or phase vfioctl leaves alone, or names no device.
    Ignored,
    /// The VM's devices were bound (or refused: see the report).
    Bound(Box<BindReport>),
    /// The VM's devices were given back.
    Restored(RestoreReport),
}

fn bind_for(
    host: &Host,
    owner: Owner,
    names: Vec<String>,
    timeouts: Timeouts,
) -> Result<HookAction, OpError> {
    if names.is_empty() {
        return Ok(HookAction::Ignored);
    }
    let request = BindRequest {
        names,
        options: BindOptions::default(),
        dry_run: false,
        owner,
        user: None,
        timeouts,
    };
    bind(host, &request).map(|r| HookAction::Bound(Box::new(r)))
}

/// Gives back exactly what `owner` bound (its journal entries, whatever its configuration says
/// by now: Proxmox applies pending changes before `post-stop`); the devices the configuration
/// names that someone else holds are left as they are, and reported.
fn restore_for(
    host: &Host,
    owner: Owner,
    names: Vec<String>,
    timeouts: Timeouts,
) -> Result<HookAction, OpError> {
    let request = RestoreRequest {
        targets: RestoreTargets::Owned(names),
        on_behalf: Some(owner),
        force: false,
        dry_run: false,
        timeouts,
    };
    let report = restore(host, &request)?;
    if report.devices.is_empty() {
        return Ok(HookAction::Ignored);
    }
    Ok(HookAction::Restored(report))
}

/// libvirt's `qemu` hook: `prepare begin` binds the domain's PCI hostdevs, `release end` gives
/// them back; every other operation is left alone (and must print nothing: libvirt reads the
/// standard output of some of them as XML).
pub fn libvirt(
    host: &Host,
    domain: &str,
    operation: &str,
    sub_operation: &str,
    xml: impl FnOnce() -> std::io::Result<String>,
    timeouts: Timeouts,
) -> Result<HookAction, OpError> {
    let wanted = matches!(
        (operation, sub_operation),
        ("prepare", "begin") | ("release", "end")
    );
    if !wanted {
        return Ok(HookAction::Ignored);
    }
    let xml = xml().map_err(|source| HookInputError::Conf {
        path: PathBuf::from("(standard input)"),
        source,
    })?;
    let devices: Vec<String> = libvirt_pci_hostdevs(&xml)
        .map_err(|source| HookInputError::Domain {
            domain: domain.to_owned(),
            source,
        })?
        .iter()
        .map(ToString::to_string)
        .collect();
    if operation == "prepare" {
        bind_for(host, Owner::Libvirt(domain.to_owned()), devices, timeouts)
    } else {
        restore_for(host, Owner::Libvirt(domain.to_owned()), devices, timeouts)
    }
}

/// This node's name as Proxmox VE knows it: `/etc/hostname` under the root, up to the first dot
/// (pmxcfs names nodes by their short host name).
pub fn node_name(host: &Host) -> Option<String> {
    let text = std::fs::read_to_string(host.root().join("etc/hostname")).ok()?;
    let name = text.lines().next()?.trim();
    let short = name.split('.').next().unwrap_or(name);
    (!short.is_empty()).then(|| short.to_owned())
}

/// The functions of mapping `name` on this node: the first alternative nobody else holds, as
/// Proxmox reserves the first one it can (else the first, which the claim then refuses, naming
/// its holder).
fn resolve_mapping(
    host: &Host,
    vmid: &str,
    name: &str,
    inventory: &vfioctl_core::Inventory,
) -> Result<Vec<String>, OpError> {
    let path = host.root().join("etc/pve/mapping/pci.cfg");
    let text = std::fs::read_to_string(&path).map_err(|source| HookInputError::Conf {
        path: host.root().display_path(&path),
        source,
    })?;
    let node = node_name(host).ok_or_else(|| HookInputError::NoNodeName {
        path: host.root().display_path(&host.root().join("etc/hostname")),
    })?;
    let mapping_error = |source| HookInputError::Mapping {
        vmid: vmid.to_owned(),
        source: Box::new(source),
    };
    let alternatives = vfioctl_core::pve::resolve(&parse_pci_cfg(&text), name, &node, inventory)
        .map_err(mapping_error)?;
    let journal = Journal::load(host.root())?;
    let me = Owner::Proxmox(vmid.to_owned());
    let free = |functions: &&Vec<PciAddress>| {
        functions.iter().all(|a| {
            let holder = crate::owners::holder(host.root(), &journal, &DeviceRef::Pci(*a), None);
            !matches!(claim(&me, &holder), Claim::Refused { .. })
        })
    };
    let chosen = alternatives
        .iter()
        .find(free)
        .or_else(|| alternatives.first())
        .cloned()
        .unwrap_or_default();
    Ok(chosen.iter().map(ToString::to_string).collect())
}

/// Proxmox VE's hookscript: `pre-start` binds the VM's `hostpciN` devices, `post-stop` gives
/// back what `pre-start` bound (Proxmox itself never does). It reads
/// `/etc/pve/qemu-server/<vmid>.conf` (the current configuration, not its `[PENDING]` or
/// snapshot sections), `/etc/pve/mapping/pci.cfg` for `mapping=` entries and `/etc/hostname`
/// for this node's name; a container (`/etc/pve/lxc/<vmid>.conf`) is left alone.
pub fn proxmox(
    host: &Host,
    vmid: &str,
    phase: &str,
    timeouts: Timeouts,
) -> Result<HookAction, OpError> {
    if vmid.is_empty() || !vmid.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HookInputError::BadVmid(vmid.to_owned()).into());
    }
    if phase != "pre-start" && phase != "post-stop" {
        return Ok(HookAction::Ignored);
    }
    let path = host.root().join(format!("etc/pve/qemu-server/{vmid}.conf"));
    let lxc = host.root().join(format!("etc/pve/lxc/{vmid}.conf"));
    if !path.exists() && lxc.exists() {
        return Ok(HookAction::Ignored);
    }
    let owner = Owner::Proxmox(vmid.to_owned());
    let conf = match std::fs::read_to_string(&path) {
        Ok(conf) => conf,
        // Deleted after it stopped: what it bound still goes back.
        Err(e) if phase == "post-stop" && e.kind() == std::io::ErrorKind::NotFound => {
            return restore_for(host, owner, Vec::new(), timeouts);
        }
        Err(source) => {
            return Err(HookInputError::Conf {
                path: host.root().display_path(&path),
                source,
            }
            .into());
        }
    };
    let inventory = read_inventory_at(host.root(), Depth::Plan)?;
    let mut devices = Vec::new();
    let mut notes = Vec::new();
    for device in proxmox_hostpci(&conf) {
        match device {
            ProxmoxDevice::LeftAlone { key, why } => {
                notes.push(format!("VM {vmid} {key} is left alone: {why}"));
            }
            // After the VM stopped, only what pre-start bound matters (the journal knows).
            ProxmoxDevice::Mapping(_) if phase == "post-stop" => {}
            ProxmoxDevice::Mapping(name) => {
                devices.extend(resolve_mapping(host, vmid, &name, &inventory)?);
            }
            // Proxmox's `01:00` means every function of the slot (domain 0000).
            ProxmoxDevice::Host(text) if !text.contains('.') => {
                let slot = if text.matches(':').count() == 1 {
                    format!("0000:{text}.0")
                } else {
                    format!("{text}.0")
                };
                let first: PciAddress = slot.parse().map_err(|source| HookInputError::Address {
                    vmid: vmid.to_owned(),
                    source,
                })?;
                let functions: Vec<String> = inventory
                    .devices()
                    .iter()
                    .filter(|d| d.address.same_slot(&first))
                    .map(|d| d.address.to_string())
                    .collect();
                if functions.is_empty() && phase == "pre-start" {
                    return Err(HookInputError::NoDevice {
                        vmid: vmid.to_owned(),
                        text,
                    }
                    .into());
                }
                devices.extend(functions);
            }
            ProxmoxDevice::Host(text) => devices.push(text),
        }
    }
    if phase == "pre-start" {
        let action = bind_for(host, owner, devices, timeouts)?;
        Ok(match action {
            HookAction::Bound(mut report) => {
                report.plan.warnings.extend(notes);
                HookAction::Bound(report)
            }
            other => other,
        })
    } else {
        restore_for(host, owner, devices, timeouts)
    }
}
