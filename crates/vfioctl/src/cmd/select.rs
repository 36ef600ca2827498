//! Naming devices: what read commands accept beyond what write commands do, lspci's `-d`
//! filter, and the `--force` hint that only commands taking `--force` give.

use vfioctl_core::plan::Refusal;
use vfioctl_core::{Inventory, PciDevice, PciSelector, SelectorError};

use crate::context::{Context, resolve_device};
use crate::error::CliError;
use crate::exit::Exit;

/// Says on standard error which devices the reader skipped, and why.
pub(crate) fn note_skipped(ctx: &mut Context, inventory: &Inventory) {
    for s in &inventory.skipped {
        ctx.note(s.warning());
    }
}

/// The remedy of a refusal, on a command that takes `--force`: overridable refusals say so.
pub(crate) fn remedy_with_force(refusal: &Refusal) -> String {
    if refusal.overridable {
        format!(
            "{}, or pass --force if you really mean to take it away",
            refusal.remedy
        )
    } else {
        refusal.remedy.clone()
    }
}

/// Resolves a device for a command that only reads: a short address that exists only in another
/// domain is shown, with a note saying so (write commands refuse it instead).
pub(crate) fn resolve_for_reading<'a>(
    ctx: &mut Context,
    inventory: &'a Inventory,
    text: &str,
) -> Result<&'a PciDevice, CliError> {
    if let Ok(selector @ PciSelector::Short { .. }) = text.parse::<PciSelector>()
        && let Err(SelectorError::Ambiguous { candidates, .. }) = inventory.resolve(&selector)
        && let [only] = candidates.as_slice()
        && let Some(dev) = inventory.get(only)
    {
        ctx.note(format!(
            "{selector} is not in domain 0000 (a short address names domain 0); showing {only}, \
             the only match: name the domain to mean it"
        ));
        return Ok(dev);
    }
    resolve_device(ctx, inventory, text)
}

/// lspci's `-d [VENDOR][:DEVICE]`: `10de`, `10de:`, `10de:*`, `10de:2684`, `:2684`, `*:2684`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdFilter {
    vendor: Option<u16>,
    device: Option<u16>,
}

fn id_part(part: &str) -> Result<Option<u16>, ()> {
    match part {
        "" | "*" => Ok(None),
        hex if hex.len() <= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u16::from_str_radix(hex, 16).map(Some).map_err(|_| ())
        }
        _ => Err(()),
    }
}

impl std::str::FromStr for IdFilter {
    type Err = CliError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (vendor, device) = text.split_once(':').unwrap_or((text, ""));
        match (id_part(vendor), id_part(device)) {
            (Ok(vendor), Ok(device)) => Ok(Self { vendor, device }),
            _ => Err(CliError::new(
                Exit::Usage,
                format!("'{}' is not a device ID filter", vfioctl_core::echoed(text)),
            )
            .hint("write VENDOR[:DEVICE] in hex as lspci -d takes it: 10de, 10de:*, 10de:2684")),
        }
    }
}

impl IdFilter {
    /// True when the device's IDs match.
    pub(crate) fn matches(&self, dev: &PciDevice) -> bool {
        self.vendor.is_none_or(|v| v == dev.id.vendor)
            && self.device.is_none_or(|d| d == dev.id.device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_filters_take_lspci_forms() {
        let dev = PciDevice::new(
            "0000:01:00.0".parse().unwrap(),
            "10de:2684".parse().unwrap(),
            vfioctl_core::ClassCode(0x030000),
        );
        for yes in [
            "10de",
            "10de:",
            "10de:*",
            "10de:2684",
            ":2684",
            "*:2684",
            "*",
        ] {
            assert!(yes.parse::<IdFilter>().unwrap().matches(&dev), "{yes}");
        }
        for no in ["8086", "10de:1234", ":1234"] {
            assert!(!no.parse::<IdFilter>().unwrap().matches(&dev), "{no}");
        }
        for bad in ["10dex", "10de:2684:0300x", "zz"] {
            assert!(bad.parse::<IdFilter>().is_err(), "{bad}");
        }
    }
}
