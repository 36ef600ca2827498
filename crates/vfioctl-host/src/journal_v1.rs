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

/// An entry's original state, whichever bus it came from.
type Original = (
    DeviceRef,
    Option<DriverName>,
    Option<DriverName>,
    Option<u32>,
);

impl<O> V1Entry<O> {
    fn with_original<P>(self, original: P) -> V1Entry<P> {
        V1Entry {
            original,
            state: self.state,
            since: self.since,
            owner: self.owner,
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct V1Pci {
    address: PciAddress,
    driver: Option<DriverName>,
    driver_override: Option<DriverName>,
    iommu_group: Option<u32>,
}

#[derive(Clone, Deserialize)]
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
    let pci = v1.entries.into_iter().map(|e| {
        let V1Pci {
            address,
            driver,
            driver_override,
            iommu_group,
        } = e.original.clone();
        Ok(e.with_original((address.into(), driver, driver_override, iommu_group)))
    });
    let containers = v1.fsl_mc.into_iter().map(|e| {
        let o = e.original.clone();
        let device: DeviceRef = o.object.parse().map_err(|err| format!("{err}"))?;
        Ok(e.with_original((device, o.driver, o.driver_override, o.iommu_group)))
    });
    let entries = pci
        .chain(containers)
        .map(|e: Result<V1Entry<Original>, String>| {
            let e = e?;
            let (device, driver, driver_override, iommu_group) = e.original;
            Ok(entry(
                device,
                driver,
                driver_override,
                iommu_group,
                e.state,
                e.since,
                e.owner.as_deref(),
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Journal {
        version: JOURNAL_VERSION,
        entries,
        modules_loaded: v1.modules_loaded,
        helpers: Vec::new(),
        dpaa2: Vec::new(),
        sriov: Vec::new(),
        vf_links: Vec::new(),
    })
}
