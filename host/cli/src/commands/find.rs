//! `cairn find`: restic's, with its JSON shapes (`matches`/`hits`/`snapshot` per snapshot for
//! patterns; one object per hit for `--blob`, `--tree`, `--pack`).

use anyhow::Result;
use cairn_repo::ops::find::{Hit, ObjectKind, Query, Search, blobs_in_packs};
use cairn_repo::{Id, Node, Snapshot};
use serde_json::{Value, json};

use crate::Outcome;
use crate::args::FindArgs;
use crate::output;
use crate::settings::Ctx;

pub fn run(ctx: &Ctx, args: FindArgs) -> Result<Outcome> {
    let repo = ctx.open()?;
    let snapshots = super::select(&repo, &args.snapshots, &args.filter)?;
    let repo = repo.to_indexed()?;
    let ns = |t: jiff::Timestamp| i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX);
    let mut query = Query {
        ignore_case: args.ignore_case,
        oldest: args.oldest.map(ns),
        newest: args.newest.map(ns),
        ..Query::default()
    };
    if args.blob {
        query.blobs.clone_from(&args.patterns);
    } else if args.tree {
        query.trees.clone_from(&args.patterns);
    } else if args.pack {
        query.blobs = blobs_in_packs(&repo, &args.patterns)?;
    } else {
        query.patterns.clone_from(&args.patterns);
    }
    let objects = args.blob || args.tree || args.pack;
    if objects && query.blobs.is_empty() && query.trees.is_empty() {
        // Packs with no blobs the index knows of: nothing can be found.
        if ctx.global.json {
            output::json(&json!([]))?;
        }
        return Ok(Outcome::Ok);
    }
    let search = Search::new(&query)?;
    let mut json_out = Vec::new();
    for (id, snap) in &snapshots {
        let mut hits = Vec::new();
        search.run(&repo, snap.tree, &mut |hit| {
            hits.push(found(&hit, id, snap, objects));
            Ok(())
        })?;
        if hits.is_empty() {
            continue;
        }
        if ctx.global.json {
            if objects {
                json_out.extend(hits.into_iter().map(|h| h.json));
            } else {
                let count = hits.len();
                json_out.push(json!({
                    "matches": hits.into_iter().map(|h| h.json).collect::<Vec<_>>(),
                    "hits": count,
                    "snapshot": id.to_string(),
                }));
            }
            continue;
        }
        output::line(format!(
            "Found matching entries in snapshot {} from {}",
            id.short(),
            output::time(snap.time)
        ))?;
        for h in hits {
            output::line(if args.long { h.long } else { h.line })?;
        }
        output::line("")?;
    }
    if ctx.global.json {
        output::json(&json_out)?;
    }
    Ok(Outcome::Ok)
}

/// A hit as restic prints it: a line, an `ls -l` line, and JSON.
struct Found {
    line: String,
    long: String,
    json: Value,
}

fn found(hit: &Hit<'_>, id: &Id, snap: &Snapshot, objects: bool) -> Found {
    let n: &Node = hit.node;
    if let (true, Some((kind, object))) = (objects, hit.object) {
        let kind = match kind {
            ObjectKind::Blob => "blob",
            ObjectKind::Tree => "tree",
        };
        return Found {
            line: format!("{kind} {} in {}", object.short(), hit.path),
            long: format!("{kind} {object} in {}", output::long_line(hit.path, n)),
            json: json!({
                "object_type": kind,
                "id": object.to_string(),
                "path": hit.path,
                "parent_tree": hit.parent.to_string(),
                "snapshot": id.to_string(),
                "time": snap.time.to_string(),
            }),
        };
    }
    let mut entry = output::NodeJson::new(hit.path, n);
    entry.size = Some(n.size);
    entry.device_id = Some(n.device_id);
    entry.links = Some(n.links);
    Found {
        line: hit.path.to_owned(),
        long: output::long_line(hit.path, n),
        json: serde_json::to_value(&entry).unwrap_or_default(),
    }
}
