//! `cairn forget`

use anyhow::{Result, bail};
use cairn_apps::config::Retention;
use cairn_repo::SnapshotFilter;
use cairn_repo::ops::forget::{GroupBy, KeepPolicy, apply_policy, remove_snapshots};

use crate::Outcome;
use crate::args::ForgetArgs;
use crate::output;
use crate::settings::Ctx;

fn policy(a: &ForgetArgs) -> Result<KeepPolicy> {
    let rules = Retention {
        keep_last: a.keep_last,
        keep_hourly: a.keep_hourly,
        keep_daily: a.keep_daily,
        keep_weekly: a.keep_weekly,
        keep_monthly: a.keep_monthly,
        keep_yearly: a.keep_yearly,
        keep_within: a.keep_within.clone(),
        keep_within_hourly: a.keep_within_hourly.clone(),
        keep_within_daily: a.keep_within_daily.clone(),
        keep_within_weekly: a.keep_within_weekly.clone(),
        keep_within_monthly: a.keep_within_monthly.clone(),
        keep_within_yearly: a.keep_within_yearly.clone(),
        keep_tag: a.keep_tag.clone(),
    };
    rules.policy().map_err(|e| anyhow::anyhow!("--{e}"))
}

pub fn run(ctx: &Ctx, args: ForgetArgs) -> Result<Outcome> {
    let policy = policy(&args)?;
    let has_rules = !policy.is_empty();
    if args.ids.is_empty() && !has_rules {
        bail!(
            "no keep rule and no snapshot ids: nothing to do (with no rule every snapshot would go); \
             give --keep-last/--keep-daily/… rules or the ids of snapshots to forget"
        );
    }
    if !args.ids.is_empty() && has_rules {
        bail!("give either snapshot ids or keep rules, not both");
    }
    let group_by = GroupBy::parse(&args.group_by)?;
    let repo = ctx.open()?;
    let _lock = if args.dry_run {
        None
    } else {
        Some(ctx.lock(&repo, true)?)
    };

    let mut to_remove = Vec::new();
    if !args.ids.is_empty() {
        for spec in &args.ids {
            let (id, _) = super::find(&repo, spec, &args.filter)?;
            to_remove.push(id);
        }
        if ctx.global.json {
            output::json(&to_remove)?;
        } else if !ctx.global.quiet {
            for id in &to_remove {
                output::line(format!("remove snapshot {}", id.short()))?;
            }
        }
    } else {
        let filter: SnapshotFilter = (&args.filter).into();
        let snaps: Vec<_> = repo
            .snapshots()?
            .into_iter()
            .filter(|(_, s)| filter.matches(s))
            .collect();
        let groups = apply_policy(&snaps, group_by, &policy, &jiff::tz::TimeZone::system());
        if ctx.global.json {
            // restic's shape: per group its key, the snapshots kept and removed, and why.
            let by_id: std::collections::HashMap<_, _> =
                snaps.iter().map(|(i, s)| (*i, s)).collect();
            let shown = |id: &cairn_repo::Id| {
                by_id
                    .get(id)
                    .map_or(serde_json::Value::Null, |s| output::snapshot_json(id, s))
            };
            let v: Vec<serde_json::Value> = groups
                .iter()
                .map(|g| {
                    serde_json::json!({
                        "host": g.key.hostname,
                        "paths": g.key.paths,
                        "tags": g.key.tags,
                        "app": g.key.app,
                        "keep": g.keep.iter().map(|k| shown(&k.id)).collect::<Vec<_>>(),
                        "remove": g.remove.iter().map(|(id, _)| shown(id)).collect::<Vec<_>>(),
                        "reasons": g.keep.iter().map(|k| serde_json::json!({
                            "snapshot": shown(&k.id),
                            "matches": k.reasons,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            output::json(&v)?;
        }
        for g in &groups {
            to_remove.extend(g.remove.iter().map(|(id, _)| *id));
            if ctx.global.json || ctx.global.quiet {
                continue;
            }
            let mut what = Vec::new();
            if let Some(h) = &g.key.hostname {
                what.push(format!("host {h}"));
            }
            if let Some(p) = &g.key.paths {
                what.push(format!("paths [{}]", p.join(", ")));
            }
            if let Some(a) = &g.key.app {
                what.push(format!("app {}", a.as_deref().unwrap_or("-")));
            }
            if let Some(t) = &g.key.tags {
                what.push(format!("tags [{}]", t.join(", ")));
            }
            output::line(format!(
                "snapshots of {}:",
                if what.is_empty() {
                    "all".into()
                } else {
                    what.join(", ")
                }
            ))?;
            let keep: Vec<Vec<String>> = g
                .keep
                .iter()
                .map(|k| vec![k.id.short(), output::time(k.time), k.reasons.join(", ")])
                .collect();
            output::line(format!("keep {} snapshots:", keep.len()))?;
            output::table(&["ID", "Time", "Reasons"], &keep)?;
            let remove: Vec<Vec<String>> = g
                .remove
                .iter()
                .map(|(id, t)| vec![id.short(), output::time(*t)])
                .collect();
            output::line(format!("remove {} snapshots:", remove.len()))?;
            if !remove.is_empty() {
                output::table(&["ID", "Time"], &remove)?;
            }
            output::line("")?;
        }
    }
    if args.dry_run {
        if !ctx.global.quiet && !ctx.global.json {
            output::line(format!(
                "dry run: would remove {} snapshots",
                to_remove.len()
            ))?;
        }
        return Ok(Outcome::Ok);
    }
    let removed = remove_snapshots(&repo, &to_remove)?;
    if !ctx.global.quiet && !ctx.global.json {
        output::line(format!("removed {removed} snapshots"))?;
    }
    if args.prune {
        drop(_lock);
        let opts = super::prune::options(&crate::args::PruneArgs {
            max_unused: args.max_unused.clone(),
            max_repack_size: args.max_repack_size.clone(),
            dry_run: false,
        })?;
        return super::prune::run_on(ctx, &repo, &opts);
    }
    Ok(Outcome::Ok)
}
