//! What every command needs: the root, names, output settings.

use std::io::{self, Write};

use vfioctl_core::{Inventory, PciDevice};
use vfioctl_host::HostRoot;

use crate::cli::GlobalArgs;
use crate::error::CliError;
use crate::exit::Exit;
use crate::names::Names;

/// Shared state of one vfioctl run.
pub struct Context {
    /// The root the host layer works under.
    pub root: HostRoot,
    /// `--json`.
    pub json: bool,
    /// `--quiet`.
    pub quiet: bool,
    /// `--verbose` count.
    pub verbose: u8,
    /// Names for IDs.
    pub names: Names,
    pci_ids: Option<std::path::PathBuf>,
    out: Vec<u8>,
    notes: Vec<String>,
}

impl Context {
    /// Opens the root given on the command line.
    pub fn new(global: &GlobalArgs) -> Result<Self, CliError> {
        let root = HostRoot::open(&global.root)?;
        Ok(Self {
            root,
            json: global.json,
            quiet: global.quiet,
            verbose: global.verbose,
            names: Names::default(),
            pci_ids: global.pci_ids.clone(),
            out: Vec::new(),
            notes: Vec::new(),
        })
    }

    /// Reads the inventory (everything about each device), and the names its devices need.
    pub fn inventory(&mut self) -> Result<Inventory, CliError> {
        self.inventory_at(vfioctl_host::read::Depth::Full)
    }

    /// Reads the inventory at `depth`, and the names its devices need.
    pub fn inventory_at(
        &mut self,
        depth: vfioctl_host::read::Depth,
    ) -> Result<Inventory, CliError> {
        let inventory = vfioctl_host::read::read_inventory_at(&self.root, depth)?;
        self.names = Names::load(&self.root, self.pci_ids.as_deref(), &inventory).map_err(|e| {
            CliError::new(Exit::Usage, e)
                .hint("pass --pci-ids a readable pci.ids file, or leave it out")
        })?;
        Ok(inventory)
    }

    /// Appends a line to standard output (written when the command ends).
    pub fn line(&mut self, text: impl AsRef<str>) {
        self.out.extend_from_slice(text.as_ref().as_bytes());
        self.out.push(b'\n');
    }

    /// A note for standard error (suppressed by `--quiet`).
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// Writes what was gathered; a closed pipe (`| head`) is not an error.
    pub fn flush(&mut self) -> io::Result<()> {
        let mut stdout = io::stdout().lock();
        match stdout.write_all(&self.out).and_then(|()| stdout.flush()) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            other => other?,
        }
        self.out.clear();
        if !self.quiet {
            let mut stderr = io::stderr().lock();
            for note in self.notes.drain(..) {
                let _ = writeln!(stderr, "note: {note}");
            }
        }
        Ok(())
    }
}

/// Resolves a device the user named: an address (full or short) or a network interface name.
pub fn resolve_device<'a>(
    _ctx: &Context,
    inventory: &'a Inventory,
    text: &str,
) -> Result<&'a PciDevice, CliError> {
    Ok(vfioctl_core::select::select_pci(inventory, text)?)
}

/// The `lspci -nn`-style description: `Network controller [0280]: Vendor Device [168c:003e]`.
pub fn describe(names: &Names, dev: &PciDevice) -> String {
    names.describe(dev)
}

/// Encodes a JSON document for output.
pub fn to_json(value: &impl serde::Serialize) -> Result<String, CliError> {
    serde_json::to_string_pretty(value)
        .map_err(|e| CliError::new(Exit::Failed, format!("cannot encode JSON: {e}")))
}
