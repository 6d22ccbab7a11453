//! Deduplication: unchanged data is not stored again; local edits add only a few chunks.

use std::collections::HashSet;
use std::sync::Arc;

use cairn_repo::{BlobType, Id, Repository};
use cairn_testing::InMemoryBackend;
use cairn_testing::fixture::random_bytes;

use crate::support::{backup_path, init};

fn data_packs(repo: &Repository) -> HashSet<Id> {
    let idx = repo.load_index().unwrap();
    idx.all()
        .into_iter()
        .filter(|l| l.entry.tpe == BlobType::Data)
        .map(|l| l.pack)
        .collect()
}

#[test]
fn unchanged_rebackup_adds_no_data_pack() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("a.bin"), random_bytes(3 << 20, 1)).unwrap();
    std::fs::create_dir(src.path().join("sub")).unwrap();
    std::fs::write(src.path().join("sub/b.txt"), "text ".repeat(10_000)).unwrap();
    let repo = init(Arc::new(InMemoryBackend::new()));
    let first = backup_path(&repo, src.path());
    let s1 = first.snapshot.summary.unwrap();
    assert_eq!(s1.files_new, 2);
    assert!(s1.data_blobs >= 2);
    let before = data_packs(&repo);
    let second = backup_path(&repo, src.path());
    let s2 = second.snapshot.summary.unwrap();
    assert_eq!(
        second.snapshot.parent, first.id,
        "parent found automatically"
    );
    assert_eq!(
        (s2.files_unmodified, s2.files_new, s2.files_changed),
        (2, 0, 0)
    );
    assert_eq!(s2.data_blobs, 0);
    assert_eq!(data_packs(&repo), before, "no new data pack");
}

#[test]
fn one_percent_edit_of_a_256_mib_file_adds_few_chunks() {
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("big.img");
    let mut data = random_bytes(256 << 20, 7);
    std::fs::write(&path, &data).unwrap();
    let repo = init(Arc::new(InMemoryBackend::new()));
    let s1 = backup_path(&repo, src.path()).snapshot.summary.unwrap();
    assert!(
        s1.data_blobs > 150,
        "256 MiB in ~1 MiB chunks, got {}",
        s1.data_blobs
    );
    // 1 % of the bytes, in five runs at random places.
    let run = data.len() / 100 / 5;
    let noise = random_bytes(run, 99);
    for k in 0..5u64 {
        let at = (random_bytes(8, k)
            .iter()
            .fold(0u64, |a, b| a << 8 | u64::from(*b)) as usize)
            % (data.len() - run);
        data[at..at + run].copy_from_slice(&noise);
    }
    std::fs::write(&path, &data).unwrap();
    let s2 = backup_path(&repo, src.path()).snapshot.summary.unwrap();
    assert_eq!(s2.files_changed, 1);
    assert!(
        s2.data_blobs <= 25,
        "a 1 % edit added {} chunks",
        s2.data_blobs
    );
    assert!(
        s2.data_added <= 40 << 20,
        "a 1 % edit added {} bytes",
        s2.data_added
    );
}
