//! The repository `config`: format version, repository id, chunker and pack parameters.
//! Fixed at `init`; never rewritten.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;

/// The format version this engine writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// FastCDC (v2020, normalization level 1) parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    /// Smallest chunk, bytes (a file shorter than this is one chunk).
    pub min_size: u32,
    /// Target average chunk, bytes.
    pub avg_size: u32,
    /// Largest chunk, bytes.
    pub max_size: u32,
    /// Seed XORed into the gear table, derived from the master key at `init`, so that chunk
    /// boundaries cannot be predicted without the key.
    pub seed: u64,
}

impl ChunkerParams {
    /// Default sizes: 512 KiB / 1 MiB / 8 MiB.
    pub const DEFAULT_SIZES: (u32, u32, u32) = (512 * 1024, 1024 * 1024, 8 * 1024 * 1024);

    /// Checks the sizes against what FastCDC accepts.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] naming the offending size.
    pub fn validate(&self) -> Result<()> {
        use fastcdc::v2020::{
            AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN,
        };
        let check = |name: &str, v: u32, lo: u32, hi: u32| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(Error::invalid(format!(
                    "chunker {name} size {v} is outside {lo}..={hi} bytes"
                )))
            }
        };
        check("min", self.min_size, MINIMUM_MIN, MINIMUM_MAX)?;
        check("average", self.avg_size, AVERAGE_MIN, AVERAGE_MAX)?;
        check("max", self.max_size, MAXIMUM_MIN, MAXIMUM_MAX)?;
        if !(self.min_size <= self.avg_size && self.avg_size <= self.max_size) {
            return Err(Error::invalid(format!(
                "chunker sizes must satisfy min <= average <= max, got {}/{}/{}",
                self.min_size, self.avg_size, self.max_size
            )));
        }
        Ok(())
    }
}

/// `MIN/AVG/MAX seed SEED` (bytes; the seed in hex), as `init --chunker` takes the sizes.
impl std::fmt::Display for ChunkerParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{} seed {:x}",
            self.min_size, self.avg_size, self.max_size, self.seed
        )
    }
}

/// The decrypted `config` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Format version, [`FORMAT_VERSION`].
    pub version: u32,
    /// Random repository id.
    pub id: Id,
    /// Chunker parameters.
    pub chunker: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u32,
}

impl Config {
    /// Default target pack size: 16 MiB.
    pub const DEFAULT_PACK_SIZE: u32 = 16 * 1024 * 1024;

    /// Checks every parameter.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] (at init) naming the parameter.
    pub fn validate(&self) -> Result<()> {
        if self.version != FORMAT_VERSION {
            return Err(Error::invalid(format!(
                "repository format version {} is not supported (this cairn reads version {FORMAT_VERSION})",
                self.version
            )));
        }
        self.chunker.validate()?;
        if !(1024 * 1024..=512 * 1024 * 1024).contains(&self.pack_size) {
            return Err(Error::invalid(format!(
                "pack size {} is outside 1 MiB..=512 MiB",
                self.pack_size
            )));
        }
        Ok(())
    }
}
