//! Giving freed memory back to the system, so that an agent between runs is small.
//!
//! glibc raises its mmap threshold to the size of the largest block freed (up to 32 MiB): after
//! one backup's pack buffers, later large buffers come from the arenas and stay there when
//! freed, one arena per thread that allocated. An idle agent that had run 20 small backups
//! held 16 MiB of such free memory (0.7 MiB in use); with the threshold fixed it holds 4.
//! Elsewhere (musl, other systems) these do nothing.
#![allow(unsafe_code)]

/// Blocks at least this large are mapped on their own and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 4 << 20;

/// Fixes the allocator's mmap threshold (glibc no longer raises it); called once, at start.
pub(crate) fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Returns the free memory of every arena to the system (after the last running job).
pub(crate) fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory the allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}
