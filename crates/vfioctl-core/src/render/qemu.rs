//! QEMU command-line arguments for passing devices to a guest.
//!
//! Each physical device gets its own `pcie-root-port` on the root complex, and its functions
//! become `vfio-pci` devices on that port:
//!
//! ```text
//! -device pcie-root-port,id=rp1,chassis=1,slot=1,bus=pcie.0
//! -device vfio-pci,host=0000:01:00.0,id=hostdev0,bus=rp1,addr=00.0,multifunction=on
//! -device vfio-pci,host=0000:01:00.1,id=hostdev1,bus=rp1,addr=00.1
//! ```
//!
//! A root port per device, rather than devices straight on `pcie.0`, makes them PCI Express
//! endpoints in the guest (GPU drivers look at link capabilities), and keeps each device on its
//! own bus the way it is on the host. DPAA2 containers are platform devices, so they need no port:
//! `-device vfio-fsl-mc,host=dprc.2`.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::device::Inventory;
use crate::render::{Passthrough, RenderError, layout};

/// The QEMU machine type the arguments are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Machine {
    /// x86-64 `-machine q35`: PCI Express root complex `pcie.0`.
    Q35,
    /// aarch64 `-machine virt`: PCI Express root complex `pcie.0`, and the platform bus that
    /// `vfio-fsl-mc` devices need.
    Virt,
}

impl Machine {
    /// The name QEMU's `-machine` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Q35 => "q35",
            Self::Virt => "virt",
        }
    }

    /// The QEMU binary that emulates this machine.
    pub fn qemu_binary(self) -> &'static str {
        match self {
            Self::Q35 => "qemu-system-x86_64",
            Self::Virt => "qemu-system-aarch64",
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a string is not a supported machine type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a supported machine type (expected q35 or virt)")]
pub struct MachineError(pub String);

impl FromStr for Machine {
    type Err = MachineError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "q35" => Ok(Self::Q35),
            "virt" => Ok(Self::Virt),
            _ => Err(MachineError(text.to_owned())),
        }
    }
}

/// The `-device` arguments that pass `request` to a guest of `machine`, as an argv to append to a
/// QEMU command line.
///
/// IDs are deterministic: root ports `rp1`, `rp2`, ... (with matching `chassis` and `slot`, which
/// QEMU needs unique per port) in slot order, and `hostdev0`, `hostdev1`, ... per function in the
/// same order (see [`layout`]). Containers follow the PCI devices in ascending number.
///
/// # Errors
///
/// Those of [`layout`], and [`RenderError::FslMcNeedsVirt`] for a DPAA2 container on `q35`.
pub fn qemu_args(
    inv: &Inventory,
    request: &Passthrough,
    machine: Machine,
) -> Result<Vec<String>, RenderError> {
    if machine != Machine::Virt
        && let Some(&dprc) = request.dprc.iter().min()
    {
        return Err(RenderError::FslMcNeedsVirt {
            dprc,
            machine: machine.name(),
        });
    }
    let mut argv = Vec::new();
    let mut hostdev = 0usize;
    for (port, slot) in (1usize..).zip(layout(inv, &request.pci)?) {
        argv.push("-device".to_owned());
        argv.push(format!(
            "pcie-root-port,id=rp{port},chassis={port},slot={port},bus=pcie.0"
        ));
        for function in &slot.functions {
            let mut arg = format!(
                "vfio-pci,host={},id=hostdev{hostdev},bus=rp{port},addr=00.{:x}",
                function.host, function.guest_function
            );
            // Function 0 announces the others; without it the guest probes only function 0.
            if slot.is_multifunction() && function.guest_function == 0 {
                arg.push_str(",multifunction=on");
            }
            argv.push("-device".to_owned());
            argv.push(arg);
            hostdev += 1;
        }
    }
    let dprcs: BTreeSet<_> = request.dprc.iter().collect();
    for dprc in dprcs {
        argv.push("-device".to_owned());
        argv.push(format!("vfio-fsl-mc,host={dprc}"));
    }
    Ok(argv)
}

/// True for bytes no POSIX shell treats specially anywhere in a word.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b':' | b',' | b'+' | b'@')
}

/// Quotes one argument for a POSIX shell, only when needed: plain words stay as they are, others
/// go in single quotes, where nothing is special except the closing quote, written `'\''`.
///
/// `=` and `%` are plain except at the start of a word (zsh expands a leading `=`), so
/// `host=0001:03:00.0` stays readable.
pub fn shell_quote(arg: &str) -> Cow<'_, str> {
    let bytes = arg.as_bytes();
    let plain = !bytes.is_empty()
        && bytes
            .iter()
            .enumerate()
            .all(|(i, &b)| is_plain(b) || (i > 0 && matches!(b, b'=' | b'%')));
    if plain {
        return Cow::Borrowed(arg);
    }
    let mut quoted = String::with_capacity(arg.len() + 2);
    quoted.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    Cow::Owned(quoted)
}

/// Joins an argv into one line to paste into a POSIX shell; each argument is quoted only when it
/// needs it ([`shell_quote`]).
pub fn shell_join<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| shell_quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::PciAddress;
    use crate::fslmc::DprcName;
    use crate::render::tests::{desktop, ten64};
    use proptest::prelude::*;

    fn addr(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    fn lines(argv: &[String]) -> String {
        argv.chunks(2)
            .map(|pair| pair.join(" "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn ten64_on_virt() {
        let request = Passthrough {
            pci: vec![addr("0001:04:00.0"), addr("0001:03:00.0")],
            dprc: vec![DprcName::new(2)],
        };
        let argv = qemu_args(&ten64(), &request, Machine::Virt).unwrap();
        insta::assert_snapshot!(lines(&argv));
    }

    #[test]
    fn desktop_gpu_with_audio_on_q35() {
        let request = Passthrough {
            pci: vec![addr("0000:01:00.0"), addr("0000:01:00.1")],
            dprc: vec![],
        };
        let argv = qemu_args(&desktop(), &request, Machine::Q35).unwrap();
        insta::assert_snapshot!(lines(&argv));
    }

    #[test]
    fn desktop_several_groups_on_q35_pasteable() {
        let request = Passthrough {
            pci: vec![
                addr("0000:05:00.0"),
                addr("0000:01:00.1"),
                addr("0000:03:00.0"),
                addr("0000:01:00.0"),
            ],
            dprc: vec![],
        };
        let argv = qemu_args(&desktop(), &request, Machine::Q35).unwrap();
        insta::assert_snapshot!(shell_join(&argv));
    }

    #[test]
    fn dprc_on_q35_is_refused() {
        let request = Passthrough {
            pci: vec![],
            dprc: vec![DprcName::new(3), DprcName::new(2)],
        };
        let err = qemu_args(&ten64(), &request, Machine::Q35).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dprc.2 is a DPAA2 container: QEMU's q35 machine cannot take vfio-fsl-mc devices"
        );
    }

    #[test]
    fn dprcs_are_sorted_and_deduplicated() {
        let request = Passthrough {
            pci: vec![],
            dprc: vec![DprcName::new(3), DprcName::new(2), DprcName::new(3)],
        };
        let argv = qemu_args(&ten64(), &request, Machine::Virt).unwrap();
        assert_eq!(
            argv,
            [
                "-device",
                "vfio-fsl-mc,host=dprc.2",
                "-device",
                "vfio-fsl-mc,host=dprc.3"
            ]
        );
    }

    #[test]
    fn machine_parses_its_names() {
        assert_eq!("virt".parse::<Machine>(), Ok(Machine::Virt));
        assert_eq!(Machine::Q35.qemu_binary(), "qemu-system-x86_64");
        assert!("pc".parse::<Machine>().is_err());
    }

    #[test]
    fn shell_quote_leaves_plain_words_alone() {
        assert_eq!(
            shell_quote("vfio-pci,host=0001:03:00.0,id=hostdev0"),
            "vfio-pci,host=0001:03:00.0,id=hostdev0"
        );
        assert_eq!(shell_quote("-device"), "-device");
    }

    #[test]
    fn shell_quote_quotes_when_needed() {
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("=cmd"), "'=cmd'");
        assert_eq!(shell_quote("~/x"), "'~/x'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(shell_quote("a*"), "'a*'");
    }

    /// Undoes POSIX single-quote quoting as a shell would, for the round-trip property.
    fn shell_unquote_word(word: &str) -> String {
        let mut out = String::new();
        let mut in_quote = false;
        let mut chars = word.chars();
        while let Some(c) = chars.next() {
            match (in_quote, c) {
                (_, '\'') => in_quote = !in_quote,
                (false, '\\') => out.extend(chars.next()),
                (_, c) => out.push(c),
            }
        }
        out
    }

    proptest! {
        #[test]
        fn shell_quote_round_trips(arg in "(?s).{0,30}") {
            let quoted = shell_quote(&arg);
            prop_assert_eq!(shell_unquote_word(&quoted), arg);
        }
    }
}
