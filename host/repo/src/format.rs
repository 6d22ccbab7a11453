//! On-disk formats: every file type's serde shape and its encoding.
//!
//! The contract is `docs/FORMAT.md`; the golden tests in each module pin it. Metadata files
//! (config, snapshots, indexes, locks) are JSON, compressed with zstd and sealed with the master
//! key: `seal(0x01 ‖ zstd(json))`, with `cairn/<type>` as associated data. A file decompresses
//! to at most [`max_metadata_size`] of its type, so that a zstd bomb cannot exhaust memory.

pub mod config;
pub mod index;
pub mod keyfile;
pub mod lock;
pub mod pack;
pub mod snapshot;
pub mod tree;

use std::io::Read as _;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::FileType;
use crate::crypto::MasterKey;
use crate::error::{Error, Result};

/// The leading byte of a sealed metadata file's plaintext: zstd-compressed JSON.
const ENCODING_ZSTD_JSON: u8 = 1;

fn aad(tpe: FileType) -> Vec<u8> {
    format!("cairn/{}", tpe.noun()).into_bytes()
}

/// The most a metadata file of `tpe` may decompress to: 256 MiB for an index file (prune
/// writes up to 4096 packs in one, about 11 MiB of JSON for packs of 16 data blobs), 64 MiB for
/// a snapshot, 1 MiB for the config and a lock. Key slots are plain JSON, packs hold blobs.
pub const fn max_metadata_size(tpe: FileType) -> usize {
    match tpe {
        FileType::Index => 256 << 20,
        FileType::Snapshot => 64 << 20,
        _ => 1 << 20,
    }
}

/// The zstd frames of `body` decompressed, or `None` when they hold more than `cap` bytes
/// (found after decompressing at most `cap + 1` of them).
fn decompress_bounded(body: &[u8], cap: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(body)?
        .take(cap as u64 + 1)
        .read_to_end(&mut out)?;
    Ok((out.len() <= cap).then_some(out))
}

/// Serializes, compresses and seals a metadata file.
pub(crate) fn encode_file<T: Serialize>(key: &MasterKey, tpe: FileType, value: &T) -> Vec<u8> {
    let json = serde_json::to_vec(value).expect("format types serialize");
    let mut plain = vec![ENCODING_ZSTD_JSON];
    plain.extend(zstd::bulk::compress(&json, 3).expect("zstd compresses in memory"));
    key.seal(&plain, &aad(tpe))
}

/// Opens, decompresses (within [`max_metadata_size`]) and parses a metadata file named
/// `name`; errors name the file.
///
/// # Errors
/// [`crate::ErrorKind::Corrupt`] when it does not open, is too large or does not parse.
pub fn decode_file<T: DeserializeOwned>(
    key: &MasterKey,
    tpe: FileType,
    name: &str,
    data: &[u8],
) -> Result<T> {
    let what = || format!("{tpe} {name}");
    let plain = key
        .open(data, &aad(tpe))
        .map_err(|e| e.context(format!("{} is corrupt", what())))?;
    let Some((&ENCODING_ZSTD_JSON, body)) = plain.split_first() else {
        return Err(Error::corrupt(format!(
            "{} has an unknown encoding",
            what()
        )));
    };
    let cap = max_metadata_size(tpe);
    let json = decompress_bounded(body, cap)
        .map_err(|e| Error::corrupt(format!("{} does not decompress", what())).with_source(e))?
        .ok_or_else(|| {
            Error::corrupt(format!(
                "{} is corrupt: it decompresses to more than {cap} bytes, the most a {tpe} may \
                 hold (damaged, or made to exhaust memory)",
                what()
            ))
        })?;
    serde_json::from_slice(&json)
        .map_err(|e| Error::corrupt(format!("{} does not parse", what())).with_source(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` zstd frames of 64 MiB of zeros each: a few KiB that decompress to `n` × 64 MiB.
    fn bomb(frames: usize) -> Vec<u8> {
        let frame = zstd::bulk::compress(&vec![0u8; 64 << 20], 1).unwrap();
        frame.repeat(frames)
    }

    /// A 4 GiB bomb is refused after decompressing just over the cap (the test would take
    /// seconds and 4 GiB if the whole were decompressed).
    #[test]
    fn a_zstd_bomb_is_cut_at_the_cap() {
        let body = bomb(64);
        assert!(body.len() < 1 << 20, "{}", body.len());
        assert_eq!(decompress_bounded(&body, 1 << 20).unwrap(), None);
        let small = zstd::bulk::compress(b"{}", 3).unwrap();
        assert_eq!(
            decompress_bounded(&small, 2).unwrap().as_deref(),
            Some(&b"{}"[..])
        );
        assert_eq!(decompress_bounded(&small, 1).unwrap(), None);
    }

    /// A sealed lock that decompresses to 64 MiB (beyond its 1 MiB) is corrupt, named.
    #[test]
    fn a_metadata_bomb_is_corrupt_and_named() {
        let key = MasterKey::random();
        let mut plain = vec![ENCODING_ZSTD_JSON];
        plain.extend(bomb(1));
        let sealed = key.seal(&plain, &aad(FileType::Lock));
        let e =
            decode_file::<serde_json::Value>(&key, FileType::Lock, "ab12", &sealed).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Corrupt);
        let msg = e.to_string();
        assert!(
            msg.contains("lock ab12") && msg.contains("more than"),
            "{msg}"
        );
    }
}
