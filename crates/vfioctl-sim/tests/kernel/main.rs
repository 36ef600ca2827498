//! The simulated kernel's write semantics, one behaviour per test.
// Helpers outside #[test] fns are test code too; a panic is the failure report.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod binding;
mod cdev;
mod devices;
mod faults;
mod modules;
mod sriov;
mod support;
