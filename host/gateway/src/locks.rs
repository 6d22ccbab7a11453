//! Which credential created which lock: an app may delete its own locks and no other's.
//! Kept in `lock-owners.jsonl` in the state directory (one line per lock made or removed), so
//! that a restart of the gateway does not strand an app's locks.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use cairn_repo::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::path::RepoPath;

/// The file of lock owners in the state directory.
pub const LOCK_OWNERS_FILE: &str = "lock-owners.jsonl";

#[derive(Serialize, Deserialize)]
struct Line {
    repo: String,
    lock: String,
    /// The creator; `None`: removed.
    owner: Option<String>,
}

/// Lock owners by repository and lock name.
#[derive(Debug)]
pub struct LockOwners {
    owners: Mutex<HashMap<(String, String), String>>,
    file: Mutex<File>,
}

impl LockOwners {
    /// Reads (or starts) the record in `state`, rewriting it with only the live entries.
    ///
    /// # Errors
    /// When the file cannot be read or written.
    pub fn open(state: &Path) -> Result<LockOwners> {
        let path = state.join(LOCK_OWNERS_FILE);
        let cannot = |e: std::io::Error| Error::io(format!("cannot use {}", path.display()), e);
        let mut owners = HashMap::new();
        match File::open(&path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    let line = line.map_err(cannot)?;
                    // A torn last line (a crash mid-write) is skipped.
                    let Ok(l) = serde_json::from_str::<Line>(&line) else {
                        continue;
                    };
                    match l.owner {
                        Some(o) => owners.insert((l.repo, l.lock), o),
                        None => owners.remove(&(l.repo, l.lock)),
                    };
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(cannot(e)),
        }
        let temp = state.join(format!(".{LOCK_OWNERS_FILE}.tmp"));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .map_err(cannot)?;
        for ((repo, lock), owner) in &owners {
            let line = Line {
                repo: repo.clone(),
                lock: lock.clone(),
                owner: Some(owner.clone()),
            };
            let mut bytes = serde_json::to_vec(&line).map_err(|e| Error::invalid(e.to_string()))?;
            bytes.push(b'\n');
            f.write_all(&bytes).map_err(cannot)?;
        }
        f.sync_all().map_err(cannot)?;
        std::fs::rename(&temp, &path).map_err(cannot)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(cannot)?;
        Ok(LockOwners {
            owners: Mutex::new(owners),
            file: Mutex::new(file),
        })
    }

    fn append(&self, repo: &RepoPath, lock: &str, owner: Option<&str>) -> Result<()> {
        let line = Line {
            repo: repo.as_str().to_owned(),
            lock: lock.to_owned(),
            owner: owner.map(str::to_owned),
        };
        let mut bytes = serde_json::to_vec(&line).map_err(|e| Error::invalid(e.to_string()))?;
        bytes.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(&bytes)
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io("cannot record a lock's owner", e))
    }

    /// Records that `owner` created `lock` in `repo`.
    ///
    /// # Errors
    /// When the record cannot be written (the lock is then refused).
    pub fn created(&self, repo: &RepoPath, lock: &str, owner: &str) -> Result<()> {
        self.append(repo, lock, Some(owner))?;
        self.owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                (repo.as_str().to_owned(), lock.to_owned()),
                owner.to_owned(),
            );
        Ok(())
    }

    /// Who created `lock` in `repo` through this gateway.
    pub fn owner(&self, repo: &RepoPath, lock: &str) -> Option<String> {
        self.owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(repo.as_str().to_owned(), lock.to_owned()))
            .cloned()
    }

    /// Forgets `lock` in `repo` (it was removed).
    pub fn removed(&self, repo: &RepoPath, lock: &str) {
        let had = self
            .owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(repo.as_str().to_owned(), lock.to_owned()));
        if had.is_some()
            && let Err(e) = self.append(repo, lock, None)
        {
            tracing::warn!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let repo = RepoPath::parse("a/b").unwrap();
        let owners = LockOwners::open(dir.path()).unwrap();
        owners.created(&repo, "l1", "shop").unwrap();
        owners.created(&repo, "l2", "shop").unwrap();
        owners.removed(&repo, "l1");
        drop(owners);
        let owners = LockOwners::open(dir.path()).unwrap();
        assert_eq!(owners.owner(&repo, "l1"), None);
        assert_eq!(owners.owner(&repo, "l2").as_deref(), Some("shop"));
    }
}
