//! What the known-devices table says about the devices present.

use crate::known::KnownStatus;

use super::ctx::{Ctx, sys_dev};
use super::finding::{Finding, Severity};

pub(super) fn check_known(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    for (path, problem) in &ctx.facts.known_problems {
        out.push(Finding::new(
            "known-devices-invalid",
            Severity::Error,
            None,
            path.clone(),
            format!("the known-devices table is not usable and was ignored: {problem}"),
            format!("fix {path} (see data/known-devices.toml in vfioctl for the format)"),
        ));
    }
    for d in ctx.all_endpoints() {
        let Some(k) = ctx.facts.known.get(d.id) else {
            continue;
        };
        let what = k.name.clone().unwrap_or_else(|| d.id.to_string());
        let source = k
            .source
            .as_deref()
            .map(|s| format!(" (source: {s})"))
            .unwrap_or_default();
        let (id, severity, remedy) = match k.status {
            KnownStatus::Works => ("known-device-works", Severity::Info, "nothing to do"),
            KnownStatus::Misbehaves => (
                "known-device-misbehaves",
                Severity::Warning,
                "test with the guest you will run before relying on it; keep a way to recover \
                 the VM (serial console, another boot entry)",
            ),
            KnownStatus::Broken => (
                "known-device-broken",
                Severity::Error,
                "use another device for this VM",
            ),
        };
        out.push(Finding::new(
            id,
            severity,
            Some(d.address),
            sys_dev(&d.address, "device"),
            format!("{} is a {what} [{}]: {}{source}", d.address, d.id, k.note),
            remedy,
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::doctor::testkit::*;
    use crate::doctor::*;
    use crate::known::{KnownDevices, KnownStatus};

    #[test]
    fn shipped_table_parses_and_lists_the_ten64_devices() {
        let t = KnownDevices::parse(TABLE, "data/known-devices.toml").unwrap();
        for (id, status) in [
            ("168c:003e", KnownStatus::Works),
            ("1ac1:089a", KnownStatus::Works),
            ("1b4b:9230", KnownStatus::Misbehaves),
            ("1b4b:9215", KnownStatus::Misbehaves),
        ] {
            assert_eq!(t.get(id.parse().unwrap()).unwrap().status, status, "{id}");
        }
    }

    #[test]
    fn known_devices() {
        let f = fires("known-device-misbehaves", |_, d| {
            d[1].id = "1b4b:9230".parse().unwrap();
        });
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.message.contains("panic"));
        let f = fires("known-device-works", |_, d| {
            d[1].id = "168c:003e".parse().unwrap();
        });
        assert_eq!(f.severity, Severity::Info);
        fires("known-device-broken", |f, d| {
            d[1].id = "1b4b:9230".parse().unwrap();
            let local = KnownDevices::parse(
                "version = 1\n[[device]]\nid = \"1b4b:9230\"\nstatus = \"broken\"\nnote = \"x\"\n",
                "/etc/vfioctl/devices.toml",
            )
            .unwrap();
            f.known = f.known.clone().merged(local);
        });
        quiet("known-device-misbehaves", |_, _| {});
        quiet("known-device-works", |_, _| {});
        quiet("known-device-broken", |_, _| {});
        fires("known-devices-invalid", |f, _| {
            f.known_problems.push((
                "/etc/vfioctl/devices.toml".into(),
                "/etc/vfioctl/devices.toml:3:1: unknown field".into(),
            ));
        });
        quiet("known-devices-invalid", |_, _| {});
    }
}
