//! Repository locks.
//!
//! Backup, restore and check take a shared lock; prune takes an exclusive one. A lock is a file
//! in `locks/` naming host, user and pid; the holder rewrites it every [`REFRESH_EVERY`] (new file,
//! then the old one removed). A lock is stale — ignored, and removable by `unlock` — when it was
//! not refreshed for [`STALE_AFTER`], or when its holder is on this host and no longer runs.
//! Taking a lock writes it first and then looks for conflicts, so two racing takers cannot both
//! miss each other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
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
/// After how long without refresh a lock is stale.
pub const STALE_AFTER: SignedDuration = SignedDuration::from_secs(30 * 60);

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

fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// Whether `lock` is stale as seen from `hostname` now.
pub fn is_stale(lock: &LockFile, hostname: &str) -> bool {
    Timestamp::now().duration_since(lock.time) > STALE_AFTER
        || (lock.hostname == hostname && !pid_alive(lock.pid))
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

/// A held lock; refreshed in the background, removed on drop.
pub struct LockGuard {
    repo: Repository,
    current: Arc<Mutex<Id>>,
    on_loss: Arc<Mutex<Option<Arc<AtomicBool>>>>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LockGuard({:?})",
            self.current.lock().map(|i| *i).unwrap_or_default()
        )
    }
}

/// Takes a lock.
///
/// # Errors
/// [`ErrorKind::Locked`] naming the holder when a conflicting, live lock exists.
pub fn lock(repo: &Repository, exclusive: bool, actor: &Actor, pid: u32) -> Result<LockGuard> {
    let actor = actor.clone();
    let file = move |time| LockFile {
        time,
        exclusive,
        hostname: actor.hostname.clone(),
        username: actor.username.clone(),
        pid,
    };
    let mine = repo.save_file(FileType::Lock, &file(Timestamp::now()))?;
    let conflict = list_locks(repo, &file(Timestamp::now()).hostname).map(|locks| {
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
    let current = Arc::new(Mutex::new(mine));
    let on_loss: Arc<Mutex<Option<Arc<AtomicBool>>>> = Arc::default();
    let (stop, rx) = channel::<()>();
    let thread = {
        let repo = repo.clone();
        let current = current.clone();
        let on_loss = on_loss.clone();
        std::thread::spawn(move || {
            let mut last_ok = Instant::now();
            loop {
                match rx.recv_timeout(REFRESH_EVERY) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                match repo.save_file(FileType::Lock, &file(Timestamp::now())) {
                    Ok(new) => {
                        last_ok = Instant::now();
                        let old = std::mem::replace(&mut *current.lock().expect("lock id"), new);
                        let _ = repo.backend().remove(FileType::Lock, &old.to_hex());
                    }
                    Err(e) => {
                        tracing::warn!("could not refresh the repository lock: {e}");
                        // Others will soon take the lock for stale: stop before they act on it.
                        if last_ok.elapsed() + REFRESH_EVERY >= STALE_AFTER.unsigned_abs() {
                            tracing::error!(
                                "the repository lock could not be refreshed in time; stopping"
                            );
                            if let Some(flag) = &*on_loss.lock().expect("on_loss") {
                                flag.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
        })
    };
    Ok(LockGuard {
        repo: repo.clone(),
        current,
        on_loss,
        stop: Some(stop),
        thread: Some(thread),
    })
}

impl LockGuard {
    /// Sets `flag` (the operation's cancel flag) when the lock cannot be refreshed before
    /// others would see it as stale, so the operation stops instead of going on unprotected.
    #[must_use]
    pub fn cancel_on_loss(self, flag: Arc<AtomicBool>) -> Self {
        *self.on_loss.lock().expect("on_loss") = Some(flag);
        self
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let id = *self.current.lock().expect("lock id");
        if let Err(e) = self.repo.backend().remove(FileType::Lock, &id.to_hex()) {
            tracing::warn!("could not remove lock {id}: {e}");
        }
    }
}
