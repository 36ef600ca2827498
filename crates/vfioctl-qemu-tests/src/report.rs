//! What a matrix run prints: the table (case x kernel x boot x QEMU, result, seconds, facts) and,
//! per case, whether the kernel formed the same groups on every variant.

use std::collections::BTreeMap;

use crate::run::CaseReport;

/// The IOMMU groups `/init` lists before the case runs, as one line that does not depend on
/// group numbering: `[00:00.0] [00:10.0 01:00.0] no group: 02:02.0`. `None` without the list.
pub fn group_layout(log: &str) -> Option<String> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut ungrouped: Vec<String> = Vec::new();
    let mut section = "";
    let mut saw_groups = false;
    for line in log.lines() {
        let line = line.trim();
        if let Some(title) = line.strip_prefix("=== ") {
            section = title;
            saw_groups |= title.starts_with("IOMMU groups");
            continue;
        }
        let short = |a: &str| a.strip_prefix("0000:").unwrap_or(a).to_owned();
        if section.starts_with("IOMMU groups") {
            if let Some((_, members)) = line.split_once(':').filter(|_| line.starts_with("GROUP")) {
                let mut m: Vec<String> = members.split_whitespace().map(short).collect();
                m.sort();
                groups.push(m);
            }
        } else if section.starts_with("PCI devices") {
            // `<addr> <vendor:device> <driver> <group>`
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [addr, _, _, "none"] = fields.as_slice() {
                ungrouped.push(short(addr));
            }
        }
    }
    if !saw_groups {
        return None;
    }
    groups.sort();
    let mut out: Vec<String> = groups
        .iter()
        .map(|g| format!("[{}]", g.join(" ")))
        .collect();
    if !ungrouped.is_empty() {
        ungrouped.sort();
        out.push(format!("no group: {}", ungrouped.join(" ")));
    }
    Some(out.join(" "))
}

/// The matrix table: `case | arch | kernel | boot | qemu | result | seconds | facts`.
pub fn render_table(reports: &[CaseReport]) -> String {
    let header = [
        "case", "arch", "kernel", "boot", "qemu", "result", "seconds", "facts",
    ]
    .map(str::to_owned);
    let rows: Vec<[String; 8]> = reports
        .iter()
        .map(|r| {
            let v = &r.variant;
            let facts: Vec<String> = r.facts.iter().map(|(k, v)| format!("{k}={v}")).collect();
            [
                v.case.name.to_owned(),
                v.case.arch.to_string(),
                v.kernel.kver.clone(),
                v.boot.to_string(),
                v.qemu.version.clone(),
                r.outcome.to_string(),
                format!("{:.1}", r.seconds),
                facts.join(" "),
            ]
        })
        .collect();
    markdown_table(&header, &rows)
}

fn markdown_table<const N: usize>(header: &[String; N], rows: &[[String; N]]) -> String {
    let mut widths = header.clone().map(|h| h.len());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; N]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(header);
    out.push_str(&format!(
        "|{}|\n",
        widths.map(|w| "-".repeat(w + 2)).join("|")
    ));
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

/// Per case: the distinct group layouts the kernels formed, each with the variants
/// (`kernel/boot/qemu`) that formed it. This is the measurement of whether grouping changes with
/// the kernel generation, the boot method or the QEMU version.
pub fn render_layouts(reports: &[CaseReport]) -> String {
    let mut by_case: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for r in reports {
        let v = &r.variant;
        let layout = r
            .layout
            .clone()
            .unwrap_or_else(|| "(no group list: the guest did not get that far)".to_owned());
        by_case
            .entry(v.case.id())
            .or_default()
            .entry(layout)
            .or_default()
            .push(format!("{}/{}/{}", v.kernel.label, v.boot, v.qemu.label()));
    }
    let mut out = String::new();
    for (case, layouts) in by_case {
        if let [(layout, variants)] = layouts.iter().collect::<Vec<_>>().as_slice() {
            out.push_str(&format!(
                "{case}: the same groups on all {} variants: {layout}\n",
                variants.len()
            ));
        } else {
            out.push_str(&format!("{case}: {} different layouts\n", layouts.len()));
            for (layout, variants) in layouts {
                out.push_str(&format!("  {layout}\n    on {}\n", variants.join(", ")));
            }
        }
    }
    out
}

/// Where `groups --predict` formed other groups than the kernel: each distinct difference with
/// the variants (`case kernel/boot/qemu`) that showed it. Empty when there is none.
pub fn render_predict_differences(reports: &[CaseReport]) -> String {
    let mut by_diff: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in reports {
        if let Some(diff) = &r.predict_diff {
            let v = &r.variant;
            by_diff.entry(diff).or_default().push(format!(
                "{} {}/{}/{}",
                v.case.id(),
                v.kernel.kver,
                v.boot,
                v.qemu.label()
            ));
        }
    }
    let mut out = String::new();
    if by_diff.is_empty() {
        return out;
    }
    let n: usize = by_diff.values().map(Vec::len).sum();
    out.push_str(&format!(
        "groups --predict differs from the kernel's groups on {n} variants:\n"
    ));
    for (diff, variants) in by_diff {
        out.push_str(&format!("  {diff}\n    on {}\n", variants.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::CASES;
    use crate::machine::{Boot, Qemu, QemuKind};
    use crate::matrix::Variant;
    use crate::run::Outcome;
    use crate::setup::Kernel;
    use std::path::PathBuf;

    const LOG: &str = "\
=== vfioctl guest: kernel 6.1.0-57-arm64 aarch64, uptime 1.2s
=== PCI devices (address vendor:device driver group):
  0000:00:10.0 0x1b36:0x000c pcieport 0
  0000:01:00.0 0x1b36:0x000e shpchp 0
  0000:02:01.0 0x8086:0x100e e1000 0
  0000:02:02.0 0x8086:0x100e e1000 none
=== IOMMU groups:
  GROUP 0: 0000:00:10.0 0000:02:01.0 0000:01:00.0 \r
=== case start, uptime 1.5s
";

    fn report(kernel: &str, boot: Boot, layout: Option<&str>) -> CaseReport {
        CaseReport {
            variant: Variant {
                case: CASES[0],
                kernel: Kernel {
                    label: kernel.to_owned(),
                    kver: format!("{kernel}-amd64"),
                    modroot: PathBuf::from("/k"),
                },
                boot,
                qemu: Qemu {
                    kind: QemuKind::System,
                    version: "7.2.22".to_owned(),
                    root: None,
                },
            },
            outcome: Outcome::Pass,
            seconds: 7.94,
            log: PathBuf::from("x"),
            facts: [("rp-acs".to_owned(), "enabled".to_owned())].into(),
            predict_diff: None,
            layout: layout.map(str::to_owned),
        }
    }

    #[test]
    fn reads_the_layout_without_group_numbers() {
        assert_eq!(
            group_layout(LOG).as_deref(),
            Some("[00:10.0 01:00.0 02:01.0] no group: 02:02.0")
        );
        assert_eq!(group_layout("=== vfioctl guest: kernel\n"), None);
    }

    #[test]
    fn renders_the_table() {
        let mut failed = report("trixie", Boot::Acpi, None);
        failed.outcome =
            Outcome::Fail("vfioctl groups --json matches /sys/kernel/iommu_groups".to_owned());
        failed.facts.clear();
        insta::assert_snapshot!(render_table(&[
            report("bookworm", Boot::Bios, None),
            failed
        ]));
    }

    #[test]
    fn tells_which_variants_formed_which_groups() {
        let same = render_layouts(&[
            report("bookworm", Boot::Dt, Some("[a] [b]")),
            report("trixie", Boot::Dt, Some("[a] [b]")),
        ]);
        let differ = render_layouts(&[
            report("bookworm", Boot::Dt, Some("[a b]")),
            report("bookworm", Boot::Acpi, Some("[a] [b]")),
            report("trixie", Boot::Acpi, Some("[a] [b]")),
            report("trixie", Boot::Dt, None),
        ]);
        insta::assert_snapshot!(format!("{same}\n{differ}"));
    }

    #[test]
    fn lists_the_prediction_differences() {
        assert_eq!(
            render_predict_differences(&[report("bookworm", Boot::Dt, None)]),
            ""
        );
        let mut a = report("bookworm", Boot::Dt, None);
        a.predict_diff = Some("kernel only []; predicted only [0000:00:00.0]".to_owned());
        let mut b = report("trixie", Boot::Acpi, None);
        b.predict_diff = a.predict_diff.clone();
        let mut c = report("trixie", Boot::Dt, None);
        c.predict_diff = Some(
            "kernel only [0000:01:00.0 0000:01:00.1]; predicted only [0000:01:00.0] [0000:01:00.1]"
                .to_owned(),
        );
        insta::assert_snapshot!(render_predict_differences(&[a, b, c]));
    }
}
