//! [`TrackingAllocator`]: the system allocator, measuring the largest single request a thread
//! makes while it asks to be watched. A test binary installs it with `#[global_allocator]` to
//! assert that a decoder never asks for more than a cap, whatever its input.
//!
//! Only the calling thread is measured (a thread-local), so tests running in parallel in the
//! same binary do not disturb one another.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    // Const-initialised, so reading it never allocates (it is read inside the allocator).
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, recording the largest request of watched threads.
#[derive(Debug, Default)]
pub struct TrackingAllocator;

impl TrackingAllocator {
    /// A new allocator (for a `static`).
    pub const fn new() -> Self {
        Self
    }
}

fn note(size: usize) {
    // `try_with`: during thread teardown the locals may be gone; nothing to record then.
    let _ = WATCHING.try_with(|w| {
        if w.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

/// Runs `f` on this thread and returns its result with the largest single allocation (bytes)
/// it requested. Meaningful only in a binary whose global allocator is [`TrackingAllocator`]
/// (elsewhere the size is 0).
pub fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    struct Reset(bool, usize);
    impl Drop for Reset {
        fn drop(&mut self) {
            WATCHING.with(|w| w.set(self.0));
            LARGEST.with(|l| l.set(self.1.max(l.get())));
        }
    }
    let outer = Reset(WATCHING.with(Cell::get), LARGEST.with(Cell::get));
    WATCHING.with(|w| w.set(true));
    LARGEST.with(|l| l.set(0));
    let out = f();
    let largest = LARGEST.with(Cell::get);
    drop(outer);
    (out, largest)
}

// The workspace forbids unsafe code; this crate denies it and allows it here only: a global
// allocator is an `unsafe impl` by definition. Every call is passed to `System` unchanged.
#[allow(
    unsafe_code,
    reason = "GlobalAlloc is an unsafe trait; all work is System's"
)]
unsafe impl GlobalAlloc for TrackingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as `dealloc`; the caller's contract for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_keeps_the_outer_measure() {
        // Not the global allocator here: sizes read 0, but the bookkeeping must hold.
        let ((), outer) = largest_allocation(|| {
            let ((), inner) = largest_allocation(|| drop(vec![0u8; 10]));
            assert_eq!(inner, 0);
        });
        assert_eq!(outer, 0);
        assert!(!WATCHING.with(Cell::get));
    }
}
