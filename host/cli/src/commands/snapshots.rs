//! `cairn snapshots`

use anyhow::Result;

use crate::Outcome;
use crate::args::SnapshotsArgs;
use crate::output;
use crate::settings::Ctx;

pub fn run(ctx: &Ctx, args: SnapshotsArgs) -> Result<Outcome> {
    let repo = ctx.open()?;
    let snaps = super::select(&repo, &args.ids, &args.filter)?;
    if ctx.global.json {
        let list: Vec<_> = snaps
            .iter()
            .map(|(id, s)| {
                let mut v = serde_json::to_value(s).expect("snapshot serializes");
                v["id"] = serde_json::json!(id);
                v["short_id"] = serde_json::json!(id.short());
                v
            })
            .collect();
        output::json(&list)?;
        return Ok(Outcome::Ok);
    }
    let rows: Vec<Vec<String>> = snaps
        .iter()
        .map(|(id, s)| {
            vec![
                id.short(),
                output::time(s.time),
                s.hostname.clone(),
                s.app.clone().unwrap_or_default(),
                s.tags.join(","),
                s.summary
                    .as_ref()
                    .map(|x| output::bytes(x.total_bytes_processed))
                    .unwrap_or_default(),
                // A volume's identity says more than the path it had on one node.
                s.volume.clone().unwrap_or_else(|| s.paths.join(" ")),
            ]
        })
        .collect();
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
    output::line(format!("{} snapshots", snaps.len()))?;
    Ok(Outcome::Ok)
}
