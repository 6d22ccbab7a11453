//! Index files (`index/<id>`): which blobs each pack holds, where.

use serde::{Deserialize, Serialize};

use crate::format::pack::BlobEntry;
use crate::id::Id;

/// One pack's blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    /// Pack id (the hash of its bytes).
    pub id: Id,
    /// Size of the pack file.
    pub size: u64,
    /// Its blobs, as in its header.
    pub blobs: Vec<BlobEntry>,
}

/// An index file as stored (sealed JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    /// Packs described.
    pub packs: Vec<IndexPack>,
}
