//! `cairn tag`: change the tags of snapshots (each changed snapshot is rewritten: a new
//! snapshot object with the new tags and `original` set, then the old one removed).

use anyhow::{Result, bail};
use cairn_repo::FileType;

use crate::Outcome;
use crate::args::TagArgs;
use crate::output;
use crate::settings::Ctx;

pub fn run(ctx: &Ctx, args: TagArgs) -> Result<Outcome> {
    if args.add.is_empty() && args.remove.is_empty() && args.set.is_none() {
        bail!("nothing to change: give --add, --remove or --set");
    }
    if args.set.is_some() && !(args.add.is_empty() && args.remove.is_empty()) {
        bail!("--set replaces all tags and cannot be combined with --add or --remove");
    }
    let repo = ctx.open()?;
    let _lock = ctx.lock(&repo, true)?;
    let snaps = super::select(&repo, &args.ids, &args.filter)?;
    let mut changed = Vec::new();
    for (id, mut snap) in snaps {
        let mut tags = match &args.set {
            Some(set) => set.iter().filter(|t| !t.is_empty()).cloned().collect(),
            None => snap.tags.clone(),
        };
        tags.retain(|t| !args.remove.contains(t));
        tags.extend(args.add.iter().filter(|t| !t.is_empty()).cloned());
        tags.sort();
        tags.dedup();
        if tags == snap.tags {
            continue;
        }
        snap.tags = tags;
        snap.original = Some(snap.original.unwrap_or(id));
        let new = repo.save_file(FileType::Snapshot, &snap)?;
        repo.backend().remove(FileType::Snapshot, &id.to_hex())?;
        changed.push(serde_json::json!({ "old": id, "new": new, "tags": snap.tags }));
        if !ctx.global.json && !ctx.global.quiet {
            output::line(format!(
                "snapshot {} is now {} (tags: {})",
                id.short(),
                new.short(),
                snap.tags.join(",")
            ))?;
        }
    }
    if ctx.global.json {
        output::json(&changed)?;
    } else if !ctx.global.quiet {
        output::line(format!("changed {} snapshots", changed.len()))?;
    }
    Ok(Outcome::Ok)
}
