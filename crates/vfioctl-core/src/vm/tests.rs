//! Definitions parsed, checked against simulated hosts, and rendered.

use super::*;
use crate::fslmc::DprcName;
use crate::render::qemu::Machine;
use crate::render::qemu::shell_quote;
use crate::render::tests::{desktop, ten64};
use pretty_assertions::assert_eq;

const TEN64: &str = r#"version = 1
description = "Ten64: Wi-Fi and Coral TPU, plus a DPAA2 container"
boot = true
user = "qemu"
dprc = ["dprc.2"]

[[device]]
address = "0001:03:00.0"
id = "168c:003e"

[[device]]
address = "0001:04:00.0"
id = "1ac1:089a"

[qemu]
binary = "/usr/bin/qemu-system-aarch64"
machine = "virt"
accel = "kvm"
cpu = "host"
memory = "1G"
cpus = 2
kernel = "/var/lib/vfioctl/ten64/Image"
initrd = "/var/lib/vfioctl/ten64/initrd.img"
append = "console=ttyAMA0 root=/dev/vda2"
disks = [{ file = "/var/lib/vfioctl/ten64/disk,1.qcow2", format = "qcow2" }]
extra_args = ["-nographic", "-serial", "mon:stdio"]
"#;

const DESKTOP: &str = r#"version = 1
description = "Gaming VM: RTX 4090 and its HDMI audio"

[[device]]
address = "0000:01:00.0"
id = "10de:2684"

[[device]]
address = "0000:01:00.1"
id = "10de:22ba"

[qemu]
machine = "q35"
accel = "kvm"
cpu = "host"
memory = "16G"
cpus = 8
firmware = "/usr/share/OVMF/OVMF_CODE.fd"
disks = [
  { file = "/var/lib/vms/win11.qcow2", format = "qcow2" },
  { file = "/var/lib/vms/virtio-win.iso", interface = "ide", media = "cdrom", readonly = true },
]
extra_args = ["-vga", "none", "-display", "none"]
"#;

fn name(s: &str) -> VmName {
    s.parse().unwrap()
}

/// The binary, then one option and its value per line, each quoted for a shell when needed.
fn lines(argv: &[String]) -> String {
    let argv: Vec<String> = argv.iter().map(|a| shell_quote(a).into_owned()).collect();
    let mut out = vec![argv[0].clone()];
    let mut i = 1;
    while i < argv.len() {
        match argv.get(i + 1) {
            Some(next) if argv[i].starts_with('-') && !next.starts_with('-') => {
                out.push(format!("{} {next}", argv[i]));
                i += 2;
            }
            _ => {
                out.push(argv[i].clone());
                i += 1;
            }
        }
    }
    out.join("\n")
}

#[test]
fn ten64_definition_parses() {
    let def = VmDefinition::parse(TEN64).unwrap();
    assert!(def.boot);
    assert_eq!(def.user.as_deref(), Some("qemu"));
    assert_eq!(def.dprc, [DprcName::new(2)]);
    assert_eq!(def.devices.len(), 2);
    assert_eq!(def.devices[0].location.map(|l| l.line), Some(7));
    assert_eq!(def.qemu.as_ref().unwrap().machine, Machine::Virt);
}

#[test]
fn ten64_command_line() {
    let def = VmDefinition::parse(TEN64).unwrap();
    let argv = command_line(&name("ten64-wifi-tpu"), &def, &ten64()).unwrap();
    insta::assert_snapshot!(lines(&argv));
}

#[test]
fn desktop_command_line() {
    let def = VmDefinition::parse(DESKTOP).unwrap();
    let argv = command_line(&name("desktop"), &def, &desktop()).unwrap();
    insta::assert_snapshot!(lines(&argv));
}

#[test]
fn unlisted_group_members_are_passed_and_reported() {
    let text = TEN64.replace(
        "[[device]]\naddress = \"0001:04:00.0\"\nid = \"1ac1:089a\"\n",
        "",
    );
    let def = VmDefinition::parse(&text).unwrap();
    let coverage = group_coverage(&def, &ten64());
    assert_eq!(coverage.len(), 1);
    assert_eq!(coverage[0].group, 3);
    assert_eq!(coverage[0].unlisted, ["0001:04:00.0".parse().unwrap()]);
    let request = passthrough(&def, &ten64());
    assert_eq!(request.pci.len(), 2);
}

#[test]
fn a_different_device_at_the_address_is_drift_naming_both() {
    let text = TEN64.replace("id = \"168c:003e\"", "id = \"8086:2723\"");
    let def = VmDefinition::parse(&text).unwrap();
    let checks = check_devices(&def, &ten64());
    assert_eq!(checks[0].state.word(), "drifted");
    assert_eq!(
        checks[0].drift_message().unwrap(),
        "0001:03:00.0 should be 8086:2723 but is 168c:003e"
    );
    assert!(checks[1].state.identity_ok());
}

#[test]
fn a_moved_device_is_found_elsewhere() {
    let text = TEN64.replace("address = \"0001:04:00.0\"", "address = \"0001:05:00.0\"");
    let def = VmDefinition::parse(&text).unwrap();
    let checks = check_devices(&def, &ten64());
    assert_eq!(
        checks[1].drift_message().unwrap(),
        "0001:05:00.0 should be 1ac1:089a but there is no device at that address; a \
         1ac1:089a is now at 0001:04:00.0"
    );
}

#[test]
fn a_subsystem_mismatch_is_drift() {
    let text = TEN64.replace(
        "id = \"168c:003e\"",
        "id = \"168c:003e\"\nsubsystem = \"1a56:143a\"",
    );
    let def = VmDefinition::parse(&text).unwrap();
    let checks = check_devices(&def, &ten64());
    assert_eq!(
        checks[0].drift_message().unwrap(),
        "0001:03:00.0 should be 168c:003e (subsystem 1a56:143a) but is 168c:003e"
    );
}

#[test]
fn bound_and_not_bound() {
    let def = VmDefinition::parse(TEN64).unwrap();
    let checks = check_devices(&def, &ten64());
    assert_eq!(
        checks[0].state,
        DeviceState::NotBound {
            driver: Some("ath10k_pci".into())
        }
    );
}

fn error(text: &str) -> String {
    VmDefinition::parse(text)
        .unwrap_err()
        .render("/etc/vfioctl/vms/t.toml")
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let text = "version = 1\n[[device]]\naddress = \"0001:03:00.0\n";
    let e = error(text);
    assert!(e.starts_with("/etc/vfioctl/vms/t.toml:3:"), "{e}");
}

#[test]
fn unknown_keys_are_refused_where_they_are() {
    let text = TEN64.replace("cpus = 2", "cpus = 2\nmemroy = \"2G\"");
    let e = error(&text);
    assert!(e.starts_with("/etc/vfioctl/vms/t.toml:22:1: "), "{e}");
    assert!(e.contains("memroy"), "{e}");
}

#[test]
fn bad_values_are_refused_where_they_are() {
    let e = error(&TEN64.replace("\"0001:04:00.0\"", "\"0001:04:00\""));
    assert!(e.starts_with("/etc/vfioctl/vms/t.toml:12:11: "), "{e}");
    assert!(e.contains("is not a PCI address"), "{e}");
    let e = error(&TEN64.replace("\"1ac1:089a\"", "\"1ac1\""));
    assert!(e.starts_with("/etc/vfioctl/vms/t.toml:13:6: "), "{e}");
    let e = error(&TEN64.replace("\"dprc.2\"", "\"dprc.02\""));
    assert!(e.starts_with("/etc/vfioctl/vms/t.toml:5:"), "{e}");
    let e = error(&TEN64.replace("\"virt\"", "\"pc\""));
    assert!(e.contains("'pc' is not a supported machine type"), "{e}");
    let e = error(&TEN64.replace("\"1G\"", "\"lots\""));
    assert!(e.contains("is not a memory size"), "{e}");
}

#[test]
fn semantic_errors_carry_lines_too() {
    let e = error(&TEN64.replace("version = 1", "version = 2"));
    assert_eq!(
        e,
        "/etc/vfioctl/vms/t.toml:1:11: version 2 is not supported: this vfioctl reads version 1"
    );
    let e = error(&TEN64.replace("0001:04:00.0", "0001:03:00.0"));
    assert_eq!(
        e,
        "/etc/vfioctl/vms/t.toml:11:1: device 0001:03:00.0 is listed twice (first on line 7)"
    );
    let e = error(&TEN64.replace("machine = \"virt\"", "machine = \"q35\""));
    assert!(e.contains("dprc.2 is a DPAA2 container"), "{e}");
    let e = error(&TEN64.replace("user = \"qemu\"", "user = \"qe mu\""));
    assert!(e.starts_with("/etc/vfioctl/vms/t.toml:4:8: "), "{e}");
    let e = error("version = 1\n");
    assert!(e.contains("nothing to pass through"), "{e}");
    let e = error(&TEN64.replace("\"-nographic\"", "\"-nographic\\u0000\""));
    assert!(e.contains("NUL"), "{e}");
}

#[test]
fn vm_names_are_never_paths() {
    for good in ["ten64", "win-11", "a.b_c", "VM1"] {
        assert!(good.parse::<VmName>().is_ok(), "{good}");
    }
    for bad in ["", ".", "..", ".hidden", "-x", "a/b", "../etc", "a b", "ä"] {
        assert!(bad.parse::<VmName>().is_err(), "{bad}");
    }
}

#[test]
fn location_counts_characters() {
    assert_eq!(Location::of("ab\ncd", 4), Location { line: 2, column: 2 });
    assert_eq!(Location::of("äb", 2), Location { line: 1, column: 2 });
    assert_eq!(Location::of("", 9), Location { line: 1, column: 1 });
}

#[test]
fn commas_in_disk_files_are_escaped() {
    let def = VmDefinition::parse(TEN64).unwrap();
    let argv = command_line(&name("t"), &def, &ten64()).unwrap();
    assert!(
        argv.contains(
            &"file=/var/lib/vfioctl/ten64/disk,,1.qcow2,format=qcow2,if=virtio".to_owned()
        )
    );
}

#[test]
fn no_qemu_table_cannot_render() {
    let def = VmDefinition::parse(DESKTOP.split("[qemu]").next().unwrap()).unwrap();
    assert!(matches!(
        command_line(&name("d"), &def, &desktop()),
        Err(CommandLineError::NoQemu)
    ));
}

#[test]
fn two_vms_claiming_one_group_are_found() {
    let a = VmDefinition::parse(TEN64).unwrap();
    let text = TEN64.replace(
        "[[device]]\naddress = \"0001:03:00.0\"\nid = \"168c:003e\"\n",
        "",
    );
    let b = VmDefinition::parse(&text).unwrap();
    let found = claims(&[(name("b"), &b), (name("a"), &a)], &ten64());
    let words: Vec<String> = found
        .iter()
        .map(|c| format!("{} {} {}", c.first, c.second, c.what))
        .collect();
    assert_eq!(words, ["a b IOMMU group 3", "a b dprc.2"]);
}

#[test]
fn the_shipped_example_parses_and_renders() {
    let text = include_str!("../../../../packaging/examples/ten64-wifi-tpu.toml");
    let def = VmDefinition::parse(text).unwrap();
    assert!(def.boot);
    assert_eq!(def.dprc, [DprcName::new(2)]);
    let argv = command_line(&name("ten64-wifi-tpu"), &def, &ten64()).unwrap();
    assert_eq!(argv[0], "/opt/nxp-qemu/bin/qemu-system-aarch64");
    assert!(argv.contains(&"vfio-fsl-mc,host=dprc.2".to_owned()));
}

proptest::proptest! {
    #[test]
    fn parsing_arbitrary_text_never_panics(text in "(?s).{0,200}") {
        let _ = VmDefinition::parse(&text);
    }
}

#[test]
fn a_disk_qemu_refuses_is_refused_in_its_qemu_table() {
    let text = DESKTOP.replace("media = \"cdrom\", ", "");
    let e = VmDefinition::parse(&text)
        .expect_err("read-only IDE disk")
        .render("/d.toml");
    // The [qemu] table, where the disks are.
    assert!(e.starts_with("/d.toml:12:1: "), "{e}");
    assert!(e.contains("QEMU refuses a read-only IDE hard disk"), "{e}");
}
