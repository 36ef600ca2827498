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
    out: std::cell::RefCell<Vec<u8>>,
    notes: Vec<String>,
    printed: std::cell::Cell<bool>,
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
            out: std::cell::RefCell::new(Vec::new()),
            notes: Vec::new(),
            printed: std::cell::Cell::new(false),
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
        self.printed.get()
    }

    /// Appends a line to standard output (written when the command ends).
    pub(crate) fn line(&mut self, text: impl AsRef<str>) {
        self.printed.set(true);
        let out = self.out.get_mut();
        out.extend_from_slice(vfioctl_core::escape_controls(text.as_ref()).as_bytes());
        out.push(b'\n');
    }

    /// Writes a JSON document to standard output. On hosts with thousands of functions a
    /// document is megabytes, so it is encoded straight to standard output rather than held
    /// (after what was gathered before it, when something was: then it joins that).
    pub(crate) fn json_document(&self, value: &impl serde::Serialize) -> Result<(), CliError> {
        self.printed.set(true);
        let encode_error =
            |e: serde_json::Error| CliError::new(Exit::Failed, format!("cannot encode JSON: {e}"));
        let mut gathered = self.out.borrow_mut();
        if !gathered.is_empty() {
            vfioctl_core::write_json(&mut *gathered, value).map_err(encode_error)?;
            gathered.push(b'\n');
            return Ok(());
        }
        drop(gathered);
        let mut stdout = io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
        let written = vfioctl_core::write_json(&mut stdout, value).and_then(|()| {
            stdout
                .write_all(b"\n")
                .and_then(|()| stdout.flush())
                .map_err(serde_json::Error::io)
        });
        match written {
            // A closed pipe (`| head`) is not an error.
            Err(e) if e.io_error_kind() == Some(io::ErrorKind::BrokenPipe) => Ok(()),
            Err(e) if e.is_io() => Err(CliError::new(
                Exit::Failed,
                format!("cannot write output: {e}"),
            )),
            other => other.map_err(encode_error),
        }
    }

    /// Appends a line made of `parts`, each plain or in a tone (control characters escaped in
    /// both).
    pub(crate) fn line_parts(&mut self, parts: &[(Option<Tone>, &str)]) {
        self.printed.set(true);
        let out = self.out.get_mut();
        for (tone, text) in parts {
            match tone {
                Some(tone) => out.extend_from_slice(paint(*tone, text).as_bytes()),
                None => out.extend_from_slice(vfioctl_core::escape_controls(text).as_bytes()),
            }
        }
        out.push(b'\n');
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
        let out = self.out.get_mut();
        match stdout.write_all(out).and_then(|()| stdout.flush()) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            other => other?,
        }
        out.clear();
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
