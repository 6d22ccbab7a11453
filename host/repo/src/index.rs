//! The in-memory index: blob id → pack and place, for every pack that an index file names.
//!
//! About 60 bytes per blob. Concurrent: backup threads look up and reserve blobs while uploads
//! add packs.

use std::collections::HashSet;
use std::sync::RwLock;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use rayon::prelude::*;

use crate::backend::FileType;
use crate::error::Result;
use crate::format::index::{IndexFile, IndexPack};
use crate::format::pack::{BlobEntry, BlobType};
use crate::id::Id;
use crate::repository::Repository;

/// Marks a blob reserved by a running backup but not yet in an uploaded pack.
const PENDING: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Location {
    pack: u32,
    offset: u32,
    length: u32,
    raw_length: u32,
    tpe: BlobType,
    compressed: bool,
}

/// Where a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack holding it.
    pub pack: Id,
    /// Its entry in that pack.
    pub entry: BlobEntry,
}

/// The index of a repository.
#[derive(Default)]
pub struct Index {
    packs: RwLock<Vec<(Id, u64)>>,
    blobs: DashMap<Id, Location>,
    files: Vec<Id>,
}

impl Index {
    /// Loads every index file, in parallel.
    ///
    /// # Errors
    /// Backend errors or a corrupt index file (named).
    pub fn load(repo: &Repository) -> Result<Self> {
        let names = repo.backend().list(FileType::Index)?;
        let files: Vec<Id> = names
            .iter()
            .map(|(n, _)| n.parse())
            .collect::<Result<_>>()?;
        let index = Index {
            files: files.clone(),
            ..Index::default()
        };
        files.par_iter().try_for_each(|id| {
            let file: IndexFile = repo.load_file(FileType::Index, id)?;
            for p in &file.packs {
                index.add_pack(p);
            }
            Ok(())
        })?;
        Ok(index)
    }

    /// The index files this was loaded from.
    pub fn files(&self) -> &[Id] {
        &self.files
    }

    /// Adds a pack's blobs (a blob already placed elsewhere keeps its first place).
    pub fn add_pack(&self, pack: &IndexPack) {
        let n = {
            let mut packs = self.packs.write().expect("index lock");
            packs.push((pack.id, pack.size));
            u32::try_from(packs.len() - 1).expect("fewer than 4 billion packs")
        };
        for b in &pack.blobs {
            let loc = Location {
                pack: n,
                offset: b.offset,
                length: b.length,
                raw_length: b.raw_length,
                tpe: b.tpe,
                compressed: b.compressed,
            };
            match self.blobs.entry(b.id) {
                Entry::Occupied(mut o) if o.get().pack == PENDING => {
                    o.insert(loc);
                }
                Entry::Occupied(_) => {}
                Entry::Vacant(v) => {
                    v.insert(loc);
                }
            }
        }
    }

    /// Whether a blob is stored or being stored.
    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    /// Reserves a blob for saving. Returns `true` when the caller must save it, `false` when
    /// it is stored already or another thread is saving it.
    pub fn reserve(&self, id: Id, tpe: BlobType) -> bool {
        match self.blobs.entry(id) {
            Entry::Occupied(_) => false,
            Entry::Vacant(v) => {
                v.insert(Location {
                    pack: PENDING,
                    offset: 0,
                    length: 0,
                    raw_length: 0,
                    tpe,
                    compressed: false,
                });
                true
            }
        }
    }

    /// Where a stored blob is.
    pub fn get(&self, id: &Id) -> Option<BlobLocation> {
        let loc = *self.blobs.get(id)?;
        if loc.pack == PENDING {
            return None;
        }
        let (pack, _) = self.packs.read().expect("index lock")[loc.pack as usize];
        Some(BlobLocation {
            pack,
            entry: BlobEntry {
                id: *id,
                tpe: loc.tpe,
                offset: loc.offset,
                length: loc.length,
                raw_length: loc.raw_length,
                compressed: loc.compressed,
            },
        })
    }

    /// Every pack the index names, with its size.
    pub fn packs(&self) -> Vec<(Id, u64)> {
        self.packs.read().expect("index lock").clone()
    }

    /// The set of indexed pack ids.
    pub fn pack_ids(&self) -> HashSet<Id> {
        self.packs
            .read()
            .expect("index lock")
            .iter()
            .map(|p| p.0)
            .collect()
    }

    /// Number of blobs known (stored or reserved).
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// Whether no blob is known.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Every stored blob's location.
    pub fn all(&self) -> Vec<BlobLocation> {
        let ids: Vec<Id> = self.blobs.iter().map(|e| *e.key()).collect();
        ids.iter().filter_map(|id| self.get(id)).collect()
    }
}
