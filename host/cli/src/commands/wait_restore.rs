//! `cairn wait-restore`

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::Outcome;
use crate::args::WaitRestoreArgs;
use crate::marker;
use crate::settings::Ctx;
use crate::settings::parse_duration;

const POLL: Duration = Duration::from_millis(200);

pub fn run(ctx: &Ctx, args: WaitRestoreArgs) -> Result<Outcome> {
    marker::check(&args.marker)?;
    let timeout = args.timeout.as_deref().map(parse_duration).transpose()?;
    let start = Instant::now();
    loop {
        let missing: Vec<_> = args
            .dirs
            .iter()
            .filter(|d| !marker::path(d, &args.marker).is_file())
            .collect();
        if missing.is_empty() {
            if !ctx.global.quiet {
                tracing::info!(
                    "restore {} is complete in {} directories",
                    args.marker,
                    args.dirs.len()
                );
            }
            return Ok(Outcome::Ok);
        }
        if ctx.cancel().load(std::sync::atomic::Ordering::Relaxed) {
            bail!("interrupted while waiting for restore {}", args.marker);
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            let names: Vec<String> = missing.iter().map(|d| d.display().to_string()).collect();
            bail!(
                "restore {} is not complete after {}: no marker in {}",
                args.marker,
                args.timeout.as_deref().unwrap_or_default(),
                names.join(", ")
            );
        }
        std::thread::sleep(POLL);
    }
}
