//! Re-indexing packs that no index file names: what an interrupted backup (kill -9) leaves
//! behind. Their headers are read and a new index file written, so their blobs are re-used.

use rayon::prelude::*;

use crate::backend::FileType;
use crate::error::Result;
use crate::format::index::{IndexFile, IndexPack};
use crate::format::pack::{header_read_hint, parse_header};
use crate::id::Id;
use crate::indexed::IndexedRepository;
use crate::repository::Repository;

/// Reads the header of a pack.
///
/// # Errors
/// Backend errors or a corrupt header (named).
pub fn read_pack_header(repo: &Repository, id: &Id, size: u64) -> Result<IndexPack> {
    let name = id.to_hex();
    let hint = header_read_hint(size);
    let tail = repo
        .backend()
        .read_range(FileType::Pack, &name, size - hint, hint)?;
    let blobs = match parse_header(repo.key(), id, size, &tail)? {
        Ok(blobs) => blobs,
        Err(need) => {
            let tail = repo
                .backend()
                .read_range(FileType::Pack, &name, size - need, need)?;
            parse_header(repo.key(), id, size, &tail)?
                .map_err(|_| crate::Error::corrupt(format!("pack {id} has an unreadable header")))?
        }
    };
    Ok(IndexPack {
        id: *id,
        size,
        blobs,
    })
}

/// Indexes every pack that no index names. Returns how many packs were added, and the packs
/// that could not be read (name and reason), which are left alone.
///
/// # Errors
/// Backend errors while listing or writing the new index file.
pub fn index_unindexed_packs(repo: &IndexedRepository) -> Result<(usize, Vec<(Id, String)>)> {
    let known = repo.index().pack_ids();
    let unindexed: Vec<(Id, u64)> = repo
        .packs()?
        .into_iter()
        .filter(|(id, _)| !known.contains(id))
        .collect();
    if unindexed.is_empty() {
        return Ok((0, Vec::new()));
    }
    let results: Vec<_> = unindexed
        .par_iter()
        .map(|(id, size)| (*id, read_pack_header(repo, id, *size)))
        .collect();
    let mut file = IndexFile::default();
    let mut bad = Vec::new();
    for (id, r) in results {
        match r {
            Ok(p) => file.packs.push(p),
            Err(e) => bad.push((id, e.to_string())),
        }
    }
    let n = file.packs.len();
    if n > 0 {
        for p in &file.packs {
            repo.index().add_pack(p);
        }
        repo.save_file(FileType::Index, &file)?;
    }
    Ok((n, bad))
}
