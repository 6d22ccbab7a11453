//! `cairn backup` of discovered volumes (`--volume`, `--all-discovered`) and of apps
//! (`--for-app`, `--all-apps`): `cairn_apps` plans and runs them, this prints.
//!
//! Each volume becomes one snapshot. Volumes an app covers are backed up in that app's run
//! (its pre-backup hooks, its volumes, its post-backup hooks) into its repository. An app
//! that fails does not stop the others; the command fails at the end naming them.

use anyhow::{Result, bail};
use cairn_apps::backup::{Observer, VolumeObserver, Volumes, backup_app, backup_unowned};
use cairn_apps::plan::{Selection, plan};
use cairn_plugin_host::Target;
use cairn_repo::ops::backup::{BackupOptions, BackupOutcome, BackupProgress};

use crate::Outcome;
use crate::args::BackupArgs;
use crate::output;
use crate::progress::{Mode, Progress};
use crate::settings::Ctx;

pub fn run(ctx: &Ctx, args: &BackupArgs, opts: BackupOptions) -> Result<Outcome> {
    let selection = Selection {
        volumes: args.volume.clone(),
        all_discovered: args.all_discovered,
        apps: args.for_app.clone(),
        all_apps: args.all_apps,
    };
    let file = ctx.config()?;
    for name in &selection.apps {
        file.app(name)?;
    }
    let found = ctx
        .discover(&(&args.discovery).into(), !selection.by_app())?
        .all()?;
    let groups = plan(file, found, &selection)?;
    let printer = Printer {
        ctx,
        dry_run: opts.dry_run,
    };
    let single = groups.len() == 1;
    let mut failed = Vec::new();
    let mut incomplete = false;
    for (app, targets) in &groups {
        let result = match app {
            Some(name) => backup_app(ctx, name, targets, &opts, &printer)
                .map_err(anyhow::Error::from)
                .and_then(|done| {
                    if ctx.global.json {
                        output::json(&serde_json::json!({
                            "message_type": "app",
                            "app": name,
                            "success": done.failure().is_none(),
                            "error": done.failure(),
                            "volumes": done.volumes,
                            "hooks": done.hook_runs(),
                        }))?;
                    }
                    incomplete |= done.run.step.as_ref().is_some_and(Volumes::incomplete);
                    match done.failure() {
                        Some(why) => bail!("app `{name}`: {why}"),
                        None => Ok(()),
                    }
                }),
            None => backup_unowned(ctx, targets, &opts, &printer)
                .map_err(anyhow::Error::from)
                .and_then(|done| {
                    incomplete |= done.incomplete();
                    match done.failure() {
                        Some(why) => bail!(why),
                        None => Ok(()),
                    }
                }),
        };
        if let Err(e) = result {
            // Alone, its error is the command's (and keeps its exit code: 10, 11, 12).
            if single {
                return Err(e);
            }
            tracing::error!("{e:#}");
            failed.push(
                app.as_ref()
                    .map_or_else(|| "volumes".into(), |a| format!("app `{a}`")),
            );
        }
    }
    if !failed.is_empty() {
        bail!("the backup of {} failed", failed.join(", "));
    }
    Ok(if incomplete {
        Outcome::Incomplete
    } else {
        Outcome::Ok
    })
}

/// Shows each volume's progress and summary, and the files hooks wrote.
struct Printer<'a> {
    ctx: &'a Ctx,
    dry_run: bool,
}

impl Observer for Printer<'_> {
    fn volume(&self, target: &Target) -> Box<dyn VolumeObserver + '_> {
        Box::new(Shown {
            printer: self,
            identity: target.identity.clone(),
            progress: Progress::new(Mode::choose(self.ctx.global.quiet, self.ctx.global.json)),
        })
    }

    fn files(&self, app: &str, files: &[(String, cairn_repo::Result<BackupOutcome>)]) {
        for (identity, outcome) in files {
            match outcome {
                Ok(o) => {
                    if let Err(e) = super::report(self.ctx, o, self.dry_run, Some(identity)) {
                        tracing::error!("{e}");
                    }
                }
                Err(e) => tracing::error!("app `{app}`: {identity}: {e}"),
            }
        }
    }
}

/// One volume on the terminal.
struct Shown<'a> {
    printer: &'a Printer<'a>,
    identity: String,
    progress: Progress,
}

impl VolumeObserver for Shown<'_> {
    fn progress(&self) -> &dyn BackupProgress {
        &self.progress
    }

    fn done(self: Box<Self>, result: &cairn_repo::Result<BackupOutcome>) {
        self.progress.finish();
        if let Ok(outcome) = result
            && let Err(e) = super::report(
                self.printer.ctx,
                outcome,
                self.printer.dry_run,
                Some(&self.identity),
            )
        {
            tracing::error!("{e}");
        }
    }
}
