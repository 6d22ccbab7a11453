//! The way into a repository: init, open (unlock a key slot), typed file access, id lookup,
//! snapshots and key slots.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rayon::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{
    Backend, CheckedBackend, FileType, RetryBackend, RetryCounters, RetryPolicy, RetryStats,
    read_verified,
};
use crate::crypto::MasterKey;
use crate::error::{Error, ErrorKind, Result};
use crate::format::config::{ChunkerParams, Config, FORMAT_VERSION};
use crate::format::keyfile::{KdfLimits, KdfParams, KeyFile};
use crate::format::pack::BlobLimits;
use crate::format::snapshot::Snapshot;
use crate::format::{decode_file, encode_file};
use crate::id::Id;
use crate::index::Index;

/// Who is acting: recorded in key slots, locks and snapshots. The caller supplies it (the
/// engine does not look at the environment).
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// Host name.
    pub hostname: String,
    /// User name.
    pub username: String,
}

/// Options for [`Repository::init`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct InitOptions {
    /// Chunker min/avg/max sizes; default 512 KiB / 1 MiB / 8 MiB.
    pub chunker_sizes: Option<(u32, u32, u32)>,
    /// Target pack size; default 16 MiB.
    pub pack_size: Option<u32>,
    /// Cost of the first key slot.
    pub kdf: KdfParams,
    /// Chunker parameters to copy from another repository (so that copies deduplicate).
    pub copy_chunker_params: Option<ChunkerParams>,
    /// How the new repository is used, as when opened: the KDF limits (the first key slot
    /// may cost no more than opening would try) and the retries.
    pub open: OpenOptions,
}

impl InitOptions {
    /// Sets the chunker sizes.
    #[must_use]
    pub fn chunker_sizes(mut self, sizes: Option<(u32, u32, u32)>) -> Self {
        self.chunker_sizes = sizes;
        self
    }
    /// Sets the pack size.
    #[must_use]
    pub fn pack_size(mut self, size: Option<u32>) -> Self {
        self.pack_size = size;
        self
    }
    /// Sets the KDF cost.
    #[must_use]
    pub fn kdf(mut self, kdf: KdfParams) -> Self {
        self.kdf = kdf;
        self
    }
    /// Sets the most the KDF may cost ([`OpenOptions::kdf_limits`]).
    #[must_use]
    pub fn kdf_limits(mut self, limits: KdfLimits) -> Self {
        self.open = self.open.kdf_limits(limits);
        self
    }
    /// Sets how transient store errors are retried ([`OpenOptions::retry`]).
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.open = self.open.retry(policy);
        self
    }
}

/// Options for [`Repository::open_with`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// The most a key slot's argon2id may cost for it to be tried (default
    /// [`KdfLimits::DEFAULT`]); costlier slots are skipped with a warning. Also bounds the
    /// slots [`Repository::add_key`] makes.
    pub kdf_limits: KdfLimits,
    /// How transient store errors are retried (default [`RetryPolicy::default`]).
    pub retry: RetryPolicy,
}

impl OpenOptions {
    /// Sets the KDF limits.
    #[must_use]
    pub fn kdf_limits(mut self, limits: KdfLimits) -> Self {
        self.kdf_limits = limits;
        self
    }
    /// Sets how transient store errors are retried.
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }
    /// Tries every key slot however costly (`true`: [`KdfLimits::UNLIMITED`]) or only those
    /// within [`KdfLimits::DEFAULT`].
    #[must_use]
    pub fn allow_costly_kdf(self, allow: bool) -> Self {
        self.kdf_limits(if allow {
            KdfLimits::UNLIMITED
        } else {
            KdfLimits::DEFAULT
        })
    }
}

/// How long `init` on a store without atomic create-only writes waits before it reads the
/// config back: a rival `init` that checked for the config before ours was written has that
/// long to overwrite it, and is then found out.
const INIT_SETTLE: Duration = Duration::from_secs(2);

/// Why a slot beyond `limits` is refused, for [`Repository::init`] and [`Repository::add_key`].
fn check_new_slot(kdf: &KdfParams, limits: &KdfLimits) -> Result<()> {
    match limits.exceeded_by(kdf) {
        None => Ok(()),
        Some(why) => Err(Error::invalid(format!(
            "a key slot with argon2id of {kdf} needs {why}: opening would skip it unless \
             allowed; choose a lower cost or allow costly key slots (--allow-costly-kdf)"
        ))),
    }
}

/// Stores `bytes` as `name`, the BLAKE3 hash of `bytes`, create-only. The name being taken is
/// success when what is there has that hash: the object holds these very bytes (a retried
/// write whose first try was stored gets `already exists`, as packs do).
fn write_hashed(backend: &dyn Backend, tpe: FileType, name: &str, bytes: &[u8]) -> Result<()> {
    match backend.write(tpe, name, bytes) {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let there = backend.read(tpe, name).map_err(|r| {
                r.context(format!(
                    "{tpe} {name} already exists and cannot be read back"
                ))
            })?;
            if Id::hash_of(&there).to_hex() == name {
                tracing::debug!("{tpe} {name} was already stored (a retried write)");
                Ok(())
            } else {
                Err(Error::corrupt(format!(
                    "{tpe} {name} already exists and its content does not match its name \
                     (damaged); run `cairn check`"
                )))
            }
        }
        r => r,
    }
}

/// The store as a repository uses it: names checked, and beneath that transient errors
/// retried by `policy` (counted in `retries`).
fn wrap(
    backend: Arc<dyn Backend>,
    policy: RetryPolicy,
    retries: &Arc<RetryCounters>,
) -> Arc<dyn Backend> {
    let retried = Arc::new(RetryBackend::new(backend, policy, retries.clone()));
    Arc::new(CheckedBackend::new(retried))
}

/// A key slot as listed.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// Slot id.
    pub id: String,
    /// Whether it is the slot this session opened.
    pub current: bool,
    /// Who made it and when.
    #[serde(flatten)]
    pub file: KeyFileSummary,
}

/// The public part of a key slot.
#[derive(Debug, Clone, Serialize)]
pub struct KeyFileSummary {
    /// Creation time.
    pub created: jiff::Timestamp,
    /// Host.
    pub hostname: String,
    /// User.
    pub username: String,
}

struct Inner {
    backend: Arc<dyn Backend>,
    key: MasterKey,
    key_id: String,
    config: Config,
    /// Locks taken through this repository or a clone.
    holds: crate::lock::Holds,
    kdf_limits: KdfLimits,
    retries: Arc<RetryCounters>,
}

/// An open repository. Cheap to clone.
#[derive(Clone)]
pub struct Repository {
    inner: Arc<Inner>,
}

impl Repository {
    /// Creates a new repository in an empty location, with one key slot for `password`.
    ///
    /// On a store without atomic create-only writes, the config is read back after a moment,
    /// so that of two racing `init`s the one whose config was overwritten finds out (and
    /// removes its key slot) instead of both winning silently.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the location is not empty, a parameter is out of
    /// range, or another `init` created a repository there at the same time.
    pub fn init(
        backend: Arc<dyn Backend>,
        password: &[u8],
        opts: &InitOptions,
        actor: &Actor,
    ) -> Result<Self> {
        let retries = Arc::<RetryCounters>::default();
        let backend = wrap(backend, opts.open.retry, &retries);
        let key = MasterKey::random();
        let chunker = match opts.copy_chunker_params {
            Some(p) => p,
            None => {
                let (min_size, avg_size, max_size) =
                    opts.chunker_sizes.unwrap_or(ChunkerParams::DEFAULT_SIZES);
                ChunkerParams {
                    min_size,
                    avg_size,
                    max_size,
                    seed: key.chunker_seed(),
                }
            }
        };
        let config = Config {
            version: FORMAT_VERSION,
            id: Id(rand::random()),
            chunker,
            pack_size: opts.pack_size.unwrap_or(Config::DEFAULT_PACK_SIZE),
        };
        config.validate()?;
        check_new_slot(&opts.kdf, &opts.open.kdf_limits)?;
        let slot = KeyFile::create(&key, password, opts.kdf, &actor.hostname, &actor.username)?;
        backend.create()?;
        let slot_bytes = slot.to_bytes();
        let key_id = Id::hash_of(&slot_bytes).to_hex();
        write_hashed(&*backend, FileType::Key, &key_id, &slot_bytes)?;
        let config_bytes = encode_file(&key, FileType::Config, &config);
        let read_back = match backend.write(FileType::Config, "config", &config_bytes) {
            Ok(()) if backend.guarantees().atomic_create => false,
            Ok(()) => {
                std::thread::sleep(INIT_SETTLE);
                true
            }
            // A retried write of ours, or a rival's config.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => true,
            Err(e) => return Err(e),
        };
        if read_back && backend.read(FileType::Config, "config")? != config_bytes {
            let _ = backend.remove(FileType::Key, &key_id);
            return Err(Error::invalid(format!(
                "another `cairn init` created a repository at {} at the same time, and its \
                 config is the one stored; this init did not happen: use that repository, or \
                 init in another place",
                backend.location()
            )));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                key,
                key_id,
                config,
                holds: Default::default(),
                kdf_limits: opts.open.kdf_limits,
                retries,
            }),
        })
    }

    /// Opens the repository with the first key slot that `password` unlocks, with the
    /// default [`OpenOptions`] and no way to cancel.
    ///
    /// # Errors
    /// As [`Repository::open_with`].
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Self> {
        Self::open_with(
            backend,
            password,
            &OpenOptions::default(),
            &AtomicBool::new(false),
        )
    }

    /// Opens the repository with the first key slot that `password` unlocks. Slots are tried
    /// cheapest first; a slot whose KDF costs more than `opts.kdf_limits` is skipped with a
    /// warning naming it. The key derivation stops being waited for when `cancel` is set.
    ///
    /// # Errors
    /// [`ErrorKind::RepositoryNotFound`] when there is no config, [`ErrorKind::WrongPassword`]
    /// when no slot opens (saying which slots were too costly to try),
    /// [`ErrorKind::Corrupt`] when the config or a slot is damaged,
    /// [`ErrorKind::Interrupted`] when cancelled.
    pub fn open_with(
        backend: Arc<dyn Backend>,
        password: &[u8],
        opts: &OpenOptions,
        cancel: &AtomicBool,
    ) -> Result<Self> {
        let retries = Arc::<RetryCounters>::default();
        let backend = wrap(backend, opts.retry, &retries);
        let config_bytes = match backend.read(FileType::Config, "config") {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::new(
                    ErrorKind::RepositoryNotFound,
                    format!(
                        "there is no repository at {} (create one with `cairn init`)",
                        backend.location()
                    ),
                ));
            }
            Err(e) => return Err(e),
        };
        let mut corrupt = None;
        let mut slots = Vec::new();
        let mut skipped = Vec::new();
        for (name, _) in backend.list(FileType::Key)? {
            let read = read_verified(
                &retries,
                || backend.read(FileType::Key, &name),
                |bytes| {
                    if Id::hash_of(&bytes).to_hex() == name {
                        Ok(bytes)
                    } else {
                        Err(Error::corrupt(format!(
                            "key {name} is corrupt: its content does not match its name"
                        )))
                    }
                },
            );
            let bytes = match read {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::Corrupt => {
                    corrupt = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let kf = match KeyFile::from_bytes(&name, &bytes) {
                Ok(kf) => kf,
                Err(e) => {
                    corrupt = Some(e);
                    continue;
                }
            };
            let params = kf.kdf.params;
            if let Some(why) = opts.kdf_limits.exceeded_by(&params) {
                tracing::warn!(
                    "key {name} is not tried: its argon2id asks for {params}, {why} (a slot \
                     planted by someone without the password could hang or abort cairn); if \
                     it is yours, allow costly key slots with --allow-costly-kdf"
                );
                skipped.push(name);
                continue;
            }
            slots.push((params.work(), name, kf));
        }
        slots.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (_, name, kf) in slots {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::new(
                    ErrorKind::Interrupted,
                    "opening the repository was cancelled",
                ));
            }
            match kf.open_cancellable(password, cancel) {
                Ok(key) => {
                    let config: Config =
                        match decode_file(&key, FileType::Config, "config", &config_bytes) {
                            Ok(c) => c,
                            // Read again: a garbled answer is not a damaged config.
                            Err(e) if e.kind() == ErrorKind::Corrupt => {
                                retries.note_reread();
                                read_verified(
                                    &retries,
                                    || backend.read(FileType::Config, "config"),
                                    |b| decode_file(&key, FileType::Config, "config", &b),
                                )?
                            }
                            Err(e) => return Err(e),
                        };
                    config
                        .validate()
                        .map_err(|e| Error::corrupt(e.to_string()).context("config"))?;
                    return Ok(Self {
                        inner: Arc::new(Inner {
                            backend,
                            key,
                            key_id: name,
                            config,
                            holds: Default::default(),
                            kdf_limits: opts.kdf_limits,
                            retries,
                        }),
                    });
                }
                Err(e) if e.kind() == ErrorKind::WrongPassword => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => return Err(e),
                Err(e) => corrupt = Some(e.context(format!("key {name}"))),
            }
        }
        Err(corrupt.unwrap_or_else(|| {
            let untried = if skipped.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} key slot(s) too costly to try were skipped: {}; allow them with \
                     --allow-costly-kdf)",
                    skipped.len(),
                    skipped.join(", ")
                )
            };
            Error::new(
                ErrorKind::WrongPassword,
                format!(
                    "wrong password for the repository at {}{untried}",
                    backend.location()
                ),
            )
        }))
    }

    /// Fails when a lock taken on this repository (or a clone) is lost: not refreshed in time
    /// (the process was suspended, the store unreachable) or removed by another process. Then
    /// others may already act as if nobody held it, so operations call this before changes
    /// that only the lock makes safe (saving a snapshot, deleting). Without a lock it succeeds.
    ///
    /// # Errors
    /// [`ErrorKind::Locked`] saying why the lock is lost.
    pub fn check_lock(&self) -> Result<()> {
        self.inner.holds.check()
    }

    pub(crate) fn holds(&self) -> &crate::lock::Holds {
        &self.inner.holds
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// The master key.
    pub fn key(&self) -> &MasterKey {
        &self.inner.key
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The largest blobs this repository may hold (from its config).
    pub fn blob_limits(&self) -> BlobLimits {
        BlobLimits::of(&self.inner.config)
    }

    /// The id of the key slot this session opened.
    pub fn key_id(&self) -> &str {
        &self.inner.key_id
    }

    /// Encodes and stores a metadata file; returns its id. Finding the name taken by the same
    /// bytes (a retried write) is success.
    ///
    /// # Errors
    /// Backend errors; [`ErrorKind::Corrupt`] when the name holds other bytes.
    pub fn save_file<T: Serialize>(&self, tpe: FileType, value: &T) -> Result<Id> {
        let bytes = encode_file(self.key(), tpe, value);
        let id = Id::hash_of(&bytes);
        write_hashed(&**self.backend(), tpe, &id.to_hex(), &bytes)?;
        Ok(id)
    }

    /// Loads, verifies and decodes a metadata file.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`], or [`ErrorKind::Corrupt`] naming the file.
    pub fn load_file<T: DeserializeOwned>(&self, tpe: FileType, id: &Id) -> Result<T> {
        let name = id.to_hex();
        self.read_verified(
            || self.backend().read(tpe, &name),
            |bytes| {
                if Id::hash_of(&bytes) != *id {
                    return Err(Error::corrupt(format!(
                        "{tpe} {name} is corrupt: its content does not match its name"
                    )));
                }
                decode_file(self.key(), tpe, &name, &bytes)
            },
        )
    }

    /// Reads with `fetch` and checks with `verify`, reading again a few times while either
    /// reports [`ErrorKind::Corrupt`] (a short read from a flaky store is not damage).
    ///
    /// # Errors
    /// The last error of `fetch` or `verify`.
    pub(crate) fn read_verified<T>(
        &self,
        fetch: impl FnMut() -> Result<Vec<u8>>,
        verify: impl FnMut(Vec<u8>) -> Result<T>,
    ) -> Result<T> {
        read_verified(&self.inner.retries, fetch, verify)
    }

    /// Counts a read repeated because it failed verification (for [`Repository::retry_stats`]).
    pub(crate) fn note_reread(&self) {
        self.inner.retries.note_reread();
    }

    /// What the retry layer did so far: calls retried after transient errors, calls given up
    /// on, and reads repeated because they failed verification.
    pub fn retry_stats(&self) -> RetryStats {
        self.inner.retries.stats()
    }

    /// The one id of `tpe` that starts with `prefix`.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] or [`ErrorKind::Ambiguous`], naming the prefix.
    pub fn find_id(&self, tpe: FileType, prefix: &str) -> Result<Id> {
        let prefix = prefix.to_ascii_lowercase();
        let mut hits = self
            .backend()
            .list(tpe)?
            .into_iter()
            .filter(|(n, _)| n.starts_with(&prefix));
        match (hits.next(), hits.next()) {
            (Some((name, _)), None) => name.parse(),
            (None, _) => Err(Error::new(
                ErrorKind::NotFound,
                format!("no {tpe} has an id starting with `{prefix}`"),
            )),
            (Some(_), Some(_)) => Err(Error::new(
                ErrorKind::Ambiguous,
                format!("more than one {tpe} has an id starting with `{prefix}`; give more digits"),
            )),
        }
    }

    /// Every snapshot, oldest first.
    ///
    /// # Errors
    /// Backend errors or a corrupt snapshot (named).
    pub fn snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        let names = self.backend().list(FileType::Snapshot)?;
        let mut snaps = names
            .par_iter()
            .map(|(name, _)| {
                let id: Id = name.parse()?;
                Ok((id, self.load_file::<Snapshot>(FileType::Snapshot, &id)?))
            })
            .collect::<Result<Vec<_>>>()?;
        snaps.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(snaps)
    }

    /// The packs stored (whatever the index says), with their sizes. Names that are not ids
    /// (temporary files of other tools) are not packs.
    ///
    /// # Errors
    /// Backend errors while listing.
    pub fn packs(&self) -> Result<Vec<(Id, u64)>> {
        Ok(self
            .backend()
            .list(FileType::Pack)?
            .into_iter()
            .filter_map(|(n, size)| n.parse().ok().map(|id| (id, size)))
            .collect())
    }

    /// Loads the index of all packs.
    ///
    /// # Errors
    /// Backend errors or a corrupt index file (named).
    pub fn load_index(&self) -> Result<Index> {
        Index::load(self)
    }

    /// The key slots.
    ///
    /// # Errors
    /// Backend errors or a corrupt slot.
    pub fn keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for (name, _) in self.backend().list(FileType::Key)? {
            let kf = KeyFile::from_bytes(&name, &self.backend().read(FileType::Key, &name)?)?;
            out.push(KeyInfo {
                current: name == self.inner.key_id,
                id: name,
                file: KeyFileSummary {
                    created: kf.created,
                    hostname: kf.hostname,
                    username: kf.username,
                },
            });
        }
        out.sort_by_key(|k| k.file.created);
        Ok(out)
    }

    /// Adds a key slot for `password`; returns its id.
    ///
    /// # Errors
    /// Backend errors; [`ErrorKind::InvalidInput`] when `kdf` is beyond the KDF limits this
    /// repository was opened with.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams, actor: &Actor) -> Result<String> {
        check_new_slot(&kdf, &self.inner.kdf_limits)?;
        let kf = KeyFile::create(self.key(), password, kdf, &actor.hostname, &actor.username)?;
        let bytes = kf.to_bytes();
        let id = Id::hash_of(&bytes).to_hex();
        write_hashed(&**self.backend(), FileType::Key, &id, &bytes)?;
        Ok(id)
    }

    /// Removes a key slot. The last slot cannot be removed, nor (unless `allow_current`) the
    /// slot this session opened.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when refused, [`ErrorKind::NotFound`] when absent.
    pub fn remove_key(&self, id: &str, allow_current: bool) -> Result<()> {
        let slots = self.backend().list(FileType::Key)?;
        if !slots.iter().any(|(n, _)| n == id) {
            return Err(Error::new(ErrorKind::NotFound, format!("no key {id}")));
        }
        if slots.len() <= 1 {
            return Err(Error::invalid(format!(
                "key {id} is the last key of the repository and cannot be removed"
            )));
        }
        if id == self.inner.key_id && !allow_current {
            return Err(Error::invalid(format!(
                "key {id} is the one this command opened the repository with; \
                 open with another key to remove it"
            )));
        }
        self.backend().remove(FileType::Key, id)
    }
}
