//! `hook`: vfioctl inside libvirt's and Proxmox VE's VM life cycle.
//!
//! libvirt runs `/etc/libvirt/hooks/qemu <domain> <operation> <sub-operation> <extra>` with the
//! domain XML on standard input; a non-zero exit on `prepare` stops the domain from starting and
//! shows our standard error in libvirt's error. Proxmox VE runs a VM's hookscript as
//! `<script> <vmid> <phase>`. Either way the devices go through vfioctl's plan and refusals, whole
//! groups at a time, and come back to their original drivers afterwards.

use std::io::Read;

use vfioctl_core::hooks::{ProxmoxDevice, libvirt_pci_hostdevs, proxmox_hostpci};

use crate::cli::{BindArgs, HookArgs, HookTarget, RestoreArgs};
use crate::cmd::bind::{bind, restore};
use crate::context::Context;
use crate::error::CliError;
use crate::exit::Exit;

/// The most domain XML we read from libvirt.
const MAX_XML: u64 = 16 * 1024 * 1024;

fn bind_for(ctx: &mut Context, owner: &str, devices: Vec<String>) -> Result<Exit, CliError> {
    if devices.is_empty() {
        return Ok(Exit::Success);
    }
    bind(
        ctx,
        &BindArgs {
            devices,
            only: false,
            force: false,
            dry_run: false,
            user: None,
            timeout: None,
            owner: Some(owner.to_owned()),
        },
    )
}

fn restore_for(ctx: &mut Context, devices: Vec<String>) -> Result<Exit, CliError> {
    if devices.is_empty() {
        return Ok(Exit::Success);
    }
    restore(
        ctx,
        &RestoreArgs {
            devices,
            all: false,
            dry_run: false,
            timeout: None,
        },
    )
}

/// `vfioctl hook`.
pub fn hook(ctx: &mut Context, args: &HookArgs) -> Result<Exit, CliError> {
    match &args.target {
        HookTarget::Libvirt {
            domain,
            operation,
            sub_operation,
            ..
        } => {
            let wanted = matches!(
                (operation.as_str(), sub_operation.as_str()),
                ("prepare", "begin") | ("release", "end")
            );
            if !wanted {
                return Ok(Exit::Success);
            }
            let mut xml = String::new();
            std::io::stdin()
                .take(MAX_XML)
                .read_to_string(&mut xml)
                .map_err(|e| {
                    CliError::new(
                        Exit::Usage,
                        format!("cannot read the domain XML from standard input: {e}"),
                    )
                })?;
            let devices: Vec<String> = libvirt_pci_hostdevs(&xml)
                .map_err(|e| CliError::new(Exit::Usage, format!("domain {domain}: {e}")))?
                .iter()
                .map(ToString::to_string)
                .collect();
            if operation == "prepare" {
                bind_for(ctx, domain, devices)
            } else {
                restore_for(ctx, devices)
            }
        }
        HookTarget::Proxmox { vmid, phase } => {
            if !vmid.bytes().all(|b| b.is_ascii_digit()) || vmid.is_empty() {
                return Err(CliError::new(
                    Exit::Usage,
                    format!("'{vmid}' is not a Proxmox VM id"),
                ));
            }
            if phase != "pre-start" && phase != "post-stop" {
                return Ok(Exit::Success);
            }
            let path = ctx.root.join(format!("etc/pve/qemu-server/{vmid}.conf"));
            let conf = std::fs::read_to_string(&path).map_err(|e| {
                CliError::new(
                    Exit::Usage,
                    format!(
                        "cannot read {}: {e}",
                        ctx.root.display_path(&path).display()
                    ),
                )
            })?;
            let inventory = ctx.inventory()?;
            let mut devices = Vec::new();
            for device in proxmox_hostpci(&conf) {
                match device {
                    ProxmoxDevice::Mapping(name) => {
                        return Err(CliError::new(
                            Exit::Usage,
                            format!("VM {vmid} uses the resource mapping '{name}', which only Proxmox can resolve"),
                        )
                        .hint("write the device as host=<address> in the VM configuration for vfioctl to manage it"));
                    }
                    // Proxmox's `01:00` means every function of the slot (domain 0000).
                    ProxmoxDevice::Host(text) if !text.contains('.') => {
                        let slot = format!(
                            "{}.0",
                            if text.matches(':').count() == 1 {
                                format!("0000:{text}")
                            } else {
                                text.clone()
                            }
                        );
                        let first: vfioctl_core::PciAddress =
                            slot.parse().map_err(|e: vfioctl_core::AddressError| {
                                CliError::new(Exit::Usage, e.to_string())
                            })?;
                        let functions: Vec<String> = inventory
                            .devices()
                            .iter()
                            .filter(|d| d.address.same_slot(&first))
                            .map(|d| d.address.to_string())
                            .collect();
                        if functions.is_empty() {
                            return Err(CliError::new(
                                Exit::Usage,
                                format!("VM {vmid}: no PCI device at {text}"),
                            ));
                        }
                        devices.extend(functions);
                    }
                    ProxmoxDevice::Host(text) => devices.push(text),
                }
            }
            if phase == "pre-start" {
                bind_for(ctx, &format!("pve-{vmid}"), devices)
            } else {
                restore_for(ctx, devices)
            }
        }
    }
}
