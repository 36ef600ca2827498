//! Injected faults, crashes and concurrent writers.

use std::path::Path;
use std::time::{Duration, Instant};

use pretty_assertions::assert_eq;
use vfioctl_sim::topology::{qemu_x86, x86_desktop};
use vfioctl_sim::{Errno, Fault, FaultAction, FaultMatch, QemuTopo, SimKernel};

use crate::support::{
    EBUSY, ENODEV, ENOENT, a, dev_attr, driver, drv_attr, errno_of, exists, read, w,
};

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
        .args(["--exact", "faults::crash_child", "--ignored", "--nocapture"])
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
