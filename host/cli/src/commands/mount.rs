//! `cairn mount`

use anyhow::Result;
use cairn_mount::MountOptions;

use crate::Outcome;
use crate::args::MountArgs;
use crate::settings::Ctx;

pub fn run(ctx: &Ctx, args: &MountArgs) -> Result<Outcome> {
    let repo = ctx.open()?;
    let opts = MountOptions {
        allow_other: args.allow_other,
        filter: (&args.filter).into(),
        refresh: cairn_apps::units::parse_duration(&args.refresh)
            .map_err(|e| e.context("--refresh"))?,
    };
    let at = args.mountpoint.display().to_string();
    cairn_mount::mount(repo, &args.mountpoint, &opts, ctx.cancel(), || {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr().lock(),
            "serving the snapshots at {at}; Ctrl-C or `fusermount -u {at}` to stop"
        );
    })?;
    Ok(Outcome::Ok)
}
