//! `prune`: delete what no snapshot uses, repack what is partly used.
//!
//! Safety against concurrent writers is the exclusive lock (the caller takes it; backups take a
//! shared one), so while prune runs no backup adds blobs it could miss. Everything is decided
//! before anything is deleted: a corrupt index, a missing pack, or a tree that cannot be read
//! stops prune with nothing changed. The changes are ordered so that a crash (kill -9) at any
//! point leaves a consistent repository — every blob a snapshot uses stays in a pack that some
//! index names — and at worst unreferenced packs, which `check` reports as orphans and the next
//! prune deletes:
//!
//! 1. repack: used blobs of the chosen packs go into new packs (indexed as they are written);
//! 2. new index files are written for every pack that stays;
//! 3. the old index files are removed;
//! 4. unused, repacked and orphaned packs are removed.
//!
//! Cancellation (the `cancel` flag) and a lost lock ([`Repository::check_lock`]) are checked
//! while deciding, for every repacked pack, and before every change of steps 2–5; once seen,
//! nothing more is written or deleted. Stopping between any two changes leaves the repository
//! as consistent as a crash there would.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::format::index::{IndexFile, IndexPack};
use crate::format::pack::{BlobEntry, Compression, open_blob};
use crate::format::snapshot::Snapshot;
use crate::format::tree::NodeKind;
use crate::id::Id;
use crate::index::Index;
use crate::indexed::IndexedRepository;
use crate::packer::BlobSaver;
use crate::repository::Repository;

/// Writes index files for `packs`, [`PACKS_PER_INDEX_FILE`] a file, calling `before_each`
/// before each (a cancel check); returns how many were written. New files never share a name
/// with old ones (every seal has a fresh nonce), so the caller removes the old ones after.
///
/// # Errors
/// Write errors, and those of `before_each`.
pub(crate) fn save_index(
    repo: &Repository,
    packs: &[IndexPack],
    mut before_each: impl FnMut() -> Result<()>,
) -> Result<usize> {
    let chunks = packs.chunks(PACKS_PER_INDEX_FILE);
    let n = chunks.len();
    for chunk in chunks {
        before_each()?;
        repo.save_file(
            FileType::Index,
            &IndexFile {
                packs: chunk.to_vec(),
            },
        )?;
    }
    Ok(n)
}

/// Packs per index file written by prune (and `repair index`).
pub(crate) const PACKS_PER_INDEX_FILE: usize = 4096;

/// Options of a prune.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PruneOptions {
    /// Repack partly used packs until at most this percentage of the used bytes is unused.
    pub max_unused_percent: f64,
    /// Repack at most this many bytes of packs.
    pub max_repack_bytes: Option<u64>,
    /// Decide and report only.
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            max_unused_percent: 5.0,
            max_repack_bytes: None,
            dry_run: false,
        }
    }
}

/// A pack and its size.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PackRef {
    /// Pack id.
    pub id: Id,
    /// Bytes.
    pub size: u64,
}

/// What prune decided and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Snapshots whose trees were walked.
    pub snapshots: u64,
    /// Indexed packs before.
    pub packs: u64,
    /// Bytes of indexed packs before.
    pub pack_bytes: u64,
    /// Distinct blobs the snapshots use.
    pub used_blobs: u64,
    /// Bytes of blobs in packs that nothing uses (including duplicate copies).
    pub unused_bytes: u64,
    /// Packs with nothing used: deleted.
    pub delete: Vec<PackRef>,
    /// Partly used packs: their used blobs rewritten, then deleted.
    pub repack: Vec<PackRef>,
    /// Packs no index names (left by interrupted backups): deleted.
    pub orphans: Vec<PackRef>,
    /// Unused bytes left in partly used packs that were not repacked.
    pub unused_bytes_left: u64,
    /// Blobs rewritten by repacking.
    pub repacked_blobs: u64,
    /// Packs written by repacking.
    pub new_packs: u64,
    /// Bytes freed (deleted packs minus new packs).
    pub bytes_freed: i64,
    /// Temporary files of interrupted writers removed (local directories).
    pub leftovers_removed: u64,
    /// Whether nothing was changed.
    pub dry_run: bool,
}

#[derive(Default)]
struct PackUse {
    size: u64,
    blobs: Vec<BlobEntry>,
    used_bytes: u64,
    unused_bytes: u64,
    /// The used blobs this pack holds the kept copy of.
    owned: Vec<BlobEntry>,
}

fn stop(message: String) -> Error {
    Error::corrupt(format!(
        "{message}; prune stopped before changing anything (run `cairn check`)"
    ))
}

/// Fails when prune was cancelled or lost its lock; `next` names the step it would take.
fn checkpoint(repo: &Repository, cancel: &AtomicBool, next: &str) -> Result<()> {
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::new(
            ErrorKind::Interrupted,
            format!("prune interrupted before {next}; nothing more was changed"),
        ));
    }
    repo.check_lock()
        .map_err(|e| e.context(format!("prune stopped before {next}")))
}

/// Marks every blob the snapshots reach. Any unreadable snapshot or tree stops prune.
fn mark_used(repo: &IndexedRepository, cancel: &AtomicBool) -> Result<(u64, HashSet<Id>)> {
    let names = repo.backend().list(FileType::Snapshot)?;
    let snaps: Vec<Snapshot> = names
        .par_iter()
        .map(|(n, _)| {
            let id: Id = n.parse()?;
            repo.load_file(FileType::Snapshot, &id)
                .map_err(|e| stop(format!("snapshot {id} is unreadable: {e}")))
        })
        .collect::<Result<_>>()?;
    let used = std::sync::Mutex::new(HashSet::new());
    let mut frontier: Vec<Id> = snaps.iter().map(|s| s.tree).collect();
    while !frontier.is_empty() {
        checkpoint(repo, cancel, "deciding")?;
        let next: Vec<Vec<Id>> = frontier
            .par_iter()
            .filter(|t| used.lock().expect("used").insert(**t))
            .map(|t| {
                let tree = repo
                    .load_tree(t)
                    .map_err(|e| stop(format!("tree {t} is unreadable: {e}")))?;
                let mut subtrees = Vec::new();
                let mut data = Vec::new();
                for n in tree.nodes {
                    match n.kind {
                        NodeKind::Dir => subtrees.extend(n.subtree),
                        NodeKind::File => data.extend(n.content.unwrap_or_default()),
                        _ => {}
                    }
                }
                used.lock().expect("used").extend(data);
                Ok(subtrees)
            })
            .collect::<Result<_>>()?;
        frontier = next.into_iter().flatten().collect();
    }
    Ok((snaps.len() as u64, used.into_inner().expect("used")))
}

/// Prunes the repository. The caller holds the exclusive lock.
///
/// # Errors
/// [`ErrorKind::Corrupt`] (nothing changed) when an index file, snapshot or tree is unreadable,
/// an indexed pack is missing, or a used blob is in no pack; [`ErrorKind::Interrupted`] when
/// `cancel` was set and [`ErrorKind::Locked`] when the lock was lost (nothing more changed after
/// that); backend errors while changing.
pub fn prune(repo: &Repository, opts: &PruneOptions, cancel: &AtomicBool) -> Result<PruneReport> {
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        ..PruneReport::default()
    };

    // Load every index file; any damage stops prune.
    let index_names: Vec<Id> = repo
        .backend()
        .list(FileType::Index)?
        .into_iter()
        .map(|(n, _)| n.parse())
        .collect::<Result<_>>()?;
    let files: Vec<IndexFile> = index_names
        .par_iter()
        .map(|id| {
            repo.load_file(FileType::Index, id)
                .map_err(|e| stop(e.to_string()))
        })
        .collect::<Result<_>>()?;
    let mut packs: BTreeMap<Id, PackUse> = BTreeMap::new();
    let index = Index::default();
    for f in &files {
        for p in &f.packs {
            index.add_pack(p);
            packs.entry(p.id).or_insert_with(|| PackUse {
                size: p.size,
                blobs: p.blobs.clone(),
                ..PackUse::default()
            });
        }
    }
    let stored: BTreeMap<Id, u64> = repo.packs()?.into_iter().collect();
    if let Some(missing) = packs.keys().find(|id| !stored.contains_key(id)) {
        return Err(stop(format!("pack {missing} is indexed but missing")));
    }
    report.orphans = stored
        .iter()
        .filter(|(id, _)| !packs.contains_key(id))
        .map(|(id, size)| PackRef {
            id: *id,
            size: *size,
        })
        .collect();
    let indexed = IndexedRepository::from_parts(repo.clone(), index);

    // Mark, then give each used blob to one pack (the first by id); other copies are unused.
    let (snapshots, used) = mark_used(&indexed, cancel)?;
    report.snapshots = snapshots;
    report.used_blobs = used.len() as u64;
    let mut owned: HashSet<Id> = HashSet::with_capacity(used.len());
    for p in packs.values_mut() {
        for b in &p.blobs {
            if used.contains(&b.id) && owned.insert(b.id) {
                p.used_bytes += u64::from(b.length);
                p.owned.push(*b);
            } else {
                p.unused_bytes += u64::from(b.length);
            }
        }
    }
    if let Some(lost) = used.iter().find(|id| !owned.contains(id)) {
        return Err(stop(format!(
            "blob {lost} is used by a snapshot but in no pack"
        )));
    }
    report.packs = packs.len() as u64;
    report.pack_bytes = packs.values().map(|p| p.size).sum();
    report.unused_bytes = packs.values().map(|p| p.unused_bytes).sum();

    // Decide.
    let used_bytes: u64 = packs.values().map(|p| p.used_bytes).sum();
    let allowed = (used_bytes as f64 * opts.max_unused_percent / 100.0) as u64;
    let mut partly: Vec<(&Id, &PackUse)> = packs
        .iter()
        .filter(|(_, p)| p.used_bytes > 0 && p.unused_bytes > 0)
        .collect();
    // Most unused first: each repacked byte frees the most.
    partly.sort_by(|a, b| {
        let ra = a.1.unused_bytes as f64 / a.1.size.max(1) as f64;
        let rb = b.1.unused_bytes as f64 / b.1.size.max(1) as f64;
        rb.total_cmp(&ra).then(a.0.cmp(b.0))
    });
    let mut unused_left: u64 = partly.iter().map(|(_, p)| p.unused_bytes).sum();
    let mut repack_budget = opts.max_repack_bytes.unwrap_or(u64::MAX);
    for (id, p) in &partly {
        if unused_left <= allowed || p.size > repack_budget {
            continue;
        }
        repack_budget -= p.size;
        unused_left -= p.unused_bytes;
        report.repack.push(PackRef {
            id: **id,
            size: p.size,
        });
    }
    report.unused_bytes_left = unused_left;
    report.delete = packs
        .iter()
        .filter(|(_, p)| p.used_bytes == 0)
        .map(|(id, p)| PackRef {
            id: *id,
            size: p.size,
        })
        .collect();
    if opts.dry_run {
        let freed: u64 = report
            .delete
            .iter()
            .chain(&report.repack)
            .chain(&report.orphans)
            .map(|p| p.size)
            .sum();
        report.bytes_freed = freed as i64
            - (report
                .repack
                .iter()
                .map(|r| packs[&r.id].used_bytes)
                .sum::<u64>() as i64);
        return Ok(report);
    }

    // 1. Repack into new packs, indexed as they are written.
    checkpoint(repo, cancel, "repacking")?;
    let gone: HashSet<Id> = report
        .delete
        .iter()
        .chain(&report.repack)
        .map(|p| p.id)
        .collect();
    if !report.repack.is_empty() {
        let keep_index = Index::default();
        for (id, p) in &packs {
            if !gone.contains(id) {
                keep_index.add_pack(&IndexPack {
                    id: *id,
                    size: p.size,
                    blobs: p.blobs.clone(),
                });
            }
        }
        let saver = BlobSaver::new(repo, Arc::new(keep_index), Compression::Auto, false);
        let result = report.repack.par_iter().try_for_each(|r| -> Result<()> {
            checkpoint(repo, cancel, "repacking more")?;
            let data = repo.read_verified(
                || repo.backend().read(FileType::Pack, &r.id.to_hex()),
                |data| {
                    if Id::hash_of(&data) == r.id {
                        Ok(data)
                    } else {
                        Err(Error::corrupt(format!(
                            "pack {} is corrupt: its content does not match its name",
                            r.id
                        )))
                    }
                },
            )?;
            for b in &packs[&r.id].owned {
                let sealed = data
                    .get(b.offset as usize..b.offset as usize + b.length as usize)
                    .ok_or_else(|| stop(format!("pack {} is shorter than its index says", r.id)))?;
                let plain = open_blob(repo.key(), repo.blob_limits(), b, sealed, &r.id)?;
                saver.save_with_id(b.tpe, b.id, &plain)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            let _ = saver.abandon();
            return Err(
                e.context("repacking failed; the repository is unchanged but for new packs")
            );
        }
        let stats = saver.finish()?;
        report.repacked_blobs = stats.data_blobs + stats.tree_blobs;
        report.new_packs = stats.packs;
        report.bytes_freed -= stats.bytes_packed as i64;
    }

    // 2. Index files for every pack that stays.
    checkpoint(repo, cancel, "writing the new index")?;
    let keep: Vec<IndexPack> = packs
        .iter()
        .filter(|(id, _)| !gone.contains(id))
        .map(|(id, p)| IndexPack {
            id: *id,
            size: p.size,
            blobs: p.blobs.clone(),
        })
        .collect();
    save_index(repo, &keep, || {
        checkpoint(repo, cancel, "writing the new index")
    })?;

    // 3. Old index files (new ones never share a name with them: every seal has a fresh nonce).
    for id in &index_names {
        checkpoint(repo, cancel, "removing old index files")?;
        repo.backend().remove(FileType::Index, &id.to_hex())?;
    }

    // 4. Packs.
    for p in report
        .delete
        .iter()
        .chain(&report.repack)
        .chain(&report.orphans)
    {
        checkpoint(repo, cancel, "removing packs")?;
        match repo.backend().remove(FileType::Pack, &p.id.to_hex()) {
            Ok(()) => report.bytes_freed += p.size as i64,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }

    // 5. What killed writers left behind (nothing is writing: we hold the exclusive lock).
    checkpoint(repo, cancel, "removing leftovers")?;
    report.leftovers_removed = repo.backend().remove_leftovers()?;
    Ok(report)
}
