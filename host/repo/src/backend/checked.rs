//! [`CheckedBackend`]: the one place where names that come from a store are checked.
//!
//! A store is not trusted to list only what cairn wrote: a storage plugin or a server can list
//! `/dev/zero` or `../..`, and a wrapper below (the cache) would join such a name into a host
//! path. Every repository reaches its store through this wrapper, which drops listed names
//! that no cairn writes (with a warning naming the store and the name) and refuses to read,
//! write or remove one. Skipping rather than failing keeps a stray file in a store from
//! making the whole repository unusable; the names are never used, so skipping is safe.

use std::sync::Arc;

use super::{Backend, FileType, FileWriter, Guarantees};
use crate::error::{Error, Result};

/// Whether `name` can name a file of `tpe`: `config` for the config, 64 lowercase hex digits
/// (an id) for everything else.
pub fn valid_name(tpe: FileType, name: &str) -> bool {
    match tpe {
        FileType::Config => name == "config",
        _ => name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
    }
}

/// An error unless `name` is a [`valid_name`] of `tpe`; `location` names the store.
///
/// # Errors
/// [`crate::ErrorKind::InvalidInput`] naming the store, the type and the name.
pub fn check_name(tpe: FileType, name: &str, location: &str) -> Result<()> {
    if valid_name(tpe, name) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{name:?} is not a valid {tpe} name (64 lowercase hex digits) at {location}; \
             cairn never uses such a name"
        )))
    }
}

/// A backend whose listed and used names are checked with [`valid_name`].
pub struct CheckedBackend {
    inner: Arc<dyn Backend>,
}

impl CheckedBackend {
    /// Checks the names `inner` lists and is asked for.
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        Self { inner }
    }

    fn check(&self, tpe: FileType, name: &str) -> Result<()> {
        check_name(tpe, name, &self.inner.location())
    }
}

impl Backend for CheckedBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn guarantees(&self) -> Guarantees {
        self.inner.guarantees()
    }

    fn retries_internally(&self) -> bool {
        self.inner.retries_internally()
    }

    fn create(&self) -> Result<()> {
        self.inner.create()
    }

    fn list(&self, tpe: FileType) -> Result<Vec<(String, u64)>> {
        let mut listed = self.inner.list(tpe)?;
        listed.retain(|(name, _)| {
            let ok = valid_name(tpe, name);
            if !ok {
                tracing::warn!(
                    "{} lists a {tpe} named {name:?}, which is not a name cairn writes; it is ignored",
                    self.inner.location()
                );
            }
            ok
        });
        Ok(listed)
    }

    fn read(&self, tpe: FileType, name: &str) -> Result<Vec<u8>> {
        self.check(tpe, name)?;
        self.inner.read(tpe, name)
    }

    fn read_range(&self, tpe: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.check(tpe, name)?;
        self.inner.read_range(tpe, name, offset, length)
    }

    fn read_tree_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.check(FileType::Pack, name)?;
        self.inner.read_tree_range(name, offset, length)
    }

    fn write(&self, tpe: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.check(tpe, name)?;
        self.inner.write(tpe, name, data)
    }

    /// Streamed packs are named by the engine (the hash of their bytes), not by the store.
    fn writer(&self, tpe: FileType) -> Result<Option<Box<dyn FileWriter>>> {
        self.inner.writer(tpe)
    }

    fn remove_leftovers(&self) -> Result<u64> {
        self.inner.remove_leftovers()
    }

    fn connections(&self) -> usize {
        self.inner.connections()
    }

    fn pack_writers(&self) -> usize {
        self.inner.pack_writers()
    }

    fn remove(&self, tpe: FileType, name: &str) -> Result<()> {
        self.check(tpe, name)?;
        self.inner.remove(tpe, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ids_and_config_are_names() {
        let id = "0123456789abcdef".repeat(4);
        assert!(valid_name(FileType::Snapshot, &id));
        assert!(valid_name(FileType::Config, "config"));
        for bad in [
            "/dev/zero",
            "../..",
            "..",
            "",
            "config",
            &id[..63],
            &format!("{id}0"),
            &id.to_uppercase(),
            &format!("../{}", &id[3..]),
        ] {
            assert!(!valid_name(FileType::Key, bad), "{bad}");
        }
        assert!(!valid_name(FileType::Config, &id));
        let e = check_name(FileType::Lock, "../x", "memory").unwrap_err();
        assert!(e.to_string().contains("\"../x\"") && e.to_string().contains("memory"));
    }
}
