//! `backup`: walk, chunk, deduplicate, pack, index, and save a snapshot.
//!
//! Directories are walked in parallel (rayon): each directory's entries are processed
//! concurrently and its tree is saved once its children are done, bottom-up. A file unchanged
//! since the parent snapshot (type, size, mtime, ctime, inode) is not read; its content ids are
//! taken from the parent. A large file is read in batches while the previous batch's chunks are
//! hashed, compressed and sealed on all cores. Errors reading an entry become warnings and the
//! snapshot is marked incomplete (`summary.errors`).
//!
//! Entries are read relative to their parent directory's descriptor and never through a
//! symlink: each is listed, `lstat`ed, and (regular files and directories only) opened with
//! `O_NOFOLLOW | O_NONBLOCK` and checked to be the entry listed (device, inode, type). One that
//! was swapped meanwhile (for a symlink to a host file, a FIFO, another directory) is skipped
//! with a "changed while read" warning, counted in `summary.errors`. FIFOs, sockets and devices
//! are never opened.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use dashmap::DashMap;
use jiff::Timestamp;
use nix::fcntl::AT_FDCWD;
use nix::sys::stat::{FileStat, fstat};
use rayon::prelude::*;

use crate::backend::FileType;
use crate::buffers::BufferPool;
use crate::chunker::Chunker;
use crate::error::{Error, ErrorKind, Result};
use crate::format::pack::{BlobType, Compression};
use crate::format::snapshot::{Snapshot, Summary};
use crate::format::tree::{Name, Node, NodeKind, Tree};
use crate::fsmeta::OwnerNames;
use crate::fsread::{
    Opened, kind_of, link_target_at, list_dir, lstat_at, node_from_stat, open_at, xattrs_at,
    xattrs_of,
};
use crate::glob::PathPatterns;
use crate::id::Id;
use crate::indexed::IndexedRepository;
use crate::packer::BlobSaver;
use crate::repository::Actor;
use crate::target_dir::MAX_DEPTH;

mod bucket;
mod plan;

pub use bucket::{ETAG_XATTR, ObjectInfo, ObjectSource};
use plan::{Item, Items, clean_absolute, plan};

/// Which snapshot to compare against.
#[derive(Debug, Clone, Default)]
pub enum ParentChoice {
    /// The newest snapshot with the same host, paths and app.
    #[default]
    Latest,
    /// None: read every file.
    None,
    /// This one.
    Snapshot(Id),
}

/// Options of a backup run.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BackupOptions {
    /// Host and user recorded in the snapshot.
    pub actor: Actor,
    /// uid and gid recorded in the snapshot.
    pub uid_gid: (u32, u32),
    /// Tags.
    pub tags: Vec<String>,
    /// App identity.
    pub app: Option<String>,
    /// The volume identity, for [`BackupSource::Volume`].
    pub volume: Option<String>,
    /// Hooks that ran before the backup, recorded in the summary.
    pub hooks: Vec<crate::format::snapshot::HookRun>,
    /// Exclude globs: with a `/`, matched against the absolute path; without, against the name.
    pub excludes: Vec<String>,
    /// Do not cross into other filesystems (mount points are kept as empty directories).
    pub one_file_system: bool,
    /// The parent.
    pub parent: ParentChoice,
    /// Compute everything, store nothing.
    pub dry_run: bool,
    /// Compression.
    pub compression: Compression,
    /// Snapshot time (default: now).
    pub time: Option<Timestamp>,
    /// Worker threads (0: twice the cores, at least 4 — more than the cores, so that threads
    /// waiting on the disk or the store leave the CPU to others).
    pub threads: usize,
}

impl BackupOptions {
    /// Options for `actor` with defaults otherwise.
    pub fn new(actor: Actor) -> Self {
        Self {
            actor,
            ..Self::default()
        }
    }
}

/// What to back up.
pub enum BackupSource {
    /// Files and directories (absolute or relative to the working directory).
    Paths(Vec<PathBuf>),
    /// The contents of one volume's directory: the snapshot's tree is the directory itself,
    /// so a restore puts its files straight into the target. Set
    /// [`BackupOptions::volume`] to the volume's identity: the parent is found by it, wherever
    /// the directory is now.
    Volume(PathBuf),
    /// One stream stored as a file named `filename`. `finish` runs after the stream ends and
    /// may fail the backup (e.g. the producing command exited non-zero): then no snapshot is saved.
    Stream {
        /// Name of the file in the snapshot.
        filename: String,
        /// The data.
        reader: Box<dyn Read + Send>,
        /// Check run at the end of the stream.
        finish: Option<Box<dyn FnOnce() -> Result<()> + Send>>,
    },
    /// The objects of a bucket below a prefix, as files (see [`ObjectSource`]): the
    /// snapshot's tree is the prefix, its path the source's location, and an object whose
    /// size and ETag are the parent's is not downloaded again.
    Objects(Box<dyn ObjectSource>),
}

/// Progress callbacks (the engine never prints). All methods default to doing nothing.
pub trait BackupProgress: Send + Sync {
    /// Whether the engine should count files and bytes ahead of the backup (for an ETA).
    fn wants_totals(&self) -> bool {
        false
    }
    /// Running totals from the counting walk; `done` on its last call.
    fn totals(&self, _files: u64, _bytes: u64, _done: bool) {}
    /// A file is being read.
    fn file_started(&self, _path: &Path) {}
    /// `n` more bytes processed (read or found unchanged).
    fn bytes(&self, _n: u64) {}
    /// A file is done.
    fn file_done(&self, _path: &Path) {}
    /// Something could not be read or changed while read.
    fn warning(&self, _path: &Path, _message: &str) {}
}

/// Progress that ignores everything.
pub struct NoProgress;
impl BackupProgress for NoProgress {}

/// The result of a backup.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    /// Id of the saved snapshot (`None` on a dry run).
    pub id: Option<Id>,
    /// The snapshot (saved or, on a dry run, that would be).
    pub snapshot: Snapshot,
}

#[derive(Default)]
struct Counters {
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unmodified: AtomicU64,
    dirs_new: AtomicU64,
    dirs_changed: AtomicU64,
    dirs_unmodified: AtomicU64,
    files: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
}

struct Run<'a> {
    repo: &'a IndexedRepository,
    saver: BlobSaver,
    chunker: Chunker,
    excludes: PathPatterns,
    one_file_system: bool,
    progress: &'a dyn BackupProgress,
    cancel: &'a AtomicBool,
    owners: OwnerNames,
    /// Owner of entries that have none of their own (streams, objects).
    uid_gid: (u32, u32),
    counts: Counters,
    /// Recycled batch buffers.
    buffers: BufferPool,
    /// Content of hard-linked files already read, by (device, inode).
    hardlinks: DashMap<(u64, u64), (i64, Vec<Id>)>,
}

/// An entry: `name` relative to the open directory `dir` (or a path, relative to `AT_FDCWD`),
/// shown and matched against excludes as `path`.
#[derive(Clone, Copy)]
struct At<'a> {
    dir: BorrowedFd<'a>,
    name: &'a OsStr,
    path: &'a Path,
}

fn warn(run: &Run<'_>, path: &Path, message: String) {
    run.counts.errors.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(path = %path.display(), "{message}");
    run.progress.warning(path, &message);
}

impl Run<'_> {
    fn check_cancel(&self) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(Error::new(ErrorKind::Interrupted, "backup interrupted"))
        } else {
            Ok(())
        }
    }

    fn load_parent_tree(&self, id: Option<Id>) -> Option<Tree> {
        let id = id?;
        match self.repo.load_tree(&id) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!("parent tree {id} unreadable, reading everything below it: {e}");
                None
            }
        }
    }

    fn save_tree(&self, nodes: Vec<Node>, parent: Option<Id>) -> Result<Id> {
        let mut tree = Tree { nodes };
        tree.sort();
        let (id, _) = self.saver.save(BlobType::Tree, &tree.to_bytes())?;
        let counter = match parent {
            None => &self.counts.dirs_new,
            Some(p) if p == id => &self.counts.dirs_unmodified,
            Some(_) => &self.counts.dirs_changed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    fn save_item(&self, name: &[u8], item: &Item, parent: Option<&Node>) -> Result<Option<Node>> {
        // A given path's parents are the operator's: they are followed as the kernel does. Its
        // last component is not (a symlink given is saved as a symlink).
        match item {
            // Excludes apply to the given paths too (restic's): `backup . --exclude '*.tmp'`
            // leaves out the directory's own `x.tmp`.
            Item::Given(path) if self.excludes.matches(path) => Ok(None),
            Item::Given(path) => {
                let lstat = match lstat_at(AT_FDCWD, path.as_os_str()) {
                    Ok(m) => m,
                    Err(e) => {
                        self.cannot_read(path, e);
                        return Ok(None);
                    }
                };
                let at = At {
                    dir: AT_FDCWD,
                    name: path.as_os_str(),
                    path,
                };
                self.save_entry(at, Name(name.to_vec()), &lstat, lstat.st_dev, parent)
            }
            Item::Parent(path, children) => {
                // Followed: `/home/u/link/docs` records `link` as the directory it leads to.
                let stat = nix::sys::stat::stat(path.as_path())
                    .map_err(|e| Error::io(format!("cannot read {}", path.display()), e.into()))?;
                if kind_of(&stat) != NodeKind::Dir {
                    return Err(Error::invalid(format!(
                        "{} is not a directory",
                        path.display()
                    )));
                }
                let mut node = node_from_stat(Name(name.to_vec()), &stat, &self.owners);
                node.xattrs = xattrs_at(AT_FDCWD, path.as_os_str(), &stat);
                node.subtree = Some(self.save_items(children, parent.and_then(|p| p.subtree))?);
                Ok(Some(node))
            }
        }
    }

    fn save_items(&self, items: &Items, parent: Option<Id>) -> Result<Id> {
        let ptree = self.load_parent_tree(parent);
        let nodes = items
            .par_iter()
            .map(|(name, item)| {
                self.save_item(name, item, ptree.as_ref().and_then(|t| t.find(name)))
            })
            .collect::<Result<Vec<_>>>()?;
        self.save_tree(nodes.into_iter().flatten().collect(), parent)
    }

    /// Warns that the entry at `path` is not what was listed any more: it is skipped.
    fn changed(&self, path: &Path) {
        warn(
            self,
            path,
            format!(
                "{} changed while read (replaced after it was listed), skipped",
                path.display()
            ),
        );
    }

    /// Warns that the entry at `path` could not be read: it is skipped.
    fn cannot_read(&self, path: &Path, e: impl std::fmt::Display) {
        warn(self, path, format!("cannot read {}: {e}", path.display()));
    }

    /// Saves the entry `at` whose `lstat` is `lstat`. Only regular files and directories are
    /// opened, relative to their parent, and only if still the entry listed.
    fn save_entry(
        &self,
        at: At<'_>,
        name: Name,
        lstat: &FileStat,
        root_dev: u64,
        parent: Option<&Node>,
    ) -> Result<Option<Node>> {
        self.check_cancel()?;
        let kind = kind_of(lstat);
        let parent = parent.filter(|p| p.kind == kind);
        match kind {
            NodeKind::Dir if self.one_file_system && lstat.st_dev != root_dev => {
                // A mount point: kept as an empty directory, never opened.
                let mut node = node_from_stat(name, lstat, &self.owners);
                node.xattrs = xattrs_at(at.dir, at.name, lstat);
                node.subtree = Some(self.save_tree(Vec::new(), parent.and_then(|p| p.subtree))?);
                Ok(Some(node))
            }
            NodeKind::Dir => {
                let (dir, st) = match open_at(at.dir, at.name, lstat) {
                    Ok(Opened::Same(dir, st)) => (dir, st),
                    Ok(Opened::Changed) => {
                        self.changed(at.path);
                        return Ok(None);
                    }
                    Err(e) => {
                        self.cannot_read(at.path, e);
                        return Ok(None);
                    }
                };
                let mut node = node_from_stat(name, &st, &self.owners);
                node.xattrs = xattrs_of(&dir);
                node.subtree =
                    Some(self.save_dir(dir, at.path, root_dev, parent.and_then(|p| p.subtree))?);
                Ok(Some(node))
            }
            NodeKind::File => self.save_file(at, name, lstat, parent),
            _ => {
                let mut node = node_from_stat(name, lstat, &self.owners);
                if kind == NodeKind::Symlink {
                    match link_target_at(at.dir, at.name) {
                        Ok(Some(target)) => node.link_target = Some(target),
                        Ok(None) => {
                            self.changed(at.path);
                            return Ok(None);
                        }
                        Err(e) => {
                            self.cannot_read(at.path, e);
                            return Ok(None);
                        }
                    }
                }
                node.xattrs = xattrs_at(at.dir, at.name, lstat);
                Ok(Some(node))
            }
        }
    }

    /// Saves the directory open as `dir`: its entries are listed first, then saved in
    /// parallel relative to `dir`, which is closed when they are done.
    fn save_dir(&self, dir: File, path: &Path, root_dev: u64, parent: Option<Id>) -> Result<Id> {
        if path.components().count() > MAX_DEPTH {
            // A chain of directories of any depth must not exhaust the stack or descriptors.
            warn(
                self,
                path,
                format!(
                    "{} is nested more than {MAX_DEPTH} directories deep; what it holds is \
                     not backed up",
                    path.display()
                ),
            );
            return self.save_tree(Vec::new(), parent);
        }
        let mut names = match list_dir(&dir) {
            Ok(names) => names,
            Err(e) => {
                warn(self, path, format!("cannot list {}: {e}", path.display()));
                Vec::new()
            }
        };
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let ptree = self.load_parent_tree(parent);
        let nodes = names
            .par_iter()
            .map(|n| {
                let child = path.join(n);
                if self.excludes.matches(&child) {
                    return Ok(None);
                }
                let lstat = match lstat_at(dir.as_fd(), n) {
                    Ok(m) => m,
                    Err(e) => {
                        self.cannot_read(&child, e);
                        return Ok(None);
                    }
                };
                let pnode = ptree.as_ref().and_then(|t| t.find(n.as_bytes()));
                let at = At {
                    dir: dir.as_fd(),
                    name: n,
                    path: &child,
                };
                self.save_entry(at, Name::from_os(n), &lstat, root_dev, pnode)
            })
            .collect::<Result<Vec<_>>>()?;
        drop(dir);
        self.save_tree(nodes.into_iter().flatten().collect(), parent)
    }

    /// Saves the regular file `at`. Its content (unless unchanged since `parent` or a hard
    /// link already read) is read from a descriptor checked to be the file listed, and the
    /// node's metadata is that descriptor's.
    fn save_file(
        &self,
        at: At<'_>,
        name: Name,
        lstat: &FileStat,
        parent: Option<&Node>,
    ) -> Result<Option<Node>> {
        let path = at.path;
        let mut node = node_from_stat(name, lstat, &self.owners);
        self.counts.files.fetch_add(1, Ordering::Relaxed);
        self.counts.bytes.fetch_add(node.size, Ordering::Relaxed);
        if let Some(p) = parent
            && node.same_file_metadata(p)
            && let Some(content) = self.reuse(p, path)
        {
            node.content = Some(content);
            // Setting or removing an xattr changes the ctime, which is unchanged: the parent's
            // xattrs are the file's (and reading them again through /proc would cost more
            // than the lstat).
            node.xattrs = p.xattrs.clone();
            return Ok(Some(node));
        }
        let link_key = (node.device_id, node.inode);
        if node.is_hardlink()
            && let Some(known) = self.hardlinks.get(&link_key)
            && known.0 == node.mtime
        {
            self.progress.bytes(node.size);
            node.content = Some(known.1.clone());
            drop(known);
            node.xattrs = xattrs_at(at.dir, at.name, lstat);
            return Ok(Some(node));
        }
        self.progress.file_started(path);
        let (file, st) = match open_at(at.dir, at.name, lstat) {
            Ok(Opened::Same(file, st)) => (file, st),
            Ok(Opened::Changed) => {
                self.changed(path);
                return Ok(None);
            }
            Err(e) => {
                self.cannot_read(path, e);
                return Ok(None);
            }
        };
        let mut node = node_from_stat(node.name, &st, &self.owners);
        node.xattrs = xattrs_of(&file);
        let read = self
            .save_stream(&file)
            .map_err(|e| e.context(format!("while reading {}", path.display())));
        let (content, size) = match read {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::Io => {
                warn(self, path, format!("{e}: {}", source_text(&e)));
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        match fstat(&file) {
            Ok(after)
                if after.st_size != st.st_size
                    || after.st_mtime != st.st_mtime
                    || after.st_mtime_nsec != st.st_mtime_nsec =>
            {
                let m = format!("{} changed while it was read", path.display());
                tracing::debug!("{m}");
                self.progress.warning(path, &m);
            }
            _ => {}
        }
        drop(file);
        self.count_read(parent.is_some());
        if node.is_hardlink() {
            self.hardlinks
                .insert(link_key, (node.mtime, content.clone()));
        }
        self.progress.file_done(path);
        // The size is what was read: a file that changed meanwhile is recorded as stored.
        node.content = Some(content);
        node.size = size;
        Ok(Some(node))
    }

    /// The content of `parent`, a file found unchanged at `path`, counted as reused; `None`
    /// when a blob of it is no longer indexed (the file is read again).
    fn reuse(&self, parent: &Node, path: &Path) -> Option<Vec<Id>> {
        let content = parent.content.as_ref()?;
        if !content.iter().all(|id| self.repo.index().contains(id)) {
            return None;
        }
        self.saver.note_reused(content);
        self.counts.files_unmodified.fetch_add(1, Ordering::Relaxed);
        self.progress.bytes(parent.size);
        self.progress.file_done(path);
        Some(content.clone())
    }

    /// Counts a file read: changed when it had a parent, else new.
    fn count_read(&self, had_parent: bool) {
        let counter = if had_parent {
            &self.counts.files_changed
        } else {
            &self.counts.files_new
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Chunks and saves a stream: while one batch's chunks are saved on all cores, the next
    /// batch is read. Batch buffers are recycled through the run's pool.
    fn save_stream(&self, mut reader: impl Read + Send) -> Result<(Vec<Id>, u64)> {
        let read = |r: &mut dyn Read, carry: &[u8]| {
            self.chunker
                .read_batch(r, carry, self.buffers.get())
                .map_err(|e| Error::new(ErrorKind::Io, "read failed").with_source(e))
        };
        let mut ids = Vec::new();
        let mut size = 0u64;
        let mut batch = read(&mut reader, &[])?;
        loop {
            self.check_cancel()?;
            size += batch.chunks.iter().map(|r| r.len() as u64).sum::<u64>();
            if batch.eof {
                ids.extend(self.save_chunks(&batch.buf, &batch.chunks)?);
                self.buffers.put(batch.buf);
                return Ok((ids, size));
            }
            let (saved, next) = rayon::join(
                || self.save_chunks(&batch.buf, &batch.chunks),
                || read(&mut reader, &batch.buf[batch.carry.clone()]),
            );
            self.buffers.put(std::mem::take(&mut batch.buf));
            ids.extend(saved?);
            batch = next?;
        }
    }

    fn save_chunks(&self, buf: &[u8], chunks: &[std::ops::Range<usize>]) -> Result<Vec<Id>> {
        chunks
            .par_iter()
            .map(|r| {
                let (id, _) = self.saver.save(BlobType::Data, &buf[r.clone()])?;
                self.progress.bytes(r.len() as u64);
                Ok(id)
            })
            .collect()
    }
}

fn source_text(e: &Error) -> String {
    std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_default()
}

fn find_parent(
    repo: &IndexedRepository,
    opts: &BackupOptions,
    paths: &[String],
) -> Result<Option<(Id, Snapshot)>> {
    Ok(match &opts.parent {
        ParentChoice::None => None,
        ParentChoice::Snapshot(id) => Some((*id, repo.load_file(FileType::Snapshot, id)?)),
        ParentChoice::Latest => repo.snapshots()?.into_iter().rev().find(|(_, s)| {
            s.same_source(
                &opts.actor.hostname,
                paths,
                opts.app.as_deref(),
                opts.volume.as_deref(),
            )
        }),
    })
}

/// The counting walk's state (see [`count_totals`]).
struct Counting<'a> {
    excludes: &'a PathPatterns,
    progress: &'a dyn BackupProgress,
    stop: &'a AtomicBool,
    files: u64,
    bytes: u64,
}

impl Counting<'_> {
    /// Counts the entry `at` and what is below it, through descriptors as the backup reads
    /// (an entry swapped for a symlink is not followed). Recursive, so that the directories
    /// held open are those of one path.
    fn entry(&mut self, at: At<'_>, lstat: &FileStat) {
        if self.stop.load(Ordering::Relaxed) {
            return;
        }
        match kind_of(lstat) {
            // (The backup warns about these.)
            NodeKind::Dir if at.path.components().count() > MAX_DEPTH => {}
            NodeKind::Dir => {
                let Ok(Opened::Same(dir, _)) = open_at(at.dir, at.name, lstat) else {
                    return;
                };
                for n in list_dir(&dir).unwrap_or_default() {
                    let path = at.path.join(&n);
                    if self.excludes.matches(&path) {
                        continue;
                    }
                    if let Ok(st) = lstat_at(dir.as_fd(), &n) {
                        let child = At {
                            dir: dir.as_fd(),
                            name: &n,
                            path: &path,
                        };
                        self.entry(child, &st);
                    }
                }
            }
            NodeKind::File => {
                self.files += 1;
                self.bytes += u64::try_from(lstat.st_size).unwrap_or(0);
                if self.files.is_multiple_of(1000) {
                    self.progress.totals(self.files, self.bytes, false);
                }
            }
            _ => {}
        }
    }
}

/// Counts files and bytes below `items`, for the progress ETA.
fn count_totals(
    items: &Items,
    excludes: &PathPatterns,
    progress: &dyn BackupProgress,
    stop: &AtomicBool,
) {
    fn given(items: &Items, out: &mut Vec<PathBuf>) {
        for item in items.values() {
            match item {
                Item::Given(p) => out.push(p.clone()),
                Item::Parent(_, c) => given(c, out),
            }
        }
    }
    let mut roots = Vec::new();
    given(items, &mut roots);
    let mut c = Counting {
        excludes,
        progress,
        stop,
        files: 0,
        bytes: 0,
    };
    for p in roots.iter().filter(|p| !excludes.matches(p)) {
        if let Ok(st) = lstat_at(AT_FDCWD, p.as_os_str()) {
            let at = At {
                dir: AT_FDCWD,
                name: p.as_os_str(),
                path: p,
            };
            c.entry(at, &st);
        }
    }
    if !stop.load(Ordering::Relaxed) {
        progress.totals(c.files, c.bytes, true);
    }
}

/// Backs up `source` into `repo`.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for bad paths or patterns, [`ErrorKind::Interrupted`] when
/// `cancel` was set, [`ErrorKind::NotFound`] when a pack the snapshot would refer to was removed
/// meanwhile, [`ErrorKind::Locked`] when the lock was lost, backend errors. Unreadable entries
/// are not errors: they are warned about and counted in `summary.errors`.
pub fn backup(
    repo: &IndexedRepository,
    source: BackupSource,
    opts: &BackupOptions,
    progress: &dyn BackupProgress,
    cancel: &AtomicBool,
) -> Result<BackupOutcome> {
    crate::ops::in_pool(opts.threads, repo.backend().connections(), || {
        run_backup(repo, source, opts, progress, cancel)
    })
}

fn run_backup(
    repo: &IndexedRepository,
    source: BackupSource,
    opts: &BackupOptions,
    progress: &dyn BackupProgress,
    cancel: &AtomicBool,
) -> Result<BackupOutcome> {
    let start = Instant::now();
    let time = opts.time.unwrap_or_else(Timestamp::now);
    if !opts.dry_run {
        let (n, bad) = crate::ops::recover::index_unindexed_packs(repo)?;
        if n > 0 {
            tracing::info!("indexed {n} packs left by an interrupted backup");
        }
        for (id, why) in bad {
            tracing::warn!("pack {id} is not indexed and unreadable: {why}");
        }
    }
    let run = Run {
        repo,
        saver: BlobSaver::new(repo, repo.index().clone(), opts.compression, opts.dry_run),
        chunker: Chunker::new(repo.config().chunker),
        excludes: PathPatterns::new(&opts.excludes)?,
        one_file_system: opts.one_file_system,
        progress,
        cancel,
        owners: OwnerNames::default(),
        uid_gid: opts.uid_gid,
        counts: Counters::default(),
        buffers: BufferPool::new(4),
        hardlinks: DashMap::new(),
    };
    let (paths, result) = match source {
        BackupSource::Paths(paths) => {
            if paths.is_empty() {
                return Err(Error::invalid("no paths to back up"));
            }
            let (shown, items) = plan(&paths)?;
            let parent = find_parent(repo, opts, &shown)?;
            let stop = AtomicBool::new(false);
            let result = std::thread::scope(|s| {
                if progress.wants_totals() {
                    // Totals are only for the progress bar: a thread that cannot start is none.
                    let _ = std::thread::Builder::new()
                        .stack_size(16 << 20)
                        .spawn_scoped(s, || count_totals(&items, &run.excludes, progress, &stop));
                }
                let r = run.save_items(&items, parent.as_ref().map(|p| p.1.tree));
                stop.store(true, Ordering::Relaxed);
                r
            });
            (shown, result.map(|tree| (tree, parent.map(|p| p.0))))
        }
        BackupSource::Volume(dir) => {
            let dir = clean_absolute(&dir)?;
            let cannot = |e: nix::Error| {
                Error::io(format!("cannot read volume {}", dir.display()), e.into())
            };
            let lstat = lstat_at(AT_FDCWD, dir.as_os_str()).map_err(cannot)?;
            if kind_of(&lstat) != NodeKind::Dir {
                return Err(Error::invalid(format!(
                    "volume {} is not a directory",
                    dir.display()
                )));
            }
            if opts.volume.is_none() {
                return Err(Error::invalid(
                    "a volume backup needs the volume's identity",
                ));
            }
            let shown = vec![dir.to_string_lossy().into_owned()];
            let parent = find_parent(repo, opts, &shown)?;
            let Opened::Same(fd, _) = open_at(AT_FDCWD, dir.as_os_str(), &lstat).map_err(cannot)?
            else {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("volume {} changed while it was opened", dir.display()),
                ));
            };
            let result = run.save_dir(fd, &dir, lstat.st_dev, parent.as_ref().map(|p| p.1.tree));
            (shown, result.map(|tree| (tree, parent.map(|p| p.0))))
        }
        BackupSource::Stream {
            filename,
            reader,
            finish,
        } => {
            // A relative path of clean components: `db/export.json` is stored as such.
            let parts: Vec<&str> = filename.trim_start_matches('/').split('/').collect();
            if parts.len() > 32
                || parts
                    .iter()
                    .any(|p| p.is_empty() || *p == "." || *p == ".." || p.len() > 255)
            {
                return Err(Error::invalid(format!(
                    "`{filename}` is not a valid file name for a stream (a relative path of \
                     names, such as db/export.sql)"
                )));
            }
            let shown = vec![format!("/{}", parts.join("/"))];
            let parent = find_parent(repo, opts, &shown)?;
            let result = (|| {
                let (content, size) = run.save_stream(reader)?;
                if let Some(f) = finish {
                    f()?;
                }
                let (name, dirs) = parts.split_last().expect("one part at least");
                let now = time.as_nanosecond() as i64;
                let made = |name: &str, kind: NodeKind, mode: u32| {
                    let mut node = Node::new(Name(name.as_bytes().to_vec()), kind);
                    node.mode = mode;
                    (node.uid, node.gid) = run.uid_gid;
                    (node.mtime, node.atime, node.ctime) = (now, now, now);
                    node
                };
                let mut node = made(name, NodeKind::File, 0o600);
                node.content = Some(content);
                node.size = size;
                run.counts.files.fetch_add(1, Ordering::Relaxed);
                run.counts.files_new.fetch_add(1, Ordering::Relaxed);
                run.counts.bytes.fetch_add(size, Ordering::Relaxed);
                let mut tree = run.save_tree(vec![node], None)?;
                for dir in dirs.iter().rev() {
                    let mut node = made(dir, NodeKind::Dir, 0o700);
                    node.subtree = Some(tree);
                    tree = run.save_tree(vec![node], None)?;
                }
                Ok(tree)
            })();
            (shown, result.map(|tree| (tree, parent.map(|p| p.0))))
        }
        BackupSource::Objects(source) => {
            let shown = vec![source.location()];
            let parent = find_parent(repo, opts, &shown)?;
            let result = run.save_objects(source.as_ref(), parent.as_ref().map(|p| p.1.tree));
            (shown, result.map(|tree| (tree, parent.map(|p| p.0))))
        }
    };
    let Run { saver, counts, .. } = run;
    let packs_used = saver.packs_used();
    let (tree, parent) = match result {
        Ok(r) => r,
        Err(e) => {
            // A dry run uploads nothing to keep.
            let kept = !opts.dry_run
                && match saver.abandon() {
                    Ok(()) => true,
                    Err(e2) => {
                        tracing::warn!("could not index the packs uploaded so far: {e2}");
                        false
                    }
                };
            if e.kind() == ErrorKind::Interrupted && kept {
                return Err(Error::new(
                    ErrorKind::Interrupted,
                    "backup interrupted: no snapshot was saved; the data uploaded so far is \
                     kept, and the next backup does not upload it again",
                ));
            }
            return Err(e);
        }
    };
    let stats = saver.finish()?;
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut tags = opts.tags.clone();
    tags.sort();
    tags.dedup();
    let snapshot = Snapshot {
        time,
        hostname: opts.actor.hostname.clone(),
        username: opts.actor.username.clone(),
        uid: opts.uid_gid.0,
        gid: opts.uid_gid.1,
        paths,
        tags,
        app: opts.app.clone(),
        volume: opts.volume.clone(),
        parent,
        tree,
        excludes: opts.excludes.clone(),
        program_version: format!("cairn {}", env!("CARGO_PKG_VERSION")),
        summary: Some(Summary {
            backup_start: Some(time),
            backup_end: Some(Timestamp::now()),
            files_new: c(&counts.files_new),
            files_changed: c(&counts.files_changed),
            files_unmodified: c(&counts.files_unmodified),
            dirs_new: c(&counts.dirs_new),
            dirs_changed: c(&counts.dirs_changed),
            dirs_unmodified: c(&counts.dirs_unmodified),
            data_blobs: stats.data_blobs,
            tree_blobs: stats.tree_blobs,
            data_added: stats.bytes_added,
            data_added_packed: stats.bytes_packed,
            total_files_processed: c(&counts.files),
            total_bytes_processed: c(&counts.bytes),
            errors: c(&counts.errors),
            duration_seconds: start.elapsed().as_secs_f64(),
            hooks: opts.hooks.clone(),
        }),
        original: None,
    };
    let id = if opts.dry_run {
        None
    } else {
        verify_packs_exist(repo, &packs_used.ids())?;
        repo.check_lock()?;
        Some(repo.save_file(FileType::Snapshot, &snapshot)?)
    };
    Ok(BackupOutcome { id, snapshot })
}

/// Fails, naming the pack, when one of `packs` (those holding the blobs the snapshot refers to,
/// see [`BlobSaver::packs_used`]) is gone: the index in memory is stale, a prune removed the pack
/// meanwhile, and a snapshot now could not be restored. One listing of the packs.
fn verify_packs_exist(repo: &IndexedRepository, packs: &[Id]) -> Result<()> {
    if packs.is_empty() {
        return Ok(());
    }
    let stored: std::collections::HashSet<Id> =
        repo.packs()?.into_iter().map(|(id, _)| id).collect();
    match packs.iter().find(|p| !stored.contains(p)) {
        None => Ok(()),
        Some(gone) => Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "pack {gone} holding data of this backup is gone (removed by a prune while the \
                 backup ran?); no snapshot was saved: run the backup again"
            ),
        )),
    }
}

/// Re-exported for callers that share the saver (copy, repack).
pub use crate::packer::SaverStats;
