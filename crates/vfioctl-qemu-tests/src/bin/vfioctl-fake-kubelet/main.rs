//! A fake kubelet for the guest, written from the device plugin API (v1beta1): it serves
//! `Registration` on `DIR/kubelet.sock`, waits for RESOURCE to register, then calls the plugin as
//! the kubelet does (`GetDevicePluginOptions`, `ListAndWatch`, `Allocate` of every device) and
//! checks the answer on the real kernel: each host path exists, and `VFIO_GROUP_GET_STATUS` on
//! each group node says viable. `PCI_RESOURCE_<NAME>` must hold exactly ADDRESSES.
//!
//! Usage: `vfioctl-fake-kubelet DIR RESOURCE ADDRESSES` (ADDRESSES comma-separated). Exit 0 when
//! every check passes; each check is one line on standard output.
//!
//! `vfioctl-fake-kubelet DIR RESOURCE --watch SECONDS` only registers and holds `ListAndWatch`
//! open for SECONDS, printing `registered` when the stream is open and the number of updates at
//! the end: the idle plugin `bench/bench.py` measures.

#[path = "../vfioctl-guest-check/vfio.rs"]
#[expect(
    dead_code,
    reason = "the guest check's VFIO helpers; the fake kubelet needs only the group status"
)]
mod vfio;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tokio_stream::StreamExt as _;
use tonic::transport::{Endpoint, Server, Uri};
use tonic::{Request, Response, Status};
use vfioctl_kubelet_api::v1beta1::device_plugin_client::DevicePluginClient;
use vfioctl_kubelet_api::v1beta1::registration_server::{Registration, RegistrationServer};
use vfioctl_kubelet_api::v1beta1::{
    AllocateRequest, ContainerAllocateRequest, Empty, RegisterRequest,
};

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<RegisterRequest>>>);

#[tonic::async_trait]
impl Registration for Recorder {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        if let Ok(mut seen) = self.0.lock() {
            seen.push(request.into_inner());
        }
        Ok(Response::new(Empty {}))
    }
}

fn check(ok: bool, what: String) -> Result<(), String> {
    println!("{} {what}", if ok { "ok:" } else { "FAILED:" });
    if ok { Ok(()) } else { Err(what) }
}

/// What to do once the plugin registered.
enum Mode {
    /// Allocate and check, expecting these addresses.
    Check(String),
    /// Hold `ListAndWatch` open this long.
    Watch(Duration),
}

async fn run(dir: PathBuf, resource: String, mode: Mode) -> Result<(), String> {
    let recorder = Recorder::default();
    let socket = dir.join(vfioctl_kubelet_api::KUBELET_SOCKET);
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket)
        .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    let server = Server::builder()
        .add_service(RegistrationServer::new(recorder.clone()))
        .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener));
    tokio::spawn(server);
    let start = Instant::now();
    let registration = loop {
        let found = recorder
            .0
            .lock()
            .ok()
            .and_then(|r| r.iter().find(|r| r.resource_name == resource).cloned());
        if let Some(r) = found {
            break r;
        }
        if start.elapsed() > Duration::from_secs(60) {
            return check(false, format!("{resource} registered within 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    check(
        registration.version == vfioctl_kubelet_api::VERSION,
        format!(
            "{resource} registered with version {}",
            registration.version
        ),
    )?;
    let path = dir.join(&registration.endpoint);
    let channel = Endpoint::from_static("http://[::]:50051")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .map_err(|e| format!("cannot connect to the plugin: {e}"))?;
    let mut client = DevicePluginClient::new(channel);
    client
        .get_device_plugin_options(Empty {})
        .await
        .map_err(|e| format!("GetDevicePluginOptions: {e}"))?;
    let mut stream = client
        .list_and_watch(Empty {})
        .await
        .map_err(|e| format!("ListAndWatch: {e}"))?
        .into_inner();
    let list = stream
        .next()
        .await
        .ok_or("ListAndWatch ended")?
        .map_err(|e| format!("ListAndWatch: {e}"))?;
    let addresses = match mode {
        Mode::Check(addresses) => addresses,
        Mode::Watch(span) => {
            println!("registered");
            let mut updates = 0;
            let end = tokio::time::sleep(span);
            tokio::pin!(end);
            loop {
                tokio::select! {
                    () = &mut end => break,
                    next = stream.next() => match next {
                        Some(Ok(_)) => updates += 1,
                        _ => break,
                    },
                }
            }
            println!("updates: {updates}");
            return Ok(());
        }
    };
    check(
        list.devices.len() == 1 && list.devices[0].health == vfioctl_kubelet_api::HEALTHY,
        format!("ListAndWatch lists one healthy device: {:?}", list.devices),
    )?;
    let answer = client
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: list.devices.iter().map(|d| d.id.clone()).collect(),
            }],
        })
        .await
        .map_err(|e| format!("Allocate: {e}"))?
        .into_inner();
    let container = answer
        .container_responses
        .first()
        .ok_or("Allocate answered no container")?;
    let var = format!(
        "PCI_RESOURCE_{}",
        resource.to_uppercase().replace(['/', '.'], "_")
    );
    check(
        container.envs.get(&var) == Some(&addresses),
        format!("{var}={:?}", container.envs.get(&var)),
    )?;
    check(
        container
            .devices
            .iter()
            .any(|d| d.host_path == "/dev/vfio/vfio"),
        "the answer holds /dev/vfio/vfio".to_owned(),
    )?;
    for d in &container.devices {
        check(
            Path::new(&d.host_path).exists() && d.permissions == "rw",
            format!("{} exists ({})", d.host_path, d.permissions),
        )?;
        if d.host_path != "/dev/vfio/vfio" {
            let flags = vfio::group_status(Path::new(&d.host_path))?;
            check(
                flags & vfio::VFIO_GROUP_FLAGS_VIABLE != 0,
                format!("VFIO_GROUP_GET_STATUS on {} says viable", d.host_path),
            )?;
        }
    }
    Ok(())
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: vfioctl-fake-kubelet DIR RESOURCE ADDRESSES | vfioctl-fake-kubelet DIR RESOURCE --watch SECONDS"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, resource, mode) = match args.as_slice() {
        [dir, resource, flag, secs] if flag == "--watch" => match secs.parse() {
            Ok(secs) => (dir, resource, Mode::Watch(Duration::from_secs(secs))),
            Err(_) => return usage(),
        },
        [dir, resource, addresses] => (dir, resource, Mode::Check(addresses.clone())),
        _ => return usage(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(dir.into(), resource.clone(), mode)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vfioctl-fake-kubelet: {e}");
            ExitCode::FAILURE
        }
    }
}
