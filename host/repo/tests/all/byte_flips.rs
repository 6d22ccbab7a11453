//! Every single-byte flip in every stored object of a small repository — config, key slots,
//! snapshots, index files, tree and data packs — is found by opening the repository and
//! running `check --read-data`, and the error names the object that was damaged.

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_repo::ops::backup::{BackupOptions, NoProgress};
use cairn_repo::ops::check::{ReadData, check};
use cairn_repo::{Backend, FileType, Repository};
use cairn_testing::InMemoryBackend;
use cairn_testing::fixture::random_bytes;

use crate::support::{PASSWORD, actor, backup_volume_twice, fast_kdf, init};

/// Objects up to this size are damaged at every offset; larger ones at this many offsets
/// spread evenly (with the first and last 64 bytes always included).
const EVERY_OFFSET_UP_TO: usize = 4096;
const SAMPLED_OFFSETS: usize = 2048;

/// Two snapshots of a tiny tree, and a second key slot (so that a damaged slot does not stop
/// the repository from opening).
fn tiny_repository() -> (Arc<InMemoryBackend>, Repository) {
    let src = tempfile::tempdir().unwrap();
    let root = src.path();
    std::fs::create_dir(root.join("dir")).unwrap();
    std::fs::write(root.join("a.txt"), "hello, hello, hello, cairn\n".repeat(4)).unwrap();
    std::fs::write(root.join("dir/b.bin"), random_bytes(300, 9)).unwrap();
    std::fs::write(root.join("dir/empty"), b"").unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
    let be = Arc::new(InMemoryBackend::new());
    let repo = init(be.clone());
    repo.add_key(b"second password", fast_kdf(), &actor())
        .unwrap();
    backup_volume_twice(&repo, root, "test/flips", BackupOptions::new(actor()));
    (be, repo)
}

fn offsets(len: usize) -> Vec<usize> {
    if len <= EVERY_OFFSET_UP_TO {
        return (0..len).collect();
    }
    let mut v: Vec<usize> = (0..SAMPLED_OFFSETS)
        .map(|i| i * len / SAMPLED_OFFSETS)
        .collect();
    v.extend(0..64);
    v.extend(len - 64..len);
    v.sort_unstable();
    v.dedup();
    v
}

/// Whether the damaged object is found, and named, by opening the repository (for the config
/// and key slots) and checking it with `--read-data`.
fn found(be: &Arc<InMemoryBackend>, opened: &Repository, tpe: FileType, name: &str) -> bool {
    let names = |text: &str| text.contains(name) && text.contains(tpe.noun());
    let repo = match tpe {
        FileType::Config | FileType::Key => match Repository::open(be.clone(), PASSWORD) {
            Ok(r) => r,
            Err(e) => return names(&e.to_string()),
        },
        _ => opened.clone(),
    };
    let report = check(&repo, ReadData::All, &NoProgress, &Default::default()).unwrap();
    report.errors() > 0
        && report
            .problems
            .iter()
            .any(|p| names(&format!("{} {}", p.object, p.message)))
}

#[test]
#[expect(clippy::print_stderr, reason = "the figures are the test's report")]
fn every_byte_flip_is_found_and_named() {
    let (be, repo) = tiny_repository();
    let clean = check(&repo, ReadData::All, &NoProgress, &Default::default()).unwrap();
    assert_eq!(clean.problems.len(), 0, "{:#?}", clean.problems);
    // kind -> (objects, bytes, flips made, flips found)
    let mut tally: BTreeMap<&str, (u64, u64, u64, u64)> = BTreeMap::new();
    let mut missed = Vec::new();
    for tpe in [
        FileType::Config,
        FileType::Key,
        FileType::Snapshot,
        FileType::Index,
        FileType::Pack,
    ] {
        for (name, size) in be.list(tpe).unwrap() {
            let t = tally.entry(tpe.dir()).or_default();
            t.0 += 1;
            t.1 += size;
            for off in offsets(size as usize) {
                let mask = if off % 2 == 0 { 0x01 } else { 0xff };
                be.tamper(tpe, &name, |d| d[off] ^= mask);
                t.2 += 1;
                if found(&be, &repo, tpe, &name) {
                    t.3 += 1;
                } else {
                    missed.push(format!("{tpe} {name} at {off} (^{mask:#04x})"));
                }
                be.tamper(tpe, &name, |d| d[off] ^= mask);
            }
        }
    }
    let (mut made, mut hit) = (0, 0);
    for (kind, (objects, bytes, flips, found)) in &tally {
        eprintln!("byte flips: {kind}: {objects} objects, {bytes} bytes, {found}/{flips} found");
        made += flips;
        hit += found;
    }
    eprintln!("byte flips: all: {hit}/{made} found and named");
    assert!(
        missed.is_empty(),
        "{} of {made} flips were not found or not named, e.g. {:?}",
        missed.len(),
        &missed[..missed.len().min(10)]
    );
    assert_eq!(
        check(&repo, ReadData::All, &NoProgress, &Default::default())
            .unwrap()
            .errors(),
        0
    );
}
