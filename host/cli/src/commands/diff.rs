//! `cairn diff`

use anyhow::Result;

use crate::Outcome;
use crate::args::{DiffArgs, FilterArgs};
use crate::output;
use crate::settings::Ctx;

pub fn run(ctx: &Ctx, args: DiffArgs) -> Result<Outcome> {
    let repo = ctx.open()?;
    let none = FilterArgs::default();
    let (ida, a) = super::find(&repo, &args.a, &none)?;
    let (idb, b) = super::find(&repo, &args.b, &none)?;
    let repo = repo.to_indexed()?;
    let changes = cairn_repo::ops::diff::diff(&repo, a.tree, b.tree)?;
    use cairn_repo::ops::diff::Change;
    let count = |k: Change, dirs: bool| {
        changes
            .iter()
            .filter(|c| c.change == k && c.path.ends_with('/') == dirs)
            .count()
    };
    if ctx.global.json {
        // restic's shapes: a `change` line each, then the `statistics`.
        for c in &changes {
            output::json(&serde_json::json!({
                "message_type": "change",
                "path": c.path,
                "modifier": c.change.marker(),
            }))?;
        }
        output::json(&serde_json::json!({
            "message_type": "statistics",
            "source_snapshot": ida,
            "target_snapshot": idb,
            "changed_files": count(Change::Modified, false),
            "added": { "files": count(Change::Added, false), "dirs": count(Change::Added, true) },
            "removed": { "files": count(Change::Removed, false), "dirs": count(Change::Removed, true) },
        }))?;
        return Ok(Outcome::Ok);
    }
    output::line(format!(
        "comparing snapshot {} to {}:",
        ida.short(),
        idb.short()
    ))?;
    for c in &changes {
        output::line(format!("{:<3}{}", c.change.marker(), c.path))?;
    }
    let all = |k| count(k, false) + count(k, true);
    output::line(format!(
        "{} added, {} removed, {} modified, {} metadata only",
        all(Change::Added),
        all(Change::Removed),
        all(Change::Modified),
        all(Change::Metadata)
    ))?;
    Ok(Outcome::Ok)
}
