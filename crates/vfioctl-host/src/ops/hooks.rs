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
use vfioctl_core::plan::BindOptions;
use vfioctl_core::{AddressError, Owner, PciAddress};

use super::bind::{BindReport, BindRequest, bind};
use super::restore::{RestoreReport, RestoreRequest, RestoreTargets, restore};
use super::{Host, OpError};
use crate::executor::Timeouts;
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
    /// A cluster resource mapping, which only Proxmox resolves.
    #[error("VM {vmid} uses the resource mapping '{name}', which only Proxmox can resolve")]
    Mapping {
        /// The VM.
        vmid: String,
        /// The mapping.
        name: String,
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
                "write the device as host=<address> in the VM configuration for vfioctl to manage it",
            ),
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

fn restore_for(host: &Host, names: Vec<String>, timeouts: Timeouts) -> Result<HookAction, OpError> {
    if names.is_empty() {
        return Ok(HookAction::Ignored);
    }
    let request = RestoreRequest {
        targets: RestoreTargets::Named(names),
        dry_run: false,
        timeouts,
    };
    restore(host, &request).map(HookAction::Restored)
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
        restore_for(host, devices, timeouts)
    }
}

/// Proxmox VE's hookscript: `pre-start` binds the VM's `hostpciN` devices, `post-stop` gives
/// them back (Proxmox itself never does).
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
    let conf = std::fs::read_to_string(&path).map_err(|source| HookInputError::Conf {
        path: host.root().display_path(&path),
        source,
    })?;
    let inventory = read_inventory_at(host.root(), Depth::Full)?;
    let mut devices = Vec::new();
    for device in proxmox_hostpci(&conf) {
        match device {
            ProxmoxDevice::Mapping(name) => {
                return Err(HookInputError::Mapping {
                    vmid: vmid.to_owned(),
                    name,
                }
                .into());
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
                if functions.is_empty() {
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
        bind_for(host, Owner::Proxmox(vmid.to_owned()), devices, timeouts)
    } else {
        restore_for(host, devices, timeouts)
    }
}
