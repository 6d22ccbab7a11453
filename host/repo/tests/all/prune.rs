//! Prune honours cancellation: once the flag is set it writes and deletes nothing more.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cairn_repo::ops::prune::{PruneOptions, prune};
use cairn_repo::{Backend, ErrorKind, FileType, Guarantees, Repository, Result};
use cairn_testing::InMemoryBackend;
use cairn_testing::fixture::random_bytes;

use crate::support::{backup_path, init};

/// A store that sets `cancel` (as Ctrl-C would) when the first index file is written once
/// `armed`: in prune, that is the first change after repacking.
struct CancelOnIndexWrite {
    inner: InMemoryBackend,
    armed: AtomicBool,
    cancel: Arc<AtomicBool>,
}

impl Backend for CancelOnIndexWrite {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn guarantees(&self) -> Guarantees {
        self.inner.guarantees()
    }
    fn create(&self) -> Result<()> {
        self.inner.create()
    }
    fn list(&self, tpe: FileType) -> Result<Vec<(String, u64)>> {
        self.inner.list(tpe)
    }
    fn read(&self, tpe: FileType, name: &str) -> Result<Vec<u8>> {
        self.inner.read(tpe, name)
    }
    fn read_range(&self, tpe: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.inner.read_range(tpe, name, offset, length)
    }
    fn write(&self, tpe: FileType, name: &str, data: &[u8]) -> Result<()> {
        if tpe == FileType::Index && self.armed.load(Ordering::Relaxed) {
            self.cancel.store(true, Ordering::Relaxed);
        }
        self.inner.write(tpe, name, data)
    }
    fn remove(&self, tpe: FileType, name: &str) -> Result<()> {
        self.inner.remove(tpe, name)
    }
}

fn files(repo: &Repository) -> BTreeSet<(FileType, String)> {
    FileType::ALL
        .iter()
        .flat_map(|t| {
            let names = repo.backend().list(*t).unwrap();
            names.into_iter().map(move |(n, _)| (*t, n))
        })
        .collect()
}

#[test]
fn prune_stops_on_cancel_without_deleting() {
    let cancel = Arc::new(AtomicBool::new(false));
    let store = Arc::new(CancelOnIndexWrite {
        inner: InMemoryBackend::new(),
        armed: AtomicBool::new(false),
        cancel: cancel.clone(),
    });
    let repo = init(store.clone());
    // Two snapshots of different data; forgetting the first leaves a pack with nothing used.
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("a.bin");
    std::fs::write(&file, random_bytes(1 << 20, 1)).unwrap();
    let first = backup_path(&repo, src.path()).id.unwrap();
    std::fs::write(&file, random_bytes(1 << 20, 2)).unwrap();
    backup_path(&repo, src.path());
    repo.backend()
        .remove(FileType::Snapshot, &first.to_hex())
        .unwrap();
    let mut opts = PruneOptions::default();
    opts.max_unused_percent = 0.0;

    // Cancelled before it starts: nothing at all changes.
    let before = files(&repo);
    cancel.store(true, Ordering::Relaxed);
    let e = prune(&repo, &opts, &cancel).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Interrupted, "{e}");
    assert_eq!(files(&repo), before);

    // Cancelled while writing the new index: no old index file and no pack is removed.
    cancel.store(false, Ordering::Relaxed);
    store.armed.store(true, Ordering::Relaxed);
    let e = prune(&repo, &opts, &cancel).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Interrupted, "{e}");
    assert!(e.to_string().contains("nothing more was changed"), "{e}");
    let after = files(&repo);
    let removed: Vec<_> = before.difference(&after).collect();
    assert!(removed.is_empty(), "removed after cancel: {removed:?}");

    // Not cancelled, the same prune deletes: there was something to delete.
    store.armed.store(false, Ordering::Relaxed);
    cancel.store(false, Ordering::Relaxed);
    let report = prune(&repo, &opts, &cancel).unwrap();
    assert!(!report.delete.is_empty(), "{report:?}");
}
