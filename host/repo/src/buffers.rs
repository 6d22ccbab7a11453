//! A small pool of large buffers.
//!
//! The data path cycles through buffers of many MiB (read batches, packs). Allocating each anew
//! makes the allocator return pages to the kernel and fault them in again — a page fault per
//! 4 KiB, a quarter of a million per GiB backed up. The pool keeps a few for reuse.

use std::sync::Mutex;

/// Keeps up to `keep` emptied buffers for reuse.
#[derive(Debug)]
pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    keep: usize,
}

impl BufferPool {
    /// A pool that keeps up to `keep` buffers.
    pub fn new(keep: usize) -> Self {
        Self {
            free: Mutex::new(Vec::new()),
            keep,
        }
    }

    /// A recycled (empty) buffer, or a new one.
    pub fn get(&self) -> Vec<u8> {
        self.free
            .lock()
            .expect("pool lock")
            .pop()
            .unwrap_or_default()
    }

    /// Returns a buffer for reuse (dropped when the pool is full).
    pub fn put(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut free = self.free.lock().expect("pool lock");
        if free.len() < self.keep && buf.capacity() > 0 {
            free.push(buf);
        }
    }
}
