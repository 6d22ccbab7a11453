//! `cairn check`

use anyhow::{Result, bail};
use cairn_repo::ops::check::{CheckProgress, ReadData, Severity, check};

use crate::Outcome;
use crate::args::CheckArgs;
use crate::output;
use crate::settings::Ctx;

struct Phases {
    show: bool,
}

impl CheckProgress for Phases {
    fn phase(&self, name: &str, total: u64) {
        if self.show {
            use std::io::Write;
            let unit = if name == "read data" {
                "bytes"
            } else {
                "items"
            };
            let _ = writeln!(std::io::stderr().lock(), "checking {name} ({total} {unit})");
        }
    }
}

pub fn run(ctx: &Ctx, args: CheckArgs) -> Result<Outcome> {
    let read = match (&args.read_data_subset, args.read_data) {
        (Some(s), _) => cairn_apps::units::parse_read_data(s)?,
        (None, true) => ReadData::All,
        (None, false) => ReadData::None,
    };
    let repo = ctx.open()?;
    let _lock = ctx.lock(&repo, false)?;
    let progress = Phases {
        show: !ctx.global.quiet && !ctx.global.json,
    };
    let report = check(&repo, read, &progress, ctx.cancel())?;
    let errors = report.errors();
    if ctx.global.json {
        let mut v = serde_json::to_value(&report)?;
        v["errors"] = serde_json::json!(errors);
        output::json(&v)?;
    } else {
        for p in &report.problems {
            let tag = match p.severity {
                Severity::Error => "error",
                Severity::Orphan => "orphan",
            };
            output::line(format!("{tag}: {} {}", p.object, p.message))?;
        }
        if !ctx.global.quiet {
            output::line(format!(
                "checked {} index files, {} packs, {} snapshots, {} trees; read {} packs ({}), {} blobs verified",
                report.index_files,
                report.packs,
                report.snapshots,
                report.trees,
                report.packs_read,
                output::bytes(report.bytes_read),
                report.blobs_verified
            ))?;
            output::line(if errors == 0 {
                "no errors were found".to_owned()
            } else {
                format!("{errors} errors")
            })?;
        }
    }
    if errors > 0 {
        bail!("the repository has {errors} errors (listed above)");
    }
    Ok(Outcome::Ok)
}
