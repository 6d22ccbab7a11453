//! The storage trait the engine writes through.
//!
//! A backend stores named, immutable files of a few types. It knows nothing about encryption or
//! formats; wrappers and concrete stores (local directory, object stores, plugins) implement it.
//! Every write is create-only: writing a name that exists fails with
//! [`ErrorKind::AlreadyExists`](crate::ErrorKind::AlreadyExists) and never replaces it.
//! Names from a store are not trusted: a repository reaches its store through
//! [`CheckedBackend`], which accepts only [`valid_name`]s, and beneath it [`RetryBackend`],
//! which retries transient errors.

mod checked;
mod retry;

use std::fmt;

pub use checked::{CheckedBackend, check_name, valid_name};
pub use retry::{REREADS, RetryBackend, RetryPolicy, RetryStats};
pub(crate) use retry::{RetryCounters, read_verified};

/// The HTTP request header in which a client of a REST store names the hash that names an
/// uploaded file — `blake3` for cairn's files (their names are the BLAKE3 hash of their
/// bytes) — so that a server that verifies uploads (`cairn gateway`) computes only that one.
pub const NAME_HASH_HEADER: &str = "cairn-hash";

use crate::error::Result;

/// The kinds of file in a repository. Each maps to a directory of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileType {
    /// The one `config` file.
    Config,
    /// Key slots, `keys/`.
    Key,
    /// Snapshots, `snapshots/`.
    Snapshot,
    /// Index files, `index/`.
    Index,
    /// Packs of blobs, `data/`.
    Pack,
    /// Lock files, `locks/`.
    Lock,
}

impl FileType {
    /// Every type, in the order a repository is laid out.
    pub const ALL: [FileType; 6] = [
        FileType::Config,
        FileType::Key,
        FileType::Snapshot,
        FileType::Index,
        FileType::Pack,
        FileType::Lock,
    ];

    /// The directory (or, for the config, file) name.
    pub fn dir(self) -> &'static str {
        match self {
            FileType::Config => "config",
            FileType::Key => "keys",
            FileType::Snapshot => "snapshots",
            FileType::Index => "index",
            FileType::Pack => "data",
            FileType::Lock => "locks",
        }
    }

    /// A short singular noun for messages.
    pub fn noun(self) -> &'static str {
        match self {
            FileType::Config => "config",
            FileType::Key => "key",
            FileType::Snapshot => "snapshot",
            FileType::Index => "index",
            FileType::Pack => "pack",
            FileType::Lock => "lock",
        }
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}

/// What a store promises about its writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guarantees {
    /// Create-only writes are atomic: of two racing writers of one name exactly one succeeds.
    pub atomic_create: bool,
}

/// A file being written piece by piece (a pack), named only when complete.
///
/// Dropping it without [`FileWriter::commit`] leaves nothing under any name.
pub trait FileWriter: Send {
    /// Appends bytes.
    ///
    /// # Errors
    /// When the store cannot take them.
    fn write(&mut self, data: &[u8]) -> Result<()>;

    /// Stores what was written as `name`, create-only.
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`](crate::ErrorKind::AlreadyExists) when the name is taken.
    fn commit(self: Box<Self>, name: &str) -> Result<()>;
}

/// A place that holds a repository's files.
pub trait Backend: Send + Sync + 'static {
    /// Where this is, for messages (never with credentials).
    fn location(&self) -> String;

    /// What the store guarantees.
    fn guarantees(&self) -> Guarantees;

    /// Whether the store retries transient errors itself (an object-store client with its
    /// own backoff). The engine's [`RetryBackend`] then tries each call once, so that a failure
    /// is not retried `n × m` times. Wrappers forward their inner store's answer.
    fn retries_internally(&self) -> bool {
        false
    }

    /// Prepares an empty location for a new repository.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the location is not empty.
    fn create(&self) -> Result<()>;

    /// Names and sizes of all files of a type (for [`FileType::Config`]: `config` if present).
    ///
    /// # Errors
    /// When the store cannot be listed.
    fn list(&self, tpe: FileType) -> Result<Vec<(String, u64)>>;

    /// The whole file.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) when it does not exist.
    fn read(&self, tpe: FileType, name: &str) -> Result<Vec<u8>>;

    /// The size of a file. The default looks it up in a listing; stores that can ask for one
    /// file's size override it.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) when it does not exist.
    fn size(&self, tpe: FileType, name: &str) -> Result<u64> {
        self.list(tpe)?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, size)| size)
            .ok_or_else(|| {
                crate::Error::new(
                    crate::ErrorKind::NotFound,
                    format!("{tpe} {name} does not exist"),
                )
            })
    }

    /// `length` bytes from `offset`.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound), or a short read reported as
    /// [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt).
    fn read_range(&self, tpe: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>>;

    /// As [`Backend::read_range`] on a pack of tree blobs: the metadata every listing, diff,
    /// restore and incremental backup walks. A cache in front of a remote store keeps such
    /// packs whole; everything else reads the range.
    ///
    /// # Errors
    /// As [`Backend::read_range`].
    fn read_tree_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.read_range(FileType::Pack, name, offset, length)
    }

    /// Stores a new file; never replaces one.
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`](crate::ErrorKind::AlreadyExists) when the name is taken.
    fn write(&self, tpe: FileType, name: &str, data: &[u8]) -> Result<()>;

    /// A writer that streams a new file of `tpe` into the store, when the store can do that
    /// without holding the file in memory (a local directory writes a temporary file). `None`
    /// (the default) makes the caller buffer the file and use [`Backend::write`].
    ///
    /// # Errors
    /// When the temporary file cannot be created.
    fn writer(&self, _tpe: FileType) -> Result<Option<Box<dyn FileWriter>>> {
        Ok(None)
    }

    /// Removes what interrupted writers left behind (a local directory's `.tmp-*` files) and
    /// returns how many. Prune calls it while it holds the exclusive lock, so no writer is
    /// running. Stores whose writes leave nothing behind keep the default.
    ///
    /// # Errors
    /// When the store cannot be listed or a leftover cannot be removed.
    fn remove_leftovers(&self) -> Result<u64> {
        Ok(0)
    }

    /// How many uploads to run at once (a remote store wants more than a local disk).
    fn connections(&self) -> usize {
        2
    }

    /// How many finished packs to store at once during a backup (default:
    /// [`Backend::connections`]).
    fn pack_writers(&self) -> usize {
        self.connections()
    }

    /// Removes a file.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) when it does not exist.
    fn remove(&self, tpe: FileType, name: &str) -> Result<()>;
}
