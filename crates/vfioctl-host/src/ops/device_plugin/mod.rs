//! `device-plugin`: a kubelet device plugin (API v1beta1) that advertises whole IOMMU groups.
//!
//! At start it binds every advertised group through the same plan, lock and journal as `bind`
//! (owner `device-plugin:<resource>`); it serves one socket per resource in the plugin directory
//! and registers each with the kubelet; it polls its devices' health and the kubelet's socket;
//! and at SIGTERM or SIGINT it stops serving and gives back what it bound. The async runtime
//! lives here only, for gRPC; everything else is the synchronous use cases.

mod health;
mod kubelet;
mod service;

pub use kubelet::RegisterError;
pub use vfioctl_kubelet_api::DEVICE_PLUGIN_PATH;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use vfioctl_core::Owner;
use vfioctl_core::deviceplugin::{Advertised, PluginConfig, advertised};
use vfioctl_core::plan::BindOptions;
use vfioctl_kubelet_api::v1beta1::Device;
use vfioctl_kubelet_api::v1beta1::device_plugin_server::DevicePluginServer;

use super::bind::{BindOutcome, BindRequest, bind};
use super::ready::read_ready;
use super::restore::{RestoreRequest, RestoreTargets, restore};
use super::{Host, OpError};
use crate::executor::Timeouts;

/// How often health and the kubelet's socket are looked at: well inside the second in which a
/// vanished device must turn unhealthy.
pub const POLL: Duration = Duration::from_millis(250);

/// What the plugin is asked to do.
#[derive(Debug, Clone)]
pub struct PluginRequest {
    /// The resources.
    pub config: PluginConfig,
    /// Where `kubelet.sock` is and the plugin's sockets go.
    pub plugin_dir: PathBuf,
    /// How long binds and give-backs may wait.
    pub timeouts: Timeouts,
}

/// Something the plugin did, for the caller to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A group is advertised (and bound) under a resource.
    Advertised {
        /// The resource.
        resource: String,
        /// The device ID.
        id: String,
        /// The group number and its endpoints.
        group: u32,
        /// The endpoints.
        members: Vec<String>,
    },
    /// A group matched a resource but could not be bound; it is not advertised.
    Skipped {
        /// The resource.
        resource: String,
        /// The device ID.
        id: String,
        /// Why.
        reason: String,
    },
    /// A resource was registered with the kubelet.
    Registered {
        /// The resource.
        resource: String,
        /// Its socket.
        socket: PathBuf,
    },
    /// A registration failed; it is tried again on the next poll.
    RegisterFailed {
        /// The resource.
        resource: String,
        /// Why.
        reason: String,
    },
    /// A device's health changed.
    Health {
        /// The resource.
        resource: String,
        /// The device ID.
        id: String,
        /// `None` when healthy again, else why not.
        problem: Option<String>,
    },
    /// Devices were allocated to a container.
    Allocated {
        /// The resource.
        resource: String,
        /// The device IDs.
        devices: Vec<String>,
    },
    /// An allocation was refused.
    AllocateRefused {
        /// The resource.
        resource: String,
        /// Why.
        reason: String,
    },
    /// The plugin is stopping and giving its devices back.
    Stopping,
}

/// Receives the plugin's events.
pub type Events = Arc<dyn Fn(Event) + Send + Sync>;

/// Why the plugin stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// Reading, binding or giving back failed.
    #[error(transparent)]
    Op(#[from] OpError),
    /// The plugin directory cannot be used.
    #[error("cannot use {path}")]
    Socket {
        /// The socket or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The async runtime or a signal handler could not be set up.
    #[error("cannot start the gRPC runtime")]
    Runtime(#[source] std::io::Error),
    /// Some devices could not be given back at the end; the journal keeps them.
    #[error("giving back failed for {0}")]
    GiveBack(String),
}

/// How the plugin ended.
#[derive(Debug, Clone, Default)]
pub struct PluginReport {
    /// The resources served, each with its device count.
    pub served: Vec<(String, usize)>,
}

/// The socket file of `resource`: `vfioctl-` and the resource with `/` turned into `_`.
pub fn socket_name(resource: &str) -> String {
    format!("vfioctl-{}.sock", resource.replace('/', "_"))
}

/// Binds each group `config` advertises, one transaction per group, so a refused group leaves
/// the others advertised.
fn bind_advertised(
    host: &Host,
    request: &PluginRequest,
    events: &Events,
) -> Result<Vec<Advertised>, OpError> {
    let (_, ready) = read_ready(host)?;
    let mut bound = Vec::new();
    for device in advertised(&request.config, &ready) {
        let report = bind(
            host,
            &BindRequest {
                names: device.group.addresses().map(|a| a.to_string()).collect(),
                options: BindOptions::default(),
                dry_run: false,
                owner: Owner::DevicePlugin(device.resource.clone()),
                user: None,
                timeouts: request.timeouts,
            },
        );
        let reason = match report {
            Ok(r) => match r.outcome {
                BindOutcome::Bound | BindOutcome::NothingToDo => None,
                BindOutcome::Refused => Some(
                    r.plan
                        .blocking_refusals(false)
                        .iter()
                        .map(|x| x.text.clone())
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                BindOutcome::Failed(e) => Some(e.sentence()),
                BindOutcome::Planned => Some("only planned".to_owned()),
            },
            Err(e) => Some(e.sentence()),
        };
        match reason {
            None => {
                events(Event::Advertised {
                    resource: device.resource.clone(),
                    id: device.group.id.clone(),
                    group: device.group.group,
                    members: device.group.addresses().map(|a| a.to_string()).collect(),
                });
                bound.push(device);
            }
            Some(reason) => events(Event::Skipped {
                resource: device.resource.clone(),
                id: device.group.id.clone(),
                reason,
            }),
        }
    }
    Ok(bound)
}

/// Gives back every device the plugin's resources own.
fn give_back(host: &Host, request: &PluginRequest) -> Result<(), PluginError> {
    let mut failed = Vec::new();
    for resource in &request.config.resources {
        let report = restore(
            host,
            &RestoreRequest {
                targets: RestoreTargets::Owned(Vec::new()),
                on_behalf: Some(Owner::DevicePlugin(resource.name.clone())),
                force: false,
                dry_run: false,
                timeouts: request.timeouts,
            },
        )?;
        if report.failed() {
            failed.push(resource.name.clone());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(PluginError::GiveBack(failed.join(", ")))
    }
}

/// One resource being served.
struct Served {
    resource: String,
    devices: Vec<Advertised>,
    list: watch::Sender<Vec<Device>>,
    health: Vec<Option<String>>,
    server: Option<JoinHandle<()>>,
    /// The kubelet (its socket's identity) this resource is registered with.
    registered_with: Option<kubelet::SocketId>,
}

impl Served {
    fn socket(&self, dir: &Path) -> PathBuf {
        dir.join(socket_name(&self.resource))
    }

    /// (Re)creates the socket and serves on it.
    fn listen(&mut self, host: &Host, dir: &Path, events: &Events) -> Result<(), PluginError> {
        if let Some(old) = self.server.take() {
            old.abort();
        }
        let path = self.socket(dir);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(PluginError::Socket { path, source: e });
            }
            _ => {}
        }
        let listener = tokio::net::UnixListener::bind(&path)
            .map_err(|source| PluginError::Socket { path, source })?;
        let service = service::Service {
            resource: self.resource.clone(),
            devices: self.devices.clone(),
            root: host.root().clone(),
            list: self.list.subscribe(),
            events: Arc::clone(events),
        };
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        self.server = Some(tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(DevicePluginServer::new(service))
                .serve_with_incoming(incoming)
                .await;
        }));
        Ok(())
    }
}

/// Runs the plugin until SIGTERM or SIGINT, then gives its devices back.
pub fn serve(
    host: &Host,
    request: &PluginRequest,
    events: &Events,
) -> Result<PluginReport, PluginError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(PluginError::Runtime)?;
    let bound = bind_advertised(host, request, events)?;
    let result = runtime.block_on(run(host, request, events, bound));
    events(Event::Stopping);
    let given = give_back(host, request);
    let report = result?;
    given?;
    Ok(report)
}

async fn run(
    host: &Host,
    request: &PluginRequest,
    events: &Events,
    bound: Vec<Advertised>,
) -> Result<PluginReport, PluginError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(PluginError::Runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(PluginError::Runtime)?;
    let dir = &request.plugin_dir;
    let mut served: Vec<Served> = Vec::new();
    for resource in &request.config.resources {
        let devices: Vec<Advertised> = bound
            .iter()
            .filter(|d| d.resource == resource.name)
            .cloned()
            .collect();
        let inv = health::read(host.root(), &devices);
        let checks = health::check(&inv, &devices);
        let (list, _) = watch::channel(health::list(&devices, &checks));
        served.push(Served {
            resource: resource.name.clone(),
            health: checks
                .iter()
                .map(|c| c.as_ref().err().map(ToString::to_string))
                .collect(),
            devices,
            list,
            server: None,
            registered_with: None,
        });
    }
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => {}
        }
        let kubelet = kubelet::socket_id(dir);
        for s in &mut served {
            // The kubelet removes every plugin socket when it starts.
            let ours = s.socket(dir).exists();
            if kubelet.is_none() || (s.registered_with == kubelet && ours) {
                continue;
            }
            // A new kubelet removed every plugin socket, or never saw ours: serve afresh and
            // register; a failed registration is tried again on the next tick.
            s.listen(host, dir, events)?;
            let endpoint = socket_name(&s.resource);
            match kubelet::register(dir, &endpoint, &s.resource).await {
                Ok(()) => {
                    s.registered_with = kubelet;
                    events(Event::Registered {
                        resource: s.resource.clone(),
                        socket: s.socket(dir),
                    });
                }
                Err(e) => events(Event::RegisterFailed {
                    resource: s.resource.clone(),
                    reason: crate::executor::chain(&e),
                }),
            }
        }
        let all: Vec<Advertised> = served.iter().flat_map(|s| s.devices.clone()).collect();
        let inv = health::read(host.root(), &all);
        for s in &mut served {
            let checks = health::check(&inv, &s.devices);
            for ((device, was), now) in s.devices.iter().zip(&mut s.health).zip(&checks) {
                let problem = now.as_ref().err().map(ToString::to_string);
                if *was != problem {
                    events(Event::Health {
                        resource: s.resource.clone(),
                        id: device.group.id.clone(),
                        problem: problem.clone(),
                    });
                    *was = problem;
                }
            }
            let list = health::list(&s.devices, &checks);
            s.list.send_if_modified(|old| {
                let changed = *old != list;
                if changed {
                    old.clone_from(&list);
                }
                changed
            });
        }
    }
    let mut report = PluginReport::default();
    for s in &mut served {
        if let Some(server) = s.server.take() {
            server.abort();
        }
        let _ = std::fs::remove_file(s.socket(dir));
        report.served.push((s.resource.clone(), s.devices.len()));
    }
    Ok(report)
}
