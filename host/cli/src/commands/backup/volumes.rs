//! `cairn backup` of discovered volumes (`--volume`, `--all-discovered`) and of apps
//! (`--for-app`, `--all-apps`).
//!
//! Each volume becomes one snapshot (its contents, its app and identity recorded). Volumes an
//! app covers are backed up in that app's run: its pre-backup hooks, then its volumes, then
//! its post-backup hooks (always, with the outcome), into its repository. An app that fails
//! does not stop the others; the command fails at the end naming them.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Result, bail};
use cairn_plugin_host::{Phase, Target};
use cairn_repo::ops::backup::{BackupOptions, BackupOutcome, BackupSource, backup};
use cairn_repo::{ErrorKind, HookRun, IndexedRepository};

use crate::Outcome;
use crate::apps::{AppHooks, Apps};
use crate::args::BackupArgs;
use crate::output;
use crate::progress::{Mode, Progress};
use crate::settings::Ctx;
use crate::sinks::StreamSinks;

/// How one run (an app's, or the volumes no app covers) went.
#[derive(Default)]
struct Tally {
    failed: Vec<String>,
    incomplete: bool,
}

pub fn run(ctx: &Ctx, args: &BackupArgs, opts: BackupOptions) -> Result<Outcome> {
    let file = ctx.config_file()?;
    let apps = Apps::new(&file)?;
    for name in &args.for_app {
        if !file.apps.contains_key(name) {
            bail!("no app `{name}` in the configuration file ([apps.{name}])");
        }
    }
    let by_app = args.all_apps || !args.for_app.is_empty();
    let found = ctx.discover(&file, &args.discovery, !by_app)?;
    let mut chosen: Vec<&Target> = Vec::new();
    for identity in &args.volume {
        match found.iter().find(|t| t.identity == *identity) {
            Some(t) => chosen.push(t),
            None => bail!(
                "no volume `{identity}` was discovered on this node; `cairn discover` lists what is"
            ),
        }
    }
    if args.all_discovered || args.all_apps || !args.for_app.is_empty() {
        chosen = found.iter().collect();
    }
    // Each volume goes with the one app that covers it (or with none).
    let mut groups: BTreeMap<Option<&str>, Vec<&Target>> = BTreeMap::new();
    let wanted: Vec<&str> = if args.all_apps {
        file.apps.keys().map(String::as_str).collect()
    } else {
        args.for_app.iter().map(String::as_str).collect()
    };
    for name in &wanted {
        groups.entry(Some(name)).or_default();
    }
    for target in chosen {
        let covering = apps.covering(target);
        if covering.len() > 1 {
            bail!(
                "volume `{}` is covered by apps {}: a volume belongs to one app; narrow their \
                 `volumes` selectors",
                target.identity,
                covering.join(" and ")
            );
        }
        let app = covering.first().copied();
        let in_scope = match app {
            Some(a) => wanted.is_empty() || wanted.contains(&a),
            None => wanted.is_empty(),
        };
        if in_scope {
            groups.entry(app).or_default().push(target);
        }
    }

    let mut tally = Tally::default();
    let single = groups.len() == 1;
    for (app, targets) in groups {
        let result = match app {
            Some(name) => app_run(ctx, &file, name, &targets, &opts, &mut tally),
            None => (|| {
                let repo = ctx.open()?;
                let _lock = ctx.lock(&repo, false)?;
                let repo = repo.to_indexed()?;
                let run = Run {
                    app: None,
                    hooks: &[],
                };
                volumes(ctx, &repo, &targets, &opts, &run, &mut tally);
                Ok(())
            })(),
        };
        if let Err(e) = result {
            // Alone, its error is the command's (and keeps its exit code: 10, 11, 12).
            if single {
                return Err(e);
            }
            tracing::error!("{e:#}");
            tally
                .failed
                .push(app.map_or_else(|| "volumes".into(), |a| format!("app `{a}`")));
        }
    }
    if !tally.failed.is_empty() {
        bail!("the backup of {} failed", tally.failed.join(", "));
    }
    Ok(if tally.incomplete {
        Outcome::Incomplete
    } else {
        Outcome::Ok
    })
}

/// One app's run: hooks loaded (a hook it may not run stops it here), pre-backup hooks, its
/// volumes, post-backup hooks, and one `app` summary line.
fn app_run(
    ctx: &Ctx,
    file: &crate::plugins::ConfigFile,
    name: &str,
    targets: &[&Target],
    opts: &BackupOptions,
    tally: &mut Tally,
) -> Result<()> {
    let app = &file.apps[name];
    let hooks = AppHooks::load(ctx, name, app)?;
    let repo = ctx.open_app(app)?;
    let _lock = ctx.lock(&repo, false)?;
    let repo = Arc::new(repo.to_indexed()?);
    let identities: Vec<String> = targets.iter().map(|t| t.identity.clone()).collect();
    if !ctx.global.quiet {
        tracing::info!("app `{name}`: {} volumes", targets.len());
    }

    let sinks = || StreamSinks::new(repo.clone(), opts.clone(), name, ctx.cancel.clone());
    let pre = hooks.run(Phase::PreBackup, &identities, None, Some(&sinks));
    files(ctx, name, &pre.files, opts.dry_run)?;
    let mut failure = pre.failure.clone();
    if failure.is_none() {
        let mut inner = Tally::default();
        let run = Run {
            app: Some(name),
            hooks: &pre.runs,
        };
        volumes(ctx, &repo, targets, opts, &run, &mut inner);
        tally.incomplete |= inner.incomplete;
        if !inner.failed.is_empty() {
            failure = Some(format!("the backup of {} failed", inner.failed.join(", ")));
        }
    } else if !ctx.global.quiet {
        tracing::warn!("app `{name}`: its volumes were not backed up: a pre-backup hook failed");
    }
    let outcome = (failure.is_none(), failure.clone());
    let post = hooks.run(Phase::PostBackup, &identities, Some(outcome), Some(&sinks));
    files(ctx, name, &post.files, opts.dry_run)?;
    let failure = failure.or(post.failure);
    if ctx.global.json {
        let runs: Vec<&HookRun> = pre.runs.iter().chain(&post.runs).collect();
        output::json(&serde_json::json!({
            "message_type": "app",
            "app": name,
            "success": failure.is_none(),
            "error": failure,
            "volumes": identities,
            "hooks": runs,
        }))?;
    }
    if let Some(why) = failure {
        bail!("app `{name}`: {why}");
    }
    Ok(())
}

/// Reports the files hooks wrote: a summary line for each kept, the reason for each not.
fn files(
    ctx: &Ctx,
    app: &str,
    files: &[(String, cairn_repo::Result<BackupOutcome>)],
    dry_run: bool,
) -> Result<()> {
    for (identity, outcome) in files {
        match outcome {
            Ok(o) => super::report(ctx, o, dry_run, Some(identity))?,
            Err(e) => tracing::error!("app `{app}`: {identity}: {e}"),
        }
    }
    Ok(())
}

/// Whose volumes are backed up.
struct Run<'a> {
    /// The configured app (recorded as the snapshots' app), or none: the discovered app is.
    app: Option<&'a str>,
    /// The pre-backup hook runs, recorded in each snapshot.
    hooks: &'a [HookRun],
}

/// Backs up `targets`, one snapshot each.
fn volumes(
    ctx: &Ctx,
    repo: &IndexedRepository,
    targets: &[&Target],
    opts: &BackupOptions,
    run: &Run,
    tally: &mut Tally,
) {
    for target in targets {
        if !target.kind.has_files() {
            tracing::warn!(
                "{} is a block volume: it is not backed up as files",
                target.identity
            );
            continue;
        }
        let mut opts = opts.clone();
        opts.app = Some(run.app.unwrap_or(&target.app).to_owned());
        opts.volume = Some(target.identity.clone());
        opts.hooks = run.hooks.to_vec();
        if !ctx.global.quiet {
            tracing::info!(
                "backing up {} from {}",
                target.identity,
                target.path.display()
            );
        }
        let progress = Progress::new(Mode::choose(ctx.global.quiet, ctx.global.json));
        let result = backup(
            repo,
            BackupSource::Volume(target.path.clone()),
            &opts,
            &progress,
            &ctx.cancel,
        );
        progress.finish();
        match result {
            Ok(outcome) => {
                if let Err(e) = super::report(ctx, &outcome, opts.dry_run, Some(&target.identity)) {
                    tracing::error!("{e}");
                }
                tally.incomplete |= outcome
                    .snapshot
                    .summary
                    .as_ref()
                    .is_some_and(|s| s.errors > 0);
            }
            Err(e) => {
                if e.kind() == ErrorKind::Interrupted {
                    tally.failed.push("(interrupted)".into());
                    return;
                }
                tracing::error!("{}: {e}", target.identity);
                tally.failed.push(target.identity.clone());
            }
        }
    }
}
