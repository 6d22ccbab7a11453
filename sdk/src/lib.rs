//! Write cairn plugins in Rust.
//!
//! A cairn plugin is a WebAssembly component (target `wasm32-wasip2`) that implements one world
//! of the `cairn:plugin` WIT package in `wit/`. This crate hides the generated bindings: a
//! storage backend is one impl of [`storage::Storage`] and one [`export_storage!`] line.
//!
//! ```no_run
//! use std::cell::RefCell;
//! use std::collections::BTreeMap;
//!
//! use cairn_sdk::storage::{Entry, Guarantees, Kind, Storage};
//! use cairn_sdk::{Config, Error, Result, log};
//!
//! /// Keeps files in the guest's memory (a toy: it forgets them when the host drops it).
//! struct Memory {
//!     files: RefCell<BTreeMap<(u8, String), Vec<u8>>>,
//! }
//!
//! impl Storage for Memory {
//!     fn open(config: Config) -> Result<Self> {
//!         log::info(&format!("opening with {} settings", config.len()));
//!         Ok(Memory { files: RefCell::default() })
//!     }
//!
//!     fn guarantees(&self) -> Guarantees {
//!         Guarantees { atomic_create: true }
//!     }
//!
//!     fn create(&self) -> Result<()> {
//!         Ok(())
//!     }
//!
//!     fn list(&self, kind: Kind) -> Result<Vec<Entry>> {
//!         let files = self.files.borrow();
//!         Ok(files
//!             .iter()
//!             .filter(|((k, _), _)| *k == kind as u8)
//!             .map(|((_, name), data)| Entry { name: name.clone(), size: data.len() as u64 })
//!             .collect())
//!     }
//!
//!     fn read(&self, kind: Kind, name: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
//!         let files = self.files.borrow();
//!         let data = files
//!             .get(&(kind as u8, name.to_owned()))
//!             .ok_or_else(|| Error::NotFound(format!("{name} does not exist")))?;
//!         Ok(cairn_sdk::storage::slice(data, offset, length).to_vec())
//!     }
//!
//!     fn write(&self, kind: Kind, name: &str, data: Vec<u8>) -> Result<()> {
//!         let mut files = self.files.borrow_mut();
//!         let key = (kind as u8, name.to_owned());
//!         if files.contains_key(&key) {
//!             return Err(Error::AlreadyExists(format!("{name} exists")));
//!         }
//!         files.insert(key, data);
//!         Ok(())
//!     }
//!
//!     fn remove(&self, kind: Kind, name: &str) -> Result<()> {
//!         match self.files.borrow_mut().remove(&(kind as u8, name.to_owned())) {
//!             Some(_) => Ok(()),
//!             None => Err(Error::NotFound(format!("{name} does not exist"))),
//!         }
//!     }
//! }
//!
//! cairn_sdk::export_storage!(Memory);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate type `cdylib`), write a
//! `plugin.toml` next to it and `cairn plugin install` it: docs/PLUGINS.md walks through it.
//!
//! Features: `storage` (default) for the storage-backend world, `discovery` for the
//! volume-discovery world ([`discovery`]), `hook` for the hook world ([`hook`]), `http` for
//! [`http`], a small blocking client over `wasi:http` that reaches only the authorities the
//! operator granted.

mod config;
#[cfg(feature = "discovery")]
pub mod discovery;
#[cfg(feature = "hook")]
pub mod hook;
#[cfg(feature = "http")]
pub mod http;
pub mod log;
#[cfg(feature = "storage")]
pub mod storage;

pub use config::Config;

/// What every world shares (`types`, `log`), generated once so that all worlds use one
/// [`Error`]; each world's bindings refer to these.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "cairn:plugin/common@0.1.0",
        default_bindings_module: "cairn_sdk::bindings",
    });
}

/// The error every plugin operation returns: one case per way to fail, each with a message
/// for people that names the object or setting and never contains a secret.
pub use bindings::cairn::plugin::types::Error;

/// The result of a plugin operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
