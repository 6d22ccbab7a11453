//! cairn-plugin-host: runs cairn plugins.
//!
//! A plugin is a WebAssembly component implementing one world of the `cairn:plugin` package
//! (`wit/`), with a manifest ([`Manifest`]) naming what it requests. The operator's
//! [`Grants`] decide what it gets; [`Runtime`] compiles it once (cached on disk), checks its
//! world and imports, and runs every call in a fresh sandbox holding only the granted
//! capabilities, under a memory cap, a CPU budget and a wall-clock timeout. [`PluginStore`]
//! keeps installed plugins by digest; [`PluginBackend`] is a repository store backed by a
//! storage-backend plugin, usable by every engine operation.
//!
//! Dependencies flow one way: this crate uses the engine (`cairn-repo`), never the reverse.

mod bindings;
pub mod catalog;
pub mod compiled_cache;
pub mod discovery;
mod epoch;
pub mod grants;
pub mod hooks;
pub mod manifest;
mod runtime;
mod sandbox;
pub mod storage;
pub mod world;

pub use catalog::{Builtin, Builtins, Install, Installed, PluginStore, Source};
pub use compiled_cache::CompiledCache;
pub use discovery::{Target, VolumeKind, discover};
pub use grants::{Capabilities, DirGrant, GrantedDir, Grants, Limits};
pub use hooks::{HookContext, Phase, Report, SinkFile, Sinks, run_hook};
pub use manifest::{Access, Manifest};
pub use runtime::{Plugin, Runtime, digest};
pub use storage::PluginBackend;
pub use world::World;
