//! Dynamic IDs: `new_id` and `remove_id`.

use std::io;

use vfioctl_core::VendorDevice;

use crate::spec::IdMatch;
use crate::state::{Errno, KernelState};

use super::{SimKernel, WriteFlags, errno};

/// Parses a hex field as `sscanf("%x")` would (optional `0x`).
pub(super) fn scan_hex(text: &str) -> Option<u32> {
    let t = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    u32::from_str_radix(t, 16).ok()
}

impl SimKernel {
    /// Parses `new_id`/`remove_id` input: `VVVV DDDD [SVVV SDDD CCCCCC MMMMMM DATA]`.
    pub(super) fn parse_id(value: &str) -> io::Result<(IdMatch, usize)> {
        let fields: Vec<u32> = value
            .split_whitespace()
            .map_while(scan_hex)
            .take(7)
            .collect();
        if fields.len() < 2 {
            return Err(errno(Errno::Einval));
        }
        let any = |v: u32| (v != 0xffff_ffff).then_some(v as u16);
        Ok((
            IdMatch {
                vendor: any(fields[0]),
                device: any(fields[1]),
                class: fields.get(4).copied().unwrap_or(0),
                class_mask: fields.get(5).copied().unwrap_or(0),
            },
            fields.len(),
        ))
    }

    /// `new_id_store()`: adds a dynamic ID, then binds every unbound device it matches.
    pub(super) fn new_id(
        &self,
        state: &mut KernelState,
        drv: &str,
        value: &str,
        flags: WriteFlags,
    ) -> io::Result<()> {
        let (id, fields) = Self::parse_id(value)?;
        let Some(spec) = state.drivers.iter_mut().find(|d| d.name == drv) else {
            return Err(errno(Errno::Enoent));
        };
        if fields != 7 {
            // The kernel checks the new ID against the tables with a fake device.
            let fake = VendorDevice {
                vendor: id.vendor.unwrap_or(0xffff),
                device: id.device.unwrap_or(0xffff),
            };
            if spec
                .dynamic_ids
                .iter()
                .chain(&spec.ids)
                .any(|m| m.matches(fake, id.class))
            {
                return Err(errno(Errno::Eexist));
            }
        }
        spec.dynamic_ids.push(id);
        if self.autoprobe() {
            self.driver_attach(state, drv, flags)?;
        }
        Ok(())
    }

    /// `remove_id_store()`.
    pub(super) fn remove_id(
        &self,
        state: &mut KernelState,
        drv: &str,
        value: &str,
    ) -> io::Result<()> {
        let (id, _) = Self::parse_id(value)?;
        let Some(spec) = state.drivers.iter_mut().find(|d| d.name == drv) else {
            return Err(errno(Errno::Enoent));
        };
        let before = spec.dynamic_ids.len();
        spec.dynamic_ids.retain(|m| {
            !(m.vendor == id.vendor
                && m.device == id.device
                && (id.class_mask == 0 || (m.class == id.class && m.class_mask == id.class_mask)))
        });
        if spec.dynamic_ids.len() == before {
            return Err(errno(Errno::Enodev));
        }
        Ok(())
    }
}
