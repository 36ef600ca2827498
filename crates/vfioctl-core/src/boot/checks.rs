//! `doctor`'s checks for early boot, on facts the host layer reads:
//!
//! | id | severity | fires when |
//! |---|---|---|
//! | `boot-framebuffer` | error | a boot framebuffer (`/proc/iomem`: BOOTFB, efifb, vesafb, simpledrm) lies in a device's BAR |
//! | `vtconsole-bound` | warning | such a device, and a frame-buffer console is bound (`/sys/class/vtconsole`) |
//! | `stale-module-name` | warning/info | `vfio_virqfd` in a module list or modprobe.d file (folded into `vfio` in Linux 6.2) |
//! | `pci-stub-leftover` | warning | `pci-stub` in a module list, modprobe.d file or the command line |
//!
//! A framebuffer the firmware left in a card's BAR is claimed by the kernel (`sysfb`, efifb,
//! simpledrm) as a memory region; vfio-pci then cannot reserve that BAR and fails to open the
//! device ("BAR 0: can't reserve [mem ...]"), long after binding looked fine.

use std::collections::BTreeMap;

use crate::address::PciAddress;
use crate::doctor::{Finding, Severity, canonical, kernel_version, parse_cmdline};

/// The names under which a boot framebuffer appears in `/proc/iomem`.
const FRAMEBUFFER_NAMES: &[&str] = &[
    "bootfb",
    "efifb",
    "vesafb",
    "simpledrm",
    "simple-framebuffer",
];

/// A memory range of `/proc/iomem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IomemRange {
    /// First byte.
    pub start: u64,
    /// Last byte.
    pub end: u64,
    /// Its owner's name (`BOOTFB`, `efifb`, `0000:01:00.0`).
    pub name: String,
}

/// Parses `/proc/iomem` (`  c0000000-c02fffff : BOOTFB`, nested by indentation). Lines that do
/// not parse are skipped.
pub fn parse_iomem(text: &str) -> Vec<IomemRange> {
    text.lines()
        .filter_map(|line| {
            let (range, name) = line.trim().split_once(" : ")?;
            let (start, end) = range.split_once('-')?;
            Some(IomemRange {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                name: name.trim().to_owned(),
            })
        })
        .collect()
}

/// The boot framebuffers among `ranges`. Without privileges the kernel shows every range as
/// `00000000-00000000`: those tell nothing and are left out.
pub fn framebuffers(ranges: &[IomemRange]) -> Vec<IomemRange> {
    ranges
        .iter()
        .filter(|r| r.end != 0)
        .filter(|r| {
            let name = r.name.to_ascii_lowercase();
            FRAMEBUFFER_NAMES.iter().any(|n| name.starts_with(n))
        })
        .cloned()
        .collect()
}

/// A device's memory BARs from its `resource` file (`start end flags` per line, BARs 0-5 then
/// the ROM), as `(index, start, end)`; unused and I/O BARs are left out.
pub fn parse_resource(text: &str) -> Vec<(usize, u64, u64)> {
    const IORESOURCE_MEM: u64 = 0x200;
    let hex = |w: &str| u64::from_str_radix(w.trim_start_matches("0x"), 16).ok();
    text.lines()
        .take(6)
        .enumerate()
        .filter_map(|(i, line)| {
            let mut words = line.split_whitespace();
            let (start, end, flags) = (
                hex(words.next()?)?,
                hex(words.next()?)?,
                hex(words.next()?)?,
            );
            (end != 0 && flags & IORESOURCE_MEM != 0).then_some((i, start, end))
        })
        .collect()
}

/// A boot framebuffer inside one of a device's BARs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramebufferConflict {
    /// The device.
    pub device: PciAddress,
    /// The BAR.
    pub bar: usize,
    /// The BAR's range.
    pub bar_range: (u64, u64),
    /// The framebuffer.
    pub framebuffer: IomemRange,
}

impl FramebufferConflict {
    /// What is wrong, in one sentence.
    pub fn message(&self) -> String {
        format!(
            "the boot framebuffer '{}' ({:#x}-{:#x}) lies in BAR {} of {} ({:#x}-{:#x}): vfio-pci \
             will fail to open the device with \"BAR {}: can't reserve\"",
            self.framebuffer.name,
            self.framebuffer.start,
            self.framebuffer.end,
            self.bar,
            self.device,
            self.bar_range.0,
            self.bar_range.1,
            self.bar
        )
    }

    /// What to do: the kernel parameter that keeps this framebuffer driver off the card.
    pub fn remedy(&self) -> String {
        let name = self.framebuffer.name.to_ascii_lowercase();
        let param = if name.starts_with("efifb") {
            "video=efifb:off"
        } else if name.starts_with("vesafb") {
            "video=vesafb:off"
        } else {
            // BOOTFB and simpledrm are registered by sysfb_init (Linux 5.15+).
            "initcall_blacklist=sysfb_init"
        };
        format!(
            "make another card the boot display in the firmware setup, or boot with {param} \
             (then 'vfioctl boot install' takes the card before any driver)"
        )
    }
}

/// The framebuffers lying in the BARs of each device in `bars`.
pub fn framebuffer_conflicts(
    framebuffers: &[IomemRange],
    bars: &BTreeMap<PciAddress, Vec<(usize, u64, u64)>>,
) -> Vec<FramebufferConflict> {
    let mut out = Vec::new();
    for (address, bars) in bars {
        for &(bar, start, end) in bars {
            for fb in framebuffers {
                if fb.start <= end && start <= fb.end {
                    out.push(FramebufferConflict {
                        device: *address,
                        bar,
                        bar_range: (start, end),
                        framebuffer: fb.clone(),
                    });
                }
            }
        }
    }
    out
}

/// A virtual-terminal console (`/sys/class/vtconsole/vtconN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VtConsole {
    /// `vtcon1`.
    pub name: String,
    /// Its `name` attribute (`(M) frame buffer device`).
    pub driver: String,
    /// Its `bind` attribute is 1.
    pub bound: bool,
}

/// What the early-boot checks read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootFacts {
    /// Boot framebuffers in `/proc/iomem`.
    pub framebuffers: Vec<IomemRange>,
    /// Memory BARs of devices (read only when there are framebuffers).
    pub bars: BTreeMap<PciAddress, Vec<(usize, u64, u64)>>,
    /// The virtual-terminal consoles.
    pub vtconsoles: Vec<VtConsole>,
    /// Module lists and configs (`/etc/modules`, modules-load.d, modprobe.d, initramfs-tools,
    /// dracut, mkinitcpio), as (path on `/`, text).
    pub module_configs: Vec<(String, String)>,
}

/// The early-boot findings for the devices `in_scope` accepts.
pub fn run(
    facts: &BootFacts,
    cmdline: Option<&str>,
    kernel_release: Option<&str>,
    in_scope: impl Fn(&PciAddress) -> bool,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let conflicts = framebuffer_conflicts(&facts.framebuffers, &facts.bars);
    for c in conflicts.iter().filter(|c| in_scope(&c.device)) {
        out.push(Finding {
            id: "boot-framebuffer",
            severity: Severity::Error,
            device: Some(c.device),
            path: format!("/proc/iomem, /sys/bus/pci/devices/{}/resource", c.device),
            message: c.message(),
            remedy: c.remedy(),
        });
        for vt in facts
            .vtconsoles
            .iter()
            .filter(|v| v.bound && v.driver.contains("frame buffer"))
        {
            out.push(Finding {
                id: "vtconsole-bound",
                severity: Severity::Warning,
                device: Some(c.device),
                path: format!("/sys/class/vtconsole/{}/bind", vt.name),
                message: format!(
                    "console {} ({}) is bound to the framebuffer on {}: the console keeps the \
                     card in use",
                    vt.name,
                    vt.driver.trim(),
                    c.device
                ),
                remedy: format!(
                    "echo 0 > /sys/class/vtconsole/{}/bind before binding (or boot with the \
                     framebuffer off, as above)",
                    vt.name
                ),
            });
        }
    }
    stale_modules(facts, cmdline, kernel_release, &mut out);
    out
}

fn stale_modules(
    facts: &BootFacts,
    cmdline: Option<&str>,
    kernel_release: Option<&str>,
    out: &mut Vec<Finding>,
) {
    let merged = kernel_release
        .and_then(kernel_version)
        .is_some_and(|v| v >= (6, 2));
    for (path, text) in &facts.module_configs {
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let words = line
                .split(|c: char| c.is_whitespace() || "\"'()=,:".contains(c))
                .map(canonical);
            for word in words {
                let at = format!("{path} line {}", index + 1);
                if word == "vfio_virqfd" {
                    out.push(Finding {
                        id: "stale-module-name",
                        severity: if merged {
                            Severity::Warning
                        } else {
                            Severity::Info
                        },
                        device: None,
                        path: path.clone(),
                        message: format!(
                            "{at} ('{line}') names vfio_virqfd, which Linux 6.2 folded into vfio: \
                             modprobe and initramfs generators fail on it from then on"
                        ),
                        remedy: format!(
                            "remove vfio_virqfd from {path}; vfio, vfio_iommu_type1 and vfio_pci \
                             are all vfio-pci needs"
                        ),
                    });
                } else if word == "pci_stub" {
                    out.push(pci_stub(
                        path.clone(),
                        format!("{at} ('{line}') loads pci-stub"),
                    ));
                }
            }
        }
    }
    for p in cmdline.map(parse_cmdline).unwrap_or_default() {
        if p.name.starts_with("pci_stub.") {
            out.push(pci_stub(
                "/proc/cmdline".to_owned(),
                format!("the kernel command line has {}", p.text),
            ));
        }
    }
}

#[expect(
    clippy::needless_pass_by_value,
    reason = "built from owned text at each call site"
)]
fn pci_stub(path: String, what: String) -> Finding {
    Finding {
        id: "pci-stub-leftover",
        severity: Severity::Warning,
        device: None,
        path,
        message: format!(
            "{what}: a leftover of pre-vfio setups that claims every device with the listed IDs, \
             identical cards included"
        ),
        remedy: "remove it, and take the devices per address with 'vfioctl boot install' (VM \
                 definitions with boot = true)"
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IOMEM: &str = "\
00000000-00000fff : Reserved
c0000000-cfffffff : PCI Bus 0000:00
  c0000000-c0ffffff : 0000:00:02.0
    c0000000-c02fffff : BOOTFB
fd000000-fdffffff : PCI Bus 0000:00
  fd000000-fdffffff : 0000:01:00.0
    fd000000-fd2fffff : efifb
";

    fn addr(text: &str) -> PciAddress {
        text.parse().unwrap()
    }

    #[test]
    fn finds_framebuffers_and_the_bar_they_sit_in() {
        let fbs = framebuffers(&parse_iomem(IOMEM));
        assert_eq!(fbs.len(), 2);
        assert_eq!(fbs[0].name, "BOOTFB");
        let resource = "0x00000000fd000000 0x00000000fdffffff 0x0000000000040200\n\
                        0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
                        0x000000000000e000 0x000000000000e07f 0x0000000000040101\n";
        assert_eq!(parse_resource(resource), [(0, 0xfd00_0000, 0xfdff_ffff)]);
        let bars = BTreeMap::from([
            (addr("0000:01:00.0"), parse_resource(resource)),
            (addr("0000:02:00.0"), vec![(0, 0xfe00_0000, 0xfe0f_ffff)]),
        ]);
        let facts = BootFacts {
            framebuffers: fbs,
            bars,
            vtconsoles: vec![
                VtConsole {
                    name: "vtcon0".into(),
                    driver: "(S) dummy device".into(),
                    bound: false,
                },
                VtConsole {
                    name: "vtcon1".into(),
                    driver: "(M) frame buffer device".into(),
                    bound: true,
                },
            ],
            module_configs: Vec::new(),
        };
        let found = run(&facts, None, None, |_| true);
        let ids: Vec<(&str, String)> = found
            .iter()
            .map(|f| (f.id, f.device.unwrap().to_string()))
            .collect();
        assert_eq!(
            ids,
            [
                ("boot-framebuffer", "0000:01:00.0".to_owned()),
                ("vtconsole-bound", "0000:01:00.0".to_owned())
            ]
        );
        assert!(found[0].message.contains("'efifb'"), "{}", found[0].message);
        assert!(
            found[0].remedy.contains("video=efifb:off"),
            "{}",
            found[0].remedy
        );
        assert!(
            found[1]
                .remedy
                .starts_with("echo 0 > /sys/class/vtconsole/vtcon1/bind")
        );
        assert!(run(&facts, None, None, |a| *a != addr("0000:01:00.0")).is_empty());
    }

    #[test]
    fn unprivileged_iomem_tells_nothing() {
        let zeros = "00000000-00000000 : BOOTFB\n00000000-00000000 : efifb\n";
        assert!(framebuffers(&parse_iomem(zeros)).is_empty());
    }

    #[test]
    fn bootfb_and_simpledrm_need_sysfb_off() {
        let c = FramebufferConflict {
            device: addr("0000:01:00.0"),
            bar: 0,
            bar_range: (0, 1),
            framebuffer: IomemRange {
                start: 0,
                end: 1,
                name: "simpledrm".into(),
            },
        };
        assert!(c.remedy().contains("initcall_blacklist=sysfb_init"));
    }

    #[test]
    fn stale_names_in_configs_and_the_command_line() {
        let facts = BootFacts {
            module_configs: vec![
                (
                    "/etc/initramfs-tools/modules".into(),
                    "# vfio_virqfd in a comment\nvfio\nvfio_virqfd\n".into(),
                ),
                (
                    "/etc/dracut.conf.d/vfio.conf".into(),
                    "force_drivers+=\" vfio vfio-virqfd vfio_pci \"\n".into(),
                ),
                ("/etc/modules-load.d/stub.conf".into(), "pci-stub\n".into()),
            ],
            ..BootFacts::default()
        };
        let found = run(
            &facts,
            Some("root=/dev/sda1 pci-stub.ids=10de:2684"),
            Some("6.12.1-amd64"),
            |_| true,
        );
        let ids: Vec<(&str, Severity)> = found.iter().map(|f| (f.id, f.severity)).collect();
        assert_eq!(
            ids,
            [
                ("stale-module-name", Severity::Warning),
                ("stale-module-name", Severity::Warning),
                ("pci-stub-leftover", Severity::Warning),
                ("pci-stub-leftover", Severity::Warning),
            ]
        );
        assert!(
            found[0]
                .message
                .starts_with("/etc/initramfs-tools/modules line 3"),
            "{}",
            found[0].message
        );
        assert!(found[3].message.contains("pci-stub.ids=10de:2684"));
        let old = run(&facts, None, Some("6.1.0-57-amd64"), |_| true);
        assert_eq!(old[0].severity, Severity::Info);
    }
}
