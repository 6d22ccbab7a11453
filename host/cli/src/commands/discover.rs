//! `cairn discover`

use anyhow::Result;
use serde::Serialize;

use crate::Outcome;
use crate::args::DiscoverArgs;
use crate::output;
use crate::settings::Ctx;
use cairn_apps::plan::Apps;

#[derive(Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    target: &'a cairn_plugin_host::Target,
    /// The configured apps that cover it (`app` is the one the plugin derived).
    covering_apps: Vec<&'a str>,
}

pub fn run(ctx: &Ctx, args: DiscoverArgs) -> Result<Outcome> {
    let apps = Apps::new(ctx.config()?)?;
    let found = ctx.discover(&(&args.source).into(), true)?;
    if found.answered == 0 && found.failed.is_empty() && !found.absent.is_empty() {
        tracing::warn!("{}", found.none_answered());
    }
    let targets = &found.targets;
    let shown: Vec<Shown> = targets
        .iter()
        .map(|t| Shown {
            target: t,
            covering_apps: apps.covering(t),
        })
        .filter(|s| !args.unprotected || s.covering_apps.is_empty())
        .collect();
    if ctx.global.json {
        output::json(&shown)?;
        return Ok(failures(&found.failed));
    }
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|s| {
            vec![
                s.target.identity.clone(),
                s.target.app.clone(),
                s.target.kind.name().to_owned(),
                s.target.path.display().to_string(),
            ]
        })
        .collect();
    output::table(&["IDENTITY", "APP", "KIND", "PATH"], &rows)?;
    if !ctx.global.quiet {
        let what = if args.unprotected {
            "unprotected volumes"
        } else {
            "volumes"
        };
        tracing::info!("{} {what}", shown.len());
    }
    Ok(failures(&found.failed))
}

/// Names the instances that failed (their targets are missing from the list): incomplete.
fn failures(failed: &[cairn_repo::Error]) -> Outcome {
    for e in failed {
        tracing::error!("{e}; the volumes it would find are not listed");
    }
    if failed.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Incomplete
    }
}
