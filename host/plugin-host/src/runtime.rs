//! The one wasmtime engine, its linker, the compiled-component cache, and the guard around
//! every call into a plugin.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Config, Engine, Store, Trap, UpdateDeadline};

use cairn_repo::{Error, ErrorKind, Result};

use crate::compiled_cache::{CompiledCache, OpenCache};
use crate::epoch::Clock;
use crate::grants::{Capabilities, Limits};
use crate::manifest::Manifest;
use crate::sandbox::{CpuExceeded, MemoryExceeded, State};
use crate::world::World;

/// How often the epoch advances: the granularity of CPU limits and of yielding to tokio.
const TICK: Duration = Duration::from_millis(10);
/// How long past its wall-clock limit a one-shot call may take to report its own timeout
/// before its caller stops waiting for it.
const WALL_GRACE: Duration = Duration::from_secs(1);

/// The plugin runtime: one engine (compiled code is shared), one linker holding every host
/// interface a plugin may import, and an optional on-disk cache of compiled components.
pub struct Runtime {
    engine: Engine,
    linker: Linker<State>,
    cache: Option<OpenCache>,
    /// The engine's compatibility hash: compiled code is cached under digest and this.
    engine_hash: u64,
    /// Advances the epoch while a store exists.
    clock: Arc<Clock>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.clock.close();
    }
}

/// A plugin ready to instantiate: its manifest, its code compiled, the world it implements.
#[derive(Clone)]
pub struct Plugin {
    /// The manifest.
    pub manifest: Manifest,
    /// `sha256:` and the hex digest of the `.wasm` file.
    pub digest: String,
    /// The world its exports implement.
    pub world: World,
    /// Names of what it imports.
    pub imports: Vec<String>,
    /// Names of what it exports.
    pub exports: Vec<String>,
    /// Linked once, at load; every instance starts from it.
    pub(crate) pre: InstancePre<State>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.manifest.name)
            .field("digest", &self.digest)
            .field("world", &self.world)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Checks that this plugin (instance `name`) implements `world`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] naming the instance and both worlds.
    pub fn expect(&self, world: World, name: &str) -> Result<()> {
        if self.world == world {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "plugin `{name}` is a {} plugin, not a {world} plugin",
                self.world
            )))
        }
    }
}

/// The digest of a plugin file, as `sha256:HEX`.
pub fn digest(wasm: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(wasm)))
}

fn engine_error(what: impl std::fmt::Display, e: &wasmtime::Error) -> Error {
    Error::new(ErrorKind::Backend, format!("{what}: {e:#}"))
}

impl Runtime {
    /// A runtime whose compiled components are cached in `cache` (none: compile every time).
    /// A cache that cannot be trusted (see [`CompiledCache`]) is not used, with a warning.
    ///
    /// # Errors
    /// When the engine cannot be configured.
    pub fn new(cache: Option<CompiledCache>) -> Result<Arc<Runtime>> {
        let cache = cache.and_then(|c| {
            c.open()
                .inspect_err(|why| tracing::warn!("not caching compiled plugins: {why}"))
                .ok()
        });
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        let engine =
            Engine::new(&config).map_err(|e| engine_error("cannot start the plugin engine", &e))?;
        let weak = engine.weak();
        let clock = Clock::start(TICK, move || {
            weak.upgrade().inspect(Engine::increment_epoch).is_some()
        })?;
        let mut linker = Linker::new(&engine);
        let link = |r: wasmtime::Result<()>| r.map_err(|e| engine_error("cannot link", &e));
        link(wasmtime_wasi::p2::add_to_linker_async(&mut linker))?;
        link(wasmtime_wasi_http::p2::add_only_http_to_linker_async(
            &mut linker,
        ))?;
        link(crate::bindings::add_host_interfaces(&mut linker))?;
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Arc::new(Runtime {
            engine_hash: hasher.finish(),
            engine,
            linker,
            cache,
            clock,
        }))
    }

    /// Compiles `wasm` (or loads it from the cache), tells which world it implements, checks
    /// that it matches `manifest` and that every import is something this host provides.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the file is not a component, not of a known world, not
    /// the world its manifest names, or imports what the host does not provide.
    pub fn load(&self, wasm: &[u8], manifest: Manifest) -> Result<Plugin> {
        self.load_digested(wasm, digest(wasm), manifest)
    }

    /// [`Runtime::load`] for bytes whose digest the caller already computed.
    pub(crate) fn load_digested(
        &self,
        wasm: &[u8],
        digest: String,
        manifest: Manifest,
    ) -> Result<Plugin> {
        let name = manifest.name.clone();
        if !wasmtime::wasmparser::Parser::is_component(wasm) {
            let hint = if wasmtime::wasmparser::Parser::is_core_wasm(wasm) {
                "it is a core WebAssembly module; build for wasm32-wasip2 or wrap it with \
                 `wasm-tools component new`"
            } else {
                "it is not WebAssembly"
            };
            return Err(Error::invalid(format!(
                "plugin `{name}` is not a WebAssembly component: {hint}"
            )));
        }
        let component = self.compile(wasm, &digest)?;
        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        let world = World::detect(exports.iter().map(String::as_str))
            .map_err(|e| e.context(format!("plugin `{name}`")))?;
        if world != manifest.world() {
            return Err(Error::invalid(format!(
                "plugin `{name}`: the manifest says it is a {} plugin, but the component \
                 implements {}",
                manifest.world(),
                world
            )));
        }
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            Error::invalid(format!(
                "plugin `{name}` imports something cairn does not provide: {}",
                e.root_cause()
            ))
        })?;
        Ok(Plugin {
            manifest,
            digest,
            world,
            imports,
            exports,
            pre,
        })
    }

    fn compile(&self, wasm: &[u8], digest: &str) -> Result<Component> {
        if let Some(cache) = &self.cache {
            match cache.load(&self.engine, digest, self.engine_hash) {
                Ok(Some(component)) => return Ok(component),
                Ok(None) => {}
                Err(why) => tracing::warn!("recompiling: {why}"),
            }
        }
        let start = Instant::now();
        let component = Component::new(&self.engine, wasm)
            .map_err(|e| Error::invalid(format!("cannot compile the component: {e:#}")))?;
        tracing::debug!(digest, elapsed = ?start.elapsed(), "compiled plugin");
        if let Some(cache) = &self.cache
            && let Err(e) = cache.store(&component, digest, self.engine_hash)
        {
            tracing::warn!("cannot cache the compiled plugin {digest}: {e}");
        }
        Ok(component)
    }

    /// A fresh store holding exactly `caps`, its limits armed. `inline_blocking`: the
    /// guest's file calls block the thread that runs it (see [`State::new`]).
    pub(crate) fn store(
        &self,
        plugin: Arc<str>,
        caps: &Capabilities,
        inline_blocking: bool,
    ) -> Result<Store<State>> {
        let mut state = State::new(plugin, caps, inline_blocking)?;
        state.ticking = Some(self.clock.hold());
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.memory);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            if state.abandoned.load(Ordering::Relaxed) {
                return Err(wasmtime::Error::msg("abandoned after its wall-clock limit"));
            }
            state.ticks += 1;
            if state.ticks > state.tick_budget {
                let budget = TICK * u32::try_from(state.tick_budget).unwrap_or(u32::MAX);
                return Err(wasmtime::Error::new(CpuExceeded(budget)));
            }
            // Yielding lets the wall-clock timeout fire even while the guest computes.
            Ok(UpdateDeadline::Yield(1))
        });
        Ok(store)
    }
}

/// Runs `call` once in a fresh store for plugin instance `name` holding `caps` (after
/// `prepare` adjusted its state), under the plugin's limits: for plugins called once per
/// operation (discovery, hooks).
///
/// The call runs on a thread of its own, where the guest's file calls may block (no hop to a
/// blocking pool for each: discovery over thousands of directories is mostly such calls).
/// The caller waits at most the wall-clock limit: a guest stuck in a call that does not
/// return (a FIFO opened in a granted directory, a hung network mount) is abandoned there,
/// and traps as soon as it runs guest code again; its sinks refuse it from then on.
pub(crate) fn one_shot<R: Send + 'static>(
    runtime: &Runtime,
    name: &str,
    caps: &Capabilities,
    what: &str,
    prepare: impl FnOnce(&mut State),
    call: impl AsyncFnOnce(&mut Store<State>) -> wasmtime::Result<R> + Send + 'static,
) -> Result<R> {
    let mut store = runtime.store(Arc::from(name), caps, caps.http.is_empty())?;
    prepare(store.data_mut());
    let abandoned = store.data().abandoned.clone();
    let limits = caps.limits;
    let owned_what = what.to_owned();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("cairn-plugin-call".into())
        .spawn(move || {
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::io("cannot start the plugin runtime", e))
                .and_then(|tokio| {
                    let outcome = tokio.block_on(guarded(&mut store, &limits, &owned_what, call));
                    // Nothing of this call may outlive it (a blocking task stuck in a file).
                    tokio.shutdown_background();
                    outcome
                });
            let _ = tx.send(outcome);
        })
        .map_err(|e| Error::io("cannot start a plugin thread", e))?;
    match rx.recv_timeout(limits.wall + WALL_GRACE) {
        Ok(outcome) => outcome,
        Err(_) => {
            abandoned.store(true, Ordering::Relaxed);
            Err(wall_exceeded(name, what, &limits))
        }
    }
}

fn wall_exceeded(plugin: &str, what: &str, limits: &Limits) -> Error {
    Error::new(
        ErrorKind::Backend,
        format!(
            "plugin `{plugin}` did not finish {what} within its wall-clock limit of {} s",
            limits.wall.as_secs_f64()
        ),
    )
}

/// Runs one call into a plugin under its limits: the CPU budget (epoch ticks spent in guest
/// code) and the wall-clock timeout, which also covers a guest blocked in a host call.
///
/// `Ok(Err(_))` is a failed call after which the instance is unusable (trap, timeout).
pub(crate) async fn guarded<R>(
    store: &mut Store<State>,
    limits: &Limits,
    what: &str,
    call: impl AsyncFnOnce(&mut Store<State>) -> wasmtime::Result<R>,
) -> Result<R> {
    {
        let state = store.data_mut();
        state.ticks = 0;
        state.tick_budget = u64::try_from(limits.cpu.as_millis() / TICK.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
    }
    store.set_epoch_deadline(1);
    let outcome = tokio::time::timeout(limits.wall, call(store)).await;
    let plugin = store.data().plugin.clone();
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(describe(&plugin, what, &e, store.data(), limits)),
        Err(_) => Err(wall_exceeded(&plugin, what, limits)),
    }
}

fn describe(
    plugin: &str,
    what: &str,
    e: &wasmtime::Error,
    state: &State,
    limits: &Limits,
) -> Error {
    let prefix = format!("plugin `{plugin}` failed during {what}");
    let message = if let Some(m) = e.downcast_ref::<MemoryExceeded>() {
        format!("{prefix}: it {m}")
    } else if let Some(c) = e.downcast_ref::<CpuExceeded>() {
        format!("{prefix}: it {c}")
    } else if let Some(trap) = e.downcast_ref::<Trap>() {
        let said = state
            .last_output()
            .map(|l| format!(" (it said: {l})"))
            .unwrap_or_default();
        match trap {
            Trap::Interrupt => format!(
                "{prefix}: it was interrupted after its CPU limit of {} ms",
                limits.cpu.as_millis()
            ),
            _ => format!("{prefix}: it crashed: {trap}{said}"),
        }
    } else {
        format!("{prefix}: {}", e.root_cause())
    };
    Error::new(ErrorKind::Backend, message)
}
