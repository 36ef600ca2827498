//! Reading the PCI inventory and IOMMU groups from sysfs.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use vfioctl_core::config::parse_config;
use vfioctl_core::ids::parse_sysfs_hex;
use vfioctl_core::{ClassCode, Inventory, PciAddress, PciDevice, SkippedDevice, VendorDevice};

use crate::error::excerpt;
use crate::{HostError, HostRoot};

/// Attributes are small; anything larger is garbage and is not read whole.
const MAX_ATTR: u64 = 64 * 1024;

/// Reads a text attribute; `Ok(None)` when it does not exist.
pub fn read_attr(path: &Path) -> Result<Option<String>, HostError> {
    match read_bytes(path, MAX_ATTR) {
        Ok(Some(bytes)) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads at most `limit` bytes; `Ok(None)` when the file does not exist.
pub fn read_bytes(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, HostError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut bytes = Vec::new();
    Ok(read_bytes_into(path, limit, &mut bytes)?.then_some(bytes))
}

/// [`read_bytes`] into `bytes` (cleared first), so a scan of thousands of devices reuses one
/// buffer; false when the file does not exist.
fn read_bytes_into(path: &Path, limit: usize, bytes: &mut Vec<u8>) -> Result<bool, HostError> {
    read_bytes_into_at(Attr::absolute(path), limit, bytes)
}

fn read_bytes_into_at(attr: Attr, limit: usize, bytes: &mut Vec<u8>) -> Result<bool, HostError> {
    bytes.clear();
    let Some(file) = open_to_read_at(attr)? else {
        return Ok(false);
    };
    read_on(&file, attr.path, limit, bytes)?;
    Ok(true)
}

/// A file to read: `rel` below the directory `dir` (one path component for the kernel to walk,
/// not the ten of an absolute sysfs path: path walks were most of a scan's system time), named
/// by its whole `path` in errors.
#[derive(Clone, Copy)]
struct Attr<'a> {
    dir: std::os::fd::BorrowedFd<'a>,
    rel: &'a Path,
    path: &'a Path,
}

impl<'a> Attr<'a> {
    fn absolute(path: &'a Path) -> Self {
        Self {
            dir: rustix::fs::CWD,
            rel: path,
            path,
        }
    }
}

/// `attr` opened for reading; `None` when it does not exist.
fn open_to_read_at(attr: Attr) -> Result<Option<std::os::fd::OwnedFd>, HostError> {
    let path = attr.path;
    match rustix::fs::openat(
        attr.dir,
        attr.rel,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(f) => Ok(Some(f)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(errno) => Err(HostError::Read {
            path: path.to_path_buf(),
            source: errno.into(),
        }),
    }
}

/// Reads on from where `file` is until `bytes` holds `limit` bytes or the file ends.
fn read_on(
    file: &std::os::fd::OwnedFd,
    path: &Path,
    limit: usize,
    bytes: &mut Vec<u8>,
) -> Result<(), HostError> {
    // sysfs returns a whole attribute from one read(2), and a short read of a regular file means
    // its end; so a single read usually suffices and the trailing read-to-EOF is skipped. The
    // read goes into the vector's spare capacity: zeroing a page for every attribute first was
    // over a quarter of `doctor`'s time.
    if bytes.len() >= limit {
        return Ok(());
    }
    bytes.reserve((limit - bytes.len()).min(4096));
    loop {
        match rustix::io::read(file, rustix::buffer::spare_capacity(&mut *bytes)) {
            Ok(0) => break,
            Ok(_) => {
                if bytes.len() < bytes.capacity() || bytes.len() >= limit {
                    break;
                }
                let grown = (bytes.capacity() * 2).min(limit);
                bytes.reserve_exact(grown - bytes.len());
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(errno) => {
                return Err(HostError::Read {
                    path: path.to_path_buf(),
                    source: errno.into(),
                });
            }
        }
    }
    bytes.truncate(limit);
    Ok(())
}

/// The longest link target read without allocating; sysfs targets are well under it.
const LINK_BUFFER: usize = 512;

/// `f` of a symlink's target, read into a buffer on the stack; `Ok(None)` when the link does not
/// exist or is not a link (EINVAL: a damaged tree, treated as absent rather than failing the
/// whole listing). A target too long for the buffer is read whole by the standard library.
fn with_link_target<T>(path: &Path, f: impl FnOnce(&Path) -> T) -> Result<Option<T>, HostError> {
    with_link_target_at(Attr::absolute(path), f)
}

fn with_link_target_at<T>(attr: Attr, f: impl FnOnce(&Path) -> T) -> Result<Option<T>, HostError> {
    let path = attr.path;
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); LINK_BUFFER];
    match rustix::fs::readlinkat_raw(attr.dir, attr.rel, &mut buf) {
        Ok((target, _)) if target.len() < LINK_BUFFER => {
            Ok(Some(f(Path::new(OsStr::from_bytes(target)))))
        }
        Ok(_) => match fs::read_link(path) {
            Ok(target) => Ok(Some(f(&target))),
            Err(source) => Err(HostError::Read {
                path: path.to_path_buf(),
                source,
            }),
        },
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::INVAL) => Ok(None),
        Err(errno) => Err(HostError::Read {
            path: path.to_path_buf(),
            source: errno.into(),
        }),
    }
}

/// The basename of a symlink's target; `Ok(None)` when the link does not exist.
pub fn link_name(path: &Path) -> Result<Option<String>, HostError> {
    link_name_at(Attr::absolute(path))
}

fn link_name_at(attr: Attr) -> Result<Option<String>, HostError> {
    Ok(with_link_target_at(attr, |target| {
        target.file_name().map(|n| n.to_string_lossy().into_owned())
    })?
    .flatten())
}

/// The basename of a symlink's target parsed as `T` (`iommu_group`'s group number), without
/// making a string of it; `Ok(None)` when the link does not exist or its name is not a `T`.
fn link_parsed_at<T: std::str::FromStr>(attr: Attr) -> Result<Option<T>, HostError> {
    Ok(with_link_target_at(attr, |target| target.file_name()?.to_str()?.parse().ok())?.flatten())
}

/// Resolves a relative sysfs symlink lexically, refusing targets that leave `root`.
///
/// sysfs links are relative and their parents are real directories, so lexical resolution gives
/// the kernel's path without following further links (which could loop in a damaged tree).
pub fn resolve_link(root: &Path, link: &Path) -> Result<PathBuf, HostError> {
    let bad = || HostError::BadLink {
        path: link.to_path_buf(),
    };
    let rel_dir = link
        .parent()
        .and_then(|p| p.strip_prefix(root).ok())
        .ok_or_else(bad)?;
    let resolved = with_link_target(link, |target| {
        if target.is_absolute() {
            return None;
        }
        let mut parts: Vec<&OsStr> = Vec::with_capacity(16);
        parts.extend(rel_dir.components().filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        }));
        for c in target.components() {
            match c {
                Component::Normal(n) => parts.push(n),
                Component::ParentDir => {
                    parts.pop()?;
                }
                Component::CurDir => {}
                _ => return None,
            }
        }
        let len = root.as_os_str().len() + parts.iter().map(|p| p.len() + 1).sum::<usize>();
        // Room for the attribute names read under the directory next.
        let mut out = PathBuf::with_capacity(len + 32);
        out.push(root);
        parts.iter().for_each(|p| out.push(p));
        Some(out)
    });
    match resolved {
        Ok(Some(Some(path))) => Ok(path),
        Ok(Some(None)) => Err(bad()),
        // A device link that vanished or is not a link: the read error the kernel would give.
        Ok(None) => Err(HostError::Read {
            path: link.to_path_buf(),
            source: fs::read_link(link)
                .err()
                .unwrap_or_else(|| io::ErrorKind::InvalidInput.into()),
        }),
        Err(e) => Err(e),
    }
}

fn garbage(path: PathBuf, what: &'static str, found: &str) -> HostError {
    HostError::Garbage {
        path,
        what,
        found: excerpt(found.as_bytes()),
    }
}

/// Parses `driver_override`: `(null)` (older kernels) and empty (newer) both mean unset.
pub fn parse_driver_override(text: &str) -> Option<String> {
    let value = text.trim_end_matches('\n').trim();
    (!value.is_empty() && value != "(null)").then(|| value.to_owned())
}

/// The names in a directory, sorted; empty when it cannot be read (absent is the common case).
pub fn dir_names(dir: &Path) -> Vec<String> {
    names_in(dir, false)
}

/// The names of the real subdirectories of `dir` (no links), sorted; empty when it cannot be read.
pub fn subdir_names(dir: &Path) -> Vec<String> {
    names_in(dir, true)
}

fn names_in(dir: &Path, only_dirs: bool) -> Vec<String> {
    names_in_at(Attr::absolute(dir), only_dirs)
}

fn names_in_at(dir: Attr, only_dirs: bool) -> Vec<String> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let Ok(fd) = rustix::fs::openat(dir.dir, dir.rel, flags, Mode::empty()) else {
        return Vec::new();
    };
    // getdents64 into a buffer on the stack: std's read_dir goes through the C library's
    // opendir, which under musl maps and unmaps a page for each directory.
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 8192];
    let mut entries = rustix::fs::RawDir::new(&fd, &mut buf);
    let mut names = Vec::new();
    while let Some(Ok(entry)) = entries.next() {
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        if only_dirs {
            let kind = match entry.file_type() {
                // Some file systems do not fill in the type; ask for it.
                rustix::fs::FileType::Unknown => {
                    match rustix::fs::statat(&fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) => rustix::fs::FileType::from_raw_mode(st.st_mode),
                        Err(_) => continue,
                    }
                }
                kind => kind,
            };
            if kind != rustix::fs::FileType::Directory {
                continue;
            }
        }
        names.push(String::from_utf8_lossy(name.to_bytes()).into_owned());
    }
    names.sort();
    names
}

/// How much of each device to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// What listing and grouping need: identity, driver, override, group, parent, config space,
    /// network interfaces, and whether a function past 0 is a VF (`physfn`). Several times fewer
    /// files per device than [`Depth::Full`], which matters on hosts with thousands of SR-IOV
    /// functions.
    Summary,
    /// [`Depth::Summary`] and what `doctor`'s device checks read: the power state and reset
    /// methods of every function that is not a bridge, `d3cold_allowed` of those in D3cold, and
    /// `boot_vga` of VGA functions (the only ones the kernel gives it).
    Health,
    /// What planning a bind or a give-back reads: [`Depth::Summary`], the kernel's class, the
    /// network interfaces of every function, `boot_vga` of VGA functions, and a PF's SR-IOV
    /// attributes and VFs; the 4 KiB extended config space only where ACS decides grouping.
    /// Power state, reset methods and NUMA node (which `show` and `doctor` read) no plan uses;
    /// on a real kernel each attribute is a lookup, and each config read bus cycles (under a
    /// hypervisor, an exit per 4 bytes), which were most of what `bind` added to the kernel's
    /// own work.
    Plan,
    /// Everything, for `show` and diagnostics.
    Full,
}

fn u16_le(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// A device's directory with its attributes' paths made in place: a scan reads five to ten
/// attributes of each of thousands of devices, and a path and a buffer allocated for every one
/// were a fifth of its time (and, split between threads, contention in the allocator). Any
/// sysfs directory whose files are read in a batch (`iommu_groups/`) is read through one.
pub(crate) struct DeviceAttrs {
    path: PathBuf,
    scratch: Vec<u8>,
    /// The directory, opened once (`O_PATH`) for the attributes to be opened relative to it;
    /// `None` when it could not be, and the attributes are then opened by their whole paths.
    fd: Option<std::os::fd::OwnedFd>,
}

impl DeviceAttrs {
    pub(crate) fn new(dir: &Path) -> Self {
        let mut path = PathBuf::with_capacity(dir.as_os_str().len() + 32);
        path.push(dir);
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        DeviceAttrs {
            fd: rustix::fs::open(dir, flags, Mode::empty()).ok(),
            path,
            scratch: Vec::with_capacity(256),
        }
    }

    fn dir(&self) -> &Path {
        &self.path
    }

    fn at<T>(&mut self, name: &str, f: impl FnOnce(Attr, &mut Vec<u8>) -> T) -> T {
        use std::os::fd::AsFd;
        self.path.push(name);
        let attr = match &self.fd {
            Some(fd) => Attr {
                dir: fd.as_fd(),
                rel: Path::new(name),
                path: &self.path,
            },
            None => Attr::absolute(&self.path),
        };
        let out = f(attr, &mut self.scratch);
        self.path.pop();
        out
    }

    /// The names in subdirectory `name`, sorted; empty when it cannot be read.
    fn names(&mut self, name: &str) -> Vec<String> {
        self.at(name, |attr, _| names_in_at(attr, false))
    }

    /// `f` of a text attribute (lossily decoded); `Ok(None)` when it does not exist.
    pub(crate) fn text<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&str) -> T,
    ) -> Result<Option<T>, HostError> {
        self.at(name, |attr, buf| {
            Ok(read_bytes_into_at(attr, MAX_ATTR as usize, buf)?
                .then(|| f(&String::from_utf8_lossy(buf))))
        })
    }

    fn small_int<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>, HostError> {
        Ok(self.text(name, |t| t.trim().parse().ok())?.flatten())
    }

    /// A hexadecimal attribute (`0x8086`); garbage in it is an error naming `what`.
    fn hex(&mut self, name: &str, what: &'static str) -> Result<Option<u32>, HostError> {
        self.at(name, |attr, buf| {
            if !read_bytes_into_at(attr, MAX_ATTR as usize, buf)? {
                return Ok(None);
            }
            let text = String::from_utf8_lossy(buf);
            parse_sysfs_hex(&text)
                .map(Some)
                .ok_or_else(|| garbage(attr.path.to_path_buf(), what, &text))
        })
    }

    /// [`DeviceAttrs::hex`] that must exist and be at most `max`.
    fn required_hex(&mut self, name: &str, what: &'static str, max: u32) -> Result<u32, HostError> {
        match self.hex(name, what)? {
            Some(v) if v <= max => Ok(v),
            Some(v) => Err(garbage(self.path.join(name), what, &format!("{v:#x}"))),
            // The raw errno, so messages carry the OS's words rather than Rust's error kind names.
            None => Err(HostError::Read {
                path: self.path.join(name),
                source: io::Error::from_raw_os_error(rustix::io::Errno::NOENT.raw_os_error()),
            }),
        }
    }

    fn link_address(&mut self, name: &str) -> Result<Option<PciAddress>, HostError> {
        self.link_parsed(name)
    }

    fn is_dir(&mut self, name: &str) -> bool {
        self.at(name, |attr, _| {
            rustix::fs::statat(attr.dir, attr.rel, rustix::fs::AtFlags::empty()).is_ok_and(|st| {
                rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
            })
        })
    }

    fn link_name(&mut self, name: &str) -> Result<Option<String>, HostError> {
        self.at(name, |attr, _| link_name_at(attr))
    }

    fn link_parsed<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>, HostError> {
        self.at(name, |attr, _| link_parsed_at(attr))
    }

    /// Config space: the first 256 bytes, and the extended space only for the functions whose
    /// ACS capability decides grouping (bridges and multifunction devices). Each config read is
    /// a chain of bus cycles on real hardware, so the 4 KiB are not read for every endpoint.
    fn config(&mut self) -> Result<Option<Vec<u8>>, HostError> {
        self.at("config", |attr, _| {
            let path = attr.path;
            let Some(file) = open_to_read_at(attr)? else {
                return Ok(None);
            };
            let mut config = Vec::with_capacity(256);
            read_on(&file, path, 256, &mut config)?;
            let header = config.get(0x0e).copied().unwrap_or(0);
            let needs_extended = config.len() == 256 && (header & 0x7f != 0 || header & 0x80 != 0);
            if needs_extended {
                // On from byte 256 of the same open file: the header is not read twice.
                read_on(&file, path, 4096, &mut config)?;
            }
            Ok(Some(config))
        })
    }

    /// `driver_override`, unread while `locked` (see [`read_device_at`]).
    fn driver_override(&mut self, locked: bool) -> Result<Option<String>, HostError> {
        if locked {
            return Ok(None);
        }
        Ok(self
            .text("driver_override", parse_driver_override)?
            .flatten())
    }
}

/// Reads one device at the depth asked for. With `locked` (an unbind of it is stuck in the
/// kernel: [`crate::owners::stuck_devices`]) the attributes whose show() takes the device lock
/// that unbind holds, `driver_override` and `sriov_numvfs`, are left unread (unset) rather than
/// waited for: a read of them would not return before the unbind does.
pub fn read_device_at(
    address: PciAddress,
    dir: &Path,
    depth: Depth,
    locked: bool,
) -> Result<PciDevice, HostError> {
    match depth {
        Depth::Full => read_device(address, dir, locked),
        Depth::Plan => read_for_plan(address, dir, locked),
        Depth::Summary => read_summary(address, &mut DeviceAttrs::new(dir), locked),
        Depth::Health => {
            let mut attrs = DeviceAttrs::new(dir);
            let mut dev = read_summary(address, &mut attrs, locked)?;
            read_health(&mut attrs, &mut dev)?;
            Ok(dev)
        }
    }
}

/// What [`Depth::Summary`] reads, through `attrs`.
fn read_summary(
    address: PciAddress,
    attrs: &mut DeviceAttrs,
    locked: bool,
) -> Result<PciDevice, HostError> {
    let config = attrs.config()?;
    // Config space carries the IDs lspci shows; VFs read 0xffff there on some kernels, and a
    // short read (no privileges, or a damaged tree) has nothing, so fall back to the attributes.
    let from_config = config.as_deref().and_then(|c| {
        let vendor = u16_le(c, 0x00)?;
        let device = u16_le(c, 0x02)?;
        (c.len() >= 0x30 && vendor != 0xffff && device != 0xffff && vendor != 0).then(|| {
            let subsystem = (c[0x0e] & 0x7f == 0)
                .then(|| {
                    Some(VendorDevice {
                        vendor: u16_le(c, 0x2c)?,
                        device: u16_le(c, 0x2e)?,
                    })
                })
                .flatten();
            // The class as lspci shows it; the kernel's `class` attribute differs only for the
            // few devices a quirk reclassifies, and `show` reads that attribute.
            let class = u32::from(c[0x09]) | u32::from(c[0x0a]) << 8 | u32::from(c[0x0b]) << 16;
            (VendorDevice { vendor, device }, c[0x08], subsystem, class)
        })
    });
    let mut dev = match from_config {
        Some((id, revision, subsystem, class)) => {
            let mut dev = PciDevice::new(address, id, ClassCode(class));
            dev.revision = Some(revision);
            dev.subsystem = subsystem;
            dev
        }
        None => {
            let class = attrs.required_hex("class", "class code", 0xff_ffff)?;
            let vendor = attrs.required_hex("vendor", "vendor ID", 0xffff)? as u16;
            let device = attrs.required_hex("device", "device ID", 0xffff)? as u16;
            let mut dev =
                PciDevice::new(address, VendorDevice { vendor, device }, ClassCode(class));
            dev.revision = attrs.hex("revision", "revision")?.map(|r| r as u8);
            dev
        }
    };
    dev.driver = attrs.link_name("driver")?;
    dev.driver_override = attrs.driver_override(locked)?;
    dev.iommu_group = attrs.link_parsed("iommu_group")?;
    dev.parent = parent_address(attrs.dir());
    if let Some(bytes) = config {
        dev.config = parse_config(&bytes);
    }
    // A function past 0 counts as multifunction (ACS then decides its group) unless it is a VF,
    // which the kernel never counts: only a VF's `physfn` link tells, and only there is it
    // asked for. A VF's own header never sets the bit, so functions that set it are not asked.
    if summary_reads_physfn(&dev) {
        dev.physfn = attrs.link_address("physfn")?;
    }
    // Only network (0x02) and wireless (0x0d) controllers back network interfaces, and only
    // while a driver holds them.
    if matches!(dev.class.base(), 0x02 | 0x0d) && dev.driver.is_some() {
        dev.net_interfaces = interfaces_of(attrs, dev.id.vendor);
    }
    Ok(dev)
}

/// Whether [`read_summary`] looks for `dev`'s `physfn` link (see there).
fn summary_reads_physfn(dev: &PciDevice) -> bool {
    dev.address.function != 0 && dev.config.multifunction != Some(true)
}

/// The attributes of [`Depth::Health`] beyond the summary.
fn read_health(attrs: &mut DeviceAttrs, dev: &mut PciDevice) -> Result<(), HostError> {
    // Bridges are not given to VMs: no check reads their power state or reset methods.
    if !dev.is_bridge() && dev.class.base() != 0x06 {
        dev.power_state = attrs.text("power_state", |t| t.trim().to_owned())?;
        if dev.power_state.as_deref() == Some("D3cold") {
            dev.d3cold_allowed = attrs.small_int::<u8>("d3cold_allowed")?.map(|v| v != 0);
        }
        dev.reset_method = attrs.text("reset_method", |t| {
            t.split_whitespace().map(str::to_owned).collect()
        })?;
    }
    if dev.class.is_vga() {
        dev.boot_vga = attrs.small_int::<u8>("boot_vga")? == Some(1);
    }
    Ok(())
}

/// Red Hat's vendor ID, which virtio PCI functions carry.
const VIRTIO_VENDOR: u16 = 0x1af4;

/// The network interfaces a function backs: `net/*`, and for a virtio function those of its
/// virtio device (`virtio2/net/eth0`), which is how a virtio-net NIC shows its interface.
fn interfaces_of(attrs: &mut DeviceAttrs, vendor: u16) -> Vec<String> {
    let mut names = attrs.names("net");
    if vendor != VIRTIO_VENDOR {
        return names;
    }
    for sub in dir_names(attrs.dir())
        .iter()
        .filter(|n| n.starts_with("virtio"))
    {
        names.extend(attrs.names(&format!("{sub}/net")));
    }
    names
}

fn parent_address(dir: &Path) -> Option<PciAddress> {
    dir.parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
}

/// Reads everything about one device (`locked`: see [`read_device_at`]).
pub fn read_device(address: PciAddress, dir: &Path, locked: bool) -> Result<PciDevice, HostError> {
    let mut attrs = DeviceAttrs::new(dir);
    let vendor = attrs.required_hex("vendor", "vendor ID", 0xffff)? as u16;
    let device = attrs.required_hex("device", "device ID", 0xffff)? as u16;
    let class = attrs.required_hex("class", "class code", 0xff_ffff)?;
    let mut dev = PciDevice::new(address, VendorDevice { vendor, device }, ClassCode(class));

    let sub_vendor = attrs.hex("subsystem_vendor", "subsystem vendor ID")?;
    let sub_device = attrs.hex("subsystem_device", "subsystem device ID")?;
    if let (Some(v), Some(d)) = (sub_vendor, sub_device) {
        dev.subsystem = Some(VendorDevice {
            vendor: v as u16,
            device: d as u16,
        });
    }
    dev.revision = attrs.hex("revision", "revision")?.map(|r| r as u8);
    dev.driver = attrs.link_name("driver")?;
    dev.driver_override = attrs.driver_override(locked)?;
    dev.iommu_group = attrs.link_parsed("iommu_group")?;
    dev.parent = parent_address(dir);
    dev.physfn = attrs.link_address("physfn")?;
    if let Some(bytes) = read_bytes(&dir.join("config"), 4096)? {
        dev.config = parse_config(&bytes);
    }
    dev.numa_node = attrs.small_int::<i32>("numa_node")?.filter(|n| *n >= 0);
    dev.power_state = attrs.text("power_state", |t| t.trim().to_owned())?;
    dev.d3cold_allowed = attrs.small_int::<u8>("d3cold_allowed")?.map(|v| v != 0);
    dev.reset_method = attrs.text("reset_method", |t| {
        t.split_whitespace().map(str::to_owned).collect()
    })?;
    dev.boot_vga = attrs.small_int::<u8>("boot_vga")? == Some(1);
    dev.net_interfaces = interfaces_of(&mut attrs, dev.id.vendor);
    read_sriov(&mut attrs, &mut dev, locked)?;
    dev.has_secondary_bus = attrs.is_dir("pci_bus");
    Ok(dev)
}

/// A PF's SR-IOV attributes and its VFs (`sriov_numvfs` left unread while `locked`).
fn read_sriov(attrs: &mut DeviceAttrs, dev: &mut PciDevice, locked: bool) -> Result<(), HostError> {
    // The kernel shows the PF attributes together (one attribute group, visible only on PFs),
    // so a function without `sriov_totalvfs` has none of them: one lookup instead of four.
    dev.sriov_totalvfs = attrs.small_int("sriov_totalvfs")?;
    if dev.sriov_totalvfs.is_none() {
        return Ok(());
    }
    dev.sriov_numvfs = if locked {
        None
    } else {
        attrs.small_int("sriov_numvfs")?
    };
    // virtfnN links exist for N below sriov_numvfs; reading them by number avoids listing the
    // whole device directory.
    for i in 0..dev.sriov_numvfs.unwrap_or(0).min(4096) {
        if let Some(vf) = attrs.link_address(&format!("virtfn{i}"))? {
            dev.virtfns.push(vf);
        }
    }
    dev.sriov_drivers_autoprobe = attrs
        .small_int::<u8>("sriov_drivers_autoprobe")?
        .map(|v| v != 0);
    Ok(())
}

/// What [`Depth::Plan`] reads: the summary, then what the planner and the safety rules use.
fn read_for_plan(address: PciAddress, dir: &Path, locked: bool) -> Result<PciDevice, HostError> {
    let mut attrs = DeviceAttrs::new(dir);
    let mut dev = read_summary(address, &mut attrs, locked)?;
    // The kernel's class, which a quirk may have changed from config space's: the rules that
    // protect the host's own chipset functions go by it.
    if let Some(class) = attrs.hex("class", "class code")? {
        dev.class = ClassCode(class);
    }
    if !summary_reads_physfn(&dev) {
        dev.physfn = attrs.link_address("physfn")?;
    }
    // Whether ACS counts depends on the function being a VF, known only now; when it counts and
    // the summary's header rule left the extended space unread, it is read.
    if dev.config.header_type.is_some()
        && !dev.config.extended_readable
        && dev.acs_isolates().is_none()
        && let Some(bytes) = read_bytes(&dir.join("config"), 4096)?
    {
        dev.config = parse_config(&bytes);
    }
    // Every class, as a full read does: a function the host reaches the network through is
    // refused whatever its class says.
    if dev.net_interfaces.is_empty() {
        dev.net_interfaces = interfaces_of(&mut attrs, dev.id.vendor);
    }
    if dev.class.is_vga() {
        dev.boot_vga = attrs.small_int::<u8>("boot_vga")? == Some(1);
    }
    read_sriov(&mut attrs, &mut dev, locked)?;
    dev.has_secondary_bus = attrs.is_dir("pci_bus");
    Ok(dev)
}

/// The real directory of a device, resolved from `sys/bus/pci/devices/<address>`.
pub fn device_dir(root: &HostRoot, address: &PciAddress) -> Result<PathBuf, HostError> {
    resolve_link(root.path(), &root.pci_device(address))
}

/// Reads every PCI function (everything about each) and every IOMMU group.
pub fn read_inventory(root: &HostRoot) -> Result<Inventory, HostError> {
    read_inventory_at(root, Depth::Full)
}

/// Reads every PCI function at `depth`, and every IOMMU group.
pub fn read_inventory_at(root: &HostRoot, depth: Depth) -> Result<Inventory, HostError> {
    let devices_dir = root.join("sys/bus/pci/devices");
    let entries = fs::read_dir(&devices_dir).map_err(|source| HostError::Read {
        path: devices_dir.clone(),
        source,
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| HostError::Read {
            path: devices_dir.clone(),
            source,
        })?;
        names.push(entry.file_name());
    }
    let locked = crate::owners::stuck_devices(root);
    let read_one = |name: &OsStr| -> Result<PciDevice, SkippedDevice> {
        let link = devices_dir.join(name);
        let name = name.to_string_lossy();
        // One device that cannot be read (garbage, unreadable, or vanishing under us while it is
        // hot-removed) must not take every command about the others down with it.
        name.parse::<PciAddress>()
            .map_err(|_| garbage(link.clone(), "PCI device name", &name))
            .and_then(|address| {
                let dir = resolve_link(root.path(), &link)?;
                read_device_at(address, &dir, depth, locked.contains(&address))
            })
            .map_err(|e| SkippedDevice {
                name: vfioctl_core::echoed(&name),
                path: root.display_path(e.path()).display().to_string(),
                reason: e.os_words(),
            })
    };
    let mut devices = Vec::with_capacity(names.len());
    let mut skipped = Vec::new();
    for read in read_all(&names, read_one) {
        match read {
            Ok(dev) => devices.push(dev),
            Err(skip) => skipped.push(skip),
        }
    }
    // Each device's `iommu_group` link names its group, so the members of every group with a PCI
    // device are known without listing /sys/kernel/iommu_groups/*/devices (two directory reads
    // per group, on hosts with thousands of them).
    let mut groups: BTreeMap<u32, Vec<PciAddress>> = BTreeMap::new();
    for dev in &devices {
        if let Some(group) = dev.iommu_group {
            groups.entry(group).or_default().push(dev.address);
        }
    }
    for members in groups.values_mut() {
        members.sort_unstable();
    }
    let iommu_enabled = !groups.is_empty() || !dir_names(&root.join("sys/class/iommu")).is_empty();
    let mut inventory = Inventory::new(devices, iommu_enabled, groups);
    inventory.skipped = skipped;
    Ok(inventory)
}

/// Below this many devices per thread a second thread costs more than it saves.
pub(crate) const DEVICES_PER_THREAD: usize = 512;

/// Most threads a scan uses: sysfs lookups scale with cores, but past a few the scan waits on the
/// kernel's locks and the output, not on lookups.
const MAX_SCAN_THREADS: usize = 4;

/// `read` applied to every name, in order. Reading a device is a handful of path lookups and tiny
/// reads, nearly all of it kernel time, so on hosts with thousands of functions the names are
/// split between a few threads (up to the cores there are); each keeps its slice in order.
fn read_all<T: Send>(names: &[std::ffi::OsString], read: impl Fn(&OsStr) -> T + Sync) -> Vec<T> {
    // Asked only of a large host: the answer costs reads of the cgroup's CPU quota.
    let wanted = (names.len() / DEVICES_PER_THREAD).min(MAX_SCAN_THREADS);
    let threads = if wanted > 1 {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        wanted.min(cores)
    } else {
        1
    };
    if threads == 1 {
        return names.iter().map(|n| read(n)).collect();
    }
    let chunk = names.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let read = &read;
        let workers: Vec<_> = names
            .chunks(chunk)
            .skip(1)
            .map(|part| scope.spawn(move || part.iter().map(|n| read(n)).collect::<Vec<T>>()))
            .collect();
        let mut all: Vec<T> = names[..chunk.min(names.len())]
            .iter()
            .map(|n| read(n))
            .collect();
        for worker in workers {
            // A panic in a worker is a bug in reading one device; it reaches the caller as the
            // panic it was rather than as a missing device.
            match worker.join() {
                Ok(part) => all.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    })
}

/// Reads `/sys/kernel/iommu_groups/*/devices/*` (PCI members only).
pub fn read_groups(root: &HostRoot) -> Result<BTreeMap<u32, Vec<PciAddress>>, HostError> {
    let mut groups = BTreeMap::new();
    let base = root.join("sys/kernel/iommu_groups");
    for name in dir_names(&base) {
        let Ok(id) = name.parse::<u32>() else {
            continue;
        };
        let mut members: Vec<PciAddress> = dir_names(&base.join(&name).join("devices"))
            .iter()
            .filter_map(|m| m.parse().ok())
            .collect();
        members.sort_unstable();
        // Groups of other buses (fsl-mc containers) have no PCI members; they are listed with
        // their bus.
        if !members.is_empty() {
            groups.insert(id, members);
        }
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_override_null_and_empty_mean_unset() {
        assert_eq!(parse_driver_override("(null)\n"), None);
        assert_eq!(parse_driver_override("\n"), None);
        assert_eq!(parse_driver_override(""), None);
        assert_eq!(parse_driver_override("vfio-pci\n"), Some("vfio-pci".into()));
    }

    #[test]
    fn resolve_link_refuses_escape_and_absolute() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("sys/bus/pci/devices")).unwrap();
        std::os::unix::fs::symlink("../../../../../etc", root.join("sys/bus/pci/devices/x"))
            .unwrap();
        std::os::unix::fs::symlink("/etc", root.join("sys/bus/pci/devices/y")).unwrap();
        std::os::unix::fs::symlink(
            "../../../devices/pci0000:00/0000:00:01.0",
            root.join("sys/bus/pci/devices/z"),
        )
        .unwrap();
        assert!(matches!(
            resolve_link(root, &root.join("sys/bus/pci/devices/x")),
            Err(HostError::BadLink { .. })
        ));
        assert!(matches!(
            resolve_link(root, &root.join("sys/bus/pci/devices/y")),
            Err(HostError::BadLink { .. })
        ));
        assert_eq!(
            resolve_link(root, &root.join("sys/bus/pci/devices/z")).unwrap(),
            root.join("sys/devices/pci0000:00/0000:00:01.0")
        );
    }
}
