//! `cairn restore`

use anyhow::{Result, anyhow, bail};
use cairn_apps::{AppHooks, HookFailure, Operation, bracket};
use cairn_repo::HookRun;
use cairn_repo::ops::restore::{
    BucketRestoreOptions, Overwrite, RestoreOptions, restore, restore_to_bucket,
};

use crate::Outcome;
use crate::args::{OverwriteArg, RestoreArgs};
use crate::output;
use crate::progress::{Mode, Progress};
use crate::settings::Ctx;

pub fn run(ctx: &Ctx, args: RestoreArgs) -> Result<Outcome> {
    let (spec, subpath) = match args.snapshot.split_once(':') {
        Some((s, p)) => (s, p.to_owned()),
        None => (args.snapshot.as_str(), String::new()),
    };
    if let Some(m) = &args.marker {
        crate::marker::check(m)?;
    }
    let app = match &args.for_app {
        Some(name) => {
            let app = ctx.config()?.app(name)?;
            Some((name.as_str(), app, AppHooks::load(ctx, name, app)?))
        }
        None => None,
    };
    let bucket = match &args.to_bucket {
        Some(location) => Some(ctx.bucket(location, app.as_ref().map(|(_, a, _)| *a))?),
        None => None,
    };
    let repo = match &app {
        Some((_, app, _)) => ctx.open_app(app)?,
        None => ctx.open()?,
    };
    let _lock = ctx.lock(&repo, false)?;
    let (id, snap) = super::find(&repo, spec, &args.filter)?;
    let repo = repo.to_indexed()?;
    let mut into_bucket = BucketRestoreOptions::default();
    into_bucket.subpath.clone_from(&subpath);
    into_bucket.includes.clone_from(&args.include);
    into_bucket.excludes.clone_from(&args.exclude);
    let mut opts = RestoreOptions::default();
    opts.target = args.target.clone().unwrap_or_default();
    opts.subpath = subpath;
    opts.includes = args.include.clone();
    opts.excludes = args.exclude.clone();
    opts.verify = args.verify;
    opts.delete = args.delete;
    opts.overwrite = match args.overwrite {
        OverwriteArg::Always => Overwrite::Always,
        OverwriteArg::IfChanged => Overwrite::IfChanged,
        OverwriteArg::Never => Overwrite::Never,
    };
    opts.owner = nix::unistd::geteuid().is_root();
    let targets: Vec<String> = snap.volume.clone().into_iter().collect();
    let run_restore = |_: &[HookRun]| {
        let progress = Progress::new(Mode::choose(ctx.global.quiet, ctx.global.json));
        let result = match &bucket {
            Some(b) => {
                restore_to_bucket(&repo, snap.tree, &into_bucket, b, &progress, ctx.cancel())
            }
            None => restore(&repo, snap.tree, &opts, &progress, ctx.cancel()),
        };
        progress.finish();
        let failure = match &result {
            Ok(s) if s.warnings == 0 => None,
            Ok(s) => Some(format!("{} problems while restoring", s.warnings)),
            Err(e) => Some(e.to_string()),
        };
        (result, failure)
    };
    let result = match &app {
        Some((name, _, hooks)) => {
            let done = bracket(hooks, Operation::Restore, &targets, None, run_restore);
            hook_report(ctx, done.runs())?;
            match done.hook_failure() {
                Some(HookFailure::Pre(why)) => {
                    bail!("app `{name}`: a pre-restore hook failed, nothing was restored: {why}")
                }
                Some(HookFailure::Post(why)) => {
                    done.step.transpose()?;
                    bail!("app `{name}`: a post-restore hook failed: {why}");
                }
                None => done
                    .step
                    .ok_or_else(|| anyhow!("app `{name}`: the restore did not run"))?,
            }
        }
        None => run_restore(&[]).0,
    };
    let s = result?;
    if ctx.global.json {
        let mut v = serde_json::to_value(&s)?;
        v["message_type"] = serde_json::json!("summary");
        v["snapshot_id"] = serde_json::json!(id);
        output::json(&v)?;
    } else if !ctx.global.quiet
        && let Some(location) = &args.to_bucket
    {
        output::line(format!(
            "restored snapshot {} to {}: {} objects ({})",
            id.short(),
            cairn_backend::redact_location(location),
            s.files_restored,
            output::bytes(s.bytes_restored),
        ))?;
    } else if !ctx.global.quiet {
        output::line(format!(
            "restored snapshot {} to {}: {} files ({}), {} dirs, {} other entries; {} files left as they were",
            id.short(),
            opts.target.display(),
            s.files_restored,
            output::bytes(s.bytes_restored),
            s.dirs,
            s.others,
            s.files_skipped
        ))?;
        if args.verify {
            output::line(format!(
                "verified {} files: all match the snapshot",
                s.files_verified
            ))?;
        }
        if args.delete {
            output::line(format!("deleted {} entries not in the snapshot", s.deleted))?;
        }
    }
    if s.warnings > 0 {
        tracing::warn!(
            "{} problems while restoring (see the warnings above){}",
            s.warnings,
            if args.marker.is_some() {
                "; no marker was written"
            } else {
                ""
            }
        );
        return Ok(Outcome::Incomplete);
    }
    if let Some(m) = &args.marker {
        crate::marker::write(&opts.target, m, &id.to_string())?;
    }
    Ok(Outcome::Ok)
}

/// The hooks that ran around the restore: one `hooks` line with `--json`, else one log line each.
fn hook_report<'a>(ctx: &Ctx, runs: impl Iterator<Item = &'a HookRun>) -> Result<()> {
    let runs: Vec<&HookRun> = runs.collect();
    if ctx.global.json {
        output::json(&serde_json::json!({ "message_type": "hooks", "hooks": runs }))?;
    } else if !ctx.global.quiet {
        for r in &runs {
            let state = if r.success { "ok" } else { "failed" };
            tracing::info!(
                "hook {} {}: {state}{}",
                r.hook,
                r.phase,
                r.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}
