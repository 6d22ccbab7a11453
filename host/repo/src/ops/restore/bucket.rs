//! Restoring into a bucket: each regular file of the snapshot (below the subpath) becomes the
//! object whose key is its path relative to the subpath, replacing what the bucket holds
//! there. A bucket has no directories, links or devices: an empty directory leaves nothing,
//! other entries are warned about. A file that cannot be put is a warning too (the restore
//! goes on, and is incomplete); a missing or corrupt blob fails it.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rayon::prelude::*;

use super::{RestoreProgress, RestoreSummary};
use crate::error::{Error, ErrorKind, Result};
use crate::format::tree::{Node, NodeKind};
use crate::glob::PathPatterns;
use crate::id::Id;
use crate::indexed::IndexedRepository;
use crate::ops::walk::walk;

/// Where a restore puts objects.
pub trait ObjectSink: Send + Sync {
    /// Where that is, for messages (never with credentials).
    fn location(&self) -> String;

    /// Stores `content` (`size` bytes) as the object `key` (relative to the sink's prefix),
    /// replacing what is there.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a key the store cannot hold, store errors, and the
    /// errors of reading `content`.
    fn put(&self, key: &str, size: u64, content: &mut dyn Read) -> Result<()>;
}

/// What of a snapshot to put into a bucket.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BucketRestoreOptions {
    /// Path inside the snapshot (`/` or empty: everything).
    pub subpath: String,
    /// Only what matches these (or is below what does).
    pub includes: Vec<String>,
    /// Not what matches these.
    pub excludes: Vec<String>,
}

/// A file's content, blob after blob, as a reader.
struct Content<'a> {
    repo: &'a IndexedRepository,
    blobs: std::slice::Iter<'a, Id>,
    current: Vec<u8>,
    at: usize,
    cancel: &'a AtomicBool,
    /// Why reading stopped, when the repository (not the store) is why.
    failure: Option<Error>,
}

impl Read for Content<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            if self.cancel.load(Ordering::Relaxed) {
                self.failure = Some(Error::new(ErrorKind::Interrupted, "restore interrupted"));
                return Err(std::io::Error::other("restore interrupted"));
            }
            let Some(id) = self.blobs.next() else {
                return Ok(0);
            };
            match self.repo.read_blob(id) {
                Ok(data) => self.current = data,
                Err(e) => {
                    let shown = std::io::Error::other(e.to_string());
                    self.failure = Some(e);
                    return Err(shown);
                }
            }
            self.at = 0;
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Puts the files of `tree` (a snapshot's root tree) into `sink`.
///
/// # Errors
/// [`ErrorKind::NotFound`] when the subpath is not in the snapshot, [`ErrorKind::Interrupted`]
/// when `cancel` was set, a blob that is missing or corrupt (named). A file that cannot be put
/// is a warning.
pub fn restore_to_bucket(
    repo: &IndexedRepository,
    tree: Id,
    opts: &BucketRestoreOptions,
    sink: &dyn ObjectSink,
    progress: &dyn RestoreProgress,
    cancel: &AtomicBool,
) -> Result<RestoreSummary> {
    crate::ops::in_pool(0, repo.backend().connections(), || {
        run(repo, tree, opts, sink, progress, cancel)
    })
}

fn run(
    repo: &IndexedRepository,
    tree: Id,
    opts: &BucketRestoreOptions,
    sink: &dyn ObjectSink,
    progress: &dyn RestoreProgress,
    cancel: &AtomicBool,
) -> Result<RestoreSummary> {
    let includes = PathPatterns::new(&opts.includes)?;
    let excludes = PathPatterns::new(&opts.excludes)?;
    let subpath = format!("/{}", opts.subpath.trim_matches('/'));
    let start = repo.find_node(tree, &subpath)?;
    let warnings = AtomicU64::new(0);
    let warn = |path: &str, message: String| {
        warnings.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("{message}");
        progress.warning(Path::new(path), &message);
    };
    // (key, snapshot path, node) of every file to put.
    let mut files: Vec<(String, String, Node)> = Vec::new();
    let mut others = 0u64;
    // Included: the path, or a directory above it below the subpath, matches.
    let included = |path: &str| {
        includes.is_empty()
            || Path::new(path)
                .ancestors()
                .take_while(|a| *a != Path::new(&subpath))
                .chain([Path::new(path)])
                .any(|a| includes.matches(a))
    };
    let mut visit = |path: &str, node: &Node| -> bool {
        if excludes.matches(Path::new(path)) {
            return false;
        }
        if std::str::from_utf8(&node.name.0).is_err() {
            warn(
                path,
                format!("{path}: its name is not UTF-8, which an object key must be: not restored"),
            );
            return false;
        }
        match node.kind {
            NodeKind::Dir => true,
            NodeKind::File if included(path) => {
                let rel = if start.kind == NodeKind::File {
                    node.name.display()
                } else {
                    path[subpath.len()..].trim_start_matches('/').to_owned()
                };
                files.push((rel, path.to_owned(), node.clone()));
                false
            }
            _ if included(path) => {
                others += 1;
                warn(
                    path,
                    format!(
                        "{path} is a {} and a bucket holds only files: not restored",
                        format!("{:?}", node.kind).to_lowercase()
                    ),
                );
                false
            }
            _ => false,
        }
    };
    match (start.kind, start.subtree) {
        (NodeKind::Dir, Some(tree)) => walk(repo, tree, &subpath, &mut |p, n| Ok(visit(p, n)))?,
        (NodeKind::Dir, None) => {}
        _ => {
            visit(&subpath, &start);
        }
    }
    let total: u64 = files.iter().map(|(_, _, n)| n.size).sum();
    progress.totals(files.len() as u64, total);
    let restored = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    files.par_iter().try_for_each(|(key, path, node)| {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Interrupted, "restore interrupted"));
        }
        let mut content = Content {
            repo,
            blobs: node.content.as_deref().unwrap_or_default().iter(),
            current: Vec::new(),
            at: 0,
            cancel,
            failure: None,
        };
        let put = sink.put(key, node.size, &mut content);
        // What the repository says (a missing or corrupt blob, an interruption) ends the
        // restore; what the store says is this object's problem.
        if let Some(e) = content.failure {
            return Err(e.context(format!("while restoring {path}")));
        }
        match put {
            Ok(()) => {
                restored.fetch_add(1, Ordering::Relaxed);
                bytes.fetch_add(node.size, Ordering::Relaxed);
                progress.bytes(node.size);
                Ok(())
            }
            Err(e) => {
                warn(
                    path,
                    format!("{path}: cannot put it into {}: {e}", sink.location()),
                );
                Ok(())
            }
        }
    })?;
    Ok(RestoreSummary {
        files_restored: restored.into_inner(),
        bytes_restored: bytes.into_inner(),
        others,
        warnings: warnings.into_inner(),
        ..RestoreSummary::default()
    })
}
