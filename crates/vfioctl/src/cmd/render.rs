//! `qemu-args` and `libvirt-xml`: what to hand a VMM for the devices vfioctl binds.

use serde::Serialize;

use vfioctl_core::doctor::Arch;
use vfioctl_core::fslmc::DprcName;
use vfioctl_core::render::backend::Backend;
use vfioctl_core::render::layout;
use vfioctl_core::render::libvirt::hostdevs_for;
use vfioctl_core::render::qemu::{Machine, qemu_args, shell_join};
use vfioctl_core::render::{Passthrough, RenderError};
use vfioctl_core::{Inventory, PciAddress};

use crate::cli::{LibvirtArgs, QemuArgs};
use crate::cmd::inventory::JSON_VERSION;
use crate::context::Context;
use crate::error::CliError;
use crate::exit::Exit;

/// The machine type for the host under the root: `virt` for DPAA2 containers and arm64 hosts
/// (a `--root` tree of a Ten64 renders for the Ten64 wherever vfioctl runs), `q35` on x86-64,
/// this build's architecture when the tree does not say.
pub(crate) fn default_machine(ctx: &Context, containers: bool) -> Machine {
    if containers {
        return Machine::Virt;
    }
    match vfioctl_host::facts::root_arch(&ctx.root) {
        Arch::Aarch64 => Machine::Virt,
        Arch::X86_64 => Machine::Q35,
        Arch::Unknown if std::env::consts::ARCH == "aarch64" => Machine::Virt,
        Arch::Unknown => Machine::Q35,
    }
}

/// Said with every iommufd rendering: what the backend costs.
const IOMMUFD_NOTE: &str = "with iommufd, QEMU does not map one passed device's BARs for another: \
peer-to-peer DMA between them is lost (leave out --iommufd for GPUs or NICs that talk to each \
other); the kernel needs CONFIG_IOMMUFD and CONFIG_VFIO_DEVICE_CDEV ('vfioctl doctor' says)";

/// `--iommufd`: the VFIO backend the rendered arguments are for.
fn backend(iommufd: bool) -> Backend {
    if iommufd {
        Backend::Iommufd
    } else {
        Backend::Legacy
    }
}

#[expect(clippy::needless_pass_by_value, reason = "used as a map_err function")]
fn render_error(e: RenderError) -> CliError {
    let hint = e.remedy();
    let error = CliError::new(Exit::Usage, e.to_string());
    match hint {
        Some(h) => error.hint(h),
        None => error,
    }
}

/// Splits names into DPAA2 containers and PCI devices, and (unless `only`) adds every endpoint of
/// each device's IOMMU group: a group goes to one VM whole.
pub(crate) fn request(
    ctx: &Context,
    inventory: &Inventory,
    names: &[String],
    only: bool,
) -> Result<Passthrough, CliError> {
    let mut request = Passthrough::default();
    let mut pci_names = Vec::new();
    for name in names {
        match name.parse::<DprcName>() {
            Ok(dprc) => request.dprc.push(dprc),
            Err(_) => pci_names.push(name.clone()),
        }
    }
    let _ = ctx;
    let mut named = Vec::new();
    for name in &pci_names {
        match name.parse::<vfioctl_core::VendorDevice>() {
            Ok(id) => {
                let matches: Vec<PciAddress> = inventory.by_id(id).map(|d| d.address).collect();
                if matches.is_empty() {
                    return Err(vfioctl_core::select::SelectError::NoSuchId(id).into());
                }
                named.extend(matches);
            }
            Err(_) => named.push(vfioctl_core::select::select_pci(inventory, name)?.address),
        }
    }
    // What bind would refuse for good, a VMM must not be handed either (one place decides).
    let usage = vfioctl_host::usage::HostUsage::read(&ctx.root)?;
    let uses: vfioctl_core::plan::HostUses = vfioctl_host::hostuse::host_uses(
        &ctx.root,
        inventory,
        &usage,
        vfioctl_host::hostuse::Walk::Classes,
    )
    .into_iter()
    .map(|(address, list)| (address.into(), list))
    .collect();
    let set = vfioctl_core::passthrough::vm_set(inventory, &uses, &named, only);
    if let Some(first) = set.final_refusals().next() {
        return Err(
            CliError::new(Exit::Refused, format!("refused: {}", first.text))
                .hint(first.remedy.clone()),
        );
    }
    let mut pci = set.functions;
    // A named bridge is passed as named: the renderer says why a VMM cannot take it.
    pci.extend(named.iter().filter(|a| !set.named.contains(a)));
    pci.sort_unstable();
    pci.dedup();
    request.pci = pci;
    Ok(request)
}

/// `vfioctl qemu-args`.
pub(crate) fn qemu(ctx: &mut Context, args: &QemuArgs) -> Result<Exit, CliError> {
    let inventory = ctx.inventory()?;
    let request = request(ctx, &inventory, &args.devices, args.only)?;
    let machine = match &args.machine {
        Some(text) => text
            .parse::<Machine>()
            .map_err(|e| CliError::new(Exit::Usage, e.to_string()))?,
        None => default_machine(ctx, !request.dprc.is_empty()),
    };
    let argv = qemu_args(&inventory, &request, machine).map_err(render_error)?;
    let argv = backend(args.iommufd).apply(argv);
    if args.iommufd {
        ctx.note(IOMMUFD_NOTE);
    }
    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            machine: &'static str,
            argv: &'a [String],
        }
        ctx.json_document(&Doc {
            version: JSON_VERSION,
            machine: machine.name(),
            argv: &argv,
        })?;
    } else {
        // One `-device` pair per line, ready to paste after a backslash-continued command.
        for pair in argv.chunks(2) {
            ctx.line(shell_join(pair));
        }
    }
    if !request.dprc.is_empty() {
        ctx.note(
            "vfio-fsl-mc exists only in NXP's QEMU (mainline QEMU has no such device); check \
             with 'qemu-system-aarch64 -device help'",
        );
    }
    Ok(Exit::Success)
}

/// The file `--out-dir` writes a function's element to: `hostdev-0000-01-00.1.xml`.
fn hostdev_file(host: PciAddress) -> String {
    format!("hostdev-{}.xml", host.to_string().replace(':', "-"))
}

/// `vfioctl libvirt-xml`.
pub(crate) fn libvirt(ctx: &mut Context, args: &LibvirtArgs) -> Result<Exit, CliError> {
    let inventory = ctx.inventory()?;
    let request = request(ctx, &inventory, &args.devices, args.only)?;
    let all = hostdevs_for(&inventory, &request, args.guest_bus, backend(args.iommufd))
        .map_err(render_error)?;
    if args.iommufd {
        ctx.note(IOMMUFD_NOTE);
    }
    let mut files = Vec::new();
    if let Some(dir) = &args.out_dir {
        let write_error = |path: &std::path::Path, e: std::io::Error| {
            CliError::new(
                Exit::Failed,
                format!("cannot write {}: {e}", path.display()),
            )
            .hint("pass --out-dir a directory you can write to")
        };
        std::fs::create_dir_all(dir).map_err(|e| write_error(dir, e))?;
        for hostdev in &all {
            let path = dir.join(hostdev_file(hostdev.host));
            std::fs::write(&path, &hostdev.xml).map_err(|e| write_error(&path, e))?;
            files.push(path.display().to_string());
        }
    }
    let xml: String = all.iter().map(|h| h.xml.as_str()).collect();
    if ctx.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            xml: &'a str,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            files: &'a [String],
        }
        ctx.json_document(&Doc {
            version: JSON_VERSION,
            xml: &xml,
            files: &files,
        })?;
    } else if files.is_empty() {
        ctx.line(xml.trim_end());
    } else {
        for file in &files {
            ctx.line(file);
        }
    }
    ctx.note(
        "managed='no': bind the devices first ('vfioctl bind'), or let the vfioctl libvirt hook \
         do it; libvirt's own managed='yes' does not check IOMMU groups",
    );
    if all.len() > 1 && files.is_empty() {
        ctx.note(
            "virsh attach-device takes one element per file: write them with --out-dir DIR and \
             attach each (for f in DIR/*.xml; do virsh attach-device DOMAIN \"$f\" --config; done)",
        );
    }
    let multifunction = layout(&inventory, &request.pci).is_ok_and(|slots| {
        slots
            .iter()
            .any(vfioctl_core::render::SlotPlan::is_multifunction)
    });
    if multifunction && args.guest_bus.is_none() {
        ctx.note(
            "without --guest-bus libvirt gives each function its own guest slot; pass --guest-bus \
             N (the index of a free pcie-root-port controller of the domain) to keep the \
             device's functions together",
        );
    }
    Ok(Exit::Success)
}
