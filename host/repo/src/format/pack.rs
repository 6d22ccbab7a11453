//! Packs (`data/<id>`) and the blobs in them.
//!
//! ```text
//! pack   = blob* ‖ sealed(header) ‖ u32le(len(sealed(header)))
//! blob   = seal(payload) with AAD "cairn/blob" ‖ type byte ‖ blob id
//! header = entry*, entry = type u8 ‖ flags u8 ‖ length u32le ‖ raw_length u32le ‖ id [32]
//! ```
//! `payload` is the plaintext or its zstd frame (flag bit 0). Blobs follow one another from
//! offset 0 in header order. A pack's name is the BLAKE3 hash of all its bytes.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

use crate::crypto::{MasterKey, OVERHEAD};
use crate::error::{Error, Result};
use crate::format::config::Config;
use crate::id::Id;

const HEADER_AAD: &[u8] = b"cairn/pack-header";
const ENTRY_LEN: usize = 42;
const FLAG_COMPRESSED: u8 = 1;

/// What a blob holds. Data and tree blobs never share a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobType {
    /// File content.
    Data,
    /// A serialized [`crate::format::tree::Tree`].
    Tree,
}

impl BlobType {
    fn byte(self) -> u8 {
        match self {
            BlobType::Data => 0,
            BlobType::Tree => 1,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(BlobType::Data),
            1 => Some(BlobType::Tree),
            _ => None,
        }
    }
}

/// How much effort to spend compressing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Store as is.
    Off,
    /// zstd level 1; a blob that does not shrink is stored as is.
    #[default]
    Auto,
    /// zstd level 19; a blob that does not shrink is stored as is.
    Max,
}

/// One blob's place in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobEntry {
    /// Blob id.
    pub id: Id,
    /// Blob type.
    #[serde(rename = "type")]
    pub tpe: BlobType,
    /// Offset of the sealed blob in the pack.
    pub offset: u32,
    /// Length of the sealed blob.
    pub length: u32,
    /// Length of the plaintext.
    pub raw_length: u32,
    /// Whether the payload is a zstd frame.
    pub compressed: bool,
}

/// The largest plaintext a blob of each type may have in a repository: a data blob is a chunk,
/// at most the chunker's `max_size`; a tree blob is one directory's listing, at most
/// [`BlobLimits::MAX_TREE`]. A blob that claims more (`raw_length` in a pack header or an
/// index) is corrupt, found before anything is decompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLimits {
    /// Most bytes of a data blob.
    pub data: u32,
    /// Most bytes of a tree blob.
    pub tree: u32,
}

impl BlobLimits {
    /// Most bytes of a tree blob: 256 MiB, the listing of about a million files.
    pub const MAX_TREE: u32 = 256 << 20;

    /// The limits of the repository with `config`.
    pub fn of(config: &Config) -> Self {
        Self {
            data: config.chunker.max_size,
            tree: Self::MAX_TREE,
        }
    }

    /// The limit for blobs of `tpe`.
    pub fn get(&self, tpe: BlobType) -> u32 {
        match tpe {
            BlobType::Data => self.data,
            BlobType::Tree => self.tree,
        }
    }
}

fn blob_aad(tpe: BlobType, id: &Id) -> [u8; 43] {
    let mut aad = [0u8; 43];
    aad[..10].copy_from_slice(b"cairn/blob");
    aad[10] = tpe.byte();
    aad[11..].copy_from_slice(&id.0);
    aad
}

/// Compresses (if it pays) and seals a blob. Returns the sealed bytes and whether they hold a
/// zstd frame.
pub fn seal_blob(
    key: &MasterKey,
    tpe: BlobType,
    id: &Id,
    plaintext: &[u8],
    compression: Compression,
) -> (Vec<u8>, bool) {
    let level = match compression {
        Compression::Off => None,
        Compression::Auto => Some(1),
        Compression::Max => Some(19),
    };
    let aad = blob_aad(tpe, id);
    if let Some(level) = level
        && (compression == Compression::Max || looks_compressible(plaintext))
        && let Ok(z) = compress(plaintext, level)
        // Keep it only when it saves at least 1/32: incompressible data stays as is.
        && z.len() + z.len() / 32 < plaintext.len()
    {
        return (key.seal(&z, &aad), true);
    }
    (key.seal(plaintext, &aad), false)
}

/// Whether compressing `data` is worth a try: a large blob is judged by a 32 KiB sample from
/// its middle, so that incompressible data (media, archives, encrypted files) costs one small
/// zstd pass instead of a full one.
fn looks_compressible(data: &[u8]) -> bool {
    const SAMPLE: usize = 32 * 1024;
    if data.len() < 4 * SAMPLE {
        return true;
    }
    let mid = data.len() / 2 - SAMPLE / 2;
    let sample = &data[mid..mid + SAMPLE];
    compress(sample, 1).is_ok_and(|z| z.len() + z.len() / 16 < SAMPLE)
}

/// zstd decompression with a per-thread, reused context.
fn decompress(data: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    use std::cell::RefCell;
    thread_local! {
        static DCTX: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    }
    DCTX.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        d.as_mut().expect("set above").decompress(data, capacity)
    })
}

/// zstd with a per-thread, reused context (creating one per blob costs more than compressing a
/// small file).
fn compress(data: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    use std::cell::RefCell;
    thread_local! {
        static CCTX: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    }
    CCTX.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_none_or(|(l, _)| *l != level) {
            *c = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        let (_, cctx) = c.as_mut().expect("set above");
        cctx.compress(data)
    })
}

/// Opens a sealed blob, decompresses it (to at most its `raw_length`, itself at most
/// `limits`) and checks that its keyed hash is its id.
///
/// # Errors
/// [`crate::ErrorKind::Corrupt`] naming the blob and `pack` when any check fails.
pub fn open_blob(
    key: &MasterKey,
    limits: BlobLimits,
    entry: &BlobEntry,
    sealed: &[u8],
    pack: &Id,
) -> Result<Vec<u8>> {
    let mut buf = sealed.to_vec();
    open_blob_in_place(key, limits, entry, &mut buf, pack).map(Cow::into_owned)
}

/// As [`open_blob`], decrypting in `sealed` itself: an uncompressed blob's plaintext is
/// returned within it, a compressed one's decompressed anew.
///
/// # Errors
/// As [`open_blob`]; `sealed` then holds garbage.
pub fn open_blob_in_place<'a>(
    key: &MasterKey,
    limits: BlobLimits,
    entry: &BlobEntry,
    sealed: &'a mut [u8],
    pack: &Id,
) -> Result<Cow<'a, [u8]>> {
    let what = || format!("blob {} in pack {pack}", entry.id);
    let limit = limits.get(entry.tpe);
    if entry.raw_length > limit {
        return Err(Error::corrupt(format!(
            "{} is corrupt: it claims {} bytes, more than the {limit} a {} blob may hold in \
             this repository (run `cairn check`)",
            what(),
            entry.raw_length,
            match entry.tpe {
                BlobType::Data => "data",
                BlobType::Tree => "tree",
            }
        )));
    }
    let payload = key
        .open_in_place(sealed, &blob_aad(entry.tpe, &entry.id))
        .map_err(|e| e.context(format!("{} is corrupt", what())))?;
    let plain = if entry.compressed {
        Cow::Owned(decompress(payload, entry.raw_length as usize).map_err(|e| {
            Error::corrupt(format!("{} does not decompress", what())).with_source(e)
        })?)
    } else {
        Cow::Borrowed(&*payload)
    };
    if plain.len() != entry.raw_length as usize || key.blob_id(&plain) != entry.id {
        return Err(Error::corrupt(format!("{} does not match its id", what())));
    }
    Ok(plain)
}

/// The sealed pack header and its length, as they end a pack.
pub fn header_bytes(key: &MasterKey, entries: &[BlobEntry]) -> Vec<u8> {
    let mut h = Vec::with_capacity(entries.len() * ENTRY_LEN);
    for e in entries {
        h.push(e.tpe.byte());
        h.push(if e.compressed { FLAG_COMPRESSED } else { 0 });
        h.extend_from_slice(&e.length.to_le_bytes());
        h.extend_from_slice(&e.raw_length.to_le_bytes());
        h.extend_from_slice(&e.id.0);
    }
    let mut sealed = key.seal(&h, HEADER_AAD);
    let len = u32::try_from(sealed.len()).expect("pack header below 4 GiB");
    sealed.extend_from_slice(&len.to_le_bytes());
    sealed
}

/// How many trailing bytes to read to be likely to get the whole header of a pack.
pub fn header_read_hint(pack_size: u64) -> u64 {
    pack_size.min(64 * 1024)
}

/// Parses the header from the last `tail` bytes of a pack of `pack_size` bytes. Returns
/// `Ok(Err(needed))` when `tail` is too short and `needed` trailing bytes must be read.
///
/// # Errors
/// [`crate::ErrorKind::Corrupt`] naming the pack.
pub fn parse_header(
    key: &MasterKey,
    pack: &Id,
    pack_size: u64,
    tail: &[u8],
) -> Result<std::result::Result<Vec<BlobEntry>, u64>> {
    let corrupt = |why: &str| Error::corrupt(format!("pack {pack} is corrupt: {why}"));
    if tail.len() < 4 || pack_size < 4 + OVERHEAD as u64 {
        return Err(corrupt("too short for a header"));
    }
    let len = u32::from_le_bytes(tail[tail.len() - 4..].try_into().expect("4 bytes")) as u64;
    if len + 4 > pack_size || len < OVERHEAD as u64 {
        return Err(corrupt("header length out of range"));
    }
    if (tail.len() as u64) < len + 4 {
        return Ok(Err(len + 4));
    }
    let sealed = &tail[tail.len() - 4 - len as usize..tail.len() - 4];
    let h = key
        .open(sealed, HEADER_AAD)
        .map_err(|_| corrupt("header does not authenticate"))?;
    if h.len() % ENTRY_LEN != 0 {
        return Err(corrupt("header has a partial entry"));
    }
    let blobs_end = pack_size - 4 - len;
    let mut offset: u64 = 0;
    let mut out = Vec::with_capacity(h.len() / ENTRY_LEN);
    for e in h.chunks_exact(ENTRY_LEN) {
        let tpe = BlobType::from_byte(e[0]).ok_or_else(|| corrupt("unknown blob type"))?;
        let length = u32::from_le_bytes(e[2..6].try_into().expect("4"));
        let raw_length = u32::from_le_bytes(e[6..10].try_into().expect("4"));
        let id = Id(e[10..42].try_into().expect("32"));
        if offset + length as u64 > blobs_end {
            return Err(corrupt("blob extends past the header"));
        }
        out.push(BlobEntry {
            id,
            tpe,
            offset: offset as u32,
            length,
            raw_length,
            compressed: e[1] & FLAG_COMPRESSED != 0,
        });
        offset += length as u64;
    }
    Ok(Ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trip() {
        let key = MasterKey::random();
        let mut pack = Vec::new();
        let mut entries = Vec::new();
        for (i, data) in [vec![7u8; 100_000], b"short".to_vec()].iter().enumerate() {
            let id = key.blob_id(data);
            let (sealed, compressed) =
                seal_blob(&key, BlobType::Data, &id, data, Compression::Auto);
            assert_eq!(compressed, i == 0);
            entries.push(BlobEntry {
                id,
                tpe: BlobType::Data,
                offset: pack.len() as u32,
                length: sealed.len() as u32,
                raw_length: data.len() as u32,
                compressed,
            });
            pack.extend(sealed);
        }
        pack.extend(header_bytes(&key, &entries));
        let pid = Id::hash_of(&pack);
        let parsed = parse_header(&key, &pid, pack.len() as u64, &pack[pack.len() - 10..]).unwrap();
        let need = parsed.unwrap_err();
        let parsed = parse_header(
            &key,
            &pid,
            pack.len() as u64,
            &pack[pack.len() - need as usize..],
        )
        .unwrap()
        .unwrap();
        assert_eq!(parsed, entries);
        let e = &parsed[0];
        let blob = &pack[e.offset as usize..(e.offset + e.length) as usize];
        let limits = BlobLimits {
            data: 1 << 20,
            tree: 1 << 20,
        };
        assert_eq!(
            open_blob(&key, limits, e, blob, &pid).unwrap(),
            vec![7u8; 100_000]
        );
        let mut bad = blob.to_vec();
        bad[40] ^= 0x10;
        assert!(open_blob(&key, limits, e, &bad, &pid).is_err());
    }

    /// A compressed blob whose entry claims 4 GiB is refused before anything is allocated
    /// (the decompressor would reserve `raw_length` bytes), naming blob and pack; one that
    /// decompresses beyond its claimed length fails without growing past it.
    #[test]
    fn a_blob_bomb_is_refused() {
        let key = MasterKey::random();
        let pack = Id::hash_of(b"pack");
        let plain = vec![0u8; 8 << 20];
        let id = key.blob_id(&plain);
        let (sealed, compressed) = seal_blob(&key, BlobType::Data, &id, &plain, Compression::Auto);
        assert!(compressed && sealed.len() < 4096);
        let limits = BlobLimits {
            data: 1 << 20,
            tree: 1 << 20,
        };
        let entry = BlobEntry {
            id,
            tpe: BlobType::Data,
            offset: 0,
            length: sealed.len() as u32,
            raw_length: u32::MAX,
            compressed: true,
        };
        let e = open_blob(&key, limits, &entry, &sealed, &pack).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Corrupt);
        let msg = e.to_string();
        assert!(
            msg.contains(&id.to_hex()) && msg.contains(&pack.to_hex()) && msg.contains("claims"),
            "{msg}"
        );
        let lying = BlobEntry {
            raw_length: 1 << 20,
            ..entry
        };
        let e = open_blob(&key, limits, &lying, &sealed, &pack).unwrap_err();
        assert!(e.to_string().contains("does not decompress"), "{e}");
    }
}
