//! The vfioctl command, on the running kernel.
#![forbid(unsafe_code)]

// musl's allocator maps and unmaps pages for nearly every size class it first meets: half of a
// `bind`'s system calls were its mmap and munmap. dlmalloc takes memory from the kernel in
// 64 KiB steps and keeps it.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> std::process::ExitCode {
    vfioctl::run(&vfioctl::RealKernelSource)
}
