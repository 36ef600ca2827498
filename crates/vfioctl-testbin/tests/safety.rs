//! Host safety on hosts shaped like real ones: exactly the device the user named, and nothing the
//! host needs. Each case checks the refusal, its sentence, that nothing changed, and that the
//! commands that must keep working do.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::path::Path;

use common::{assert_same, driver, json, kernel_state, tree, vfioctl};
use vfioctl_sim::{Errno, Fault, FaultAction, FaultMatch, hosts, topology};

/// Runs vfioctl, asserts the exit code, and returns stderr.
fn stderr_of(root: &Path, args: &[&str], code: i32) -> String {
    let out = vfioctl(root).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "vfioctl {args:?}\nstdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// The `error:` and `hint:` lines, with the simulated root taken out.
fn error_lines(stderr: &str, root: &Path) -> String {
    stderr
        .lines()
        .filter(|l| l.starts_with("error: ") || l.starts_with("hint: "))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(&root.display().to_string(), "<root>")
}

#[test]
fn a_short_address_names_domain_zero_and_write_commands_ask_for_the_domain() {
    let t = tree(hosts::multi_domain());
    let root = t.root();
    let before = kernel_state(&t);
    let hv = stderr_of(root, &["bind", "00:02.0", "--dry-run"], 2);
    insta::assert_snapshot!(error_lines(&hv, root));
    let vmd = stderr_of(root, &["bind", "e1:00.0", "--dry-run"], 2);
    assert!(
        vmd.contains("did you mean 10000:e1:00.0? name the domain"),
        "{vmd}"
    );
    for args in [
        vec!["restore", "00:02.0"],
        vec!["check", "00:02.0"],
        vec!["qemu-args", "e1:00.0"],
    ] {
        let err = stderr_of(root, &args, 2);
        assert!(err.contains("name the domain"), "{args:?}: {err}");
    }
    // Read commands show the one match and say so.
    let shown = stderr_of(root, &["show", "00:02.0"], 0);
    assert!(shown.contains("showing ffff:00:02.0"), "{shown}");
    // The full address is what the user means.
    let plan = json(root, &["bind", "ffff:00:02.0", "--dry-run"], 0);
    assert_eq!(plan["devices"][0]["address"], "ffff:00:02.0");
    // 00:00.0 exists in domain 0: no question asked.
    let list = json(root, &["list", "-s", "00:00.0"], 0);
    assert_eq!(list["devices"][0]["address"], "0000:00:00.0");
    assert_same(&before, &kernel_state(&t), "refused selections");
}

#[test]
fn a_virtio_net_carrying_the_default_route_is_refused_through_its_chain() {
    let t = tree(hosts::virtio_net_guest());
    let root = t.root();
    let before = kernel_state(&t);
    let err = stderr_of(root, &["bind", "0000:00:02.0"], 3);
    insta::assert_snapshot!(error_lines(&err, root));
    // Named by its interface, which lives one level down, it is the same device.
    let by_name = stderr_of(root, &["bind", "eth0"], 3);
    assert!(by_name.contains("0000:00:02.0 (virtio-pci)"), "{by_name}");
    assert_same(&before, &kernel_state(&t), "refused bind");
    // The other NICs are untouched by the refusal and still bind.
    let plan = json(root, &["bind", "0000:01:00.0", "--dry-run"], 0);
    assert_eq!(plan["result"], "planned");
    json(root, &["list"], 0);
}

#[test]
fn an_xhci_with_a_mounted_usb_disk_is_refused_naming_the_chain() {
    let t = tree(hosts::xhci_usb_disk("/media/backup"));
    let root = t.root();
    let before = kernel_state(&t);
    let err = stderr_of(root, &["bind", "0000:00:04.0"], 3);
    insta::assert_snapshot!(error_lines(&err, root));
    assert_same(&before, &kernel_state(&t), "refused bind");
    // A data disk is the user's to give away.
    let forced = json(root, &["bind", "0000:00:04.0", "--force", "--dry-run"], 0);
    assert_eq!(forced["result"], "planned");
}

#[test]
fn force_never_takes_the_root_filesystem_and_the_hint_does_not_offer_it() {
    let t = tree(hosts::xhci_usb_disk("/"));
    let root = t.root();
    let before = kernel_state(&t);
    let err = stderr_of(root, &["bind", "0000:00:04.0", "--force"], 3);
    assert!(err.contains("sda2 mounted on /"), "{err}");
    assert!(!err.contains("pass --force"), "{err}");
    insta::assert_snapshot!(error_lines(&err, root));
    assert_same(&before, &kernel_state(&t), "refused forced bind");
}

#[test]
fn the_chipset_group_stays_with_the_host_in_every_command() {
    let t = tree(topology::x86_desktop());
    let root = t.root();
    let before = kernel_state(&t);
    let bind = stderr_of(root, &["bind", "00:1f.3", "--dry-run"], 3);
    insta::assert_snapshot!(error_lines(&bind, root));
    let forced = stderr_of(root, &["bind", "00:1f.3", "--force"], 3);
    assert!(
        forced.contains("cannot go to a VM on this board"),
        "{forced}"
    );
    let sentence = bind
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap()
        .trim_start_matches("error: ")
        .to_owned();
    for args in [vec!["qemu-args", "00:1f.3"], vec!["libvirt-xml", "00:1f.3"]] {
        let err = stderr_of(root, &args, 3);
        assert!(err.contains(&sentence), "{args:?}: {err}");
    }
    let doctor = vfioctl(root).args(["doctor", "00:1f.3"]).output().unwrap();
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert_eq!(doctor.status.code(), Some(4), "{text}");
    assert!(
        text.contains(sentence.trim_start_matches("refused: ")),
        "{text}"
    );
    assert!(!text.contains("0000:00:1f.3 can go to a VM"), "{text}");
    let host_bridge = stderr_of(root, &["bind", "00:00.0"], 3);
    assert!(
        host_bridge.contains("0000:00:00.0 is the host bridge the host needs"),
        "{host_bridge}"
    );
    assert_same(&before, &kernel_state(&t), "refused chipset");
    // Host-wide, a chipset group is how boards are, not a problem.
    let all = vfioctl(root).args(["doctor"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&all.stdout).contains("group-host-critical"),
        "{}",
        String::from_utf8_lossy(&all.stdout)
    );
}

#[test]
fn a_pf_whose_vf_is_on_vfio_is_refused_and_a_free_one_warns() {
    let t = tree(hosts::sriov_vf_on_vfio());
    let root = t.root();
    let before = kernel_state(&t);
    let err = stderr_of(root, &["bind", "0000:01:00.0", "--force"], 3);
    insta::assert_snapshot!(error_lines(&err, root));
    assert_same(&before, &kernel_state(&t), "refused PF");

    let free = tree(topology::qemu_x86(topology::QemuTopo::Sriov));
    let out = vfioctl(free.root())
        .args(["bind", "0000:01:00.0", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let notes = String::from_utf8_lossy(&out.stderr);
    assert!(
        notes.contains("unbinding it from igb removes its 2 VFs (0000:01:10.0, 0000:01:10.2)"),
        "{notes}"
    );
}

#[test]
fn a_half_removed_device_is_skipped_and_the_rest_keeps_working() {
    let t = tree(topology::qemu_x86(topology::QemuTopo::RootPorts));
    let root = t.root();
    hosts::half_remove(root, "0000:02:00.0".parse().unwrap()).unwrap();
    // bind and show read only the named device, its group and the bridges above it: they never
    // meet the broken one.
    for args in [
        vec!["bind", "0000:01:00.0", "--dry-run"],
        vec!["show", "0000:01:00.0"],
    ] {
        let err = stderr_of(root, &args, 0);
        assert!(!err.contains("entity not found"), "{args:?}: {err}");
    }
    for args in [vec!["list"], vec!["groups"]] {
        let err = stderr_of(root, &args, 0);
        assert!(
            err.contains("skipped PCI device 0000:02:00.0")
                && err.contains("No such file or directory"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("entity not found"), "{args:?}: {err}");
    }
    let doctor = json(root, &["doctor"], 4);
    let found = doctor["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["id"] == "device-unreadable");
    assert!(found, "{doctor:#}");
}

#[test]
fn garbage_in_one_device_does_not_break_commands_about_others() {
    let t = tree(topology::qemu_x86(topology::QemuTopo::RootPorts));
    let root = t.root();
    hosts::garble(root, "0000:02:00.0".parse().unwrap(), "class").unwrap();
    // doctor, like list, takes the class from config space and falls back to the attribute only
    // when config space says nothing.
    hosts::garble(root, "0000:02:00.0".parse().unwrap(), "config").unwrap();
    stderr_of(root, &["bind", "0000:01:00.0", "--dry-run"], 0);
    stderr_of(root, &["qemu-args", "0000:01:00.0"], 0);
    stderr_of(root, &["show", "0000:01:00.0"], 0);
    let doctor = vfioctl(root).args(["doctor"]).output().unwrap();
    assert_ne!(doctor.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&doctor.stdout).contains("0000:02:00.0 was skipped"));
}

#[test]
fn output_is_hygienic() {
    let t = tree(topology::qemu_x86(topology::QemuTopo::RootPorts));
    let root = t.root();
    let err = stderr_of(root, &["bind", "0000:01:00.0", "--timeout", "0"], 2);
    assert!(err.contains("--timeout"), "{err}");
    let long = "x".repeat(100_000);
    let err = stderr_of(root, &["show", &long], 2);
    assert!(
        err.len() < 1_000 && err.contains('…'),
        "{} bytes",
        err.len()
    );
    let escape = "\u{1b}[2J";
    let err = stderr_of(root, &["show", &format!("eth{escape}")], 2);
    assert!(!err.contains('\u{1b}'), "{err:?}");
    // A control sequence read from sysfs is escaped too.
    let dir = std::fs::read_link(root.join("sys/bus/pci/devices/0000:01:00.0")).unwrap();
    let dir = root.join("sys/bus/pci/devices").join(dir);
    std::fs::write(dir.join("driver_override"), format!("evil{escape}\n")).unwrap();
    let out = vfioctl(root).args(["list"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains('\u{1b}') && stdout.contains("evil\\u{1b}[2J"),
        "{stdout:?}"
    );
}

#[test]
fn a_write_refused_for_privilege_mid_plan_ends_with_exit_5_after_rollback() {
    let t = tree(topology::ten64());
    let root = t.root();
    let before = kernel_state(&t);
    t.kernel()
        .unwrap()
        .add_fault(Fault {
            when: FaultMatch {
                path_contains: Some("0001:04:00.0/driver_override".into()),
                ..FaultMatch::default()
            },
            action: FaultAction::Fail(Errno::Eacces),
        })
        .unwrap();
    let err = stderr_of(root, &["bind", "0001:03:00.0"], 5);
    assert!(err.contains("every device was put back"), "{err}");
    assert!(err.contains("run vfioctl as root"), "{err}");
    assert!(!err.contains("dmesg"), "{err}");
    assert_eq!(driver(root, "0001:03:00.0").as_deref(), Some("ath10k_pci"));
    t.kernel().unwrap().clear_faults().unwrap();
    assert_same(&before, &kernel_state(&t), "rolled back");
}

/// Replaces the mount table with `/proc/self/mountinfo` lines (which win over `/proc/mounts`).
fn mountinfo(root: &Path, lines: &[&str]) {
    let mut text = lines.join("\n");
    text.push_str("\n23 1 0:21 / /proc rw,nosuid - proc proc rw\n");
    std::fs::create_dir_all(root.join("proc/self")).unwrap();
    std::fs::write(root.join("proc/self/mountinfo"), text).unwrap();
}

/// `link` pointing at the real directory of block device `block`, as sysfs and udev make them.
fn link_to_block(root: &Path, link: &str, block: &str) {
    let dir = std::fs::canonicalize(root.join("sys/class/block").join(block)).unwrap();
    let link = root.join(link);
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(dir, link).unwrap();
}

#[test]
fn a_root_mounted_as_dev_root_is_found_through_its_device_number_and_through_root_eq() {
    let t = tree(hosts::xhci_usb_disk("/srv"));
    let root = t.root();
    // The kernel mounted the root itself: the source says /dev/root, st_dev says 259:2 (sda2).
    mountinfo(
        root,
        &["22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/root rw"],
    );
    link_to_block(root, "sys/dev/block/259:2", "sda2");
    let before = kernel_state(&t);
    let err = stderr_of(root, &["bind", "0000:00:04.0", "--force"], 3);
    insta::assert_snapshot!(error_lines(&err, root));
    assert_same(&before, &kernel_state(&t), "refused root");
    // A root whose st_dev is anonymous (btrfs): the source is resolved through root=.
    std::fs::remove_file(root.join("sys/dev/block/259:2")).unwrap();
    mountinfo(
        root,
        &["22 1 0:31 / / rw,relatime shared:1 - btrfs /dev/root rw"],
    );
    std::fs::write(
        root.join("proc/cmdline"),
        "BOOT_IMAGE=/vmlinuz root=PARTUUID=5E1F-02 ro quiet\n",
    )
    .unwrap();
    link_to_block(root, "dev/disk/by-partuuid/5e1f-02", "sda2");
    let err = stderr_of(root, &["bind", "0000:00:04.0", "--force"], 3);
    assert!(err.contains("usb 2-1 -> sda -> sda2 mounted on /"), "{err}");
}

#[test]
fn a_zfs_pool_member_is_refused_naming_the_pool_and_a_root_pool_even_with_force() {
    let t = tree(hosts::xhci_usb_disk("/srv"));
    let root = t.root();
    // sda1 is a vdev of the imported pool "tank": udev's blkid label says so, and the pool has
    // its kstat directory. ZFS links no holders/.
    std::fs::create_dir_all(root.join("proc/spl/kstat/zfs/tank")).unwrap();
    std::fs::write(root.join("proc/spl/kstat/zfs/tank/state"), "ONLINE\n").unwrap();
    std::fs::create_dir_all(root.join("run/udev/data")).unwrap();
    std::fs::write(
        root.join("run/udev/data/b259:1"),
        "S:disk/by-label/tank\nE:ID_FS_TYPE=zfs_member\nE:ID_FS_LABEL=tank\nE:ID_FS_UUID_SUB=1234\n",
    )
    .unwrap();
    mountinfo(
        root,
        &[
            "40 1 0:45 / /tank rw,relatime shared:5 - zfs tank rw,xattr",
            "41 40 0:46 / /tank/vm rw,relatime shared:6 - zfs tank/vm rw,xattr",
        ],
    );
    let before = kernel_state(&t);
    let err = stderr_of(root, &["bind", "0000:00:04.0", "--dry-run"], 3);
    insta::assert_snapshot!(error_lines(&err, root));
    assert_same(&before, &kernel_state(&t), "refused ZFS member");
    // A data pool is the user's to give away.
    let forced = json(root, &["bind", "0000:00:04.0", "--force", "--dry-run"], 0);
    assert_eq!(forced["result"], "planned");
    // A pool that is not imported is no use of the host's.
    std::fs::remove_dir_all(root.join("proc/spl/kstat/zfs/tank")).unwrap();
    json(root, &["bind", "0000:00:04.0", "--dry-run"], 0);
    // The root pool: found through /dev/disk/by-label as well, and --force cannot take it.
    std::fs::remove_file(root.join("run/udev/data/b259:1")).unwrap();
    std::fs::create_dir_all(root.join("proc/spl/kstat/zfs/rpool")).unwrap();
    link_to_block(root, "dev/disk/by-label/rpool", "sda1");
    mountinfo(
        root,
        &["22 1 0:25 / / rw,relatime shared:1 - zfs rpool/ROOT/debian rw"],
    );
    let err = stderr_of(root, &["bind", "0000:00:04.0", "--force"], 3);
    assert!(
        err.contains("usb 2-1 -> sda -> sda1 -> ZFS pool rpool mounted on /"),
        "{err}"
    );
    assert!(!err.contains("pass --force"), "{err}");
}
