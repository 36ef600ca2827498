//! `doctor`: find what will make passthrough fail before QEMU does.
//!
//! The host layer reads everything into a plain [`DoctorFacts`]; [`run`] turns facts and the
//! [`Inventory`] into [`Finding`]s, each with a stable `id`, a severity, what was read and what to
//! do. Nothing here reads a file, so every check is tested with hand-built facts.
//!
//! The checks are split by area (`iommu`, `modules`, `devices`, `groups`, `overrides`, `known`,
//! `fslmc`), each with its tests beside it; they share only [`DoctorFacts`] and a read-only
//! context, so none of them imports another.
//!
//! The check ids are stable (scripts match on them):
//!
//! | id | severity | fires when |
//! |---|---|---|
//! | `iommu-off` | error | no `/sys/class/iommu` entry and no IOMMU group |
//! | `iommu-no-groups` | error | an IOMMU is registered but no group exists |
//! | `iommu-identity-groups` | info | groups in identity (passthrough) mode (`iommu=pt`) |
//! | `smmu-bypass` | info | `arm-smmu.disable_bypass=0` |
//! | `interrupt-remapping-off` | error | `intremap=off` on x86 |
//! | `interrupt-remapping-unsupported` | error | a VT-d unit's ecap lacks IR (bit 3) |
//! | `interrupt-remapping-unknown` | info | x86, but IR support is not readable (AMD-Vi) |
//! | `msi-isolation-missing` | error | arm64 without a GICv3 ITS |
//! | `msi-isolation-unknown` | info | arm64, and neither `/proc/interrupts` nor a device tree |
//! | `unsafe-interrupts-allowed` | warning | `vfio_iommu_type1.allow_unsafe_interrupts` is on |
//! | `noiommu-mode` | warning | `vfio.enable_unsafe_noiommu_mode` is on |
//! | `module-missing` | error | a VFIO module is not loaded, built in or in `modules.dep` |
//! | `module-not-loaded` | warning | vfio-pci (or vfio-fsl-mc) can be loaded but is not |
//! | `module-unknown` | info | not loaded, and `/lib/modules/<release>` is unreadable |
//! | `module-blacklisted` | error/warning | `install <m> /bin/false` / `blacklist <m>` |
//! | `dev-vfio-missing` | error | vfio is loaded but `/dev/vfio/vfio` is absent |
//! | `dev-vfio-mode` | warning | `/dev/vfio/vfio` is not mode 0666 |
//! | `group-node-missing` | error | a group has a member on vfio-pci but no `/dev/vfio/N` |
//! | `idle-d3` | warning | vfio-pci idle D3 is on, on arm64 or with devices asleep |
//! | `device-d3cold` | warning | a device is in D3cold |
//! | `device-d3hot` | info | a device is in D3hot |
//! | `reset-none` | warning | a device has no reset method |
//! | `reset-bus-shared` | warning/info | only a bus reset, and other devices share the bus |
//! | `reset-method-unknown` | info | the kernel predates `reset_method` (5.15) |
//! | `group-never-viable` | error | a bridge in the group is on a DMA driver (`shpchp`) |
//! | `group-not-viable` | error | a group is half bound to vfio-pci |
//! | `group-not-bound` | info | a named device's group still has members on host drivers |
//! | `group-shared` | info | a group holds more than one device, with the reason |
//! | `group-member-host-uses` | error | a shared group holds a device the host uses |
//! | `device-no-group` | error | a device has no IOMMU group while the IOMMU is on |
//! | `device-is-bridge` | error | a named device is a bridge |
//! | `host-device` | error | a named device backs the host (disk, network, console) |
//! | `group-host-critical` | error | a named device is, or shares its group with, a function the platform needs |
//! | `device-unreadable` | warning | a device's sysfs files are unreadable or garbage; it was skipped |
//! | `acs-override` | warning | `pcie_acs_override=` on the command line |
//! | `vfio-pci-ids` | warning | `vfio-pci.ids=` or `options vfio-pci ids=` |
//! | `driverctl-override` | warning | a file in `/etc/driverctl.d` |
//! | `foreign-driver-override` | warning | `driver_override` set by something other than vfioctl |
//! | `journal-damaged` | warning | vfioctl's journal does not parse |
//! | `journal-interrupted` | warning | a journal entry is still `binding`: its bind never finished |
//! | `helper-stuck` | warning | a write helper the journal lists is still in the kernel |
//! | `helper-returned` | warning | a listed write helper returned, and nothing finished the give-back |
//! | `owner-gone` | warning | an entry's owner is gone: domain, VM config or definition, recorded QEMU |
//! | `owner-not-running` | warning | an entry's libvirt domain or Proxmox VM is not running |
//! | `known-device-works` / `-misbehaves` / `-broken` | info/warning/error | the known-devices table |
//! | `known-devices-invalid` | error | `/etc/vfioctl/devices.toml` does not parse |
//! | `fsl-mc-vfio-missing` | error | DPAA2 host without a vfio-fsl-mc driver |
//! | `fsl-mc-irq-cfg` | info | DPAA2 host: containers for VMs need `DPRC_CFG_OPT_IRQ_CFG_ALLOWED` |
//! | `fsl-mc-restool` | info | DPAA2 host: restool could not be asked, so containers were not read back |
//! | `fsl-mc-firmware-unsupported` | warning | an MC firmware major restool has no commands for |
//! | `fsl-mc-firmware-old` | warning | MC firmware older than 10.20 |
//! | `fsl-mc-container-no-irq-cfg` | error | a container meant for a VM lacks `DPRC_CFG_OPT_IRQ_CFG_ALLOWED` |
//! | `fsl-mc-container-objects` | warning | a container meant for a VM lacks a DPNI, DPBP, DPIO, DPCON or DPMCP |
//! | `iommufd-available` | info | `/dev/iommu` and VFIO device files: usable, but no P2P DMA |
//! | `iommufd-unavailable` | info | no iommufd (what it read of `CONFIG_IOMMUFD`) |
//! | `boot-framebuffer`, `vtconsole-bound`, `stale-module-name`, `pci-stub-leftover` | | early boot: see `crate::boot::checks` |
//!
//! Kernel references: `drivers/vfio/vfio_iommu_type1.c` (`allow_unsafe_interrupts`, isolated
//! MSI), `drivers/vfio/pci/vfio_pci.c` (`disable_idle_d3`, `ids`), `drivers/iommu/intel/iommu.h`
//! (`ecap_ir_support`: bit 3 of the VT-d extended capability register),
//! `drivers/pci/pci.c` (`reset_method`, `pci_parent_bus_reset`), kmod's `modprobe.d(5)`.

mod ctx;
mod devices;
mod facts;
mod finding;
mod fslmc;
mod fslmc_containers;
mod groups;
mod iommu;
mod iommufd;
mod journal;
mod known;
mod modules;
mod overrides;
mod parse;
mod safety;
#[cfg(test)]
mod testkit;

use std::fmt;

use serde::Serialize;

use crate::address::PciAddress;
use crate::device::Inventory;

pub use facts::{
    Arch, ContainerFacts, DoctorFacts, DriverctlOverride, FslMcFacts, IommufdFacts, McVersion,
    ModuleStatus, TEN64_VFIO_PAGE, VFIO_FSL_MC_MODULE, VFIO_MODULES,
};
pub use finding::{Finding, Severity};
pub use journal::{EntryFacts, HelperFacts, JournalFacts, owner_definitions};
pub use parse::{
    Directive, ModprobeEntry, Param, canonical, dashed, kernel_version, parse_cmdline,
    parse_modprobe_conf,
};

use ctx::{Ctx, join};

/// Runs every check. With `named` empty the whole host is examined; otherwise device-specific
/// checks only look at the named devices and the members of their IOMMU groups (host-wide checks,
/// such as the IOMMU and the modules, always run).
pub fn run(facts: &DoctorFacts, inv: &Inventory, named: &[PciAddress]) -> Vec<Finding> {
    let ctx = Ctx::new(facts, inv, named);
    let mut out = Vec::new();
    iommu::check_iommu(&ctx, &mut out);
    iommu::check_interrupts(&ctx, &mut out);
    modules::check_modules(&ctx, &mut out);
    modules::check_dev_nodes(&ctx, &mut out);
    devices::check_power(&ctx, &mut out);
    devices::check_reset(&ctx, &mut out);
    groups::check_groups(&ctx, &mut out);
    groups::check_named(&ctx, &mut out);
    safety::check_platform(&ctx, &mut out);
    safety::check_skipped(inv, &mut out);
    overrides::check_risky(&ctx, &mut out);
    journal::check_journal(&ctx, &mut out);
    known::check_known(&ctx, &mut out);
    fslmc::check_fsl_mc(&ctx, &mut out);
    fslmc_containers::check(&ctx, &mut out);
    iommufd::check_iommufd(&ctx, &mut out);
    let (cmdline, release) = (facts.cmdline.as_deref(), facts.kernel_release.as_deref());
    out.extend(crate::boot::checks::run(
        &facts.boot,
        cmdline,
        release,
        |a| ctx.in_scope(a),
    ));
    out.sort_by_key(|f| f.severity);
    out
}

/// Whether one named device can go to a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The device.
    pub device: PciAddress,
    /// True when no error stands in the way.
    pub can_go: bool,
    /// Other endpoints of its IOMMU group, which must go to the same VM.
    pub with: Vec<PciAddress>,
    /// The errors that stand in the way.
    pub because: Vec<String>,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.can_go {
            write!(f, "{} can go to a VM", self.device)?;
            if !self.with.is_empty() {
                write!(f, " (together with {})", join(&self.with))?;
            }
            Ok(())
        } else {
            write!(
                f,
                "{} cannot go to a VM, because {}",
                self.device,
                self.because.join("; ")
            )
        }
    }
}

/// One verdict per named device: errors that are host-wide or about the device or a member of its
/// group stand in its way; warnings do not.
pub fn verdicts(findings: &[Finding], inv: &Inventory, named: &[PciAddress]) -> Vec<Verdict> {
    named
        .iter()
        .map(|address| {
            let members = inv.group_members(address);
            let because: Vec<String> = findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                // A half-bound group fails QEMU now, but binding the whole group fixes it.
                .filter(|f| f.id != "group-not-viable")
                .filter(|f| {
                    f.device
                        .is_none_or(|d| d == *address || members.contains(&d))
                })
                .map(|f| f.message.clone())
                .collect();
            // The same functions bind moves and qemu-args hands over (one place decides).
            let with = crate::passthrough::goes_with(inv, address)
                .into_iter()
                .filter(|a| a != address)
                .collect();
            Verdict {
                device: *address,
                can_go: because.is_empty(),
                with,
                because,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use crate::device::PciDevice;
    use crate::device::tests::addr;
    use crate::ids::ClassCode;
    use crate::plan::HostUse;

    #[test]
    fn healthy_host_has_no_findings() {
        let (mut findings, _) = run_with(|_, _| {});
        // Which VFIO interface the kernel offers is always said; it is not a problem either way.
        findings.retain(|f| !f.id.starts_with("iommufd-"));
        assert!(findings.is_empty(), "{findings:#?}");
    }

    #[test]
    fn named_devices_scope_and_verdicts() {
        let (mut facts, mut devices) = healthy();
        shared_group(&mut facts, &mut devices);
        let mut other = endpoint("0000:05:00.0", "8086:1533", Some(5), Some("igb"));
        other.reset_method = Some(Vec::new());
        devices.push(other);
        facts.host_uses.insert(
            addr("0000:05:00.0"),
            vec![HostUse::Network {
                interface: "eth0".into(),
                detail: "carries the default route".into(),
                via: Vec::new(),
                essential: false,
            }],
        );
        let inv = inventory(devices);
        let named = [addr("0000:01:00.1")];
        let findings = run(&facts, &inv, &named);
        // 0000:05:00.0's missing reset is outside the scope.
        assert!(!ids(&findings).contains(&"reset-none"), "{findings:#?}");
        let v = verdicts(&findings, &inv, &named);
        assert!(v[0].can_go);
        assert_eq!(
            v[0].to_string(),
            "0000:01:00.1 can go to a VM (together with 0000:01:00.0)"
        );
        let named = [addr("0000:05:00.0")];
        let findings = run(&facts, &inv, &named);
        assert!(ids(&findings).contains(&"host-device"));
        assert!(ids(&findings).contains(&"reset-none"));
        let v = verdicts(&findings, &inv, &named);
        assert!(!v[0].can_go);
        assert!(
            v[0].to_string()
                .starts_with("0000:05:00.0 cannot go to a VM, because 0000:05:00.0 backs the host"),
            "{}",
            v[0]
        );
        let mut bound_elsewhere = inv.clone();
        let mut devices: Vec<PciDevice> = bound_elsewhere.devices().to_vec();
        for d in &mut devices {
            d.driver = match d.address.to_string().as_str() {
                "0000:01:00.0" => Some("e1000e".into()),
                "0000:01:00.1" => Some("apex".into()),
                _ => d.driver.clone(),
            };
        }
        bound_elsewhere = Inventory::new(devices, true, bound_elsewhere.groups.clone());
        let named1 = [addr("0000:01:00.1")];
        let findings = run(&facts, &bound_elsewhere, &named1);
        let hint = findings.iter().find(|f| f.id == "group-not-bound").unwrap();
        assert_eq!(hint.severity, Severity::Info);
        assert!(hint.remedy.starts_with("vfioctl bind 0000:01:00.1"));
        assert!(!ids(&run(&facts, &bound_elsewhere, &[])).contains(&"group-not-bound"));
        let named = [addr("0000:00:01.0")];
        let findings = run(&facts, &inv, &named);
        assert!(ids(&findings).contains(&"device-is-bridge"));
    }

    #[test]
    fn host_bridges_and_the_hosts_own_devices_are_not_candidates() {
        quiet("reset-none", |f, d| {
            let mut host_bridge = endpoint("0000:00:00.0", "8086:0d57", None, None);
            host_bridge.class = ClassCode(0x060000);
            host_bridge.reset_method = None;
            d.push(host_bridge);
            d[1].reset_method = None;
            f.host_uses
                .insert(addr("0000:01:00.0"), vec![HostUse::Console]);
        });
        // The known-devices table still speaks about the host's own devices.
        fires("known-device-misbehaves", |f, d| {
            d[1].id = "1b4b:9230".parse().unwrap();
            f.host_uses
                .insert(addr("0000:01:00.0"), vec![HostUse::Console]);
        });
    }

    #[test]
    fn findings_are_sorted_errors_first() {
        let (findings, _) = run_with(|f, d| {
            f.noiommu_mode = Some(true);
            f.modules.insert("vfio_pci".into(), ModuleStatus::Missing);
            d[1].power_state = Some("D3hot".into());
        });
        let severities: Vec<Severity> = findings.iter().map(|f| f.severity).collect();
        let mut sorted = severities.clone();
        sorted.sort();
        assert_eq!(severities, sorted);
    }
}
