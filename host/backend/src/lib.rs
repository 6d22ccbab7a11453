//! cairn-backend: built-in storage for cairn repositories.
//!
//! The local directory ([`LocalBackend`]), object stores ([`ObjectBackend`]: S3 and
//! S3-compatible servers, WebDAV) and servers of restic's REST protocol ([`RestBackend`]).
//! [`open_location`] maps a repository location string to a backend.

mod aws_profile;
mod bucket;
mod cache;
pub mod caches;
mod local;
mod multipart;
mod object;
mod rest;
mod spool;

use std::sync::Arc;

use cairn_repo::{Backend, Error, Result};

pub use bucket::Bucket;
pub use cache::CachedBackend;
pub use local::LocalBackend;
pub use object::{ObjectBackend, RemoteOptions};
pub use rest::{RestBackend, RestCredentials, redact as redact_location};

/// How to reach a repository's store.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Root of the local cache of small files for remote stores (`None`: no cache).
    pub cache_dir: Option<std::path::PathBuf>,
    /// How to reach a remote store (keys, CA, connections).
    pub remote: RemoteOptions,
}

/// The backend for a repository location: a local path or `local:PATH`,
/// `s3:http(s)://HOST:PORT/BUCKET/PREFIX`, `s3://BUCKET/PREFIX`, `az://CONTAINER/PREFIX`,
/// `gs://BUCKET/PREFIX`, `webdav+http(s)://HOST/PATH`, or
/// `rest:http(s)://[USER:PASSWORD@]HOST:PORT/PATH/` (restic's REST protocol).
///
/// # Errors
/// [`cairn_repo::ErrorKind::InvalidInput`] for a scheme this build does not support.
pub fn open_location(location: &str) -> Result<Arc<dyn Backend>> {
    open_location_with(location, &OpenOptions::default())
}

/// As [`open_location`], with a cache and connection settings for remote stores.
///
/// # Errors
/// [`cairn_repo::ErrorKind::InvalidInput`] for a scheme this build does not support.
pub fn open_location_with(location: &str, opts: &OpenOptions) -> Result<Arc<dyn Backend>> {
    if location.is_empty() {
        return Err(Error::invalid("the repository location is empty"));
    }
    if let Some(path) = location.strip_prefix("local:") {
        return Ok(Arc::new(LocalBackend::new(path)));
    }
    let remote: Option<Arc<dyn Backend>> = if location.starts_with("s3:") {
        Some(Arc::new(ObjectBackend::s3(location, &opts.remote)?))
    } else if location.starts_with("az://") {
        Some(Arc::new(ObjectBackend::azure(location, &opts.remote)?))
    } else if location.starts_with("gs://") {
        Some(Arc::new(ObjectBackend::gcs(location, &opts.remote)?))
    } else if location.starts_with("webdav+") {
        Some(Arc::new(ObjectBackend::webdav(location, &opts.remote)?))
    } else if location.starts_with("rest:") {
        Some(Arc::new(RestBackend::new(location, &opts.remote)?))
    } else {
        None
    };
    if let Some(remote) = remote {
        return Ok(match &opts.cache_dir {
            Some(dir) => Arc::new(CachedBackend::new(remote, dir)),
            None => remote,
        });
    }
    if let Some((scheme, _)) = location.split_once(':')
        && scheme.len() > 1
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+')
    {
        return Err(Error::invalid(format!(
            "repository scheme `{scheme}:` is not supported by this build (use a local path, s3:, az://, gs://, webdav+http(s):// or rest:http(s)://)"
        )));
    }
    Ok(Arc::new(LocalBackend::new(location)))
}

/// `data`, the answer to a read of `length` bytes at `offset`, when it is that long: a short
/// one is [`cairn_repo::ErrorKind::Corrupt`].
pub(crate) fn exact_range(
    tpe: cairn_repo::FileType,
    name: &str,
    offset: u64,
    length: u64,
    data: bytes::Bytes,
) -> Result<Vec<u8>> {
    if data.len() as u64 != length {
        return Err(Error::corrupt(format!(
            "{tpe} {name} is truncated: wanted {length} bytes at offset {offset}, got {}",
            data.len()
        )));
    }
    Ok(Vec::from(data))
}

/// How an object is named in messages: `config`, or `pack 3fa2…`.
pub(crate) fn what(tpe: cairn_repo::FileType, name: &str) -> String {
    if tpe == cairn_repo::FileType::Config {
        "the config".to_owned()
    } else {
        format!("{tpe} {name}")
    }
}
