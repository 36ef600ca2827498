//! Settings that go around vfioctl: ACS override, `vfio-pci.ids`, driverctl, foreign
//! `driver_override`s, and a damaged journal.

use crate::address::PciAddress;

use super::ctx::{Ctx, join, sys_dev};
use super::finding::{Finding, Severity};

pub(super) fn check_risky(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let f = ctx.facts;
    if let Some(p) = ctx.param("pcie_acs_override") {
        out.push(Finding::new(
            "acs-override",
            Severity::Warning,
            None,
            "/proc/cmdline",
            format!(
                "{} is on the kernel command line: the IOMMU groups are a lie, devices in \
                 'separate' groups can still reach each other by peer-to-peer DMA",
                p.text
            ),
            "trust the groups only as far as you trust every device in the real group; remove \
             the override (and the patched kernel) to see the true groups",
        ));
    }
    let ids_remedy = "bind by address instead ('vfioctl bind <address>' uses driver_override) and \
                      remove the ids= setting";
    let describe_ids = |value: &str| {
        let ids: Vec<&str> = value.split(',').filter(|s| !s.is_empty()).collect();
        let matching: Vec<PciAddress> = ctx
            .inv
            .devices()
            .iter()
            .filter(|d| {
                ids.iter().any(|id| {
                    id.split(':').take(2).collect::<Vec<_>>().join(":") == d.id.to_string()
                })
            })
            .map(|d| d.address)
            .collect();
        let now = if matching.is_empty() {
            String::new()
        } else {
            format!(" (here: {})", join(&matching))
        };
        format!("{}{now}", ids.join(", "))
    };
    if let Some(p) = ctx.param("vfio_pci.ids") {
        out.push(Finding::new(
            "vfio-pci-ids",
            Severity::Warning,
            None,
            "/proc/cmdline",
            format!(
                "{} makes vfio-pci take every device with ID {} at boot, including identical \
                 devices the host needs",
                p.text,
                describe_ids(&p.value)
            ),
            ids_remedy,
        ));
    }
    for (entry, value) in ctx.modprobe_options("vfio_pci", "ids") {
        out.push(Finding::new(
            "vfio-pci-ids",
            Severity::Warning,
            None,
            entry.path.clone(),
            format!(
                "{} line {} ('{}') makes vfio-pci take every device with ID {}, including \
                 identical devices the host needs",
                entry.path,
                entry.line,
                entry.text,
                describe_ids(value)
            ),
            ids_remedy,
        ));
    }
    for o in &f.driverctl {
        let device = o.device.parse::<PciAddress>().ok();
        if let Some(a) = device
            && !ctx.in_scope(&a)
        {
            continue;
        }
        out.push(Finding::new(
            "driverctl-override",
            Severity::Warning,
            device,
            o.path.clone(),
            format!(
                "driverctl forces {} {} onto {} at every boot; vfioctl cannot give it back to its \
                 own driver while this stays",
                o.bus, o.device, o.driver
            ),
            format!(
                "driverctl unset-override {} (or delete {})",
                o.device, o.path
            ),
        ));
    }
    for d in ctx
        .inv
        .devices()
        .iter()
        .filter(|d| ctx.in_scope(&d.address))
    {
        let Some(over) = d.driver_override.as_deref() else {
            continue;
        };
        if f.journaled.contains(&d.address) {
            continue;
        }
        let by_driverctl = f
            .driverctl
            .iter()
            .any(|o| o.device == d.address.to_string());
        if by_driverctl {
            continue;
        }
        let (severity, unsure) = match &f.journal_unreadable {
            Some(why) => (
                Severity::Info,
                format!(" (vfioctl's journal could not be read to tell: {why})"),
            ),
            None => (Severity::Warning, String::new()),
        };
        out.push(Finding::new(
            "foreign-driver-override",
            severity,
            Some(d.address),
            sys_dev(&d.address, "driver_override"),
            format!(
                "{} has driver_override={over}, set by something other than vfioctl (a script, \
                 udev rule or earlier tool){unsure}: only {over} can bind it, and 'vfioctl \
                 restore' does not know its original driver",
                d.address
            ),
            format!(
                "if nothing needs it: echo > {} (then echo {} > /sys/bus/pci/drivers_probe)",
                sys_dev(&d.address, "driver_override"),
                d.address
            ),
        ));
    }
    if let Some(problem) = &f.journal_problem {
        out.push(Finding::new(
            "journal-damaged",
            Severity::Warning,
            None,
            "/run/vfioctl/journal.json",
            format!("vfioctl's journal could not be read: {problem}"),
            "inspect /run/vfioctl/journal.json; move it away to start over, then restore devices \
             by hand ('vfioctl restore <device>')",
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::doctor::testkit::*;
    use crate::doctor::*;

    #[test]
    fn risky_setups() {
        let f = fires("acs-override", |f, _| {
            f.cmdline = Some("pcie_acs_override=downstream,multifunction".into());
        });
        assert!(f.message.contains("lie"));
        quiet("acs-override", |_, _| {});
        let f = fires("vfio-pci-ids", |f, _| {
            f.cmdline = Some("vfio-pci.ids=8086:10d3".into());
        });
        assert!(f.message.contains("here: 0000:01:00.0"), "{}", f.message);
        let f = fires("vfio-pci-ids", |f, _| {
            f.modprobe = parse_modprobe_conf(
                "/etc/modprobe.d/vfio.conf",
                "options vfio-pci ids=10de:2684\n",
            );
        });
        assert_eq!(f.path, "/etc/modprobe.d/vfio.conf");
        quiet("vfio-pci-ids", |f, _| {
            f.modprobe = parse_modprobe_conf(
                "/etc/modprobe.d/vfio.conf",
                "options vfio-pci disable_idle_d3=1\n",
            );
        });
        let f = fires("driverctl-override", |f, _| {
            f.driverctl.push(DriverctlOverride {
                path: "/etc/driverctl.d/pci-0000:01:00.0".into(),
                bus: "pci".into(),
                device: "0000:01:00.0".into(),
                driver: "vfio-pci".into(),
            });
        });
        assert!(f.remedy.contains("driverctl unset-override 0000:01:00.0"));
        quiet("driverctl-override", |_, _| {});
        fires("foreign-driver-override", |f, d| {
            d[1].driver_override = Some("vfio-pci".into());
            f.journaled.clear();
        });
        quiet("foreign-driver-override", |_, d| {
            // vfioctl bound it: the journal knows.
            d[1].driver_override = Some("vfio-pci".into());
        });
        let f = fires("foreign-driver-override", |f, d| {
            d[1].driver_override = Some("vfio-pci".into());
            f.journaled.clear();
            f.journal_unreadable = Some("permission denied".into());
        });
        assert_eq!(f.severity, Severity::Info);
        fires("journal-damaged", |f, _| {
            f.journal_problem = Some("expected value at line 1".into());
        });
        quiet("journal-damaged", |_, _| {});
    }
}
