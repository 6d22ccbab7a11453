//! `cairn dump`

use anyhow::Result;

use crate::Outcome;
use crate::args::DumpArgs;
use crate::settings::Ctx;

pub fn run(ctx: &Ctx, args: DumpArgs) -> Result<Outcome> {
    let repo = ctx.open()?;
    let (_, snap) = super::find(&repo, &args.snapshot, &args.filter)?;
    let repo = repo.to_indexed()?;
    let mut out = std::io::stdout().lock();
    cairn_repo::ops::dump::dump(&repo, snap.tree, &args.file, &mut out)?;
    Ok(Outcome::Ok)
}
