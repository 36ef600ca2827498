//! What every command needs: the root, names, output settings.

use std::io::{self, Write};
use std::sync::Arc;

use vfioctl_core::{Inventory, PciDevice};
use vfioctl_host::{HostRoot, Kernel};

use crate::cli::GlobalArgs;
use crate::error::CliError;
use crate::exit::Exit;
use crate::kernel::KernelSource;
use crate::names::Names;
use crate::term::{ColorWhen, Tone, paint};

/// Shared state of one vfioctl run.
pub(crate) struct Context {
    /// The root the host layer works under.
    pub root: HostRoot,
    /// The kernel that serves the root: every change goes through it.
    pub kernel: Arc<dyn Kernel>,
    /// The restool that makes and takes apart the VMs' DPAA2 containers under the root.
    pub restool: Arc<dyn vfioctl_host::ops::dpaa2::Restool>,
    /// `--json`.
    pub json: bool,
    /// `--quiet`.
    pub quiet: bool,
    /// `--verbose` count.
    pub verbose: u8,
    /// Names for IDs.
    pub names: Names,
    /// `--color`.
    pub color: ColorWhen,
    pci_ids: Option<std::path::PathBuf>,
    out: Vec<u8>,
    notes: Vec<String>,
    printed: bool,
}

impl Context {
    /// Opens the root given on the command line, served by the kernel `kernels` gives for it.
    pub(crate) fn new(global: &GlobalArgs, kernels: &dyn KernelSource) -> Result<Self, CliError> {
        let root = HostRoot::open(&global.root)?;
        Ok(Self {
            kernel: kernels.kernel(&root),
            restool: Arc::from(kernels.restool(&root, None)),
            root,
            json: global.json,
            quiet: global.quiet,
            verbose: global.verbose,
            names: Names::default(),
            color: global.color,
            pci_ids: global.pci_ids.clone(),
            out: Vec::new(),
            notes: Vec::new(),
            printed: false,
        })
    }

    /// Reads the inventory (everything about each device), and the names its devices need.
    pub(crate) fn inventory(&mut self) -> Result<Inventory, CliError> {
        self.inventory_at(vfioctl_host::read::Depth::Full)
    }

    /// Reads what a command about `names` needs: only those functions, their groups and the
    /// bridges above them when every name is an address of this host; everything otherwise
    /// (an ID or an interface name needs every device, and a wrong address is reported by the
    /// selection as it would be on the whole inventory).
    pub(crate) fn inventory_around(&mut self, names: &[String]) -> Result<Inventory, CliError> {
        let Some(seeds) = vfioctl_host::around::seeds(&self.root, names) else {
            return self.inventory();
        };
        let inventory =
            vfioctl_host::around::read_around(&self.root, &seeds, vfioctl_host::read::Depth::Full)?;
        self.load_names(&inventory)?;
        Ok(inventory)
    }

    fn load_names(&mut self, inventory: &Inventory) -> Result<(), CliError> {
        self.names = Names::load(&self.root, self.pci_ids.as_deref(), inventory).map_err(|e| {
            CliError::new(Exit::Usage, e)
                .hint("pass --pci-ids a readable pci.ids file, or leave it out")
        })?;
        Ok(())
    }

    /// Reads the inventory at `depth`, and the names its devices need.
    pub(crate) fn inventory_at(
        &mut self,
        depth: vfioctl_host::read::Depth,
    ) -> Result<Inventory, CliError> {
        let inventory = vfioctl_host::read::read_inventory_at(&self.root, depth)?;
        crate::cmd::select::note_skipped(self, &inventory);
        self.load_names(&inventory)?;
        Ok(inventory)
    }

    /// True when the command has put a document of its own on standard output (a refused or
    /// failed bind prints its plan document, which carries the error).
    pub(crate) fn printed_document(&self) -> bool {
        self.printed
    }

    /// Appends a line to standard output (written when the command ends).
    pub(crate) fn line(&mut self, text: impl AsRef<str>) {
        self.printed = true;
        self.out
            .extend_from_slice(vfioctl_core::escape_controls(text.as_ref()).as_bytes());
        self.out.push(b'\n');
    }

    /// Appends a JSON document to standard output, encoded in place: on hosts with thousands of
    /// functions a document is megabytes, which an intermediate string would hold twice.
    pub(crate) fn json_document(&mut self, value: &impl serde::Serialize) -> Result<(), CliError> {
        self.printed = true;
        let start = self.out.len();
        serde_json::to_writer_pretty(&mut self.out, value)
            .map_err(|e| CliError::new(Exit::Failed, format!("cannot encode JSON: {e}")))?;
        // serde_json escapes the C0 controls in strings; DEL and the C1 controls are left to us.
        let escaped =
            match std::str::from_utf8(&self.out[start..]).map(vfioctl_core::escape_controls) {
                Ok(std::borrow::Cow::Owned(text)) => Some(text),
                _ => None,
            };
        if let Some(text) = escaped {
            self.out.truncate(start);
            self.out.extend_from_slice(text.as_bytes());
        }
        self.out.push(b'\n');
        Ok(())
    }

    /// Appends a line made of `parts`, each plain or in a tone (control characters escaped in
    /// both).
    pub(crate) fn line_parts(&mut self, parts: &[(Option<Tone>, &str)]) {
        self.printed = true;
        for (tone, text) in parts {
            match tone {
                Some(tone) => self.out.extend_from_slice(paint(*tone, text).as_bytes()),
                None => self
                    .out
                    .extend_from_slice(vfioctl_core::escape_controls(text).as_bytes()),
            }
        }
        self.out.push(b'\n');
    }

    /// Appends a line that starts with `head` in `tone`: `refused: ...`, `Errors:`.
    pub(crate) fn tone_line(&mut self, tone: Tone, head: &str, rest: &str) {
        self.line_parts(&[(Some(tone), head), (None, rest)]);
    }

    /// A note for standard error (suppressed by `--quiet`).
    pub(crate) fn note(&mut self, text: impl Into<String>) {
        self.notes
            .push(vfioctl_core::escape_controls(&text.into()).into_owned());
    }

    /// Writes what was gathered, coloured or not as `--color` and the streams say; a closed
    /// pipe (`| head`) is not an error.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        // A JSON document holds no escape codes of ours (serde escapes any in the data), so it
        // skips anstream, whose stripping read every byte: a fifth of `list --json`.
        let mut stdout: Box<dyn Write> = if self.json {
            Box::new(io::stdout().lock())
        } else {
            Box::new(anstream::AutoStream::new(
                io::stdout(),
                self.color.choice(false),
            ))
        };
        match stdout.write_all(&self.out).and_then(|()| stdout.flush()) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            other => other?,
        }
        self.out.clear();
        if !self.quiet {
            let mut stderr = stderr(self.color, self.json);
            for note in self.notes.drain(..) {
                let _ = writeln!(stderr, "{} {note}", paint(Tone::Note, "note:"));
            }
        }
        Ok(())
    }
}

/// Standard error, coloured as `--color` says (never under `--json`).
pub(crate) fn stderr(color: ColorWhen, json: bool) -> anstream::AutoStream<io::Stderr> {
    anstream::AutoStream::new(io::stderr(), color.choice(json))
}

/// Resolves a device the user named: an address (full or short) or a network interface name.
pub(crate) fn resolve_device<'a>(
    _ctx: &Context,
    inventory: &'a Inventory,
    text: &str,
) -> Result<&'a PciDevice, CliError> {
    Ok(vfioctl_core::select::select_pci(inventory, text)?)
}

/// The `lspci -nn`-style description: `Network controller [0280]: Vendor Device [168c:003e]`.
pub(crate) fn describe(names: &Names, dev: &PciDevice) -> String {
    names.describe(dev)
}

/// Encodes a JSON document for output.
pub(crate) fn to_json(value: &impl serde::Serialize) -> Result<String, CliError> {
    serde_json::to_string_pretty(value)
        .map_err(|e| CliError::new(Exit::Failed, format!("cannot encode JSON: {e}")))
}
