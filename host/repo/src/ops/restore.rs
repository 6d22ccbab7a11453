//! `restore`: bring a snapshot (or a part of it) back into a directory.
//!
//! 1. Plan: walk the trees, apply include/exclude patterns and the overwrite policy, create
//!    directories, special files and empty (sparse) regular files of the right size.
//! 2. Content: group every needed blob by pack; read packs in parallel (adjacent blobs in one
//!    ranged read), verify each blob, and write it at its offset in every file that holds it.
//!    Each byte is written once; all-zero blobs are not written, so sparse files stay sparse.
//! 3. Metadata: hard links, then files' and (children first) directories' owner, mode, xattrs
//!    and times. 4. Optionally verify what was written and delete what the snapshot lacks.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::format::pack::{BlobEntry, open_blob_in_place};
use crate::format::tree::{Node, NodeKind};
use crate::fsmeta::{apply_metadata, apply_metadata_to_file, create_mode};
use crate::glob::PathPatterns;
use crate::id::Id;
use crate::indexed::IndexedRepository;

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
    path: PathBuf,
    node: Node,
    /// Created when its one blob is written.
    deferred: bool,
    /// The entry that `path` (a temporary name beside it) replaces once complete.
    replace: Option<PathBuf>,
}

struct Plan {
    /// Directories in pre-order, with their nodes.
    dirs: Vec<(PathBuf, Node)>,
    /// Regular files to write.
    files: Vec<FileJob>,
    /// Other entries made during planning, whose metadata is set at the end.
    others: Vec<(PathBuf, Node)>,
    /// (new path, existing path) hard links to make after contents.
    links: Vec<(PathBuf, PathBuf)>,
    skipped: u64,
}

struct Ctx<'a> {
    repo: &'a IndexedRepository,
    opts: &'a RestoreOptions,
    includes: PathPatterns,
    excludes: PathPatterns,
    progress: &'a dyn RestoreProgress,
    warnings: AtomicU64,
    cancel: &'a AtomicBool,
}

impl Ctx<'_> {
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
}

fn io(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::io(format!("cannot {what} {}", path.display()), e)
}

/// Removes whatever is at `path` (so that a new entry is created, never written through an
/// existing hard link or symlink).
fn clear(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(|e| io(path, "remove", e)),
        Ok(_) => std::fs::remove_file(path).map_err(|e| io(path, "remove", e)),
        Err(_) => Ok(()),
    }
}

fn make_special(path: &Path, node: &Node) -> Result<()> {
    use nix::sys::stat::{Mode, SFlag, mknod};
    clear(path)?;
    let mode = Mode::from_bits_truncate(node.mode);
    let r = match node.kind {
        NodeKind::Symlink => {
            let target = node.link_target.clone().unwrap_or_default();
            return std::os::unix::fs::symlink(target.to_os(), path)
                .map_err(|e| io(path, "create symlink", e));
        }
        NodeKind::Fifo => nix::unistd::mkfifo(path, mode),
        NodeKind::Chardev => mknod(path, SFlag::S_IFCHR, mode, node.rdev),
        NodeKind::Blockdev => mknod(path, SFlag::S_IFBLK, mode, node.rdev),
        _ => return Ok(()),
    };
    r.map_err(|e| io(path, "create", std::io::Error::from(e)))
}

impl Ctx<'_> {
    /// Plans the restore of `node` (named in the snapshot as `snap_path`) to `path`.
    /// Plans the restore of `node` (named in the snapshot as `snap_path`) to `path`. `fresh`
    /// says the directory holding `path` was made by this restore, so nothing is there yet.
    #[allow(clippy::too_many_arguments, reason = "recursion state, private")]
    fn plan_node(
        &self,
        plan: &mut Plan,
        snap_path: &Path,
        path: PathBuf,
        node: &Node,
        included: bool,
        fresh: bool,
        seen_links: &mut HashMap<(u64, u64), PathBuf>,
    ) -> Result<bool> {
        self.check_cancel()?;
        if self.excludes.matches(snap_path) {
            return Ok(false);
        }
        let included = included || self.includes.is_empty() || self.includes.matches(snap_path);
        if node.kind == NodeKind::Dir {
            // Without include patterns every directory is restored: make it now, so files
            // below need no existence checks when it is new. With them, a directory is made
            // only if something below it is restored.
            let child_fresh = if self.includes.is_empty() {
                self.make_dir(&path, fresh)?
            } else {
                false
            };
            let mark = plan.dirs.len();
            plan.dirs.push((path.clone(), node.clone()));
            let mut any = included;
            if let Some(sub) = node.subtree {
                let tree = self.repo.load_tree(&sub)?;
                for child in &tree.nodes {
                    let name = child.name.to_os();
                    any |= self.plan_node(
                        plan,
                        &snap_path.join(&name),
                        path.join(&name),
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
        if !self.includes.is_empty()
            && let Some(parent) = path.parent()
        {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, "create directory", e))?;
        }
        // `--overwrite never` keeps whatever is there, of any kind.
        if !fresh
            && self.opts.overwrite == Overwrite::Never
            && std::fs::symlink_metadata(&path).is_ok()
        {
            plan.skipped += 1;
            return Ok(true);
        }
        if node.is_hardlink() {
            let key = (node.device_id, node.inode);
            if let Some(first) = seen_links.get(&key) {
                plan.links.push((path, first.clone()));
                return Ok(true);
            }
            seen_links.insert(key, path.clone());
        }
        match node.kind {
            NodeKind::File => {
                if !fresh && let Ok(m) = std::fs::symlink_metadata(&path) {
                    use std::os::unix::fs::MetadataExt;
                    let same = m.is_file()
                        && m.size() == node.size
                        && m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec() == node.mtime;
                    let keep = match self.opts.overwrite {
                        Overwrite::Always => false,
                        Overwrite::IfChanged => same,
                        Overwrite::Never => true,
                    };
                    if keep {
                        plan.skipped += 1;
                        return Ok(true);
                    }
                }
                // Something is in the way: write beside it and rename over it once the new
                // content is complete, so a restore that fails leaves it as it was.
                let (write_to, replace) = if !fresh && std::fs::symlink_metadata(&path).is_ok() {
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let tmp = path.with_file_name(format!(
                        ".{name}.cairn-restore-{:08x}",
                        rand::random::<u32>()
                    ));
                    (tmp, Some(path))
                } else {
                    (path, None)
                };
                // A file of one blob is created when its blob is written; others now, at
                // their size (holes stay holes).
                let deferred = node.content.as_ref().is_some_and(|c| c.len() == 1);
                if !deferred {
                    let f = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&write_to)
                        .map_err(|e| io(&write_to, "create", e))?;
                    f.set_len(node.size).map_err(|e| io(&write_to, "size", e))?;
                }
                plan.files.push(FileJob {
                    path: write_to,
                    node: node.clone(),
                    deferred,
                    replace,
                });
            }
            NodeKind::Socket => {}
            _ => {
                if !fresh {
                    clear(&path)?;
                }
                if let Err(e) = make_special(&path, node) {
                    self.warn(
                        &path,
                        format!(
                            "{e}: {}",
                            std::error::Error::source(&e)
                                .map(|s| s.to_string())
                                .unwrap_or_default()
                        ),
                    );
                    return Ok(true);
                }
                plan.others.push((path, node.clone()));
            }
        }
        Ok(true)
    }

    /// Makes directory `path` unless it is there; returns whether it is new.
    fn make_dir(&self, path: &Path, parent_fresh: bool) -> Result<bool> {
        if !parent_fresh {
            match std::fs::symlink_metadata(path) {
                Ok(m) if m.is_dir() => return Ok(false),
                Ok(_) => clear(path)?,
                Err(_) => {}
            }
        }
        std::fs::create_dir(path).map_err(|e| io(path, "create directory", e))?;
        Ok(true)
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
                    job.path.display()
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
                let mut span = repo.backend().read_range(
                    FileType::Pack,
                    &pack.to_hex(),
                    start,
                    end - start,
                )?;
                // The span's blobs on this thread: a nested parallel loop would let a waiting
                // thread steal another pack's job and hold a second span (peak memory grew
                // with the number of packs, not the number of threads).
                for (entry, targets) in &blobs[i..j] {
                    let at = (u64::from(entry.offset) - start) as usize;
                    let sealed = span
                        .get_mut(at..at + entry.length as usize)
                        .ok_or_else(|| {
                            Error::corrupt(format!("pack {pack} is shorter than its index says"))
                        })?;
                    // Decrypted where it was read (blobs of a span do not overlap).
                    let plain =
                        open_blob_in_place(repo.key(), repo.blob_limits(), entry, sealed, pack)?;
                    place(ctx, files, targets, &plain)?;
                    written.fetch_add(plain.len() as u64 * targets.len() as u64, Ordering::Relaxed);
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
            // looked up again, no chmod if created so).
            let mode = create_mode(job.node.mode);
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode.unwrap_or(0o600))
                .open(&job.path)
                .map_err(|e| io(&job.path, "create", e))?;
            if zero {
                f.set_len(job.node.size)
                    .map_err(|e| io(&job.path, "size", e))?;
            } else {
                f.write_all(plain).map_err(|e| io(&job.path, "write", e))?;
            }
            let problems = apply_metadata_to_file(&f, &job.node, ctx.opts.owner, mode.is_none());
            let named = job.replace.as_ref().unwrap_or(&job.path);
            for p in problems {
                ctx.warn(named, format!("{}: {p}", named.display()));
            }
        } else if !zero {
            let f = OpenOptions::new()
                .write(true)
                .open(&job.path)
                .map_err(|e| io(&job.path, "open", e))?;
            f.write_all_at(plain, offset)
                .map_err(|e| io(&job.path, "write", e))?;
        }
        ctx.progress.bytes(plain.len() as u64);
    }
    Ok(())
}

/// Re-reads a restored file and checks every piece against its blob id.
fn verify_file(repo: &IndexedRepository, job: &FileJob) -> Result<()> {
    let mut f = std::fs::File::open(&job.path).map_err(|e| io(&job.path, "open", e))?;
    let mut buf = Vec::new();
    let mut total = 0u64;
    for id in job.node.content.iter().flatten() {
        let len = repo
            .index()
            .get(id)
            .map_or(0, |l| l.entry.raw_length as usize);
        buf.resize(len, 0);
        f.read_exact(&mut buf)
            .map_err(|e| io(&job.path, "read back", e))?;
        if repo.key().blob_id(&buf) != *id {
            return Err(Error::corrupt(format!(
                "{} differs from the snapshot at offset {total}",
                job.path.display()
            )));
        }
        total += len as u64;
    }
    let mut rest = [0u8; 1];
    if f.read(&mut rest)
        .map_err(|e| io(&job.path, "read back", e))?
        != 0
    {
        return Err(Error::corrupt(format!(
            "{} is longer than in the snapshot",
            job.path.display()
        )));
    }
    Ok(())
}

/// Removes entries below the restored directories that the snapshot does not have.
fn delete_extra(ctx: &Ctx<'_>, dirs: &[(PathBuf, Node)]) -> Result<u64> {
    let mut deleted = 0;
    for (path, node) in dirs {
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
        let Ok(rd) = std::fs::read_dir(path) else {
            continue;
        };
        for e in rd.flatten() {
            use std::os::unix::ffi::OsStrExt;
            if !keep.contains(e.file_name().as_bytes()) {
                clear(&e.path())?;
                deleted += 1;
            }
        }
    }
    Ok(deleted)
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
    let ctx = Ctx {
        repo,
        opts,
        includes: PathPatterns::new(&opts.includes)?,
        excludes: PathPatterns::new(&opts.excludes)?,
        progress,
        warnings: AtomicU64::new(0),
        cancel,
    };
    let began = std::time::Instant::now();
    let start = repo.find_node(tree, &opts.subpath)?;
    // A target that does not exist yet (or is empty) holds nothing to check or overwrite.
    let fresh = std::fs::read_dir(&opts.target).map_or(true, |mut rd| rd.next().is_none());
    std::fs::create_dir_all(&opts.target).map_err(|e| io(&opts.target, "create directory", e))?;
    let mut plan = Plan {
        dirs: Vec::new(),
        files: Vec::new(),
        others: Vec::new(),
        links: Vec::new(),
        skipped: 0,
    };
    let mut seen = HashMap::new();
    let snap_root = Path::new("/").join(opts.subpath.trim_start_matches('/'));
    if start.kind == NodeKind::Dir {
        if let Some(sub) = start.subtree {
            for child in &repo.load_tree(&sub)?.nodes {
                let name = child.name.to_os();
                ctx.plan_node(
                    &mut plan,
                    &snap_root.join(&name),
                    opts.target.join(&name),
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
            &snap_root,
            opts.target.join(&name),
            &start,
            false,
            fresh,
            &mut seen,
        )?;
    }
    if !ctx.includes.is_empty() {
        for (p, _) in &plan.dirs {
            std::fs::create_dir_all(p).map_err(|e| io(p, "create directory", e))?;
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
        // Leave what was there: drop the new files that would have replaced it.
        for f in plan.files.iter().filter(|f| f.replace.is_some()) {
            let _ = std::fs::remove_file(&f.path);
        }
    })?;
    tracing::debug!(
        bytes,
        ms = began.elapsed().as_millis(),
        "restore content written"
    );
    for f in &mut plan.files {
        if let Some(dest) = f.replace.take() {
            if std::fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) {
                clear(&dest)?;
            }
            std::fs::rename(&f.path, &dest).map_err(|e| io(&dest, "replace", e))?;
            f.path = dest;
        }
    }
    for (new, first) in &plan.links {
        clear(new)?;
        if let Err(e) = std::fs::hard_link(first, new) {
            ctx.warn(
                new,
                format!("cannot link {} to {}: {e}", new.display(), first.display()),
            );
        }
    }
    let warn_all = |path: &Path, problems: Vec<String>| {
        for p in problems {
            ctx.warn(path, format!("{}: {p}", path.display()));
        }
    };
    // Files of one blob got theirs when written.
    plan.files
        .par_iter()
        .filter(|f| !f.deferred)
        .for_each(|f| warn_all(&f.path, apply_metadata(&f.path, &f.node, opts.owner)));
    for (p, n) in &plan.others {
        warn_all(p, apply_metadata(p, n, opts.owner));
    }
    let deleted = if opts.delete {
        // The target itself stands for the restored directory (a restored single file deletes
        // nothing around it).
        let mut roots = Vec::new();
        if start.kind == NodeKind::Dir {
            roots.push((opts.target.clone(), start.clone()));
        }
        roots.extend(plan.dirs.iter().cloned());
        delete_extra(&ctx, &roots)?
    } else {
        0
    };
    for (p, n) in plan.dirs.iter().rev() {
        warn_all(p, apply_metadata(p, n, opts.owner));
    }
    tracing::debug!(ms = began.elapsed().as_millis(), "restore metadata set");
    let verified = Mutex::new(0u64);
    if opts.verify {
        plan.files.par_iter().try_for_each(|f| -> Result<()> {
            verify_file(repo, f)?;
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
