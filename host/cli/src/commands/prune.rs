//! `cairn prune` (and `forget --prune`)

use anyhow::{Result, bail};
use cairn_repo::Repository;
use cairn_repo::ops::prune::{PruneOptions, prune};

use crate::Outcome;
use crate::args::PruneArgs;
use crate::output;
use crate::settings::{Ctx, parse_size};

pub fn options(args: &PruneArgs) -> Result<PruneOptions> {
    let mut opts = PruneOptions::default();
    let pct = args.max_unused.trim_end_matches('%');
    opts.max_unused_percent = match pct.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => p,
        _ => bail!(
            "--max-unused `{}`: give a percentage from 0% to 100%",
            args.max_unused
        ),
    };
    opts.max_repack_bytes = args
        .max_repack_size
        .as_deref()
        .map(parse_size)
        .transpose()?;
    opts.dry_run = args.dry_run;
    Ok(opts)
}

/// Prunes an opened repository under an exclusive lock and prints the report.
pub fn run_on(ctx: &Ctx, repo: &Repository, opts: &PruneOptions) -> Result<Outcome> {
    let _lock = ctx.lock(repo, true)?;
    let r = prune(repo, opts, ctx.cancel())?;
    if ctx.global.json {
        output::json(&r)?;
        return Ok(Outcome::Ok);
    }
    if ctx.global.quiet {
        return Ok(Outcome::Ok);
    }
    let sum = |v: &[cairn_repo::ops::prune::PackRef]| output::bytes(v.iter().map(|p| p.size).sum());
    let verb = if r.dry_run { "would" } else { "will" };
    output::line(format!(
        "{} snapshots use {} blobs; {} of {} in {} packs is unused",
        r.snapshots,
        r.used_blobs,
        output::bytes(r.unused_bytes),
        output::bytes(r.pack_bytes),
        r.packs
    ))?;
    if r.dry_run {
        for (what, list) in [
            ("delete", &r.delete),
            ("repack", &r.repack),
            ("delete orphaned", &r.orphans),
        ] {
            for p in list {
                output::line(format!(
                    "{verb} {what} pack {} ({})",
                    p.id,
                    output::bytes(p.size)
                ))?;
            }
        }
    }
    output::line(format!(
        "{} delete {} unused packs ({}), repack {} packs ({}), delete {} orphaned packs ({})",
        if r.dry_run { "would" } else { "did" },
        r.delete.len(),
        sum(&r.delete),
        r.repack.len(),
        sum(&r.repack),
        r.orphans.len(),
        sum(&r.orphans)
    ))?;
    output::line(format!(
        "{}: {}; unused bytes left in kept packs: {}",
        if r.dry_run {
            "would free about"
        } else {
            "freed"
        },
        output::bytes(r.bytes_freed.max(0) as u64),
        output::bytes(r.unused_bytes_left)
    ))?;
    if r.leftovers_removed > 0 {
        output::line(format!(
            "removed {} temporary files left by interrupted writers",
            r.leftovers_removed
        ))?;
    }
    Ok(Outcome::Ok)
}

pub fn run(ctx: &Ctx, args: PruneArgs) -> Result<Outcome> {
    let opts = options(&args)?;
    let repo = ctx.open()?;
    run_on(ctx, &repo, &opts)
}
