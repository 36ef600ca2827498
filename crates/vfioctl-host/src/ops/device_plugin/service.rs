//! The `DevicePlugin` service of one resource, as the kubelet calls it.

use std::pin::Pin;

use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};
use vfioctl_core::deviceplugin::{Advertised, allocation, health};
use vfioctl_kubelet_api::v1beta1::device_plugin_server::DevicePlugin;
use vfioctl_kubelet_api::v1beta1::{
    AllocateRequest, AllocateResponse, ContainerAllocateResponse,
    ContainerPreferredAllocationResponse, Device, DevicePluginOptions, DeviceSpec, Empty,
    ListAndWatchResponse, PreStartContainerRequest, PreStartContainerResponse,
    PreferredAllocationRequest, PreferredAllocationResponse,
};

use super::{Event, Events};
use crate::HostRoot;

/// One resource's devices, served to the kubelet.
pub(super) struct Service {
    pub(super) resource: String,
    pub(super) devices: Vec<Advertised>,
    pub(super) root: HostRoot,
    pub(super) list: watch::Receiver<Vec<Device>>,
    pub(super) events: Events,
}

impl Service {
    /// Re-checks the named devices and builds one container's answer.
    fn allocate_one(&self, ids: &[String]) -> Result<ContainerAllocateResponse, Status> {
        let mut chosen = Vec::new();
        for id in ids {
            let device = self
                .devices
                .iter()
                .find(|d| &d.group.id == id)
                .ok_or_else(|| {
                    Status::not_found(format!("{} has no device {id}", self.resource))
                })?;
            chosen.push(device.clone());
        }
        let inv = super::health::read(&self.root, &chosen);
        let mut groups = Vec::new();
        for device in &chosen {
            health(&inv, &device.group).map_err(|why| {
                Status::failed_precondition(format!(
                    "device {} is unusable: {why}",
                    device.group.id
                ))
            })?;
            let number = device
                .group
                .members
                .first()
                .and_then(|m| inv.get(&m.address))
                .and_then(|d| d.iommu_group)
                .unwrap_or(device.group.group);
            let node = self.root.join(format!("dev/vfio/{number}"));
            if !node.exists() {
                return Err(Status::failed_precondition(format!(
                    "device {} is unusable: {} does not exist",
                    device.group.id,
                    node.display()
                )));
            }
            groups.push((number, &device.group));
        }
        let answer = allocation(&self.resource, &groups);
        Ok(ContainerAllocateResponse {
            envs: answer.envs.into_iter().collect(),
            devices: answer
                .devices
                .into_iter()
                .map(|n| DeviceSpec {
                    container_path: n.container_path.clone(),
                    // The node on this machine: under --root, the tree's.
                    host_path: self
                        .root
                        .join(n.host_path.trim_start_matches('/'))
                        .display()
                        .to_string(),
                    permissions: n.permissions.to_owned(),
                })
                .collect(),
            ..ContainerAllocateResponse::default()
        })
    }
}

type ListStream = Pin<Box<dyn Stream<Item = Result<ListAndWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl DevicePlugin for Service {
    async fn get_device_plugin_options(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<DevicePluginOptions>, Status> {
        Ok(Response::new(super::kubelet::options()))
    }

    type ListAndWatchStream = ListStream;

    async fn list_and_watch(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListAndWatchStream>, Status> {
        // The stream starts with the list as it is and sends it again on every change.
        let stream = tokio_stream::wrappers::WatchStream::new(self.list.clone())
            .map(|devices| Ok(ListAndWatchResponse { devices }));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_preferred_allocation(
        &self,
        request: Request<PreferredAllocationRequest>,
    ) -> Result<Response<PreferredAllocationResponse>, Status> {
        let container_responses = request
            .into_inner()
            .container_requests
            .into_iter()
            .map(|r| {
                let size = usize::try_from(r.allocation_size).unwrap_or(0);
                let mut ids = r.must_include_device_i_ds.clone();
                for id in r.available_device_i_ds {
                    if ids.len() >= size {
                        break;
                    }
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                ContainerPreferredAllocationResponse { device_i_ds: ids }
            })
            .collect();
        Ok(Response::new(PreferredAllocationResponse {
            container_responses,
        }))
    }

    async fn allocate(
        &self,
        request: Request<AllocateRequest>,
    ) -> Result<Response<AllocateResponse>, Status> {
        let mut container_responses = Vec::new();
        for r in request.into_inner().container_requests {
            match self.allocate_one(&r.devices_ids) {
                Ok(answer) => {
                    (self.events)(Event::Allocated {
                        resource: self.resource.clone(),
                        devices: r.devices_ids.clone(),
                    });
                    container_responses.push(answer);
                }
                Err(status) => {
                    (self.events)(Event::AllocateRefused {
                        resource: self.resource.clone(),
                        reason: status.message().to_owned(),
                    });
                    return Err(status);
                }
            }
        }
        Ok(Response::new(AllocateResponse {
            container_responses,
        }))
    }

    async fn pre_start_container(
        &self,
        _: Request<PreStartContainerRequest>,
    ) -> Result<Response<PreStartContainerResponse>, Status> {
        Ok(Response::new(PreStartContainerResponse {}))
    }
}
