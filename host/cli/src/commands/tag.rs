//! `cairn tag`: change the tags of snapshots (`cairn_repo::ops::tag`).

use anyhow::{Result, bail};
use cairn_repo::ops::tag::{TagChange, retag};

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
    let change = TagChange {
        set: args.set.clone(),
        add: args.add.clone(),
        remove: args.remove.clone(),
    };
    let changed = retag(&repo, snaps, &change)?;
    if !ctx.global.json && !ctx.global.quiet {
        for c in &changed {
            output::line(format!(
                "snapshot {} is now {} (tags: {})",
                c.old.short(),
                c.new.short(),
                c.tags.join(",")
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
