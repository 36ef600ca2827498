//! `list`, `groups` and `show`: reading the host, never changing it.

//!
//! One module per command; what they share (the JSON version, the IOMMU-off note, table layout)
//! is in `common`, so no command imports another except `show`, which reuses the device and
//! group views of `list` and `groups`.

mod common;
mod groups;
mod list;
mod show;

pub use common::JSON_VERSION;
pub use groups::groups;
pub use list::list;
pub use show::show;
