//! `list`, `groups` and `show`: reading the host, never changing it.
//!
//! One module per command; what they share (the IOMMU-off note, table layout) is in `common`, so
//! no command imports another except `show`, which reuses the device and group views of `list`
//! and `groups`.

mod common;
mod detail;
mod groups;
mod list;
mod show;

// The other commands still name the version through here.
pub(crate) use crate::json::JSON_VERSION;
pub(crate) use groups::groups;
pub(crate) use list::list;
pub(crate) use show::show;
