//! The storage-backend world: a store for a repository's files.
//!
//! Implement [`Storage`] and export it with [`export_storage!`](crate::export_storage). The host
//! opens one store per concurrent connection and calls each from one thread at a time, so a store
//! may keep per-connection state in a `RefCell`.

use crate::{Config, Result};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "cairn:plugin/storage-backend@0.1.0",
        pub_export_macro: true,
        export_macro_name: "__export_storage_backend",
        default_bindings_module: "cairn_sdk::storage::bindings",
        with: {
            "cairn:plugin/types@0.1.0": crate::bindings::cairn::plugin::types,
            "cairn:plugin/log@0.1.0": crate::bindings::cairn::plugin::log,
        },
    });
}

use bindings::exports::cairn::plugin::store as wit;

pub use wit::{Entry, Guarantees, Kind};

/// A store for a repository's files. Every write is create-only.
pub trait Storage: Sized + 'static {
    /// Opens the store that `config` describes, without changing anything in it.
    ///
    /// # Errors
    /// `invalid-config` naming the key that is missing or wrong.
    fn open(config: Config) -> Result<Self>;

    /// What the store promises. The default promises nothing, which makes the host check
    /// before each write and warn at `init`.
    fn guarantees(&self) -> Guarantees {
        Guarantees {
            atomic_create: false,
        }
    }

    /// Prepares an empty location for a new repository.
    ///
    /// # Errors
    /// `already-exists` when the location already holds a config.
    fn create(&self) -> Result<()>;

    /// Names and sizes of every file of `kind` (for [`Kind::Config`]: `config` if it exists).
    ///
    /// # Errors
    /// When the store cannot be listed.
    fn list(&self, kind: Kind) -> Result<Vec<Entry>>;

    /// All of a file (`length` none), or `length` bytes from `offset`.
    ///
    /// # Errors
    /// `not-found` when the file does not exist.
    fn read(&self, kind: Kind, name: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>>;

    /// Stores a new file; never replaces one and never leaves a partial file under `name`.
    ///
    /// # Errors
    /// `already-exists` when `name` is taken.
    fn write(&self, kind: Kind, name: &str, data: Vec<u8>) -> Result<()>;

    /// Removes a file.
    ///
    /// # Errors
    /// `not-found` when it does not exist, `denied` when the store refuses deletes.
    fn remove(&self, kind: Kind, name: &str) -> Result<()>;
}

/// The directory (or, for the config, file) name the native layouts use for `kind`.
pub fn dir(kind: Kind) -> &'static str {
    match kind {
        Kind::Config => "config",
        Kind::Key => "keys",
        Kind::Snapshot => "snapshots",
        Kind::Index => "index",
        Kind::Pack => "data",
        Kind::Lock => "locks",
    }
}

/// `data[offset..offset + length]` clamped to `data` (a short answer is the host's to judge).
pub fn slice(data: &[u8], offset: u64, length: Option<u64>) -> &[u8] {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let end = match length {
        None => data.len(),
        Some(n) => start
            .saturating_add(usize::try_from(n).unwrap_or(usize::MAX))
            .min(data.len()),
    };
    &data[start..end]
}

#[doc(hidden)]
pub struct Adapter<T>(T);

impl<T: Storage> wit::GuestStore for Adapter<T> {
    fn open(config: Vec<(String, String)>) -> Result<wit::Store> {
        T::open(Config::from(config)).map(|s| wit::Store::new(Adapter(s)))
    }

    fn guarantees(&self) -> Guarantees {
        self.0.guarantees()
    }

    fn create(&self) -> Result<()> {
        self.0.create()
    }

    fn list_files(&self, kind: Kind) -> Result<Vec<Entry>> {
        self.0.list(kind)
    }

    fn read(&self, kind: Kind, name: String, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        self.0.read(kind, &name, offset, length)
    }

    fn write(&self, kind: Kind, name: String, data: Vec<u8>) -> Result<()> {
        self.0.write(kind, &name, data)
    }

    fn remove(&self, kind: Kind, name: String) -> Result<()> {
        self.0.remove(kind, &name)
    }
}

/// Exports a [`Storage`] implementation as the component's `cairn:plugin/store` interface.
/// Use it once, at the crate's top level: `cairn_sdk::export_storage!(MyStore);`.
#[macro_export]
macro_rules! export_storage {
    ($ty:ty) => {
        #[doc(hidden)]
        struct __CairnStorageExport;
        impl $crate::storage::bindings::exports::cairn::plugin::store::Guest
            for __CairnStorageExport
        {
            type Store = $crate::storage::Adapter<$ty>;
        }
        $crate::storage::bindings::__export_storage_backend!(
            __CairnStorageExport with_types_in $crate::storage::bindings
        );
    };
}
