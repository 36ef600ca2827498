//! VFs a VM definition names by PF and index, resolved against the host into the devices the rest
//! of vfioctl handles: the PF (by address, or by its interface's MAC), its `virtfnN` link, and the
//! ID found there.

use std::fs;
use std::path::Path;

use vfioctl_core::vm::VmDevice;
use vfioctl_core::vm::vf::{PfRef, VmVf};
use vfioctl_core::{PciAddress, VendorDevice};

use crate::HostRoot;
use crate::read::{link_name, read_attr};
use crate::vms::{VmFile, VmFileError};

fn pf_by_mac(root: &HostRoot, mac: vfioctl_core::sriov::MacAddress) -> Option<PciAddress> {
    let net = root.join("sys/class/net");
    fs::read_dir(net).ok()?.flatten().find_map(|e| {
        let found = read_attr(&e.path().join("address")).ok()??;
        if found.trim().parse().ok() != Some(mac) {
            return None;
        }
        // `class/net/<if>` links to `<PCI function>/net/<if>`: the function owns the interface.
        let target = fs::read_link(e.path()).ok()?;
        let pf: PciAddress = target
            .parent()?
            .parent()?
            .file_name()?
            .to_str()?
            .parse()
            .ok()?;
        root.pci_device(&pf)
            .join("sriov_totalvfs")
            .exists()
            .then_some(pf)
    })
}

fn hex(path: &Path) -> Option<u16> {
    let text = read_attr(path).ok()??;
    u16::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()
}

/// The device VF `vf` is on this host now, or why it is not there.
pub fn resolve(root: &HostRoot, vf: &VmVf) -> Result<VmDevice, String> {
    let pf = match vf.pf {
        PfRef::Address(a) => a,
        PfRef::Mac(m) => pf_by_mac(root, m)
            .ok_or_else(|| format!("no SR-IOV PF has an interface with MAC {m}"))?,
    };
    let dir = root.pci_device(&pf);
    let numvfs = read_attr(&dir.join("sriov_numvfs"))
        .ok()
        .flatten()
        .ok_or_else(|| format!("{pf} is not an SR-IOV PF on this host"))?;
    let address: PciAddress = link_name(&dir.join(format!("virtfn{}", vf.index)))
        .ok()
        .flatten()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            format!(
                "{pf} has no VF {} (sriov_numvfs is {}): create it with 'vfioctl vf create {pf} {}'",
                vf.index,
                numvfs.trim(),
                vf.index + 1
            )
        })?;
    let vdir = root.pci_device(&address);
    let id = match (hex(&vdir.join("vendor")), hex(&vdir.join("device"))) {
        (Some(vendor), Some(device)) => VendorDevice { vendor, device },
        _ => return Err(format!("cannot read the ID of {address}")),
    };
    Ok(VmDevice {
        address,
        id,
        subsystem: None,
        location: None,
    })
}

/// Adds the definition's VFs to its devices, as they are on the host now.
///
/// # Errors
///
/// [`VmFileError::Invalid`] naming the VF that is not there.
pub fn resolve_all(root: &HostRoot, file: &mut VmFile) -> Result<(), VmFileError> {
    for vf in file.definition.vfs.clone() {
        let device = resolve(root, &vf).map_err(|message| VmFileError::Invalid {
            path: file.path.clone(),
            location: None,
            message: format!("vf {{ pf = {}, index = {} }}: {message}", vf.pf, vf.index),
        })?;
        if !file
            .definition
            .devices
            .iter()
            .any(|d| d.address == device.address)
        {
            file.definition.devices.push(device);
        }
    }
    Ok(())
}
