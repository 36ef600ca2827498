//! The parts of the tree written once at build time: the skeleton, `/proc`, `/lib/modules`,
//! modprobe.d, and each device's directory.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use vfioctl_core::PciAddress;

use crate::cfgspace::config_bytes;
use crate::spec::{DeviceSpec, DriverSpec, HostSpec, IdMatch, ModuleSpec, ModuleState};
use crate::state::SIM_DIR;

use super::attrs::{modalias, uevent};
use super::files::{put, rel_symlink};

pub(super) fn modules_alias_line(m: &IdMatch, module: &str) -> String {
    let opt = |v: Option<u16>| v.map_or("*".to_owned(), |v| format!("{v:08X}"));
    let byte = |shift: u32| {
        if (m.class_mask >> shift) & 0xff == 0xff {
            format!("{:02X}", (m.class >> shift) as u8)
        } else {
            "*".to_owned()
        }
    };
    format!(
        "alias pci:v{}d{}sv*sd*bc{}sc{}i{} {module}\n",
        opt(m.vendor),
        opt(m.device),
        byte(16),
        byte(8),
        byte(0)
    )
}

/// Writes the directory of a device that appears while the kernel runs (a VF), without its
/// links.
pub(crate) fn device_files(
    root: &Path,
    host: &HostSpec,
    dev: &DeviceSpec,
    dir: &Path,
) -> io::Result<()> {
    Writer { root }.device(host, dev, dir, dev.address.bus)
}

/// Puts a device that appears while the kernel runs into IOMMU group `group`, creating the group
/// when it is new.
pub(crate) fn join_group(
    root: &Path,
    dir: &Path,
    address: PciAddress,
    group: u32,
    ty: &str,
) -> io::Result<()> {
    Writer { root }.join_group(dir, address, group, ty)
}

pub(super) struct Writer<'a> {
    pub(super) root: &'a Path,
}

impl Writer<'_> {
    pub(super) fn skeleton(&self, host: &HostSpec) -> io::Result<()> {
        let r = self.root;
        for d in [
            "sys/bus/pci/devices",
            "sys/bus/pci/drivers",
            "sys/bus/pci/slots",
            "sys/kernel/iommu_groups",
            "sys/class/iommu",
            "sys/class/net",
            "sys/class/block",
            "sys/module",
            "sys/devices/virtual/net/lo",
            "dev",
            "etc/modprobe.d",
            "proc/net",
        ] {
            fs::create_dir_all(r.join(d))?;
        }
        fs::create_dir_all(r.join(SIM_DIR))?;
        put(r, "sys/bus/pci/drivers_probe", "")?;
        put(r, "sys/bus/pci/drivers_autoprobe", "1\n")?;
        put(r, "sys/bus/pci/rescan", "")?;
        put(r, "sys/bus/pci/resource_alignment", "\n")?;
        put(r, "sys/devices/virtual/net/lo/operstate", "unknown\n")?;
        rel_symlink(
            r,
            Path::new("sys/class/net/lo"),
            Path::new("sys/devices/virtual/net/lo"),
        )?;
        if let Some(name) = &host.iommu {
            let dir = format!("sys/devices/virtual/iommu/{name}");
            put(r, format!("{dir}/uevent"), "")?;
            rel_symlink(r, &Path::new("sys/class/iommu").join(name), Path::new(&dir))?;
        }
        // arm64 device-tree boots leave the raw blob; ACPI boots have sys/firmware/acpi.
        if host.arch == crate::spec::Arch::Aarch64 && !host.acs_enabled_at_boot {
            put(r, "sys/firmware/fdt", "")?;
        } else {
            fs::create_dir_all(r.join("sys/firmware/acpi/tables"))?;
        }
        put(r, "proc/cmdline", format!("{}\n", host.cmdline))?;
        put(
            r,
            "proc/sys/kernel/osrelease",
            format!("{}\n", host.release),
        )?;
        for (name, content) in &host.modprobe_d {
            put(r, Path::new("etc/modprobe.d").join(name), content)?;
        }
        Ok(())
    }

    /// `blacklist` lines for blacklisted modules no modprobe.d file mentions yet, so the files
    /// agree with the marker.
    pub(super) fn blacklist(&self, host: &HostSpec, modules: &[ModuleSpec]) -> io::Result<()> {
        let lines: String = modules
            .iter()
            .filter(|m| m.state == ModuleState::Blacklisted)
            .filter(|m| {
                !host.modprobe_d.iter().any(|(_, c)| {
                    c.lines()
                        .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["blacklist", &m.name])
                })
            })
            .map(|m| format!("blacklist {}\n", m.name))
            .collect();
        if lines.is_empty() {
            return Ok(());
        }
        put(
            self.root,
            "etc/modprobe.d/blacklist-vfioctl-sim.conf",
            lines,
        )
    }

    pub(super) fn device(
        &self,
        host: &HostSpec,
        dev: &DeviceSpec,
        dir: &Path,
        primary: u8,
    ) -> io::Result<()> {
        let r = self.root;
        let abs = r.join(dir);
        fs::create_dir_all(&abs)?;
        let hex16 = |v: u16| format!("0x{v:04x}\n");
        let alias = modalias(dev);
        let files: [(&str, String); 15] = [
            ("vendor", hex16(dev.id.vendor)),
            ("device", hex16(dev.id.device)),
            ("subsystem_vendor", hex16(dev.subsystem.vendor)),
            ("subsystem_device", hex16(dev.subsystem.device)),
            ("class", format!("0x{:06x}\n", dev.class)),
            ("revision", format!("0x{:02x}\n", dev.revision)),
            (
                "driver_override",
                match &dev.driver_override {
                    Some(o) => format!("{o}\n"),
                    None => host.override_unset_text().to_owned(),
                },
            ),
            ("numa_node", format!("{}\n", dev.numa_node)),
            ("power_state", "D0\n".to_owned()),
            ("d3cold_allowed", "1\n".to_owned()),
            ("enable", "0\n".to_owned()),
            ("modalias", format!("{alias}\n")),
            (
                "uevent",
                uevent(
                    dev.address,
                    dev.id.vendor,
                    dev.id.device,
                    (dev.subsystem.vendor, dev.subsystem.device),
                    dev.class,
                    &alias,
                    None,
                ),
            ),
            ("remove", String::new()),
            ("rescan", String::new()),
        ];
        for (name, content) in files {
            fs::write(abs.join(name), content)?;
        }
        let acs_ctrl = dev.acs_control_at_boot(host);
        fs::write(abs.join("config"), config_bytes(dev, acs_ctrl, primary))?;
        if !dev.reset_methods.is_empty() {
            fs::write(
                abs.join("reset_method"),
                format!("{}\n", dev.reset_methods.join(" ")),
            )?;
            fs::write(abs.join("reset"), "")?;
        }
        if let Some(vga) = dev.boot_vga_value() {
            fs::write(abs.join("boot_vga"), if vga { "1\n" } else { "0\n" })?;
        }
        if let Some(sec) = dev.secondary_bus {
            fs::create_dir_all(
                abs.join("pci_bus")
                    .join(format!("{:04x}:{sec:02x}", dev.address.domain)),
            )?;
        }
        if let Some(sriov) = dev.sriov {
            fs::write(abs.join("sriov_totalvfs"), format!("{}\n", sriov.total_vfs))?;
            fs::write(abs.join("sriov_numvfs"), format!("{}\n", sriov.num_vfs))?;
            fs::write(abs.join("sriov_drivers_autoprobe"), "1\n")?;
            fs::write(abs.join("sriov_offset"), format!("{}\n", sriov.offset))?;
            fs::write(abs.join("sriov_stride"), format!("{}\n", sriov.stride))?;
            fs::write(
                abs.join("sriov_vf_device"),
                format!("{:x}\n", sriov.vf_device),
            )?;
        }
        rel_symlink(r, &dir.join("subsystem"), Path::new("sys/bus/pci"))?;
        rel_symlink(
            r,
            &Path::new("sys/bus/pci/devices").join(dev.address.to_string()),
            dir,
        )
    }

    pub(super) fn join_group(
        &self,
        dir: &Path,
        address: PciAddress,
        group: u32,
        ty: &str,
    ) -> io::Result<()> {
        let r = self.root;
        let gdir = PathBuf::from(format!("sys/kernel/iommu_groups/{group}"));
        if !r.join(&gdir).join("type").exists() {
            put(r, gdir.join("type"), format!("{ty}\n"))?;
            put(r, gdir.join("reserved_regions"), "")?;
            fs::create_dir_all(r.join(&gdir).join("devices"))?;
        }
        rel_symlink(r, &dir.join("iommu_group"), &gdir)?;
        rel_symlink(r, &gdir.join("devices").join(address.to_string()), dir)
    }

    pub(super) fn proc_mounts(&self, _host: &HostSpec, devices: &[DeviceSpec]) -> io::Result<()> {
        let mut text = String::new();
        for dev in devices {
            for b in &dev.block {
                for (part, mount) in &b.partitions {
                    if let Some(m) = mount {
                        let fs = if m == "/boot/efi" { "vfat" } else { "ext4" };
                        text.push_str(&format!("/dev/{part} {m} {fs} rw,relatime 0 0\n"));
                    }
                }
            }
        }
        text.push_str("proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n");
        text.push_str("sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n");
        text.push_str("devtmpfs /dev devtmpfs rw,nosuid,size=4096k,mode=755 0 0\n");
        for line in &_host.extra_mounts {
            text.push_str(line);
            text.push('\n');
        }
        put(self.root, "proc/mounts", text)
    }

    pub(super) fn lib_modules(
        &self,
        host: &HostSpec,
        modules: &[ModuleSpec],
        drivers: &[DriverSpec],
    ) -> io::Result<()> {
        let base = PathBuf::from(format!("lib/modules/{}", host.release));
        let by_name: BTreeMap<&str, &ModuleSpec> =
            modules.iter().map(|m| (m.name.as_str(), m)).collect();
        let mut dep = String::new();
        let mut builtin = String::new();
        for m in modules {
            match m.state {
                ModuleState::Absent => {}
                ModuleState::Builtin => builtin.push_str(&format!("{}\n", m.path)),
                _ => {
                    let deps: Vec<&str> = m
                        .deps
                        .iter()
                        .filter_map(|d| by_name.get(d.as_str()).map(|m| m.path.as_str()))
                        .collect();
                    dep.push_str(&format!("{}: {}\n", m.path, deps.join(" ")));
                }
            }
        }
        let mut alias = String::from("# Aliases extracted from modules themselves.\n");
        for d in drivers {
            if by_name
                .get(d.module.as_str())
                .is_some_and(|m| m.state != ModuleState::Absent)
            {
                for id in &d.ids {
                    alias.push_str(&modules_alias_line(id, &d.module));
                }
            }
        }
        put(self.root, base.join("modules.dep"), dep)?;
        put(self.root, base.join("modules.builtin"), builtin)?;
        put(self.root, base.join("modules.alias"), alias)
    }
}
