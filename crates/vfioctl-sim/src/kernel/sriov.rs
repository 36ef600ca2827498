//! SR-IOV: `sriov_numvfs` and `sriov_drivers_autoprobe` writes, VF creation and removal, and the
//! VF link settings the PF's driver keeps.
//!
//! Semantics follow `drivers/pci/iov.c`: `sriov_numvfs_store()` parses with `kstrtou16` (EINVAL),
//! refuses more than `sriov_totalvfs` (ERANGE), succeeds without a change on the current value,
//! needs a PF driver with `sriov_configure` (ENOENT), and refuses a nonzero value while VFs exist
//! (EBUSY: the count goes through 0). Disabling is the PF driver's `sriov_configure(pdev, 0)`,
//! which refuses with EPERM while a VF is assigned (`pci_vfs_assigned()`); it does not refuse VFs
//! that are merely bound to vfio-pci: they are unbound and removed. `pci_iov_add_virtfn()` adds
//! each VF next to the PF (a `virtfnN` link in the PF, `physfn` in the VF), and
//! `pci_device_can_probe()` lets a new VF probe only when the PF's `sriov_drivers_autoprobe` is 1.
//! A PF driver's `remove()` disables SR-IOV, so unbinding the PF takes its VFs with it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use vfioctl_core::PciAddress;

use crate::spec::{DeviceSpec, HostSpec, NetIf, PciKind};
use crate::sriov::VfLink;
use crate::state::{DeviceState, Errno, KernelState};
use crate::tree::{device_dir, device_files, join_group, rel_symlink, write_routes};

use super::{SimKernel, WriteFlags, errno};

/// `kstrtou16(buf, 0, ...)`: decimal, `0x` hex or leading-zero octal, one trailing newline.
fn kstrtou16(value: &str) -> Option<u16> {
    let v = value.strip_suffix('\n').unwrap_or(value);
    let v = v.strip_prefix('+').unwrap_or(v);
    if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        return u16::from_str_radix(hex, 16).ok();
    }
    if v.len() > 1
        && let Some(oct) = v.strip_prefix('0')
    {
        return u16::from_str_radix(oct, 8).ok();
    }
    v.parse().ok()
}

/// `kstrtobool()`: the first character decides.
fn kstrtobool(value: &str) -> Option<bool> {
    match value.as_bytes() {
        [b'1' | b'y' | b'Y', ..] => Some(true),
        [b'0' | b'n' | b'N', ..] => Some(false),
        [b'o' | b'O', b'n' | b'N', ..] => Some(true),
        [b'o' | b'O', b'f' | b'F', ..] => Some(false),
        _ => None,
    }
}

fn read_u32(path: &Path) -> u32 {
    fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

impl SimKernel {
    /// `sriov_numvfs_store()`.
    pub(super) fn set_numvfs(
        &self,
        state: &mut KernelState,
        pf: PciAddress,
        full: &Path,
        value: &str,
    ) -> io::Result<()> {
        let n = kstrtou16(value).ok_or_else(|| errno(Errno::Einval))?;
        let Some(pfs) = state.sriov.get(&pf) else {
            return Err(errno(Errno::Enoent));
        };
        if u32::from(n) > pfs.total {
            return Err(errno(Errno::Erange));
        }
        let current = read_u32(full);
        if u32::from(n) == current {
            return Ok(());
        }
        let dev = self.view(pf)?;
        let configurable = dev
            .driver
            .as_deref()
            .and_then(|d| state.driver(d))
            .is_some_and(|d| d.sriov_configure);
        if !configurable {
            return Err(errno(Errno::Enoent));
        }
        if n == 0 {
            if !pfs.assigned.is_empty() {
                return Err(errno(Errno::Eperm));
            }
            return self.disable_sriov(state, pf);
        }
        if current != 0 {
            return Err(errno(Errno::Ebusy));
        }
        self.enable_sriov(state, pf, u32::from(n))
    }

    /// `sriov_drivers_autoprobe_store()`.
    pub(super) fn set_vf_autoprobe(&self, full: &Path, value: &str) -> io::Result<()> {
        let on = kstrtobool(value).ok_or_else(|| errno(Errno::Einval))?;
        fs::write(full, if on { "1\n" } else { "0\n" })
    }

    /// The VFs of `pf` now, by index, from its `virtfnN` links.
    pub(super) fn vfs_of(&self, pf: PciAddress) -> io::Result<Vec<PciAddress>> {
        let dir = self.root.join(device_dir(&self.root, pf)?);
        let mut out = Vec::new();
        for i in 0.. {
            let Ok(target) = fs::read_link(dir.join(format!("virtfn{i}"))) else {
                break;
            };
            if let Some(a) = target
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse().ok())
            {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// `pci_disable_sriov()`: every VF unbound and removed, last first.
    pub(super) fn disable_sriov(&self, state: &mut KernelState, pf: PciAddress) -> io::Result<()> {
        let vfs = self.vfs_of(pf)?;
        let names: Vec<Option<NetIf>> = vfs
            .iter()
            .map(|vf| state.devices.get(vf).and_then(|d| d.net.first().cloned()))
            .collect();
        if let Some(pfs) = state.sriov.get_mut(&pf) {
            // Names past the boot-time ones are derived from the index again on re-creation.
            for (slot, name) in pfs.vf_net.iter_mut().zip(names) {
                if name.is_some() {
                    *slot = name;
                }
            }
        }
        for vf in vfs.into_iter().rev() {
            self.remove_device(state, vf)?;
        }
        if let Some(pfs) = state.sriov.get_mut(&pf) {
            pfs.links.clear();
            pfs.assigned.clear();
        }
        let dir = self.root.join(device_dir(&self.root, pf)?);
        fs::write(dir.join("sriov_numvfs"), "0\n")?;
        write_routes(&self.root, state)
    }

    /// `sriov_enable()`: `n` VFs added next to the PF, each probed when autoprobe allows it.
    fn enable_sriov(&self, state: &mut KernelState, pf: PciAddress, n: u32) -> io::Result<()> {
        let Some(pfs) = state.sriov.get(&pf).cloned() else {
            return Err(errno(Errno::Enoent));
        };
        let pf_dir = device_dir(&self.root, pf)?;
        let parent = pf_dir.parent().map(Path::to_path_buf).unwrap_or_default();
        let pf_group = self.view(pf)?.group;
        let pf_if = state
            .devices
            .get(&pf)
            .and_then(|d| d.net.first())
            .map(|n| n.name.clone());
        let host = HostSpec {
            arch: state.arch,
            release: state.release.clone(),
            cmdline: String::new(),
            iommu: None,
            group_type: pfs.group_type.clone(),
            acs_enabled_at_boot: true,
            override_unset_null: state.override_unset_null,
            extra_mounts: Vec::new(),
            modprobe_d: Vec::new(),
        };
        let autoprobe = read_u32(&self.root.join(&pf_dir).join("sriov_drivers_autoprobe")) != 0
            && self.autoprobe();
        let mut added = Vec::new();
        for i in 0..n {
            let address = pfs.vf_address(pf, i).ok_or_else(|| errno(Errno::Enodev))?;
            let mut spec = DeviceSpec::new(address, pfs.vf_id, pfs.class, PciKind::Endpoint).flr();
            spec.physfn = Some(pf);
            spec.reset_methods = vec!["flr".to_owned()];
            let dir: PathBuf = parent.join(address.to_string());
            device_files(&self.root, &host, &spec, &dir)?;
            rel_symlink(&self.root, &dir.join("physfn"), &pf_dir)?;
            rel_symlink(&self.root, &pf_dir.join(format!("virtfn{i}")), &dir)?;
            if let Some(g) = pf_group {
                let group = if pfs.own_groups {
                    self.free_group()?
                } else {
                    g
                };
                join_group(&self.root, &dir, address, group, &pfs.group_type)?;
            }
            let kept = pfs.vf_net.get(i as usize).cloned().flatten();
            let net = kept.or_else(|| {
                pf_if.as_ref().map(|name| NetIf {
                    name: format!("{name}v{i}"),
                    up: false,
                    default_route: false,
                    via: None,
                })
            });
            if let Some(net) = net {
                state.devices.insert(
                    address,
                    DeviceState {
                        net: vec![net],
                        block: Vec::new(),
                    },
                );
            }
            added.push(address);
        }
        fs::write(
            self.root.join(&pf_dir).join("sriov_numvfs"),
            format!("{n}\n"),
        )?;
        if let Some(p) = state.sriov.get_mut(&pf) {
            p.links = vec![VfLink::default(); n as usize];
            p.assigned.clear();
        }
        if autoprobe {
            for address in added {
                let dev = self.view(address)?;
                self.attach_any(state, &dev, WriteFlags::default())?;
            }
        }
        write_routes(&self.root, state)
    }

    /// The lowest group number not in use, as the kernel's IDA hands them out.
    fn free_group(&self) -> io::Result<u32> {
        let used: std::collections::BTreeSet<u32> =
            fs::read_dir(self.root.join("sys/kernel/iommu_groups"))?
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect();
        Ok((0..).find(|g| !used.contains(g)).unwrap_or(0))
    }

    /// Marks a VF assigned to a guest (`pci_set_dev_assigned()`), or no longer: while one is,
    /// the PF's driver refuses to remove its VFs.
    pub fn set_vf_assigned(&self, vf: PciAddress, assigned: bool) -> io::Result<()> {
        let _lock = self.lock()?;
        let mut state = self.state()?;
        let pf = self.physfn(vf).ok_or_else(|| errno(Errno::Enodev))?;
        let pfs = state
            .sriov
            .get_mut(&pf)
            .ok_or_else(|| errno(Errno::Enodev))?;
        pfs.assigned.retain(|a| *a != vf);
        if assigned {
            pfs.assigned.push(vf);
        }
        state.save(&self.root)
    }

    fn physfn(&self, vf: PciAddress) -> Option<PciAddress> {
        let dir = device_dir(&self.root, vf).ok()?;
        fs::read_link(self.root.join(dir).join("physfn"))
            .ok()?
            .file_name()?
            .to_str()?
            .parse()
            .ok()
    }

    /// The VF link settings the driver of the PF behind interface `ifname` holds (what an
    /// `RTM_GETLINK` dump lists as `IFLA_VFINFO_LIST`), by VF index.
    pub fn vf_links(&self, ifname: &str) -> io::Result<Vec<VfLink>> {
        let state = self.state()?;
        let pf = self.pf_of_interface(&state, ifname)?;
        Ok(state
            .sriov
            .get(&pf)
            .map(|p| p.links.clone())
            .unwrap_or_default())
    }

    /// Changes VF `index`'s link settings on interface `ifname` (an `RTM_SETLINK` with
    /// `IFLA_VFINFO_LIST`): ENODEV without such an interface, EINVAL without such a VF. Faults
    /// match it as a write to `netlink/<ifname>/vf<index>`.
    pub fn set_vf_link(
        &self,
        ifname: &str,
        index: u32,
        change: impl FnOnce(&mut VfLink),
    ) -> io::Result<()> {
        let rel = format!("netlink/{ifname}/vf{index}");
        self.write_with(&rel, "", |kernel, state, _| {
            let pf = kernel.pf_of_interface(state, ifname)?;
            let link = state
                .sriov
                .get_mut(&pf)
                .and_then(|p| p.links.get_mut(index as usize))
                .ok_or_else(|| errno(Errno::Einval))?;
            change(link);
            Ok(())
        })
    }

    /// The PF whose driver created interface `ifname` (and has it now).
    fn pf_of_interface(&self, state: &KernelState, ifname: &str) -> io::Result<PciAddress> {
        let exists = fs::symlink_metadata(self.root.join("sys/class/net").join(ifname)).is_ok();
        state
            .devices
            .iter()
            .find(|(a, d)| state.sriov.contains_key(a) && d.net.iter().any(|n| n.name == ifname))
            .map(|(a, _)| *a)
            .filter(|_| exists)
            .ok_or_else(|| errno(Errno::Enodev))
    }
}
