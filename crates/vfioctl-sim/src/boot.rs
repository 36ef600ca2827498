//! Device `add` in the simulated kernel, with udev: a cold boot, and a hot-plug.
//!
//! - [`SimKernel::cold_boot`]: every PCI device is added afresh (no driver, no override). As at a
//!   real boot with the host drivers built as modules, udev handles each device's `add` event
//!   (its rules run, `ATTR` writes included) before the event loads the driver's module, and the
//!   driver then probes every device it matches, honouring `driver_override`: a device that
//!   appeared with an override binds to that driver only. Then each `bind` event runs.
//! - [`SimKernel::replug`]: one device is removed and added again while its host driver is
//!   loaded, as a hot-plug or a new VF is: the kernel probes it before udev sees the `add`, then
//!   the `add` and `bind` events run.
//!
//! The udev database (`run/udev/data/+pci:<address>`) keeps each event's properties.

use std::io;
use std::path::Path;

use vfioctl_core::PciAddress;

use crate::SimKernel;
use crate::udev::{Event, Rules, read_db, run, write_db};

impl SimKernel {
    fn driver_of(&self, address: PciAddress) -> Option<String> {
        std::fs::read_link(
            self.root()
                .join(format!("sys/bus/pci/devices/{address}/driver")),
        )
        .ok()
        .and_then(|t| Some(t.file_name()?.to_string_lossy().into_owned()))
    }

    fn pci_addresses(&self) -> io::Result<Vec<PciAddress>> {
        let mut out: Vec<PciAddress> = std::fs::read_dir(self.root().join("sys/bus/pci/devices"))?
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Takes a device off its driver and clears its override: what a freshly added device is.
    fn fresh(&self, address: PciAddress) -> io::Result<()> {
        if let Some(drv) = self.driver_of(address) {
            self.write(
                Path::new(&format!("sys/bus/pci/drivers/{drv}/unbind")),
                &address.to_string(),
            )?;
        }
        self.write(
            Path::new(&format!("sys/bus/pci/devices/{address}/driver_override")),
            "\n",
        )?;
        let db = crate::udev::db_path(self.root(), address);
        if db.exists() {
            std::fs::remove_file(db)?;
        }
        Ok(())
    }

    /// Runs the rules for one event of `address` and stores its properties.
    fn event(&self, rules: &Rules, action: &str, address: PciAddress) -> io::Result<()> {
        let mut event = Event {
            action,
            address,
            env: Default::default(),
        };
        if let Some(drv) = self.driver_of(address).filter(|_| action == "bind") {
            event.env.insert("DRIVER".to_owned(), drv);
        }
        let old = read_db(self.root(), address);
        run(self.root(), rules, &mut event, &old, &mut |path, value| {
            self.write(Path::new(path), value)
        })?;
        event.env.remove("DRIVER");
        write_db(self.root(), address, &event.env)
    }

    /// Runs `bind` events until the device's driver stops changing (a rule may move it).
    fn bind_events(&self, rules: &Rules, address: PciAddress) -> io::Result<()> {
        let mut seen = None;
        for _ in 0..4 {
            let now = self.driver_of(address);
            if now.is_none() || now == seen {
                break;
            }
            self.event(rules, "bind", address)?;
            seen = now;
        }
        Ok(())
    }

    fn probe_added(&self, address: PciAddress) -> io::Result<()> {
        if self.driver_of(address).is_none() {
            self.write(Path::new("sys/bus/pci/drivers_probe"), &address.to_string())?;
        }
        Ok(())
    }

    /// Boots the simulated host again: every device is added, udev's rules (under the root's
    /// `etc/udev/rules.d`, `run/udev/rules.d` and `lib/udev/rules.d`) run for its `add` event,
    /// then the modules in `load` are loaded (those an initramfs forces, `vfio_pci`), then the
    /// loaded drivers probe, then the `bind` events run.
    ///
    /// # Errors
    ///
    /// A rule the simulated udev cannot model, a module that cannot load, or a failed write.
    pub fn cold_boot(&self, load: &[&str]) -> io::Result<()> {
        let rules = Rules::load(self.root())?;
        let addresses = self.pci_addresses()?;
        for &a in &addresses {
            self.fresh(a)?;
        }
        for &a in &addresses {
            self.event(&rules, "add", a)?;
        }
        for m in load {
            self.load_module(m).map_err(io::Error::other)?;
        }
        for &a in &addresses {
            self.probe_added(a)?;
        }
        for &a in &addresses {
            self.bind_events(&rules, a)?;
        }
        Ok(())
    }

    /// Removes `address` and adds it again while the drivers stay loaded, as a hot-plug does: the
    /// kernel probes it first, then udev runs its `add` and `bind` events.
    ///
    /// # Errors
    ///
    /// As [`SimKernel::cold_boot`].
    pub fn replug(&self, address: PciAddress) -> io::Result<()> {
        let rules = Rules::load(self.root())?;
        self.fresh(address)?;
        self.probe_added(address)?;
        self.event(&rules, "add", address)?;
        // A device the kernel could not give a driver is probed again by the event's kmod load.
        self.probe_added(address)?;
        self.bind_events(&rules, address)
    }
}
