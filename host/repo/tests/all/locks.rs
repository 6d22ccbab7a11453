//! Locks: shared locks coexist, exclusive ones do not; stale locks never block.

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::Arc;

use cairn_backend::LocalBackend;
use cairn_repo::format::lock::LockFile;
use cairn_repo::lock::{list_locks, lock};
use cairn_repo::{ErrorKind, FileType, Repository};
use cairn_testing::InMemoryBackend;

use crate::support::{PASSWORD, actor, init};

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

/// Where [`take_a_lock_and_exit`] finds the repository.
const CHILD_REPO: &str = "CAIRN_TEST_LOCK_CHILD_REPO";

/// Run by [`a_lock_of_another_pid_namespace_is_not_stale`] in a new PID namespace: takes a lock
/// and exits without removing it. Outside that run (no repository given) it does nothing.
#[test]
fn take_a_lock_and_exit() {
    let Some(dir) = std::env::var_os(CHILD_REPO) else {
        return;
    };
    let repo = Repository::open(Arc::new(LocalBackend::new(dir)), PASSWORD).unwrap();
    std::mem::forget(lock(&repo, false, &actor(), std::process::id()).unwrap());
}

#[test]
fn a_lock_of_another_pid_namespace_is_not_stale() {
    let works = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        // Needs root (or a user namespace) and unshare(1): the unit tests cover the rules.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    let repo = init(Arc::new(LocalBackend::new(&path)));
    // A container with the same host name and its own PID namespace (`--network host`). Its
    // pids start far above ours, so the holder's pid does not run here.
    let child = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "sh", "-c"])
        .arg(r#"echo 4190000 > /proc/sys/kernel/ns_last_pid && "$0" "$@"; exit $?"#)
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "locks::take_a_lock_and_exit", "--quiet"])
        .env(CHILD_REPO, &path)
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "the child failed: {}\n{}{}",
        child.status,
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
    let locks = list_locks(&repo, "test-host").unwrap();
    assert_eq!(locks.len(), 1, "the child left its lock");
    let held = locks[0].lock.clone().unwrap();
    assert!(
        held.pid > 4_190_000,
        "pid {} in the child's namespace",
        held.pid
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{}", held.pid)).exists(),
        "pid {} does not run here",
        held.pid
    );
    let ours = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
    assert!(held.boot_id.is_some());
    assert!(
        held.pid_ns.is_some_and(|ns| ns != ours),
        "the child's namespace is recorded"
    );
    assert!(
        !locks[0].stale,
        "a holder in another PID namespace is judged by age only"
    );
}
