//! On-disk formats: every file type's serde shape and its encoding.
//!
//! The contract is `docs/FORMAT.md`; the golden tests in each module pin it. Metadata files
//! (config, snapshots, indexes, locks) are JSON, compressed with zstd and sealed with the master
//! key: `seal(0x01 ‖ zstd(json))`, with `cairn/<type>` as associated data.

pub mod config;
pub mod index;
pub mod keyfile;
pub mod lock;
pub mod pack;
pub mod snapshot;
pub mod tree;

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

/// Serializes, compresses and seals a metadata file.
pub(crate) fn encode_file<T: Serialize>(key: &MasterKey, tpe: FileType, value: &T) -> Vec<u8> {
    let json = serde_json::to_vec(value).expect("format types serialize");
    let mut plain = vec![ENCODING_ZSTD_JSON];
    plain.extend(zstd::bulk::compress(&json, 3).expect("zstd compresses in memory"));
    key.seal(&plain, &aad(tpe))
}

/// Opens, decompresses and parses a metadata file; errors name the file.
pub(crate) fn decode_file<T: DeserializeOwned>(
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
    let json = zstd::stream::decode_all(body)
        .map_err(|e| Error::corrupt(format!("{} does not decompress", what())).with_source(e))?;
    serde_json::from_slice(&json)
        .map_err(|e| Error::corrupt(format!("{} does not parse", what())).with_source(e))
}
