//! Names for vendor, device, subsystem and class IDs, read from a `pci.ids` database.
//!
//! `pci.ids` is the text database the PCI ID project maintains and `lspci` reads
//! (`/usr/share/misc/pci.ids` on Debian, `/usr/share/hwdata/pci.ids` on Fedora). Its format:
//!
//! ```text
//! # comment
//! vvvv  Vendor name
//! \tdddd  Device name
//! \t\tsvvv sddd  Subsystem name
//! C cc  Class name
//! \tss  Subclass name
//! \t\tpp  Programming interface name
//! ```
//!
//! The host layer reads the file; this module only parses text, so it is tested with small
//! fixtures. Parsing is tolerant: a malformed line is skipped, never an error, because a
//! half-broken database should still name most devices rather than none (lspci behaves the same).
//!
//! All names are copied into one string arena and indexed by sorted vectors, so a full parse of
//! the 1.4 MB database makes a handful of allocations rather than one per line, and
//! [`PciIds::parse_for`] skips the devices of unwanted vendors without touching their names.

mod describe;
#[cfg(test)]
mod fixture;
mod parse;
mod table;

pub use describe::Described;
pub use table::PciIds;
