//! Staleness rules, and the refresh thread stopping an operation whose lock is lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::backend::{Backend, Guarantees};
use crate::format::keyfile::KdfParams;
use crate::repository::InitOptions;

/// A pid no process has (above the kernel's `PID_MAX_LIMIT`).
const NO_SUCH_PID: u32 = 0x7fff_fff0;

fn here() -> Here<'static> {
    let here = Here::now("this-host");
    assert!(
        here.boot_id.is_some() && here.pid_ns.is_some(),
        "these tests need /proc"
    );
    here
}

/// A fresh lock of `pid` written by a process at `here`.
fn lock_of(here: &Here<'_>, pid: u32) -> LockFile {
    LockFile {
        time: Timestamp::now(),
        exclusive: false,
        hostname: here.hostname.into(),
        username: "u".into(),
        pid,
        boot_id: here.boot_id.clone(),
        pid_ns: here.pid_ns,
        start_time: start_time(pid),
    }
}

fn stale(lock: &LockFile, here: &Here<'_>) -> bool {
    stale_at(lock, here, Timestamp::now())
}

#[test]
fn start_time_is_counted_from_the_last_parenthesis() {
    let fields: String = (3..=52).map(|n| format!(" {n}")).collect();
    assert_eq!(parse_start_time(&format!("42 (a) b){fields}")), Some(22));
    assert_eq!(
        parse_start_time(&format!("42 (x (y) ) z){fields}")),
        Some(22)
    );
    assert_eq!(parse_start_time("42 (short) S 1 2"), None);
    assert_eq!(parse_start_time("garbage"), None);
    let mine = start_time(std::process::id()).expect("our own start time");
    assert!(mine > 0);
}

#[test]
fn a_dead_looking_pid_of_another_pid_namespace_is_judged_by_age() {
    let here = here();
    // Same host name and boot, but a container's own PID namespace: its pid means nothing here.
    let lock = LockFile {
        pid_ns: here.pid_ns.map(|n| n + 1),
        ..lock_of(&here, NO_SUCH_PID)
    };
    assert!(
        !stale(&lock, &here),
        "a live backup in a --network host container"
    );
    let old = LockFile {
        time: Timestamp::now() - STALE_AFTER - SignedDuration::from_secs(60),
        ..lock.clone()
    };
    assert!(
        stale(&old, &here),
        "unrefreshed for longer than STALE_AFTER"
    );
}

#[test]
fn a_dead_looking_pid_of_another_boot_or_an_old_lock_is_judged_by_age() {
    let here = here();
    let other_boot = LockFile {
        boot_id: Some("another-machine".into()),
        ..lock_of(&here, NO_SUCH_PID)
    };
    assert!(!stale(&other_boot, &here));
    // Written by a cairn that did not record where its pid lives.
    let old_format = LockFile {
        boot_id: None,
        pid_ns: None,
        start_time: None,
        ..lock_of(&here, NO_SUCH_PID)
    };
    assert!(!stale(&old_format, &here));
    let other_host = LockFile {
        hostname: "elsewhere".into(),
        ..lock_of(&here, NO_SUCH_PID)
    };
    assert!(!stale(&other_host, &here));
}

#[test]
fn a_gone_pid_of_our_namespace_is_stale() {
    let here = here();
    assert!(stale(&lock_of(&here, NO_SUCH_PID), &here));
}

#[test]
fn a_reused_pid_is_stale() {
    let here = here();
    // Our pid, but recorded with another start time: the holder died and the pid went to us.
    let mine = lock_of(&here, std::process::id());
    let reused = LockFile {
        start_time: mine.start_time.map(|t| t + 1),
        ..mine
    };
    assert!(stale(&reused, &here));
}

#[test]
fn a_live_holder_is_not_stale() {
    let here = here();
    let mine = lock_of(&here, std::process::id());
    assert!(mine.start_time.is_some());
    assert!(!stale(&mine, &here));
    // Without a start time (could not be read) a running pid counts as the holder.
    let unknown_start = LockFile {
        start_time: None,
        ..mine
    };
    assert!(!stale(&unknown_start, &here));
}

#[test]
fn old_locks_still_parse_and_new_fields_are_optional() {
    let old =
        r#"{"time":"2026-01-02T03:04:05Z","exclusive":true,"hostname":"h","username":"u","pid":7}"#;
    let lock: LockFile = serde_json::from_str(old).unwrap();
    assert_eq!(
        (lock.boot_id, lock.pid_ns, lock.start_time),
        (None, None, None)
    );
    let here = here();
    let new = serde_json::to_value(lock_of(&here, std::process::id())).unwrap();
    assert_eq!(new["pid_ns"].as_u64(), here.pid_ns);
    assert_eq!(new["boot_id"].as_str(), here.boot_id.as_deref());
    assert!(new["start_time"].as_u64().is_some());
}

#[test]
fn a_holder_overdue_by_the_wall_clock_has_lost_its_lock() {
    // The machine was suspended: the monotonic clock stood still, the wall clock did not.
    let suspended = Timestamp::now() - SignedDuration::from_secs(21 * 60);
    let health = Health::new(Id::default(), (Instant::now(), suspended), GIVE_UP_AFTER);
    let e = health.check().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Locked);
    assert!(e.to_string().contains("not refreshed"), "{e}");
    let fresh = Health::new(
        Id::default(),
        (Instant::now(), Timestamp::now()),
        GIVE_UP_AFTER,
    );
    fresh.check().unwrap();
}

/// A store in memory (`cairn-testing`'s cannot be used inside this crate).
#[derive(Default)]
struct Store(Mutex<BTreeMap<(FileType, String), Vec<u8>>>);

impl Backend for Store {
    fn location(&self) -> String {
        "memory".into()
    }
    fn guarantees(&self) -> Guarantees {
        Guarantees {
            atomic_create: true,
        }
    }
    fn create(&self) -> Result<()> {
        Ok(())
    }
    fn list(&self, tpe: FileType) -> Result<Vec<(String, u64)>> {
        let files = self.0.lock().unwrap();
        Ok(files
            .iter()
            .filter(|((t, _), _)| *t == tpe)
            .map(|((_, n), d)| (n.clone(), d.len() as u64))
            .collect())
    }
    fn read(&self, tpe: FileType, name: &str) -> Result<Vec<u8>> {
        let files = self.0.lock().unwrap();
        files
            .get(&(tpe, name.to_owned()))
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("{tpe} {name} does not exist")))
    }
    fn read_range(&self, tpe: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        Ok(self.read(tpe, name)?[offset as usize..(offset + length) as usize].to_vec())
    }
    fn write(&self, tpe: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.0
            .lock()
            .unwrap()
            .insert((tpe, name.to_owned()), data.to_vec());
        Ok(())
    }
    fn remove(&self, tpe: FileType, name: &str) -> Result<()> {
        match self.0.lock().unwrap().remove(&(tpe, name.to_owned())) {
            Some(_) => Ok(()),
            None => Err(Error::new(
                ErrorKind::NotFound,
                format!("{tpe} {name} does not exist"),
            )),
        }
    }
}

fn repo() -> Repository {
    let kdf = KdfParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };
    let actor = Actor {
        hostname: "this-host".into(),
        username: "u".into(),
    };
    Repository::init(
        Arc::new(Store::default()),
        b"pw",
        &InitOptions::default().kdf(kdf),
        &actor,
    )
    .unwrap()
}

fn fast(refresh_ms: u64, give_up_ms: u64) -> Timing {
    Timing {
        refresh: Duration::from_millis(refresh_ms),
        retry: Duration::from_millis(refresh_ms),
        watch: Duration::from_millis(5),
        give_up: Duration::from_millis(give_up_ms),
    }
}

fn wait_for(flag: &AtomicBool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !flag.load(Ordering::Relaxed) {
        assert!(Instant::now() < deadline, "the operation was not stopped");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn refreshing_replaces_the_lock_and_keeps_it_held() {
    let repo = repo();
    let actor = Actor::default();
    let guard = lock_with(&repo, false, &actor, std::process::id(), fast(10, 60_000)).unwrap();
    let first = guard.health.current();
    std::thread::sleep(Duration::from_millis(100));
    assert_ne!(guard.health.current(), first, "refreshed");
    assert_eq!(repo.backend().list(FileType::Lock).unwrap().len(), 1);
    repo.check_lock().unwrap();
    guard.check().unwrap();
    drop(guard);
    assert!(repo.backend().list(FileType::Lock).unwrap().is_empty());
    repo.check_lock().expect("no lock held: nothing to lose");
}

#[test]
fn a_lock_removed_by_another_process_stops_the_holder() {
    let repo = repo();
    let cancel = Arc::new(AtomicBool::new(false));
    let guard = lock_with(&repo, true, &Actor::default(), 1, fast(20, 60_000))
        .unwrap()
        .cancel_on_loss(cancel.clone());
    // Someone judged it stale and removed it (`cairn unlock`, or a taker).
    let id = guard.health.current();
    repo.backend().remove(FileType::Lock, &id.to_hex()).unwrap();
    wait_for(&cancel);
    let e = repo.check_lock().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Locked);
    assert!(e.to_string().contains("removed by another process"), "{e}");
    assert!(
        repo.backend().list(FileType::Lock).unwrap().is_empty(),
        "a lost lock is not written again"
    );
}

#[test]
fn an_overdue_refresh_stops_the_holder() {
    // Refreshes never come in time (as when the process was stopped for longer than the
    // give-up time): the holder must stop, and the operation's check must fail at once.
    let repo = repo();
    let cancel = Arc::new(AtomicBool::new(false));
    let guard = lock_with(&repo, false, &Actor::default(), 1, fast(60_000, 50))
        .unwrap()
        .cancel_on_loss(cancel.clone());
    std::thread::sleep(Duration::from_millis(60));
    // Synchronously, before the refresh thread runs: no window after a SIGCONT.
    let e = guard.check().unwrap_err();
    assert!(e.to_string().contains("not refreshed"), "{e}");
    wait_for(&cancel);
    assert_eq!(repo.check_lock().unwrap_err().kind(), ErrorKind::Locked);
}
