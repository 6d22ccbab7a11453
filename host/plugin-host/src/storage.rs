//! A repository store backed by a storage-backend plugin (`-r plugin:NAME`).
//!
//! Each concurrent connection gets its own instance (store, instance, opened `store` resource),
//! kept in a pool and reused while it behaves; an instance that traps, overspends or times out
//! is dropped, and the next call gets a fresh one. The engine's threads call in synchronously;
//! each call runs on this backend's own tokio runtime.

use std::sync::{Arc, Mutex};

use wasmtime::Store;
use wasmtime::component::ResourceAny;

use cairn_repo::{Backend, Error, ErrorKind, FileType, Guarantees, Result};

use crate::bindings::wit_store::{Error as WitError, Kind};
use crate::bindings::{StorageBackend, StorageBackendPre};
use crate::grants::Capabilities;
use crate::runtime::{Plugin, Runtime, guarded};
use crate::sandbox::State;

/// One instance with its opened store.
struct Slot {
    store: Store<State>,
    bindings: StorageBackend,
    handle: ResourceAny,
}

/// A [`Backend`] whose files live wherever a storage-backend plugin puts them.
pub struct PluginBackend {
    name: Arc<str>,
    runtime: Arc<Runtime>,
    pre: StorageBackendPre<State>,
    caps: Capabilities,
    config: Vec<(String, String)>,
    pool: Mutex<Vec<Slot>>,
    guarantees: Guarantees,
    connections: usize,
    /// Always `Some` until dropped (then shut down without waiting: see [`Drop`]).
    tokio: Option<tokio::runtime::Runtime>,
}

impl Drop for PluginBackend {
    fn drop(&mut self) {
        // A guest's file call stuck in the blocking pool (its call already timed out) must not
        // hold the process at exit.
        if let Some(tokio) = self.tokio.take() {
            tokio.shutdown_background();
        }
    }
}

impl std::fmt::Debug for PluginBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Settings may hold secrets: never shown.
        f.debug_struct("PluginBackend")
            .field("name", &self.name)
            .field("capabilities", &self.caps)
            .finish_non_exhaustive()
    }
}

fn kind(tpe: FileType) -> Kind {
    match tpe {
        FileType::Config => Kind::Config,
        FileType::Key => Kind::Key,
        FileType::Snapshot => Kind::Snapshot,
        FileType::Index => Kind::Index,
        FileType::Pack => Kind::Pack,
        FileType::Lock => Kind::Lock,
    }
}

impl PluginBackend {
    /// Opens the store of `plugin` (instance `name`) with `config`, holding `caps`: one
    /// instance is made at once, so a bad configuration fails here.
    ///
    /// # Errors
    /// When `plugin` is not a storage backend, the configuration is refused, or the plugin
    /// fails to start.
    pub fn open(
        runtime: Arc<Runtime>,
        plugin: &Plugin,
        name: &str,
        config: Vec<(String, String)>,
        caps: Capabilities,
        connections: usize,
    ) -> Result<PluginBackend> {
        plugin.expect(crate::World::StorageBackend, name)?;
        let pre = StorageBackendPre::new(plugin.pre.clone()).map_err(|e| {
            Error::invalid(format!("plugin `{name}` is not a storage backend: {e:#}"))
        })?;
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-plugin")
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start the plugin runtime", e))?;
        let mut backend = PluginBackend {
            name: Arc::from(name),
            runtime,
            pre,
            caps,
            config,
            pool: Mutex::new(Vec::new()),
            guarantees: Guarantees {
                atomic_create: false,
            },
            connections: connections.max(1),
            tokio: Some(tokio),
        };
        let guarantees = backend.call("opening the store", async |store, b, h| {
            let g = b
                .cairn_plugin_store()
                .store()
                .call_guarantees(store, h)
                .await?;
            Ok(Ok(g))
        })?;
        backend.guarantees = Guarantees {
            atomic_create: guarantees.atomic_create,
        };
        Ok(backend)
    }

    /// Makes a fresh instance (store, instantiation, `open`) and drops it: what a call costs
    /// when no pooled instance is free. For the benchmark.
    ///
    /// # Errors
    /// When the plugin fails to start.
    #[doc(hidden)]
    pub fn fresh_instance(&self) -> Result<()> {
        self.block_on(self.new_slot()).map(drop)
    }

    /// The capabilities this instance holds.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn new_slot(&self) -> Result<Slot> {
        // The engine's thread waits in `block_on`: a guest blocked in a file call there would
        // keep the wall-clock timeout from firing, so file calls go to the blocking pool.
        let mut store = self.runtime.store(self.name.clone(), &self.caps, false)?;
        let limits = self.caps.limits;
        let (bindings, opened) = guarded(&mut store, &limits, "start-up", async |store| {
            let bindings = self.pre.instantiate_async(&mut *store).await?;
            let opened = bindings
                .cairn_plugin_store()
                .store()
                .call_open(&mut *store, &self.config)
                .await?;
            Ok((bindings, opened))
        })
        .await?;
        let handle = opened.map_err(|e| self.error("opening the store", e))?;
        Ok(Slot {
            store,
            bindings,
            handle,
        })
    }

    /// Runs `op` on a pooled (or new) instance under the plugin's limits.
    fn call<R>(
        &self,
        what: &str,
        op: impl AsyncFnOnce(
            &mut Store<State>,
            &StorageBackend,
            ResourceAny,
        ) -> wasmtime::Result<std::result::Result<R, WitError>>,
    ) -> Result<R> {
        self.block_on(async {
            let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut slot = match pooled {
                Some(slot) => slot,
                None => self.new_slot().await?,
            };
            let limits = self.caps.limits;
            let Slot {
                store,
                bindings,
                handle,
            } = &mut slot;
            let handle = *handle;
            let outcome = guarded(store, &limits, what, async |store| {
                op(store, bindings, handle).await
            })
            .await;
            // A slot that failed at the wasm level (trap, limit, timeout) is dropped.
            let answer = outcome?;
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < self.connections {
                pool.push(slot);
            }
            answer.map_err(|e| self.error(what, e))
        })
    }

    fn block_on<R>(&self, f: impl Future<Output = Result<R>>) -> Result<R> {
        match &self.tokio {
            Some(tokio) => tokio.block_on(f),
            None => Err(Error::new(
                ErrorKind::Backend,
                "the plugin backend is shut down",
            )),
        }
    }

    fn error(&self, what: &str, e: WitError) -> Error {
        plugin_error(&self.name, what, e)
    }
}

/// A plugin's error as the engine's, naming the plugin and what it was doing.
pub(crate) fn plugin_error(plugin: &str, what: &str, e: WitError) -> Error {
    let (kind, msg) = match e {
        WitError::NotFound(m) => (ErrorKind::NotFound, m),
        WitError::AlreadyExists(m) => (ErrorKind::AlreadyExists, m),
        WitError::Denied(m) => (ErrorKind::Denied, m),
        WitError::InvalidConfig(m) => (ErrorKind::InvalidInput, m),
        WitError::Unavailable(m) | WitError::Other(m) => (ErrorKind::Backend, m),
    };
    Error::new(kind, format!("plugin `{plugin}` {what}: {msg}"))
}

impl Backend for PluginBackend {
    fn location(&self) -> String {
        format!("plugin:{}", self.name)
    }

    fn guarantees(&self) -> Guarantees {
        self.guarantees
    }

    fn create(&self) -> Result<()> {
        self.call("creating the repository", async |store, b, h| {
            b.cairn_plugin_store().store().call_create(store, h).await
        })
        .map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists => Error::invalid(e.to_string()),
            _ => e,
        })
    }

    fn list(&self, tpe: FileType) -> Result<Vec<(String, u64)>> {
        let entries = self.call(&format!("listing {}", tpe.dir()), async |store, b, h| {
            b.cairn_plugin_store()
                .store()
                .call_list_files(store, h, kind(tpe))
                .await
        })?;
        Ok(entries.into_iter().map(|e| (e.name, e.size)).collect())
    }

    fn read(&self, tpe: FileType, name: &str) -> Result<Vec<u8>> {
        self.call(&format!("reading {tpe} {name}"), async |store, b, h| {
            b.cairn_plugin_store()
                .store()
                .call_read(store, h, kind(tpe), name, 0, None)
                .await
        })
    }

    fn read_range(&self, tpe: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let what = format!("reading {tpe} {name}");
        let data = self.call(&what, async |store, b, h| {
            b.cairn_plugin_store()
                .store()
                .call_read(store, h, kind(tpe), name, offset, Some(length))
                .await
        })?;
        if data.len() as u64 != length {
            return Err(Error::corrupt(format!(
                "plugin `{}` returned {} bytes of {tpe} {name} at {offset}, not {length}",
                self.name,
                data.len()
            )));
        }
        Ok(data)
    }

    fn write(&self, tpe: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.call(&format!("writing {tpe} {name}"), async |store, b, h| {
            b.cairn_plugin_store()
                .store()
                .call_write(store, h, kind(tpe), name, data)
                .await
        })
    }

    fn connections(&self) -> usize {
        self.connections
    }

    fn remove(&self, tpe: FileType, name: &str) -> Result<()> {
        self.call(&format!("removing {tpe} {name}"), async |store, b, h| {
            b.cairn_plugin_store()
                .store()
                .call_remove(store, h, kind(tpe), name)
                .await
        })
    }
}
