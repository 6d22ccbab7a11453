//! One module per operation.

pub mod backup;
pub mod check;
pub mod copy;
pub mod diff;
pub mod dump;
pub mod find;
pub mod forget;
pub mod prune;
pub mod recover;
pub mod repair;
pub mod restore;
pub mod rewrite;
pub mod stats;
pub mod tag;
pub mod walk;

use crate::error::{Error, ErrorKind, Result};

/// Runs `f` on a worker pool of `threads` threads (0: twice the cores, at least 4, and at
/// least twice the backend's connections). Operations that wait on disks or a remote store
/// want more threads than cores, so that a thread waiting leaves the CPU to another.
pub(crate) fn in_pool<T: Send>(
    threads: usize,
    connections: usize,
    f: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    let threads = match threads {
        0 => std::thread::available_parallelism()
            .map_or(4, |n| 2 * n.get())
            .max(4)
            .max(2 * connections),
        n => n,
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        // Walks recurse once per directory level (up to `target_dir::MAX_DEPTH`).
        .stack_size(16 << 20)
        .thread_name(|i| format!("cairn-worker-{i}"))
        .build()
        .map_err(|e| Error::new(ErrorKind::Io, "cannot start worker threads").with_source(e))?
        .install(f)
}
