//! A fake kubelet, written from the device plugin API (v1beta1): the `Registration` server on
//! `kubelet.sock` in a plugin directory, recording each `RegisterRequest`, and a client that calls
//! a plugin's socket as the kubelet's device manager does.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint, Server, Uri};
use tonic::{Request, Response, Status};
use vfioctl_kubelet_api::v1beta1::device_plugin_client::DevicePluginClient;
use vfioctl_kubelet_api::v1beta1::registration_server::{Registration, RegistrationServer};
use vfioctl_kubelet_api::v1beta1::{Empty, RegisterRequest};

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<RegisterRequest>>>);

#[tonic::async_trait]
impl Registration for Recorder {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        let request = request.into_inner();
        if request.version != vfioctl_kubelet_api::VERSION {
            return Err(Status::invalid_argument("unsupported version"));
        }
        self.0.lock().unwrap().push(request);
        Ok(Response::new(Empty {}))
    }
}

/// The fake kubelet.
pub(crate) struct FakeKubelet {
    pub(crate) rt: Runtime,
    pub(crate) dir: PathBuf,
    recorder: Recorder,
    server: Option<JoinHandle<()>>,
}

impl FakeKubelet {
    /// Serves `Registration` on `dir/kubelet.sock`.
    pub(crate) fn start(dir: &Path) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut kubelet = Self {
            rt,
            dir: dir.to_owned(),
            recorder: Recorder::default(),
            server: None,
        };
        kubelet.listen();
        kubelet
    }

    fn listen(&mut self) {
        let path = self.dir.join("kubelet.sock");
        let _ = std::fs::remove_file(&path);
        let recorder = self.recorder.clone();
        let _guard = self.rt.enter();
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        self.server = Some(self.rt.spawn(async move {
            let _ = Server::builder()
                .add_service(RegistrationServer::new(recorder))
                .serve_with_incoming(incoming)
                .await;
        }));
    }

    /// A kubelet restart: the socket is deleted and made again by a new server, and (as the
    /// kubelet's device manager does at start) every other socket in the directory is removed.
    pub(crate) fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "sock") {
                std::fs::remove_file(path).unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        self.listen();
    }

    /// Every registration so far.
    pub(crate) fn registrations(&self) -> Vec<RegisterRequest> {
        self.recorder.0.lock().unwrap().clone()
    }

    /// Waits until there are `n` registrations.
    pub(crate) fn wait_for(&self, n: usize, within: Duration) -> Vec<RegisterRequest> {
        let start = Instant::now();
        loop {
            let got = self.registrations();
            if got.len() >= n || start.elapsed() > within {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A client of the plugin socket `endpoint` (as registered: a name in the directory).
    pub(crate) fn plugin(&self, endpoint: &str) -> DevicePluginClient<Channel> {
        let path = self.dir.join(endpoint);
        let channel = self
            .rt
            .block_on(
                Endpoint::from_static("http://[::]:50051").connect_with_connector(
                    tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(
                                tokio::net::UnixStream::connect(path).await?,
                            ))
                        }
                    }),
                ),
            )
            .unwrap();
        DevicePluginClient::new(channel)
    }
}
