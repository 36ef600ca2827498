//! The vfioctl command.
fn main() {}
