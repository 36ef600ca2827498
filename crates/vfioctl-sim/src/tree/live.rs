//! What changes while the simulated kernel runs: modules appearing, drivers binding and
//! unbinding, and the routes of the interfaces that exist.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use vfioctl_core::PciAddress;

use crate::spec::ModuleState;
use crate::state::KernelState;

use super::attrs::rewrite_uevent;
use super::files::{
    device_dir, group_of, put, rel_symlink, remove_dir_if_exists, remove_if_exists,
};

/// Makes a module's code present: `sys/module/<m>`, its drivers' directories, and the device
/// nodes it creates (`dev/vfio/vfio` for vfio).
pub(crate) fn module_present(root: &Path, state: &KernelState, name: &str) -> io::Result<()> {
    let Some(m) = state.module(name) else {
        return Ok(());
    };
    let mdir = PathBuf::from("sys/module").join(&m.name);
    // Built-in modules show in sys/module only when they have parameters.
    if m.state != ModuleState::Builtin || !m.parameters.is_empty() {
        fs::create_dir_all(root.join(&mdir))?;
        if m.state != ModuleState::Builtin {
            put(root, mdir.join("initstate"), "live\n")?;
            put(root, mdir.join("refcnt"), "0\n")?;
        }
        for (p, v) in &m.parameters {
            put(root, mdir.join("parameters").join(p), format!("{v}\n"))?;
        }
    }
    for d in state.drivers.iter().filter(|d| d.module == m.name) {
        let ddir = PathBuf::from("sys/bus/pci/drivers").join(&d.name);
        for f in ["bind", "unbind", "new_id", "remove_id", "uevent"] {
            put(root, ddir.join(f), "")?;
        }
        if m.state != ModuleState::Builtin {
            rel_symlink(root, &ddir.join("module"), &mdir)?;
            rel_symlink(
                root,
                &mdir.join("drivers").join(format!("pci:{}", d.name)),
                &ddir,
            )?;
        }
    }
    if state.fsl_mc.is_some() {
        for (d, _) in crate::fslmc::DRIVERS.iter().filter(|(_, dm)| *dm == m.name) {
            crate::fslmc::driver_dir(root, d)?;
        }
    }
    if m.name == "vfio" {
        put(root, "dev/vfio/vfio", "")?;
    }
    Ok(())
}

/// Binds `driver` to the device in the tree: links both ways, `enable`, `uevent`, and what the
/// driver creates (network interfaces, block devices, `dev/vfio/<group>`).
pub(crate) fn attach(
    root: &Path,
    state: &KernelState,
    address: PciAddress,
    driver: &str,
    vfio_node: bool,
) -> io::Result<()> {
    let dir = device_dir(root, address)?;
    let ddir = PathBuf::from("sys/bus/pci/drivers").join(driver);
    rel_symlink(root, &dir.join("driver"), &ddir)?;
    rel_symlink(root, &ddir.join(address.to_string()), &dir)?;
    fs::write(root.join(&dir).join("enable"), "1\n")?;
    rewrite_uevent(root, &dir, address, Some(driver))?;
    if driver == "vfio-pci" {
        if vfio_node && let Some(g) = group_of(root, &dir) {
            put(root, format!("dev/vfio/{g}"), "")?;
        }
        if state.iommufd {
            crate::cdev::create(root, address)?;
        }
        return Ok(());
    }
    if driver == "pci-stub" {
        return Ok(());
    }
    let Some(hidden) = state.devices.get(&address) else {
        return Ok(());
    };
    for n in &hidden.net {
        let ndir = dir
            .join(n.via.as_deref().unwrap_or(""))
            .join("net")
            .join(&n.name);
        put(
            root,
            ndir.join("operstate"),
            if n.up { "up\n" } else { "down\n" },
        )?;
        put(root, ndir.join("address"), mac(address))?;
        // NET_ADDR_PERM: a driver that binds starts from the device's burned-in address.
        put(root, ndir.join("addr_assign_type"), "0\n")?;
        rel_symlink(root, &Path::new("sys/class/net").join(&n.name), &ndir)?;
    }
    for b in &hidden.block {
        let cdir = match &b.via {
            Some(via) => dir.join(via),
            None => dir.join("nvme").join(&b.controller),
        };
        let disk = cdir.join(&b.disk);
        put(root, disk.join("dev"), "259:0\n")?;
        if b.via.is_none() {
            put(root, cdir.join("state"), "live\n")?;
            rel_symlink(
                root,
                &Path::new("sys/class/nvme").join(&b.controller),
                &cdir,
            )?;
        }
        rel_symlink(root, &Path::new("sys/class/block").join(&b.disk), &disk)?;
        for (i, (part, _)) in b.partitions.iter().enumerate() {
            let pdir = disk.join(part);
            put(root, pdir.join("partition"), format!("{}\n", i + 1))?;
            put(root, pdir.join("dev"), format!("259:{}\n", i + 1))?;
            rel_symlink(root, &Path::new("sys/class/block").join(part), &pdir)?;
        }
    }
    Ok(())
}

/// Unbinds the device's driver in the tree: the reverse of [`attach`].
pub(crate) fn detach(
    root: &Path,
    state: &KernelState,
    address: PciAddress,
    driver: &str,
) -> io::Result<()> {
    let dir = device_dir(root, address)?;
    remove_if_exists(&root.join(&dir).join("driver"))?;
    remove_if_exists(
        &root
            .join("sys/bus/pci/drivers")
            .join(driver)
            .join(address.to_string()),
    )?;
    fs::write(root.join(&dir).join("enable"), "0\n")?;
    rewrite_uevent(root, &dir, address, None)?;
    if driver == "vfio-pci" {
        crate::cdev::remove(root, address)?;
    }
    if let Some(hidden) = state.devices.get(&address) {
        for n in &hidden.net {
            remove_if_exists(&root.join("sys/class/net").join(&n.name))?;
            crate::hosts::remove_via(root, &dir, n.via.as_deref())?;
        }
        for b in &hidden.block {
            remove_if_exists(&root.join("sys/class/nvme").join(&b.controller))?;
            remove_if_exists(&root.join("sys/class/block").join(&b.disk))?;
            for (part, _) in &b.partitions {
                remove_if_exists(&root.join("sys/class/block").join(part))?;
            }
            crate::hosts::remove_via(root, &dir, b.via.as_deref())?;
        }
    }
    remove_dir_if_exists(&root.join(&dir).join("net"))?;
    remove_dir_if_exists(&root.join(&dir).join("nvme"))?;
    Ok(())
}

/// A stable, locally administered MAC derived from the address.
pub(crate) fn mac(address: PciAddress) -> String {
    format!(
        "52:54:{:02x}:{:02x}:{:02x}:{:02x}\n",
        address.domain as u8, address.bus, address.device, address.function
    )
}

/// Rewrites `proc/net/route` from the interfaces that exist now: an interface that vanished
/// (its NIC was unbound) takes its routes with it, as in the kernel.
pub(crate) fn write_routes(root: &Path, state: &KernelState) -> io::Result<()> {
    let mut text = String::from(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n",
    );
    for hidden in state.devices.values() {
        for n in hidden.net.iter().filter(|n| n.up) {
            if fs::symlink_metadata(root.join("sys/class/net").join(&n.name)).is_err() {
                continue;
            }
            if n.default_route {
                text.push_str(&format!(
                    "{}\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
                    n.name
                ));
            }
            text.push_str(&format!(
                "{}\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n",
                n.name
            ));
        }
    }
    put(root, "proc/net/route", text)
}
