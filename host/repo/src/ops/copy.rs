//! `copy`: copy snapshots from another repository into this one (a second copy, 3-2-1).
//!
//! The two repositories have different master keys, so a blob's id differs between them: every
//! blob that is copied is read, verified, and saved again under the destination's key, and
//! trees are rewritten with the new ids. What makes a re-run cheap is the correspondence between
//! the snapshots already copied and their sources: walking both trees side by side maps source
//! trees and blobs to destination ones, so unchanged directories and files are not read again.
//! A copied snapshot keeps its time, host, paths, tags and app, and records the source's id as
//! `original`; a source snapshot whose copy is already there is skipped.
//!
//! When both repositories use the same chunker parameters (sizes and seed), copied data and
//! the destination's own backups of the same files deduplicate; a destination made with
//! `init --copy-chunker-params` has them. When they differ the copy still works (restic's
//! behaviour: the chunks are copied as they are, and deduplicate only with other copies). A chunk larger than the destination's largest is stored as pieces of
//! that size, since the destination refuses longer data blobs as corrupt.

use std::collections::HashMap;

use dashmap::DashMap;
use rayon::prelude::*;
use serde::Serialize;

use crate::backend::FileType;
use crate::error::Result;
use crate::format::pack::{BlobType, Compression};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{NodeKind, Tree};
use crate::id::Id;
use crate::indexed::IndexedRepository;
use crate::packer::BlobSaver;

/// What a copy did (or, on a dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    /// Source snapshots copied, with the new ids (`None` on a dry run).
    pub copied: Vec<(Id, Option<Id>)>,
    /// Source snapshots whose copy was already there.
    pub skipped: Vec<Id>,
    /// Blobs stored in the destination.
    pub blobs_added: u64,
    /// Their plaintext bytes.
    pub bytes_added: u64,
    /// Blobs read from the source.
    pub blobs_read: u64,
}

/// The identity a snapshot's copies share: the first snapshot's id.
fn lineage(id: Id, s: &Snapshot) -> Id {
    s.original.unwrap_or(id)
}

struct Mapper<'a> {
    src: &'a IndexedRepository,
    dst: &'a IndexedRepository,
    trees: DashMap<Id, Id>,
    /// A source data blob's copy: one blob, or pieces when it is longer than the
    /// destination's chunks may be.
    blobs: DashMap<Id, Vec<Id>>,
    /// Most bytes of a data blob in the destination.
    max_chunk: usize,
}

impl Mapper<'_> {
    /// Records the correspondence of a source tree and its copy, recursively.
    fn learn(&self, src: Id, dst: Id) -> Result<()> {
        if self.trees.insert(src, dst).is_some() {
            return Ok(());
        }
        let (a, b) = (self.src.load_tree(&src)?, self.dst.load_tree(&dst)?);
        if a.nodes.len() != b.nodes.len() {
            return Ok(());
        }
        a.nodes
            .par_iter()
            .zip(b.nodes.par_iter())
            .try_for_each(|(x, y)| {
                if x.name != y.name || x.kind != y.kind {
                    return Ok(());
                }
                match (x.kind, x.subtree, y.subtree) {
                    (NodeKind::Dir, Some(s), Some(d)) => self.learn(s, d),
                    (NodeKind::File, ..) => {
                        let (cx, cy) = (
                            x.content.as_deref().unwrap_or(&[]),
                            y.content.as_deref().unwrap_or(&[]),
                        );
                        self.learn_content(cx, cy);
                        Ok(())
                    }
                    _ => Ok(()),
                }
            })
    }

    /// Records which destination blobs a copied file's source blobs became: each source blob
    /// is as many pieces as [`Mapper::copy_blob`] cuts it into. Nothing is learnt from a file
    /// whose lists do not add up (a later backup, not a copy) or whose copies are not indexed.
    fn learn_content(&self, src: &[Id], dst: &[Id]) {
        let mut learnt = Vec::with_capacity(src.len());
        let mut rest = dst;
        for s in src {
            let Some(loc) = self.src.index().get(s) else {
                return;
            };
            let pieces = (loc.entry.raw_length as usize)
                .div_ceil(self.max_chunk)
                .max(1);
            if pieces > rest.len() {
                return;
            }
            let (these, after) = rest.split_at(pieces);
            if !these.iter().all(|d| self.dst.index().contains(d)) {
                return;
            }
            learnt.push((*s, these.to_vec()));
            rest = after;
        }
        if rest.is_empty() {
            for (s, d) in learnt {
                self.blobs.insert(s, d);
            }
        }
    }

    /// Copies a data blob; its ids in the destination (pieces when it is too long there; an
    /// empty blob is one empty piece).
    fn copy_blob(&self, saver: &BlobSaver, src: &Id, report: &Stats) -> Result<Vec<Id>> {
        if let Some(d) = self.blobs.get(src) {
            return Ok(d.clone());
        }
        let plain = self.src.read_blob(src)?;
        report
            .read
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pieces: Vec<&[u8]> = if plain.is_empty() {
            vec![&[]]
        } else {
            plain.chunks(self.max_chunk).collect()
        };
        let ids = pieces
            .into_iter()
            .map(|piece| {
                let (id, added) = saver.save(BlobType::Data, piece)?;
                if added {
                    report
                        .added
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    report
                        .bytes
                        .fetch_add(piece.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(id)
            })
            .collect::<Result<Vec<_>>>()?;
        self.blobs.insert(*src, ids.clone());
        Ok(ids)
    }

    /// Copies a tree (and all below it) and returns its id in the destination.
    fn copy_tree(&self, saver: &BlobSaver, src: Id, stats: &Stats) -> Result<Id> {
        if let Some(d) = self.trees.get(&src) {
            return Ok(*d);
        }
        let tree = self.src.load_tree(&src)?;
        let nodes = tree
            .nodes
            .into_par_iter()
            .map(|mut n| {
                if let Some(sub) = n.subtree {
                    n.subtree = Some(self.copy_tree(saver, sub, stats)?);
                }
                if let Some(content) = &n.content {
                    let mut copied = Vec::with_capacity(content.len());
                    for b in content {
                        copied.extend(self.copy_blob(saver, b, stats)?);
                    }
                    n.content = Some(copied);
                }
                Ok(n)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut new = Tree { nodes };
        new.sort();
        let (id, added) = saver.save(BlobType::Tree, &new.to_bytes())?;
        if added {
            stats
                .added
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.trees.insert(src, id);
        Ok(id)
    }
}

#[derive(Default)]
struct Stats {
    added: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
    read: std::sync::atomic::AtomicU64,
}

/// Copies `snapshots` (of `src`) into `dst`.
///
/// # Errors
/// Read errors of the source (named); write errors of the destination.
pub fn copy(
    src: &IndexedRepository,
    dst: &IndexedRepository,
    snapshots: &[(Id, Snapshot)],
    dry_run: bool,
) -> Result<CopyReport> {
    let mapper = Mapper {
        src,
        dst,
        trees: DashMap::new(),
        blobs: DashMap::new(),
        max_chunk: dst.config().chunker.max_size as usize,
    };
    // Learn from the copies already made: source tree ↔ destination tree, blob ↔ blob.
    let source_trees: HashMap<Id, Id> = src
        .snapshots()?
        .iter()
        .map(|(id, s)| (lineage(*id, s), s.tree))
        .collect();
    let copied: HashMap<Id, Snapshot> = dst
        .snapshots()?
        .into_iter()
        .map(|(id, s)| (lineage(id, &s), s))
        .collect();
    for (lin, copy) in &copied {
        if let Some(src_tree) = source_trees.get(lin) {
            mapper.learn(*src_tree, copy.tree)?;
        }
    }
    let mut report = CopyReport::default();
    let saver = BlobSaver::new(dst, dst.index().clone(), Compression::Auto, dry_run);
    let stats = Stats::default();
    let mut new_snapshots = Vec::new();
    for (id, snap) in snapshots {
        if copied.contains_key(&lineage(*id, snap)) {
            report.skipped.push(*id);
            continue;
        }
        match mapper.copy_tree(&saver, snap.tree, &stats) {
            Ok(tree) => {
                let mut new = snap.clone();
                new.tree = tree;
                new.parent = None;
                new.original = Some(lineage(*id, snap));
                new_snapshots.push((*id, new));
            }
            Err(e) => {
                let _ = saver.abandon();
                return Err(e.context(format!("copying snapshot {}", id.short())));
            }
        }
    }
    saver.finish()?;
    // Snapshots last: each refers only to data that is stored and indexed.
    for (src_id, snap) in new_snapshots {
        let new = if dry_run {
            None
        } else {
            Some(dst.save_file(FileType::Snapshot, &snap)?)
        };
        report.copied.push((src_id, new));
    }
    report.blobs_added = stats.added.into_inner();
    report.bytes_added = stats.bytes.into_inner();
    report.blobs_read = stats.read.into_inner();
    Ok(report)
}
