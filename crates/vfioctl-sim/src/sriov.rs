//! SR-IOV state the kernel keeps per physical function and sysfs does not show: what creating its
//! VFs needs (routing-ID offset and stride, VF device ID, where their groups come from), which VFs
//! a hypervisor has marked assigned, and each VF's link settings as the PF's driver holds them
//! (what `ip link show` lists under the PF as `vf N`).

use serde::{Deserialize, Serialize};
use vfioctl_core::{PciAddress, VendorDevice};

/// A VF's link settings on the PF's interface (`IFLA_VF_*`), in the PF driver's defaults until
/// set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VfLink {
    /// `IFLA_VF_MAC` (all zero until set: the VF's driver picks a random one).
    pub mac: String,
    /// `IFLA_VF_VLAN` id (0: none).
    pub vlan: u16,
    /// `IFLA_VF_VLAN` priority.
    pub qos: u8,
    /// `IFLA_VF_TRUST`.
    pub trust: bool,
    /// `IFLA_VF_SPOOFCHK`.
    pub spoofchk: bool,
}

impl Default for VfLink {
    fn default() -> Self {
        Self {
            mac: "00:00:00:00:00:00".to_owned(),
            vlan: 0,
            qos: 0,
            trust: false,
            spoofchk: true,
        }
    }
}

/// One physical function's SR-IOV facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PfState {
    /// `sriov_totalvfs`.
    pub total: u32,
    /// First VF Offset.
    pub offset: u16,
    /// VF Stride.
    pub stride: u16,
    /// Vendor and device ID of the VFs.
    pub vf_id: VendorDevice,
    /// Class code of the VFs (the PF's).
    pub class: u32,
    /// Each VF gets an IOMMU group of its own (the path above the PF has ACS); else VFs join the
    /// PF's group.
    pub own_groups: bool,
    /// The group `type` a new group gets.
    pub group_type: String,
    /// VFs marked assigned to a guest (`PCI_DEV_FLAGS_ASSIGNED`): the PF driver refuses to
    /// disable SR-IOV while any is.
    #[serde(default)]
    pub assigned: Vec<PciAddress>,
    /// Each VF's link settings, by VF index (reset when the VFs are re-created).
    #[serde(default)]
    pub links: Vec<VfLink>,
    /// The interface each VF index's driver creates, kept across re-creation as udev's naming
    /// keeps it (by index: the same VF gets the same name back).
    #[serde(default)]
    pub vf_net: Vec<Option<crate::spec::NetIf>>,
}

impl PfState {
    /// The address of VF `index` of the PF at `pf`: routing ID + offset + index × stride (a VF
    /// may land on a later bus).
    pub fn vf_address(&self, pf: PciAddress, index: u32) -> Option<PciAddress> {
        let rid = (u32::from(pf.bus) << 8) | u32::from(pf.device) << 3 | u32::from(pf.function);
        let vf = rid + u32::from(self.offset) + index * u32::from(self.stride);
        let bus = u8::try_from(vf >> 8).ok()?;
        let devfn = (vf & 0xff) as u8;
        PciAddress::new(pf.domain, bus, devfn >> 3, devfn & 7)
    }
}
