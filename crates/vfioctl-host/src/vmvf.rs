//! VFs a VM definition names by PF and index, resolved against the host into the devices the rest
//! of vfioctl handles: the PF (by address, or by its interface's permanent MAC), its `virtfnN`
//! link, and the ID found there. A VF that does not exist yet is left out when a `[[sriov]]`
//! table of its PF makes it (`apply` and `run` create it, then resolve again).

use std::fs;
use std::path::Path;

use vfioctl_core::sriov::MacAddress;
use vfioctl_core::vm::VmDevice;
use vfioctl_core::vm::vf::{PfRef, VmVf, table_of};
use vfioctl_core::{PciAddress, VendorDevice};

use crate::HostRoot;
use crate::read::{link_name, read_attr};
use crate::vflinks::VfLinks;
use crate::vms::{VmFile, VmFileError};

/// `NET_ADDR_PERM` in `addr_assign_type`: the address is the device's own.
const NET_ADDR_PERM: &str = "0";

/// The permanent MAC of the interface at `dir` (`sys/class/net/<if>`): what rtnetlink reports as
/// `IFLA_PERM_ADDRESS` when the kernel answers it, else sysfs `address` only while
/// `addr_assign_type` says it is the device's own; a MAC someone set is never taken for it.
fn permanent_mac(dir: &Path, links: Option<&dyn VfLinks>) -> Option<MacAddress> {
    let name = dir.file_name()?.to_str()?;
    if let Some(Ok(Some(mac))) = links.map(|l| l.permanent_address(name)) {
        return Some(mac);
    }
    let assign = read_attr(&dir.join("addr_assign_type")).ok()??;
    if assign.trim() != NET_ADDR_PERM {
        return None;
    }
    read_attr(&dir.join("address")).ok()??.trim().parse().ok()
}

fn pf_by_mac(root: &HostRoot, links: Option<&dyn VfLinks>, mac: MacAddress) -> Option<PciAddress> {
    let net = root.join("sys/class/net");
    fs::read_dir(net).ok()?.flatten().find_map(|e| {
        if permanent_mac(&e.path(), links) != Some(mac) {
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

/// The PF `pf` names on this host.
fn pf_address(
    root: &HostRoot,
    links: Option<&dyn VfLinks>,
    pf: PfRef,
) -> Result<PciAddress, String> {
    match pf {
        PfRef::Address(a) => Ok(a),
        PfRef::Mac(m) => pf_by_mac(root, links, m)
            .ok_or_else(|| format!("no SR-IOV PF has an interface whose permanent MAC is {m}")),
    }
}

fn hex(path: &Path) -> Option<u16> {
    let text = read_attr(path).ok()??;
    u16::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()
}

/// The device VF `index` of `pf` is on this host now, or why it is not there.
fn resolve_at(root: &HostRoot, pf: PciAddress, index: u32) -> Result<VmDevice, String> {
    let dir = root.pci_device(&pf);
    let numvfs = read_attr(&dir.join("sriov_numvfs"))
        .ok()
        .flatten()
        .ok_or_else(|| format!("{pf} is not an SR-IOV PF on this host"))?;
    let address: PciAddress = link_name(&dir.join(format!("virtfn{index}")))
        .ok()
        .flatten()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            format!(
                "{pf} has no VF {index} (sriov_numvfs is {}): create it with 'vfioctl vf create \
                 {pf} {}', or add a [[sriov]] table for {pf} so that apply and run create it",
                numvfs.trim(),
                index + 1
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

/// The device VF `vf` is on this host now, or why it is not there.
pub fn resolve(
    root: &HostRoot,
    links: Option<&dyn VfLinks>,
    vf: &VmVf,
) -> Result<VmDevice, String> {
    resolve_at(root, pf_address(root, links, vf.pf)?, vf.index)
}

/// Names each PF of the definition by its address where the host has it, then adds its VFs to
/// its devices as they are on the host now. A VF whose PF has a `[[sriov]]` table and that is
/// not there (yet) is left for the VM's SR-IOV plan to make or refuse.
///
/// # Errors
///
/// [`VmFileError::Invalid`] naming a VF that is not there and no table makes, or a table whose
/// count does not make the VFs that name its PF differently (by MAC and by address).
pub fn resolve_all(
    root: &HostRoot,
    links: Option<&dyn VfLinks>,
    file: &mut VmFile,
) -> Result<(), VmFileError> {
    let invalid = |message: String| VmFileError::Invalid {
        path: file.path.clone(),
        location: None,
        message,
    };
    let def = &mut file.definition;
    for table in &mut def.sriov {
        if let Ok(a) = pf_address(root, links, table.pf) {
            table.pf = PfRef::Address(a);
        }
    }
    for vf in &mut def.vfs {
        let named = vf.pf;
        let resolved = pf_address(root, links, named);
        if let Ok(a) = resolved {
            vf.pf = PfRef::Address(a);
        }
        let device = match resolved.and_then(|pf| resolve_at(root, pf, vf.index)) {
            Ok(device) => device,
            Err(_) if table_of(&def.sriov, vf.pf).is_some() => continue,
            Err(message) => {
                // As the file writes it.
                let pf = match named {
                    PfRef::Address(a) => a.to_string(),
                    PfRef::Mac(m) => m.to_string(),
                };
                return Err(invalid(format!(
                    "vf {{ pf = \"{pf}\", index = {} }}: {message}",
                    vf.index
                )));
            }
        };
        if !def.devices.iter().any(|d| d.address == device.address) {
            def.devices.push(device);
        }
    }
    if let Some(problem) = def.sriov.iter().find_map(|t| t.problem(&def.vfs)) {
        return Err(invalid(problem));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use std::io;

    use vfioctl_core::sriov::{VfLink, VfLinkChange};

    use super::*;

    /// A kernel whose netlink answers `perm` as every interface's `IFLA_PERM_ADDRESS`.
    struct Perm(Option<MacAddress>);

    impl VfLinks for Perm {
        fn links(&self, _: &str) -> io::Result<Vec<VfLink>> {
            Ok(Vec::new())
        }
        fn set(&self, _: &str, _: u32, _: &VfLinkChange) -> io::Result<()> {
            Ok(())
        }
        fn permanent_address(&self, _: &str) -> io::Result<Option<MacAddress>> {
            Ok(self.0)
        }
    }

    fn interface(address: &str, assign: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("eth0");
        fs::create_dir_all(&net).unwrap();
        fs::write(net.join("address"), format!("{address}\n")).unwrap();
        fs::write(net.join("addr_assign_type"), format!("{assign}\n")).unwrap();
        dir
    }

    #[test]
    fn netlink_s_permanent_mac_wins_and_sysfs_counts_only_while_it_is_the_device_s_own() {
        let perm: MacAddress = "52:54:00:01:00:00".parse().unwrap();
        let set = interface("02:00:00:00:00:99", "3");
        let eth0 = set.path().join("eth0");
        assert_eq!(permanent_mac(&eth0, Some(&Perm(Some(perm)))), Some(perm));
        // No IFLA_PERM_ADDRESS: an address someone set is not the permanent one.
        assert_eq!(permanent_mac(&eth0, Some(&Perm(None))), None);
        assert_eq!(permanent_mac(&eth0, None), None);
        let own = interface("52:54:00:01:00:00", "0");
        assert_eq!(permanent_mac(&own.path().join("eth0"), None), Some(perm));
        // Random (1) and stolen (2) addresses are not the device's either.
        for assign in ["1", "2"] {
            let other = interface("52:54:00:01:00:00", assign);
            assert_eq!(permanent_mac(&other.path().join("eth0"), None), None);
        }
    }
}
