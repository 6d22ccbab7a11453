//! Choosing snapshots: by id prefix, `latest`, and filters.

use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::format::snapshot::Snapshot;
use crate::id::Id;
use crate::repository::Repository;

/// Which snapshots a command looks at. Empty lists match everything.
#[derive(Debug, Clone, Default)]
pub struct SnapshotFilter {
    /// Any of these hosts.
    pub hosts: Vec<String>,
    /// Every one of these tags.
    pub tags: Vec<String>,
    /// Every one of these paths.
    pub paths: Vec<String>,
    /// Any of these apps.
    pub apps: Vec<String>,
    /// Any of these volume identities.
    pub volumes: Vec<String>,
    /// Taken at or before this time (`--as-of`: `latest` is then the newest up to it).
    pub until: Option<jiff::Timestamp>,
    /// Taken at or after this time.
    pub since: Option<jiff::Timestamp>,
}

impl SnapshotFilter {
    /// Whether `snap` passes.
    pub fn matches(&self, snap: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&snap.hostname))
            && self.tags.iter().all(|t| snap.tags.contains(t))
            && self.paths.iter().all(|p| snap.paths.contains(p))
            && (self.apps.is_empty() || snap.app.as_ref().is_some_and(|a| self.apps.contains(a)))
            && (self.volumes.is_empty()
                || snap
                    .volume
                    .as_ref()
                    .is_some_and(|v| self.volumes.contains(v)))
            && self.until.is_none_or(|t| snap.time <= t)
            && self.since.is_none_or(|t| snap.time >= t)
    }
}

/// Finds the snapshot `spec` names: `latest` (the newest that passes `filter`) or a unique id
/// prefix.
///
/// # Errors
/// [`ErrorKind::NotFound`] or [`ErrorKind::Ambiguous`] naming `spec`.
pub fn find_snapshot(
    repo: &Repository,
    spec: &str,
    filter: &SnapshotFilter,
) -> Result<(Id, Snapshot)> {
    if spec == "latest" {
        let matching: Vec<(Id, Snapshot)> = repo
            .snapshots()?
            .into_iter()
            .filter(|(_, s)| filter.matches(s))
            .collect();
        // The newest of several volumes' snapshots is seldom the one meant.
        let mut volumes: Vec<Option<&str>> =
            matching.iter().map(|(_, s)| s.volume.as_deref()).collect();
        volumes.sort_unstable();
        volumes.dedup();
        if volumes.len() > 1 {
            let named: Vec<&str> = volumes
                .iter()
                .map(|v| v.unwrap_or("(none)"))
                .take(5)
                .collect();
            return Err(Error::invalid(format!(
                "`latest` is ambiguous: snapshots of {} volumes match ({}{}); choose one with \
                 --volume IDENTITY",
                volumes.len(),
                named.join(", "),
                if volumes.len() > 5 { ", …" } else { "" }
            )));
        }
        return matching.into_iter().next_back().ok_or_else(|| {
            let when = filter
                .until
                .map(|t| format!(" at or before {t}"))
                .unwrap_or_default();
            Error::new(
                ErrorKind::NotFound,
                format!("no snapshot matches `latest`{when}"),
            )
        });
    }
    if filter.until.is_some() {
        return Err(Error::invalid(format!(
            "--as-of picks the newest snapshot up to a time: give `latest`, not the id `{spec}`"
        )));
    }
    let id = repo
        .find_id(FileType::Snapshot, spec)
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => Error::new(
                ErrorKind::NotFound,
                format!("no snapshot has an id starting with `{spec}`"),
            ),
            _ => e,
        })?;
    Ok((id, repo.load_file(FileType::Snapshot, &id)?))
}
