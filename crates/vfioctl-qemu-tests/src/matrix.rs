//! The matrix: every case on every kernel generation and boot method of its architecture with
//! the system QEMU, plus the newer QEMU on the newest kernel (or on all, see [`NewQemu`]).

use crate::cases::{CASES, Case};
use crate::machine::{Arch, Boot, Qemu, QemuKind};
use crate::setup::Kernel;

/// One VM of the matrix.
#[derive(Debug, Clone)]
pub struct Variant {
    /// What the guest checks.
    pub case: Case,
    /// The kernel it boots.
    pub kernel: Kernel,
    /// How it boots.
    pub boot: Boot,
    /// The QEMU that runs it.
    pub qemu: Qemu,
}

impl Variant {
    /// `aarch64-switch.trixie.acpi.qemu7.2`: unique in the matrix, and the name of its run dir.
    pub fn id(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.case.id(),
            self.kernel.label,
            self.boot,
            self.qemu.label()
        )
    }
}

/// Where the newer QEMU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewQemu {
    /// Not at all.
    None,
    /// On the newest kernel generation only: what it changes does not depend on the kernel.
    Newest,
    /// On every kernel.
    All,
}

impl NewQemu {
    /// `none`, `newest` or `all` (`VFIOCTL_QEMU_NEW`); anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "newest" => Some(Self::Newest),
            "all" => Some(Self::All),
            _ => None,
        }
    }
}

/// What to run: each field is a comma-separated list; empty keeps everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Case ids (`x86_64-switch`), case names (`switch`, `nested`) or architectures.
    pub cases: String,
    /// Kernel labels (`bookworm`) or versions (`6.12.118+deb13-amd64`).
    pub kernels: String,
    /// Boot methods (`bios`, `dt`, `acpi`).
    pub boots: String,
    /// QEMU labels (`qemu7.2`, `qemu10.0`) or `system` / `new`.
    pub qemus: String,
}

fn words(list: &str) -> Vec<&str> {
    list.split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect()
}

fn keeps(list: &str, names: &[&str]) -> bool {
    let words = words(list);
    words.is_empty() || words.iter().any(|w| names.contains(w))
}

/// The cases the filter's `cases` field names.
pub fn select_cases(filter: &str) -> Vec<Case> {
    CASES
        .iter()
        .filter(|c| keeps(filter, &[&c.id(), c.name, c.arch.name()]))
        .copied()
        .collect()
}

/// Crosses the selected cases with the kernels of their architecture (`kernels(arch)`, oldest
/// first), their boot methods and the QEMU builds.
pub fn expand(
    filter: &Filter,
    kernels: &dyn Fn(Arch) -> Vec<Kernel>,
    qemus: &[Qemu],
    new_qemu: NewQemu,
) -> Vec<Variant> {
    let mut out = Vec::new();
    for case in select_cases(&filter.cases) {
        let ks = kernels(case.arch);
        for (i, kernel) in ks.iter().enumerate() {
            if case.single && i > 0 {
                continue;
            }
            if !keeps(&filter.kernels, &[&kernel.label, &kernel.kver]) {
                continue;
            }
            for &boot in case.arch.boots() {
                if !keeps(&filter.boots, &[boot.name()]) {
                    continue;
                }
                for qemu in qemus {
                    let new_only = crate::cases::NEW_QEMU_ONLY.contains(&case.name);
                    let both = crate::cases::BOTH_QEMUS.contains(&case.name);
                    let wanted = match (qemu.kind, new_qemu) {
                        (QemuKind::System, _) if new_only => false,
                        (QemuKind::New, _) if new_only || both => true,
                        (QemuKind::New, _) if case.single => false,
                        (QemuKind::System, _) => true,
                        (QemuKind::New, NewQemu::None) => false,
                        (QemuKind::New, NewQemu::Newest) => i + 1 == ks.len(),
                        (QemuKind::New, NewQemu::All) => true,
                    };
                    let kind = match qemu.kind {
                        QemuKind::System => "system",
                        QemuKind::New => "new",
                    };
                    if wanted && keeps(&filter.qemus, &[&qemu.label(), kind]) {
                        out.push(Variant {
                            case,
                            kernel: kernel.clone(),
                            boot,
                            qemu: qemu.clone(),
                        });
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn kernels(arch: Arch) -> Vec<Kernel> {
        ["bookworm", "trixie", "trixie-backports"]
            .iter()
            .map(|l| Kernel {
                label: (*l).to_owned(),
                kver: format!("{l}-{arch}"),
                modroot: PathBuf::from("/k"),
            })
            .collect()
    }

    fn qemus() -> Vec<Qemu> {
        vec![
            Qemu {
                kind: QemuKind::System,
                version: "7.2.22".to_owned(),
                root: None,
            },
            Qemu {
                kind: QemuKind::New,
                version: "10.0.2".to_owned(),
                root: Some(PathBuf::from("/q")),
            },
        ]
    }

    #[test]
    fn selects_cases_by_id_name_or_arch() {
        assert_eq!(select_cases("").len(), CASES.len());
        let aarch64 = CASES.iter().filter(|c| c.arch == Arch::Aarch64).count();
        assert_eq!(select_cases("aarch64").len(), aarch64);
        assert_eq!(select_cases("switch").len(), 2);
        // A case that reuses a topology is selected by its own name only.
        let rootports = select_cases("rootports");
        assert_eq!(rootports.len(), 2);
        assert!(rootports.iter().all(|c| c.name == "rootports"));
        assert_eq!(select_cases("nested")[0].topology, "rootports");
        assert_eq!(select_cases("x86_64-multifn, aarch64-pcibridge").len(), 2);
        assert!(select_cases("nothing").is_empty());
    }

    #[test]
    fn crosses_kernels_boots_and_qemus() {
        let filter = Filter {
            cases: "aarch64-switch".to_owned(),
            ..Filter::default()
        };
        let all = expand(&filter, &kernels, &qemus(), NewQemu::Newest);
        let ids: Vec<String> = all.iter().map(Variant::id).collect();
        // 3 kernels x 2 boots on 7.2, plus 2 boots on 10.0 with the newest kernel.
        assert_eq!(ids.len(), 8, "{ids:?}");
        assert!(ids.contains(&"aarch64-switch.bookworm.dt.qemu7.2".to_owned()));
        assert!(ids.contains(&"aarch64-switch.trixie-backports.acpi.qemu10.0".to_owned()));
        assert!(!ids.contains(&"aarch64-switch.bookworm.acpi.qemu10.0".to_owned()));
        assert_eq!(expand(&filter, &kernels, &qemus(), NewQemu::All).len(), 12);
        assert_eq!(expand(&filter, &kernels, &qemus(), NewQemu::None).len(), 6);
    }

    #[test]
    fn filters_each_dimension() {
        let filter = Filter {
            cases: "x86_64-switch".to_owned(),
            kernels: "trixie".to_owned(),
            boots: String::new(),
            qemus: "qemu7.2".to_owned(),
        };
        let v = expand(&filter, &kernels, &qemus(), NewQemu::All);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].id(), "x86_64-switch.trixie.bios.qemu7.2");
        let acpi_only = Filter {
            boots: "acpi".to_owned(),
            qemus: "system".to_owned(),
            ..Filter::default()
        };
        let v = expand(&acpi_only, &kernels, &qemus(), NewQemu::Newest);
        assert!(
            v.iter()
                .all(|v| v.case.arch == Arch::Aarch64 && v.boot == Boot::Acpi)
        );
        assert!(!v.is_empty());
    }
}
