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
//! Both repositories must use the same chunker parameters (sizes and seed) — then copied data
//! and the destination's own backups of the same files deduplicate. A destination made with
//! `init --copy-chunker-params` has them; otherwise copy refuses.

use std::collections::HashMap;

use dashmap::DashMap;
use rayon::prelude::*;
use serde::Serialize;

use crate::backend::FileType;
use crate::error::{Error, Result};
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
    blobs: DashMap<Id, Id>,
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
                        if cx.len() == cy.len() {
                            for (s, d) in cx.iter().zip(cy) {
                                if self.dst.index().contains(d) {
                                    self.blobs.insert(*s, *d);
                                }
                            }
                        }
                        Ok(())
                    }
                    _ => Ok(()),
                }
            })
    }

    fn copy_blob(&self, saver: &BlobSaver, tpe: BlobType, src: &Id, report: &Stats) -> Result<Id> {
        if let Some(d) = self.blobs.get(src) {
            return Ok(*d);
        }
        let plain = self.src.read_blob(src)?;
        report
            .read
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (id, added) = saver.save(tpe, &plain)?;
        if added {
            report
                .added
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            report
                .bytes
                .fetch_add(plain.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        self.blobs.insert(*src, id);
        Ok(id)
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
                    n.content = Some(
                        content
                            .iter()
                            .map(|b| self.copy_blob(saver, BlobType::Data, b, stats))
                            .collect::<Result<_>>()?,
                    );
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
/// [`crate::ErrorKind::InvalidInput`] when the chunker parameters differ; read errors of the
/// source (named); write errors of the destination.
pub fn copy(
    src: &IndexedRepository,
    dst: &IndexedRepository,
    snapshots: &[(Id, Snapshot)],
    dry_run: bool,
) -> Result<CopyReport> {
    let (a, b) = (src.config().chunker, dst.config().chunker);
    if a != b {
        return Err(Error::invalid(format!(
            "the repositories chunk differently (source {}/{}/{} seed {:x}, destination {}/{}/{} seed {:x}), \
             so copied data would not deduplicate with this repository's own backups; copy into a \
             repository made with `cairn init --copy-chunker-params --from-repo SOURCE`",
            a.min_size, a.avg_size, a.max_size, a.seed, b.min_size, b.avg_size, b.max_size, b.seed
        )));
    }
    let mapper = Mapper {
        src,
        dst,
        trees: DashMap::new(),
        blobs: DashMap::new(),
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
