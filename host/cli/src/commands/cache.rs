//! `cairn cache`: the local caches, and removing old ones (restic's `cache --cleanup`).

use std::time::{Duration, SystemTime};

use anyhow::{Result, bail};
use cairn_backend::caches;
use serde_json::json;

use crate::Outcome;
use crate::args::CacheArgs;
use crate::output;
use crate::settings::Ctx;

pub fn run(ctx: &Ctx, args: &CacheArgs) -> Result<Outcome> {
    let Some(root) = ctx.settings().cache_dir.clone() else {
        bail!("no cache directory: --no-cache is set");
    };
    let max_age =
        cairn_apps::units::parse_duration(&args.max_age).map_err(|e| e.context("--max-age"))?;
    // The repository given (if any): its cache is marked.
    let current = ctx
        .settings()
        .repository
        .as_ref()
        .and_then(|_| ctx.backend().ok())
        .map(|b| caches::id_of(&b.location()));
    let now = SystemTime::now();
    let age = |t: SystemTime| now.duration_since(t).unwrap_or(Duration::ZERO);
    let list = caches::list(&root, !args.no_size)?;
    let old: Vec<_> = list.iter().filter(|c| age(c.last_used) > max_age).collect();
    let mut removed = 0u64;
    if args.cleanup {
        for c in &old {
            caches::remove(&root, &c.id)?;
            removed += c.size.unwrap_or(0);
        }
    }
    if ctx.global.json {
        let v: Vec<_> = list
            .iter()
            .map(|c| {
                let is_old = age(c.last_used) > max_age;
                json!({
                    "id": c.id,
                    "path": c.path,
                    "last_used": jiff::Timestamp::try_from(c.last_used).ok().map(|t| t.to_string()),
                    "old": is_old,
                    "removed": args.cleanup && is_old,
                    "size": c.size,
                    "current": current.as_deref() == Some(c.id.as_str()),
                })
            })
            .collect();
        output::json(&v)?;
        return Ok(Outcome::Ok);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            let mark = if current.as_deref() == Some(c.id.as_str()) {
                "*"
            } else {
                ""
            };
            let days = age(c.last_used).as_secs() / 86_400;
            vec![
                format!("{}{mark}", &c.id[..12]),
                format!("{days} days ago"),
                if age(c.last_used) > max_age {
                    "yes"
                } else {
                    ""
                }
                .to_owned(),
                c.size.map(output::bytes).unwrap_or_default(),
            ]
        })
        .collect();
    output::table(&["Repo ID", "Last Used", "Old", "Size"], &rows)?;
    if args.cleanup {
        if !old.is_empty() {
            output::line(format!(
                "removed {} old caches ({})",
                old.len(),
                output::bytes(removed)
            ))?;
        }
    } else if !old.is_empty() {
        tracing::warn!(
            "{} caches are not used for {}; remove them with `cairn cache --cleanup`",
            old.len(),
            args.max_age
        );
    }
    Ok(Outcome::Ok)
}
