//! One module per command.

mod agent;
mod backup;
mod cache;
mod cat;
mod check;
mod copy;
mod diff;
mod discover;
mod dump;
mod find;
mod forget;
mod gateway;
mod generate;
mod init;
mod key;
mod locks;
mod ls;
mod mount;
mod plugin;
mod prune;
mod repair;
mod restore;
mod snapshots;
mod stats;
mod tag;
mod wait_restore;

use anyhow::Result;
use cairn_repo::{Id, Repository, Snapshot, SnapshotFilter};

use crate::Outcome;
use crate::args::{Command, DiscoverySource, FilterArgs};
use crate::settings::Ctx;

/// Runs one command.
pub fn run(ctx: &Ctx, command: Command) -> Result<Outcome> {
    match command {
        Command::Init(a) => init::run(ctx, a),
        Command::Backup(a) => backup::run(ctx, a),
        Command::Snapshots(a) => snapshots::run(ctx, a),
        Command::Ls(a) => ls::run(ctx, a),
        Command::Find(a) => find::run(ctx, a),
        Command::Mount(a) => mount::run(ctx, &a),
        Command::Diff(a) => diff::run(ctx, a),
        Command::Stats(a) => stats::run(ctx, a),
        Command::Cat(a) => cat::run(ctx, a),
        Command::Dump(a) => dump::run(ctx, a),
        Command::Restore(a) => restore::run(ctx, a),
        Command::Check(a) => check::run(ctx, a),
        Command::Forget(a) => forget::run(ctx, a),
        Command::Prune(a) => prune::run(ctx, a),
        Command::Tag(a) => tag::run(ctx, a),
        Command::Rewrite(a) => repair::rewrite(ctx, &a),
        Command::Repair(a) => repair::run(ctx, a),
        Command::Unlock(a) => locks::unlock(ctx, a),
        Command::List(a) => locks::list(ctx, a),
        Command::Copy(a) => copy::run(ctx, a),
        Command::Key(a) => key::run(ctx, a),
        Command::Plugin(a) => plugin::run(ctx, a),
        Command::Discover(a) => discover::run(ctx, a),
        Command::WaitRestore(a) => wait_restore::run(ctx, a),
        Command::Gateway(a) => gateway::run(ctx, a),
        Command::Agent(a) => agent::run(ctx, a),
        Command::Cache(a) => cache::run(ctx, &a),
        Command::Generate(a) => generate::run(&a),
        Command::Version => generate::version(ctx),
    }
}

impl From<&DiscoverySource> for cairn_apps::Discovery {
    fn from(s: &DiscoverySource) -> Self {
        cairn_apps::Discovery {
            plugins: s.plugins.clone(),
            inventory: s.inventory.clone().map(cairn_apps::Inventory::File),
        }
    }
}

impl From<&FilterArgs> for SnapshotFilter {
    fn from(f: &FilterArgs) -> Self {
        SnapshotFilter {
            hosts: f.host.clone(),
            tags: f.tag.clone(),
            paths: f.path.clone(),
            apps: f.app.clone(),
            volumes: f.volume.clone(),
            until: f.as_of,
            since: None,
        }
    }
}

/// The snapshots named by `ids` (`latest` or id prefixes), or, with no ids, every snapshot
/// that passes `filter`; oldest first.
pub fn select(
    repo: &Repository,
    ids: &[String],
    filter: &FilterArgs,
) -> Result<Vec<(Id, Snapshot)>> {
    if ids.is_empty() {
        let f: SnapshotFilter = filter.into();
        Ok(repo
            .snapshots()?
            .into_iter()
            .filter(|(_, s)| f.matches(s))
            .collect())
    } else {
        ids.iter().map(|spec| find(repo, spec, filter)).collect()
    }
}

/// Resolves `latest` or an id prefix.
pub fn find(repo: &Repository, spec: &str, filter: &FilterArgs) -> Result<(Id, Snapshot)> {
    Ok(cairn_repo::find_snapshot(repo, spec, &filter.into())?)
}
