//! The QEMU command line of a VM.

use crate::device::Inventory;
use crate::render::RenderError;
use crate::render::qemu::qemu_args;

use super::{VmDefinition, VmName, passthrough};

/// Why a QEMU command line cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum CommandLineError {
    /// The definition has no `[qemu]` table.
    #[error("the definition has no [qemu] table, so vfioctl does not know how to start it")]
    NoQemu,
    /// The devices cannot be rendered.
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// Doubles the commas of a value inside a QEMU option list, QEMU's own escape
/// (`file=a,,b.img` is the file `a,b.img`).
pub fn qemu_escape(value: &str) -> String {
    value.replace(',', ",,")
}

/// The full QEMU command line of a VM, binary first, as an argv (never a shell string): the
/// machine, accelerator, CPU, memory, firmware and kernel, disks, the `-device` arguments of
/// [`qemu_args`] for its devices (whole groups) and containers, then `extra_args` as they are.
///
/// # Errors
///
/// No `[qemu]` table, or devices that cannot be rendered (see [`qemu_args`]).
pub fn command_line(
    name: &VmName,
    def: &VmDefinition,
    inventory: &Inventory,
) -> Result<Vec<String>, CommandLineError> {
    let qemu = def.qemu.as_ref().ok_or(CommandLineError::NoQemu)?;
    let mut argv: Vec<String> = vec![qemu.binary().to_owned()];
    let mut push = |option: &str, value: String| {
        argv.push(option.to_owned());
        argv.push(value);
    };
    push("-name", qemu_escape(name.as_str()));
    push("-machine", qemu.machine.name().to_owned());
    if let Some(accel) = &qemu.accel {
        push("-accel", accel.clone());
    }
    if let Some(cpu) = &qemu.cpu {
        push("-cpu", cpu.clone());
    }
    if let Some(memory) = &qemu.memory {
        push("-m", memory.as_str().to_owned());
    }
    if let Some(cpus) = qemu.cpus {
        push("-smp", cpus.to_string());
    }
    if let Some(firmware) = &qemu.firmware {
        push("-bios", firmware.clone());
    }
    if let Some(kernel) = &qemu.kernel {
        push("-kernel", kernel.clone());
    }
    if let Some(initrd) = &qemu.initrd {
        push("-initrd", initrd.clone());
    }
    if let Some(append) = &qemu.append {
        push("-append", append.clone());
    }
    for disk in &qemu.disks {
        push("-drive", disk.drive());
    }
    argv.extend(qemu.backend.apply(qemu_args(
        inventory,
        &passthrough(def, inventory),
        qemu.machine,
    )?));
    argv.extend(qemu.extra_args.iter().cloned());
    Ok(argv)
}
