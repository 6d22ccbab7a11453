//! `cairn stats`

use anyhow::Result;

use crate::Outcome;
use crate::args::{StatsArgs, StatsMode};
use crate::output;
use crate::settings::Ctx;

pub fn run(ctx: &Ctx, args: StatsArgs) -> Result<Outcome> {
    let repo = ctx.open()?;
    let trees: Vec<_> = super::select(&repo, &args.ids, &args.filter)?
        .into_iter()
        .map(|(_, s)| s.tree)
        .collect();
    let repo = repo.to_indexed()?;
    let s = cairn_repo::ops::stats::stats(&repo, &trees)?;
    let repo_size: u64 = repo.index().packs().iter().map(|p| p.1).sum();
    if let Some(mode) = args.mode {
        // restic's fields for the mode.
        let (size, count) = match mode {
            StatsMode::RestoreSize => (s.restore_size, s.total_files),
            StatsMode::FilesByContents => (s.unique_files_size, s.unique_files),
            StatsMode::RawData => (s.raw_data + s.raw_trees, s.blobs),
            StatsMode::BlobsPerFile => (s.blobs_per_file_size, s.unique_files),
        };
        if ctx.global.json {
            let mut v = serde_json::json!({
                "total_size": size,
                "snapshots_count": s.snapshots,
            });
            if mode == StatsMode::RawData {
                v["total_blob_count"] = serde_json::json!(s.blobs);
                v["total_uncompressed_size"] = serde_json::json!(s.raw_data + s.raw_trees);
                v["total_size"] = serde_json::json!(s.stored_size);
                v["compression_ratio"] = serde_json::json!(s.compression_ratio);
            } else {
                v["total_file_count"] = serde_json::json!(count);
            }
            output::json(&v)?;
            return Ok(Outcome::Ok);
        }
        let name = clap::ValueEnum::to_possible_value(&mode).map(|v| v.get_name().to_owned());
        output::line(format!("Stats in {} mode:", name.unwrap_or_default()))?;
        output::line(format!("     Snapshots processed:  {}", s.snapshots))?;
        if mode == StatsMode::RawData {
            output::line(format!("        Total Blob Count:  {}", s.blobs))?;
            output::line(format!(
                " Total Uncompressed Size:  {}",
                output::bytes(s.raw_data + s.raw_trees)
            ))?;
            output::line(format!(
                "              Total Size:  {}",
                output::bytes(s.stored_size)
            ))?;
            output::line(format!(
                "    Compression Ratio:  {:.2}x",
                s.compression_ratio
            ))?;
        } else {
            output::line(format!("        Total File Count:  {count}"))?;
            output::line(format!(
                "              Total Size:  {}",
                output::bytes(size)
            ))?;
        }
        return Ok(Outcome::Ok);
    }
    if ctx.global.json {
        let mut v = serde_json::to_value(&s)?;
        v["repository_size"] = serde_json::json!(repo_size);
        output::json(&v)?;
        return Ok(Outcome::Ok);
    }
    output::line(format!("snapshots:          {}", s.snapshots))?;
    output::line(format!("files:              {}", s.total_files))?;
    output::line(format!(
        "restore size:       {}",
        output::bytes(s.restore_size)
    ))?;
    output::line(format!(
        "raw data:           {} in {} blobs",
        output::bytes(s.raw_data),
        s.blobs
    ))?;
    output::line(format!(
        "stored size:        {}",
        output::bytes(s.stored_size)
    ))?;
    output::line(format!("dedup ratio:        {:.2}x", s.dedup_ratio))?;
    output::line(format!("compression ratio:  {:.2}x", s.compression_ratio))?;
    output::line(format!("repository packs:   {}", output::bytes(repo_size)))?;
    Ok(Outcome::Ok)
}
