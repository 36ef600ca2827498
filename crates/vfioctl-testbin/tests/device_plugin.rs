//! The device plugin driven by a fake kubelet (tests/kubelet), on a simulated Ten64: resource
//! names, groups not functions, refused groups left out, Allocate's answer, health, a kubelet
//! restart, and SIGTERM giving everything back.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;
mod kubelet;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kubelet::FakeKubelet;
use tokio_stream::StreamExt as _;
use vfioctl_kubelet_api::v1beta1::{AllocateRequest, ContainerAllocateRequest, Empty};
use vfioctl_sim::topology::ten64;

const CONFIG: &str = r#"version = 1

[[resource]]
name = "vfioctl.io/wifi"                  # one function of a group: never advertised alone
select = [{ id = "168c:003e" }]

[[resource]]
name = "vfioctl.io/wifi-tpu"
select = [{ id = "168c:003e" }, { id = "1ac1:089a" }]

[[resource]]
name = "vfioctl.io/nvme"                  # the disk / is on: refused
select = [{ class = "0108" }]
"#;

struct Plugin {
    child: Child,
    kubelet: FakeKubelet,
    _dir: tempfile::TempDir,
}

fn start(root: &Path) -> Plugin {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("device-plugin.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let plugins = dir.path().join("device-plugins");
    std::fs::create_dir(&plugins).unwrap();
    let kubelet = FakeKubelet::start(&plugins);
    let child = Command::new(env!("CARGO_BIN_EXE_vfioctl-testbin"))
        .arg("--root")
        .arg(root)
        .arg("device-plugin")
        .arg("--config")
        .arg(&config)
        .arg("--plugin-dir")
        .arg(&plugins)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Plugin {
        child,
        kubelet,
        _dir: dir,
    }
}

impl Plugin {
    fn endpoint(&self, resource: &str) -> String {
        self.kubelet
            .registrations()
            .into_iter()
            .find(|r| r.resource_name == resource)
            .map(|r| r.endpoint)
            .unwrap_or_else(|| panic!("{resource} never registered"))
    }

    /// The first list `ListAndWatch` sends for `resource`, and the stream for the rest.
    fn first_list(&self, resource: &str) -> Vec<(String, String)> {
        let mut client = self.kubelet.plugin(&self.endpoint(resource));
        self.kubelet.rt.block_on(async {
            let mut stream = client.list_and_watch(Empty {}).await.unwrap().into_inner();
            let list = stream.next().await.unwrap().unwrap();
            list.devices.into_iter().map(|d| (d.id, d.health)).collect()
        })
    }

    fn stop(self) -> (Option<i32>, String) {
        let status = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = self.child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn names(plugin: &Plugin) -> BTreeSet<String> {
    plugin
        .kubelet
        .registrations()
        .into_iter()
        .map(|r| r.resource_name)
        .collect()
}

#[test]
fn the_plugin_serves_whole_groups_and_gives_them_back() {
    let tree = common::tree(ten64());
    let before = common::kernel_state(&tree);
    let plugin = start(tree.root());
    let first = plugin.kubelet.wait_for(3, Duration::from_secs(20));
    assert_eq!(first.len(), 3, "registrations: {first:?}");
    assert_eq!(
        names(&plugin),
        ["vfioctl.io/nvme", "vfioctl.io/wifi", "vfioctl.io/wifi-tpu"]
            .map(str::to_owned)
            .into()
    );
    assert!(first.iter().all(|r| {
        r.version == "v1beta1"
            && r.options
                .as_ref()
                .is_some_and(|o| o.get_preferred_allocation_available)
    }));
    // Groups, not functions: the Wi-Fi card and the TPU are one device.
    let listed = plugin.first_list("vfioctl.io/wifi-tpu");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].1, "Healthy");
    assert!(listed[0].0.starts_with("vfio-"));
    // A resource that names one function of the group gets nothing; the disk is refused.
    assert!(plugin.first_list("vfioctl.io/wifi").is_empty());
    assert!(plugin.first_list("vfioctl.io/nvme").is_empty());
    // The whole group is on vfio-pci, owned by the plugin.
    for dev in ["0001:03:00.0", "0001:04:00.0"] {
        assert_eq!(
            common::driver(tree.root(), dev).as_deref(),
            Some("vfio-pci")
        );
    }
    let journal = std::fs::read_to_string(tree.root().join("run/vfioctl/journal.json")).unwrap();
    assert!(
        journal.contains("device-plugin:vfioctl.io/wifi-tpu"),
        "{journal}"
    );

    let id = listed[0].0.clone();
    let mut client = plugin
        .kubelet
        .plugin(&plugin.endpoint("vfioctl.io/wifi-tpu"));
    let answer = plugin
        .kubelet
        .rt
        .block_on(client.allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec![id.clone()],
            }],
        }))
        .unwrap()
        .into_inner();
    let container = &answer.container_responses[0];
    assert_eq!(
        container
            .envs
            .get("PCI_RESOURCE_VFIOCTL_IO_WIFI-TPU")
            .map(String::as_str),
        Some("0001:03:00.0,0001:04:00.0")
    );
    let paths: Vec<&str> = container
        .devices
        .iter()
        .map(|d| d.container_path.as_str())
        .collect();
    let group = std::fs::read_link(
        tree.root()
            .join("sys/bus/pci/devices/0001:03:00.0/iommu_group"),
    )
    .unwrap();
    let group = group.file_name().unwrap().to_str().unwrap().to_owned();
    assert_eq!(
        paths,
        ["/dev/vfio/vfio".to_owned(), format!("/dev/vfio/{group}")]
    );
    for d in &container.devices {
        assert_eq!(d.permissions, "rw");
        assert!(
            Path::new(&d.host_path).exists(),
            "{} does not exist",
            d.host_path
        );
    }

    // The kubelet restarts: its socket is made again, and every resource registers again.
    let mut plugin = plugin;
    plugin.kubelet.restart();
    let again = plugin.kubelet.wait_for(6, Duration::from_secs(10));
    assert_eq!(again.len(), 6, "second registrations: {again:?}");
    assert_eq!(plugin.first_list("vfioctl.io/wifi-tpu").len(), 1);

    let (code, log) = plugin.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("giving the devices back"), "{log}");
    common::assert_same(&before, &common::kernel_state(&tree), "after SIGTERM");
}

#[test]
fn a_member_that_disappears_turns_the_device_unhealthy_within_a_second() {
    let tree = common::tree(ten64());
    let plugin = start(tree.root());
    assert_eq!(plugin.kubelet.wait_for(3, Duration::from_secs(20)).len(), 3);
    let mut client = plugin
        .kubelet
        .plugin(&plugin.endpoint("vfioctl.io/wifi-tpu"));
    let elapsed = plugin.kubelet.rt.block_on(async {
        let mut stream = client.list_and_watch(Empty {}).await.unwrap().into_inner();
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.devices[0].health, "Healthy");
        let removed = Instant::now();
        vfioctl_sim::hosts::half_remove(tree.root(), "0001:04:00.0".parse().unwrap()).unwrap();
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("no update within 5 s")
            .unwrap()
            .unwrap();
        assert_eq!(next.devices.len(), 1);
        assert_eq!(next.devices[0].health, "Unhealthy");
        removed.elapsed()
    });
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    // Allocate re-checks and refuses the broken group.
    let id = plugin.first_list("vfioctl.io/wifi-tpu")[0].0.clone();
    let refused = plugin.kubelet.rt.block_on(client.allocate(AllocateRequest {
        container_requests: vec![ContainerAllocateRequest {
            devices_ids: vec![id],
        }],
    }));
    let status = refused.expect_err("allocating a broken group");
    assert!(
        status.message().contains("0001:04:00.0"),
        "{}",
        status.message()
    );
    let (_, log) = plugin.stop();
    assert!(log.contains("is unhealthy: 0001:04:00.0"), "{log}");
}

#[test]
fn an_unknown_key_in_the_configuration_is_an_error_with_its_place() {
    let tree = common::tree(ten64());
    let file = tree.root().join("device-plugin.toml");
    for (name, text) in [
        (
            "plugin_config_unknown_key",
            "version = 1\n\n[[resource]]\nname = \"vfioctl.io/wifi\"\nselct = [{ id = \"168c:003e\" }]\n",
        ),
        (
            "plugin_config_unknown_selector_key",
            "version = 1\n[[resource]]\nname = \"vfioctl.io/wifi\"\nselect = [{ vendor = \"168c\" }]\n",
        ),
        (
            "plugin_config_bad_name",
            "version = 1\n[[resource]]\nname = \"wifi\"\nselect = [{ id = \"168c:003e\" }]\n",
        ),
        (
            "plugin_config_valid",
            "version = 1\n[[resource]]\nname = \"vfioctl.io/wifi\"\nselect = [{ id = \"168c:003e\" }, { class = \"0280\" }]\n",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        insta::assert_snapshot!(
            name,
            common::shown::shown(
                tree.root(),
                &format!("device-plugin --check-config --config {}", file.display())
            )
        );
    }
}

/// Before the command, `--config DIR` is the VM definitions' directory, which clap hands to the
/// plugin's own `--config FILE`: the error says why the read failed and which file is meant.
#[test]
fn a_directory_or_a_missing_file_as_the_configuration_is_explained() {
    let tree = common::tree(ten64());
    let vms = tree.root().join("etc/vfioctl/vms");
    std::fs::create_dir_all(&vms).unwrap();
    insta::assert_snapshot!(
        "plugin_config_is_a_directory",
        common::shown::shown(
            tree.root(),
            &format!("--config {} device-plugin --check-config", vms.display())
        )
    );
    insta::assert_snapshot!(
        "plugin_config_missing",
        common::shown::shown(
            tree.root(),
            &format!(
                "device-plugin --check-config --config {}",
                tree.root().join("nowhere.toml").display()
            )
        )
    );
}
