//! A simulated Linux kernel for vfioctl's tests: sysfs trees with the kernel's layout and formats.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
