//! Ownership across actors on one simulated host: a boot VM bound by `apply`, libvirt domain A,
//! libvirt domain B naming A's device, a manual bind, a device another tool put on vfio-pci, and
//! a Proxmox VM with a resource mapping and a pending change; each through every event of its
//! life (prepare/start, failed start, release/stop, vfioctl killed then `recover`, an unbind stuck
//! in the kernel then `recover`). After each, the device is on the driver its rightful owner
//! expects, the journal lists exactly the rightful owners' entries, and nothing else in the tree
//! changed. Prints the matrix; run it with
//! `cargo test -p vfioctl --test ownership -- --nocapture` to see it.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::fmt::Write as _;
use std::path::Path;

use common::{assert_same, driver, kernel_state, tree, vfioctl};
use vfioctl_sim::{Fault, FaultAction, FaultMatch, SimTree, Snapshot, topology};

/// The contested device: an idle igb NIC in a group of its own.
const D: &str = "0000:04:00.0";
/// The device a pending Proxmox change puts in the VM's configuration instead.
const E: &str = "0000:02:00.0";
/// The pid of domain A's (pretend) QEMU.
const QEMU_PID: u32 = 4121;

fn domain(name: &str, address_of: &str) -> String {
    let bus = &address_of[5..7];
    format!(
        "<domain type='kvm'><name>{name}</name><devices><hostdev mode='subsystem' type='pci' \
         managed='yes'><source><address domain='0x0000' bus='0x{bus}' slot='0x00' \
         function='0x0'/></source></hostdev></devices></domain>"
    )
}

/// What one step of a cell does.
enum Step {
    /// vfioctl with these arguments (and standard input), which must exit with this code.
    Run(&'static [&'static str], Option<String>, i32),
    /// Domain A's QEMU is up: its pid file and its `/proc` entry.
    QemuUp,
    /// Another tool binds D to vfio-pci with plain sysfs writes.
    SysfsBind,
    /// The next write vfioctl makes is its last: it is killed right after it.
    KillAfterNextWrite,
    /// The unbind of D from igb hangs in the kernel for a while.
    HangUnbind,
    /// Proxmox applies the pending change: the VM's configuration now names E, not the mapping.
    ApplyPending,
}

/// Where D must end.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// Back on igb, as before anything happened.
    Original,
    /// On vfio-pci, bound by vfioctl for its rightful owner.
    Vfioctl(&'static str),
    /// On vfio-pci as the other tool left it, with no journal entry.
    OtherTool,
}

struct Cell {
    steps: Vec<Step>,
    end: End,
}

fn libvirt(name: &'static str, op: &'static str, sub: &'static str) -> &'static [&'static str] {
    // Leaked: the cells are built once per test run.
    Box::leak(Box::new([
        "hook",
        "--timeout",
        "1",
        "libvirt",
        name,
        op,
        sub,
        "-",
    ]))
}

fn lv(name: &'static str, op: &'static str, sub: &'static str, code: i32) -> Step {
    Step::Run(libvirt(name, op, sub), Some(domain(name, D)), code)
}

fn cmd(args: &'static [&'static str], code: i32) -> Step {
    Step::Run(args, None, code)
}

const RECOVER: &[&str] = &["recover", "--timeout", "10"];
const APPLY: &[&str] = &["apply", "--timeout", "1"];
const BIND: &[&str] = &["bind", D, "--timeout", "1"];
const PVE_START: &[&str] = &["hook", "--timeout", "1", "proxmox", "100", "pre-start"];
const PVE_STOP: &[&str] = &["hook", "--timeout", "1", "proxmox", "100", "post-stop"];

const EVENTS: [&str; 5] = [
    "prepare/start",
    "failed start",
    "release/stop",
    "kill + recover",
    "stuck unbind + recover",
];

fn actors() -> Vec<(&'static str, Vec<Cell>)> {
    use Step::{ApplyPending, HangUnbind, KillAfterNextWrite, QemuUp, SysfsBind};
    let c = |steps, end| Cell { steps, end };
    vec![
        (
            "boot VM via apply",
            vec![
                c(
                    vec![cmd(APPLY, 0), lv("b", "prepare", "begin", 3)],
                    End::Vfioctl("vm:boot"),
                ),
                c(
                    vec![
                        cmd(APPLY, 0),
                        lv("b", "prepare", "begin", 3),
                        lv("b", "release", "end", 0),
                    ],
                    End::Vfioctl("vm:boot"),
                ),
                c(
                    vec![cmd(APPLY, 0), lv("b", "release", "end", 0)],
                    End::Vfioctl("vm:boot"),
                ),
                c(
                    vec![KillAfterNextWrite, cmd(APPLY, -1), cmd(RECOVER, 0)],
                    End::Original,
                ),
                c(
                    vec![HangUnbind, cmd(APPLY, 1), cmd(RECOVER, 0)],
                    End::Original,
                ),
            ],
        ),
        (
            "libvirt domain A",
            vec![
                c(
                    vec![lv("a", "prepare", "begin", 0)],
                    End::Vfioctl("libvirt:a"),
                ),
                c(
                    vec![lv("a", "prepare", "begin", 0), lv("a", "release", "end", 0)],
                    End::Original,
                ),
                c(
                    vec![
                        lv("a", "prepare", "begin", 0),
                        lv("a", "started", "begin", 0),
                        lv("a", "stopped", "end", 0),
                        lv("a", "release", "end", 0),
                    ],
                    End::Original,
                ),
                c(
                    vec![
                        KillAfterNextWrite,
                        lv("a", "prepare", "begin", -1),
                        cmd(RECOVER, 0),
                    ],
                    End::Original,
                ),
                c(
                    vec![HangUnbind, lv("a", "prepare", "begin", 1), cmd(RECOVER, 0)],
                    End::Original,
                ),
            ],
        ),
        (
            "libvirt domain B naming A's device",
            vec![
                c(
                    vec![
                        lv("a", "prepare", "begin", 0),
                        QemuUp,
                        lv("b", "prepare", "begin", 3),
                    ],
                    End::Vfioctl("libvirt:a"),
                ),
                c(
                    vec![
                        lv("a", "prepare", "begin", 0),
                        QemuUp,
                        lv("b", "prepare", "begin", 3),
                        lv("b", "release", "end", 0),
                    ],
                    End::Vfioctl("libvirt:a"),
                ),
                c(
                    vec![
                        lv("a", "prepare", "begin", 0),
                        QemuUp,
                        lv("b", "release", "end", 0),
                        cmd(&["restore", D], 3),
                        cmd(&["restore", "--all"], 3),
                    ],
                    End::Vfioctl("libvirt:a"),
                ),
                c(
                    vec![
                        lv("a", "prepare", "begin", 0),
                        QemuUp,
                        KillAfterNextWrite,
                        lv("b", "prepare", "begin", 3),
                        cmd(RECOVER, 3),
                    ],
                    End::Vfioctl("libvirt:a"),
                ),
                c(
                    vec![
                        lv("a", "prepare", "begin", 0),
                        QemuUp,
                        HangUnbind,
                        lv("b", "prepare", "begin", 3),
                        cmd(RECOVER, 3),
                    ],
                    End::Vfioctl("libvirt:a"),
                ),
            ],
        ),
        (
            "manual bind",
            vec![
                c(
                    vec![cmd(BIND, 0), lv("a", "prepare", "begin", 0)],
                    End::Vfioctl("manual"),
                ),
                c(
                    vec![
                        cmd(BIND, 0),
                        lv("a", "prepare", "begin", 0),
                        lv("a", "release", "end", 0),
                    ],
                    End::Vfioctl("manual"),
                ),
                c(
                    vec![cmd(BIND, 0), lv("b", "release", "end", 0)],
                    End::Vfioctl("manual"),
                ),
                c(
                    vec![KillAfterNextWrite, cmd(BIND, -1), cmd(RECOVER, 0)],
                    End::Original,
                ),
                c(
                    vec![HangUnbind, cmd(BIND, 1), cmd(RECOVER, 0)],
                    End::Original,
                ),
            ],
        ),
        (
            "on vfio-pci with no journal entry",
            vec![
                c(
                    vec![SysfsBind, lv("a", "prepare", "begin", 0)],
                    End::OtherTool,
                ),
                c(
                    vec![
                        SysfsBind,
                        lv("a", "prepare", "begin", 0),
                        lv("a", "release", "end", 0),
                    ],
                    End::OtherTool,
                ),
                c(
                    vec![SysfsBind, lv("a", "release", "end", 0)],
                    End::OtherTool,
                ),
                c(
                    vec![
                        SysfsBind,
                        KillAfterNextWrite,
                        lv("a", "prepare", "begin", 0),
                        cmd(RECOVER, 0),
                    ],
                    End::OtherTool,
                ),
                c(
                    vec![
                        SysfsBind,
                        HangUnbind,
                        lv("a", "prepare", "begin", 0),
                        cmd(RECOVER, 0),
                    ],
                    End::OtherTool,
                ),
            ],
        ),
        (
            "Proxmox VM, mapping + PENDING",
            vec![
                c(vec![cmd(PVE_START, 0)], End::Vfioctl("proxmox:100")),
                c(vec![cmd(PVE_START, 0), cmd(PVE_STOP, 0)], End::Original),
                c(
                    vec![cmd(PVE_START, 0), ApplyPending, cmd(PVE_STOP, 0)],
                    End::Original,
                ),
                c(
                    vec![KillAfterNextWrite, cmd(PVE_START, -1), cmd(RECOVER, 0)],
                    End::Original,
                ),
                c(
                    vec![HangUnbind, cmd(PVE_START, 1), cmd(RECOVER, 0)],
                    End::Original,
                ),
            ],
        ),
    ]
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel))
        .unwrap()
        .trim()
        .to_owned()
}

/// A fresh host with every actor's configuration in place.
fn fresh() -> SimTree {
    let t = tree(topology::x86_desktop());
    let root = t.root();
    let put = |rel: &str, text: &str| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    put(
        "etc/vfioctl/vms/boot.toml",
        &format!("version = 1\nboot = true\n\n[[device]]\naddress = \"{D}\"\nid = \"8086:1533\"\n"),
    );
    put("etc/hostname", "pve1\n");
    // libvirt defines both domains, so an entry of theirs is never an owner that is gone.
    put("etc/libvirt/qemu/a.xml", &domain("a", D));
    put("etc/libvirt/qemu/b.xml", &domain("b", D));
    let dev = format!("sys/bus/pci/devices/{D}");
    let strip = |t: String| t.trim_start_matches("0x").to_owned();
    let subsystem = format!(
        "{}:{}",
        strip(read(root, &format!("{dev}/subsystem_vendor"))),
        strip(read(root, &format!("{dev}/subsystem_device")))
    );
    let group = std::fs::read_link(root.join(format!("{dev}/iommu_group"))).unwrap();
    let group = group.file_name().unwrap().to_string_lossy().into_owned();
    put(
        "etc/pve/mapping/pci.cfg",
        &format!(
            "nic\n\tmap node=pve2,path=0000:09:00.0,id=8086:1533\n\tmap node=pve1,path={D},id=8086:1533,subsystem-id={subsystem},iommugroup={group}\n"
        ),
    );
    put(
        "etc/pve/qemu-server/100.conf",
        "memory: 2048\nhostpci0: mapping=nic,pcie=1\n\n[PENDING]\nhostpci0: 0000:02:00.0\n",
    );
    t
}

/// The tree as the comparisons see it: the kernel's state, without the pretend QEMU and the VM
/// configuration Proxmox rewrites.
fn state(t: &SimTree) -> Snapshot {
    let mut snap = kernel_state(t);
    snap.0.retain(|p, _| {
        !p.starts_with("run/libvirt")
            && !p.starts_with(&format!("proc/{QEMU_PID}"))
            && p != "etc/pve/qemu-server/100.conf"
    });
    snap
}

fn do_step(t: &SimTree, step: &Step, log: &mut Vec<String>) {
    let root = t.root();
    let k = t.kernel().unwrap();
    match step {
        Step::Run(args, stdin, code) => {
            let mut c = vfioctl(root);
            c.args(*args);
            if let Some(text) = stdin {
                c.write_stdin(text.as_bytes().to_vec());
            }
            let out = c.output().unwrap();
            let got = out.status.code().unwrap_or(-1);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
            assert_eq!(got, *code, "vfioctl {args:?}: {stderr}");
            if *code == 3 {
                assert!(stderr.contains("is held by"), "{args:?}: {stderr}");
            }
            log.push(got.to_string());
            k.set_crash_after_write(None).unwrap();
        }
        Step::QemuUp => {
            std::fs::create_dir_all(root.join("run/libvirt/qemu")).unwrap();
            std::fs::write(root.join("run/libvirt/qemu/a.pid"), format!("{QEMU_PID}\n")).unwrap();
            let proc = root.join(format!("proc/{QEMU_PID}"));
            std::fs::create_dir_all(&proc).unwrap();
            std::fs::write(proc.join("cmdline"), b"qemu-system-x86_64\0-name\0a\0").unwrap();
        }
        Step::SysfsBind => other_tool_bind(t),
        Step::KillAfterNextWrite => {
            k.set_crash_after_write(Some(k.writes_done() + 1)).unwrap();
        }
        Step::HangUnbind => k
            .add_fault(Fault {
                when: FaultMatch {
                    path_contains: Some("drivers/igb/unbind".to_owned()),
                    ..FaultMatch::default()
                },
                action: FaultAction::Block { millis: 2500 },
            })
            .unwrap(),
        Step::ApplyPending => std::fs::write(
            root.join("etc/pve/qemu-server/100.conf"),
            format!("memory: 2048\nhostpci0: {E}\n"),
        )
        .unwrap(),
    }
}

/// What `driverctl` or a hand-written script does: override, unbind, probe.
fn other_tool_bind(t: &SimTree) {
    let root = t.root();
    let k = t.kernel().unwrap();
    k.load_module("vfio-pci").unwrap();
    let dev = root.join(format!("sys/bus/pci/devices/{D}"));
    k.write(&dev.join("driver_override"), "vfio-pci").unwrap();
    k.write(&root.join("sys/bus/pci/drivers/igb/unbind"), D)
        .unwrap();
    k.write(&root.join("sys/bus/pci/drivers_probe"), D).unwrap();
    assert_eq!(driver(root, D).as_deref(), Some("vfio-pci"));
}

fn journal_owners(root: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(root.join("run/vfioctl/journal.json")) else {
        return Vec::new();
    };
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["original"]["device"].as_str().unwrap(),
                e["owner"].as_str().unwrap()
            )
        })
        .collect()
}

/// The ids of doctor's findings about vfioctl's journal and its owners.
fn journal_findings(root: &Path) -> Vec<String> {
    let out = vfioctl(root).args(["doctor", "--json"]).output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .filter(|id| {
            id.starts_with("journal-") || id.starts_with("helper-") || id.starts_with("owner-")
        })
        .collect()
}

#[test]
fn every_actor_keeps_its_own_devices_through_every_event() {
    let original = state(&fresh());
    let by_vfioctl = {
        let t = fresh();
        vfioctl(t.root()).args(["bind", D]).assert().code(0);
        state(&t)
    };
    let by_other_tool = {
        let t = fresh();
        other_tool_bind(&t);
        state(&t)
    };
    let mut table = String::new();
    write!(table, "{:<36}", "actor \\ event").unwrap();
    for e in EVENTS {
        write!(table, " {e:<30}").unwrap();
    }
    table.push('\n');
    for (actor, cells) in actors() {
        write!(table, "{actor:<36}").unwrap();
        for (cell, event) in cells.iter().zip(EVENTS) {
            let t = fresh();
            let mut log = Vec::new();
            for step in &cell.steps {
                do_step(&t, step, &mut log);
            }
            let what = format!("{actor} / {event}");
            let (expected, owners) = match cell.end {
                End::Original => (&original, vec![]),
                End::Vfioctl(owner) => (&by_vfioctl, vec![format!("{D} {owner}")]),
                End::OtherTool => (&by_other_tool, vec![]),
            };
            assert_same(expected, &state(&t), &what);
            assert_eq!(journal_owners(t.root()), owners, "{what}: the journal");
            let noted = journal_findings(t.root());
            // Nothing is left half done; a rightful owner that is not running is worth a note.
            let allowed: &[&str] = match cell.end {
                End::Vfioctl(owner)
                    if owner.starts_with("libvirt:") || owner.starts_with("proxmox:") =>
                {
                    &["owner-not-running"]
                }
                _ => &[],
            };
            assert!(
                noted.iter().all(|id| allowed.contains(&id.as_str())),
                "{what}: doctor reports {noted:?}"
            );
            let mut end = match cell.end {
                End::Original => "igb".to_owned(),
                End::Vfioctl(owner) => format!("vfio-pci ({owner})"),
                End::OtherTool => "vfio-pci (other tool)".to_owned(),
            };
            if !noted.is_empty() {
                end.push('*');
            }
            write!(table, " {:<30}", format!("{} {end}", log.join(","))).unwrap();
        }
        table.push('\n');
    }
    println!(
        "\nexit codes of each step, then where {D} ended; tree otherwise as it began; doctor \
         reports nothing of the journal, except * owner-not-running (the domain or VM holding \
         it has no live QEMU)\n{table}"
    );
}

#[test]
fn the_libvirt_hook_prints_nothing_for_operations_libvirt_reads_as_xml() {
    let t = fresh();
    let before = state(&t);
    for (op, sub) in [
        ("migrate", "begin"),
        ("restore", "begin"),
        ("prepare", "end"),
        ("reconnect", "begin"),
        ("attach", "begin"),
    ] {
        let out = vfioctl(t.root())
            .args(["hook", "libvirt", "a", op, sub, "-"])
            .write_stdin(domain("a", D).into_bytes())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{op} {sub}");
        assert!(out.stdout.is_empty(), "{op} {sub}: stdout {:?}", out.stdout);
    }
    assert_same(&before, &state(&t), "operations vfioctl leaves alone");
}

#[test]
fn a_forced_bind_takes_over_only_a_device_whose_qemu_is_gone() {
    let t = fresh();
    let root = t.root();
    let xml = domain("a", D);
    vfioctl(root)
        .args(["hook", "libvirt", "a", "prepare", "begin", "-"])
        .write_stdin(xml.clone().into_bytes())
        .assert()
        .code(0);
    do_step(&t, &Step::QemuUp, &mut Vec::new());
    let out = vfioctl(root).args(["bind", D, "--force"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "{D} is held by libvirt:a (running, qemu pid {QEMU_PID})"
        )),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(root.join(format!("proc/{QEMU_PID}"))).unwrap();
    vfioctl(root).args(["bind", D]).assert().code(3);
    vfioctl(root).args(["bind", D, "--force"]).assert().code(0);
    assert_eq!(journal_owners(root), [format!("{D} manual")]);
    // A's release no longer gives it back: it is the manual bind's now, and the hook says so
    // in one sentence even with --quiet, as the hook scripts run it.
    let out = vfioctl(root)
        .args(["--quiet", "hook", "libvirt", "a", "release", "end", "-"])
        .write_stdin(xml.into_bytes())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        format!("vfioctl: {D} is held by manual (not running), not libvirt:a; left as it is")
    );
    assert_eq!(driver(root, D).as_deref(), Some("vfio-pci"));
}

#[test]
fn an_lxc_guest_is_left_alone_and_a_changed_mapping_stops_the_vm() {
    let t = fresh();
    let root = t.root();
    std::fs::create_dir_all(root.join("etc/pve/lxc")).unwrap();
    std::fs::write(root.join("etc/pve/lxc/200.conf"), "arch: amd64\n").unwrap();
    let before = state(&t);
    vfioctl(root)
        .args(["hook", "proxmox", "200", "pre-start"])
        .assert()
        .code(0);
    assert_same(&before, &state(&t), "an LXC guest");
    let cfg = read(root, "etc/pve/mapping/pci.cfg").replace("id=8086:1533,sub", "id=8086:10d3,sub");
    std::fs::write(root.join("etc/pve/mapping/pci.cfg"), cfg).unwrap();
    let before = state(&t);
    let out = vfioctl(root)
        .args(["hook", "proxmox", "100", "pre-start"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expects id 8086:10d3"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same(&before, &state(&t), "a mapping whose hardware changed");
}
