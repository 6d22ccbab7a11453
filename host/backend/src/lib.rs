//! cairn-backend: built-in storage for cairn repositories.
//!
//! Now the local directory ([`LocalBackend`]); object stores (S3, GCS, Azure, WebDAV) follow.
//! [`open_location`] maps a repository location string to a backend.

mod local;

use std::sync::Arc;

use cairn_repo::{Backend, Error, Result};

pub use local::LocalBackend;

/// The backend for a repository location: a local path, or `local:PATH`.
///
/// # Errors
/// [`cairn_repo::ErrorKind::InvalidInput`] for a scheme this build does not support.
pub fn open_location(location: &str) -> Result<Arc<dyn Backend>> {
    if location.is_empty() {
        return Err(Error::invalid("the repository location is empty"));
    }
    if let Some(path) = location.strip_prefix("local:") {
        return Ok(Arc::new(LocalBackend::new(path)));
    }
    if let Some((scheme, _)) = location.split_once(':')
        && scheme.len() > 1
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+')
    {
        return Err(Error::invalid(format!(
            "repository scheme `{scheme}:` is not supported by this build (use a local path)"
        )));
    }
    Ok(Arc::new(LocalBackend::new(location)))
}
