//! Locks: shared locks coexist, exclusive ones do not; stale locks never block.

use std::sync::Arc;

use cairn_repo::format::lock::LockFile;
use cairn_repo::lock::{list_locks, lock};
use cairn_repo::{ErrorKind, FileType};
use cairn_testing::InMemoryBackend;

use crate::support::{actor, init};

#[test]
fn shared_and_exclusive() {
    let repo = init(Arc::new(InMemoryBackend::new()));
    let a = lock(&repo, false, &actor(), std::process::id()).unwrap();
    let b = lock(&repo, false, &actor(), std::process::id()).unwrap();
    let e = lock(&repo, true, &actor(), std::process::id()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Locked);
    assert!(e.to_string().contains("shared lock"), "{e}");
    drop((a, b));
    assert!(
        list_locks(&repo, "test-host").unwrap().is_empty(),
        "guards remove their locks"
    );
    let x = lock(&repo, true, &actor(), std::process::id()).unwrap();
    let e = lock(&repo, false, &actor(), std::process::id()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Locked);
    assert!(e.to_string().contains("exclusive"), "{e}");
    drop(x);
    assert!(list_locks(&repo, "test-host").unwrap().is_empty());
}

#[test]
fn stale_locks_do_not_block() {
    let repo = init(Arc::new(InMemoryBackend::new()));
    // A holder on this host whose process is gone: a lock taken for a pid that does not run
    // records our boot and PID namespace, so the pid can be tested.
    std::mem::forget(lock(&repo, true, &actor(), 0x7fff_fff0).unwrap());
    let dead = LockFile {
        time: jiff::Timestamp::now(),
        exclusive: true,
        hostname: "test-host".into(),
        username: "x".into(),
        pid: u32::MAX - 1,
        boot_id: None,
        pid_ns: None,
        start_time: None,
    };
    // A holder elsewhere that stopped refreshing an hour ago.
    let old = LockFile {
        time: jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1),
        hostname: "other-host".into(),
        ..dead.clone()
    };
    repo.save_file(FileType::Lock, &old).unwrap();
    let locks = list_locks(&repo, "test-host").unwrap();
    assert_eq!(locks.len(), 2);
    assert!(locks.iter().all(|l| l.stale));
    let g = lock(&repo, true, &actor(), std::process::id()).expect("stale locks are ignored");
    drop(g);
    // A live lock of another host blocks.
    let live = LockFile {
        time: jiff::Timestamp::now(),
        ..old
    };
    repo.save_file(FileType::Lock, &live).unwrap();
    let repo2 = repo.clone();
    let e = lock(&repo2, false, &actor(), std::process::id()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Locked);
    assert!(e.to_string().contains("other-host"), "{e}");
}
