//! Facts the planner needs about how the host uses its devices, and handing group nodes to users.
//!
//! Carrying out plans lives in [`crate::executor`] and [`crate::transaction`]; their types are
//! re-exported here for the callers that knew them from this module.

use std::path::Path;

use crate::{HostError, HostRoot};

pub use crate::executor::{
    Executor, StepError, Timeouts, WRITE_HELPER_OTHER_ERROR, chain, write_helper_exit_code,
};
pub use crate::hostuse::{host_uses, net_host_use};
pub use crate::transaction::{ApplyError, Rollback};

/// True when the `vfio-pci` driver is registered (module loaded or built in).
pub fn vfio_pci_loaded(root: &HostRoot) -> bool {
    Path::new(&root.join("sys/bus/pci/drivers/vfio-pci")).is_dir()
}

/// Gives `/dev/vfio/<group>` to `uid:gid` with mode 0600: only that user (and root) may open it,
/// never wider than the kernel's default.
pub fn give_group_node(root: &HostRoot, group: u32, uid: u32, gid: u32) -> Result<(), HostError> {
    give_node(root, &format!("dev/vfio/{group}"), uid, gid)
}

/// Gives the device node `rel` (`dev/vfio/devices/vfio0`, `dev/iommu`) to `uid:gid` with mode
/// 0600, as [`give_group_node`] does; a symlink is refused rather than followed.
pub fn give_node(root: &HostRoot, rel: &str, uid: u32, gid: u32) -> Result<(), HostError> {
    use std::os::unix::fs::PermissionsExt;
    let node = root.join(rel);
    let meta = std::fs::symlink_metadata(&node).map_err(|source| HostError::Read {
        path: node.clone(),
        source,
    })?;
    if meta.file_type().is_symlink() {
        return Err(HostError::BadLink { path: node });
    }
    std::os::unix::fs::lchown(&node, Some(uid), Some(gid)).map_err(|source| HostError::Write {
        path: node.clone(),
        value: format!("owner {uid}:{gid}"),
        source,
    })?;
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        HostError::Write {
            path: node.clone(),
            value: "mode 0600".to_owned(),
            source,
        }
    })
}
