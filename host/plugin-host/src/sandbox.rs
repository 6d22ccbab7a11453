//! What one plugin instance runs in: a store state built from nothing but its capabilities.
//!
//! Each capability is a context the way wasmtime's WASI ones are: WASI (no environment, no
//! arguments, no inherited stdio, no sockets, only the granted preopens), `wasi:http` (only the
//! granted authorities, refused before a socket opens), the `log` interface (into `tracing`,
//! tagged with the plugin's name), and a memory cap over all of the instance's linear memories.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Result as WasmResult};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use cairn_repo::{Error, Result};

use crate::grants::{Capabilities, url_authority};
use crate::manifest::Access;

/// How much of a guest's stdout and stderr is kept for error messages.
const OUTPUT_KEPT: usize = 64 << 10;
/// The longest log message passed on.
const LOG_MESSAGE_MAX: usize = 4 << 10;

/// The marker error a trap carries when the memory cap stopped a guest.
#[derive(Debug)]
pub(crate) struct MemoryExceeded(pub(crate) u64);

impl std::fmt::Display for MemoryExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exceeded its memory limit of {} MiB", self.0 >> 20)
    }
}

impl std::error::Error for MemoryExceeded {}

/// The marker error a trap carries when the CPU budget of a call ran out.
#[derive(Debug)]
pub(crate) struct CpuExceeded(pub(crate) std::time::Duration);

impl std::fmt::Display for CpuExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "used more than its CPU limit of {} ms in one call",
            self.0.as_millis()
        )
    }
}

impl std::error::Error for CpuExceeded {}

/// Caps the sum of all linear memories of a store (a component may have several; wasmtime's
/// `StoreLimits` would cap each one apart).
pub(crate) struct MemoryCap {
    limit: u64,
    used: u64,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> WasmResult<bool> {
        let grow = (desired as u64).saturating_sub(current as u64);
        if self.used.saturating_add(grow) > self.limit {
            return Err(wasmtime::Error::new(MemoryExceeded(self.limit)));
        }
        self.used += grow;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> WasmResult<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// Lets `wasi:http` reach the granted authorities and nothing else.
pub(crate) struct AllowList {
    authorities: Vec<String>,
    plugin: Arc<str>,
}

impl WasiHttpHooks for AllowList {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        let authority = request
            .uri()
            .scheme_str()
            .zip(request.uri().authority())
            .and_then(|(scheme, a)| url_authority(&format!("{scheme}://{a}")).ok());
        let allowed = authority
            .as_ref()
            .is_some_and(|a| self.authorities.contains(a));
        if !allowed {
            tracing::warn!(
                plugin = %self.plugin,
                authority = authority.as_deref().unwrap_or("(none)"),
                "refused an HTTP request to an authority not granted to the plugin"
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        wasmtime_wasi_http::default_hooks().send_request(request, options, fut)
    }
}

/// The state of one plugin instance's store.
pub(crate) struct State {
    pub(crate) plugin: Arc<str>,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: AllowList,
    pub(crate) table: ResourceTable,
    /// Where a hook's sink files go (none: `sink.open` is denied).
    pub(crate) sinks: Option<Arc<dyn crate::hooks::Sinks>>,
    pub(crate) memory: MemoryCap,
    output: MemoryOutputPipe,
    /// Set when the caller stopped waiting for the current call: the guest traps as soon as
    /// it runs again, and sinks refuse it.
    pub(crate) abandoned: Arc<AtomicBool>,
    /// Epoch ticks spent in guest code during the current call, and the budget.
    pub(crate) ticks: u64,
    pub(crate) tick_budget: u64,
    /// Keeps the epoch advancing while this store lives (set by the runtime).
    pub(crate) ticking: Option<crate::epoch::Ticking>,
}

impl State {
    /// A state holding exactly `caps`. With `inline_blocking`, the guest's file calls run on
    /// the thread that runs the guest instead of hopping to tokio's blocking pool and back
    /// for each: only for a guest on a thread of its own that its caller can abandon (see
    /// [`crate::runtime::one_shot`]), since nothing else on that thread runs meanwhile.
    ///
    /// # Errors
    /// When a granted directory cannot be opened.
    pub(crate) fn new(
        plugin: Arc<str>,
        caps: &Capabilities,
        inline_blocking: bool,
    ) -> Result<State> {
        let output = MemoryOutputPipe::new(OUTPUT_KEPT);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(output.clone())
            .stderr(output.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            // Discovery over thousands of directories was mostly blocking-pool hops (2.07 s →
            // 0.39 s on 2,000 pods inline). Never with HTTP: a guest blocked on a body would
            // hold back the connection's own task on that thread (a streamed export took 30 %
            // longer).
            .allow_blocking_current_thread(inline_blocking && caps.http.is_empty());
        for dir in &caps.dirs {
            let perms = match dir.access {
                Access::ReadOnly => FsPerms::ReadOnly,
                Access::ReadWrite => FsPerms::ReadWrite,
            };
            wasi.preopened_dir(dir.host_path(), &dir.mount, perms)
                .map_err(|e| {
                    Error::invalid(format!(
                        "cannot give plugin `{plugin}` the directory {}: {e}",
                        dir.real.display()
                    ))
                })?;
        }
        Ok(State {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: AllowList {
                authorities: caps.http.clone(),
                plugin: plugin.clone(),
            },
            table: ResourceTable::new(),
            sinks: None,
            memory: MemoryCap {
                limit: caps.limits.memory,
                used: 0,
            },
            output,
            abandoned: Arc::new(AtomicBool::new(false)),
            ticks: 0,
            tick_budget: u64::MAX,
            ticking: None,
            plugin,
        })
    }

    /// What the guest last said on stdout or stderr: a Rust panic's message (the line after
    /// `panicked at …`) when there is one, else the last line.
    pub(crate) fn last_output(&self) -> Option<String> {
        let bytes = self.output.contents();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let panic = lines
            .iter()
            .rposition(|l| l.contains("panicked at"))
            .map(|i| {
                lines[i..]
                    .iter()
                    .take(2)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ")
            });
        panic
            .or_else(|| lines.last().map(|l| (*l).to_owned()))
            .map(|l| l.chars().take(500).collect())
    }

    /// Passes a guest's log message to `tracing`.
    pub(crate) fn log(&self, level: tracing::Level, message: &str) {
        let message: String = message.chars().take(LOG_MESSAGE_MAX).collect();
        let plugin = &*self.plugin;
        match level {
            tracing::Level::TRACE => tracing::trace!(plugin, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(plugin, "{message}"),
            tracing::Level::INFO => tracing::info!(plugin, "{message}"),
            tracing::Level::WARN => tracing::warn!(plugin, "{message}"),
            tracing::Level::ERROR => tracing::error!(plugin, "{message}"),
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}
