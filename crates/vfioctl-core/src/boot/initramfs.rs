//! What each initramfs generator needs so that the udev rule and the vfio modules are in the
//! initramfs: the early userspace whose udev handles the devices' `add` events at cold boot.
//!
//! | generator | files | regenerate |
//! |---|---|---|
//! | initramfs-tools (Debian, Ubuntu, Proxmox) | hook `/etc/initramfs-tools/hooks/vfioctl-boot` (copies the rule, adds the modules), a block in `/etc/initramfs-tools/modules` (loads them) | `update-initramfs -u -k all` |
//! | dracut (Fedora, RHEL, openSUSE) | `/etc/dracut.conf.d/61-vfioctl-boot.conf` (`install_items+=`, `force_drivers+=`) | `dracut --regenerate-all --force` |
//! | mkinitcpio (Arch) | `/etc/mkinitcpio.conf.d/61-vfioctl-boot.conf` (`MODULES+=`, `FILES+=`) | `mkinitcpio -P` |
//!
//! Debian's own udev hook copies only a fixed list of rule files into the image, so the rule has
//! to be carried by a hook of ours; dracut and mkinitcpio take files by name.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::BOOT_MODULES;
use super::udev::RULE_PATH;

/// An initramfs generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Generator {
    /// Debian's initramfs-tools (`update-initramfs`, `mkinitramfs`).
    InitramfsTools,
    /// dracut.
    Dracut,
    /// Arch's mkinitcpio.
    Mkinitcpio,
}

impl Generator {
    /// Every generator, in the order `auto` prefers them when a host has several.
    pub const ALL: [Generator; 3] = [Self::InitramfsTools, Self::Dracut, Self::Mkinitcpio];

    /// The name users type.
    pub fn name(self) -> &'static str {
        match self {
            Self::InitramfsTools => "initramfs-tools",
            Self::Dracut => "dracut",
            Self::Mkinitcpio => "mkinitcpio",
        }
    }

    /// Paths (as on `/`) whose presence says the host uses this generator: its program first.
    pub fn markers(self) -> &'static [&'static str] {
        match self {
            Self::InitramfsTools => &["usr/sbin/update-initramfs", "sbin/update-initramfs"],
            Self::Dracut => &["usr/bin/dracut", "usr/sbin/dracut"],
            Self::Mkinitcpio => &["usr/bin/mkinitcpio"],
        }
    }

    /// The command that rebuilds every installed kernel's initramfs.
    pub fn regenerate(self) -> &'static [&'static str] {
        match self {
            Self::InitramfsTools => &["update-initramfs", "-u", "-k", "all"],
            Self::Dracut => &["dracut", "--regenerate-all", "--force"],
            Self::Mkinitcpio => &["mkinitcpio", "-P"],
        }
    }

    /// What to write for this generator.
    pub fn files(self) -> Vec<BootFile> {
        let rule = format!("/{RULE_PATH}");
        let modules = BOOT_MODULES.join(" ");
        match self {
            Self::InitramfsTools => vec![
                BootFile {
                    path: "etc/initramfs-tools/hooks/vfioctl-boot".to_owned(),
                    content: format!(
                        "#!/bin/sh\n{HEADER}\
                         # Carries vfioctl's udev rule and the vfio modules into the initramfs.\n\
                         PREREQ=\"udev\"\n\
                         prereqs() {{ echo \"$PREREQ\"; }}\n\
                         case \"$1\" in\n\
                         prereqs) prereqs; exit 0 ;;\n\
                         esac\n\
                         . /usr/share/initramfs-tools/hook-functions\n\
                         copy_file rule {rule} {rule}\n\
                         manual_add_modules {modules}\n"
                    ),
                    mode: 0o755,
                    kind: FileKind::Whole,
                },
                BootFile {
                    path: "etc/initramfs-tools/modules".to_owned(),
                    content: format!("{}\n", BOOT_MODULES.join("\n")),
                    mode: 0o644,
                    kind: FileKind::Block,
                },
            ],
            Self::Dracut => vec![BootFile {
                path: "etc/dracut.conf.d/61-vfioctl-boot.conf".to_owned(),
                content: format!(
                    "{HEADER}install_items+=\" {rule} \"\nforce_drivers+=\" {modules} \"\n"
                ),
                mode: 0o644,
                kind: FileKind::Whole,
            }],
            Self::Mkinitcpio => vec![BootFile {
                path: "etc/mkinitcpio.conf.d/61-vfioctl-boot.conf".to_owned(),
                content: format!("{HEADER}MODULES+=({modules})\nFILES+=({rule})\n"),
                mode: 0o644,
                kind: FileKind::Whole,
            }],
        }
    }
}

const HEADER: &str = "# Written by `vfioctl boot install`; `vfioctl boot remove` deletes it.\n";

impl fmt::Display for Generator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which generator `boot install` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeneratorChoice {
    /// The one the host has (the first of [`Generator::ALL`] whose program is installed).
    Auto,
    /// This one.
    Named(Generator),
    /// None: only the udev rule (the devices are taken when the real root's udev adds them).
    None,
}

/// Why a string is not a generator choice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an initramfs generator (auto, initramfs-tools, dracut, mkinitcpio, none)")]
pub struct GeneratorError(pub String);

impl FromStr for GeneratorChoice {
    type Err = GeneratorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(Self::Auto),
            "none" => Ok(Self::None),
            other => Generator::ALL
                .into_iter()
                .find(|g| g.name() == other)
                .map(Self::Named)
                .ok_or_else(|| GeneratorError(other.to_owned())),
        }
    }
}

impl GeneratorChoice {
    /// The generator to use, given which ones the host has.
    pub fn resolve(self, present: &[Generator]) -> Option<Generator> {
        match self {
            Self::Auto => Generator::ALL.into_iter().find(|g| present.contains(g)),
            Self::Named(g) => Some(g),
            Self::None => None,
        }
    }
}

/// How a file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A file of vfioctl's own: created whole, removed whole.
    Whole,
    /// Lines in a file of the host's: added between [`BLOCK_BEGIN`] and [`BLOCK_END`], and only
    /// that block is removed.
    Block,
}

/// The first line of a block vfioctl adds to a host's file.
pub const BLOCK_BEGIN: &str = "# vfioctl boot: begin (vfioctl boot remove deletes this block)";
/// The last line of that block.
pub const BLOCK_END: &str = "# vfioctl boot: end";

/// One file `boot install` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootFile {
    /// Where, relative to the root.
    pub path: String,
    /// What (for a block: the lines inside it).
    pub content: String,
    /// Its mode when created.
    pub mode: u32,
    /// Whole file or block.
    pub kind: FileKind,
}

/// `existing` with vfioctl's block (holding `lines`) in place of any earlier one, at the end.
pub fn with_block(existing: &str, lines: &str) -> String {
    let mut text = without_block(existing);
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(BLOCK_BEGIN);
    text.push('\n');
    text.push_str(lines);
    text.push_str(BLOCK_END);
    text.push('\n');
    text
}

/// `existing` without vfioctl's block; everything else stays as it was.
pub fn without_block(existing: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in existing.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        if bare == BLOCK_BEGIN {
            inside = true;
        } else if inside && bare == BLOCK_END {
            inside = false;
        } else if !inside {
            out.push_str(line);
        }
    }
    out
}

/// True when `existing` holds vfioctl's block with exactly `lines`.
pub fn has_block(existing: &str, lines: &str) -> bool {
    let wanted = format!("{BLOCK_BEGIN}\n{lines}{BLOCK_END}\n");
    existing.contains(&wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_and_resolve() {
        let auto: GeneratorChoice = "auto".parse().unwrap();
        assert_eq!(
            auto.resolve(&[Generator::Mkinitcpio, Generator::Dracut]),
            Some(Generator::Dracut)
        );
        assert_eq!(auto.resolve(&[]), None);
        assert_eq!(
            "dracut".parse::<GeneratorChoice>().unwrap().resolve(&[]),
            Some(Generator::Dracut)
        );
        assert_eq!(
            "none"
                .parse::<GeneratorChoice>()
                .unwrap()
                .resolve(&Generator::ALL),
            None
        );
        assert!("genkernel".parse::<GeneratorChoice>().is_err());
    }

    #[test]
    fn the_block_is_added_replaced_and_removed_alone() {
        let host = "# modules\nnvme\n";
        let once = with_block(host, "vfio\nvfio_pci\n");
        assert!(has_block(&once, "vfio\nvfio_pci\n"));
        let twice = with_block(&once, "vfio\n");
        assert_eq!(twice.matches(BLOCK_BEGIN).count(), 1);
        assert!(has_block(&twice, "vfio\n") && !has_block(&twice, "vfio\nvfio_pci\n"));
        assert_eq!(without_block(&twice), host);
        assert_eq!(
            with_block("nvme", "vfio\n"),
            format!("nvme\n{BLOCK_BEGIN}\nvfio\n{BLOCK_END}\n")
        );
    }

    #[test]
    fn generator_files() {
        for g in Generator::ALL {
            let files = g.files();
            let text: String = files
                .iter()
                .map(|f| format!("--- {} ({:?}, {:o})\n{}", f.path, f.kind, f.mode, f.content))
                .collect();
            assert!(!text.contains("virqfd"), "{g}: {text}");
            insta::assert_snapshot!(g.name(), text);
        }
    }
}
