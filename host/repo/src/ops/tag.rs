//! `tag`: changing the tags of snapshots. A snapshot object is never edited: a changed snapshot
//! is saved anew with the new tags and `original` naming the first of its line, then the old
//! one is removed, so a crash in between leaves both (the same data twice), never neither.

use serde::Serialize;

use crate::error::Result;
use crate::format::snapshot::Snapshot;
use crate::id::Id;
use crate::{FileType, Repository};

/// How tags change: `set` replaces them all, then `remove` and `add` apply.
#[derive(Debug, Clone, Default)]
pub struct TagChange {
    /// Replace every tag with these (empty tags are dropped).
    pub set: Option<Vec<String>>,
    /// Add these.
    pub add: Vec<String>,
    /// Remove these.
    pub remove: Vec<String>,
}

impl TagChange {
    /// The tags of a snapshot tagged `tags` after the change: sorted, without duplicates.
    pub fn apply(&self, tags: &[String]) -> Vec<String> {
        let mut out: Vec<String> = match &self.set {
            Some(set) => set.iter().filter(|t| !t.is_empty()).cloned().collect(),
            None => tags.to_vec(),
        };
        out.retain(|t| !self.remove.contains(t));
        out.extend(self.add.iter().filter(|t| !t.is_empty()).cloned());
        out.sort();
        out.dedup();
        out
    }
}

/// One snapshot whose tags changed.
#[derive(Debug, Clone, Serialize)]
pub struct Retagged {
    /// The snapshot as it was (now removed).
    pub old: Id,
    /// The snapshot with the new tags.
    pub new: Id,
    /// Its tags now.
    pub tags: Vec<String>,
}

/// Applies `change` to `snapshots` (the caller holds an exclusive lock); the ones whose tags
/// changed, in order. Snapshots whose tags stay the same are not rewritten.
///
/// # Errors
/// Backend errors; the snapshots changed before the error stay changed.
pub fn retag(
    repo: &Repository,
    snapshots: Vec<(Id, Snapshot)>,
    change: &TagChange,
) -> Result<Vec<Retagged>> {
    let mut changed = Vec::new();
    for (id, mut snap) in snapshots {
        let tags = change.apply(&snap.tags);
        if tags == snap.tags {
            continue;
        }
        snap.tags = tags;
        snap.original = Some(snap.original.unwrap_or(id));
        let new = repo.save_file(FileType::Snapshot, &snap)?;
        repo.backend().remove(FileType::Snapshot, &id.to_hex())?;
        changed.push(Retagged {
            old: id,
            new,
            tags: snap.tags,
        });
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn changes_apply_set_then_remove_then_add() {
        let change = TagChange {
            set: None,
            add: tags(&["b", "a", ""]),
            remove: tags(&["old"]),
        };
        assert_eq!(
            change.apply(&tags(&["old", "z", "a"])),
            tags(&["a", "b", "z"])
        );
        let set = TagChange {
            set: Some(tags(&["x", "", "x"])),
            ..TagChange::default()
        };
        assert_eq!(set.apply(&tags(&["a"])), tags(&["x"]));
    }
}
