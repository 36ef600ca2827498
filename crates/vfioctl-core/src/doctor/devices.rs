//! The state of each candidate device: its power state, and how it can be reset.

use crate::address::PciAddress;

use super::ctx::{Ctx, join, sys_dev, truthy};
use super::facts::{Arch, TEN64_VFIO_PAGE};
use super::finding::{Finding, Severity};
use super::parse::kernel_version;

fn idle_d3_disabled(ctx: &Ctx<'_>) -> bool {
    ctx.facts.disable_idle_d3 == Some(true)
        || ctx
            .param("vfio_pci.disable_idle_d3")
            .is_some_and(|p| truthy(&p.value))
        || ctx
            .modprobe_options("vfio_pci", "disable_idle_d3")
            .any(|(_, v)| truthy(v))
}

pub(super) fn check_power(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let mut asleep = Vec::new();
    for d in ctx.endpoints() {
        let Some(state) = d.power_state.as_deref() else {
            continue;
        };
        let path = sys_dev(&d.address, "power_state");
        let on_vfio = d.driver.as_deref() == Some("vfio-pci");
        match state {
            "D3cold" => {
                asleep.push(d.address);
                let d3cold = if d.d3cold_allowed == Some(true) {
                    format!(
                        "echo 0 > {} to keep it out of D3cold, and ",
                        sys_dev(&d.address, "d3cold_allowed")
                    )
                } else {
                    String::new()
                };
                out.push(Finding::new(
                    "device-d3cold",
                    Severity::Warning,
                    Some(d.address),
                    path,
                    format!(
                        "{} is in D3cold (powered off); waking it for a VM fails on some \
                         platforms ('Unable to change power state from D3cold to D0')",
                        d.address
                    ),
                    format!("{d3cold}boot with vfio-pci.disable_idle_d3=1"),
                ));
            }
            "D3hot" => {
                asleep.push(d.address);
                out.push(Finding::new(
                    "device-d3hot",
                    Severity::Info,
                    Some(d.address),
                    path,
                    format!(
                        "{} is in D3hot{}; if a VM then reports it 'stuck in D3', keep vfio-pci \
                         from putting idle devices to sleep",
                        d.address,
                        if on_vfio {
                            " (vfio-pci parks idle devices there)"
                        } else {
                            ""
                        }
                    ),
                    "boot with vfio-pci.disable_idle_d3=1",
                ));
            }
            _ => {}
        }
    }
    let arm = ctx.facts.arch == Arch::Aarch64;
    if (arm || !asleep.is_empty()) && !idle_d3_disabled(ctx) {
        let loaded = ctx.facts.disable_idle_d3.is_some();
        let why = if arm {
            format!(
                "the Ten64 VFIO page advises turning it off on arm64 boards ({TEN64_VFIO_PAGE})"
            )
        } else {
            format!("{} already asleep", join(&asleep))
        };
        out.push(Finding::new(
            "idle-d3",
            Severity::Warning,
            None,
            if loaded {
                "/sys/module/vfio_pci/parameters/disable_idle_d3"
            } else {
                "/proc/cmdline"
            },
            format!(
                "vfio-pci puts idle devices into D3, and some never wake up for the VM ('stuck in \
                 D3'); {why}"
            ),
            "add vfio-pci.disable_idle_d3=1 to the kernel command line (or 'options vfio-pci \
             disable_idle_d3=1' to /etc/modprobe.d/vfio.conf) and reboot",
        ));
    }
}

pub(super) fn check_reset(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    // Since 5.15 the kernel hides reset_method when a device has no reset method at all; before,
    // the attribute does not exist. Without the release, any device showing one tells.
    let has_attribute = match ctx.facts.kernel_release.as_deref().and_then(kernel_version) {
        Some(version) => version >= (5, 15),
        None => ctx.inv.devices().iter().any(|d| d.reset_method.is_some()),
    };
    if !has_attribute {
        if ctx.endpoints().next().is_some() {
            out.push(Finding::new(
                "reset-method-unknown",
                Severity::Info,
                None,
                "/sys/bus/pci/devices/*/reset_method",
                "this kernel has no reset_method attribute (it came in 5.15), so reset support \
                 could not be checked",
                "look for a 'reset' file in each device's sysfs directory: it exists when the \
                 kernel can reset the function",
            ));
        }
        return;
    }
    for d in ctx.endpoints() {
        let path = sys_dev(&d.address, "reset_method");
        let methods = d.reset_method.as_deref().unwrap_or_default();
        if methods.is_empty() {
            out.push(Finding::new(
                "reset-none",
                Severity::Warning,
                Some(d.address),
                path,
                format!(
                    "{} has no reset method: a VM gets it in whatever state the host or the \
                     previous VM left it, and it cannot be reset between VMs",
                    d.address
                ),
                "give it only to guests that tolerate that, or load a device-specific reset \
                 module (e.g. vendor-reset) if one exists for it",
            ));
            continue;
        }
        if methods.iter().all(|m| m == "bus") {
            let siblings: Vec<PciAddress> = ctx
                .inv
                .devices()
                .iter()
                .filter(|o| {
                    o.address != d.address
                        && o.address.domain == d.address.domain
                        && o.address.bus == d.address.bus
                })
                .map(|o| o.address)
                .collect();
            if !siblings.is_empty() {
                // Group mates go to the VM together anyway, so the reset only hits the VM's own
                // devices; anything else on the bus is collateral.
                let mates = ctx.inv.group_members(&d.address);
                let outside: Vec<PciAddress> = siblings
                    .iter()
                    .filter(|a| d.iommu_group.is_none() || !mates.contains(a))
                    .copied()
                    .collect();
                let (severity, tail, remedy) = if outside.is_empty() {
                    (
                        Severity::Info,
                        " (its IOMMU group mates, which go to the same VM anyway)".to_owned(),
                        "nothing to do: give the whole group to one VM".to_owned(),
                    )
                } else {
                    (
                        Severity::Warning,
                        " on the same bus".to_owned(),
                        format!(
                            "give {} to the same VM, or keep them unused while it runs",
                            join(&outside)
                        ),
                    )
                };
                out.push(Finding::new(
                    "reset-bus-shared",
                    severity,
                    Some(d.address),
                    path,
                    format!(
                        "{} can only be reset by a secondary bus reset, which also resets {}{tail}",
                        d.address,
                        join(&siblings)
                    ),
                    remedy,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::device::tests::addr;
    use crate::doctor::testkit::*;
    use crate::doctor::*;

    #[test]
    fn power() {
        let f = fires("idle-d3", |f, _| {
            arm(f);
            f.disable_idle_d3 = Some(false);
            f.its_in_interrupts = Some(true);
        });
        assert!(f.message.contains(TEN64_VFIO_PAGE));
        assert!(f.remedy.contains("vfio-pci.disable_idle_d3=1"));
        fires("idle-d3", |_, d| d[1].power_state = Some("D3hot".into()));
        quiet("idle-d3", |_, _| {});
        quiet("idle-d3", |f, d| {
            d[1].power_state = Some("D3hot".into());
            f.disable_idle_d3 = None;
            f.cmdline = Some("vfio-pci.disable_idle_d3=1".into());
        });
        let f = fires("device-d3cold", |_, d| {
            d[1].power_state = Some("D3cold".into());
        });
        assert!(f.remedy.contains("d3cold_allowed"));
        quiet("device-d3cold", |_, _| {});
        let f = fires("device-d3hot", |_, d| {
            d[1].power_state = Some("D3hot".into());
        });
        assert_eq!(f.severity, Severity::Info);
        quiet("device-d3hot", |_, _| {});
    }

    #[test]
    fn reset() {
        fires("reset-none", |_, d| d[1].reset_method = Some(Vec::new()));
        // 5.15+ hides the attribute of a device without any reset method.
        fires("reset-none", |_, d| d[1].reset_method = None);
        fires("reset-none", |f, d| {
            f.kernel_release = None;
            d[1].reset_method = None;
            d[0].reset_method = Some(Vec::new());
        });
        quiet("reset-none", |_, _| {});
        fires("reset-method-unknown", |f, d| {
            f.kernel_release = Some("5.10.0-35-arm64".into());
            d[1].reset_method = None;
        });
        fires("reset-method-unknown", |f, d| {
            f.kernel_release = None;
            d[1].reset_method = None;
        });
        quiet("reset-method-unknown", |_, _| {});
        let f = fires("reset-bus-shared", |_, d| {
            d[1].reset_method = Some(vec!["bus".into()]);
            let mut audio = endpoint("0000:01:00.1", "8086:10d4", Some(2), Some("snd_hda_intel"));
            audio.parent = Some(addr("0000:00:01.0"));
            d.push(audio);
        });
        assert!(f.message.contains("0000:01:00.1"), "{}", f.message);
        assert_eq!(f.severity, Severity::Warning);
        // A sibling in the same group goes to the same VM: worth knowing, nothing more.
        let f = fires("reset-bus-shared", |_, d| {
            d[1].reset_method = Some(vec!["bus".into()]);
            let mut audio = endpoint("0000:01:00.1", "8086:10d4", Some(1), Some("vfio-pci"));
            audio.parent = Some(addr("0000:00:01.0"));
            d.push(audio);
        });
        assert_eq!(f.severity, Severity::Info);
        quiet("reset-bus-shared", |_, d| {
            d[1].reset_method = Some(vec!["bus".into()]);
        });
    }
}
