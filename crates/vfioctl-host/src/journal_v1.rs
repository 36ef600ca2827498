//! Reading journals of format 1, written by vfioctl before PCI and fsl-mc shared one list, so
//! devices bound by an older vfioctl can still be given back.

use serde::Deserialize;
use vfioctl_core::plan::{DeviceState, OriginalState};
use vfioctl_core::{DeviceRef, DriverName, GroupId, Owner, PciAddress};

use crate::journal::{EntryState, JOURNAL_VERSION, Journal, JournalEntry};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct V1Journal {
    #[serde(rename = "version")]
    _version: u32,
    entries: Vec<V1Entry<V1Pci>>,
    #[serde(default)]
    modules_loaded: Vec<String>,
    #[serde(default)]
    fsl_mc: Vec<V1Entry<V1Object>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct V1Entry<O> {
    original: O,
    state: EntryState,
    since: u64,
    #[serde(default)]
    owner: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct V1Pci {
    address: PciAddress,
    driver: Option<DriverName>,
    driver_override: Option<DriverName>,
    iommu_group: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct V1Object {
    object: String,
    driver: Option<DriverName>,
    driver_override: Option<DriverName>,
    iommu_group: Option<u32>,
}

fn entry(
    device: DeviceRef,
    driver: Option<DriverName>,
    driver_override: Option<DriverName>,
    iommu_group: Option<u32>,
    state: EntryState,
    since: u64,
    owner: Option<&str>,
) -> JournalEntry {
    JournalEntry {
        original: OriginalState {
            device,
            state: DeviceState {
                driver,
                driver_override,
            },
            iommu_group: iommu_group.map(GroupId),
        },
        state,
        since,
        owner: Owner::from_v1(owner),
        qemu_pid: None,
    }
}

/// Parses a format-1 journal into this format.
pub(crate) fn parse(text: &str) -> Result<Journal, String> {
    let v1: V1Journal = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut entries = Vec::new();
    for e in v1.entries {
        let o = e.original;
        entries.push(entry(
            o.address.into(),
            o.driver,
            o.driver_override,
            o.iommu_group,
            e.state,
            e.since,
            e.owner.as_deref(),
        ));
    }
    for e in v1.fsl_mc {
        let o = e.original;
        let device: DeviceRef = o.object.parse().map_err(|err| format!("{err}"))?;
        entries.push(entry(
            device,
            o.driver,
            o.driver_override,
            o.iommu_group,
            e.state,
            e.since,
            e.owner.as_deref(),
        ));
    }
    Ok(Journal {
        version: JOURNAL_VERSION,
        entries,
        modules_loaded: v1.modules_loaded,
        helpers: Vec::new(),
    })
}
