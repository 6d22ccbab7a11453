//! Damage is detected and named; a wrong password is told apart from damage.

use std::sync::Arc;

use cairn_repo::format::snapshot::Snapshot;
use cairn_repo::{ErrorKind, FileType, Repository};
use cairn_testing::InMemoryBackend;
use cairn_testing::fixture::random_bytes;

use crate::support::{PASSWORD, backup_path, init};

fn setup() -> (Arc<InMemoryBackend>, Repository) {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), random_bytes(200_000, 3)).unwrap();
    let be = Arc::new(InMemoryBackend::new());
    let repo = init(be.clone());
    backup_path(&repo, src.path());
    (be, repo)
}

fn one(be: &InMemoryBackend, tpe: FileType) -> String {
    be_list(be, tpe).into_iter().next().expect("one file")
}

fn be_list(be: &InMemoryBackend, tpe: FileType) -> Vec<String> {
    use cairn_repo::Backend;
    be.list(tpe).unwrap().into_iter().map(|(n, _)| n).collect()
}

#[test]
fn wrong_password_is_its_own_error() {
    let (be, _) = setup();
    let e = Repository::open(be, b"not it").err().unwrap();
    assert_eq!(e.kind(), ErrorKind::WrongPassword);
}

#[test]
fn missing_repository_is_its_own_error() {
    let e = Repository::open(Arc::new(InMemoryBackend::new()), PASSWORD)
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::RepositoryNotFound);
}

#[test]
fn flipped_byte_in_a_key_file_is_named() {
    let (be, _) = setup();
    let key = one(&be, FileType::Key);
    be.tamper(FileType::Key, &key, |d| d[20] ^= 1);
    let e = Repository::open(be, PASSWORD).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(e.to_string().contains(&key), "{e}");
}

#[test]
fn flipped_byte_in_a_snapshot_is_named() {
    let (be, repo) = setup();
    let snap = one(&be, FileType::Snapshot);
    be.tamper(FileType::Snapshot, &snap, |d| d[30] ^= 1);
    let e = repo.snapshots().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(e.to_string().contains(&snap), "{e}");
}

#[test]
fn flipped_byte_in_an_index_is_named() {
    let (be, repo) = setup();
    for idx in be_list(&be, FileType::Index) {
        be.tamper(FileType::Index, &idx, |d| d[30] ^= 1);
    }
    let e = repo.load_index().err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(e.to_string().contains("index "), "{e}");
}

#[test]
fn flipped_byte_in_a_pack_is_named_when_read() {
    let (be, repo) = setup();
    let packs = be_list(&be, FileType::Pack);
    let repo = repo.to_indexed().unwrap();
    let snap: Snapshot = repo.snapshots().unwrap().remove(0).1;
    let root = repo.load_tree(&snap.tree).unwrap();
    // Find the data blob of the file and damage its pack in the middle of the blob.
    let mut node = root.nodes[0].clone();
    while node.content.is_none() {
        node = repo.load_tree(&node.subtree.unwrap()).unwrap().nodes[0].clone();
    }
    let blob = node.content.unwrap()[0];
    let loc = repo.index().get(&blob).unwrap();
    assert!(packs.contains(&loc.pack.to_hex()));
    be.tamper(FileType::Pack, &loc.pack.to_hex(), |d| {
        d[loc.entry.offset as usize + 100] ^= 1
    });
    let e = repo.read_blob(&blob).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    let msg = e.to_string();
    assert!(
        msg.contains(&blob.to_hex()) && msg.contains(&loc.pack.to_hex()),
        "{msg}"
    );
}

#[test]
fn truncated_pack_is_named() {
    let (be, repo) = setup();
    let repo = repo.to_indexed().unwrap();
    let all = repo.index().all();
    let loc = all
        .iter()
        .max_by_key(|l| l.entry.offset + l.entry.length)
        .unwrap();
    be.tamper(FileType::Pack, &loc.pack.to_hex(), |d| {
        d.truncate(loc.entry.offset as usize + 5)
    });
    let e = repo.read_blob(&loc.entry.id).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(e.to_string().contains(&loc.pack.to_hex()), "{e}");
}

/// Opening reads only the slots it tries, so check looks at every one.
#[test]
fn check_names_a_damaged_key_slot_other_than_the_one_opened() {
    use cairn_repo::ops::backup::NoProgress;
    use cairn_repo::ops::check::{ReadData, check};

    let (be, repo) = setup();
    let other = repo
        .add_key(
            b"another",
            crate::support::fast_kdf(),
            &crate::support::actor(),
        )
        .unwrap();
    assert_ne!(other, repo.key_id());
    be.tamper(FileType::Key, &other, |d| d[10] ^= 1);
    let report = check(&repo, ReadData::None, &NoProgress, &Default::default()).unwrap();
    assert_eq!(report.errors(), 1, "{:#?}", report.problems);
    assert_eq!(report.problems[0].object, format!("key {other}"));
}
