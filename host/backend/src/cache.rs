//! A local cache in front of a remote store, for what is small, immutable and read often:
//! key slots, snapshots, index files and packs of tree blobs (all named by the hash of their
//! bytes).
//!
//! A cached file is used only when its BLAKE3 hash still equals its name, so a damaged cache
//! entry is simply fetched again; the cache can be deleted at any time. A tree pack is fetched
//! whole the first time one of its trees is read, checked once per process, and then read in
//! ranges from the cache. Listings always come from the store (they are the truth) and cached
//! files the store no longer lists are dropped, so that what prune or forget removed does not
//! linger. Packs of file data are not cached.
//!
//! Names come from the store, so every name is checked ([`cairn_repo::backend::valid_name`])
//! before it is joined into a path here: a store listing `/dev/zero` or `../..` never makes
//! the cache open, write or remove a host path. The cache's directories are made 0700 and its
//! files 0600 (key slots are in it), with those modes from the start, not changed after.

use std::collections::HashSet;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cairn_repo::backend::{FileWriter, check_name};
use cairn_repo::{Backend, Error, FileType, Guarantees, Id, Result};

/// A cache wrapped around a backend.
pub struct CachedBackend {
    inner: Arc<dyn Backend>,
    dir: PathBuf,
    /// Tree packs whose cached copy this process has checked against its name.
    checked: Mutex<HashSet<String>>,
}

fn cached(tpe: FileType) -> bool {
    matches!(tpe, FileType::Key | FileType::Snapshot | FileType::Index)
}

/// Whether listings of `tpe` prune the cache (packs: the cached tree packs).
fn pruned(tpe: FileType) -> bool {
    cached(tpe) || tpe == FileType::Pack
}

impl CachedBackend {
    /// Caches `inner`'s small files under `root`, in a directory of its own per location.
    pub fn new(inner: Arc<dyn Backend>, root: &Path) -> Self {
        let dir = root.join(crate::caches::id_of(&inner.location()));
        crate::caches::touch(&dir);
        Self {
            dir,
            inner,
            checked: Mutex::default(),
        }
    }

    /// Where this repository's cache is.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `name` is cached; an error for a name cairn never writes (so that no name from
    /// the store leaves the cache directory).
    fn path(&self, tpe: FileType, name: &str) -> Result<PathBuf> {
        check_name(tpe, name, &self.inner.location())?;
        Ok(self.dir.join(tpe.dir()).join(name))
    }

    fn get(&self, tpe: FileType, name: &str) -> Option<Vec<u8>> {
        let data = fs::read(self.path(tpe, name).ok()?).ok()?;
        (Id::hash_of(&data).to_hex() == name).then_some(data)
    }

    /// Makes the directory of `tpe` (and the cache's own above it) 0700. The cache's own
    /// directory made by an older cairn with the umask's mode is narrowed too.
    fn make_dir(&self, tpe: FileType) -> std::io::Result<PathBuf> {
        if let Ok(m) = fs::metadata(&self.dir)
            && m.permissions().mode() & 0o077 != 0
        {
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))?;
        }
        let dir = self.dir.join(tpe.dir());
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        Ok(dir)
    }

    /// `length` bytes at `offset` of the cached tree pack `name`, if it is cached and sound.
    fn cached_range(&self, name: &str, offset: u64, length: u64) -> Option<Vec<u8>> {
        let path = self.path(FileType::Pack, name).ok()?;
        let checked = self.checked.lock().expect("cache lock").contains(name);
        if !checked {
            self.get(FileType::Pack, name)?;
            self.checked
                .lock()
                .expect("cache lock")
                .insert(name.to_owned());
        }
        let file = fs::File::open(path).ok()?;
        let mut buf = vec![0; usize::try_from(length).ok()?];
        file.read_exact_at(&mut buf, offset).ok()?;
        Some(buf)
    }

    fn put(&self, tpe: FileType, name: &str, data: &[u8]) {
        // Best effort: a cache that cannot be written only costs speed.
        let Ok(path) = self.path(tpe, name) else {
            return;
        };
        if Id::hash_of(data).to_hex() != name {
            return;
        }
        let Ok(dir) = self.make_dir(tpe) else {
            tracing::debug!("could not make the cache directory {}", self.dir.display());
            return;
        };
        let tmp = dir.join(format!(".tmp-{name}-{:08x}", rand::random::<u32>()));
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(data));
        if written.is_err() || fs::rename(&tmp, path).is_err() {
            let _ = fs::remove_file(&tmp);
            tracing::debug!("could not cache {tpe} {name} in {}", dir.display());
        }
    }
}

impl Backend for CachedBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn guarantees(&self) -> Guarantees {
        self.inner.guarantees()
    }

    fn connections(&self) -> usize {
        self.inner.connections()
    }

    fn retries_internally(&self) -> bool {
        self.inner.retries_internally()
    }

    fn create(&self) -> Result<()> {
        let _ = fs::remove_dir_all(&self.dir);
        self.inner.create()
    }

    fn list(&self, tpe: FileType) -> Result<Vec<(String, u64)>> {
        let listed = self.inner.list(tpe)?;
        if pruned(tpe)
            && let Ok(rd) = fs::read_dir(self.dir.join(tpe.dir()))
        {
            let names: std::collections::HashSet<&str> =
                listed.iter().map(|(n, _)| n.as_str()).collect();
            for e in rd.flatten() {
                let n = e.file_name();
                if !names.contains(n.to_string_lossy().as_ref()) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(listed)
    }

    fn read(&self, tpe: FileType, name: &str) -> Result<Vec<u8>> {
        if cached(tpe) {
            self.path(tpe, name)?;
            if let Some(data) = self.get(tpe, name) {
                return Ok(data);
            }
            let data = self.inner.read(tpe, name)?;
            self.put(tpe, name, &data);
            return Ok(data);
        }
        self.inner.read(tpe, name)
    }

    fn read_range(&self, tpe: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.inner.read_range(tpe, name, offset, length)
    }

    fn size(&self, tpe: FileType, name: &str) -> Result<u64> {
        self.inner.size(tpe, name)
    }

    fn read_tree_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.path(FileType::Pack, name)?;
        if let Some(data) = self.cached_range(name, offset, length) {
            return Ok(data);
        }
        let data = self.inner.read(FileType::Pack, name)?;
        self.put(FileType::Pack, name, &data);
        let range = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(offset + length).ok())
            .and_then(|(start, end)| data.get(start..end));
        range.map(<[u8]>::to_vec).ok_or_else(|| {
            Error::corrupt(format!(
                "pack {name} is truncated: wanted {length} bytes at offset {offset}, it has {}",
                data.len()
            ))
        })
    }

    fn write(&self, tpe: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.inner.write(tpe, name, data)?;
        if cached(tpe) {
            self.put(tpe, name, data);
        }
        Ok(())
    }

    fn writer(&self, tpe: FileType) -> Result<Option<Box<dyn FileWriter>>> {
        if cached(tpe) {
            Ok(None)
        } else {
            self.inner.writer(tpe)
        }
    }

    fn pack_writers(&self) -> usize {
        self.inner.pack_writers()
    }

    fn remove_leftovers(&self) -> Result<u64> {
        self.inner.remove_leftovers()
    }

    fn remove(&self, tpe: FileType, name: &str) -> Result<()> {
        let _ = fs::remove_file(self.path(tpe, name)?);
        self.inner.remove(tpe, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_repo::ErrorKind;
    use cairn_testing::InMemoryBackend;

    fn cache(root: &Path) -> CachedBackend {
        CachedBackend::new(Arc::new(InMemoryBackend::new()), &root.join("cache"))
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn key_slots_are_0600_in_0700_directories() {
        let root = tempfile::tempdir().unwrap();
        let c = cache(root.path());
        let slot = b"{\"a key slot\": true}";
        let name = Id::hash_of(slot).to_hex();
        c.write(FileType::Key, &name, slot).unwrap();
        let file = c.dir().join("keys").join(&name);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&c.dir().join("keys")), 0o700);
        assert_eq!(mode(c.dir()), 0o700);
        assert_eq!(c.read(FileType::Key, &name).unwrap(), slot);
    }

    /// A cache made by an older cairn with the umask's modes is narrowed on the next write.
    #[test]
    fn an_open_cache_directory_is_narrowed() {
        let root = tempfile::tempdir().unwrap();
        let c = cache(root.path());
        fs::create_dir_all(c.dir()).unwrap();
        fs::set_permissions(c.dir(), fs::Permissions::from_mode(0o755)).unwrap();
        let name = Id::hash_of(b"s").to_hex();
        c.write(FileType::Snapshot, &name, b"s").unwrap();
        assert_eq!(mode(c.dir()), 0o700);
    }

    /// A name from a hostile store never reaches a host path: removing `../../../victim`
    /// would delete a file outside the cache, reading it would read one.
    #[test]
    fn names_that_leave_the_cache_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let victim = root.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let c = cache(root.path());
        fs::create_dir_all(c.dir().join("locks")).unwrap();
        for name in ["../../../victim", victim.to_str().unwrap(), ".."] {
            let e = c.remove(FileType::Lock, name).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{name}: {e}");
            assert!(e.to_string().contains("memory"), "{e}");
            let e = c.read(FileType::Key, name).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{name}: {e}");
            let e = c.read_tree_range(name, 0, 1).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{name}: {e}");
        }
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
    }
}
