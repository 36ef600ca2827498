//! The ACS capability of a port, read from its config space in sysfs: whether the kernel
//! enabled the controls its grouping needs, which sysfs shows nowhere else.

use std::fs;

use crate::sysfs::Sysfs;
use crate::{Check, fail, usage};

/// PCIe extended capability id of Access Control Services.
const ACS_ID: u16 = 0x000d;
/// Source Validation, Request Redirect, Completion Redirect, Upstream Forwarding: the controls
/// the kernel requires on the path (`REQ_ACS_FLAGS` in `drivers/pci/pci.c`), as far as the
/// capability implements them.
const REQUIRED: u16 = 0x0001 | 0x0004 | 0x0008 | 0x0010;

/// What a port's ACS says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcsState {
    /// No ACS capability.
    Absent,
    /// Implemented controls of [`REQUIRED`] are not all on.
    Disabled { cap: u16, ctrl: u16 },
    /// Every implemented control of [`REQUIRED`] is on.
    Enabled { cap: u16, ctrl: u16 },
}

impl AcsState {
    fn word(self) -> &'static str {
        match self {
            AcsState::Absent => "absent",
            AcsState::Disabled { .. } => "disabled",
            AcsState::Enabled { .. } => "enabled",
        }
    }
}

/// Walks the extended capability list of a config space dump (which must hold more than the
/// 256 bytes an unprivileged read gets).
pub(crate) fn acs_state(config: &[u8]) -> Result<AcsState, String> {
    if config.len() < 0x104 {
        return Err(format!(
            "config space is {} bytes: no extended capabilities (not read as root?)",
            config.len()
        ));
    }
    let dword = |at: usize| -> Option<u32> {
        config
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut at = 0x100usize;
    // Each capability moves forward by at least 4 bytes; 1024 steps bound a corrupted list.
    for _ in 0..1024 {
        let Some(header) = dword(at) else {
            return Err(format!("capability list runs past the dump at {at:#x}"));
        };
        if header == 0 || header == 0xffff_ffff {
            return Ok(AcsState::Absent);
        }
        let id = (header & 0xffff) as u16;
        if id == ACS_ID {
            let Some(regs) = dword(at + 4) else {
                return Err(format!("ACS capability at {at:#x} is cut off"));
            };
            let cap = (regs & 0xffff) as u16;
            let ctrl = (regs >> 16) as u16;
            let needed = REQUIRED & cap;
            return Ok(if ctrl & needed == needed {
                AcsState::Enabled { cap, ctrl }
            } else {
                AcsState::Disabled { cap, ctrl }
            });
        }
        let next = (header >> 20) as usize;
        if next < 0x100 || next <= at {
            return Ok(AcsState::Absent);
        }
        at = next;
    }
    Err("extended capability list does not end".to_owned())
}

/// `acs <addr> [enabled|disabled|absent]`: prints `state=<word>`, and with an expectation
/// fails when the port is otherwise.
pub(crate) fn cmd_acs(sys: &Sysfs, addr: &str, want: Option<&str>) -> Check {
    let path = sys.pci_dir().join(addr).join("config");
    let config = match fs::read(&path) {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot read {}: {e}", path.display())),
    };
    let state = match acs_state(&config) {
        Ok(s) => s,
        Err(e) => return fail(format!("{addr}: {e}")),
    };
    match state {
        AcsState::Absent => println!("acs {addr}: no capability state=absent"),
        AcsState::Disabled { cap, ctrl } | AcsState::Enabled { cap, ctrl } => println!(
            "acs {addr}: cap={cap:#06x} ctrl={ctrl:#06x} state={}",
            state.word()
        ),
    }
    match want {
        None => Ok(()),
        Some(w @ ("enabled" | "disabled" | "absent")) if w == state.word() => Ok(()),
        Some("enabled" | "disabled" | "absent") => fail(format!(
            "{addr}: ACS is {}, expected {}",
            state.word(),
            want.unwrap_or("")
        )),
        Some(other) => usage(format!("expected enabled, disabled or absent, got {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4 KiB config space with extended capabilities at 0x100 (AER) and 0x148 (ACS).
    fn config(acs: Option<(u16, u16)>) -> Vec<u8> {
        let mut c = vec![0u8; 4096];
        let next = if acs.is_some() { 0x148u32 } else { 0 };
        c[0x100..0x104].copy_from_slice(&(0x0001 | (1 << 16) | (next << 20)).to_le_bytes());
        if let Some((cap, ctrl)) = acs {
            c[0x148..0x14c].copy_from_slice(&(u32::from(ACS_ID) | (1 << 16)).to_le_bytes());
            c[0x14c..0x150]
                .copy_from_slice(&(u32::from(cap) | (u32::from(ctrl) << 16)).to_le_bytes());
        }
        c
    }

    #[test]
    fn reads_what_qemus_root_port_shows() {
        // QEMU's pcie-root-port: cap 0x005f; the kernel sets 0x001d when it enables ACS.
        assert_eq!(
            acs_state(&config(Some((0x005f, 0x001d)))),
            Ok(AcsState::Enabled {
                cap: 0x5f,
                ctrl: 0x1d
            })
        );
        assert_eq!(
            acs_state(&config(Some((0x005f, 0)))),
            Ok(AcsState::Disabled { cap: 0x5f, ctrl: 0 })
        );
        assert_eq!(acs_state(&config(None)), Ok(AcsState::Absent));
    }

    #[test]
    fn a_capability_without_controls_counts_as_enabled() {
        assert_eq!(
            acs_state(&config(Some((0, 0)))),
            Ok(AcsState::Enabled { cap: 0, ctrl: 0 })
        );
    }

    #[test]
    fn short_or_looping_dumps_are_errors() {
        assert!(
            acs_state(&[0u8; 256])
                .unwrap_err()
                .contains("not read as root")
        );
        let mut looping = vec![0u8; 4096];
        looping[0x100..0x104].copy_from_slice(&(0x0001 | (0x100u32 << 20)).to_le_bytes());
        assert_eq!(acs_state(&looping), Ok(AcsState::Absent));
    }
}
