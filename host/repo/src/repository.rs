//! The way into a repository: init, open (unlock a key slot), typed file access, id lookup,
//! snapshots and key slots.

use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Backend, FileType};
use crate::crypto::MasterKey;
use crate::error::{Error, ErrorKind, Result};
use crate::format::config::{ChunkerParams, Config, FORMAT_VERSION};
use crate::format::keyfile::{KdfParams, KeyFile};
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
}

/// An open repository. Cheap to clone.
#[derive(Clone)]
pub struct Repository {
    inner: Arc<Inner>,
}

impl Repository {
    /// Creates a new repository in an empty location, with one key slot for `password`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the location is not empty or a parameter is out of range.
    pub fn init(
        backend: Arc<dyn Backend>,
        password: &[u8],
        opts: &InitOptions,
        actor: &Actor,
    ) -> Result<Self> {
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
        let slot = KeyFile::create(&key, password, opts.kdf, &actor.hostname, &actor.username)?;
        backend.create()?;
        let slot_bytes = slot.to_bytes();
        let key_id = Id::hash_of(&slot_bytes).to_hex();
        backend.write(FileType::Key, &key_id, &slot_bytes)?;
        backend.write(
            FileType::Config,
            "config",
            &encode_file(&key, FileType::Config, &config),
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                key,
                key_id,
                config,
            }),
        })
    }

    /// Opens the repository with the first key slot that `password` unlocks.
    ///
    /// # Errors
    /// [`ErrorKind::RepositoryNotFound`] when there is no config, [`ErrorKind::WrongPassword`]
    /// when no slot opens, [`ErrorKind::Corrupt`] when the config or a slot is damaged.
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Self> {
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
        let mut slots = backend.list(FileType::Key)?;
        slots.sort();
        let mut corrupt = None;
        for (name, _) in &slots {
            let bytes = backend.read(FileType::Key, name)?;
            if Id::hash_of(&bytes).to_hex() != *name {
                corrupt = Some(Error::corrupt(format!(
                    "key {name} is corrupt: its content does not match its name"
                )));
                continue;
            }
            let opened = KeyFile::from_bytes(name, &bytes).and_then(|kf| kf.open(password));
            match opened {
                Ok(key) => {
                    let config: Config =
                        decode_file(&key, FileType::Config, "config", &config_bytes)?;
                    config
                        .validate()
                        .map_err(|e| Error::corrupt(e.to_string()).context("config"))?;
                    return Ok(Self {
                        inner: Arc::new(Inner {
                            backend,
                            key,
                            key_id: name.clone(),
                            config,
                        }),
                    });
                }
                Err(e) if e.kind() == ErrorKind::WrongPassword => {}
                Err(e) => corrupt = Some(e),
            }
        }
        Err(corrupt.unwrap_or_else(|| {
            Error::new(
                ErrorKind::WrongPassword,
                format!(
                    "wrong password for the repository at {}",
                    backend.location()
                ),
            )
        }))
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

    /// The id of the key slot this session opened.
    pub fn key_id(&self) -> &str {
        &self.inner.key_id
    }

    /// Encodes and stores a metadata file; returns its id.
    ///
    /// # Errors
    /// Backend errors.
    pub fn save_file<T: Serialize>(&self, tpe: FileType, value: &T) -> Result<Id> {
        let bytes = encode_file(self.key(), tpe, value);
        let id = Id::hash_of(&bytes);
        match self.backend().write(tpe, &id.to_hex(), &bytes) {
            // The name is the hash of the bytes, so a file of this name holds these very bytes:
            // what a store answers when a retried write finds its first attempt landed.
            Ok(()) => Ok(id),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(id),
            Err(e) => Err(e),
        }
    }

    /// Loads, verifies and decodes a metadata file.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`], or [`ErrorKind::Corrupt`] naming the file.
    pub fn load_file<T: DeserializeOwned>(&self, tpe: FileType, id: &Id) -> Result<T> {
        let name = id.to_hex();
        let bytes = self.backend().read(tpe, &name)?;
        if Id::hash_of(&bytes) != *id {
            return Err(Error::corrupt(format!(
                "{tpe} {name} is corrupt: its content does not match its name"
            )));
        }
        decode_file(self.key(), tpe, &name, &bytes)
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
    /// Backend errors.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams, actor: &Actor) -> Result<String> {
        let kf = KeyFile::create(self.key(), password, kdf, &actor.hostname, &actor.username)?;
        let bytes = kf.to_bytes();
        let id = Id::hash_of(&bytes).to_hex();
        self.backend().write(FileType::Key, &id, &bytes)?;
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
