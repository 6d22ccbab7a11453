//! `restore`: bring a snapshot (or a part of it) back into a directory.
//!
//! 1. Plan: walk the trees, apply include/exclude patterns and the overwrite policy, create
//!    directories, special files and empty (sparse) regular files of the right size.
//! 2. Content: group every needed blob by pack; read packs in parallel (adjacent blobs in one
//!    ranged read), verify each blob, and write it at its offset in every file that holds it.
//!    Each byte is written once; all-zero blobs are not written, so sparse files stay sparse.
//! 3. Metadata: hard links, then files' and (children first) directories' owner, mode, xattrs
//!    and times. 4. Optionally verify what was written and delete what the snapshot lacks.
//!
//! The target may hold what others made, and others may change it while the restore runs: every
//! entry is reached through descriptors of its directories ([`TargetDir`]) and no link is ever
//! followed, so nothing outside the target is written, changed or removed. Directories are made
//! 0700 and files 0600 (unless the umask would give them no more than their own mode), and get
//! their own modes at the end, so nobody else reads a file while its content is written.
//! Files of more than one blob, and files replacing something, are written under a temporary
//! name and renamed when complete.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::{FileType, REREADS};
use crate::error::{Error, ErrorKind, Result};
use crate::format::pack::{BlobEntry, open_blob_in_place};
use crate::format::tree::{Node, NodeKind};
use crate::fsmeta::{
    apply_metadata_at, apply_metadata_held, apply_metadata_to_file, create_mode, have_proc,
    proc_path,
};
use crate::glob::PathPatterns;
use crate::id::Id;
use crate::indexed::IndexedRepository;
use crate::target_dir::{
    Ident, MAX_DEPTH, TargetDir, ident, is_dir, is_file, list, mkdir_in, open_dir_in, remove_in,
    replaced, stat_in,
};
use nix::fcntl::OFlag;
use nix::sys::stat::fstat;

mod bucket;
pub use bucket::{BucketRestoreOptions, ObjectSink, restore_to_bucket};

/// What to do with a file that exists in the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Overwrite {
    /// Always replace it.
    #[default]
    Always,
    /// Replace it unless its size and mtime match the snapshot's.
    IfChanged,
    /// Keep it.
    Never,
}

/// Options of a restore.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// Directory to restore into (created if missing).
    pub target: PathBuf,
    /// Path inside the snapshot to restore (`/` or empty: everything).
    pub subpath: String,
    /// Only what matches these (and the directories leading to it).
    pub includes: Vec<String>,
    /// Not what matches these.
    pub excludes: Vec<String>,
    /// Re-read and check what was written.
    pub verify: bool,
    /// Existing files.
    pub overwrite: Overwrite,
    /// Remove files in the target that the snapshot does not have.
    pub delete: bool,
    /// Restore ownership (needs root).
    pub owner: bool,
}

/// Progress callbacks of a restore.
pub trait RestoreProgress: Send + Sync {
    /// Files and bytes to write, once planned.
    fn totals(&self, _files: u64, _bytes: u64) {}
    /// `n` more bytes written.
    fn bytes(&self, _n: u64) {}
    /// A problem that did not stop the restore.
    fn warning(&self, _path: &Path, _message: &str) {}
}

impl RestoreProgress for crate::ops::backup::NoProgress {}

/// What a restore did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreSummary {
    /// Files written.
    pub files_restored: u64,
    /// Files left as they were (overwrite policy).
    pub files_skipped: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Other entries (symlinks, fifos, devices, hard links).
    pub others: u64,
    /// Bytes of file content restored.
    pub bytes_restored: u64,
    /// Files verified after writing.
    pub files_verified: u64,
    /// Entries removed by `delete`.
    pub deleted: u64,
    /// Problems that did not stop the restore.
    pub warnings: u64,
}

struct FileJob {
    /// Where the content is written, relative to the target.
    path: PathBuf,
    node: Node,
    /// Created when its one blob is written.
    deferred: bool,
    /// The name (relative to the target) that `path`, a temporary name beside it, gets once
    /// the content is complete.
    replace: Option<PathBuf>,
    /// The inode this restore created: every later open checks that it is still there.
    ident: OnceLock<Ident>,
}

/// A directory or special entry of the plan: its path relative to the target, its node, and
/// the inode this restore made or opened there.
type Entry = (PathBuf, Node, Option<Ident>);

/// Paths in a plan are relative to the target.
struct Plan {
    /// Directories in pre-order, with their nodes.
    dirs: Vec<Entry>,
    /// Regular files to write.
    files: Vec<FileJob>,
    /// Other entries made during planning, whose metadata is set at the end.
    others: Vec<Entry>,
    /// (new path, existing path) hard links to make after contents.
    links: Vec<(PathBuf, PathBuf)>,
    skipped: u64,
}

struct Ctx<'a> {
    repo: &'a IndexedRepository,
    opts: &'a RestoreOptions,
    target: TargetDir,
    includes: PathPatterns,
    excludes: PathPatterns,
    progress: &'a dyn RestoreProgress,
    warnings: AtomicU64,
    /// Which include patterns matched something.
    include_hits: Vec<AtomicBool>,
    cancel: &'a AtomicBool,
}

impl Ctx<'_> {
    /// Whether `path` matches an include pattern; notes which ones did.
    fn included(&self, path: &Path) -> bool {
        let hits = self.includes.which(path);
        for i in &hits {
            self.include_hits[*i].store(true, Ordering::Relaxed);
        }
        !hits.is_empty()
    }

    fn warn(&self, path: &Path, message: String) {
        self.warnings.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(path = %path.display(), "{message}");
        self.progress.warning(path, &message);
    }

    fn check_cancel(&self) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(Error::new(ErrorKind::Interrupted, "restore interrupted"))
        } else {
            Ok(())
        }
    }

    /// An I/O error on `rel` (relative to the target), naming its full path.
    fn io(&self, rel: &Path, what: &str, e: std::io::Error) -> Error {
        Error::io(
            format!("cannot {what} {}", self.target.display(rel).display()),
            e,
        )
    }

    /// Warns about each problem setting the metadata of `rel`.
    fn warn_all(&self, rel: &Path, problems: Vec<String>) {
        let shown = self.target.display(rel);
        for p in problems {
            self.warn(&shown, format!("{}: {p}", shown.display()));
        }
    }
}

fn make_special(dir: BorrowedFd<'_>, name: &OsStr, node: &Node) -> std::io::Result<()> {
    use nix::sys::stat::{Mode, SFlag, mknodat};
    // Made with no permissions; the mode is set with the rest of the metadata at the end.
    let mode = Mode::empty();
    let r = match node.kind {
        NodeKind::Symlink => {
            let target = node.link_target.clone().unwrap_or_default();
            nix::unistd::symlinkat(target.to_os().as_os_str(), dir, name)
        }
        NodeKind::Fifo => nix::unistd::mkfifoat(dir, name, mode),
        NodeKind::Chardev => mknodat(dir, name, SFlag::S_IFCHR, mode, node.rdev),
        NodeKind::Blockdev => mknodat(dir, name, SFlag::S_IFBLK, mode, node.rdev),
        _ => return Ok(()),
    };
    r.map_err(std::io::Error::from)
}

/// A temporary name beside the entry it becomes (one that fits any file system's name limit).
fn temporary_name(rel: &Path) -> PathBuf {
    rel.with_file_name(format!(".cairn-restore-{:016x}", rand::random::<u64>()))
}

impl Ctx<'_> {
    /// Plans the restore of `node` (named in the snapshot as `snap_path`) to `rel` in the
    /// target. `dir` is the directory that holds `rel`, when this restore made or opened it
    /// already (with include patterns, directories are made only when something below them is
    /// restored); `fresh` says this restore made it, so nothing is there yet.
    #[allow(clippy::too_many_arguments, reason = "recursion state, private")]
    fn plan_node(
        &self,
        plan: &mut Plan,
        snap_path: &Path,
        rel: PathBuf,
        dir: Option<BorrowedFd<'_>>,
        node: &Node,
        included: bool,
        fresh: bool,
        seen_links: &mut HashMap<(u64, u64), PathBuf>,
    ) -> Result<bool> {
        self.check_cancel()?;
        if self.excludes.matches(snap_path) {
            return Ok(false);
        }
        let included = included || self.includes.is_empty() || self.included(snap_path);
        let name = rel.file_name().unwrap_or_default().to_owned();
        if node.kind == NodeKind::Dir {
            // Without include patterns every directory is restored: make it now, so files
            // below need no existence checks when it is new. With them, a directory is made
            // only if something below it is restored.
            if rel.components().count() > MAX_DEPTH {
                let shown = self.target.display(&rel);
                self.warn(
                    &shown,
                    format!(
                        "{} is nested more than {MAX_DEPTH} directories deep; not restored",
                        shown.display()
                    ),
                );
                return Ok(true);
            }
            let (child_dir, child_fresh, made) = match dir {
                Some(parent) if self.includes.is_empty() => {
                    match self.make_dir(plan, parent, &name, &rel, fresh)? {
                        Some((fd, fresh, made)) => (Some(fd), fresh, Some(made)),
                        None => return Ok(true),
                    }
                }
                _ => (None, false, None),
            };
            let mark = plan.dirs.len();
            plan.dirs.push((rel.clone(), node.clone(), made));
            let mut any = included;
            if let Some(sub) = node.subtree {
                let tree = self.repo.load_tree(&sub)?;
                for child in &tree.nodes {
                    let name = child.name.to_os();
                    any |= self.plan_node(
                        plan,
                        &snap_path.join(&name),
                        rel.join(&name),
                        child_dir.as_ref().map(AsFd::as_fd),
                        child,
                        included,
                        child_fresh,
                        seen_links,
                    )?;
                }
            }
            if !any {
                plan.dirs.truncate(mark);
            }
            return Ok(any);
        }
        if !included {
            return Ok(false);
        }
        let made;
        let dir = match dir {
            Some(d) => d,
            None => {
                let parent = rel.parent().unwrap_or(Path::new(""));
                match self
                    .target
                    .make_dirs(parent, self.opts.overwrite != Overwrite::Never)
                {
                    Ok(d) => made = d,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        // `--overwrite never` keeps a file where the snapshot has a directory.
                        self.warn(&self.target.display(parent), e.to_string());
                        plan.skipped += 1;
                        return Ok(true);
                    }
                    Err(e) => return Err(self.io(parent, "create directory", e)),
                }
                made.as_fd()
            }
        };
        let existing = if fresh {
            None
        } else {
            stat_in(dir, &name).map_err(|e| self.io(&rel, "inspect", e))?
        };
        // `--overwrite never` keeps whatever is there, of any kind.
        if existing.is_some() && self.opts.overwrite == Overwrite::Never {
            plan.skipped += 1;
            return Ok(true);
        }
        if node.is_hardlink() {
            let key = (node.device_id, node.inode);
            if let Some(first) = seen_links.get(&key) {
                plan.links.push((rel, first.clone()));
                return Ok(true);
            }
            seen_links.insert(key, rel.clone());
        }
        match node.kind {
            NodeKind::File => {
                if let Some(st) = &existing {
                    let same = is_file(st)
                        && st.st_size as u64 == node.size
                        && st
                            .st_mtime
                            .saturating_mul(1_000_000_000)
                            .saturating_add(st.st_mtime_nsec)
                            == node.mtime;
                    if self.opts.overwrite == Overwrite::IfChanged && same {
                        plan.skipped += 1;
                        return Ok(true);
                    }
                }
                // A file of one blob is created when its blob is written, in one go; others
                // now, at their size (holes stay holes). Those, and any file with something
                // in its way, are written under a temporary name and renamed once complete:
                // a restore that fails or is killed leaves what was there, and no file of
                // zeros under the real name.
                let deferred = node.content.as_ref().is_some_and(|c| c.len() == 1);
                let made_file = OnceLock::new();
                // (With `--overwrite never` every file: a rerun keeps what it finds, so an
                // unfinished file must never carry the real name.)
                let (write_to, replace) =
                    if existing.is_some() || !deferred || self.opts.overwrite == Overwrite::Never {
                        (temporary_name(&rel), Some(rel))
                    } else {
                        (rel, None)
                    };
                if !deferred {
                    let f = nix::fcntl::openat(
                        dir,
                        write_to.file_name().unwrap_or_default(),
                        OFlag::O_WRONLY
                            | OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                        nix::sys::stat::Mode::from_bits_truncate(0o600),
                    )
                    .map(std::fs::File::from)
                    .map_err(|e| self.io(&write_to, "create", e.into()))?;
                    f.set_len(node.size)
                        .map_err(|e| self.io(&write_to, "size", e))?;
                    let st = fstat(&f).map_err(|e| self.io(&write_to, "inspect", e.into()))?;
                    let _ = made_file.set(ident(&st));
                }
                plan.files.push(FileJob {
                    path: write_to,
                    node: node.clone(),
                    deferred,
                    replace,
                    ident: made_file,
                });
            }
            NodeKind::Socket => {}
            _ => {
                if existing.is_some() {
                    remove_in(dir, &name).map_err(|e| self.io(&rel, "remove", e))?;
                }
                let made = make_special(dir, &name, node).and_then(|()| stat_in(dir, &name));
                match made {
                    Ok(st) => plan
                        .others
                        .push((rel, node.clone(), st.as_ref().map(ident))),
                    Err(e) => {
                        let shown = self.target.display(&rel);
                        self.warn(&shown, format!("cannot create {}: {e}", shown.display()));
                    }
                }
            }
        }
        Ok(true)
    }

    /// Makes directory `name` (at `rel`) in `parent` unless one is there, and opens it;
    /// returns it, whether it is new, and its inode. `None`: a file is in the way and `--overwrite never`
    /// keeps it.
    fn make_dir(
        &self,
        plan: &mut Plan,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
        parent_fresh: bool,
    ) -> Result<Option<(OwnedFd, bool, Ident)>> {
        if !parent_fresh {
            match stat_in(parent, name).map_err(|e| self.io(rel, "inspect", e))? {
                Some(st) if is_dir(&st) => {
                    let fd = open_dir_in(parent, name).map_err(|e| self.io(rel, "open", e))?;
                    let st = fstat(&fd).map_err(|e| self.io(rel, "inspect", e.into()))?;
                    return Ok(Some((fd, false, ident(&st))));
                }
                Some(_) if self.opts.overwrite == Overwrite::Never => {
                    let shown = self.target.display(rel);
                    self.warn(
                        &shown,
                        format!(
                            "{} is kept (--overwrite never) where the snapshot has a directory",
                            shown.display()
                        ),
                    );
                    plan.skipped += 1;
                    return Ok(None);
                }
                Some(_) => remove_in(parent, name).map_err(|e| self.io(rel, "remove", e))?,
                None => {}
            }
        }
        mkdir_in(parent, name).map_err(|e| self.io(rel, "create directory", e))?;
        let fd = open_dir_in(parent, name).map_err(|e| self.io(rel, "open", e))?;
        // What was just made: ours, 0700 and empty. Anything else was swapped in between the
        // mkdir and the open, and nothing below it may be taken as fresh.
        let st = fstat(&fd).map_err(|e| self.io(rel, "inspect", e.into()))?;
        if st.st_uid != nix::unistd::geteuid().as_raw()
            || st.st_mode & 0o7777 != 0o700
            || st.st_nlink != 2
        {
            return Err(self.io(rel, "create directory", replaced(&self.target.display(rel))));
        }
        Ok(Some((fd, true, ident(&st))))
    }
}

/// Where one blob goes: (file index, offset in file).
type Targets = Vec<(usize, u64)>;

fn write_content(ctx: &Ctx<'_>, files: &[FileJob]) -> Result<u64> {
    let repo = ctx.repo;
    let mut by_pack: HashMap<Id, HashMap<Id, (BlobEntry, Targets)>> = HashMap::new();
    for (i, job) in files.iter().enumerate() {
        let mut offset = 0u64;
        for id in job.node.content.iter().flatten() {
            let loc = repo.index().get(id).ok_or_else(|| {
                Error::corrupt(format!(
                    "blob {id} of {} is in no pack (run `cairn check`)",
                    ctx.target
                        .display(job.replace.as_ref().unwrap_or(&job.path))
                        .display()
                ))
            })?;
            by_pack
                .entry(loc.pack)
                .or_default()
                .entry(*id)
                .or_insert_with(|| (loc.entry, Vec::new()))
                .1
                .push((i, offset));
            offset += u64::from(loc.entry.raw_length);
        }
    }
    let written = AtomicU64::new(0);
    let packs: Vec<_> = by_pack.into_iter().collect();
    packs
        .par_iter()
        .try_for_each(|(pack, blobs)| -> Result<()> {
            ctx.check_cancel()?;
            let mut blobs: Vec<&(BlobEntry, Targets)> = blobs.values().collect();
            blobs.sort_by_key(|b| b.0.offset);
            // Read runs of blobs with small gaps in one request.
            let mut i = 0;
            while i < blobs.len() {
                let start = u64::from(blobs[i].0.offset);
                let mut end = start + u64::from(blobs[i].0.length);
                let mut j = i + 1;
                while j < blobs.len() {
                    let o = u64::from(blobs[j].0.offset);
                    if o > end + 256 * 1024
                        || o + u64::from(blobs[j].0.length) - start > 8 * 1024 * 1024
                    {
                        break;
                    }
                    end = end.max(o + u64::from(blobs[j].0.length));
                    j += 1;
                }
                // A blob that fails authentication is read again, with the rest of the span
                // after it, up to REREADS times: a short or garbled answer from a flaky store
                // is not damage. Blobs placed before it are not written twice.
                let mut from = i;
                let mut rereads = 0;
                while from < j {
                    let at_start = u64::from(blobs[from].0.offset);
                    let mut span = repo.backend().read_range(
                        FileType::Pack,
                        &pack.to_hex(),
                        at_start,
                        end - at_start,
                    )?;
                    let mut failed = None;
                    // The span's blobs on this thread: a nested parallel loop would let a
                    // waiting thread steal another pack's job and hold a second span (peak
                    // memory grew with the number of packs, not the number of threads).
                    for (k, (entry, targets)) in blobs.iter().enumerate().take(j).skip(from) {
                        ctx.check_cancel()?;
                        let at = (u64::from(entry.offset) - at_start) as usize;
                        // Decrypted where it was read (blobs of a span do not overlap).
                        let opened = span
                            .get_mut(at..at + entry.length as usize)
                            .ok_or_else(|| {
                                Error::corrupt(format!(
                                    "pack {pack} is shorter than its index says"
                                ))
                            })
                            .and_then(|sealed| {
                                open_blob_in_place(
                                    repo.key(),
                                    repo.blob_limits(),
                                    entry,
                                    sealed,
                                    pack,
                                )
                            });
                        match opened {
                            Ok(plain) => {
                                place(ctx, files, targets, &plain)?;
                                written.fetch_add(
                                    plain.len() as u64 * targets.len() as u64,
                                    Ordering::Relaxed,
                                );
                            }
                            Err(e) if e.kind() == ErrorKind::Corrupt && rereads < REREADS => {
                                tracing::debug!("reading pack {pack} again: {e}");
                                failed = Some(k);
                                break;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    match failed {
                        Some(k) => {
                            rereads += 1;
                            repo.note_reread();
                            from = k;
                        }
                        None => from = j,
                    }
                }
                i = j;
            }
            Ok(())
        })?;
    Ok(written.into_inner())
}

/// Writes one blob's plaintext at every place it goes.
fn place(ctx: &Ctx<'_>, files: &[FileJob], targets: &Targets, plain: &[u8]) -> Result<()> {
    let zero = plain.iter().all(|&b| b == 0);
    for &(file, offset) in targets {
        let job = &files[file];
        if job.deferred {
            // Complete with this write: its metadata goes on through the open file (no path
            // looked up again, no chmod if created so). Created 0600 unless its own mode is
            // no wider than what the umask lets through anyway, so nothing is readable that
            // the snapshot's mode would not show.
            let mode = create_mode(job.node.mode);
            let mut f = ctx
                .target
                .open_file(
                    &job.path,
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                    mode.unwrap_or(0o600),
                )
                .map_err(|e| ctx.io(&job.path, "create", e))?;
            let st = fstat(&f).map_err(|e| ctx.io(&job.path, "inspect", e.into()))?;
            let _ = job.ident.set(ident(&st));
            let written = if zero {
                f.set_len(job.node.size)
                    .map_err(|e| ctx.io(&job.path, "size", e))
            } else {
                f.write_all(plain)
                    .map_err(|e| ctx.io(&job.path, "write", e))
            };
            if let Err(e) = written {
                // No short file under its name (a full disk, say): it goes, if still ours.
                drop(f);
                remove_made(ctx, job);
                return Err(e);
            }
            let problems = apply_metadata_to_file(&f, &job.node, ctx.opts.owner, mode.is_none());
            ctx.warn_all(job.replace.as_ref().unwrap_or(&job.path), problems);
        } else if !zero {
            let f = open_made(ctx, job, OFlag::O_WRONLY)?;
            f.write_all_at(plain, offset)
                .map_err(|e| ctx.io(&job.path, "write", e))?;
        }
        ctx.progress.bytes(plain.len() as u64);
    }
    Ok(())
}

/// The inode this restore made for `job`, opened with `flags` — only if it is still the one
/// at its path (see [`TargetDir::reopen`]).
fn open_made(ctx: &Ctx<'_>, job: &FileJob, flags: OFlag) -> Result<std::fs::File> {
    let want = job
        .ident
        .get()
        .copied()
        .ok_or_else(|| ctx.io(&job.path, "open", replaced(&ctx.target.display(&job.path))))?;
    ctx.target
        .reopen(&job.path, flags, want)
        .map(std::fs::File::from)
        .map_err(|e| ctx.io(&job.path, "open", e))
}

/// Removes the file this restore made for `job`, if it is still the one there.
fn remove_made(ctx: &Ctx<'_>, job: &FileJob) {
    if let (Some(want), Ok((dir, name))) = (job.ident.get(), ctx.target.parent(&job.path))
        && stat_in(dir.as_fd(), name).is_ok_and(|st| st.is_some_and(|st| ident(&st) == *want))
    {
        let _ = nix::unistd::unlinkat(dir.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
}

/// Re-reads a restored file and checks every piece against its blob id.
fn verify_file(ctx: &Ctx<'_>, job: &FileJob) -> Result<()> {
    let repo = ctx.repo;
    let shown = ctx.target.display(&job.path);
    let mut f = open_made(ctx, job, OFlag::O_RDONLY)?;
    let mut buf = Vec::new();
    let mut total = 0u64;
    for id in job.node.content.iter().flatten() {
        let len = repo
            .index()
            .get(id)
            .map_or(0, |l| l.entry.raw_length as usize);
        buf.resize(len, 0);
        f.read_exact(&mut buf)
            .map_err(|e| ctx.io(&job.path, "read back", e))?;
        if repo.key().blob_id(&buf) != *id {
            return Err(Error::corrupt(format!(
                "{} differs from the snapshot at offset {total}",
                shown.display()
            )));
        }
        total += len as u64;
    }
    let mut rest = [0u8; 1];
    if f.read(&mut rest)
        .map_err(|e| ctx.io(&job.path, "read back", e))?
        != 0
    {
        return Err(Error::corrupt(format!(
            "{} is longer than in the snapshot",
            shown.display()
        )));
    }
    Ok(())
}

/// Removes entries below the restored directories that the snapshot does not have, each
/// reached through its directory's descriptor (a link in the target is removed, never
/// followed).
fn delete_extra<'a>(
    ctx: &Ctx<'_>,
    dirs: impl Iterator<Item = (&'a Path, &'a Node)>,
) -> Result<u64> {
    let mut deleted = 0;
    for (rel, node) in dirs {
        let keep: HashSet<Vec<u8>> = match node.subtree {
            Some(t) => ctx
                .repo
                .load_tree(&t)?
                .nodes
                .into_iter()
                .map(|n| n.name.0)
                .collect(),
            None => HashSet::new(),
        };
        let Ok(dir) = ctx.target.open_dir(rel) else {
            continue;
        };
        let names = list(dir.as_fd()).map_err(|e| ctx.io(rel, "list", e))?;
        for name in names {
            use std::os::unix::ffi::OsStrExt;
            if !keep.contains(name.as_bytes()) {
                remove_in(dir.as_fd(), &name).map_err(|e| ctx.io(&rel.join(&name), "remove", e))?;
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}

/// Sets the metadata of a restored file through a descriptor of the inode this restore made.
fn apply_file(ctx: &Ctx<'_>, job: &FileJob) {
    match open_made(ctx, job, OFlag::O_RDONLY) {
        Ok(f) => ctx.warn_all(
            &job.path,
            apply_metadata_to_file(&f, &job.node, ctx.opts.owner, true),
        ),
        Err(e) => {
            let shown = ctx.target.display(&job.path);
            ctx.warn(&shown, format!("{e}: {}", source_text(&e)));
        }
    }
}

/// Sets the metadata of a restored directory through a descriptor of it, if it still is
/// the one this restore made or opened.
fn apply_dir(ctx: &Ctx<'_>, (rel, node, made): &Entry) {
    let opened = match made {
        Some(want) => ctx
            .target
            .reopen(rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY, *want),
        None => Err(replaced(&ctx.target.display(rel))),
    };
    match opened {
        Ok(fd) => ctx.warn_all(
            rel,
            apply_metadata_to_file(&std::fs::File::from(fd), node, ctx.opts.owner, true),
        ),
        Err(e) => {
            let shown = ctx.target.display(rel);
            ctx.warn(
                &shown,
                format!("cannot set the metadata of {}: {e}", shown.display()),
            );
        }
    }
}

/// Sets the metadata of a restored link, FIFO or device: held `O_PATH` and checked to be the
/// inode this restore made, then changed through that descriptor.
fn apply_special(ctx: &Ctx<'_>, (rel, node, made): &Entry) {
    let shown = ctx.target.display(rel);
    let held = (|| -> std::io::Result<_> {
        let (dir, name) = ctx.target.parent(rel)?;
        let fd = nix::fcntl::openat(
            dir.as_fd(),
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        if Some(ident(&fstat(&fd)?)) != *made {
            return Err(replaced(&shown));
        }
        Ok((dir, name, fd))
    })();
    match held {
        Ok((dir, name, fd)) => {
            let problems = if have_proc() {
                apply_metadata_held(fd.as_fd(), dir.as_fd(), name, node, ctx.opts.owner)
            } else {
                apply_metadata_at(dir.as_fd(), name, node, ctx.opts.owner)
            };
            ctx.warn_all(rel, problems);
        }
        Err(e) => ctx.warn(
            &shown,
            format!("cannot set the metadata of {}: {e}", shown.display()),
        ),
    }
}

fn source_text(e: &Error) -> String {
    std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// Restores `tree` (a snapshot's root tree) according to `opts`.
///
/// # Errors
/// [`ErrorKind::NotFound`] when the subpath is not in the snapshot; I/O errors creating the
/// target; a blob that is missing or corrupt (named). Problems setting metadata are warnings.
pub fn restore(
    repo: &IndexedRepository,
    tree: Id,
    opts: &RestoreOptions,
    progress: &dyn RestoreProgress,
    cancel: &AtomicBool,
) -> Result<RestoreSummary> {
    crate::ops::in_pool(0, repo.backend().connections(), || {
        run_restore(repo, tree, opts, progress, cancel)
    })
}

fn run_restore(
    repo: &IndexedRepository,
    tree: Id,
    opts: &RestoreOptions,
    progress: &dyn RestoreProgress,
    cancel: &AtomicBool,
) -> Result<RestoreSummary> {
    let began = std::time::Instant::now();
    let start = repo.find_node(tree, &opts.subpath)?;
    let target = TargetDir::create(&opts.target).map_err(|e| {
        Error::io(
            format!("cannot create directory {}", opts.target.display()),
            e,
        )
    })?;
    // A target that is empty (or new) holds nothing to check or overwrite.
    let fresh = list(target.fd())
        .map_err(|e| Error::io(format!("cannot list {}", opts.target.display()), e))?
        .is_empty();
    let ctx = Ctx {
        repo,
        opts,
        target,
        includes: PathPatterns::new(&opts.includes)?,
        excludes: PathPatterns::new(&opts.excludes)?,
        progress,
        warnings: AtomicU64::new(0),
        include_hits: opts
            .includes
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect(),
        cancel,
    };
    let mut plan = Plan {
        dirs: Vec::new(),
        files: Vec::new(),
        others: Vec::new(),
        links: Vec::new(),
        skipped: 0,
    };
    let mut seen = HashMap::new();
    // Patterns apply below the restored subpath, as restic's: `latest:/srv --include
    // /etc/*` restores /srv/etc/*.
    let snap_root = Path::new("/");
    let root = ctx.target.fd();
    let root_dir = ctx.includes.is_empty().then_some(root);
    if start.kind == NodeKind::Dir {
        if let Some(sub) = start.subtree {
            for child in &repo.load_tree(&sub)?.nodes {
                let name = child.name.to_os();
                ctx.plan_node(
                    &mut plan,
                    &snap_root.join(&name),
                    PathBuf::from(&name),
                    root_dir,
                    child,
                    false,
                    fresh,
                    &mut seen,
                )?;
            }
        }
    } else {
        let name = start.name.to_os();
        ctx.plan_node(
            &mut plan,
            &snap_root.join(&name),
            PathBuf::from(&name),
            Some(root),
            &start,
            false,
            fresh,
            &mut seen,
        )?;
    }
    for (pattern, hit) in opts.includes.iter().zip(&ctx.include_hits) {
        if !hit.load(Ordering::Relaxed) {
            let below = match opts.subpath.trim_matches('/') {
                "" => String::new(),
                sub => format!(" (patterns apply below /{sub}: a leading `/` is its root)"),
            };
            ctx.progress.warning(
                Path::new(pattern),
                &format!("--include `{pattern}` matches nothing in the snapshot{below}"),
            );
        }
    }
    if !ctx.includes.is_empty() {
        let replace = opts.overwrite != Overwrite::Never;
        for (p, _, made) in &mut plan.dirs {
            match ctx.target.make_dirs(p, replace) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    ctx.warn(&ctx.target.display(p), e.to_string());
                }
                r => {
                    let fd = r.map_err(|e| ctx.io(p, "create directory", e))?;
                    *made = Some(ident(
                        &fstat(&fd).map_err(|e| ctx.io(p, "inspect", e.into()))?,
                    ));
                }
            }
        }
    }
    tracing::debug!(
        files = plan.files.len(),
        dirs = plan.dirs.len(),
        ms = began.elapsed().as_millis(),
        "restore planned"
    );
    progress.totals(
        plan.files.len() as u64,
        plan.files.iter().map(|f| f.node.size).sum(),
    );
    let bytes = write_content(&ctx, &plan.files).inspect_err(|_| {
        // Leave what was there: drop the unfinished files under temporary names.
        for f in plan.files.iter().filter(|f| f.replace.is_some()) {
            if let Ok((dir, name)) = ctx.target.parent(&f.path) {
                let _ = remove_in(dir.as_fd(), name);
            }
        }
    })?;
    tracing::debug!(
        bytes,
        ms = began.elapsed().as_millis(),
        "restore content written"
    );
    for f in &mut plan.files {
        if let Some(dest) = f.replace.take() {
            let (dir, tmp) = ctx
                .target
                .parent(&f.path)
                .map_err(|e| ctx.io(&f.path, "open the directory of", e))?;
            let name = dest.file_name().unwrap_or_default();
            if stat_in(dir.as_fd(), name)
                .map_err(|e| ctx.io(&dest, "inspect", e))?
                .is_some_and(|st| is_dir(&st))
            {
                remove_in(dir.as_fd(), name).map_err(|e| ctx.io(&dest, "remove", e))?;
            }
            nix::fcntl::renameat(dir.as_fd(), tmp, dir.as_fd(), name)
                .map_err(|e| ctx.io(&dest, "replace", e.into()))?;
            f.path = dest;
        }
    }
    let made: HashMap<&Path, Ident> = plan
        .files
        .iter()
        .filter_map(|f| Some((f.path.as_path(), *f.ident.get()?)))
        .collect();
    for (new, first) in &plan.links {
        let linked = (|| -> std::io::Result<()> {
            // The file this restore wrote as `first`, held and checked: a link to whatever
            // somebody put under its name instead would reach beyond the target.
            let want = made.get(first.as_path()).copied();
            let held = ctx.target.open(first, OFlag::O_PATH, 0)?;
            if want != Some(ident(&fstat(&held)?)) {
                return Err(replaced(&ctx.target.display(first)));
            }
            let (to_dir, to) = ctx.target.parent(new)?;
            remove_in(to_dir.as_fd(), to)?;
            if have_proc() {
                // The held inode itself (linkat(2) on /proc/self/fd with AT_SYMLINK_FOLLOW).
                nix::unistd::linkat(
                    nix::fcntl::AT_FDCWD,
                    &proc_path(held.as_fd()),
                    to_dir.as_fd(),
                    to,
                    nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
                )?;
            } else {
                let (from_dir, from) = ctx.target.parent(first)?;
                // Without AT_SYMLINK_FOLLOW: the entry itself, never what a link points to.
                nix::unistd::linkat(
                    from_dir.as_fd(),
                    from,
                    to_dir.as_fd(),
                    to,
                    nix::fcntl::AtFlags::empty(),
                )?;
            }
            Ok(())
        })();
        if let Err(e) = linked {
            let shown = ctx.target.display(new);
            ctx.warn(
                &shown,
                format!(
                    "cannot link {} to {}: {e}",
                    shown.display(),
                    ctx.target.display(first).display()
                ),
            );
        }
    }
    // Files of one blob got theirs when written.
    plan.files
        .par_iter()
        .filter(|f| !f.deferred)
        .for_each(|f| apply_file(&ctx, f));
    for e in &plan.others {
        apply_special(&ctx, e);
    }
    let deleted = if opts.delete {
        // The target itself stands for the restored directory (a restored single file deletes
        // nothing around it).
        let root = (start.kind == NodeKind::Dir).then_some((Path::new(""), &start));
        delete_extra(
            &ctx,
            root.into_iter()
                .chain(plan.dirs.iter().map(|(p, n, _)| (p.as_path(), n))),
        )?
    } else {
        0
    };
    // Children first: a directory made 0700 gets its own mode once all below it is done.
    for e in plan.dirs.iter().rev() {
        apply_dir(&ctx, e);
    }
    tracing::debug!(ms = began.elapsed().as_millis(), "restore metadata set");
    let verified = Mutex::new(0u64);
    if opts.verify {
        plan.files.par_iter().try_for_each(|f| -> Result<()> {
            verify_file(&ctx, f)?;
            *verified.lock().expect("count") += 1;
            Ok(())
        })?;
    }
    Ok(RestoreSummary {
        files_restored: plan.files.len() as u64,
        files_skipped: plan.skipped,
        dirs: plan.dirs.len() as u64,
        others: (plan.others.len() + plan.links.len()) as u64,
        bytes_restored: bytes,
        files_verified: verified.into_inner().expect("count"),
        deleted,
        warnings: ctx.warnings.into_inner(),
    })
}
