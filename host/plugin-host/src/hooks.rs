//! Running a hook plugin for one phase of one app, and the sink through which it adds files
//! to the app's backup.
//!
//! The host decides where sink files go ([`Sinks`]); the plugin only writes bytes. A file is
//! kept only when the plugin finishes it: one dropped unfinished is aborted.

use std::sync::Arc;

use wasmtime::component::Resource;

use cairn_repo::{Error, Result};

use crate::bindings::cairn::plugin::types::Error as WitError;
use crate::bindings::hook::cairn::plugin::sink::{Host as SinkHost, HostFileSink};
use crate::bindings::hook::exports::cairn::plugin::hooks as wit;
use crate::bindings::hook::{Hook, HookPre};
use crate::grants::Capabilities;
use crate::runtime::{Plugin, Runtime, one_shot};
use crate::sandbox::State;
use crate::world::World;

pub use wit::{Outcome, Phase, Report};

/// Where a hook's sink files go.
pub trait Sinks: Send + Sync {
    /// Opens file `path` (relative, `/`-separated, checked by the host).
    ///
    /// # Errors
    /// When the file cannot be started (the plugin gets the message).
    fn open(&self, path: &str) -> Result<Box<dyn SinkFile>>;
}

/// One file being written through a sink.
pub trait SinkFile: Send {
    /// Appends `data`.
    ///
    /// # Errors
    /// When the file cannot take more (its backup failed).
    fn write(&mut self, data: &[u8]) -> Result<()>;

    /// Marks the file complete. Dropping a file without this aborts it.
    ///
    /// # Errors
    /// When completing it fails.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// A sink file in an instance's resource table.
pub struct OpenSink(Option<Box<dyn SinkFile>>);

/// What the host tells a hook.
#[derive(Debug, Clone)]
pub struct HookContext {
    /// The app.
    pub app: String,
    /// The phase.
    pub phase: Phase,
    /// The identities of the app's volumes in this run.
    pub targets: Vec<String>,
    /// For post phases: whether the step succeeded, and why not.
    pub outcome: Option<(bool, Option<String>)>,
}

/// The name of a phase (`pre-backup`).
pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::PreBackup => "pre-backup",
        Phase::PostBackup => "post-backup",
        Phase::PreRestore => "pre-restore",
        Phase::PostRestore => "post-restore",
    }
}

/// Checks a sink path: relative, `/`-separated names without empty, `.` or `..` parts.
fn check_path(path: &str) -> std::result::Result<(), WitError> {
    let ok = !path.is_empty()
        && path.len() <= 1024
        && !path.contains('\0')
        && path
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..");
    if ok {
        Ok(())
    } else {
        Err(WitError::InvalidConfig(format!(
            "sink path `{path}` must be relative, `/`-separated, without empty, `.` or `..` parts"
        )))
    }
}

fn to_wit(e: &Error) -> WitError {
    WitError::Other(e.to_string())
}

impl State {
    /// Sinks refuse a call its caller stopped waiting for: its files are not part of any
    /// backup any more.
    fn not_abandoned(&self) -> std::result::Result<(), WitError> {
        if self.abandoned.load(std::sync::atomic::Ordering::Relaxed) {
            Err(WitError::Denied(
                "this call ran past its wall-clock limit and was abandoned".into(),
            ))
        } else {
            Ok(())
        }
    }
}

impl SinkHost for State {
    fn open(&mut self, path: String) -> std::result::Result<Resource<OpenSink>, WitError> {
        self.not_abandoned()?;
        check_path(&path)?;
        let Some(sinks) = self.sinks.clone() else {
            return Err(WitError::Denied(format!(
                "no sink in this phase: `{path}` cannot be added to a backup here"
            )));
        };
        let file = sinks.open(&path).map_err(|e| to_wit(&e))?;
        self.table
            .push(OpenSink(Some(file)))
            .map_err(|e| WitError::Other(format!("cannot open sink `{path}`: {e}")))
    }
}

impl HostFileSink for State {
    fn write(
        &mut self,
        sink: Resource<OpenSink>,
        data: Vec<u8>,
    ) -> std::result::Result<(), WitError> {
        self.not_abandoned()?;
        let open = self
            .table
            .get_mut(&sink)
            .map_err(|e| WitError::Other(format!("bad sink: {e}")))?;
        match &mut open.0 {
            Some(file) => file.write(&data).map_err(|e| to_wit(&e)),
            None => Err(WitError::Other("the sink file is already finished".into())),
        }
    }

    fn finish(&mut self, sink: Resource<OpenSink>) -> std::result::Result<(), WitError> {
        self.not_abandoned()?;
        let open = self
            .table
            .get_mut(&sink)
            .map_err(|e| WitError::Other(format!("bad sink: {e}")))?;
        match open.0.take() {
            Some(file) => file.finish().map_err(|e| to_wit(&e)),
            None => Err(WitError::Other("the sink file is already finished".into())),
        }
    }

    fn drop(&mut self, sink: Resource<OpenSink>) -> wasmtime::Result<()> {
        // An unfinished file is dropped here, which aborts it.
        self.table.delete(sink)?;
        Ok(())
    }
}

/// Runs hook plugin `plugin` (instance `name`) for one phase with `config`, holding `caps`;
/// `sinks` receives the files it adds (none: it may add none).
///
/// # Errors
/// When the plugin is not a hook, fails to start, traps, overspends, or returns an error.
pub fn run_hook(
    runtime: &Runtime,
    plugin: &Plugin,
    name: &str,
    config: &[(String, String)],
    caps: &Capabilities,
    context: &HookContext,
    sinks: Option<Arc<dyn Sinks>>,
) -> Result<Report> {
    plugin.expect(World::Hook, name)?;
    let pre = HookPre::new(plugin.pre.clone())
        .map_err(|e| Error::invalid(format!("plugin `{name}` is not a hook: {e:#}")))?;
    let request = wit::Context {
        app: context.app.clone(),
        phase: context.phase,
        targets: context.targets.clone(),
        outcome: context
            .outcome
            .clone()
            .map(|(success, message)| Outcome { success, message }),
        config: config.to_vec(),
    };
    let what = phase_name(context.phase);
    let answer = one_shot(
        runtime,
        name,
        caps,
        what,
        |state| state.sinks = sinks,
        async move |store| {
            let bindings: Hook = pre.instantiate_async(&mut *store).await?;
            bindings
                .cairn_plugin_hooks()
                .call_run(&mut *store, &request)
                .await
        },
    )?;
    answer.map_err(|e| crate::storage::plugin_error(name, &format!("in {what}"), e))
}
