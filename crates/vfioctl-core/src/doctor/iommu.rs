//! The IOMMU, firmware and command-line checks: is DMA translated, are interrupts isolated.

use super::ctx::{Ctx, join, truthy};
use super::facts::Arch;
use super::finding::{Finding, Severity};
use super::parse::Param;

fn iommu_remedy(ctx: &Ctx<'_>, off: Option<&Param>) -> String {
    let mut remedy = String::new();
    if let Some(p) = off {
        remedy.push_str(&format!("remove {} from the kernel command line; ", p.text));
    }
    let x86 = "enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware setup and boot with \
               intel_iommu=on (Intel; AMD-Vi is on by default), optionally with iommu=pt";
    let arm = "make sure the firmware describes the SMMU (device tree or ACPI IORT) and the kernel \
               has the SMMU driver (CONFIG_ARM_SMMU / CONFIG_ARM_SMMU_V3)";
    remedy.push_str(match ctx.facts.arch {
        Arch::X86_64 => x86,
        Arch::Aarch64 => arm,
        Arch::Unknown => {
            "on x86: enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on \
                          (Intel); on arm64: have the firmware describe the SMMU"
        }
    });
    remedy.push_str(", then reboot");
    remedy
}

pub(super) fn check_iommu(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let off = ctx.params.iter().rev().find(|p| {
        (p.name == "intel_iommu" && p.value.split(',').any(|v| v == "off"))
            || (p.name == "amd_iommu" && p.value.split(',').any(|v| v == "off"))
            || (p.name == "iommu" && p.value == "off")
    });
    if !ctx.inv.iommu_enabled {
        let why = match off {
            Some(p) => format!(" (the kernel command line has {})", p.text),
            None => String::new(),
        };
        out.push(Finding::new(
            "iommu-off",
            Severity::Error,
            None,
            "/sys/class/iommu",
            format!(
                "no IOMMU is active: /sys/class/iommu is empty and there are no IOMMU groups{why}, \
                 so VFIO cannot isolate any device"
            ),
            iommu_remedy(ctx, off),
        ));
        return;
    }
    if ctx.inv.groups.is_empty() {
        out.push(Finding::new(
            "iommu-no-groups",
            Severity::Error,
            None,
            "/sys/kernel/iommu_groups",
            format!(
                "an IOMMU is registered ({}) but /sys/kernel/iommu_groups is empty: no device is \
                 translated, so VFIO has nothing to open",
                ctx.facts.iommu_units.join(", ")
            ),
            iommu_remedy(ctx, off),
        ));
    }
    let identity: Vec<u32> = ctx
        .facts
        .group_types
        .iter()
        .filter(|(g, t)| {
            t.trim() == "identity"
                && ctx.inv.groups.get(g).is_none_or(|members| {
                    ctx.scope.is_none() || members.iter().any(|m| ctx.in_scope(m))
                })
        })
        .map(|(g, _)| *g)
        .collect();
    if let Some(first) = identity.first() {
        let cause = ctx
            .params
            .iter()
            .find(|p| {
                (p.name == "iommu" && p.value == "pt")
                    || (p.name == "iommu.passthrough" && truthy(&p.value))
            })
            .map(|p| format!(" ({} on the command line)", p.text))
            .unwrap_or_default();
        out.push(Finding::new(
            "iommu-identity-groups",
            Severity::Info,
            None,
            format!("/sys/kernel/iommu_groups/{first}/type"),
            format!(
                "IOMMU group{} {} {} in identity (passthrough) mode{cause}: the host's own DMA \
                 there is not translated; VFIO still gives a group its own translated domain when \
                 a VM opens it",
                if identity.len() == 1 { "" } else { "s" },
                join(&identity),
                if identity.len() == 1 { "is" } else { "are" }
            ),
            "nothing to do for passthrough; drop iommu=pt / iommu.passthrough=1 if the host's \
             devices should be isolated from each other too",
        ));
    }
    if let Some(p) = ctx
        .param("arm_smmu.disable_bypass")
        .filter(|p| !truthy(&p.value))
    {
        out.push(Finding::new(
            "smmu-bypass",
            Severity::Info,
            None,
            "/proc/cmdline",
            format!(
                "{}: devices the SMMU has not attached to a domain bypass it and can reach all \
                 memory; devices given to a VM are attached, so passthrough is not affected",
                p.text
            ),
            "fine for passthrough; remove it once every host device has a driver, for stricter \
             isolation",
        ));
    }
}

pub(super) fn check_interrupts(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let f = ctx.facts;
    let unsafe_allowed = f.allow_unsafe_interrupts == Some(true)
        || ctx
            .param("vfio_iommu_type1.allow_unsafe_interrupts")
            .is_some_and(|p| truthy(&p.value))
        || ctx
            .modprobe_options("vfio_iommu_type1", "allow_unsafe_interrupts")
            .any(|(_, v)| truthy(v));
    // Without isolation VFIO refuses (error) unless unsafe interrupts are allowed, which then
    // gets its own warning.
    let severity = if unsafe_allowed {
        Severity::Warning
    } else {
        Severity::Error
    };
    if ctx.inv.iommu_enabled {
        let x86 = f.arch == Arch::X86_64
            || f.iommu_units
                .iter()
                .any(|u| u.starts_with("dmar") || u.starts_with("ivhd"));
        let arm = f.arch == Arch::Aarch64;
        if x86 {
            check_interrupt_remapping(ctx, severity, out);
        } else if arm {
            check_its(ctx, severity, out);
        }
    }
    if unsafe_allowed {
        out.push(Finding::new(
            "unsafe-interrupts-allowed",
            Severity::Warning,
            None,
            "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts",
            "vfio_iommu_type1.allow_unsafe_interrupts is on: a VM can forge MSI writes that reach \
             the host's interrupt controller (an escape path VFIO normally refuses)",
            "fix interrupt isolation (interrupt remapping on x86, GICv3 ITS on arm64) and remove \
             allow_unsafe_interrupts from the kernel command line and /etc/modprobe.d",
        ));
    }
    let noiommu = f.noiommu_mode == Some(true)
        || ctx
            .param("vfio.enable_unsafe_noiommu_mode")
            .is_some_and(|p| truthy(&p.value));
    if noiommu {
        out.push(Finding::new(
            "noiommu-mode",
            Severity::Warning,
            None,
            "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode",
            "vfio's unsafe no-IOMMU mode is on: devices can be used through VFIO without any DMA \
             isolation (fine for DPDK on a trusted host, never for a VM)",
            "remove vfio.enable_unsafe_noiommu_mode from the kernel command line and \
             /etc/modprobe.d, and enable the IOMMU instead",
        ));
    }
}

pub(super) fn check_interrupt_remapping(ctx: &Ctx<'_>, severity: Severity, out: &mut Vec<Finding>) {
    let f = ctx.facts;
    if let Some(p) = ctx
        .param("intremap")
        .filter(|p| p.value.split(',').any(|v| v == "off"))
    {
        out.push(Finding::new(
            "interrupt-remapping-off",
            severity,
            None,
            "/proc/cmdline",
            format!(
                "{} turns interrupt remapping off: MSIs from a VM's device are not isolated, so \
                 VFIO refuses to attach devices",
                p.text
            ),
            format!("remove {} from the kernel command line and reboot", p.text),
        ));
        return;
    }
    let known: Vec<(&String, u64)> = f
        .dmar_ecap
        .iter()
        .filter_map(|(u, e)| e.map(|e| (u, e)))
        .collect();
    // VT-d extended capability register, bit 3: Interrupt Remapping support. The kernel enables
    // remapping only when every unit has it.
    let lacking: Vec<&String> = known
        .iter()
        .filter(|(_, e)| e & (1 << 3) == 0)
        .map(|(u, _)| *u)
        .collect();
    if let Some(first) = lacking.first() {
        out.push(Finding::new(
            "interrupt-remapping-unsupported",
            severity,
            None,
            format!("/sys/class/iommu/{first}/intel-iommu/ecap"),
            format!(
                "{} cannot remap interrupts (VT-d extended capability bit 3 is clear), so MSIs from \
                 a VM's device are not isolated and VFIO refuses to attach devices",
                join(&lacking)
            ),
            "enable interrupt remapping in the firmware setup if it has the option; otherwise \
             this platform cannot pass devices through safely (allow_unsafe_interrupts=1 trades \
             safety for function)",
        ));
    } else if known.is_empty() || known.len() < f.dmar_ecap.len() {
        let what = if f.iommu_units.iter().any(|u| u.starts_with("ivhd")) {
            "AMD-Vi does not show interrupt remapping in sysfs"
        } else {
            "no readable /sys/class/iommu/dmar*/intel-iommu/ecap"
        };
        out.push(Finding::new(
            "interrupt-remapping-unknown",
            Severity::Info,
            None,
            "/sys/class/iommu",
            format!("whether interrupt remapping is on could not be determined ({what})"),
            "look for 'Interrupt remapping enabled' (or 'AMD-Vi: Interrupt remapping enabled') in \
             dmesg",
        ));
    }
}

pub(super) fn check_its(ctx: &Ctx<'_>, severity: Severity, out: &mut Vec<Finding>) {
    let f = ctx.facts;
    match (f.its_in_interrupts, f.its_in_device_tree) {
        (Some(true), _) | (_, Some(true)) => {}
        (None, None) => out.push(Finding::new(
            "msi-isolation-unknown",
            Severity::Info,
            None,
            "/proc/interrupts",
            "whether MSIs are isolated (GICv3 ITS) could not be determined: neither \
             /proc/interrupts nor /proc/device-tree is readable",
            "check that the interrupt controller is a GICv3 with an ITS ('ITS' in dmesg or \
             ITS-MSI in /proc/interrupts)",
        )),
        (interrupts, _) => out.push(Finding::new(
            "msi-isolation-missing",
            severity,
            None,
            if interrupts.is_some() {
                "/proc/interrupts"
            } else {
                "/proc/device-tree"
            },
            "no GICv3 ITS was found (no ITS-MSI in /proc/interrupts, no msi-controller in the \
             device tree): MSIs from a VM's device are not isolated, so VFIO refuses to attach \
             devices",
            "use firmware whose device tree enables the GICv3 ITS (the LS1088A on the Ten64 has \
             one), or accept the risk with vfio_iommu_type1.allow_unsafe_interrupts=1",
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::doctor::testkit::*;
    use crate::doctor::*;
    use std::collections::BTreeMap;

    use crate::device::Inventory;

    #[test]
    fn iommu_off() {
        let f = fires("iommu-off", |f, d| {
            for dev in d.iter_mut() {
                dev.iommu_group = None;
            }
            f.iommu_units.clear();
            f.cmdline = Some("root=/dev/sda1 intel_iommu=off".into());
        });
        assert_eq!(f.severity, Severity::Error);
        assert!(f.message.contains("intel_iommu=off"));
        assert!(f.remedy.contains("remove intel_iommu=off"));
        assert!(f.remedy.contains("intel_iommu=on"));
        quiet("iommu-off", |_, _| {});
    }

    #[test]
    fn iommu_without_groups() {
        let (facts, devices) = healthy();
        let inv = Inventory::new(devices, true, BTreeMap::new());
        assert!(ids(&run(&facts, &inv, &[])).contains(&"iommu-no-groups"));
        quiet("iommu-no-groups", |_, _| {});
    }

    #[test]
    fn identity_groups() {
        let f = fires("iommu-identity-groups", |f, _| {
            f.group_types.insert(1, "identity".into());
            f.cmdline = Some("iommu=pt".into());
        });
        assert_eq!(f.severity, Severity::Info);
        assert!(f.message.contains("iommu=pt"));
        quiet("iommu-identity-groups", |_, _| {});
    }

    #[test]
    fn smmu_bypass() {
        fires("smmu-bypass", |f, _| {
            f.cmdline = Some("arm-smmu.disable_bypass=0".into());
        });
        quiet("smmu-bypass", |f, _| {
            f.cmdline = Some("arm-smmu.disable_bypass=1".into());
        });
    }

    #[test]
    fn interrupt_remapping() {
        let f = fires("interrupt-remapping-unsupported", |f, _| {
            f.dmar_ecap.insert("dmar1".into(), Some(0xf050d2));
        });
        assert!(f.message.contains("dmar1"));
        assert_eq!(f.severity, Severity::Error);
        fires("interrupt-remapping-off", |f, _| {
            f.cmdline = Some("intremap=off".into());
        });
        fires("interrupt-remapping-unknown", |f, _| {
            f.iommu_units = vec!["ivhd0".into()];
            f.dmar_ecap.clear();
        });
        quiet("interrupt-remapping-unsupported", |_, _| {});
        quiet("interrupt-remapping-off", |_, _| {});
        quiet("interrupt-remapping-unknown", |_, _| {});
        // Allowed unsafe interrupts make it a warning, with a warning of its own.
        let (findings, _) = run_with(|f, _| {
            f.dmar_ecap.insert("dmar0".into(), Some(0));
            f.allow_unsafe_interrupts = Some(true);
        });
        assert_eq!(findings[0].id, "interrupt-remapping-unsupported");
        assert_eq!(findings[0].severity, Severity::Warning);
        assert!(ids(&findings).contains(&"unsafe-interrupts-allowed"));
    }

    #[test]
    fn msi_isolation_on_arm64() {
        fires("msi-isolation-missing", |f, _| {
            arm(f);
            f.its_in_interrupts = Some(false);
        });
        fires("msi-isolation-unknown", |f, _| arm(f));
        quiet("msi-isolation-missing", |f, _| {
            arm(f);
            f.its_in_interrupts = Some(false);
            f.its_in_device_tree = Some(true);
        });
        quiet("msi-isolation-unknown", |f, _| {
            arm(f);
            f.its_in_interrupts = Some(true);
        });
    }

    #[test]
    fn unsafe_interrupts_and_noiommu() {
        fires("unsafe-interrupts-allowed", |f, _| {
            f.cmdline = Some("vfio_iommu_type1.allow_unsafe_interrupts=1".into());
        });
        quiet("unsafe-interrupts-allowed", |_, _| {});
        fires("noiommu-mode", |f, _| f.noiommu_mode = Some(true));
        quiet("noiommu-mode", |_, _| {});
    }
}
