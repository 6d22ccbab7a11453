//! An app's hooks, each in a sandbox holding that app's grants only, and the bracket every
//! step of an app runs in: its pre hooks, the step (only when they succeeded), its post
//! hooks (always, told the outcome).

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_plugin_host::{HookContext, Phase, Runtime, Sinks, hooks::phase_name, run_hook};
use cairn_repo::ops::backup::BackupOutcome;
use cairn_repo::{HookRun, Result};

use crate::config::{App, OnError};
use crate::plugins::Ready;
use crate::session::Session;
use crate::sinks::StreamSinks;
use crate::units::parse_duration;

/// One app's hooks, loaded and granted, ready to run phases.
pub struct AppHooks {
    runtime: Arc<Runtime>,
    app: String,
    hooks: Vec<(Ready, OnError)>,
}

/// Makes fresh sinks for one hook's run.
pub type MakeSinks<'a> = &'a dyn Fn() -> Arc<StreamSinks>;

impl AppHooks {
    /// Loads the hooks of app `name`: every plugin, setting and grant is checked here, so a
    /// hook the app may not run stops the app before anything ran.
    ///
    /// # Errors
    /// Naming the app and the hook.
    pub fn load(session: &Session, name: &str, app: &App) -> Result<AppHooks> {
        let runtime = session.plugin_runtime()?;
        let mut hooks = Vec::new();
        for (i, spec) in app.hooks.iter().enumerate() {
            let context = || format!("app `{name}`, hook {} (`{}`)", i + 1, spec.plugin);
            let mut ready = session
                .prepare(&spec.plugin, &spec.config, &spec.grant, false)
                .map_err(|e| e.context(context()))?;
            if let Some(t) = &spec.timeout {
                let t = parse_duration(t).map_err(|e| e.context(context()))?;
                let limits = &mut ready.capabilities.limits;
                limits.wall = limits.wall.min(t);
            }
            hooks.push((ready, spec.on_error));
        }
        Ok(AppHooks {
            runtime,
            app: name.to_owned(),
            hooks,
        })
    }

    /// Runs every hook for `phase` in order. A pre phase stops at the first failing hook
    /// whose `on-error` is `fail` and returns its message as the failure; a post phase runs
    /// every hook whatever happens. With `sinks`, each hook gets fresh sinks: the files it
    /// writes are kept only when it succeeds (a file that cannot be kept fails the hook).
    pub fn run(
        &self,
        phase: Phase,
        targets: &[String],
        outcome: Option<(bool, Option<String>)>,
        sinks: Option<MakeSinks<'_>>,
    ) -> PhaseResult {
        let post = matches!(phase, Phase::PostBackup | Phase::PostRestore);
        let context = HookContext {
            app: self.app.clone(),
            phase,
            targets: targets.to_vec(),
            outcome,
        };
        let mut done = PhaseResult::default();
        for (ready, on_error) in &self.hooks {
            let name = ready.plugin.manifest.name.clone();
            let sink = sinks.map(|make| make());
            let mut result = run_hook(
                &self.runtime,
                &ready.plugin,
                &name,
                &ready.config,
                &ready.capabilities,
                &context,
                sink.clone().map(|s| s as Arc<dyn Sinks>),
            )
            .map_err(|e| e.to_string());
            for (identity, kept) in sink.map(|s| s.settle(result.is_ok())).unwrap_or_default() {
                if let (Ok(_), Err(e)) = (&result, &kept) {
                    result = Err(format!("{identity}: {e}"));
                }
                done.files.push((identity, kept));
            }
            let run = match result {
                Ok(report) => HookRun {
                    hook: name,
                    phase: phase_name(phase).into(),
                    success: true,
                    message: report.message,
                    details: report.details.into_iter().collect(),
                },
                Err(e) => {
                    tracing::warn!("app `{}`: {e}", self.app);
                    if *on_error == OnError::Fail && done.failure.is_none() {
                        done.failure = Some(e.clone());
                    }
                    HookRun {
                        hook: name,
                        phase: phase_name(phase).into(),
                        success: false,
                        message: Some(e),
                        details: BTreeMap::new(),
                    }
                }
            };
            done.runs.push(run);
            if done.failure.is_some() && !post {
                break;
            }
        }
        done
    }
}

/// What one phase's hooks did.
#[derive(Default)]
pub struct PhaseResult {
    /// Each hook's run, in order.
    pub runs: Vec<HookRun>,
    /// The first failure of a hook whose `on-error` is `fail`.
    pub failure: Option<String>,
    /// The files the hooks wrote: each one's volume identity and its snapshot (or why it was
    /// not kept).
    pub files: Vec<(String, Result<BackupOutcome>)>,
}

/// Which pair of phases a bracket runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// pre-backup, post-backup.
    Backup,
    /// pre-restore, post-restore.
    Restore,
}

/// What a bracket did: both phases and the step's result (none when a pre hook failed).
pub struct Bracketed<T> {
    /// The pre phase.
    pub pre: PhaseResult,
    /// The step's result, when it ran.
    pub step: Option<T>,
    /// The post phase.
    pub post: PhaseResult,
}

impl<T> Bracketed<T> {
    /// Every hook run, pre then post.
    pub fn runs(&self) -> impl Iterator<Item = &HookRun> {
        self.pre.runs.iter().chain(&self.post.runs)
    }

    /// Why the hooks failed the bracket, if they did.
    pub fn hook_failure(&self) -> Option<HookFailure> {
        if let Some(why) = &self.pre.failure {
            return Some(HookFailure::Pre(why.clone()));
        }
        self.post.failure.clone().map(HookFailure::Post)
    }
}

/// A failed hook phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookFailure {
    /// A pre hook failed: the step did not run.
    Pre(String),
    /// A post hook failed (after the step).
    Post(String),
}

/// Runs `step` between the pre and post hooks of `op`. The step runs only when the pre hooks
/// succeeded, gets their runs (recorded in snapshots), and returns its result with why it
/// failed, if it did; the post hooks always run and are told the outcome.
pub fn bracket<T>(
    hooks: &AppHooks,
    op: Operation,
    targets: &[String],
    sinks: Option<MakeSinks<'_>>,
    step: impl FnOnce(&[HookRun]) -> (T, Option<String>),
) -> Bracketed<T> {
    let (pre_phase, post_phase) = match op {
        Operation::Backup => (Phase::PreBackup, Phase::PostBackup),
        Operation::Restore => (Phase::PreRestore, Phase::PostRestore),
    };
    let pre = hooks.run(pre_phase, targets, None, sinks);
    let (step, failure) = match &pre.failure {
        Some(why) => (None, Some(why.clone())),
        None => {
            let (value, failure) = step(&pre.runs);
            (Some(value), failure)
        }
    };
    let post = hooks.run(
        post_phase,
        targets,
        Some((failure.is_none(), failure)),
        sinks,
    );
    Bracketed { pre, step, post }
}
