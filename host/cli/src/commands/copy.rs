//! `cairn copy`

use anyhow::{Result, bail};
use cairn_repo::ops::copy::copy;

use crate::Outcome;
use crate::args::CopyArgs;
use crate::output;
use crate::settings::Ctx;

pub fn run(ctx: &Ctx, args: CopyArgs) -> Result<Outcome> {
    if args.ids.is_empty() && !args.all {
        bail!("name the snapshots to copy, or give --all");
    }
    let src = ctx.open_from(&args.from)?;
    let dst = ctx.open()?;
    if src.config().id == dst.config().id {
        bail!("the source and the destination are the same repository");
    }
    let _src_lock = ctx.lock(&src, false)?;
    let _dst_lock = if args.dry_run {
        None
    } else {
        Some(ctx.lock(&dst, false)?)
    };
    let (a, b) = (src.config().chunker, dst.config().chunker);
    if a != b {
        tracing::warn!(
            "the repositories chunk differently (source {a}, destination {b}): the copied data \
             deduplicates with other copies but not with this repository's own backups of the \
             same files; for full deduplication, copy into a repository made with `cairn init \
             --copy-chunker-params --from-repo SOURCE`"
        );
    }
    let snapshots = super::select(&src, &args.ids, &args.filter)?;
    let (src, dst) = (src.to_indexed()?, dst.to_indexed()?);
    let report = copy(&src, &dst, &snapshots, args.dry_run)?;
    if ctx.global.json {
        output::json(&report)?;
    } else if !ctx.global.quiet {
        for id in &report.skipped {
            output::line(format!(
                "snapshot {} is already in the destination",
                id.short()
            ))?;
        }
        for (from, to) in &report.copied {
            match to {
                Some(to) => output::line(format!(
                    "copied snapshot {} as {}",
                    from.short(),
                    to.short()
                ))?,
                None => output::line(format!("would copy snapshot {}", from.short()))?,
            }
        }
        output::line(format!(
            "{} snapshots copied, {} already there; {} blobs ({}) added, {} blobs read",
            report.copied.len(),
            report.skipped.len(),
            report.blobs_added,
            output::bytes(report.bytes_added),
            report.blobs_read
        ))?;
    }
    Ok(Outcome::Ok)
}
