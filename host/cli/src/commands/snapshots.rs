//! `cairn snapshots`

use anyhow::Result;
use cairn_repo::ops::forget::{GroupBy, GroupKey, group, newest_first};
use cairn_repo::{Id, Snapshot};

use crate::Outcome;
use crate::args::SnapshotsArgs;
use crate::output;
use crate::settings::Ctx;

/// A group's key (none when not grouped) and its snapshots.
type Group<'a> = (Option<GroupKey>, Vec<&'a (Id, Snapshot)>);

pub fn run(ctx: &Ctx, args: SnapshotsArgs) -> Result<Outcome> {
    let repo = ctx.open()?;
    let mut snaps = super::select(&repo, &args.ids, &args.filter)?;
    snaps.retain(|(_, s)| {
        args.before.is_none_or(|t| s.time < t) && args.after.is_none_or(|t| s.time >= t)
    });
    let group_by = args.group_by.as_deref().map(GroupBy::parse).transpose()?;
    if let Some(n) = args.latest {
        let mut kept = std::collections::HashSet::new();
        for mut members in group(&snaps, group_by.unwrap_or_default()).into_values() {
            newest_first(&mut members);
            kept.extend(members.iter().take(n).map(|s| s.0));
        }
        snaps.retain(|(id, _)| kept.contains(id));
    }
    let groups: Vec<Group> = match group_by {
        Some(g) => group(&snaps, g)
            .into_iter()
            .map(|(k, v)| (Some(k), v))
            .collect(),
        None => vec![(None, snaps.iter().collect())],
    };
    if ctx.global.json {
        let list = |members: &[&(Id, Snapshot)]| -> Vec<serde_json::Value> {
            members
                .iter()
                .map(|(id, s)| output::snapshot_json(id, s))
                .collect()
        };
        match group_by {
            None => output::json(&list(&groups[0].1))?,
            Some(_) => output::json(
                &groups
                    .iter()
                    .map(|(key, members)| {
                        serde_json::json!({ "group_key": key, "snapshots": list(members) })
                    })
                    .collect::<Vec<_>>(),
            )?,
        }
        return Ok(Outcome::Ok);
    }
    for (key, members) in &groups {
        if let Some(key) = key {
            output::line(format!("snapshots for {}:", describe(key)))?;
        }
        table(members, args.compact)?;
    }
    output::line(format!("{} snapshots", snaps.len()))?;
    Ok(Outcome::Ok)
}

/// `(host node-1, paths [/srv/a], app shop)`, as restic's group headings.
fn describe(key: &GroupKey) -> String {
    let mut parts = Vec::new();
    if let Some(h) = &key.hostname {
        parts.push(format!("host {h}"));
    }
    if let Some(p) = &key.paths {
        parts.push(format!("paths [{}]", p.join(", ")));
    }
    if let Some(a) = &key.app {
        parts.push(format!("app {}", a.as_deref().unwrap_or("(none)")));
    }
    if let Some(t) = &key.tags {
        parts.push(format!("tags [{}]", t.join(", ")));
    }
    if let Some(v) = &key.volume {
        parts.push(format!("volume {v}"));
    }
    format!("({})", parts.join(", "))
}

fn table(snaps: &[&(Id, Snapshot)], compact: bool) -> Result<()> {
    let rows: Vec<Vec<String>> = snaps
        .iter()
        .map(|(id, s)| {
            let mut row = vec![id.short(), output::time(s.time), s.hostname.clone()];
            if !compact {
                row.push(s.app.clone().unwrap_or_default());
            }
            row.push(s.tags.join(","));
            if !compact {
                row.push(
                    s.summary
                        .as_ref()
                        .map(|x| output::bytes(x.total_bytes_processed))
                        .unwrap_or_default(),
                );
                // A volume's identity says more than the path it had on one node.
                row.push(s.volume.clone().unwrap_or_else(|| s.paths.join(" ")));
            }
            row
        })
        .collect();
    if compact {
        output::table(&["ID", "Time", "Host", "Tags"], &rows)?;
    } else {
        output::table(
            &[
                "ID",
                "Time",
                "Host",
                "App",
                "Tags",
                "Size",
                "Paths / volume",
            ],
            &rows,
        )?;
    }
    Ok(())
}
