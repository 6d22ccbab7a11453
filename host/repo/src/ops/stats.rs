//! `stats`: sizes of snapshots and what deduplication saves.

use std::collections::{HashMap, HashSet};

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
    /// Files with distinct content (restic's `files-by-contents`).
    pub unique_files: u64,
    /// Their sizes.
    pub unique_files_size: u64,
    /// The distinct blobs of each distinct content, a blob counted once per content that
    /// holds it (restic's `blobs-per-file`).
    pub blobs_per_file_size: u64,
}

/// Per distinct file content (its blob list, hashed): the file's size and what its distinct
/// blobs add up to.
type Contents = HashMap<Id, (u64, u64)>;

/// Files and bytes below a tree, memoized per tree id: snapshots share most of their trees,
/// so each distinct tree is read once however many snapshots hold it.
fn tree_totals(
    repo: &IndexedRepository,
    tree: Id,
    memo: &mut HashMap<Id, (u64, u64)>,
    blobs: &mut HashSet<Id>,
    contents: &mut Contents,
) -> Result<(u64, u64)> {
    if let Some(t) = memo.get(&tree) {
        return Ok(*t);
    }
    blobs.insert(tree);
    let (mut files, mut bytes) = (0, 0);
    for n in repo.load_tree(&tree)?.nodes {
        match n.kind {
            NodeKind::Dir => {
                if let Some(sub) = n.subtree {
                    let (f, b) = tree_totals(repo, sub, memo, blobs, contents)?;
                    files += f;
                    bytes += b;
                }
            }
            NodeKind::File => {
                files += 1;
                bytes += n.size;
                let list = n.content.as_deref().unwrap_or_default();
                blobs.extend(list);
                let mut key = blake3::Hasher::new();
                for b in list {
                    key.update(&b.0);
                }
                contents
                    .entry(Id(*key.finalize().as_bytes()))
                    .or_insert_with(|| {
                        let distinct: HashSet<&Id> = list.iter().collect();
                        let sum = distinct
                            .into_iter()
                            .filter_map(|b| repo.index().get(b))
                            .map(|l| u64::from(l.entry.raw_length))
                            .sum();
                        (n.size, sum)
                    });
            }
            _ => {}
        }
    }
    memo.insert(tree, (files, bytes));
    Ok((files, bytes))
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
    let mut memo = HashMap::new();
    let mut contents = Contents::new();
    for root in trees {
        let (files, bytes) = tree_totals(repo, *root, &mut memo, &mut blobs, &mut contents)?;
        s.total_files += files;
        s.restore_size += bytes;
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
    s.unique_files = contents.len() as u64;
    s.unique_files_size = contents.values().map(|c| c.0).sum();
    s.blobs_per_file_size = contents.values().map(|c| c.1).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    s.dedup_ratio = ratio(s.restore_size, s.raw_data);
    s.compression_ratio = ratio(s.raw_data + s.raw_trees, s.stored_size);
    Ok(s)
}
