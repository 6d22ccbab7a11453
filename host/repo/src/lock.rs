//! Repository locks.
//!
//! Backup, restore and check take a shared lock; prune takes an exclusive one. A lock is a file
//! in `locks/` naming host, user and pid, and where that pid means something: the kernel boot,
//! the PID namespace and the process's start time. The holder rewrites it every
//! [`REFRESH_EVERY`] (new file, then the old one removed). Taking a lock writes it first and then
//! looks for conflicts, so two racing takers cannot both miss each other.
//!
//! A lock is stale — ignored, and removable by `unlock` — when
//! - its time (the holder's clock at its last refresh) is more than [`STALE_AFTER`] behind ours,
//!   or
//! - host name, boot id and PID namespace all equal ours and its pid does not run, or runs a
//!   process that started at another time (the pid was reused).
//!
//! Anything else — another machine, another container with the same host name (`--network
//! host` pods have their own PID namespace), a lock of an older version without these fields —
//! is judged by age only: there a failed `kill(pid, 0)` proves nothing.
//!
//! Clock skew: readers call a lock stale after 30 minutes; its holder stops once it has not
//! refreshed for [`GIVE_UP_AFTER`] (20 minutes by its own clocks: refreshing failed, or the
//! process was suspended), so a reader's clock may run up to 10 minutes ahead of the holder's
//! before it could take a live lock for stale. A holder also stops when its lock file is gone
//! (someone removed it as stale). Stopping means: the operation's cancel flag is set
//! ([`LockGuard::cancel_on_loss`]) and [`Repository::check_lock`], which operations call before
//! unsafe changes, fails.

use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::format::lock::LockFile;
use crate::id::Id;
use crate::repository::{Actor, Repository};

/// How often a held lock is refreshed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
/// After how long without refresh a lock is stale (the reader's clock against the lock's time).
pub const STALE_AFTER: SignedDuration = SignedDuration::from_secs(30 * 60);
/// A holder that has not refreshed its lock for this long stops, 10 minutes before others may
/// take the lock for stale: the margin for clock skew.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(20 * 60);

/// The refresh thread's clock.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// Between successful refreshes.
    refresh: Duration,
    /// After a failed refresh.
    retry: Duration,
    /// How often the thread looks at the clock (a suspended machine's monotonic clock stands
    /// still; the wall clock shows the gap).
    watch: Duration,
    /// See [`GIVE_UP_AFTER`].
    give_up: Duration,
}

const TIMING: Timing = Timing {
    refresh: REFRESH_EVERY,
    retry: Duration::from_secs(60),
    watch: Duration::from_secs(15),
    give_up: GIVE_UP_AFTER,
};

/// A lock as found in the repository.
#[derive(Debug, Clone)]
pub struct LockInfo {
    /// Lock file id.
    pub id: Id,
    /// Its content (`None` when it could not be read).
    pub lock: Option<LockFile>,
    /// Whether it is stale.
    pub stale: bool,
}

/// Where this process runs: what a lock's pid is compared against.
#[derive(Debug, Clone)]
struct Here<'a> {
    hostname: &'a str,
    boot_id: Option<String>,
    pid_ns: Option<u64>,
}

impl<'a> Here<'a> {
    fn now(hostname: &'a str) -> Self {
        static PLACE: OnceLock<(Option<String>, Option<u64>)> = OnceLock::new();
        let (boot_id, pid_ns) = PLACE.get_or_init(|| (boot_id(), pid_namespace())).clone();
        Self {
            hostname,
            boot_id,
            pid_ns,
        }
    }
}

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// The inode of our PID namespace, when `/proc` is that namespace's procfs (`/proc/self` is our
/// pid): only then do the pids under `/proc` and `kill` agree.
fn pid_namespace() -> Option<u64> {
    let me = std::fs::read_link("/proc/self").ok()?;
    if me.as_os_str() != std::process::id().to_string().as_str() {
        return None;
    }
    std::fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino())
}

/// When process `pid` started (clock ticks after boot), if it runs.
fn start_time(pid: u32) -> Option<u64> {
    parse_start_time(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Field 22 of a `/proc/<pid>/stat` line. The second field, the command in parentheses, may hold
/// spaces and parentheses itself, so the fields are counted from the last `)`; the first after it
/// is field 3.
fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(22 - 3)?.parse().ok()
}

fn pid_exists(pid: u32) -> bool {
    match i32::try_from(pid) {
        Ok(pid) if pid > 0 => !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        ),
        _ => false,
    }
}

/// Whether the holder of `lock` is known to be gone: only a lock of our host, boot and PID
/// namespace can tell.
fn holder_gone(lock: &LockFile, here: &Here<'_>) -> bool {
    let same_place = lock.hostname == here.hostname
        && lock.boot_id.is_some()
        && lock.boot_id == here.boot_id
        && lock.pid_ns.is_some()
        && lock.pid_ns == here.pid_ns;
    if !same_place {
        return false;
    }
    if !pid_exists(lock.pid) {
        return true;
    }
    match (lock.start_time, start_time(lock.pid)) {
        (Some(then), Some(now)) => then != now,
        _ => false,
    }
}

fn stale_at(lock: &LockFile, here: &Here<'_>, now: Timestamp) -> bool {
    now.duration_since(lock.time) > STALE_AFTER || holder_gone(lock, here)
}

/// Whether `lock` is stale as seen from `hostname` now (see the [module](self) for the rules).
pub fn is_stale(lock: &LockFile, hostname: &str) -> bool {
    stale_at(lock, &Here::now(hostname), Timestamp::now())
}

/// Every lock in the repository.
///
/// # Errors
/// Backend errors while listing.
pub fn list_locks(repo: &Repository, hostname: &str) -> Result<Vec<LockInfo>> {
    let mut out = Vec::new();
    for (name, _) in repo.backend().list(FileType::Lock)? {
        let Ok(id) = name.parse::<Id>() else { continue };
        match repo.load_file::<LockFile>(FileType::Lock, &id) {
            Ok(lock) => {
                let stale = is_stale(&lock, hostname);
                out.push(LockInfo {
                    id,
                    lock: Some(lock),
                    stale,
                });
            }
            // Removed between list and read: it is gone.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(_) => out.push(LockInfo {
                id,
                lock: None,
                stale: false,
            }),
        }
    }
    Ok(out)
}

/// Removes the stale locks as seen from `hostname` (with `all`, every lock, also those of
/// running processes); how many were removed. A lock already gone is not counted.
///
/// # Errors
/// Backend errors while listing or removing.
pub fn remove_locks(repo: &Repository, hostname: &str, all: bool) -> Result<usize> {
    let mut removed = 0;
    for l in list_locks(repo, hostname)? {
        if !(l.stale || all) {
            continue;
        }
        match repo.backend().remove(FileType::Lock, &l.id.to_hex()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// What is known about a held lock; shared by its guard, its refresh thread and the repository.
pub(crate) struct Health {
    /// The lock file now.
    current: Mutex<Id>,
    /// Monotonic instant and lock time of the last successful write of the lock.
    last: Mutex<(Instant, Timestamp)>,
    /// Why the lock is no longer held, once it is not.
    lost: Mutex<Option<String>>,
    give_up: Duration,
}

impl Health {
    fn new(current: Id, written: (Instant, Timestamp), give_up: Duration) -> Self {
        Self {
            current: Mutex::new(current),
            last: Mutex::new(written),
            lost: Mutex::default(),
            give_up,
        }
    }

    fn current(&self) -> Id {
        *self.current.lock().expect("lock id")
    }

    fn lose(&self, why: String) {
        self.lost.lock().expect("lost").get_or_insert(why);
    }

    /// Fails when the lock was lost or is overdue. Overdue is judged by both clocks: the
    /// monotonic one counts a suspended process (SIGSTOP), the wall clock a suspended machine.
    fn check(&self) -> Result<()> {
        let (at, time) = *self.last.lock().expect("last refresh");
        let wall = Duration::try_from(Timestamp::now().duration_since(time)).unwrap_or_default();
        let since = at.elapsed().max(wall);
        if since > self.give_up {
            self.lose(format!(
                "it was not refreshed for {} s (was the process suspended?)",
                since.as_secs()
            ));
        }
        match &*self.lost.lock().expect("lost") {
            None => Ok(()),
            Some(why) => Err(Error::new(
                ErrorKind::Locked,
                format!(
                    "lost the repository lock {}: {why}; stopped before changing more, since \
                     others may have taken the lock for stale (run the operation again)",
                    self.current().short()
                ),
            )),
        }
    }
}

/// The locks held through a repository and its clones, for [`Repository::check_lock`].
#[derive(Default)]
pub(crate) struct Holds(Mutex<Vec<Weak<Health>>>);

impl Holds {
    fn add(&self, health: &Arc<Health>) {
        let mut held = self.0.lock().expect("holds");
        held.retain(|h| h.strong_count() > 0);
        held.push(Arc::downgrade(health));
    }

    pub(crate) fn check(&self) -> Result<()> {
        let held: Vec<Arc<Health>> = self
            .0
            .lock()
            .expect("holds")
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        held.iter().try_for_each(|h| h.check())
    }
}

type OnLoss = Arc<Mutex<Option<Arc<AtomicBool>>>>;

/// A held lock; refreshed in the background, removed on drop.
pub struct LockGuard {
    repo: Repository,
    health: Arc<Health>,
    on_loss: OnLoss,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LockGuard({:?})", self.health.current())
    }
}

/// Takes a lock for process `pid` (normally [`std::process::id`]).
///
/// # Errors
/// [`ErrorKind::Locked`] naming the holder when a conflicting, live lock exists.
pub fn lock(repo: &Repository, exclusive: bool, actor: &Actor, pid: u32) -> Result<LockGuard> {
    lock_with(repo, exclusive, actor, pid, TIMING)
}

fn lock_with(
    repo: &Repository,
    exclusive: bool,
    actor: &Actor,
    pid: u32,
    timing: Timing,
) -> Result<LockGuard> {
    let actor = actor.clone();
    let here = Here::now(&actor.hostname);
    let (boot_id, pid_ns, start_time) = (here.boot_id, here.pid_ns, start_time(pid));
    let file = move |time| LockFile {
        time,
        exclusive,
        hostname: actor.hostname.clone(),
        username: actor.username.clone(),
        pid,
        boot_id: boot_id.clone(),
        pid_ns,
        start_time,
    };
    let written = (Instant::now(), Timestamp::now());
    let first = file(written.1);
    let mine = repo.save_file(FileType::Lock, &first)?;
    let conflict = list_locks(repo, &first.hostname).map(|locks| {
        locks.into_iter().find(|l| {
            l.id != mine
                && !l.stale
                && match &l.lock {
                    Some(other) => exclusive || other.exclusive,
                    None => exclusive,
                }
        })
    });
    let conflict = match conflict {
        Ok(c) => c,
        Err(e) => {
            let _ = repo.backend().remove(FileType::Lock, &mine.to_hex());
            return Err(e);
        }
    };
    if let Some(c) = conflict {
        let _ = repo.backend().remove(FileType::Lock, &mine.to_hex());
        let who = match &c.lock {
            Some(l) => format!(
                "{} lock {} held by pid {} of {}@{} since {}",
                if l.exclusive {
                    "an exclusive"
                } else {
                    "a shared"
                },
                c.id.short(),
                l.pid,
                l.username,
                l.hostname,
                l.time.strftime("%Y-%m-%d %H:%M:%S UTC"),
            ),
            None => format!("unreadable lock {}", c.id.short()),
        };
        return Err(Error::new(
            ErrorKind::Locked,
            format!(
                "repository is locked: {who} (if that process is gone, `cairn unlock` removes stale locks)"
            ),
        ));
    }
    let health = Arc::new(Health::new(mine, written, timing.give_up));
    repo.holds().add(&health);
    let on_loss = OnLoss::default();
    let (stop, rx) = channel::<()>();
    let thread = {
        let (repo, health, on_loss) = (repo.clone(), health.clone(), on_loss.clone());
        std::thread::spawn(move || keep_fresh(&repo, &file, &health, &on_loss, &rx, timing))
    };
    Ok(LockGuard {
        repo: repo.clone(),
        health,
        on_loss,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// The refresh thread: refreshes on time, and stops the operation (sets its cancel flag) once
/// the lock is overdue or gone.
fn keep_fresh(
    repo: &Repository,
    file: &dyn Fn(Timestamp) -> LockFile,
    health: &Health,
    on_loss: &OnLoss,
    stop: &Receiver<()>,
    timing: Timing,
) {
    let mut next = Instant::now() + timing.refresh;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        match stop.recv_timeout(wait.min(timing.watch)) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        if Instant::now() >= next {
            next = match refresh(repo, file, health) {
                Ok(()) => Instant::now() + timing.refresh,
                Err(e) => {
                    tracing::warn!("could not refresh the repository lock: {e}");
                    Instant::now() + timing.retry
                }
            };
        }
        if let Err(e) = health.check() {
            tracing::error!("{e}");
            if let Some(flag) = &*on_loss.lock().expect("on_loss") {
                flag.store(true, Ordering::Relaxed);
            }
            return;
        }
    }
}

/// Writes a fresh lock and removes the old one — unless the old one is gone: then someone took
/// it for stale, and the lock is lost.
fn refresh(repo: &Repository, file: &dyn Fn(Timestamp) -> LockFile, health: &Health) -> Result<()> {
    let old = health.current();
    if let Err(e) = repo.backend().read(FileType::Lock, &old.to_hex()) {
        if e.kind() == ErrorKind::NotFound {
            health.lose(format!(
                "lock {} was removed by another process",
                old.short()
            ));
        }
        return Err(e);
    }
    // Before the write: the lock's time must not claim more than it was.
    let written = (Instant::now(), Timestamp::now());
    let new = repo.save_file(FileType::Lock, &file(written.1))?;
    *health.last.lock().expect("last refresh") = written;
    *health.current.lock().expect("lock id") = new;
    let _ = repo.backend().remove(FileType::Lock, &old.to_hex());
    Ok(())
}

impl LockGuard {
    /// Sets `flag` (the operation's cancel flag) when the lock cannot be refreshed before
    /// others would see it as stale, or is removed by another process, so that the operation
    /// stops instead of going on unprotected.
    #[must_use]
    pub fn cancel_on_loss(self, flag: Arc<AtomicBool>) -> Self {
        *self.on_loss.lock().expect("on_loss") = Some(flag);
        self
    }

    /// Whether the lock is still held: not overdue (see [`GIVE_UP_AFTER`]) and not removed by
    /// another process. [`Repository::check_lock`] checks every lock taken on a repository.
    ///
    /// # Errors
    /// [`ErrorKind::Locked`] saying why the lock is lost.
    pub fn check(&self) -> Result<()> {
        self.health.check()
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let id = self.health.current();
        match self.repo.backend().remove(FileType::Lock, &id.to_hex()) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound && self.health.check().is_err() => {}
            Err(e) => tracing::warn!("could not remove lock {id}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests;
