//! `repair index` (a new index from the packs' own headers) and `repair snapshots` (trees
//! rebuilt without what cannot be read), as restic's.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::format::index::IndexFile;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind};
use crate::id::Id;
use crate::indexed::IndexedRepository;
use crate::ops::prune::{PACKS_PER_INDEX_FILE, save_index};
use crate::ops::recover::read_pack_header;
use crate::ops::rewrite::{RewriteOptions, Rewritten, TreeEdit, rewrite};
use crate::repository::Repository;

/// What `repair index` did.
#[derive(Debug, Default)]
pub struct IndexRepair {
    /// Packs whose headers were read into the new index.
    pub packs: usize,
    /// Blobs the new index holds.
    pub blobs: usize,
    /// Packs whose header could not be read (left alone, not indexed), with why.
    pub unreadable: Vec<(Id, String)>,
    /// Unreadable packs whose entries the old index had, carried over.
    pub kept_from_old: usize,
    /// Index files written.
    pub written: usize,
    /// Old index files removed.
    pub removed: usize,
}

/// Rebuilds the index from the packs (the caller holds an exclusive lock): every pack's
/// header is read, new index files are written, and only then are the old ones removed. A
/// pack whose header cannot be read is named and left out (its blobs are then missing:
/// `repair snapshots` makes the snapshots that need them restorable).
///
/// # Errors
/// Backend errors while listing, writing or removing.
pub fn repair_index(repo: &Repository, dry_run: bool) -> Result<IndexRepair> {
    let old = repo.backend().list(FileType::Index)?;
    let packs = repo.packs()?;
    if packs.is_empty() && !old.is_empty() {
        return Err(Error::invalid(
            "the store lists no packs but the index names some: nothing is changed (is the \
             location right, and the store reachable?)",
        ));
    }
    let results: Vec<_> = crate::ops::in_pool(0, repo.backend().connections(), || {
        Ok(packs
            .par_iter()
            .map(|(id, size)| (*id, read_pack_header(repo, id, *size)))
            .collect())
    })?;
    let mut report = IndexRepair::default();
    let mut found = Vec::with_capacity(results.len());
    for (id, header) in results {
        match header {
            Ok(pack) => {
                report.packs += 1;
                found.push(pack);
            }
            Err(e) => report.unreadable.push((id, e.to_string())),
        }
    }
    // What the old index knew of a pack whose header cannot be read now is kept: the header
    // may be damaged while the blobs are whole, or the read failed for a while.
    if !report.unreadable.is_empty() {
        let lost: HashSet<Id> = report.unreadable.iter().map(|(id, _)| *id).collect();
        let mut kept = HashSet::new();
        for (name, _) in &old {
            let Ok(id) = name.parse::<Id>() else { continue };
            let Ok(file) = repo.load_file::<IndexFile>(FileType::Index, &id) else {
                continue;
            };
            for pack in file.packs {
                if lost.contains(&pack.id) && kept.insert(pack.id) {
                    report.kept_from_old += 1;
                    found.push(pack);
                }
            }
        }
    }
    report.blobs = found.iter().map(|p| p.blobs.len()).sum();
    if dry_run {
        report.written = found.len().div_ceil(PACKS_PER_INDEX_FILE);
        report.removed = old.len();
        return Ok(report);
    }
    report.written = save_index(repo, &found, || Ok(()))?;
    for (name, _) in old {
        repo.backend().remove(FileType::Index, &name)?;
        report.removed += 1;
    }
    Ok(report)
}

/// What `repair snapshots` found and did.
#[derive(Debug, Default)]
pub struct SnapshotRepair {
    /// The snapshots rewritten.
    pub rewritten: Vec<Rewritten>,
    /// What was changed, by path (each path once, however many snapshots share it).
    pub changes: BTreeMap<String, String>,
    /// Snapshots whose root tree cannot be read: they cannot be repaired.
    pub unrepairable: Vec<(Id, Error)>,
}

struct Repair<'a> {
    repo: &'a IndexedRepository,
    changes: Mutex<BTreeMap<String, String>>,
}

impl TreeEdit for Repair<'_> {
    fn by_path(&self) -> bool {
        false
    }

    fn node(&self, path: &str, mut node: Node) -> Option<Node> {
        if node.kind != NodeKind::File {
            return Some(node);
        }
        let Some(content) = node.content.take() else {
            return Some(node);
        };
        let mut kept = Vec::with_capacity(content.len());
        let mut size = 0u64;
        for b in &content {
            if let Some(loc) = self.repo.index().get(b) {
                kept.push(*b);
                size += u64::from(loc.entry.raw_length);
            }
        }
        let change = if kept.len() < content.len() {
            Some(format!(
                "file: {} of {} blobs are missing; kept {size} of {} bytes",
                content.len() - kept.len(),
                content.len(),
                node.size
            ))
        } else if size != node.size {
            Some(format!("file: size {} corrected to {size}", node.size))
        } else {
            None
        };
        if let Some(c) = change {
            self.changes
                .lock()
                .expect("changes lock")
                .insert(path.to_owned(), c);
        }
        node.content = Some(kept);
        node.size = size;
        Some(node)
    }

    fn unreadable(&self, path: &str, error: &Error) -> bool {
        // Only damage is repaired: a failing store or an interruption stops the repair.
        let damaged = matches!(error.kind(), ErrorKind::Corrupt | ErrorKind::NotFound);
        if path == "/" || !damaged {
            return false;
        }
        self.changes.lock().expect("changes lock").insert(
            path.to_owned(),
            format!("directory: unreadable ({error}); replaced with an empty directory"),
        );
        true
    }
}

/// Rewrites the `snapshots` that need what the index lacks or trees that cannot be read:
/// files keep the blobs the index has (their size corrected), unreadable directories become
/// empty, and each new snapshot is tagged `repaired` (the caller holds the lock: exclusive
/// with `forget`).
///
/// # Errors
/// Write errors.
pub fn repair_snapshots(
    repo: &IndexedRepository,
    snapshots: &[(Id, Snapshot)],
    forget: bool,
    dry_run: bool,
) -> Result<SnapshotRepair> {
    let edit = Repair {
        repo,
        changes: Mutex::default(),
    };
    let opts = RewriteOptions {
        forget,
        dry_run,
        add_tags: vec!["repaired".to_owned()],
    };
    let report = rewrite(repo, snapshots, &edit, &opts)?;
    Ok(SnapshotRepair {
        rewritten: report.rewritten,
        changes: edit.changes.into_inner().expect("changes lock"),
        unrepairable: report.failed,
    })
}
