//! The on-disk cache of compiled plugins: native code that the host maps and runs, so a file
//! in it is trusted only when this host wrote it.
//!
//! - Each file carries a keyed BLAKE3 MAC over the plugin's digest, the engine's compatibility
//!   hash and the compiled bytes. The key lives in the plugin store (`compiled-cache.key`,
//!   0600), not in the cache, so whoever can write the cache cannot forge an entry, nor pass
//!   one plugin's code off as another's.
//! - The cache directory and each file must belong to this user and be writable by nobody
//!   else; otherwise the cache is not used (plugins are compiled every time, with a warning).
//! - The directory is held open once checked, and every file is reached relative to it, so a
//!   directory swapped in later is never read or written.
//! - Files are read once into memory, checked, then deserialized from those same bytes (no
//!   second look at the file); new ones are written to a fresh temporary name
//!   (`O_EXCL|O_NOFOLLOW`, 0600) and renamed into place.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, unlinkat};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Larger compiled plugins are not cached (nor read back).
const MAX_COMPILED: u64 = 1 << 30;

/// Where compiled plugins are cached, and the key file that authenticates them.
#[derive(Debug, Clone)]
pub struct CompiledCache {
    dir: PathBuf,
    key_file: PathBuf,
}

/// A cache checked and keyed, ready to use: its directory held open.
pub(crate) struct OpenCache {
    dir: File,
    shown: PathBuf,
    key: [u8; 32],
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Owned by this user and writable by nobody else.
fn private(meta: &std::fs::Metadata) -> bool {
    meta.uid() == euid() && meta.mode() & 0o022 == 0
}

impl CompiledCache {
    /// Compiled plugins under `dir`, authenticated with the key in `key_file` (made on first
    /// use; keep it beside the plugin store, outside `dir`).
    pub fn new(dir: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            key_file: key_file.into(),
        }
    }

    /// Checks the directory and reads (or makes) the key; the reason when the cache cannot
    /// be trusted.
    pub(crate) fn open(&self) -> Result<OpenCache, String> {
        let dir = &self.dir;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let held = nix::fcntl::open(
            dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map(File::from)
        .map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
        let meta = held
            .metadata()
            .map_err(|e| format!("cannot inspect {}: {e}", dir.display()))?;
        if !meta.is_dir() || !private(&meta) {
            return Err(format!(
                "{} is not a directory of this user's that only it may write (mode {:o}, \
                 owner {})",
                dir.display(),
                meta.mode() & 0o7777,
                meta.uid()
            ));
        }
        Ok(OpenCache {
            dir: held,
            shown: dir.clone(),
            key: self.key()?,
        })
    }

    fn key(&self) -> Result<[u8; 32], String> {
        let path = &self.key_file;
        let shown = path.display();
        let mut key = [0u8; 32];
        match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc_flags())
            .open(path)
        {
            Ok(mut f) => {
                let meta = f
                    .metadata()
                    .map_err(|e| format!("cannot inspect {shown}: {e}"))?;
                if !meta.is_file() || !private(&meta) || meta.mode() & 0o077 != 0 {
                    return Err(format!(
                        "{shown} must be a file of this user's that only it may read (mode \
                         {:o}, owner {}): remove it to make a new one",
                        meta.mode() & 0o7777,
                        meta.uid()
                    ));
                }
                f.read_exact(&mut key)
                    .map_err(|e| format!("cannot read {shown}: {e}"))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                rand::fill(&mut key);
                if let Some(parent) = path.parent() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(parent)
                        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
                }
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc_flags())
                    .open(path)
                    .map_err(|e| format!("cannot create {shown}: {e}"))?;
                f.write_all(&key)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| format!("cannot write {shown}: {e}"))?;
            }
            Err(e) => return Err(format!("cannot open {shown}: {e}")),
        }
        Ok(key)
    }
}

fn libc_flags() -> i32 {
    OFlag::O_NOFOLLOW.bits() | OFlag::O_NONBLOCK.bits()
}

impl OpenCache {
    fn name(digest: &str, engine_hash: u64) -> String {
        let hex = digest.trim_start_matches("sha256:");
        format!("{hex}-{engine_hash:016x}.cwasm")
    }

    fn mac(&self, digest: &str, engine_hash: u64, code: &[u8]) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(digest.as_bytes());
        h.update(&[0]);
        h.update(&engine_hash.to_le_bytes());
        h.update(code);
        h.finalize()
    }

    /// The compiled plugin of `digest`, when the cache holds one this host wrote; `Err` says
    /// why one that is there was not used.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        digest: &str,
        engine_hash: u64,
    ) -> Result<Option<Component>, String> {
        let name = Self::name(digest, engine_hash);
        let path = self.shown.join(&name);
        let mut f = match openat(
            &self.dir,
            name.as_str(),
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => File::from(fd),
            Err(nix::errno::Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
        };
        let meta = f.metadata().map_err(|e| e.to_string())?;
        if !meta.is_file() || !private(&meta) || meta.len() > MAX_COMPILED || meta.len() < 32 {
            return Err(format!(
                "{} is not a file this user wrote (mode {:o}, owner {}, {} bytes)",
                path.display(),
                meta.mode() & 0o7777,
                meta.uid(),
                meta.len()
            ));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        (&mut f)
            .take(MAX_COMPILED)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let (mac, code) = bytes.split_at(32.min(bytes.len()));
        let mac: [u8; 32] = mac.try_into().map_err(|_| "short file".to_string())?;
        // blake3::Hash compares in constant time.
        if blake3::Hash::from(mac) != self.mac(digest, engine_hash, code) {
            return Err(format!(
                "{} does not carry this host's authentication for plugin {digest}",
                path.display()
            ));
        }
        deserialize(engine, code)
            .map(Some)
            .map_err(|e| format!("{}: {e:#}", path.display()))
    }

    /// Caches `component` as the compiled code of `digest`.
    pub(crate) fn store(
        &self,
        component: &Component,
        digest: &str,
        engine_hash: u64,
    ) -> std::io::Result<()> {
        let code = component.serialize().map_err(std::io::Error::other)?;
        if code.len() as u64 > MAX_COMPILED {
            return Ok(());
        }
        let name = Self::name(digest, engine_hash);
        let temp = format!(".tmp-{:016x}", rand::random::<u64>());
        let mut f = File::from(openat(
            &self.dir,
            temp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?);
        let written = f
            .write_all(self.mac(digest, engine_hash, &code).as_bytes())
            .and_then(|()| f.write_all(&code))
            .and_then(|()| {
                renameat(&self.dir, temp.as_str(), &self.dir, name.as_str()).map_err(Into::into)
            });
        if written.is_err() {
            let _ = unlinkat(&self.dir, temp.as_str(), UnlinkatFlags::NoRemoveDir);
        }
        written
    }
}

/// Loads compiled code this host wrote and authenticated.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, code: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `code` carries a MAC under a key only this user can read, over exactly these
    // bytes, the plugin's digest and the engine's hash: this host serialized it itself (never a
    // file a plugin or another user supplied), and wasmtime checks engine compatibility.
    unsafe { Component::deserialize(engine, code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache directory is held open from the check on: a directory swapped in at its
    /// path afterwards receives nothing, and what was stored is still found.
    #[test]
    fn a_cache_directory_swapped_after_the_check_is_not_used() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("compiled");
        let cache = CompiledCache::new(&dir, tmp.path().join("key"))
            .open()
            .unwrap();
        std::fs::rename(&dir, tmp.path().join("checked")).unwrap();
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();

        let engine = Engine::default();
        // The smallest component: its preamble alone.
        let component = Component::new(&engine, b"\0asm\x0d\x00\x01\x00").unwrap();
        cache.store(&component, "sha256:00", 7).unwrap();
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "nothing lands in the directory swapped in"
        );
        assert_eq!(
            std::fs::read_dir(tmp.path().join("checked"))
                .unwrap()
                .count(),
            1
        );
        assert!(cache.load(&engine, "sha256:00", 7).unwrap().is_some());
    }
}
