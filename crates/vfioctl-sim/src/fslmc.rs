//! The fsl-mc bus (NXP DPAA2) as kernel 6.6 shows it on the LS1088A (Ten64).
//!
//! Facts used (from `drivers/bus/fsl-mc/*.c`, `drivers/vfio/fsl-mc/vfio_fsl_mc.c`, summarised in
//! `/work/shared/context/fsl-mc.md`):
//! - the root container `dprc.1` sits under the MC's platform device, objects nest under their
//!   container, `sys/bus/fsl-mc/devices/<obj>` are links;
//! - a container's objects exist only while a driver holds the container (its probe scans them,
//!   its remove deletes them); a restool-made container nobody took shows up alone;
//! - matching: a set `driver_override` decides alone, else the driver's object types;
//!   vfio-fsl-mc has no table; no `new_id` on this bus;
//! - binding a container to vfio-fsl-mc sets `driver_override=vfio-fsl-mc` on every object it
//!   scans, so they all bind to vfio-fsl-mc;
//! - groups: one per container, objects join their container's; before v6.15 an object gets its
//!   group only when a driver first probes it, so unbound objects have no `iommu_group`.
//!
//! vfio-fsl-mc binding a non-container object requires its container to be on vfio-fsl-mc
//! (EINVAL otherwise): that is our reading of `vfio_fsl_mc_init_device()`, not a measured fact.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use crate::spec::{ContainerSpec, FslMcSpec};
use crate::state::{Errno, KernelState};
use crate::tree::files::{
    group_of, put, rel_symlink, remove_dir_if_exists, remove_if_exists, resolve_link,
};

/// The bus directory.
const BUS: &str = "sys/bus/fsl-mc";
/// The vfio driver's name.
pub const VFIO_FSL_MC: &str = "vfio-fsl-mc";

/// The driver an object type gets without an override, and the module providing it.
pub fn default_driver(object: &str) -> Option<(&'static str, &'static str)> {
    match object.split('.').next()? {
        "dprc" => Some(("fsl_mc_dprc", "fsl_mc_bus")),
        "dpni" => Some(("fsl_dpaa2_eth", "fsl_dpaa2_eth")),
        "dpio" => Some(("fsl_mc_dpio", "fsl_mc_dpio")),
        "dpbp" | "dpmcp" | "dpcon" => Some(("fsl_mc_allocator", "fsl_mc_bus")),
        _ => None,
    }
}

/// Every fsl-mc driver and its module.
pub const DRIVERS: &[(&str, &str)] = &[
    ("fsl_mc_dprc", "fsl_mc_bus"),
    ("fsl_mc_allocator", "fsl_mc_bus"),
    ("fsl_mc_dpio", "fsl_mc_dpio"),
    ("fsl_dpaa2_eth", "fsl_dpaa2_eth"),
    (VFIO_FSL_MC, "vfio_fsl_mc"),
];

/// The Ten64's bus: `dprc.1` (the host's, bound) with its network objects, and `dprc.2` made by
/// restool for a VM, unbound, holding one of each object a guest needs.
pub fn ten64_fsl_mc() -> FslMcSpec {
    let list = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
    FslMcSpec {
        base: "sys/devices/platform/soc/80c000000.fsl-mc".to_owned(),
        containers: vec![
            ContainerSpec {
                name: "dprc.1".to_owned(),
                parent: None,
                objects: list(&[
                    "dpbp.0", "dpcon.0", "dpio.0", "dpmac.1", "dpmac.2", "dpmcp.1", "dpni.0",
                    "dpni.1",
                ]),
                driver: Some("fsl_mc_dprc".to_owned()),
                plugged: true,
            },
            ContainerSpec {
                name: "dprc.2".to_owned(),
                parent: Some("dprc.1".to_owned()),
                objects: list(&["dpbp.1", "dpcon.1", "dpio.1", "dpmcp.2", "dpni.2"]),
                driver: None,
                plugged: false,
            },
        ],
        mc: crate::restool::McState::default(),
    }
}

fn container<'a>(state: &'a KernelState, name: &str) -> Option<&'a ContainerSpec> {
    state
        .fsl_mc
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == name)
}

/// The objects a container holds, child containers included.
fn children(state: &KernelState, name: &str) -> Vec<String> {
    let Some(bus) = &state.fsl_mc else {
        return Vec::new();
    };
    let mut out: Vec<String> = bus
        .containers
        .iter()
        .filter(|c| c.parent.as_deref() == Some(name))
        .map(|c| c.name.clone())
        .collect();
    if let Some(c) = container(state, name) {
        out.extend(c.objects.iter().cloned());
    }
    out
}

fn driver_present(state: &KernelState, driver: &str) -> bool {
    DRIVERS
        .iter()
        .find(|(d, _)| *d == driver)
        .is_some_and(|(_, m)| state.module_state(m).is_present())
}

/// Writes the bus skeleton, the driver directories of loaded drivers, and the root containers
/// (scanning those bound at boot).
pub(crate) fn build(root: &Path, state: &KernelState) -> io::Result<()> {
    let Some(bus) = &state.fsl_mc else {
        return Ok(());
    };
    for f in ["drivers_probe", "rescan"] {
        put(root, format!("{BUS}/{f}"), "")?;
    }
    put(root, format!("{BUS}/drivers_autoprobe"), "1\n")?;
    put(root, format!("{BUS}/autorescan"), "1\n")?;
    fs::create_dir_all(root.join(BUS).join("devices"))?;
    for (d, m) in DRIVERS {
        if state.module_state(m).is_present() {
            driver_dir(root, d)?;
        }
    }
    fs::create_dir_all(root.join(&bus.base))?;
    for c in bus.containers.iter().filter(|c| c.parent.is_none()) {
        add_object(root, state, &c.name, &PathBuf::from(&bus.base))?;
        put(root, format!("dev/{}", c.name), "")?;
        if let Some(d) = &c.driver {
            bind(root, state, &c.name, d)?;
        }
    }
    Ok(())
}

/// Creates a driver's directory (`bind`, `unbind`; this bus has no `new_id`).
pub(crate) fn driver_dir(root: &Path, driver: &str) -> io::Result<()> {
    for f in ["bind", "unbind", "uevent"] {
        put(root, format!("{BUS}/drivers/{driver}/{f}"), "")?;
    }
    Ok(())
}

pub(crate) fn object_dir(root: &Path, name: &str) -> io::Result<PathBuf> {
    resolve_link(root, &PathBuf::from(BUS).join("devices").join(name))
        .map_err(|_| Errno::Enodev.error())
}

fn uevent(name: &str, driver: Option<&str>) -> String {
    let ty = name.split('.').next().unwrap_or(name);
    let mut s = String::new();
    if let Some(d) = driver {
        s.push_str(&format!("DRIVER={d}\n"));
    }
    s.push_str(&format!(
        "DEVTYPE=fsl_mc_bus_{ty}\nMODALIAS=fsl-mc:v00001957d{ty}\n"
    ));
    s
}

pub(crate) fn add_object(
    root: &Path,
    state: &KernelState,
    name: &str,
    parent_dir: &Path,
) -> io::Result<()> {
    let dir = parent_dir.join(name);
    let ty = name.split('.').next().unwrap_or(name);
    put(
        root,
        dir.join("modalias"),
        format!("fsl-mc:v00001957d{ty}\n"),
    )?;
    put(
        root,
        dir.join("driver_override"),
        if state.override_unset_null {
            "(null)\n"
        } else {
            "\n"
        },
    )?;
    put(root, dir.join("uevent"), uevent(name, None))?;
    rel_symlink(root, &dir.join("subsystem"), Path::new(BUS))?;
    rel_symlink(root, &Path::new(BUS).join("devices").join(name), &dir)
}

fn read_override(root: &Path, dir: &Path) -> Option<String> {
    let t = fs::read_to_string(root.join(dir).join("driver_override")).ok()?;
    let v = t.trim_end_matches('\n').trim();
    (!v.is_empty() && v != "(null)").then(|| v.to_owned())
}

pub(crate) fn bound_driver(root: &Path, dir: &Path) -> Option<String> {
    Some(
        fs::read_link(root.join(dir).join("driver"))
            .ok()?
            .file_name()?
            .to_string_lossy()
            .into_owned(),
    )
}

fn next_group(root: &Path) -> u32 {
    fs::read_dir(root.join("sys/kernel/iommu_groups"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .max()
                .map_or(0, |m| m + 1)
        })
        .unwrap_or(0)
}

fn join_group(root: &Path, name: &str, dir: &Path, group: u32) -> io::Result<()> {
    let gdir = PathBuf::from(format!("sys/kernel/iommu_groups/{group}"));
    if !root.join(&gdir).join("type").exists() {
        put(root, gdir.join("type"), "DMA\n")?;
        fs::create_dir_all(root.join(&gdir).join("devices"))?;
    }
    rel_symlink(root, &dir.join("iommu_group"), &gdir)?;
    rel_symlink(root, &gdir.join("devices").join(name), dir)
}

/// `fsl_mc_bus_match()`: an override decides alone; else the object must be plugged (the root
/// container is exempt) and of a type the driver takes.
fn matches(state: &KernelState, driver: &str, name: &str, over: Option<&str>) -> bool {
    match over {
        Some(o) => o == driver,
        None => {
            let plugged = container(state, name).is_none_or(|c| c.plugged || c.parent.is_none())
                && state
                    .fsl_mc
                    .as_ref()
                    .is_none_or(|b| !b.mc.unplugged.iter().any(|u| u == name));
            plugged && default_driver(name).is_some_and(|(d, _)| d == driver)
        }
    }
}

/// Module init of an fsl-mc driver: probes every unbound object it matches.
pub(crate) fn attach_all(root: &Path, state: &KernelState) -> io::Result<()> {
    if state.fsl_mc.is_none() {
        return Ok(());
    }
    let Ok(entries) = fs::read_dir(root.join(BUS).join("devices")) else {
        return Ok(());
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        // A container bound earlier in this loop may have scanned (or removed) objects.
        if object_dir(root, &name).is_ok() {
            try_attach(root, state, &name)?;
        }
    }
    Ok(())
}

/// Probes `name` with `driver` and, for a container, scans its objects.
fn bind(root: &Path, state: &KernelState, name: &str, driver: &str) -> io::Result<()> {
    let dir = object_dir(root, name)?;
    let is_dprc = name.starts_with("dprc.");
    if driver == VFIO_FSL_MC && !is_dprc {
        let parent = dir
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent_dir = dir.parent().map(Path::to_path_buf).unwrap_or_default();
        if !parent.starts_with("dprc.")
            || bound_driver(root, &parent_dir).as_deref() != Some(VFIO_FSL_MC)
        {
            return Err(Errno::Einval.error());
        }
    }
    // The IOMMU is configured when a driver first probes the object (kernels before 6.15).
    if group_of(root, &dir).is_none() {
        let parent_group = dir.parent().and_then(|p| group_of(root, p));
        let group = match parent_group {
            Some(g) if !is_dprc => g,
            _ => next_group(root),
        };
        join_group(root, name, &dir, group)?;
    }
    let ddir = PathBuf::from(BUS).join("drivers").join(driver);
    rel_symlink(root, &dir.join("driver"), &ddir)?;
    rel_symlink(root, &ddir.join(name), &dir)?;
    fs::write(root.join(&dir).join("uevent"), uevent(name, Some(driver)))?;
    if driver == VFIO_FSL_MC
        && let Some(g) = group_of(root, &dir)
    {
        put(root, format!("dev/vfio/{g}"), "")?;
    }
    if is_dprc {
        for child in children(state, name) {
            add_object(root, state, &child, &dir)?;
            let cdir = dir.join(&child);
            if driver == VFIO_FSL_MC {
                // vfio_fsl_mc_bus_notifier(): every scanned object gets the override.
                put(
                    root,
                    cdir.join("driver_override"),
                    format!("{VFIO_FSL_MC}\n"),
                )?;
            }
            try_attach(root, state, &child)?;
        }
    }
    Ok(())
}

/// `device_attach()` for one object: the first present driver that matches and probes.
fn try_attach(root: &Path, state: &KernelState, name: &str) -> io::Result<()> {
    let dir = object_dir(root, name)?;
    if bound_driver(root, &dir).is_some() {
        return Ok(());
    }
    let over = read_override(root, &dir);
    for (d, _) in DRIVERS {
        if driver_present(state, d) && matches(state, d, name, over.as_deref()) {
            match bind(root, state, name, d) {
                Ok(()) => return Ok(()),
                Err(e) if e.raw_os_error().is_some() => continue,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Unbinds `name`; a container's objects are removed with it (`dprc_remove_devices()`).
fn unbind(root: &Path, state: &KernelState, name: &str, driver: &str) -> io::Result<()> {
    let dir = object_dir(root, name)?;
    if name.starts_with("dprc.") {
        for child in children(state, name) {
            if let Ok(cdir) = object_dir(root, &child) {
                if let Some(d) = bound_driver(root, &cdir) {
                    unbind(root, state, &child, &d)?;
                }
                remove_object(root, &child, &cdir)?;
            }
        }
    }
    remove_if_exists(&root.join(&dir).join("driver"))?;
    remove_if_exists(&root.join(BUS).join("drivers").join(driver).join(name))?;
    fs::write(root.join(&dir).join("uevent"), uevent(name, None))?;
    if driver == VFIO_FSL_MC
        && let Some(g) = group_of(root, &dir)
        && !group_has_vfio(root, g)
    {
        remove_if_exists(&root.join(format!("dev/vfio/{g}")))?;
    }
    Ok(())
}

fn group_has_vfio(root: &Path, group: u32) -> bool {
    let Ok(entries) = fs::read_dir(root.join(format!("sys/kernel/iommu_groups/{group}/devices")))
    else {
        return false;
    };
    entries.filter_map(Result::ok).any(|e| {
        fs::read_link(e.path().join("driver"))
            .ok()
            .is_some_and(|t| t.file_name().is_some_and(|n| n == VFIO_FSL_MC))
    })
}

pub(crate) fn remove_object(root: &Path, name: &str, dir: &Path) -> io::Result<()> {
    if let Some(g) = group_of(root, dir) {
        let gdir = root.join(format!("sys/kernel/iommu_groups/{g}"));
        remove_if_exists(&gdir.join("devices").join(name))?;
        if fs::read_dir(gdir.join("devices")).is_ok_and(|mut d| d.next().is_none()) {
            remove_dir_if_exists(&gdir)?;
        }
    }
    remove_if_exists(&root.join(BUS).join("devices").join(name))?;
    remove_dir_if_exists(&root.join(dir))
}

/// Handles a write under the fsl-mc bus (or to an object's attribute); `None` when `parts` is
/// not an fsl-mc path.
pub(crate) fn write(
    root: &Path,
    state: &KernelState,
    parts: &[&str],
    value: &str,
) -> Option<io::Result<()>> {
    state.fsl_mc.as_ref()?;
    let name = value.strip_suffix('\n').unwrap_or(value);
    Some(match parts {
        ["sys", "bus", "fsl-mc", "drivers", drv, op]
            if root.join(BUS).join("drivers").join(drv).is_dir() =>
        {
            match *op {
                "bind" => object_dir(root, name).and_then(|dir| {
                    if !matches(state, drv, name, read_override(root, &dir).as_deref()) {
                        return Err(Errno::Enodev.error());
                    }
                    if bound_driver(root, &dir).is_some() {
                        return Err(Errno::Ebusy.error());
                    }
                    bind(root, state, name, drv)
                }),
                "unbind" => object_dir(root, name).and_then(|dir| {
                    if bound_driver(root, &dir).as_deref() != Some(*drv) {
                        return Err(Errno::Enodev.error());
                    }
                    unbind(root, state, name, drv)
                }),
                _ => Err(io::Error::from_raw_os_error(13)),
            }
        }
        ["sys", "bus", "fsl-mc", "drivers_probe"] => {
            object_dir(root, name).and_then(|_| try_attach(root, state, name))
        }
        [
            "sys",
            "bus",
            "fsl-mc",
            "rescan" | "autorescan" | "drivers_autoprobe",
        ] => Ok(()),
        [.., obj, "driver_override"]
            if obj.starts_with("dp")
                && obj.contains('.')
                && root.join(parts.join("/")).exists() =>
        {
            if value.len() >= 4095 {
                return Some(Err(Errno::Einval.error()));
            }
            let v = value.split('\0').next().unwrap_or("");
            let v = v.split('\n').next().unwrap_or("");
            let text = match (v.is_empty(), state.override_unset_null) {
                (false, _) => format!("{v}\n"),
                (true, true) => "(null)\n".to_owned(),
                (true, false) => "\n".to_owned(),
            };
            fs::write(root.join(parts.join("/")), text)
        }
        _ => return None,
    })
}
