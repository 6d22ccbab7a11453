//! `cairn unlock` and `cairn list`.

use anyhow::{Result, bail};
use cairn_repo::FileType;
use cairn_repo::lock::{list_locks, remove_locks};

use crate::Outcome;
use crate::args::{ListArgs, ListKind, UnlockArgs};
use crate::output;
use crate::settings::Ctx;

pub fn unlock(ctx: &Ctx, args: UnlockArgs) -> Result<Outcome> {
    if args.remove_all && !args.yes_remove_live_locks {
        bail!(
            "--remove-all also removes locks of running processes, which can break a running \
             prune or backup; add --yes-remove-live-locks to confirm"
        );
    }
    let repo = ctx.open()?;
    let removed = remove_locks(&repo, &ctx.actor().hostname, args.remove_all)?;
    if ctx.global.json {
        output::json(&serde_json::json!({ "removed": removed }))?;
    } else if !ctx.global.quiet {
        output::line(format!("removed {removed} locks"))?;
    }
    Ok(Outcome::Ok)
}

pub fn list(ctx: &Ctx, args: ListArgs) -> Result<Outcome> {
    let repo = ctx.open()?;
    if let ListKind::Locks = args.kind {
        let locks = list_locks(&repo, &ctx.actor().hostname)?;
        if ctx.global.json {
            let v: Vec<_> = locks
                .iter()
                .map(|l| serde_json::json!({ "id": l.id, "stale": l.stale, "lock": l.lock }))
                .collect();
            output::json(&v)?;
        } else {
            for l in &locks {
                let what = match &l.lock {
                    Some(x) => format!(
                        "{} pid {} {}@{} {}",
                        if x.exclusive { "exclusive" } else { "shared" },
                        x.pid,
                        x.username,
                        x.hostname,
                        output::time(x.time)
                    ),
                    None => "unreadable".into(),
                };
                output::line(format!(
                    "{} {what}{}",
                    l.id,
                    if l.stale { " (stale)" } else { "" }
                ))?;
            }
        }
        return Ok(Outcome::Ok);
    }
    let tpe = match args.kind {
        ListKind::Keys => FileType::Key,
        ListKind::Snapshots => FileType::Snapshot,
        ListKind::Index => FileType::Index,
        ListKind::Packs => FileType::Pack,
        ListKind::Locks => unreachable!("handled above"),
    };
    let mut names: Vec<String> = repo
        .backend()
        .list(tpe)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    names.sort();
    if ctx.global.json {
        output::json(&names)?;
    } else {
        for n in names {
            output::line(n)?;
        }
    }
    Ok(Outcome::Ok)
}
