//! `stats`: sizes of snapshots and what deduplication saves.

use std::collections::HashSet;

use serde::Serialize;

use crate::error::Result;
use crate::format::tree::NodeKind;
use crate::id::Id;
use crate::indexed::IndexedRepository;

/// Sizes over a set of snapshots.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Snapshots counted.
    pub snapshots: u64,
    /// Files, counted once per snapshot they are in.
    pub total_files: u64,
    /// What a restore of every snapshot would write.
    pub restore_size: u64,
    /// Distinct data and tree blobs referenced.
    pub blobs: u64,
    /// Plaintext bytes of the distinct data blobs (file content after deduplication).
    pub raw_data: u64,
    /// Plaintext bytes of the distinct tree blobs.
    pub raw_trees: u64,
    /// Bytes stored for those blobs (compressed and sealed).
    pub stored_size: u64,
    /// restore size / raw data: what deduplication saves.
    pub dedup_ratio: f64,
    /// raw data / stored size: what compression saves.
    pub compression_ratio: f64,
}

/// Computes [`Stats`] over the snapshots with root trees `trees`.
///
/// # Errors
/// Tree loading errors.
pub fn stats(repo: &IndexedRepository, trees: &[Id]) -> Result<Stats> {
    let mut s = Stats {
        snapshots: trees.len() as u64,
        ..Stats::default()
    };
    let mut blobs: HashSet<Id> = HashSet::new();
    let mut stack: Vec<(Id, bool)> = trees.iter().map(|t| (*t, true)).collect();
    // Trees are walked once per snapshot for the restore size, but their blobs counted once.
    let mut walked: HashSet<(Id, usize)> = HashSet::new();
    for (snap, root) in trees.iter().enumerate() {
        stack.clear();
        stack.push((*root, true));
        while let Some((tree, _)) = stack.pop() {
            if !walked.insert((tree, snap)) {
                continue;
            }
            blobs.insert(tree);
            for n in repo.load_tree(&tree)?.nodes {
                match n.kind {
                    NodeKind::Dir => stack.extend(n.subtree.map(|t| (t, true))),
                    NodeKind::File => {
                        s.total_files += 1;
                        s.restore_size += n.size;
                        blobs.extend(n.content.iter().flatten());
                    }
                    _ => {}
                }
            }
        }
    }
    for id in &blobs {
        if let Some(l) = repo.index().get(id) {
            match l.entry.tpe {
                crate::format::pack::BlobType::Data => s.raw_data += u64::from(l.entry.raw_length),
                crate::format::pack::BlobType::Tree => s.raw_trees += u64::from(l.entry.raw_length),
            }
            s.stored_size += u64::from(l.entry.length);
        }
    }
    s.blobs = blobs.len() as u64;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    s.dedup_ratio = ratio(s.restore_size, s.raw_data);
    s.compression_ratio = ratio(s.raw_data + s.raw_trees, s.stored_size);
    Ok(s)
}
