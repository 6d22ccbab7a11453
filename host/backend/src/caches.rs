//! The caches under a cache root (`cairn cache`): one directory per repository location,
//! named by the BLAKE3 hash of the location (so the root names no location), each touched
//! when a command opens it; listed with their size and last use, and removed when old.
//!
//! The root may hold anything a local user put there: only directories named by a 64-digit
//! hex hash are counted as caches, sizes are summed without following a link, and removal
//! takes such a directory (not a link) away without following links inside it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use cairn_repo::{Error, Id, Result};

/// One repository's cache.
#[derive(Debug, Clone)]
pub struct CacheDir {
    /// Its name: the hash of the repository location.
    pub id: String,
    /// Where it is.
    pub path: PathBuf,
    /// When a command last opened it (the directory's modification time).
    pub last_used: SystemTime,
    /// Bytes in its files, when asked for.
    pub size: Option<u64>,
}

/// The cache directory name of repository `location`.
pub fn id_of(location: &str) -> String {
    Id::hash_of(location.as_bytes()).to_hex()
}

/// A cache's name is an id's hex (what [`id_of`] makes).
fn is_cache_name(name: &str) -> bool {
    name.parse::<Id>().is_ok()
}

/// The caches under `root`, most recently used first (none when `root` does not exist).
///
/// # Errors
/// When `root` cannot be read.
pub fn list(root: &Path, sizes: bool) -> Result<Vec<CacheDir>> {
    let entries = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::io(
                format!("cannot read the cache {}", root.display()),
                e,
            ));
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = entry.metadata() else { continue };
        if !is_cache_name(&name) || !meta.is_dir() {
            continue;
        }
        let path = entry.path();
        out.push(CacheDir {
            size: sizes.then(|| size_of(&path, 0)),
            last_used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            id: name,
            path,
        });
    }
    out.sort_by(|a, b| b.last_used.cmp(&a.last_used).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// Bytes in the regular files below `dir`, links not followed, at most 8 levels down (the
/// cache's own layout is two).
fn size_of(dir: &Path, depth: usize) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_file() => m.len(),
            Ok(m) if m.is_dir() && depth < 8 => size_of(&e.path(), depth + 1),
            _ => 0,
        })
        .sum()
}

/// Removes cache `id` under `root`.
///
/// # Errors
/// When `id` is not a cache's name, or it cannot be removed.
pub fn remove(root: &Path, id: &str) -> Result<()> {
    if !is_cache_name(id) {
        return Err(Error::invalid(format!("`{id}` is not a cache")));
    }
    let path = root.join(id);
    // Not a link: `remove_dir_all` would remove the link only, but say so plainly.
    match fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(&path)
            .map_err(|e| Error::io(format!("cannot remove the cache {}", path.display()), e)),
        Ok(_) => Err(Error::invalid(format!(
            "{} is not a directory; remove it by hand",
            path.display()
        ))),
        Err(e) => Err(Error::io(format!("cannot read {}", path.display()), e)),
    }
}

/// Marks the cache at `dir` as used now (best effort: a cache that cannot be touched is
/// only listed as older).
pub(crate) fn touch(dir: &Path) {
    if let Ok(f) = fs::File::open(dir) {
        let _ = f.set_modified(SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lists_only_cache_directories_and_removes_without_following_links() {
        let root = tempfile::tempdir().unwrap();
        let a = root.path().join(id_of("/srv/a"));
        let b = root.path().join(id_of("/srv/b"));
        fs::create_dir_all(a.join("snapshots")).unwrap();
        fs::write(a.join("snapshots/x"), [0u8; 100]).unwrap();
        fs::create_dir_all(&b).unwrap();
        fs::write(b.join("f"), [0u8; 7]).unwrap();
        // Outside the root, linked from inside a cache and from the root.
        let victim = tempfile::tempdir().unwrap();
        fs::write(victim.path().join("keep"), [0u8; 1000]).unwrap();
        std::os::unix::fs::symlink(victim.path(), a.join("link")).unwrap();
        std::os::unix::fs::symlink(victim.path(), root.path().join("0".repeat(64))).unwrap();
        fs::create_dir_all(root.path().join("compiled")).unwrap();
        let old = fs::File::open(&b).unwrap();
        old.set_modified(SystemTime::now() - Duration::from_secs(86_400 * 40))
            .unwrap();

        let caches = list(root.path(), true).unwrap();
        let ids: Vec<&str> = caches.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, [id_of("/srv/a"), id_of("/srv/b")]);
        assert_eq!(caches[0].size, Some(100), "the link is not followed");
        assert_eq!(caches[1].size, Some(7));

        remove(root.path(), &id_of("/srv/a")).unwrap();
        assert!(!a.exists());
        assert!(victim.path().join("keep").exists());
        assert!(remove(root.path(), &"0".repeat(64)).is_err());
        assert!(victim.path().join("keep").exists());
        assert!(remove(root.path(), "../x").is_err());
    }
}
