//! VF link settings (MAC, VLAN, trust, spoof checking): they live in the PF's driver and are
//! reached through rtnetlink on the PF's network interface (`RTM_GETLINK` with
//! `RTEXT_FILTER_VF`, `RTM_SETLINK` with `IFLA_VFINFO_LIST`), never through sysfs.
//!
//! [`VfLinks`] is the door: the running kernel speaks netlink ([`crate::netlink`]), the
//! simulated kernel keeps the same settings in its tree.

use std::io;

use vfioctl_core::sriov::{MacAddress, VfLink, VfLinkChange};

/// Reads and changes the VF link settings of a PF's interface.
pub trait VfLinks: Send + Sync {
    /// Every VF's settings on `interface`, by VF index.
    fn links(&self, interface: &str) -> io::Result<Vec<VfLink>>;
    /// Applies `change` to VF `index` of `interface`.
    fn set(&self, interface: &str, index: u32, change: &VfLinkChange) -> io::Result<()>;
    /// The permanent (burned-in) MAC of `interface` (`IFLA_PERM_ADDRESS`); `None` when the
    /// kernel does not report one (before Linux 5.6, or a device without one).
    fn permanent_address(&self, interface: &str) -> io::Result<Option<MacAddress>>;
}
