//! The VFIO modules: loaded or loadable, kept out by modprobe.d, and their `/dev/vfio` nodes.

use super::ctx::{Ctx, join};
use super::facts::{ModuleStatus, VFIO_FSL_MC_MODULE, VFIO_MODULES};
use super::finding::{Finding, Severity};
use super::parse::{Directive, dashed};

fn module_paths(name: &str) -> String {
    format!("/sys/module/{name}")
}

pub(super) fn check_modules(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let f = ctx.facts;
    let mut wanted: Vec<&str> = VFIO_MODULES.to_vec();
    if f.fsl_mc.is_some() {
        wanted.push(VFIO_FSL_MC_MODULE);
    }
    for entry in &f.modprobe {
        match &entry.directive {
            Directive::Blacklist { module } if wanted.contains(&module.as_str()) => {
                out.push(Finding::new(
                    "module-blacklisted",
                    Severity::Warning,
                    None,
                    entry.path.clone(),
                    format!(
                        "{} line {} ('{}') blacklists {}: udev will not load it for a device, \
                         although 'modprobe {}' still does",
                        entry.path,
                        entry.line,
                        entry.text,
                        dashed(module),
                        dashed(module)
                    ),
                    format!("delete line {} of {}", entry.line, entry.path),
                ));
            }
            Directive::Install { module, command } if wanted.contains(&module.as_str()) => {
                let refuses = command.split_whitespace().next().is_some_and(|c| {
                    c.ends_with("/false") || c.ends_with("/true") || c == "false" || c == "true"
                });
                if refuses {
                    out.push(Finding::new(
                        "module-blacklisted",
                        Severity::Error,
                        None,
                        entry.path.clone(),
                        format!(
                            "{} line {} ('{}') stops {} from ever loading: modprobe runs '{}' \
                             instead",
                            entry.path,
                            entry.line,
                            entry.text,
                            dashed(module),
                            command
                        ),
                        format!("delete line {} of {}", entry.line, entry.path),
                    ));
                }
            }
            _ => {}
        }
    }
    let release = f.kernel_release.as_deref().unwrap_or("$(uname -r)");
    let mut not_loaded = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    for name in &wanted {
        let status = ctx.module(name).unwrap_or(ModuleStatus::Unknown);
        match status {
            ModuleStatus::Loaded | ModuleStatus::Builtin => {}
            ModuleStatus::Available => not_loaded.push(*name),
            // The DPAA2 check says what a missing vfio-fsl-mc means.
            _ if *name == VFIO_FSL_MC_MODULE => {}
            ModuleStatus::Missing => {
                let (severity, extra) = if *name == "vfio_iommu_type1" {
                    (
                        Severity::Warning,
                        " (fine only if the kernel provides the VFIO container through iommufd, \
                         CONFIG_IOMMUFD_VFIO_CONTAINER)",
                    )
                } else {
                    (Severity::Error, "")
                };
                out.push(Finding::new(
                    "module-missing",
                    severity,
                    None,
                    format!("/lib/modules/{release}/modules.dep"),
                    format!(
                        "the kernel has no {} module: it is not loaded, not built in and not in \
                         modules.dep{extra}",
                        dashed(name)
                    ),
                    format!(
                        "install a kernel built with CONFIG_{} (or its modules package, e.g. \
                         linux-modules-extra)",
                        name.to_uppercase()
                    ),
                ));
            }
            ModuleStatus::Unknown => unknown.push(dashed(name)),
        }
    }
    if !unknown.is_empty() {
        out.push(Finding::new(
            "module-unknown",
            Severity::Info,
            None,
            format!("/lib/modules/{release}"),
            format!(
                "{} {} not loaded, and /lib/modules/{release} could not be read to tell whether \
                 {} can be",
                join(&unknown),
                if unknown.len() == 1 { "is" } else { "are" },
                if unknown.len() == 1 { "it" } else { "they" },
            ),
            if unknown.len() == 1 {
                format!("modprobe {}", unknown[0])
            } else {
                format!("modprobe -a {}", unknown.join(" "))
            },
        ));
    }
    if not_loaded.contains(&"vfio_pci") {
        let others: Vec<String> = not_loaded
            .iter()
            .filter(|n| **n != "vfio_pci" && **n != VFIO_FSL_MC_MODULE)
            .map(|n| dashed(n))
            .collect();
        let also = if others.is_empty() {
            String::new()
        } else {
            format!(" (nor {})", join(&others))
        };
        out.push(Finding::new(
            "module-not-loaded",
            Severity::Warning,
            None,
            module_paths("vfio_pci"),
            format!(
                "vfio-pci is not loaded{also}: QEMU cannot open a device until it is ('vfioctl \
                 bind' loads it itself)"
            ),
            "modprobe vfio-pci (it brings vfio and vfio_iommu_type1 with it); to load it at \
             boot: echo vfio-pci > /etc/modules-load.d/vfio-pci.conf",
        ));
        // vfio-pci brings the PCI family along; only vfio-fsl-mc needs its own word.
        not_loaded.retain(|n| *n == VFIO_FSL_MC_MODULE);
    }
    for name in not_loaded {
        let (severity, why) = match name {
            "vfio_iommu_type1" => (
                Severity::Info,
                "the kernel loads it when a VM first opens a VFIO container".to_owned(),
            ),
            VFIO_FSL_MC_MODULE => (
                Severity::Warning,
                "DPAA2 containers cannot be bound to vfio-fsl-mc until it is".to_owned(),
            ),
            _ => (
                Severity::Warning,
                "QEMU cannot open a device until it is".to_owned(),
            ),
        };
        out.push(Finding::new(
            "module-not-loaded",
            severity,
            None,
            module_paths(name),
            format!("{} is not loaded: {why}", dashed(name)),
            format!("modprobe {}", dashed(name)),
        ));
    }
}

pub(super) fn check_dev_nodes(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let f = ctx.facts;
    if ctx.module("vfio").is_some_and(ModuleStatus::is_present) {
        match f.vfio_container_mode {
            None => out.push(Finding::new(
                "dev-vfio-missing",
                Severity::Error,
                None,
                "/dev/vfio/vfio",
                "/dev/vfio/vfio does not exist although vfio is loaded: QEMU cannot open a VFIO \
                 container",
                "check that devtmpfs is mounted on /dev and udev runs (as a stopgap: mknod \
                 /dev/vfio/vfio c 10 196 && chmod 0666 /dev/vfio/vfio)",
            )),
            Some(mode) if mode & 0o777 != 0o666 => out.push(Finding::new(
                "dev-vfio-mode",
                Severity::Warning,
                None,
                "/dev/vfio/vfio",
                format!(
                    "/dev/vfio/vfio has mode {:04o}, not 0666: QEMU running as a user gets \
                     'Permission denied' (systemd v254 made it 0600)",
                    mode & 0o7777
                ),
                "chmod 0666 /dev/vfio/vfio; to keep it, add a udev rule \
                 'SUBSYSTEM==\"vfio\", KERNEL==\"vfio\", MODE=\"0666\"' (or update systemd)",
            )),
            Some(_) => {}
        }
    }
    for (group, members) in &ctx.inv.groups {
        if !members.iter().any(|m| ctx.in_scope(m)) || f.vfio_group_nodes.contains(group) {
            continue;
        }
        let on_vfio = members.iter().find(|m| {
            ctx.inv.get(m).is_some_and(|d| {
                d.driver
                    .as_deref()
                    .is_some_and(crate::plan::is_vfio_pci_driver)
            })
        });
        if let Some(member) = on_vfio {
            let cdev = if f.vfio_cdev {
                " (this kernel has /dev/vfio/devices: if it was built without CONFIG_VFIO_GROUP, \
                 only the iommufd cdev interface exists and QEMU must use it)"
            } else {
                ""
            };
            out.push(Finding::new(
                "group-node-missing",
                Severity::Error,
                Some(*member),
                format!("/dev/vfio/{group}"),
                format!(
                    "{member} is on vfio-pci but /dev/vfio/{group} does not exist{cdev}: QEMU \
                     fails with 'no such file' opening group {group}"
                ),
                "check that udev runs and devtmpfs is mounted on /dev; rebinding the device \
                 ('vfioctl restore' then 'vfioctl bind') recreates the node",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::doctor::testkit::*;
    use crate::doctor::*;

    #[test]
    fn modules() {
        let f = fires("module-not-loaded", |f, _| {
            f.modules.insert("vfio_pci".into(), ModuleStatus::Available);
            f.modules.insert("vfio".into(), ModuleStatus::Available);
        });
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.remedy.starts_with("modprobe vfio-pci"), "{}", f.remedy);
        assert!(f.message.contains("nor vfio"));
        let f = fires("module-missing", |f, _| {
            f.modules.insert("vfio_pci".into(), ModuleStatus::Missing);
        });
        assert_eq!(f.severity, Severity::Error);
        assert!(f.remedy.contains("CONFIG_VFIO_PCI"));
        fires("module-unknown", |f, _| {
            f.modules.insert("vfio_pci".into(), ModuleStatus::Unknown);
        });
        quiet("module-not-loaded", |f, _| {
            f.modules.insert("vfio_pci".into(), ModuleStatus::Builtin);
        });
        quiet("module-missing", |_, _| {});
        quiet("module-unknown", |_, _| {});
    }

    #[test]
    fn blacklisted_modules() {
        let f = fires("module-blacklisted", |f, _| {
            f.modprobe = parse_modprobe_conf(
                "/etc/modprobe.d/no-vfio.conf",
                "install vfio-pci /bin/false\n",
            );
        });
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(f.path, "/etc/modprobe.d/no-vfio.conf");
        let f = fires("module-blacklisted", |f, _| {
            f.modprobe = parse_modprobe_conf("/etc/modprobe.d/b.conf", "# x\nblacklist vfio_pci\n");
        });
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.remedy.contains("line 2"));
        quiet("module-blacklisted", |f, _| {
            f.modprobe = parse_modprobe_conf(
                "/etc/modprobe.d/b.conf",
                "blacklist nouveau\ninstall vfio-pci /sbin/modprobe --ignore-install vfio-pci\n",
            );
        });
    }

    #[test]
    fn dev_vfio() {
        let f = fires("dev-vfio-mode", |f, _| {
            f.vfio_container_mode = Some(0o20600);
        });
        assert!(f.message.contains("0600"), "{}", f.message);
        fires("dev-vfio-missing", |f, _| f.vfio_container_mode = None);
        quiet("dev-vfio-mode", |_, _| {});
        quiet("dev-vfio-missing", |f, _| {
            f.vfio_container_mode = None;
            f.modules.insert("vfio".into(), ModuleStatus::Available);
        });
        let f = fires("group-node-missing", |f, _| f.vfio_group_nodes.clear());
        assert_eq!(f.path, "/dev/vfio/1");
        quiet("group-node-missing", |f, d| {
            f.vfio_group_nodes.clear();
            d[1].driver = Some("e1000e".into());
        });
    }
}
