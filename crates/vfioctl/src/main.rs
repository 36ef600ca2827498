//! The vfioctl command, on the running kernel.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    vfioctl::run(&vfioctl::RealKernelSource)
}
