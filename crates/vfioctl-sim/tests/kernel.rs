//! The simulated kernel's write semantics, one behaviour per test.
// Helpers outside #[test] fns are test code too; a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pretty_assertions::assert_eq;
use vfioctl_core::PciAddress;
use vfioctl_sim::topology::{qemu_arm64, qemu_x86, ten64, x86_desktop};
use vfioctl_sim::{
    Errno, Fault, FaultAction, FaultMatch, QemuTopo, SimKernel, SimModuleError, SimTree,
};

fn a(text: &str) -> PciAddress {
    text.parse().unwrap()
}

fn read(tree: &SimTree, rel: &str) -> String {
    fs::read_to_string(tree.root().join(rel)).unwrap()
}

fn driver(tree: &SimTree, addr: &str) -> Option<String> {
    fs::read_link(
        tree.root()
            .join("sys/bus/pci/devices")
            .join(addr)
            .join("driver"),
    )
    .ok()
    .map(|t| t.file_name().unwrap().to_string_lossy().into_owned())
}

fn exists(tree: &SimTree, rel: &str) -> bool {
    fs::symlink_metadata(tree.root().join(rel)).is_ok()
}

fn dev_attr(addr: &str, attr: &str) -> PathBuf {
    PathBuf::from(format!("/sys/bus/pci/devices/{addr}/{attr}"))
}

fn drv_attr(drv: &str, attr: &str) -> PathBuf {
    PathBuf::from(format!("/sys/bus/pci/drivers/{drv}/{attr}"))
}

fn errno_of(r: io::Result<()>) -> i32 {
    r.unwrap_err().raw_os_error().unwrap()
}

fn w(k: &SimKernel, path: impl AsRef<Path>, value: &str) -> io::Result<()> {
    k.write(path.as_ref(), value)
}

const EBUSY: i32 = 16;
const EEXIST: i32 = 17;
const ENODEV: i32 = 19;
const EINVAL: i32 = 22;
const ENOENT: i32 = 2;

#[test]
fn open_needs_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    assert!(SimKernel::open(dir.path()).is_err());
}

#[test]
fn driver_override_sets_and_clears_without_binding() {
    let tree = qemu_x86(QemuTopo::RootPorts).build_temp().unwrap();
    let k = tree.kernel().unwrap();
    let attr = "sys/bus/pci/devices/0000:01:00.0/driver_override";
    w(
        &k,
        dev_attr("0000:01:00.0", "driver_override"),
        "vfio-pci\n",
    )
    .unwrap();
    assert_eq!(read(&tree, attr), "vfio-pci\n");
    // Does not unbind.
    assert_eq!(driver(&tree, "0000:01:00.0").as_deref(), Some("e1000e"));
    w(&k, dev_attr("0000:01:00.0", "driver_override"), "\n").unwrap();
    assert_eq!(read(&tree, attr), "(null)\n");
    w(&k, dev_attr("0000:01:00.0", "driver_override"), "vfio-pci").unwrap();
    w(&k, dev_attr("0000:01:00.0", "driver_override"), "").unwrap();
    assert_eq!(read(&tree, attr), "(null)\n");
    // Only up to the first newline is kept.
    w(
        &k,
        dev_attr("0000:01:00.0", "driver_override"),
        "pci-stub\ngarbage",
    )
    .unwrap();
    assert_eq!(read(&tree, attr), "pci-stub\n");
    let long = "x".repeat(4095);
    assert_eq!(
        errno_of(w(&k, dev_attr("0000:01:00.0", "driver_override"), &long)),
        EINVAL
    );
    assert_eq!(read(&tree, attr), "pci-stub\n");
}

#[test]
fn driver_override_reads_empty_on_newer_kernels() {
    let mut b = qemu_x86(QemuTopo::RootPorts);
    b.host.override_unset_null = false;
    let tree = b.build_temp().unwrap();
    let attr = "sys/bus/pci/devices/0000:01:00.0/driver_override";
    assert_eq!(read(&tree, attr), "\n");
    let k = tree.kernel().unwrap();
    w(&k, dev_attr("0000:01:00.0", "driver_override"), "vfio-pci").unwrap();
    w(&k, dev_attr("0000:01:00.0", "driver_override"), "\n").unwrap();
    assert_eq!(read(&tree, attr), "\n");
}

#[test]
fn unbind_removes_links_and_network_interfaces() {
    let tree = x86_desktop().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    assert!(exists(&tree, "sys/class/net/enp3s0"));
    assert!(read(&tree, "proc/net/route").contains("enp3s0"));
    assert_eq!(
        errno_of(w(&k, drv_attr("e1000e-not-here", "unbind"), "0000:03:00.0")),
        ENOENT
    );
    assert_eq!(
        errno_of(w(&k, drv_attr("ahci", "unbind"), "0000:03:00.0")),
        ENODEV
    );
    w(&k, drv_attr("igb", "unbind"), "0000:03:00.0\n").unwrap();
    assert_eq!(driver(&tree, "0000:03:00.0"), None);
    assert!(!exists(&tree, "sys/bus/pci/drivers/igb/0000:03:00.0"));
    assert!(!exists(&tree, "sys/class/net/enp3s0"));
    assert!(!exists(
        &tree,
        "sys/devices/pci0000:00/0000:00:1c.4/0000:03:00.0/net"
    ));
    assert!(!read(&tree, "proc/net/route").contains("enp3s0"));
    assert!(!read(&tree, "sys/bus/pci/devices/0000:03:00.0/uevent").contains("DRIVER="));
    // Unbinding again: no longer bound to igb.
    assert_eq!(
        errno_of(w(&k, drv_attr("igb", "unbind"), "0000:03:00.0")),
        ENODEV
    );
}

#[test]
fn bind_follows_id_tables_and_driver_override() {
    let tree = x86_desktop().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    let nic = "0000:04:00.0";
    w(&k, drv_attr("igb", "unbind"), nic).unwrap();
    // vfio-pci has no IDs: only an override lets it bind.
    assert_eq!(errno_of(w(&k, drv_attr("vfio-pci", "bind"), nic)), ENODEV);
    // An override naming another driver blocks ID matching too.
    w(&k, dev_attr(nic, "driver_override"), "pci-stub").unwrap();
    assert_eq!(errno_of(w(&k, drv_attr("igb", "bind"), nic)), ENODEV);
    assert_eq!(errno_of(w(&k, drv_attr("vfio-pci", "bind"), nic)), ENODEV);
    w(&k, dev_attr(nic, "driver_override"), "\n").unwrap();
    // ID match.
    w(&k, drv_attr("igb", "bind"), nic).unwrap();
    assert_eq!(driver(&tree, nic).as_deref(), Some("igb"));
    assert!(exists(&tree, "sys/class/net/enp4s0"));
    assert_eq!(
        fs::read_link(tree.root().join("sys/bus/pci/drivers/igb").join(nic)).unwrap(),
        Path::new("../../../../devices/pci0000:00/0000:00:1d.0/0000:04:00.0")
    );
    // Already bound.
    assert_eq!(errno_of(w(&k, drv_attr("igb", "bind"), nic)), EBUSY);
    w(&k, dev_attr(nic, "driver_override"), "vfio-pci").unwrap();
    assert_eq!(errno_of(w(&k, drv_attr("vfio-pci", "bind"), nic)), EBUSY);
    // No such device.
    assert_eq!(
        errno_of(w(&k, drv_attr("igb", "bind"), "0000:09:00.0")),
        ENODEV
    );
    // Unloaded driver: no bind file.
    assert_eq!(errno_of(w(&k, drv_attr("nouveau", "bind"), nic)), ENOENT);
}

#[test]
fn vfio_pci_refuses_bridges() {
    let tree = qemu_x86(QemuTopo::RootPorts).build_temp().unwrap();
    let k = tree.kernel().unwrap();
    let rp = "0000:00:10.0";
    w(&k, drv_attr("pcieport", "unbind"), rp).unwrap();
    w(&k, dev_attr(rp, "driver_override"), "vfio-pci").unwrap();
    assert_eq!(errno_of(w(&k, drv_attr("vfio-pci", "bind"), rp)), EINVAL);
    assert_eq!(driver(&tree, rp), None);
}

#[test]
fn vfio_pci_needs_an_iommu_group() {
    // arm64 stream-ID clash: 02:02.0 has no group.
    let tree = qemu_arm64(QemuTopo::PciBridge).build_temp().unwrap();
    let k = tree.kernel().unwrap();
    let dev = "0000:02:02.0";
    w(&k, dev_attr(dev, "driver_override"), "vfio-pci").unwrap();
    w(&k, drv_attr("e1000", "unbind"), dev).unwrap();
    assert_eq!(errno_of(w(&k, drv_attr("vfio-pci", "bind"), dev)), EINVAL);
    assert_eq!(driver(&tree, dev), None);
    assert_eq!(
        read(&tree, &format!("sys/bus/pci/devices/{dev}/driver_override")),
        "vfio-pci\n"
    );
    // drivers_probe swallows the probe error.
    w(&k, "/sys/bus/pci/drivers_probe", dev).unwrap();
    assert_eq!(driver(&tree, dev), None);
    // With no-IOMMU mode the bind goes through.
    k.set_noiommu(true).unwrap();
    w(&k, drv_attr("vfio-pci", "bind"), dev).unwrap();
    assert_eq!(driver(&tree, dev).as_deref(), Some("vfio-pci"));
}

#[test]
fn vfio_group_node_follows_the_vfio_members() {
    let tree = qemu_x86(QemuTopo::MultiFunction).build_temp().unwrap();
    let k = tree.kernel().unwrap();
    for dev in ["0000:01:00.0", "0000:01:00.1"] {
        w(&k, dev_attr(dev, "driver_override"), "vfio-pci").unwrap();
        w(&k, drv_attr("e1000e", "unbind"), dev).unwrap();
        w(&k, drv_attr("vfio-pci", "bind"), dev).unwrap();
        assert!(exists(&tree, "dev/vfio/3"));
    }
    assert!(exists(&tree, "dev/vfio/vfio"));
    w(&k, drv_attr("vfio-pci", "unbind"), "0000:01:00.0").unwrap();
    assert!(exists(&tree, "dev/vfio/3"), "one member still on vfio-pci");
    w(&k, drv_attr("vfio-pci", "unbind"), "0000:01:00.1").unwrap();
    assert!(!exists(&tree, "dev/vfio/3"));
}

#[test]
fn drivers_probe_honours_override_and_reports_success_regardless() {
    let tree = ten64().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    let tpu = "0001:04:00.0";
    // No driver matches the Coral: success, nothing bound.
    w(&k, "/sys/bus/pci/drivers_probe", tpu).unwrap();
    assert_eq!(driver(&tree, tpu), None);
    // Override names a module not loaded: success, nothing bound.
    w(&k, dev_attr(tpu, "driver_override"), "vfio-pci").unwrap();
    w(&k, "/sys/bus/pci/drivers_probe", tpu).unwrap();
    assert_eq!(driver(&tree, tpu), None);
    assert_eq!(
        errno_of(w(&k, "/sys/bus/pci/drivers_probe", "0001:09:00.0")),
        ENODEV
    );
    // The restore path: unbind from vfio-pci, clear override, probe -> original driver.
    let wifi = "0001:03:00.0";
    k.load_module("vfio-pci").unwrap();
    assert_eq!(
        driver(&tree, tpu).as_deref(),
        Some("vfio-pci"),
        "module init probes overrides"
    );
    w(&k, dev_attr(wifi, "driver_override"), "vfio-pci").unwrap();
    w(&k, drv_attr("ath10k_pci", "unbind"), wifi).unwrap();
    w(&k, "/sys/bus/pci/drivers_probe", wifi).unwrap();
    assert_eq!(driver(&tree, wifi).as_deref(), Some("vfio-pci"));
    w(&k, drv_attr("vfio-pci", "unbind"), wifi).unwrap();
    w(&k, dev_attr(wifi, "driver_override"), "\n").unwrap();
    w(&k, "/sys/bus/pci/drivers_probe", wifi).unwrap();
    assert_eq!(driver(&tree, wifi).as_deref(), Some("ath10k_pci"));
    assert!(exists(&tree, "sys/class/net/wlan0"));
}

#[test]
fn new_id_binds_every_matching_unbound_device() {
    let tree = qemu_x86(QemuTopo::RootPorts).build_temp().unwrap();
    let k = tree.kernel().unwrap();
    for dev in ["0000:01:00.0", "0000:02:00.0"] {
        w(&k, drv_attr("e1000e", "unbind"), dev).unwrap();
    }
    w(&k, drv_attr("vfio-pci", "new_id"), "8086 10d3").unwrap();
    assert_eq!(driver(&tree, "0000:01:00.0").as_deref(), Some("vfio-pci"));
    assert_eq!(driver(&tree, "0000:02:00.0").as_deref(), Some("vfio-pci"));
    assert_eq!(k.dynamic_ids("vfio-pci").unwrap().len(), 1);
    assert_eq!(
        errno_of(w(&k, drv_attr("vfio-pci", "new_id"), "8086 10d3")),
        EEXIST
    );
    assert_eq!(
        errno_of(w(&k, drv_attr("vfio-pci", "new_id"), "zz")),
        EINVAL
    );
    w(&k, drv_attr("vfio-pci", "remove_id"), "8086 10d3").unwrap();
    assert!(k.dynamic_ids("vfio-pci").unwrap().is_empty());
    assert_eq!(
        errno_of(w(&k, drv_attr("vfio-pci", "remove_id"), "8086 10d3")),
        ENODEV
    );
}

#[test]
fn load_module_creates_driver_and_reports_blacklist_and_absence() {
    let tree = ten64().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    assert!(!exists(&tree, "sys/bus/pci/drivers/vfio-pci"));
    k.load_module("vfio_pci").unwrap();
    for p in [
        "sys/bus/pci/drivers/vfio-pci/bind",
        "sys/bus/pci/drivers/vfio-pci/new_id",
        "sys/module/vfio_pci/parameters/disable_idle_d3",
        "sys/module/vfio_iommu_type1",
        "sys/module/vfio",
        "dev/vfio/vfio",
    ] {
        assert!(exists(&tree, p), "{p}");
    }
    assert_eq!(
        read(&tree, "sys/module/vfio_pci/parameters/disable_idle_d3"),
        "N\n"
    );
    // Loading again is a no-op.
    k.load_module("vfio-pci").unwrap();
    assert!(matches!(
        k.load_module("apex"),
        Err(SimModuleError::NotFound(_))
    ));
    assert!(matches!(
        k.load_module("no_such_module"),
        Err(SimModuleError::NotFound(_))
    ));
    let desktop = x86_desktop().build_temp().unwrap();
    assert!(matches!(
        desktop.kernel().unwrap().load_module("nouveau"),
        Err(SimModuleError::Blacklisted(_))
    ));
}

#[test]
fn module_parameters_and_read_only_attributes() {
    let tree = x86_desktop().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    w(&k, "/sys/module/vfio_pci/parameters/disable_idle_d3", "Y").unwrap();
    assert_eq!(
        read(&tree, "sys/module/vfio_pci/parameters/disable_idle_d3"),
        "Y\n"
    );
    let e = w(&k, dev_attr("0000:03:00.0", "vendor"), "0x1234").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    assert_eq!(
        errno_of(w(&k, dev_attr("0000:03:00.0", "nonexistent"), "1")),
        ENOENT
    );
    assert_eq!(errno_of(w(&k, "/sys/../../etc/passwd", "x")), ENOENT);
}

#[test]
fn injected_errno_fails_and_changes_nothing() {
    let tree = x86_desktop().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    k.add_fault(Fault {
        when: FaultMatch {
            path_contains: Some("igb/unbind".into()),
            ..FaultMatch::default()
        },
        action: FaultAction::Fail(Errno::Ebusy),
    })
    .unwrap();
    let before = tree.snapshot().unwrap();
    assert_eq!(
        errno_of(w(&k, drv_attr("igb", "unbind"), "0000:03:00.0")),
        EBUSY
    );
    assert_eq!(tree.snapshot().unwrap(), before);
    k.clear_faults().unwrap();
    w(&k, drv_attr("igb", "unbind"), "0000:03:00.0").unwrap();
}

#[test]
fn injected_block_delays_the_write() {
    let tree = x86_desktop().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    k.add_fault(Fault {
        when: FaultMatch {
            path_contains: Some("unbind".into()),
            ..FaultMatch::default()
        },
        action: FaultAction::Block { millis: 300 },
    })
    .unwrap();
    let start = Instant::now();
    w(&k, drv_attr("igb", "unbind"), "0000:03:00.0").unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(driver(&tree, "0000:03:00.0"), None);
}

#[test]
fn injected_probe_without_bind_and_missing_vfio_node() {
    let tree = qemu_x86(QemuTopo::RootPorts).build_temp().unwrap();
    let k = tree.kernel().unwrap();
    let dev = "0000:01:00.0";
    w(&k, dev_attr(dev, "driver_override"), "vfio-pci").unwrap();
    w(&k, drv_attr("e1000e", "unbind"), dev).unwrap();
    k.add_fault(Fault {
        when: FaultMatch {
            path_contains: Some("vfio-pci/bind".into()),
            ..FaultMatch::default()
        },
        action: FaultAction::ProbeNoBind,
    })
    .unwrap();
    w(&k, drv_attr("vfio-pci", "bind"), dev).unwrap();
    assert_eq!(driver(&tree, dev), None);
    k.clear_faults().unwrap();
    k.add_fault(Fault {
        when: FaultMatch::default(),
        action: FaultAction::NoVfioNode,
    })
    .unwrap();
    w(&k, drv_attr("vfio-pci", "bind"), dev).unwrap();
    assert_eq!(driver(&tree, dev).as_deref(), Some("vfio-pci"));
    assert!(!exists(&tree, "dev/vfio/4"));
}

#[test]
fn injected_unplug_after_a_step_removes_the_subtree() {
    let tree = qemu_x86(QemuTopo::Switch).build_temp().unwrap();
    let k = tree.kernel().unwrap();
    let step = k.steps_done() + 1;
    k.add_fault(Fault {
        when: FaultMatch {
            step: Some(step),
            ..FaultMatch::default()
        },
        action: FaultAction::Unplug(a("0000:02:01.0")),
    })
    .unwrap();
    w(&k, dev_attr("0000:04:00.0", "driver_override"), "vfio-pci").unwrap();
    assert!(exists(&tree, "sys/bus/pci/devices/0000:04:00.0"));
    w(&k, dev_attr("0000:03:00.0", "driver_override"), "vfio-pci").unwrap();
    for gone in [
        "sys/bus/pci/devices/0000:02:01.0",
        "sys/bus/pci/devices/0000:04:00.0",
        "sys/bus/pci/drivers/e1000e/0000:04:00.0",
        "sys/bus/pci/drivers/pcieport/0000:02:01.0",
        "sys/kernel/iommu_groups/5",
        "sys/class/net/eth1",
        "sys/devices/pci0000:00/0000:00:10.0/0000:01:00.0/0000:02:01.0",
    ] {
        assert!(!exists(&tree, gone), "{gone}");
    }
    assert!(exists(&tree, "sys/bus/pci/devices/0000:03:00.0"));
    // Writes to the vanished device fail like on a real host.
    assert_eq!(
        errno_of(w(&k, dev_attr("0000:04:00.0", "driver_override"), "\n")),
        ENOENT
    );
    assert_eq!(
        errno_of(w(&k, "/sys/bus/pci/drivers_probe", "0000:04:00.0")),
        ENODEV
    );
    // Every remaining link still resolves.
    for (path, entry) in tree.snapshot().unwrap().0 {
        if let vfioctl_sim::Entry::Link(_) = entry {
            assert!(tree.root().join(&path).exists(), "dangling {path}");
        }
    }
}

/// Child half of `crash_after_write_aborts_the_process`: run in a subprocess.
#[test]
#[ignore = "run by crash_after_write_aborts_the_process in a child process"]
fn crash_child() {
    let Some(root) = std::env::var_os("VFIOCTL_SIM_CRASH_ROOT") else {
        return;
    };
    let k = SimKernel::open(Path::new(&root)).unwrap();
    for dev in ["0000:01:00.0", "0000:02:00.0"] {
        w(&k, dev_attr(dev, "driver_override"), "vfio-pci").unwrap();
    }
    w(&k, drv_attr("e1000e", "unbind"), "0000:01:00.0").unwrap();
}

#[test]
fn crash_after_write_aborts_the_process() {
    let tree = qemu_x86(QemuTopo::RootPorts).build_temp().unwrap();
    let k = tree.kernel().unwrap();
    k.set_crash_after_write(Some(2)).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--ignored", "--nocapture"])
        .env("VFIOCTL_SIM_CRASH_ROOT", tree.root())
        .output()
        .unwrap()
        .status;
    assert!(!status.success());
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(6), "SIGABRT");
    }
    assert_eq!(k.writes_done(), 2);
    // Both writes took effect; the third never happened.
    assert_eq!(
        read(&tree, "sys/bus/pci/devices/0000:02:00.0/driver_override"),
        "vfio-pci\n"
    );
    assert_eq!(driver(&tree, "0000:01:00.0").as_deref(), Some("e1000e"));
}

#[test]
fn concurrent_writers_each_see_whole_writes() {
    let tree = x86_desktop().build_temp().unwrap();
    let root = tree.root().to_path_buf();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let root = root.clone();
            std::thread::spawn(move || {
                let k = SimKernel::open(&root).unwrap();
                for j in 0..10 {
                    let v = if (i + j) % 2 == 0 { "vfio-pci" } else { "\n" };
                    w(&k, dev_attr("0000:04:00.0", "driver_override"), v).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let k = tree.kernel().unwrap();
    assert_eq!(k.writes_done(), 40);
    assert_eq!(k.steps_done(), 40);
    let v = read(&tree, "sys/bus/pci/devices/0000:04:00.0/driver_override");
    assert!(v == "vfio-pci\n" || v == "(null)\n", "{v:?}");
}

#[test]
fn gpu_passthrough_and_restore_leave_the_tree_as_it_began() {
    let tree = x86_desktop().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    let before = tree.snapshot().unwrap();
    let funcs = [
        ("0000:01:00.0", "nvidia"),
        ("0000:01:00.1", "snd_hda_intel"),
    ];
    for (dev, drv) in funcs {
        w(&k, dev_attr(dev, "driver_override"), "vfio-pci").unwrap();
        w(&k, drv_attr(drv, "unbind"), dev).unwrap();
        w(&k, drv_attr("vfio-pci", "bind"), dev).unwrap();
    }
    assert!(exists(&tree, "dev/vfio/1"));
    assert_ne!(tree.snapshot().unwrap(), before);
    for (dev, drv) in funcs {
        w(&k, drv_attr("vfio-pci", "unbind"), dev).unwrap();
        w(&k, dev_attr(dev, "driver_override"), "\n").unwrap();
        w(&k, "/sys/bus/pci/drivers_probe", dev).unwrap();
        assert_eq!(driver(&tree, dev).as_deref(), Some(drv));
    }
    let after = tree.snapshot().unwrap();
    assert_eq!(after.diff(&before), Vec::<String>::new());
    assert_eq!(after, before);
    // A leftover dynamic ID shows up as a difference.
    w(&k, drv_attr("vfio-pci", "new_id"), "1b4b 9230").unwrap();
    assert_eq!(
        tree.snapshot().unwrap().diff(&before),
        vec![".vfioctl-sim/kernel.json".to_owned()]
    );
}

#[test]
fn device_remove_attribute_unplugs() {
    let tree = qemu_x86(QemuTopo::PciBridge).build_temp().unwrap();
    let k = tree.kernel().unwrap();
    w(&k, dev_attr("0000:01:00.0", "remove"), "1").unwrap();
    assert!(!exists(&tree, "sys/bus/pci/devices/0000:01:00.0"));
    assert!(!exists(&tree, "sys/bus/pci/devices/0000:02:02.0"));
    assert!(!exists(&tree, "sys/kernel/iommu_groups/3"));
    assert!(exists(&tree, "sys/bus/pci/devices/0000:00:10.0"));
}

#[test]
fn unplugging_a_vf_drops_its_virtfn_link() {
    let tree = qemu_x86(QemuTopo::Sriov).build_temp().unwrap();
    assert!(SimKernel::is_simulated(tree.root()));
    let k = tree.kernel().unwrap();
    let pf = "sys/devices/pci0000:00/0000:00:10.0/0000:01:00.0";
    assert!(exists(&tree, &format!("{pf}/virtfn1")));
    k.unplug(a("0000:01:10.2")).unwrap();
    assert!(exists(&tree, &format!("{pf}/virtfn0")));
    assert!(!exists(&tree, &format!("{pf}/virtfn1")));
    assert!(!exists(&tree, "sys/class/net/eth2"));
}

#[test]
fn reset_method_accepts_supported_methods_and_default() {
    let tree = x86_desktop().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    let nic = "0000:03:00.0";
    let attr = "sys/bus/pci/devices/0000:03:00.0/reset_method";
    assert_eq!(read(&tree, attr), "flr bus\n");
    w(&k, dev_attr(nic, "reset_method"), "bus").unwrap();
    assert_eq!(read(&tree, attr), "bus\n");
    assert_eq!(
        errno_of(w(&k, dev_attr(nic, "reset_method"), "device_specific")),
        EINVAL
    );
    w(&k, dev_attr(nic, "reset_method"), "default").unwrap();
    assert_eq!(read(&tree, attr), "flr bus\n");
}

#[test]
fn build_refuses_a_binding_to_an_unloaded_driver() {
    let mut b = x86_desktop();
    b.device_mut("0000:01:00.0").unwrap().driver = Some("nouveau".into());
    assert_eq!(
        b.build_temp().unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
}

#[test]
fn blacklisted_modules_show_in_modprobe_d() {
    let mut b = ten64();
    b.set_module_state("vfio_pci", vfioctl_sim::ModuleState::Blacklisted);
    let tree = b.build_temp().unwrap();
    assert_eq!(
        read(&tree, "etc/modprobe.d/blacklist-vfioctl-sim.conf"),
        "blacklist vfio_pci\n"
    );
    assert!(matches!(
        tree.kernel().unwrap().load_module("vfio-pci"),
        Err(SimModuleError::Blacklisted(_))
    ));
    // The desktop's nouveau blacklist is in its own file, not repeated.
    let desktop = x86_desktop().build_temp().unwrap();
    assert!(!exists(
        &desktop,
        "etc/modprobe.d/blacklist-vfioctl-sim.conf"
    ));
}

#[test]
fn unloading_a_module_is_refused_while_its_driver_has_a_device() {
    let tree = ten64().build_temp().unwrap();
    let k = tree.kernel().unwrap();
    k.load_module("vfio-pci").unwrap();
    assert!(exists(&tree, "sys/bus/pci/drivers/vfio-pci"));
    w(&k, dev_attr("0001:04:00.0", "driver_override"), "vfio-pci").unwrap();
    w(&k, "/sys/bus/pci/drivers_probe", "0001:04:00.0").unwrap();
    assert_eq!(driver(&tree, "0001:04:00.0").as_deref(), Some("vfio-pci"));
    assert!(matches!(
        k.unload_module("vfio-pci"),
        Err(SimModuleError::InUse(_))
    ));
    w(&k, drv_attr("vfio-pci", "unbind"), "0001:04:00.0").unwrap();
    k.unload_module("vfio_pci").unwrap();
    assert!(!exists(&tree, "sys/bus/pci/drivers/vfio-pci"));
    assert!(!exists(&tree, "sys/module/vfio_pci"));
    // Not loaded: nothing to do. Built in: refused.
    k.unload_module("vfio-pci").unwrap();
    assert!(matches!(
        k.unload_module("nvme"),
        Err(SimModuleError::InUse(_))
    ));
    assert!(matches!(
        k.unload_module("no-such-module"),
        Err(SimModuleError::NotFound(_))
    ));
}
