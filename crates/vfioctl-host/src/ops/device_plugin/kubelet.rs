//! Talking to the kubelet: registering a resource on `kubelet.sock`, and noticing when the
//! kubelet re-creates that socket (it restarted and forgot every plugin).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Endpoint, Uri};
use vfioctl_kubelet_api::v1beta1::registration_client::RegistrationClient;
use vfioctl_kubelet_api::v1beta1::{DevicePluginOptions, RegisterRequest};
use vfioctl_kubelet_api::{KUBELET_SOCKET, VERSION};

/// The identity of the kubelet's socket file: a new file means a new kubelet. The inode alone
/// does not tell, since a file made right after one is deleted often gets its number back; the
/// change time does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SocketId {
    dev: u64,
    ino: u64,
    ctime: (i64, i64),
}

/// The kubelet socket's identity now, `None` while there is none.
pub(super) fn socket_id(dir: &Path) -> Option<SocketId> {
    std::fs::metadata(dir.join(KUBELET_SOCKET))
        .ok()
        .map(|m| SocketId {
            dev: m.dev(),
            ino: m.ino(),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
}

/// The options the plugin registers with, and answers `GetDevicePluginOptions` with.
pub(super) fn options() -> DevicePluginOptions {
    DevicePluginOptions {
        pre_start_required: false,
        get_preferred_allocation_available: true,
    }
}

/// Opens a gRPC channel over the unix socket `path` (the URI is a placeholder tonic needs).
pub(super) async fn connect(
    path: PathBuf,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    Endpoint::from_static("http://[::]:50051")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
}

/// Why a registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The kubelet's socket could not be reached.
    #[error("cannot connect to {path}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: tonic::transport::Error,
    },
    /// The kubelet refused the registration.
    #[error("the kubelet refused the registration: {}", .0.message())]
    Refused(tonic::Status),
}

/// Registers `resource`, served on `endpoint` (a file name in `dir`), with the kubelet.
pub(super) async fn register(
    dir: &Path,
    endpoint: &str,
    resource: &str,
) -> Result<(), RegisterError> {
    let path = dir.join(KUBELET_SOCKET);
    let channel = connect(path.clone())
        .await
        .map_err(|source| RegisterError::Connect { path, source })?;
    RegistrationClient::new(channel)
        .register(RegisterRequest {
            version: VERSION.to_owned(),
            endpoint: endpoint.to_owned(),
            resource_name: resource.to_owned(),
            options: Some(options()),
        })
        .await
        .map_err(RegisterError::Refused)?;
    Ok(())
}
