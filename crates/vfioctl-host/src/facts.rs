//! Reading what `doctor` checks: the kernel command line, IOMMU units and group types, interrupt
//! isolation, VFIO modules and their parameters, modprobe.d, `/dev/vfio`, driverctl's overrides,
//! vfioctl's journal and the known-devices tables, all under the root.
//!
//! Nothing here decides anything: the checks are pure functions in `vfioctl_core::doctor`. What
//! cannot be read is recorded as unknown (`None`), never as "fine".

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use vfioctl_core::Inventory;
use vfioctl_core::doctor::{
    Arch, DoctorFacts, DriverctlOverride, FslMcFacts, ModuleStatus, VFIO_FSL_MC_MODULE,
    VFIO_MODULES, canonical, parse_modprobe_conf,
};
use vfioctl_core::known::KnownDevices;

use crate::hostuse::Walk;
use crate::journal::Journal;
use crate::read::{dir_names, read_attr};
use crate::usage::HostUsage;
use crate::{HostError, HostRoot};

/// Where a host's own known-devices table lives (as on `/`).
pub const HOST_KNOWN_DEVICES: &str = "/etc/vfioctl/devices.toml";

/// Directories kmod reads `*.conf` from, in its order of precedence.
const MODPROBE_DIRS: &[&str] = &[
    "etc/modprobe.d",
    "run/modprobe.d",
    "usr/local/lib/modprobe.d",
    "lib/modprobe.d",
    "usr/lib/modprobe.d",
];

fn text(root: &HostRoot, rel: &str) -> Result<Option<String>, HostError> {
    match read_attr(&root.join(rel)) {
        Ok(t) => Ok(t),
        // Unreadable (permissions, a directory): unknown, not fatal for a diagnosis.
        Err(HostError::Read { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn flag(root: &HostRoot, rel: &str) -> Result<Option<bool>, HostError> {
    Ok(text(root, rel)?.map(|t| matches!(t.trim(), "Y" | "y" | "1")))
}

/// The architecture of the host under `root` (not of this build: a `--root` tree may be an
/// arm64 board's), from `/proc/cpuinfo`, else the IOMMU's kind, else (on `/`) this build's.
pub fn root_arch(root: &HostRoot) -> Arch {
    let units = crate::read::dir_names(&root.join("sys/class/iommu"));
    arch(root, &units).unwrap_or(Arch::Unknown)
}

/// The architecture: from `/proc/cpuinfo`, else the IOMMU's kind, else (on `/`) this build's.
pub(crate) fn arch(root: &HostRoot, units: &[String]) -> Result<Arch, HostError> {
    if let Some(cpuinfo) = text(root, "proc/cpuinfo")? {
        if cpuinfo.contains("CPU implementer") {
            return Ok(Arch::Aarch64);
        }
        if cpuinfo.contains("vendor_id") {
            return Ok(Arch::X86_64);
        }
    }
    if units
        .iter()
        .any(|u| u.starts_with("dmar") || u.starts_with("ivhd"))
    {
        return Ok(Arch::X86_64);
    }
    if units.iter().any(|u| u.contains("smmu")) {
        return Ok(Arch::Aarch64);
    }
    if root.is_real_root() {
        return Ok(match std::env::consts::ARCH {
            "x86_64" => Arch::X86_64,
            "aarch64" => Arch::Aarch64,
            _ => Arch::Unknown,
        });
    }
    Ok(Arch::Unknown)
}

/// A device-tree node for a GICv3 ITS: `compatible` names `arm,gic-v3-its`, or an `its@...` node
/// carries `msi-controller`.
fn tree_has_its(dir: &Path, depth: usize) -> bool {
    if depth > 4 {
        return false;
    }
    let compatible = fs::read(dir.join("compatible")).unwrap_or_default();
    if String::from_utf8_lossy(&compatible).contains("arm,gic-v3-its") {
        return true;
    }
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if (name.starts_with("its@") || name.starts_with("gic-its@") || name == "its")
        && dir.join("msi-controller").exists()
    {
        return true;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries
        .filter_map(Result::ok)
        .any(|e| e.file_type().is_ok_and(|t| t.is_dir()) && tree_has_its(&e.path(), depth + 1))
}

fn device_tree_its(root: &HostRoot) -> Option<bool> {
    // /proc/device-tree is an absolute link to the real location, which would leave a --root.
    let base = root.join("sys/firmware/devicetree/base");
    let proc_dt = root.join("proc/device-tree");
    let dir = if base.is_dir() {
        base
    } else if fs::symlink_metadata(&proc_dt).is_ok_and(|m| m.is_dir()) {
        proc_dt
    } else {
        return None;
    };
    Some(tree_has_its(&dir, 0))
}

fn module_basename(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = [".ko.zst", ".ko.xz", ".ko.gz", ".ko"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))?;
    Some(canonical(stem))
}

/// Status of each module in `wanted` (canonical names).
fn modules(
    root: &HostRoot,
    release: Option<&str>,
    wanted: &[&str],
) -> Result<Vec<(String, ModuleStatus)>, HostError> {
    let (builtin, dep) = match release {
        Some(r) => (
            text(root, &format!("lib/modules/{r}/modules.builtin"))?,
            text(root, &format!("lib/modules/{r}/modules.dep"))?,
        ),
        None => (None, None),
    };
    let listed = |file: &Option<String>, name: &str| {
        file.as_deref().is_some_and(|t| {
            t.lines().any(|l| {
                let path = l.split(':').next().unwrap_or_default().trim();
                module_basename(path).as_deref() == Some(name)
            })
        })
    };
    Ok(wanted
        .iter()
        .map(|name| {
            let status = if root.join("sys/module").join(name).is_dir() {
                if listed(&builtin, name) {
                    ModuleStatus::Builtin
                } else {
                    ModuleStatus::Loaded
                }
            } else if listed(&builtin, name) {
                ModuleStatus::Builtin
            } else if listed(&dep, name) {
                ModuleStatus::Available
            } else if builtin.is_none() && dep.is_none() {
                ModuleStatus::Unknown
            } else {
                ModuleStatus::Missing
            };
            ((*name).to_owned(), status)
        })
        .collect())
}

/// Reads every fact `doctor` checks. `default_known` is the known-devices table shipped with
/// vfioctl; the host's `/etc/vfioctl/devices.toml` overrides and extends it.
pub fn gather(
    root: &HostRoot,
    inventory: &Inventory,
    default_known: &str,
) -> Result<DoctorFacts, HostError> {
    let uses = || -> Result<_, HostError> {
        let usage = HostUsage::read(root)?;
        Ok(crate::apply::host_uses(
            root,
            inventory,
            &usage,
            Walk::Classes,
        ))
    };
    // The host uses (a link per disk and interface) and the group types (a file per group) are
    // the two whole-host walks here, both kernel time; on a large host they run side by side.
    if inventory.devices().len() < crate::read::DEVICES_PER_THREAD {
        let mut facts = gather_except_uses(root, inventory, default_known)?;
        facts.host_uses = uses()?;
        return Ok(facts);
    }
    std::thread::scope(|scope| {
        let worker = scope.spawn(uses);
        let facts = gather_except_uses(root, inventory, default_known);
        let host_uses = match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let mut facts = facts?;
        facts.host_uses = host_uses?;
        Ok(facts)
    })
}

/// Everything [`gather`] reads but the host uses.
fn gather_except_uses(
    root: &HostRoot,
    inventory: &Inventory,
    default_known: &str,
) -> Result<DoctorFacts, HostError> {
    let mut facts = DoctorFacts {
        cmdline: text(root, "proc/cmdline")?.map(|t| t.trim().to_owned()),
        iommu_units: dir_names(&root.join("sys/class/iommu")),
        ..DoctorFacts::default()
    };
    facts.arch = arch(root, &facts.iommu_units)?;
    let groups = root.join("sys/kernel/iommu_groups");
    let mut types = crate::read::DeviceAttrs::new(&groups);
    for group in dir_names(&groups) {
        let Ok(id) = group.parse::<u32>() else {
            continue;
        };
        if let Some(t) = types.text(&format!("{group}/type"), |t| t.trim().to_owned())? {
            facts.group_types.insert(id, t);
        }
    }
    for unit in facts.iommu_units.iter().filter(|u| u.starts_with("dmar")) {
        let ecap = text(root, &format!("sys/class/iommu/{unit}/intel-iommu/ecap"))?.and_then(|t| {
            let t = t.trim();
            u64::from_str_radix(t.strip_prefix("0x").unwrap_or(t), 16).ok()
        });
        facts.dmar_ecap.insert(unit.clone(), ecap);
    }
    // ITS domains show as ITS-MSI / ITS-pMSI once a device uses MSIs. No ITS line while another
    // MSI domain is in use (GICv2m) means no ITS; no MSI user at all tells nothing.
    facts.its_in_interrupts = text(root, "proc/interrupts")?.and_then(|t| {
        if t.contains("ITS-") {
            Some(true)
        } else if t.contains("MSI") {
            Some(false)
        } else {
            None
        }
    });
    facts.its_in_device_tree = device_tree_its(root);
    facts.allow_unsafe_interrupts = flag(
        root,
        "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts",
    )?;
    facts.noiommu_mode = flag(
        root,
        "sys/module/vfio/parameters/enable_unsafe_noiommu_mode",
    )?;
    facts.disable_idle_d3 = flag(root, "sys/module/vfio_pci/parameters/disable_idle_d3")?;
    facts.kernel_release = text(root, "proc/sys/kernel/osrelease")?.map(|t| t.trim().to_owned());

    let fsl_mc = root.join("sys/bus/fsl-mc").is_dir();
    let mut wanted: Vec<&str> = VFIO_MODULES.to_vec();
    if fsl_mc {
        wanted.push(VFIO_FSL_MC_MODULE);
        facts.fsl_mc = Some(FslMcFacts {
            vfio_driver: root.join("sys/bus/fsl-mc/drivers/vfio-fsl-mc").is_dir(),
            ..FslMcFacts::default()
        });
    }
    facts.modules = modules(root, facts.kernel_release.as_deref(), &wanted)?
        .into_iter()
        .collect();

    for dir in MODPROBE_DIRS {
        for name in dir_names(&root.join(dir)) {
            if !name.ends_with(".conf") {
                continue;
            }
            let rel = format!("{dir}/{name}");
            if let Some(t) = text(root, &rel)? {
                facts
                    .modprobe
                    .extend(parse_modprobe_conf(&format!("/{rel}"), &t));
            }
        }
    }

    facts.vfio_container_mode = fs::metadata(root.join("dev/vfio/vfio"))
        .ok()
        .map(|m| m.permissions().mode());
    facts.vfio_group_nodes = dir_names(&root.join("dev/vfio"))
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    facts.vfio_cdev = root.join("dev/vfio/devices").is_dir();
    facts.iommufd = crate::iommufd::read_facts(root)?;

    for name in dir_names(&root.join("etc/driverctl.d")) {
        let Some((bus, device)) = name.split_once('-') else {
            continue;
        };
        let rel = format!("etc/driverctl.d/{name}");
        let driver = text(root, &rel)?.unwrap_or_default().trim().to_owned();
        facts.driverctl.push(DriverctlOverride {
            path: format!("/{rel}"),
            bus: bus.to_owned(),
            device: device.to_owned(),
            driver,
        });
    }

    match Journal::load(root) {
        Ok(journal) => {
            facts.journal = crate::owners::journal_facts(root, &journal);
            facts.journaled = journal
                .entries
                .iter()
                .filter_map(|e| e.original.device.pci())
                .collect();
        }
        Err(e @ crate::journal::JournalError::Corrupt { .. }) => {
            facts.journal_problem = Some(e.to_string());
        }
        Err(e) => {
            let mut why = e.to_string();
            if let Some(source) = std::error::Error::source(&e) {
                why = format!("{why}: {source}");
            }
            facts.journal_unreadable = Some(why);
        }
    }

    facts.boot = crate::boot::facts::gather(root, inventory);
    facts.known = match KnownDevices::parse(default_known, "<built-in>") {
        Ok(t) => t,
        Err(e) => {
            facts
                .known_problems
                .push(("<built-in>".to_owned(), e.to_string()));
            KnownDevices::default()
        }
    };
    if let Some(t) = text(root, HOST_KNOWN_DEVICES)? {
        match KnownDevices::parse(&t, HOST_KNOWN_DEVICES) {
            Ok(local) => facts.known = std::mem::take(&mut facts.known).merged(local),
            Err(e) => facts
                .known_problems
                .push((HOST_KNOWN_DEVICES.to_owned(), e.to_string())),
        }
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "version = 1\n[[device]]\nid = \"1b4b:9230\"\nstatus = \"misbehaves\"\n\
                         note = \"panics\"\n";

    fn put(root: &Path, rel: &str, content: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    /// A hand-written tree: an x86 host with VT-d, vfio modules available but not loaded.
    fn x86_tree() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        fs::create_dir_all(r.join("sys/bus/pci/devices")).unwrap();
        put(
            r,
            "proc/cmdline",
            "root=/dev/sda1 intel_iommu=on iommu=pt\n",
        );
        put(r, "proc/sys/kernel/osrelease", "6.8.0-45-generic\n");
        put(r, "proc/mounts", "");
        put(r, "sys/class/iommu/dmar0/intel-iommu/ecap", "f050da\n");
        put(r, "sys/class/iommu/dmar1/intel-iommu/ecap", "19e2ff0505e\n");
        put(r, "sys/kernel/iommu_groups/3/type", "identity\n");
        put(
            r,
            "lib/modules/6.8.0-45-generic/modules.dep",
            "kernel/drivers/vfio/vfio.ko.zst:\n\
             kernel/drivers/vfio/vfio_iommu_type1.ko.zst: kernel/drivers/vfio/vfio.ko.zst\n\
             kernel/drivers/vfio/pci/vfio-pci.ko.zst: kernel/drivers/vfio/vfio.ko.zst\n",
        );
        put(r, "lib/modules/6.8.0-45-generic/modules.builtin", "");
        put(
            r,
            "etc/modprobe.d/vfio.conf",
            "options vfio-pci ids=10de:2684\nblacklist vfio_pci\n",
        );
        put(
            r,
            "etc/modprobe.d/ignored.txt",
            "install vfio-pci /bin/false\n",
        );
        put(r, "etc/driverctl.d/pci-0000:01:00.0", "vfio-pci\n");
        put(
            r,
            "etc/vfioctl/devices.toml",
            "version = 1\n[[device]]\nid = \"1b4b:9230\"\nstatus = \"works\"\nnote = \"ok here\"\n",
        );
        tmp
    }

    #[test]
    fn reads_an_x86_tree() {
        let tmp = x86_tree();
        let root = HostRoot::open(tmp.path()).unwrap();
        let facts = gather(&root, &Inventory::default(), TABLE).unwrap();
        assert_eq!(facts.arch, Arch::X86_64);
        assert_eq!(
            facts.cmdline.as_deref(),
            Some("root=/dev/sda1 intel_iommu=on iommu=pt")
        );
        assert_eq!(facts.dmar_ecap["dmar0"], Some(0xf050da));
        assert_eq!(facts.dmar_ecap["dmar1"], Some(0x19e2ff0505e));
        assert_eq!(facts.group_types[&3], "identity");
        assert_eq!(facts.modules["vfio_pci"], ModuleStatus::Available);
        assert_eq!(facts.modules["vfio"], ModuleStatus::Available);
        assert_eq!(facts.allow_unsafe_interrupts, None);
        assert_eq!(facts.modprobe.len(), 2, "only *.conf files count");
        assert_eq!(facts.modprobe[1].path, "/etc/modprobe.d/vfio.conf");
        assert_eq!(facts.driverctl[0].device, "0000:01:00.0");
        assert_eq!(facts.driverctl[0].driver, "vfio-pci");
        assert_eq!(facts.vfio_container_mode, None);
        assert!(facts.fsl_mc.is_none());
        assert!(
            facts.known_problems.is_empty(),
            "{:?}",
            facts.known_problems
        );
        let id = "1b4b:9230".parse().unwrap();
        assert_eq!(
            facts.known.get(id).unwrap().note,
            "ok here",
            "the host's table wins"
        );
    }

    #[test]
    fn loaded_modules_parameters_and_dev_vfio() {
        let tmp = x86_tree();
        let r = tmp.path();
        put(
            r,
            "sys/module/vfio/parameters/enable_unsafe_noiommu_mode",
            "N\n",
        );
        put(
            r,
            "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts",
            "Y\n",
        );
        put(r, "sys/module/vfio_pci/parameters/disable_idle_d3", "N\n");
        put(r, "dev/vfio/vfio", "");
        fs::set_permissions(r.join("dev/vfio/vfio"), fs::Permissions::from_mode(0o600)).unwrap();
        put(r, "dev/vfio/7", "");
        let root = HostRoot::open(r).unwrap();
        let facts = gather(&root, &Inventory::default(), TABLE).unwrap();
        assert_eq!(facts.modules["vfio_pci"], ModuleStatus::Loaded);
        assert_eq!(facts.allow_unsafe_interrupts, Some(true));
        assert_eq!(facts.noiommu_mode, Some(false));
        assert_eq!(facts.disable_idle_d3, Some(false));
        assert_eq!(facts.vfio_container_mode.map(|m| m & 0o777), Some(0o600));
        assert!(facts.vfio_group_nodes.contains(&7));
    }

    #[test]
    fn arm64_tree_with_its_and_fsl_mc() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        fs::create_dir_all(r.join("sys/bus/pci/devices")).unwrap();
        fs::create_dir_all(r.join("sys/bus/fsl-mc/drivers/fsl_mc_dprc")).unwrap();
        put(
            r,
            "proc/cpuinfo",
            "processor\t: 0\nCPU implementer\t: 0x41\n",
        );
        put(r, "proc/sys/kernel/osrelease", "6.6.52\n");
        put(
            r,
            "lib/modules/6.6.52/modules.builtin",
            "kernel/drivers/vfio/vfio.ko\n",
        );
        put(
            r,
            "lib/modules/6.6.52/modules.dep",
            "kernel/drivers/vfio/fsl-mc/vfio-fsl-mc.ko.xz: kernel/drivers/vfio/vfio.ko\n",
        );
        put(
            r,
            "sys/firmware/devicetree/base/interrupt-controller@6000000/its@6020000/msi-controller",
            "",
        );
        put(
            r,
            "proc/interrupts",
            " 11:  0  GICv3  27 Level  arch_timer\n 60:  5  GICv2m-PCI-MSI 524288 Edge  nvme0q0\n",
        );
        let root = HostRoot::open(r).unwrap();
        let facts = gather(&root, &Inventory::default(), TABLE).unwrap();
        assert_eq!(facts.arch, Arch::Aarch64);
        assert_eq!(facts.its_in_interrupts, Some(false));
        assert_eq!(facts.its_in_device_tree, Some(true));
        assert_eq!(
            facts.fsl_mc,
            Some(FslMcFacts {
                vfio_driver: false,
                ..FslMcFacts::default()
            })
        );
        assert_eq!(facts.modules["vfio"], ModuleStatus::Builtin);
        assert_eq!(facts.modules["vfio_fsl_mc"], ModuleStatus::Available);
        assert_eq!(facts.modules["vfio_pci"], ModuleStatus::Missing);
    }

    #[test]
    fn its_msi_lines_in_proc_interrupts() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        fs::create_dir_all(r.join("sys/bus/pci/devices")).unwrap();
        let root = HostRoot::open(r).unwrap();
        for (content, expected) in [
            (" 60:  5  ITS-MSI 524288 Edge  nvme0q0\n", Some(true)),
            (" 11:  0  GICv3  27 Level  arch_timer\n", None),
            (
                " 60:  5  GICv2m-PCI-MSI 524288 Edge  nvme0q0\n",
                Some(false),
            ),
        ] {
            put(r, "proc/interrupts", content);
            let facts = gather(&root, &Inventory::default(), TABLE).unwrap();
            assert_eq!(facts.its_in_interrupts, expected, "{content}");
        }
    }

    #[test]
    fn unknowns_stay_unknown() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        fs::create_dir_all(r.join("sys/bus/pci/devices")).unwrap();
        put(
            r,
            "etc/vfioctl/devices.toml",
            "version = 1\n[[device]]\nid = 3\n",
        );
        let root = HostRoot::open(r).unwrap();
        let facts = gather(&root, &Inventory::default(), TABLE).unwrap();
        assert_eq!(facts.arch, Arch::Unknown);
        assert_eq!(facts.cmdline, None);
        assert_eq!(facts.its_in_interrupts, None);
        assert_eq!(facts.its_in_device_tree, None);
        assert_eq!(facts.modules["vfio_pci"], ModuleStatus::Unknown);
        assert_eq!(facts.known_problems.len(), 1);
        assert!(
            facts.known_problems[0]
                .1
                .starts_with("/etc/vfioctl/devices.toml:3:"),
            "{:?}",
            facts.known_problems
        );
        // The shipped table still applies.
        assert_eq!(facts.known.len(), 1);
    }
}
