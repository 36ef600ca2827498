//! Disks: the `-drive` options, and the combinations QEMU refuses, so `vm check` refuses them
//! first. The rules are QEMU 7.2's, tried on `q35` and `virt`: `-drive if=` takes only the
//! interfaces of `blockdev.c`'s `if_name[]`; a machine without a controller for an interface
//! fails with "machine type does not support if=..."; an IDE hard disk cannot be read-only
//! ("Block node is read-only"), an IDE CD-ROM always is.

use serde::{Deserialize, Serialize};

use crate::render::qemu::Machine;

/// A disk image given to the guest with `-drive`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// The image file.
    pub file: String,
    /// Its format (`raw`, `qcow2`); named, never probed, because probing a raw image lets the
    /// guest turn it into something else.
    #[serde(default = "default_format")]
    pub format: String,
    /// The interface (`virtio`, `ide`, `none`, ...).
    #[serde(default = "default_interface")]
    pub interface: String,
    /// `disk` or `cdrom` (`media=`).
    #[serde(default, skip_serializing_if = "Media::is_disk")]
    pub media: Media,
    /// Read-only.
    #[serde(default)]
    pub readonly: bool,
}

/// What the guest sees: a disk, or a CD-ROM drive (read-only by nature).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Media {
    /// A disk.
    #[default]
    Disk,
    /// A CD-ROM.
    Cdrom,
}

impl Media {
    fn is_disk(&self) -> bool {
        *self == Self::Disk
    }
}

fn default_format() -> String {
    "raw".to_owned()
}

fn default_interface() -> String {
    "virtio".to_owned()
}

/// The interfaces `-drive if=` takes (QEMU's `if_name[]`).
const INTERFACES: [&str; 9] = [
    "none", "ide", "scsi", "floppy", "pflash", "mtd", "sd", "virtio", "xen",
];

/// The interfaces a machine has no controller for.
fn unsupported(machine: Machine) -> &'static [&'static str] {
    match machine {
        Machine::Q35 => &["scsi", "sd", "mtd", "xen"],
        Machine::Virt => &["ide", "scsi", "floppy", "sd", "mtd", "xen"],
    }
}

impl Disk {
    /// Why QEMU would refuse this disk on `machine`, with what to write instead.
    pub fn rejected_by_qemu(&self, machine: Machine) -> Option<String> {
        let interface = self.interface.as_str();
        if !INTERFACES.contains(&interface) {
            return Some(format!(
                "disk {}: QEMU has no interface {interface:?} (it takes {})",
                self.file,
                INTERFACES.join(", ")
            ));
        }
        if unsupported(machine).contains(&interface) {
            let instead = if interface == "scsi" {
                "use interface = \"virtio\", or a virtio-scsi controller in extra_args with \
                 interface = \"none\""
            } else {
                "use interface = \"virtio\""
            };
            return Some(format!(
                "disk {}: the {machine} machine has no {interface} controller, so QEMU refuses \
                 if={interface}; {instead}",
                self.file
            ));
        }
        if interface == "ide" && self.readonly && self.media == Media::Disk {
            return Some(format!(
                "disk {}: QEMU refuses a read-only IDE hard disk; for an ISO image write \
                 media = \"cdrom\" (read-only by nature), or drop readonly",
                self.file
            ));
        }
        None
    }

    /// The `-drive` value, with the file's commas escaped.
    pub fn drive(&self) -> String {
        let mut drive = format!(
            "file={},format={},if={}",
            super::qemu_escape(&self.file),
            self.format,
            self.interface
        );
        if self.media == Media::Cdrom {
            drive.push_str(",media=cdrom");
        }
        if self.readonly {
            drive.push_str(",readonly=on");
        }
        drive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(interface: &str, media: Media, readonly: bool) -> Disk {
        Disk {
            file: "/vm/a.img".to_owned(),
            format: "raw".to_owned(),
            interface: interface.to_owned(),
            media,
            readonly,
        }
    }

    #[test]
    fn what_qemu_accepts_on_each_machine() {
        // (interface, media, readonly, accepted on q35, accepted on virt), as QEMU 7.2 answered.
        let table = [
            ("virtio", Media::Disk, false, true, true),
            ("virtio", Media::Disk, true, true, true),
            ("ide", Media::Disk, false, true, false),
            ("ide", Media::Disk, true, false, false),
            ("ide", Media::Cdrom, true, true, false),
            ("scsi", Media::Disk, false, false, false),
            ("floppy", Media::Disk, false, true, false),
            ("sd", Media::Disk, false, false, false),
            ("mtd", Media::Disk, false, false, false),
            ("xen", Media::Disk, false, false, false),
            ("pflash", Media::Disk, false, true, true),
            ("none", Media::Disk, false, true, true),
            ("sata", Media::Disk, false, false, false),
        ];
        for (interface, media, readonly, q35, virt) in table {
            let d = disk(interface, media, readonly);
            assert_eq!(
                d.rejected_by_qemu(Machine::Q35).is_none(),
                q35,
                "{interface} on q35"
            );
            assert_eq!(
                d.rejected_by_qemu(Machine::Virt).is_none(),
                virt,
                "{interface} on virt"
            );
        }
    }

    #[test]
    fn refusals_say_what_to_write() {
        let e = disk("ide", Media::Disk, true)
            .rejected_by_qemu(Machine::Q35)
            .expect("refused");
        assert_eq!(
            e,
            "disk /vm/a.img: QEMU refuses a read-only IDE hard disk; for an ISO image write \
             media = \"cdrom\" (read-only by nature), or drop readonly"
        );
        let e = disk("ide", Media::Disk, false)
            .rejected_by_qemu(Machine::Virt)
            .expect("refused");
        assert!(e.contains("the virt machine has no ide controller"), "{e}");
    }

    #[test]
    fn a_cdrom_renders_its_media() {
        let d = Disk {
            file: "/iso/a,b.iso".to_owned(),
            ..disk("ide", Media::Cdrom, true)
        };
        assert_eq!(
            d.drive(),
            "file=/iso/a,,b.iso,format=raw,if=ide,media=cdrom,readonly=on"
        );
    }
}
