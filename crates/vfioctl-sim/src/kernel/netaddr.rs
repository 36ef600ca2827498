//! A network interface's MAC: the permanent one its device was made with (what rtnetlink
//! reports as `IFLA_PERM_ADDRESS`), and the current one in sysfs `address`, which the user may
//! change (`ip link set DEV address M`: `addr_assign_type` becomes 3, `NET_ADDR_SET`).

use std::fs;
use std::io;

use vfioctl_core::PciAddress;

use crate::state::{Errno, KernelState};
use crate::tree::mac;

use super::{SimKernel, errno};

impl SimKernel {
    /// The device whose driver created interface `ifname` and has it now.
    fn owner_of_interface(&self, state: &KernelState, ifname: &str) -> io::Result<PciAddress> {
        let exists = fs::symlink_metadata(self.root.join("sys/class/net").join(ifname)).is_ok();
        state
            .devices
            .iter()
            .find(|(_, d)| d.net.iter().any(|n| n.name == ifname))
            .map(|(a, _)| *a)
            .filter(|_| exists)
            .ok_or_else(|| errno(Errno::Enodev))
    }

    /// The permanent MAC of `ifname` as an `RTM_GETLINK` answers it: `None` on a kernel whose
    /// netlink predates `IFLA_PERM_ADDRESS` ([`KernelState::no_perm_address`]).
    pub fn permanent_address(&self, ifname: &str) -> io::Result<Option<String>> {
        let state = self.state()?;
        let device = self.owner_of_interface(&state, ifname)?;
        Ok((!state.no_perm_address).then(|| mac(device).trim().to_owned()))
    }

    /// `ip link set IFNAME address MAC`: the interface's current MAC changes, its permanent one
    /// stays (until its driver binds again and starts from the permanent one).
    pub fn set_interface_address(&self, ifname: &str, address: &str) -> io::Result<()> {
        let _lock = self.lock()?;
        let state = self.state()?;
        self.owner_of_interface(&state, ifname)?;
        let dir = self.root.join("sys/class/net").join(ifname);
        fs::write(dir.join("address"), format!("{address}\n"))?;
        fs::write(dir.join("addr_assign_type"), "3\n")
    }
}
