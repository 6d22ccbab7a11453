//! cairn-repo: the cairn engine.
//!
//! The repository format (`docs/FORMAT.md`), its crypto, chunker, packer and index, and one
//! module per operation under [`ops`]. It never prints, never reads the command line or the
//! environment, and never links wasmtime: callers pass options and progress callbacks, and a
//! [`Backend`] to store through.
//!
//! The way in is [`Repository`]: [`Repository::init`] or [`Repository::open`], then
//! [`Repository::to_indexed`] for operations that need the index.

pub mod backend;
pub mod buffers;
pub mod chunker;
pub mod crypto;
pub mod error;
pub mod format;
mod fsmeta;
mod fsread;
pub mod glob;
pub mod id;
pub mod index;
pub mod indexed;
pub mod lock;
pub mod ops;
pub mod packer;
pub mod repository;
pub mod select;
pub mod target_dir;

pub use backend::{Backend, FileType, Guarantees};
pub use error::{Error, ErrorKind, Result};
pub use format::config::{ChunkerParams, Config};
pub use format::keyfile::{KdfLimits, KdfParams};
pub use format::pack::{BlobType, Compression};
pub use format::snapshot::{HookRun, Snapshot, Summary};
pub use format::tree::{Name, Node, NodeKind, Tree};
pub use glob::PathPatterns;
pub use id::Id;
pub use indexed::IndexedRepository;
pub use repository::{Actor, InitOptions, OpenOptions, Repository};
pub use select::{SnapshotFilter, find_snapshot};
