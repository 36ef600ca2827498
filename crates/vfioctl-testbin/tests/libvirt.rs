//! `libvirt-xml` on a simulated desktop: one element per file for `virsh attach-device`, the
//! guest address that keeps the GPU and its audio in one slot, and libvirt's own schema.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::fs;
use std::process::Command;

use vfioctl_sim::topology::x86_desktop;

fn vfioctl(root: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vfioctl-testbin"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

/// Validates `hostdevs` inside a minimal q35 domain with libvirt's RNG schema, when
/// `virt-xml-validate` (Debian: libvirt-clients, libxml2-utils) is installed.
fn validate_in_domain(hostdevs: &str) {
    let dir = tempfile::tempdir().unwrap();
    let domain = dir.path().join("domain.xml");
    fs::write(
        &domain,
        format!(
            "<domain type=\"kvm\"><name>t</name><memory>1048576</memory>\
             <os><type arch=\"x86_64\" machine=\"q35\">hvm</type></os>\
             <devices>{hostdevs}</devices></domain>\n"
        ),
    )
    .unwrap();
    match Command::new("virt-xml-validate")
        .arg(&domain)
        .arg("domain")
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "libvirt's schema rejects:\n{hostdevs}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => eprintln!("virt-xml-validate is not installed: schema check skipped"),
    }
}

#[test]
fn one_file_per_element_with_the_multifunction_layout_and_a_valid_schema() {
    let tree = x86_desktop().build_temp().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let dir = out_dir.path().join("hostdevs");
    let out = vfioctl(
        tree.root(),
        &[
            "libvirt-xml",
            "--guest-bus",
            "0x03",
            "--out-dir",
            dir.to_str().unwrap(),
            "0000:01:00.0",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8(out.stdout).unwrap();
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    // The GPU's whole group: its display and audio functions.
    assert_eq!(
        names,
        ["hostdev-0000-01-00.0.xml", "hostdev-0000-01-00.1.xml"]
    );
    let mut all = String::new();
    for file in &files {
        assert!(listed.contains(&file.display().to_string()), "{listed}");
        let xml = fs::read_to_string(file).unwrap();
        // One root element per file: what `virsh attach-device` parses.
        assert_eq!(xml.matches("<hostdev ").count(), 1, "{xml}");
        assert!(xml.trim_end().ends_with("</hostdev>"), "{xml}");
        all.push_str(&xml);
    }
    assert!(all.contains("bus=\"0x03\" slot=\"0x00\" function=\"0x0\" multifunction=\"on\""));
    assert!(all.contains("bus=\"0x03\" slot=\"0x00\" function=\"0x1\"/>"));
    validate_in_domain(&all);
}

#[test]
fn without_a_guest_bus_the_elements_go_to_stdout_and_libvirt_places_them() {
    let tree = x86_desktop().build_temp().unwrap();
    let out = vfioctl(tree.root(), &["libvirt-xml", "0000:01:00.0"]);
    assert!(out.status.success());
    let xml = String::from_utf8(out.stdout).unwrap();
    assert_eq!(xml.matches("<hostdev ").count(), 2, "{xml}");
    assert!(
        !xml.contains("type=\"pci\" domain"),
        "no guest address: {xml}"
    );
    let notes = String::from_utf8(out.stderr).unwrap();
    assert!(notes.contains("--out-dir"), "{notes}");
    assert!(notes.contains("--guest-bus"), "{notes}");
    validate_in_domain(&xml);
}
