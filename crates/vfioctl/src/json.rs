//! What every JSON document vfioctl prints has in common.
//!
//! Its own module, below the commands and the error renderer alike, so that both can name the
//! version without either importing the other.

/// Version of every JSON document vfioctl prints.
pub(crate) const JSON_VERSION: u32 = 1;
