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
    if ctx.global.json {
        for c in &changes {
            output::json(c)?;
        }
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
    let count = |k| changes.iter().filter(|c| c.change == k).count();
    use cairn_repo::ops::diff::Change;
    output::line(format!(
        "{} added, {} removed, {} modified, {} metadata only",
        count(Change::Added),
        count(Change::Removed),
        count(Change::Modified),
        count(Change::Metadata)
    ))?;
    Ok(Outcome::Ok)
}
