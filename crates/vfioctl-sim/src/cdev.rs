//! The VFIO device cdev and iommufd, modelled on the kernel's `Documentation/driver-api/vfio.rst`
//! ("VFIO Device cdev") and `drivers/vfio/group.c`, `device_cdev.c`:
//!
//! - a kernel built with iommufd (the builder's `iommufd`) has `/dev/iommu`, and each device a
//!   vfio driver holds gets `vfio-dev/vfioN` in sysfs and `/dev/vfio/devices/vfioN`, the lowest
//!   free N, removed when the driver lets go;
//! - the group file and the cdevs of its devices are exclusive: opening a device's cdev while its
//!   group file is open, or the group file while a cdev of the group is open, fails with EBUSY,
//!   and the group file is opened by one user at a time;
//! - a group has one DMA owner: binding a cdev to an iommufd (`VFIO_DEVICE_BIND_IOMMUFD`) while
//!   another iommufd owns a device of the same group fails with EBUSY.
//!
//! [`VfioFiles`] holds the opens of one process, as file descriptors do: nothing is kept in the
//! tree, so nothing is left behind when the process ends.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use vfioctl_core::PciAddress;

use crate::state::Errno;
use crate::tree::files::{device_dir, group_of, put, remove_dir_if_exists, remove_if_exists};

/// The character-device major the simulated kernel gives VFIO device files.
const CDEV_MAJOR: u32 = 511;

/// What a kernel with iommufd has from boot: `/dev/iommu`, `/dev/vfio/devices`, and the two
/// options in `boot/config-RELEASE`.
pub(crate) fn kernel_files(root: &Path, release: &str) -> io::Result<()> {
    put(root, "dev/iommu", "")?;
    fs::create_dir_all(root.join("dev/vfio/devices"))?;
    put(
        root,
        format!("boot/config-{release}"),
        "CONFIG_IOMMUFD=y\nCONFIG_VFIO_GROUP=y\nCONFIG_VFIO_DEVICE_CDEV=y\n",
    )
}

/// Gives the device at `address` its cdev: `vfio-dev/vfioN/dev` under its sysfs directory and
/// `dev/vfio/devices/vfioN`, N the lowest number free.
pub(crate) fn create(root: &Path, address: PciAddress) -> io::Result<()> {
    let dir = device_dir(root, address)?;
    let taken: BTreeSet<u32> = fs::read_dir(root.join("dev/vfio/devices"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("vfio")?.parse().ok())
        .collect();
    let n = (0..).find(|n| !taken.contains(n)).unwrap_or_default();
    put(
        root,
        dir.join(format!("vfio-dev/vfio{n}/dev")),
        format!("{CDEV_MAJOR}:{n}\n"),
    )?;
    put(root, format!("dev/vfio/devices/vfio{n}"), "")
}

/// Removes the cdev of the device at `address`, if it has one.
pub(crate) fn remove(root: &Path, address: PciAddress) -> io::Result<()> {
    let dir = root.join(device_dir(root, address)?).join("vfio-dev");
    for name in names_in(&dir) {
        remove_if_exists(&root.join("dev/vfio/devices").join(&name))?;
    }
    remove_dir_if_exists(&dir)
}

fn names_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

/// An open `/dev/iommu`: an iommufd context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Iommufd(u32);

/// One open cdev.
#[derive(Debug)]
struct OpenCdev {
    group: u32,
    bound: Option<Iommufd>,
}

/// The VFIO files one process has open on a simulated tree.
#[derive(Debug)]
pub struct VfioFiles {
    root: PathBuf,
    next_ctx: u32,
    groups: BTreeSet<u32>,
    cdevs: BTreeMap<String, OpenCdev>,
}

impl VfioFiles {
    /// No file open yet, on the tree at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            next_ctx: 0,
            groups: BTreeSet::new(),
            cdevs: BTreeMap::new(),
        }
    }

    /// Opens `/dev/iommu`: ENOENT on a kernel without iommufd.
    pub fn open_iommufd(&mut self) -> Result<Iommufd, Errno> {
        if !self.root.join("dev/iommu").exists() {
            return Err(Errno::Enoent);
        }
        self.next_ctx += 1;
        Ok(Iommufd(self.next_ctx))
    }

    /// Opens `/dev/vfio/GROUP`: ENOENT without the node, EBUSY while it or a cdev of one of its
    /// devices is open.
    pub fn open_group(&mut self, group: u32) -> Result<(), Errno> {
        if !self.root.join(format!("dev/vfio/{group}")).exists() {
            return Err(Errno::Enoent);
        }
        if self.groups.contains(&group) || self.cdevs.values().any(|c| c.group == group) {
            return Err(Errno::Ebusy);
        }
        self.groups.insert(group);
        Ok(())
    }

    /// Closes `/dev/vfio/GROUP`.
    pub fn close_group(&mut self, group: u32) {
        self.groups.remove(&group);
    }

    /// Opens `/dev/vfio/devices/NAME`: ENOENT without the file, EBUSY while its group file is
    /// open (or the cdev is already open here).
    pub fn open_cdev(&mut self, name: &str) -> Result<(), Errno> {
        if !self.root.join("dev/vfio/devices").join(name).exists() {
            return Err(Errno::Enoent);
        }
        let group = self.group_of_cdev(name).ok_or(Errno::Enodev)?;
        if self.groups.contains(&group) || self.cdevs.contains_key(name) {
            return Err(Errno::Ebusy);
        }
        self.cdevs
            .insert(name.to_owned(), OpenCdev { group, bound: None });
        Ok(())
    }

    /// `VFIO_DEVICE_BIND_IOMMUFD`: makes `ctx` the DMA owner of the cdev's group. EBUSY when
    /// another iommufd owns a device of the group; EINVAL when the cdev is not open or is bound.
    pub fn bind_iommufd(&mut self, name: &str, ctx: Iommufd) -> Result<(), Errno> {
        let group = match self.cdevs.get(name) {
            Some(OpenCdev { bound: None, group }) => *group,
            _ => return Err(Errno::Einval),
        };
        let other_owner = self
            .cdevs
            .values()
            .any(|c| c.group == group && c.bound.is_some_and(|b| b != ctx));
        if other_owner {
            return Err(Errno::Ebusy);
        }
        if let Some(cdev) = self.cdevs.get_mut(name) {
            cdev.bound = Some(ctx);
        }
        Ok(())
    }

    /// Closes a cdev (its binding, and the group's DMA ownership with the last one, go too).
    pub fn close_cdev(&mut self, name: &str) {
        self.cdevs.remove(name);
    }

    fn group_of_cdev(&self, name: &str) -> Option<u32> {
        let devices = self.root.join("sys/bus/pci/devices");
        names_in(&devices).into_iter().find_map(|address| {
            let dir = PathBuf::from("sys/bus/pci/devices").join(&address);
            self.root
                .join(&dir)
                .join("vfio-dev")
                .join(name)
                .exists()
                .then(|| group_of(&self.root, &dir))
                .flatten()
        })
    }
}
