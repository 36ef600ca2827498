//! Real machines' captures (`../shared/real-hosts`, published by their owners; never copied into
//! this repository): imported into simulated trees with the IOMMU off, `groups --predict` must
//! give the groups the machine's kernel made, or the test names why it cannot.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use common::json;
use serde_json::Value;
use vfioctl_sim::lspci::{ImportOptions, Imported, builder, import, parse_lspci};
use vfioctl_sim::{Arch, SimTree};

fn hosts_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/real-hosts");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "skipped: {} is absent (the captures live beside the repository)",
            dir.display()
        );
        None
    }
}

fn load(dir: &std::path::Path, file: &str) -> Imported {
    let text = std::fs::read_to_string(dir.join(file)).expect("capture");
    import(&parse_lspci(&text).unwrap_or_else(|e| panic!("{file}: {e}")))
}

fn options(arch: Arch, release: &str, device_tree: bool, iommu: Option<&str>) -> ImportOptions {
    ImportOptions {
        arch,
        release: release.to_owned(),
        device_tree,
        iommu: iommu.map(str::to_owned),
    }
}

fn build(imported: &Imported, o: &ImportOptions) -> SimTree {
    common::tree(builder(imported, o))
}

/// The capture's groups, as sets of addresses.
fn kernel_partition(imported: &Imported) -> BTreeSet<BTreeSet<String>> {
    let mut by: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
    for (a, g) in &imported.groups {
        if let Some(g) = g {
            by.entry(*g).or_default().insert(a.to_string());
        }
    }
    by.into_values().collect()
}

/// The predicted groups, restricted to the devices the capture shows a group for.
fn predicted_partition(doc: &Value, imported: &Imported) -> BTreeSet<BTreeSet<String>> {
    let grouped: BTreeSet<String> = imported
        .groups
        .iter()
        .filter(|(_, g)| g.is_some())
        .map(|(a, _)| a.to_string())
        .collect();
    common::group_sets(&doc["groups"])
        .into_iter()
        .map(|g| {
            g.intersection(&grouped)
                .cloned()
                .collect::<BTreeSet<String>>()
        })
        .filter(|g| !g.is_empty())
        .collect()
}

fn facts_of<'a>(doc: &'a Value, address: &str) -> Vec<&'a Value> {
    doc["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter(|g| {
            g["devices"]
                .as_array()
                .expect("devices")
                .iter()
                .any(|d| d == address)
        })
        .flat_map(|g| g["facts"].as_array().expect("facts").iter())
        .collect()
}

fn check_equal(file: &str, o: &ImportOptions, kernel: &str) -> (Imported, Value) {
    let Some(dir) = hosts_dir() else {
        return (
            Imported {
                devices: Vec::new(),
                groups: BTreeMap::new(),
                inferred: Vec::new(),
            },
            Value::Null,
        );
    };
    let imported = load(&dir, file);
    let t = build(&imported, o);
    let doc = json(t.root(), &["groups", "--predict", "--kernel", kernel], 0);
    assert_eq!(
        predicted_partition(&doc, &imported),
        kernel_partition(&imported),
        "{file}: inferred {:#?}",
        imported.inferred
    );
    (imported, doc)
}

#[test]
fn imac_comet_lake_titan_ridge_prediction_equals_its_kernels_groups() {
    let o = options(Arch::X86_64, "6.12.0", false, None);
    let (imported, doc) = check_equal(
        "apple-imac20-cometlake-z490-titanridge/lspci-PP-vvvnn.txt",
        &o,
        "6.12",
    );
    if doc.is_null() {
        return;
    }
    // The CPU root port without ACS takes the whole Navi switch, GPU and audio.
    let navi = facts_of(&doc, "0000:03:00.0");
    assert!(
        navi.iter()
            .any(|f| f["kind"] == "acs_missing" && f["device"] == "0000:00:01.0")
    );
    // Then the kernel's groups (IOMMU on) get the same reasons from `groups`.
    let on = build(
        &imported,
        &options(Arch::X86_64, "6.12.0", false, Some("dmar0")),
    );
    let groups = json(on.root(), &["groups"], 0);
    let g1 = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == 1)
        .unwrap();
    assert_eq!(g1["reason"]["kind"], "acs_missing_upstream");
    assert_eq!(g1["reason"]["device"], "0000:00:01.0");
    let g11 = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == 11)
        .unwrap();
    assert_eq!(
        g11["reason"]["kind"], "multifunction_without_acs",
        "Apple T2: {g11:#}"
    );
    let predicted = json(on.root(), &["groups", "--predict"], 0);
    assert_eq!(predicted["differences"], serde_json::json!([]));
}

#[test]
fn dell_comet_lake_u_prediction_equals_its_kernels_groups() {
    let o = options(Arch::X86_64, "5.10.0", false, None);
    let (_, doc) = check_equal("dell-laptop-cometlake-u-pch-lp/lspci-vv.txt", &o, "5.10");
    if doc.is_null() {
        return;
    }
    // The CNVi WiFi is alone only through the Intel RCiEP quirk, beside its multifunction slot.
    let wifi = facts_of(&doc, "0000:00:14.3");
    assert!(wifi.iter().any(|f| f["kind"] == "acs_quirk"), "{wifi:#?}");
}

#[test]
fn ls1028a_empty_acs_capabilities_isolate_every_function() {
    let o = options(Arch::Aarch64, "6.5.0", true, None);
    let (_, doc) = check_equal("nxp-ls1028a-enetc-rciep/lspci-vvv.txt", &o, "6.5");
    if doc.is_null() {
        return;
    }
    let f = facts_of(&doc, "0000:00:00.2");
    assert!(f.iter().any(|f| f["kind"] == "acs_empty"), "{f:#?}");
}

/// The X99 captures hold config space only for three root ports, so a whole-machine prediction
/// is out of reach (the rest has no port types or bus ranges). What they do prove: the PCH root
/// port has no ACS capability, the 5.8 kernel isolated it through the PCH quirk and 5.9 did not.
#[test]
fn x99_pch_root_port_isolates_on_5_8_and_not_on_5_9() {
    let Some(dir) = hosts_dir() else { return };
    let base = dir.join("intel-x99-i7-5930k-asmedia-asm1187e");
    let text: String = [
        "lspci-xxxx-00_01.0.txt",
        "lspci-xxxx-00_01.1.txt",
        "lspci-xxxx-00_1c.4.txt",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(base.join(f)).expect("dump"))
    .collect::<Vec<_>>()
    .join("\n");
    let imported = import(&parse_lspci(&text).expect("dumps parse"));
    let t = build(&imported, &options(Arch::X86_64, "5.8.0", false, None));
    let kind_for = |kernel: &str| -> String {
        let doc = json(t.root(), &["groups", "--predict", "--kernel", kernel], 0);
        facts_of(&doc, "0000:00:1c.4")
            .iter()
            .find(|f| f["device"] == "0000:00:1c.4")
            .map(|f| f["kind"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(kind_for("5.8"), "acs_quirk");
    assert_eq!(kind_for("5.9"), "acs_quirk_not_isolating");
    // The kernels' own listings agree: 00:1c.4 is apart from the other PCH ports on 5.8 and
    // shares one group with all of them on 5.9.
    let group_with = |file: &str| -> BTreeSet<String> {
        let listing = std::fs::read_to_string(base.join(file)).expect("listing");
        let mut current = String::new();
        let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in listing.lines() {
            if let Some(rest) = line.strip_prefix("IOMMU Group ") {
                current = rest.trim_end_matches(':').to_owned();
            } else if let Some(addr) = line.split_whitespace().next()
                && addr.starts_with("00:1c.")
            {
                groups
                    .entry(current.clone())
                    .or_default()
                    .insert(addr.to_owned());
            }
        }
        groups
            .into_values()
            .find(|g| g.contains("00:1c.4"))
            .unwrap_or_default()
    };
    assert_eq!(group_with("groups-kernel5.8-correct.txt").len(), 1);
    assert_eq!(group_with("groups-kernel5.9-regressed.txt").len(), 4);
}

/// No groups were captured for these two machines: the prediction is "expected", checked only
/// for the facts the kernel sources say it must rest on.
#[test]
fn machines_without_groups_get_expected_predictions() {
    let Some(dir) = hosts_dir() else { return };
    let lynx = load(
        &dir,
        "_no-groups_huananzhi-x99-qd4-lynxpoint-lspci-nnvvvxxxx/lspci.log",
    );
    let t = build(&lynx, &options(Arch::X86_64, "6.1.0", false, None));
    let doc = json(t.root(), &["groups", "--predict"], 0);
    let pch = facts_of(&doc, "0000:00:1c.0");
    assert!(
        pch.iter()
            .any(|f| f["kind"] == "acs_quirk"
                && f["text"].as_str().unwrap().contains("Lynx Point-H")),
        "{pch:#?}"
    );
    let n1sdp = load(
        &dir,
        "_no-groups_arm-n1sdp-plx8749-lspci-vvxxx/lspci_n1sdp.txt",
    );
    let t = build(&n1sdp, &options(Arch::Aarch64, "5.5.0", false, None));
    let doc = json(t.root(), &["groups", "--predict"], 0);
    let marvell = n1sdp
        .devices
        .iter()
        .find(|d| d.id.vendor == 0x1b4b && d.id.device == 0x9170)
        .expect("Marvell 88SE9170 in the capture");
    let facts = facts_of(&doc, &marvell.address.to_string());
    assert!(
        facts.iter().any(|f| f["kind"] == "dma_alias_quirk"
            && f["text"]
                .as_str()
                .unwrap()
                .contains("Marvell 88SE9170 issues DMA as function 1")),
        "{facts:#?}"
    );
}

#[test]
fn captures_cut_short_or_edited_get_a_line_numbered_error() {
    let Some(dir) = hosts_dir() else { return };
    let text = std::fs::read_to_string(
        dir.join("apple-imac20-cometlake-z490-titanridge/lspci-PP-vvvnn.txt"),
    )
    .expect("capture");
    let cut = text.replace("Express (v2) Root Port (Slot+)", "Express (v2) Root Po");
    let e = parse_lspci(&cut).expect_err("a cut port type");
    assert!(e.to_string().starts_with("line "), "{e}");
    let edited = text.replacen("ACSCap:\tSrcValid+", "ACSCap:\tSrcValid?", 1);
    assert!(parse_lspci(&edited).is_err());
}

/// A capture that is only a kernel log: enumeration, bus ranges and groups, no capabilities.
fn load_dmesg(dir: &std::path::Path, file: &str) -> Imported {
    let text = std::fs::read_to_string(dir.join(file)).expect("capture");
    import(&vfioctl_sim::lspci::parse_dmesg(&text).unwrap_or_else(|e| panic!("{file}: {e}")))
}

/// The one thing a kernel log cannot show, ACS, as a stated hypothesis: every PCIe port and
/// multifunction PCIe endpoint has ACS (SV RR CR UF, which the kernel enables at boot) except the
/// devices `without` names.
fn with_acs_except(imported: &Imported, without: &[(u16, u16)]) -> Imported {
    use vfioctl_sim::spec::{AcsSpec, PciKind};
    let mut out = imported.clone();
    for d in &mut out.devices {
        let port = matches!(
            d.kind,
            PciKind::RootPort | PciKind::Downstream | PciKind::Upstream
        );
        let endpoint = matches!(d.kind, PciKind::Endpoint) && d.multifunction;
        if (port || endpoint) && !without.contains(&(d.id.vendor, d.id.device)) {
            d.acs = Some(AcsSpec {
                capability: 0x001f,
                control: Some(0),
            });
        }
    }
    out
}

/// Predicted and real groups of a log-only capture, with and without the ACS hypothesis.
fn dmesg_partitions(
    imported: &Imported,
    hypothesis: &Imported,
    o: &ImportOptions,
    kernel: &str,
) -> [BTreeSet<BTreeSet<String>>; 3] {
    let as_captured = build(imported, o);
    let plain = json(
        as_captured.root(),
        &["groups", "--predict", "--kernel", kernel],
        0,
    );
    let t = build(hypothesis, o);
    let doc = json(t.root(), &["groups", "--predict", "--kernel", kernel], 0);
    [
        kernel_partition(imported),
        predicted_partition(&plain, imported),
        predicted_partition(&doc, imported),
    ]
}

/// The AMD AM5 board (two daisy-chained Promontory 21 chipset switches, a USB4 switch) was
/// captured as a kernel log only, so its ACS is unknown: the named reason the prediction cannot
/// be checked from the capture alone. Taking ACS as absent merges far more than the kernel did;
/// the kernel's 67 groups are exactly the prediction under one hypothesis, that the chipset's
/// downstream ports (Promontory 21 `1022:43f5`, ASMedia ASM4242 `1b21:2423`) have no ACS and
/// every other port and multifunction endpoint has it.
#[test]
fn am5_log_only_capture_matches_under_its_acs_hypothesis() {
    let Some(dir) = hosts_dir() else { return };
    let imported = load_dmesg(
        &dir,
        "amd-am5-x670e-promontory21-dmesg/pci-enumeration-and-groups-from-dmesg.txt",
    );
    assert_eq!(imported.groups.values().flatten().count(), 67);
    assert!(
        imported.inferred.iter().any(|i| i.contains("ACS unknown")),
        "{:#?}",
        imported.inferred
    );
    let hypothesis = with_acs_except(&imported, &[(0x1022, 0x43f5), (0x1b21, 0x2423)]);
    let o = options(Arch::X86_64, "6.17.7", false, None);
    let [kernel, plain, predicted] = dmesg_partitions(&imported, &hypothesis, &o, "6.17");
    assert_ne!(plain, kernel, "without ACS data the prediction merges more");
    assert!(plain.len() < kernel.len());
    assert_eq!(predicted, kernel);
}

/// The ADLINK Ampere Altra (ACPI, SMMUv3, kernel 6.18) was captured as a kernel log only. Its
/// 29 groups are the prediction under the hypothesis that every port and multifunction endpoint
/// has ACS; what the log does prove without it: the ASPEED AST1150 bridge aliases its VGA on
/// 6.18 (its no-alias quirk is newer), and the driverless host bridges have groups (6.15 and
/// later probe every function).
#[test]
fn ampere_altra_log_only_capture_matches_under_its_acs_hypothesis() {
    let Some(dir) = hosts_dir() else { return };
    let imported = load_dmesg(
        &dir,
        "adlink-ava-ampere-altra-dmesg/pci-enumeration-and-groups-from-dmesg.txt",
    );
    assert_eq!(imported.groups.values().flatten().count(), 29);
    let hypothesis = with_acs_except(&imported, &[]);
    let o = options(Arch::Aarch64, "6.18.0", false, None);
    let [kernel, plain, predicted] = dmesg_partitions(&imported, &hypothesis, &o, "6.18");
    assert_ne!(plain, kernel);
    assert_eq!(predicted, kernel);
    let aspeed: BTreeSet<String> = ["0004:01:00.0", "0004:02:00.0"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert!(kernel.contains(&aspeed), "{kernel:#?}");
}

#[test]
fn kernel_logs_cut_short_or_edited_get_a_line_numbered_error() {
    let Some(dir) = hosts_dir() else { return };
    let text = std::fs::read_to_string(
        dir.join("adlink-ava-ampere-altra-dmesg/pci-enumeration-and-groups-from-dmesg.txt"),
    )
    .expect("capture");
    let edited = text.replacen("PCIe Switch Upstream Port", "PCIe Switch Upstream", 1);
    let e = vfioctl_sim::lspci::parse_dmesg(&edited).expect_err("an edited port type");
    assert!(e.to_string().starts_with("line "), "{e}");
    // Cut after the first groups: a function with a group lost its enumeration line.
    let cut: String = text
        .lines()
        .filter(|l| !l.contains("000d:03:00.1: [1002"))
        .map(|l| format!("{l}\n"))
        .collect();
    let e = vfioctl_sim::lspci::parse_dmesg(&cut).expect_err("a group without its function");
    assert!(e.to_string().contains("000d:03:00.1"), "{e}");
}
