//! What a man page needs beyond what clap knows: EXIT STATUS, FILES, EXAMPLES and SEE ALSO, so
//! each page stands alone (man-pages(7) orders them after OPTIONS).

use roff::{Roff, bold, italic, roman};

use crate::exit::EXIT_CODES_HELP;

/// A file a command reads or writes, as on `/` (`--root` moves all of them).
struct File {
    path: &'static str,
    what: &'static str,
}

const SYSFS: File = File {
    path: "/sys/bus/pci/devices, /sys/kernel/iommu_groups",
    what: "the PCI functions and IOMMU groups, read (and, to bind, written) under --root",
};
const JOURNAL: File = File {
    path: "/run/vfioctl/journal.json",
    what: "every device vfioctl bound and the driver it had, so restore and recover give it back \
           (tmpfs: bindings do not survive a reboot either)",
};
const VMS: File = File {
    path: "/etc/vfioctl/vms/NAME.toml",
    what: "VM definitions (--config DIR reads another directory)",
};
const KNOWN: File = File {
    path: "/etc/vfioctl/devices.toml",
    what: "this host's known-devices table, overriding the one vfioctl ships \
           (/usr/share/vfioctl/known-devices.toml)",
};
const PCI_IDS: File = File {
    path: "/usr/share/misc/pci.ids",
    what: "vendor and device names (--pci-ids PATH reads another)",
};
const DEV_VFIO: File = File {
    path: "/dev/vfio/GROUP, /dev/vfio/devices/vfioN",
    what: "the VFIO group and device files a VM opens",
};
const UNIT: File = File {
    path: "/usr/lib/systemd/system/vfioctl-apply.service",
    what: "runs vfioctl apply at boot once enabled (systemctl enable vfioctl-apply)",
};
const HOOKS: File = File {
    path: "/usr/share/vfioctl/hooks/",
    what: "the libvirt qemu hook and the Proxmox VE hookscript, to copy or link into place",
};

/// The parts of one page that clap does not generate.
struct Extra {
    files: &'static [File],
    examples: &'static [(&'static str, &'static str)],
    see_also: &'static [&'static str],
}

fn extra(page: &str) -> Extra {
    let (files, examples, see_also): (&[File], &[(&str, &str)], &[&str]) = match page {
        "vfioctl" => (
            &[SYSFS, JOURNAL, VMS, KNOWN, PCI_IDS, DEV_VFIO, UNIT, HOOKS],
            &[
                (
                    "vfioctl groups",
                    "Which devices share an IOMMU group, and why.",
                ),
                (
                    "vfioctl bind --dry-run 0001:03:00.0",
                    "The plan and the exact sysfs writes to bind a device's whole group.",
                ),
                (
                    "vfioctl restore --all",
                    "Give every device back to the driver it had.",
                ),
            ],
            &[
                "vfioctl-list(1)",
                "vfioctl-bind(1)",
                "vfioctl-doctor(1)",
                "vfioctl-vm(1)",
            ],
        ),
        "vfioctl-list" => (
            &[SYSFS, PCI_IDS],
            &[
                (
                    "vfioctl list",
                    "Every PCI function with its driver and IOMMU group.",
                ),
                ("vfioctl list -t", "The same, as the bus tree."),
                (
                    "vfioctl list -d 168c:003c --json",
                    "The Atheros QCA986x cards, as JSON.",
                ),
            ],
            &["vfioctl-show(1)", "vfioctl-groups(1)", "lspci(8)"],
        ),
        "vfioctl-groups" => (
            &[SYSFS],
            &[
                (
                    "vfioctl groups",
                    "Every group, its members, and why each shared one is shared.",
                ),
                (
                    "vfioctl groups 0001:03:00.0 7",
                    "The group of a device, and group 7.",
                ),
            ],
            &["vfioctl-list(1)", "vfioctl-check(1)", "vfioctl-bind(1)"],
        ),
        "vfioctl-show" => (
            &[SYSFS, PCI_IDS],
            &[
                (
                    "vfioctl show 0001:03:00.0",
                    "Everything about one function.",
                ),
                (
                    "vfioctl show eth1",
                    "The PCI function behind a network interface.",
                ),
            ],
            &["vfioctl-list(1)", "vfioctl-doctor(1)"],
        ),
        "vfioctl-bind" => (
            &[SYSFS, JOURNAL, DEV_VFIO],
            &[
                (
                    "vfioctl bind --dry-run 0001:03:00.0",
                    "The plan and the exact sysfs writes, changing nothing.",
                ),
                (
                    "vfioctl bind --user qemu 0001:03:00.0",
                    "Bind the device's whole IOMMU group and give its VFIO files to user qemu.",
                ),
                (
                    "vfioctl bind 168c:003c",
                    "Bind every Atheros QCA986x card, group by group.",
                ),
            ],
            &[
                "vfioctl-restore(1)",
                "vfioctl-groups(1)",
                "vfioctl-doctor(1)",
            ],
        ),
        "vfioctl-restore" => (
            &[SYSFS, JOURNAL],
            &[
                (
                    "vfioctl restore 0001:03:00.0",
                    "Give a device (and its group) back.",
                ),
                (
                    "vfioctl restore --all --dry-run",
                    "What giving everything back would do.",
                ),
            ],
            &["vfioctl-bind(1)", "vfioctl-recover(1)"],
        ),
        "vfioctl-recover" => (
            &[SYSFS, JOURNAL],
            &[(
                "vfioctl recover",
                "Give back every device of an interrupted run.",
            )],
            &["vfioctl-restore(1)", "vfioctl-run(1)"],
        ),
        "vfioctl-check" => (
            &[SYSFS, DEV_VFIO],
            &[(
                "vfioctl check 7",
                "Whether group 7 can be given to a VM now.",
            )],
            &["vfioctl-groups(1)", "vfioctl-bind(1)"],
        ),
        "vfioctl-hook" | "vfioctl-hook-libvirt" | "vfioctl-hook-proxmox" => (
            &[JOURNAL, HOOKS],
            &[
                (
                    "ln -s /usr/share/vfioctl/hooks/libvirt-qemu.d-vfioctl /etc/libvirt/hooks/qemu.d/vfioctl",
                    "Let libvirt bind a domain's hostdevs on prepare and restore them on release \
                     (restart libvirtd or virtqemud afterwards).",
                ),
                (
                    "qm set 100 --hookscript local:snippets/vfioctl-hookscript",
                    "Let Proxmox VE run vfioctl around VM 100 (copy the hookscript to the \
                     snippets directory of storage local first).",
                ),
            ],
            &["vfioctl-bind(1)", "vfioctl-restore(1)", "virsh(1)"],
        ),
        "vfioctl-doctor" => (
            &[SYSFS, KNOWN, DEV_VFIO],
            &[
                (
                    "vfioctl doctor",
                    "Everything on this host that would make passthrough fail.",
                ),
                (
                    "vfioctl doctor 0001:03:00.0",
                    "Whether this device can go to a VM, and how.",
                ),
            ],
            &["vfioctl-show(1)", "vfioctl-check(1)"],
        ),
        "vfioctl-qemu-args" => (
            &[SYSFS],
            &[(
                "vfioctl qemu-args --machine virt 0001:03:00.0 dprc.2",
                "The -device arguments for a PCI function and a DPAA2 container.",
            )],
            &[
                "vfioctl-libvirt-xml(1)",
                "vfioctl-vm-qemu-args(1)",
                "qemu-system-aarch64(1)",
            ],
        ),
        "vfioctl-libvirt-xml" => (
            &[SYSFS],
            &[(
                "vfioctl libvirt-xml 0001:03:00.0 > hostdev.xml",
                "The <hostdev> elements for a device's group.",
            )],
            &["vfioctl-qemu-args(1)", "virsh(1)"],
        ),
        "vfioctl-vm" | "vfioctl-vm-list" | "vfioctl-vm-check" | "vfioctl-vm-qemu-args" => (
            &[VMS, SYSFS],
            &[
                (
                    "vfioctl vm list",
                    "Every VM definition and whether it is valid.",
                ),
                (
                    "vfioctl vm check router",
                    "Check VM router against this host.",
                ),
                (
                    "vfioctl --config ./vms vm qemu-args router",
                    "Its QEMU command line.",
                ),
            ],
            &["vfioctl-run(1)", "vfioctl-apply(1)", "vfioctl-status(1)"],
        ),
        "vfioctl-apply" => (
            &[VMS, JOURNAL, UNIT],
            &[
                (
                    "vfioctl apply --dry-run",
                    "What binding the boot = true VMs would do.",
                ),
                ("systemctl enable vfioctl-apply", "Bind them at every boot."),
            ],
            &["vfioctl-status(1)", "vfioctl-vm(1)", "systemctl(1)"],
        ),
        "vfioctl-status" => (
            &[VMS, JOURNAL, SYSFS],
            &[(
                "vfioctl status",
                "Which VMs' devices are bound, drifted or missing.",
            )],
            &["vfioctl-apply(1)", "vfioctl-vm(1)"],
        ),
        "vfioctl-run" => (
            &[VMS, JOURNAL, DEV_VFIO],
            &[
                (
                    "vfioctl run --dry-run router",
                    "What would be bound, and the QEMU command.",
                ),
                (
                    "vfioctl run router",
                    "Bind, run QEMU, and give the devices back when it exits.",
                ),
            ],
            &[
                "vfioctl-vm(1)",
                "vfioctl-recover(1)",
                "qemu-system-x86_64(1)",
            ],
        ),
        "vfioctl-slots" => (
            &[SYSFS],
            &[
                (
                    "vfioctl slots",
                    "Every root port and downstream port: would a card there be alone?",
                ),
                ("vfioctl slots --json", "The same, as JSON."),
            ],
            &["vfioctl-groups(1)", "vfioctl-show(1)"],
        ),
        "vfioctl-boot" | "vfioctl-boot-install" | "vfioctl-boot-remove" | "vfioctl-boot-status" => {
            (
                &[SYSFS],
                &[
                    (
                        "vfioctl boot install --dry-run",
                        "Every file and command early binding would write and run.",
                    ),
                    (
                        "vfioctl boot install",
                        "Write the udev rule and initramfs files for the boot VMs, regenerate the initramfs.",
                    ),
                    (
                        "vfioctl boot status",
                        "Whether each boot device is on vfio-pci and was never touched by a host driver.",
                    ),
                    (
                        "vfioctl boot remove",
                        "Remove every file boot install wrote.",
                    ),
                ],
                &["vfioctl-apply(1)", "vfioctl-vm(1)", "udev(7)"],
            )
        }
        "vfioctl-dpaa2" | "vfioctl-dpaa2-create" | "vfioctl-dpaa2-destroy" => (
            &[SYSFS],
            &[
                (
                    "vfioctl dpaa2 create --for-vm ten64 --dpmac dpmac.2 --dry-run",
                    "The restool commands that make a container for a VM, wired to a port.",
                ),
                (
                    "vfioctl dpaa2 create --for-vm ten64 --dpmac dpmac.2",
                    "Make it; a failure part way takes apart what was made.",
                ),
                (
                    "vfioctl dpaa2 destroy dprc.3",
                    "Take a container vfioctl made apart and give its objects back.",
                ),
            ],
            &["vfioctl-bind(1)", "vfioctl-qemu-args(1)", "restool(8)"],
        ),
        "vfioctl-vf" | "vfioctl-vf-list" | "vfioctl-vf-create" | "vfioctl-vf-set" => (
            &[SYSFS, JOURNAL],
            &[
                (
                    "vfioctl vf list",
                    "Every SR-IOV PF, its VFs, who holds them, their MACs.",
                ),
                (
                    "vfioctl vf create 0000:3b:00.0 4",
                    "Four VFs, on no host driver (autoprobe off); 'restore' puts the PF back.",
                ),
                (
                    "vfioctl vf set 0000:3b:00.0 1 --mac 52:54:00:12:34:56 --vlan 10",
                    "VF 1's MAC and VLAN through netlink; restoring the VF puts them back.",
                ),
            ],
            &["vfioctl-bind(1)", "vfioctl-restore(1)", "ip-link(8)"],
        ),
        _ => (&[], &[], &[]),
    };
    Extra {
        files,
        examples,
        see_also,
    }
}

/// The variables that change what a page's command prints: colour on every page (every command
/// takes --color), the width on the pages of the commands that wrap.
fn environment(page: &str) -> &'static [(&'static str, &'static str)] {
    const COLOUR: [(&str, &str); 2] = [
        (
            "NO_COLOR",
            "Set and not empty: no colour with --color auto (the default), even on a terminal.",
        ),
        (
            "CLICOLOR_FORCE",
            "Set and not empty: colour with --color auto even when the output is not a terminal \
             (NO_COLOR wins over it; --color never and --color always win over both).",
        ),
    ];
    const WITH_WIDTH: [(&str, &str); 3] = [
        COLOUR[0],
        COLOUR[1],
        (
            "COLUMNS",
            "The width groups wraps its reason and verdict lines to when --width is not given; \
             without it, the terminal's width, else 80.",
        ),
    ];
    match page {
        "vfioctl" | "vfioctl-groups" => &WITH_WIDTH,
        _ => &COLOUR,
    }
}

/// The exit codes, one (code, meaning) pair per line of the `--help` table.
pub(crate) fn exit_codes() -> Vec<(&'static str, &'static str)> {
    EXIT_CODES_HELP
        .lines()
        .skip(1)
        .filter_map(|line| line.trim().split_once("  "))
        .map(|(code, meaning)| (code, meaning.trim()))
        .collect()
}

/// Appends EXIT STATUS, FILES, EXAMPLES and SEE ALSO for `page` (`vfioctl-bind`), and `parent`,
/// `children` to SEE ALSO.
pub(crate) fn render(roff: &mut Roff, page: &str, related: &[String]) {
    let extra = extra(page);
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in exit_codes() {
        roff.control("TP", [])
            .text([bold(code)])
            .text([roman(meaning)]);
    }
    if page == "vfioctl-run" {
        roff.control("PP", []).text([roman(
            "Once QEMU has run, vfioctl run exits with QEMU's own status (its exit code, or 128 \
             plus the signal); if giving the devices back fails afterwards, it exits 1 and says \
             what QEMU's status was.",
        )]);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    for (name, what) in environment(page) {
        roff.control("TP", [])
            .text([bold(*name)])
            .text([roman(*what)]);
    }
    if !extra.files.is_empty() {
        roff.control("SH", ["FILES"]);
        for file in extra.files {
            roff.control("TP", [])
                .text([italic(file.path)])
                .text([roman(file.what)]);
        }
    }
    if !extra.examples.is_empty() {
        roff.control("SH", ["EXAMPLES"]);
        for (command, what) in extra.examples {
            roff.control("TP", [])
                .text([bold(*command)])
                .text([roman(*what)]);
        }
    }
    let mut see_also: Vec<String> = related.to_vec();
    for page in extra.see_also {
        if !see_also.iter().any(|p| p == page) {
            see_also.push((*page).to_owned());
        }
    }
    see_also.retain(|p| p != &format!("{page}(1)"));
    if !see_also.is_empty() {
        roff.control("SH", ["SEE ALSO"]);
        let last = see_also.len() - 1;
        for (i, reference) in see_also.iter().enumerate() {
            let (name, section) = reference.split_once('(').unwrap_or((reference, ""));
            let sep = if i == last { "" } else { "," };
            roff.text([bold(name), roman(format!("({section}{sep} "))]);
        }
    }
}
