//! One module per command.

mod backup;
mod cat;
mod diff;
mod dump;
mod init;
mod key;
mod ls;
mod restore;
mod snapshots;
mod stats;

use anyhow::Result;
use cairn_repo::{Id, Repository, Snapshot, SnapshotFilter};

use crate::Outcome;
use crate::args::{Command, FilterArgs};
use crate::settings::Ctx;

/// Runs one command.
pub fn run(ctx: &Ctx, command: Command) -> Result<Outcome> {
    match command {
        Command::Init(a) => init::run(ctx, a),
        Command::Backup(a) => backup::run(ctx, a),
        Command::Snapshots(a) => snapshots::run(ctx, a),
        Command::Ls(a) => ls::run(ctx, a),
        Command::Diff(a) => diff::run(ctx, a),
        Command::Stats(a) => stats::run(ctx, a),
        Command::Cat(a) => cat::run(ctx, a),
        Command::Dump(a) => dump::run(ctx, a),
        Command::Restore(a) => restore::run(ctx, a),
        Command::Key(a) => key::run(ctx, a),
    }
}

impl From<&FilterArgs> for SnapshotFilter {
    fn from(f: &FilterArgs) -> Self {
        SnapshotFilter {
            hosts: f.host.clone(),
            tags: f.tag.clone(),
            paths: f.path.clone(),
            apps: f.app.clone(),
        }
    }
}

/// Resolves `latest` or an id prefix.
pub fn find(repo: &Repository, spec: &str, filter: &FilterArgs) -> Result<(Id, Snapshot)> {
    Ok(cairn_repo::find_snapshot(repo, spec, &filter.into())?)
}
