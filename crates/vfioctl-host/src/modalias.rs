//! `lspci -k`'s "Kernel modules": the modules whose aliases match each device's `modalias`,
//! from the `modules.alias` of the kernel that runs under the root.

use std::collections::BTreeMap;

use vfioctl_core::PciAddress;
use vfioctl_core::modalias::AliasTable;

use crate::HostError;
use crate::read::read_attr;
use crate::root::HostRoot;

/// `modules.alias` is a few MiB on a distribution kernel: more than any attribute.
const MAX_ALIAS_FILE: u64 = 64 * 1024 * 1024;

/// The alias tables of the running kernel (`lib/modules/$(uname -r)`, the release read from
/// `proc/sys/kernel/osrelease` under the root): `modules.alias`, then `modules.builtin.alias`.
/// Empty when the release or the files cannot be found: a device then has no module to name.
pub fn alias_table(root: &HostRoot) -> Result<AliasTable, HostError> {
    let Some(release) = read_attr(&root.join("proc/sys/kernel/osrelease"))? else {
        return Ok(AliasTable::default());
    };
    let dir = root.join(format!("lib/modules/{}", release.trim()));
    let mut table = AliasTable::default();
    for name in ["modules.alias", "modules.builtin.alias"] {
        if let Some(bytes) = crate::read::read_bytes(&dir.join(name), MAX_ALIAS_FILE)? {
            table.extend(AliasTable::parse(&String::from_utf8_lossy(&bytes)));
        }
    }
    Ok(table)
}

/// The modules that could drive each of `devices`, from its `modalias` attribute (none when the
/// attribute is missing).
pub fn kernel_modules(
    root: &HostRoot,
    devices: impl IntoIterator<Item = PciAddress>,
) -> Result<BTreeMap<PciAddress, Vec<String>>, HostError> {
    let table = alias_table(root)?;
    let mut out = BTreeMap::new();
    for address in devices {
        let alias = read_attr(&root.pci_device(&address).join("modalias"))?;
        let modules = alias.map_or_else(Vec::new, |a| table.modules_for(a.trim()));
        out.insert(address, modules);
    }
    Ok(out)
}
