//! OpenStack Nova's `[pci]` options: a `device_spec` per function of a ready group (its address
//! and identity, tagged with a resource class naming the group) and an `alias` per identity.
//!
//! Nova hands PCI devices out one by one and knows nothing of IOMMU groups; the resource class
//! `CUSTOM_VFIOCTL_<ID>` (Placement tracking, `[pci] report_in_placement`) keeps a group's
//! functions together as one inventory, and `--check` reads the groups back from it. Nova's PCI
//! addresses have a 16-bit domain (at most `ffff`): a group with a function in a wider domain
//! (Intel VMD's `10000:e1:00.0`) cannot be written and is refused with a sentence.

use serde::Serialize;

use super::{ReadyGroup, ReadyMember, SriovRole};

/// Nova's largest PCI domain.
pub const MAX_DOMAIN: u32 = 0xffff;

/// One `device_spec` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceSpec {
    /// The function's address.
    pub address: String,
    /// Its vendor, four hex digits.
    pub vendor_id: String,
    /// Its device, four hex digits.
    pub product_id: String,
    /// The group's resource class.
    pub resource_class: String,
}

/// One `alias` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alias {
    /// The name a flavor asks for (`pci_passthrough:alias=NAME:1`).
    pub name: String,
    /// The vendor.
    pub vendor_id: String,
    /// The device.
    pub product_id: String,
    /// `type-PCI`, `type-PF` or `type-VF`.
    pub device_type: &'static str,
}

/// A group Nova cannot express.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// The group's stable ID.
    pub id: String,
    /// The sentence.
    pub reason: String,
}

/// The `[pci]` options for the ready groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NovaConfig {
    /// `device_spec` values, with the group each came from.
    pub device_spec: Vec<DeviceSpec>,
    /// `alias` values.
    pub alias: Vec<Alias>,
    /// The groups left out.
    pub refused: Vec<Refused>,
}

/// The resource class of a group: Placement's custom class syntax (`CUSTOM_` and `[A-Z0-9_]`).
pub fn resource_class(id: &str) -> String {
    let name: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("CUSTOM_VFIOCTL_{name}")
}

fn device_type(m: &ReadyMember) -> &'static str {
    match m.sriov {
        SriovRole::Pf => "type-PF",
        SriovRole::Vf => "type-VF",
        SriovRole::None => "type-PCI",
    }
}

/// Nova's options for `groups`; groups with a domain above `ffff` go to `refused`.
pub fn config(groups: &[ReadyGroup]) -> NovaConfig {
    let mut out = NovaConfig::default();
    for group in groups {
        if let Some(wide) = group.members.iter().find(|m| m.address.domain > MAX_DOMAIN) {
            out.refused.push(Refused {
                id: group.id.clone(),
                reason: format!(
                    "IOMMU group {} ({}) is left out: Nova's PCI addresses have a 16-bit domain \
                     (at most ffff) and {} is in domain {:x}",
                    group.group, group.id, wide.address, wide.address.domain
                ),
            });
            continue;
        }
        let class = resource_class(&group.id);
        for m in &group.members {
            out.device_spec.push(DeviceSpec {
                address: m.address.to_string(),
                vendor_id: format!("{:04x}", m.id.vendor),
                product_id: format!("{:04x}", m.id.device),
                resource_class: class.clone(),
            });
            let alias = Alias {
                name: format!("{}-{:04x}-{:04x}", group.id, m.id.vendor, m.id.device),
                vendor_id: format!("{:04x}", m.id.vendor),
                product_id: format!("{:04x}", m.id.device),
                device_type: device_type(m),
            };
            if !out.alias.contains(&alias) {
                out.alias.push(alias);
            }
        }
    }
    out
}

/// The `[pci]` section as `nova.conf` takes it: one line per value (Nova's multi-valued options).
pub fn render(config: &NovaConfig) -> Result<String, serde_json::Error> {
    let mut text = String::from("[pci]\n");
    for spec in &config.device_spec {
        text.push_str(&format!("device_spec = {}\n", serde_json::to_string(spec)?));
    }
    for alias in &config.alias {
        text.push_str(&format!("alias = {}\n", serde_json::to_string(alias)?));
    }
    Ok(text)
}
