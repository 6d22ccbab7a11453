//! A backup whose index went stale while it ran (a prune removed a pack it deduplicated
//! against) fails instead of saving a snapshot that cannot be restored.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use cairn_repo::ops::backup::{BackupOptions, BackupProgress, BackupSource, ParentChoice, backup};
use cairn_repo::{BlobType, ErrorKind, FileType, Id, Repository};
use cairn_testing::InMemoryBackend;
use cairn_testing::fixture::random_bytes;

use crate::support::{actor, backup_path, init};

/// Removes `packs` from the store when the backup starts reading `trigger`: as a concurrent
/// prune would, after the backup loaded its index.
struct RemoveWhenReading {
    repo: Repository,
    trigger: &'static str,
    packs: Vec<Id>,
}

impl BackupProgress for RemoveWhenReading {
    fn file_started(&self, path: &Path) {
        if path.ends_with(self.trigger) {
            for p in &self.packs {
                self.repo
                    .backend()
                    .remove(FileType::Pack, &p.to_hex())
                    .unwrap();
            }
        }
    }
}

fn data_packs(repo: &Repository) -> Vec<Id> {
    let packs: HashSet<Id> = repo
        .load_index()
        .unwrap()
        .all()
        .into_iter()
        .filter(|l| l.entry.tpe == BlobType::Data)
        .map(|l| l.pack)
        .collect();
    packs.into_iter().collect()
}

fn backup_with_pack_removed(parent: ParentChoice) {
    let repo = init(Arc::new(InMemoryBackend::new()));
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("old.bin"), random_bytes(1 << 20, 1)).unwrap();
    backup_path(&repo, src.path());
    let old_packs = data_packs(&repo);
    std::fs::write(src.path().join("new.bin"), random_bytes(1 << 20, 2)).unwrap();

    let indexed = repo.clone().to_indexed().unwrap();
    let mut opts = BackupOptions::new(actor());
    opts.parent = parent;
    let progress = RemoveWhenReading {
        repo: repo.clone(),
        trigger: "new.bin",
        packs: old_packs.clone(),
    };
    let e = backup(
        &indexed,
        BackupSource::Paths(vec![src.path().to_path_buf()]),
        &opts,
        &progress,
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let msg = e.to_string();
    assert!(
        old_packs.iter().any(|p| msg.contains(&p.to_hex())),
        "names the pack: {msg}"
    );
    assert!(msg.contains("run the backup again"), "{msg}");
    assert_eq!(
        repo.backend().list(FileType::Snapshot).unwrap().len(),
        1,
        "no snapshot saved"
    );
}

#[test]
fn a_backup_fails_when_an_unchanged_files_pack_was_removed() {
    // old.bin is unchanged since the parent: its content is taken from the parent, unread.
    backup_with_pack_removed(ParentChoice::Latest);
}

#[test]
fn a_backup_fails_when_a_deduplicated_blobs_pack_was_removed() {
    // No parent: old.bin is read again and its chunks are found in the index.
    backup_with_pack_removed(ParentChoice::None);
}
