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

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cairn_repo::backend::FileWriter;
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
        let id = Id::hash_of(inner.location().as_bytes());
        Self {
            dir: root.join(id.to_hex()),
            inner,
            checked: Mutex::default(),
        }
    }

    /// Where this repository's cache is.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, tpe: FileType, name: &str) -> PathBuf {
        self.dir.join(tpe.dir()).join(name)
    }

    fn get(&self, tpe: FileType, name: &str) -> Option<Vec<u8>> {
        let data = fs::read(self.path(tpe, name)).ok()?;
        (Id::hash_of(&data).to_hex() == name).then_some(data)
    }

    /// `length` bytes at `offset` of the cached tree pack `name`, if it is cached and sound.
    fn cached_range(&self, name: &str, offset: u64, length: u64) -> Option<Vec<u8>> {
        let path = self.path(FileType::Pack, name);
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
        if Id::hash_of(data).to_hex() != name {
            return;
        }
        let dir = self.dir.join(tpe.dir());
        let tmp = dir.join(format!(".tmp-{name}-{:08x}", rand::random::<u32>()));
        let ok = fs::create_dir_all(&dir).is_ok()
            && fs::write(&tmp, data).is_ok()
            && fs::rename(&tmp, dir.join(name)).is_ok();
        if !ok {
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

    fn read_tree_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
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
        let _ = fs::remove_file(self.path(tpe, name));
        self.inner.remove(tpe, name)
    }
}
