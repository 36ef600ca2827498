//! The kubelet's device plugin API, version v1beta1 (`k8s.io/kubelet/pkg/apis/deviceplugin/
//! v1beta1/api.proto`), generated at build time from `proto/api.proto`.
//!
//! Both sides are here: the plugin's server and the kubelet's `Registration` client, which
//! vfioctl uses, and the kubelet's `Registration` server and the `DevicePlugin` client, which the
//! tests' fake kubelet uses.

#[expect(
    missing_docs,
    reason = "generated from the .proto, whose comments document it"
)]
pub mod v1beta1 {
    tonic::include_proto!("v1beta1");
}

/// The API version a plugin registers with (`pluginapi.Version`).
pub const VERSION: &str = "v1beta1";

/// The kubelet's registration socket, in the device plugin directory (`pluginapi.KubeletSocket`).
pub const KUBELET_SOCKET: &str = "kubelet.sock";

/// Where the kubelet looks for device plugin sockets (`pluginapi.DevicePluginPath`).
pub const DEVICE_PLUGIN_PATH: &str = "/var/lib/kubelet/device-plugins/";

/// `pluginapi.Healthy`.
pub const HEALTHY: &str = "Healthy";

/// `pluginapi.Unhealthy`.
pub const UNHEALTHY: &str = "Unhealthy";
