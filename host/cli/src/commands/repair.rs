//! `cairn repair index | snapshots` and `cairn rewrite`: restic's, on the engine's tree
//! rewriter.

use anyhow::{Result, bail};
use cairn_repo::PathPatterns;
use cairn_repo::ops::repair::{repair_index, repair_snapshots};
use cairn_repo::ops::rewrite::{
    Excluding, RewriteOptions, Rewritten, rewrite as rewrite_snapshots,
};
use serde_json::json;

use crate::Outcome;
use crate::args::{RepairCommand, RewriteArgs};
use crate::output;
use crate::settings::Ctx;

pub fn run(ctx: &Ctx, command: RepairCommand) -> Result<Outcome> {
    match command {
        RepairCommand::Index(a) => {
            let repo = ctx.open()?;
            let _lock = ctx.lock(&repo, true)?;
            let r = repair_index(&repo, a.dry_run)?;
            for (id, why) in &r.unreadable {
                tracing::warn!("pack {id} left out: {why}");
            }
            if ctx.global.json {
                output::json(&json!({
                    "packs": r.packs,
                    "blobs": r.blobs,
                    "unreadable_packs": r.unreadable.iter().map(|(id, why)| json!({"id": id, "error": why})).collect::<Vec<_>>(),
                    "kept_from_old_index": r.kept_from_old,
                    "index_files_written": r.written,
                    "index_files_removed": r.removed,
                    "dry_run": a.dry_run,
                }))?;
            } else if !ctx.global.quiet {
                let would = if a.dry_run { "would write" } else { "wrote" };
                output::line(format!(
                    "read {} packs ({} blobs); {would} {} index files in place of {}",
                    r.packs, r.blobs, r.written, r.removed
                ))?;
                if r.kept_from_old > 0 {
                    output::line(format!(
                        "{} packs have unreadable headers: what the old index said of them is \
                         kept (`cairn check --read-data` tells whether their blobs are whole)",
                        r.kept_from_old
                    ))?;
                }
                if r.unreadable.len() > r.kept_from_old {
                    output::line(format!(
                        "{} packs are unreadable and not indexed: run `cairn repair snapshots` \
                         so that the snapshots needing them can be restored",
                        r.unreadable.len() - r.kept_from_old
                    ))?;
                }
            }
            Ok(if r.unreadable.is_empty() {
                Outcome::Ok
            } else {
                Outcome::Incomplete
            })
        }
        RepairCommand::Snapshots(a) => {
            let repo = ctx.open()?;
            let _lock = ctx.lock(&repo, a.forget)?;
            let snaps = super::select(&repo, &a.ids, &a.filter)?;
            let repo = repo.to_indexed()?;
            let r = repair_snapshots(&repo, &snaps, a.forget, a.dry_run)?;
            for (id, e) in &r.unrepairable {
                tracing::error!(
                    "snapshot {} cannot be repaired: {e}; remove it with `cairn forget {}`",
                    id.short(),
                    id.short()
                );
            }
            if ctx.global.json {
                output::json(&json!({
                    "changes": r.changes.iter().map(|(p, c)| json!({"path": p, "change": c})).collect::<Vec<_>>(),
                    "snapshots": rewritten_json(&r.rewritten),
                    "unrepairable": r.unrepairable.iter().map(|(id, e)| json!({"id": id, "error": e.to_string()})).collect::<Vec<_>>(),
                }))?;
            } else if !ctx.global.quiet {
                for (path, change) in &r.changes {
                    output::line(format!("  {path}: {change}"))?;
                }
                print_rewritten(&r.rewritten, a.dry_run, "repaired")?;
            }
            Ok(if r.unrepairable.is_empty() {
                Outcome::Ok
            } else {
                Outcome::Incomplete
            })
        }
    }
}

pub fn rewrite(ctx: &Ctx, args: &RewriteArgs) -> Result<Outcome> {
    let patterns = super::backup::read_exclude_files(&args.exclude, &args.exclude_file)?;
    if patterns.is_empty() {
        bail!("nothing to remove: give --exclude or --exclude-file");
    }
    let edit = Excluding(PathPatterns::new(&patterns)?);
    let repo = ctx.open()?;
    let _lock = ctx.lock(&repo, args.forget)?;
    let snaps = super::select(&repo, &args.ids, &args.filter)?;
    let repo = repo.to_indexed()?;
    let opts = RewriteOptions {
        forget: args.forget,
        dry_run: args.dry_run,
        add_tags: Vec::new(),
    };
    let report = rewrite_snapshots(&repo, &snaps, &edit, &opts)?;
    let (done, failed) = (report.rewritten, report.failed);
    for (id, e) in &failed {
        tracing::error!("snapshot {} cannot be rewritten: {e}", id.short());
    }
    if ctx.global.json {
        output::json(&rewritten_json(&done))?;
    } else if !ctx.global.quiet {
        print_rewritten(&done, args.dry_run, "rewritten")?;
        if args.forget && !done.is_empty() && !args.dry_run {
            output::line("the removed data stays in the repository until `cairn prune`")?;
        }
    }
    Ok(if failed.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Incomplete
    })
}

fn rewritten_json(done: &[Rewritten]) -> Vec<serde_json::Value> {
    done.iter()
        .map(|r| json!({"old": r.old, "new": r.new, "forgotten": r.forgotten}))
        .collect()
}

fn print_rewritten(done: &[Rewritten], dry_run: bool, what: &str) -> Result<()> {
    for r in done {
        match r.new {
            Some(new) => output::line(format!(
                "snapshot {} {what} as {}{}",
                r.old.short(),
                new.short(),
                if r.forgotten {
                    " (the old one removed)"
                } else {
                    ""
                }
            ))?,
            None => output::line(format!("snapshot {} would be {what}", r.old.short()))?,
        }
    }
    if done.is_empty() {
        output::line("no snapshot needed a change")?;
    } else if dry_run {
        output::line(format!("{} snapshots would be {what}", done.len()))?;
    }
    Ok(())
}
