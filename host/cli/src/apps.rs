//! Apps: what the configuration file declares for each app (its volumes, hooks and
//! repository), and running its hooks, each in a sandbox holding that app's grants only.
//!
//! ```toml
//! [apps.shop]
//! volumes = ["k8s/shop/**"]        # identity globs (default: volumes discovery assigns to `shop`)
//! repository = "/srv/backup/shop"  # default: -r
//! password-file = "/etc/cairn/shop.pass"
//! [[apps.shop.hooks]]
//! plugin = "http-hook"             # an installed hook plugin
//! on-error = "fail"                # or "continue"
//! timeout = "30s"                  # per phase (capped by the grant's wall-ms)
//! config = { url = "http://127.0.0.1:8080", pre-backup = "/maintenance/on", post-backup = "/maintenance/off" }
//! grant = { http = ["127.0.0.1:8080"] }
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use cairn_plugin_host::{
    Grants, HookContext, Phase, Runtime, Sinks, Target, hooks::phase_name, run_hook,
};
use cairn_repo::ops::backup::BackupOutcome;
use cairn_repo::{HookRun, Repository};
use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;

use crate::plugins::{ConfigFile, Ready};
use crate::settings::{Ctx, parse_duration, read_password};
use crate::sinks::StreamSinks;

/// An app.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct App {
    /// Globs over volume identities (`*` stays within one `/` part, `**` crosses them);
    /// empty: the volumes discovery assigns to the app's name.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Its repository (default: `-r`).
    pub repository: Option<String>,
    /// The file holding its repository's password (default: the global password).
    pub password_file: Option<PathBuf>,
    /// Its hooks, run in order (post hooks too).
    #[serde(default)]
    pub hooks: Vec<HookSpec>,
}

/// One hook of an app: a hook plugin with this app's settings and grants.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HookSpec {
    /// The installed hook plugin.
    pub plugin: String,
    /// What a failure does: `fail` (the default) stops the app's backup or restore, after
    /// the post hooks; `continue` carries on.
    #[serde(default)]
    pub on_error: OnError,
    /// The most one phase may take (e.g. `30s`).
    pub timeout: Option<String>,
    /// Its settings.
    #[serde(default)]
    pub config: BTreeMap<String, toml::Value>,
    /// What this app allows it.
    #[serde(default)]
    pub grant: Grants,
}

/// What a failing hook does.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Stop the app's step (post hooks still run).
    #[default]
    Fail,
    /// Note it and carry on.
    Continue,
}

/// The configured apps, each with its volume selectors compiled.
pub struct Apps {
    apps: Vec<(String, Vec<GlobMatcher>)>,
}

impl Apps {
    /// The apps of `file`.
    ///
    /// # Errors
    /// When a selector is not a valid glob (the message names the app).
    pub fn new(file: &ConfigFile) -> Result<Apps> {
        let mut apps = Vec::new();
        for (name, app) in &file.apps {
            let globs = app
                .volumes
                .iter()
                .map(|g| {
                    GlobBuilder::new(g)
                        .literal_separator(true)
                        .build()
                        .map(|g| g.compile_matcher())
                        .map_err(|e| anyhow!("app `{name}`: volume selector `{g}` is invalid: {e}"))
                })
                .collect::<Result<Vec<_>>>()?;
            apps.push((name.clone(), globs));
        }
        Ok(Apps { apps })
    }

    /// The apps that cover `target`: its selectors match the identity, or, without
    /// selectors, its name is the target's app.
    pub fn covering(&self, target: &Target) -> Vec<&str> {
        self.apps
            .iter()
            .filter(|(name, globs)| {
                if globs.is_empty() {
                    *name == target.app
                } else {
                    globs.iter().any(|g| g.is_match(&target.identity))
                }
            })
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

/// One app's hooks, loaded and granted, ready to run phases.
pub struct AppHooks {
    runtime: Arc<Runtime>,
    app: String,
    hooks: Vec<(Ready, OnError)>,
}

impl AppHooks {
    /// Loads the hooks of app `name`: every plugin, setting and grant is checked here, so a
    /// hook the app may not run stops the app before anything ran.
    ///
    /// # Errors
    /// Naming the app and the hook.
    pub fn load(ctx: &Ctx, name: &str, app: &App) -> Result<AppHooks> {
        let runtime = ctx.plugin_runtime()?;
        let mut hooks = Vec::new();
        for (i, spec) in app.hooks.iter().enumerate() {
            let mut ready = ctx
                .prepare(&runtime, &spec.plugin, &spec.config, &spec.grant, false)
                .map_err(|e| anyhow!("app `{name}`, hook {} (`{}`): {e:#}", i + 1, spec.plugin))?;
            if let Some(t) = &spec.timeout {
                let t: Duration = parse_duration(t)?;
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
    /// whose `on-error` is `fail` and returns its message as the error; a post phase runs
    /// every hook whatever happens. Each run is reported. With `sinks`, each hook gets fresh
    /// sinks: the files it writes are kept only when it succeeds (a file that cannot be
    /// kept fails the hook).
    pub fn run(
        &self,
        phase: Phase,
        targets: &[String],
        outcome: Option<(bool, Option<String>)>,
        sinks: Option<&dyn Fn() -> Arc<StreamSinks>>,
    ) -> PhaseResult {
        let post = matches!(phase, Phase::PostBackup | Phase::PostRestore);
        let context = HookContext {
            app: self.app.clone(),
            phase,
            targets: targets.to_vec(),
            outcome,
        };
        let mut done = PhaseResult::default();
        let (runs, failure) = (&mut done.runs, &mut done.failure);
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
                    if *on_error == OnError::Fail && failure.is_none() {
                        *failure = Some(e.clone());
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
            runs.push(run);
            if failure.is_some() && !post {
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
    pub files: Vec<(String, cairn_repo::Result<BackupOutcome>)>,
}

impl Ctx {
    /// The repository of `app`: its own location and password file when it names them.
    pub fn open_app(&self, app: &App) -> Result<Repository> {
        let Some(location) = &app.repository else {
            return self.open();
        };
        let backend = self.backend_at(location)?;
        let password = match &app.password_file {
            Some(file) => read_password(false, Some(file.as_path()), None, None, "")?,
            None => self.password("enter repository password: ")?,
        };
        Ok(self.open_backend(backend, password.bytes())?)
    }
}
