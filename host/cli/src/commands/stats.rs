//! `cairn stats`

use anyhow::Result;

use crate::Outcome;
use crate::args::StatsArgs;
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
