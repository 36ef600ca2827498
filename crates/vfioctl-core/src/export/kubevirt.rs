//! KubeVirt's `permittedHostDevices`: one `pciHostDevices` entry per identity of a ready group,
//! under the resource name the vfioctl device plugin advertises the group as, with
//! `externalResourceProvider: true` so that KubeVirt leaves the device to the plugin and reads the
//! addresses from `PCI_RESOURCE_<NAME>` (see [`env_var`]).

use serde::{Deserialize, Serialize};

use super::ReadyGroup;

/// One `pciHostDevices` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PciHostDevice {
    /// `VENDOR:DEVICE` in upper-case hex, as KubeVirt writes it.
    pub pci_vendor_selector: String,
    /// The Kubernetes resource name.
    pub resource_name: String,
    /// The device plugin is not KubeVirt's own.
    #[serde(default)]
    pub external_resource_provider: bool,
}

/// `permittedHostDevices`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermittedHostDevices {
    /// PCI devices.
    #[serde(default)]
    pub pci_host_devices: Vec<PciHostDevice>,
}

/// The name of the environment variable KubeVirt reads a resource's PCI addresses from:
/// `PCI_RESOURCE_` and the resource name upper-cased with `/` and `.` turned into `_`
/// (KubeVirt's `ResourceNameToEnvVar` with `PCIResourcePrefix`).
pub fn env_var(resource: &str) -> String {
    format!(
        "PCI_RESOURCE_{}",
        resource.to_uppercase().replace(['/', '.'], "_")
    )
}

/// The resource name of a group that no device plugin configuration names.
pub fn default_resource(group: &ReadyGroup) -> String {
    format!("vfioctl.io/{}", group.id)
}

/// `permittedHostDevices` for `groups`, each under the name `resource` gives it.
pub fn permitted(
    groups: &[ReadyGroup],
    resource: &dyn Fn(&ReadyGroup) -> String,
) -> PermittedHostDevices {
    let mut out = PermittedHostDevices::default();
    for group in groups {
        let name = resource(group);
        for m in &group.members {
            let entry = PciHostDevice {
                pci_vendor_selector: format!("{:04X}:{:04X}", m.id.vendor, m.id.device),
                resource_name: name.clone(),
                external_resource_provider: true,
            };
            if !out.pci_host_devices.contains(&entry) {
                out.pci_host_devices.push(entry);
            }
        }
    }
    out
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Configuration {
    permitted_host_devices: PermittedHostDevices,
}

#[derive(Serialize, Deserialize)]
struct Spec {
    configuration: Configuration,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Patch {
    spec: Spec,
}

/// A merge patch for the `KubeVirt` resource (`kubectl patch kubevirt kubevirt -n kubevirt
/// --type merge --patch-file FILE`), in YAML.
pub fn render(permitted: &PermittedHostDevices) -> Result<String, serde_yaml_ng::Error> {
    serde_yaml_ng::to_string(&Patch {
        spec: Spec {
            configuration: Configuration {
                permitted_host_devices: permitted.clone(),
            },
        },
    })
}

/// Finds `permittedHostDevices` in a YAML or JSON document: the `KubeVirt` resource, the patch
/// [`render`] writes, or the bare object.
pub fn parse(text: &str) -> Result<PermittedHostDevices, serde_yaml_ng::Error> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)?;
    let found = value
        .get("spec")
        .and_then(|s| s.get("configuration"))
        .and_then(|c| c.get("permittedHostDevices"))
        .or_else(|| value.get("permittedHostDevices"))
        .cloned()
        .unwrap_or(value);
    serde_yaml_ng::from_value(found)
}
