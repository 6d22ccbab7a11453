//! [`RetryBackend`]: transient store errors retried with bounded exponential backoff, and
//! [`read_verified`]: reads that fail verification read again before they count as corrupt.
//!
//! A remote store (a plugin, a network filesystem) fails a share of calls with errors that go
//! away when the call is repeated: 5xx answers, timeouts, resets. Those come to the engine as
//! [`ErrorKind::Backend`], and only those are retried: a missing object, a refusal, a bad name
//! or a wrong password fails at once (repeating it changes nothing and hides the cause). Stores
//! that retry below the engine (the object-store backends) say so with
//! [`Backend::retries_internally`], and are then tried once here, so that a failure is not
//! retried `n × m` times.
//!
//! A repeated create-only write whose first try landed answers
//! [`ErrorKind::AlreadyExists`]; every name is a content hash, and the callers treat that as
//! success ([`Repository::save_file`](crate::Repository::save_file) after reading it back,
//! the packer as is). A repeated remove whose first try landed answers
//! [`ErrorKind::NotFound`], which is success here: the file is gone either way.
//!
//! Streamed writers ([`Backend::writer`]) cannot be repeated: an append that failed may have
//! landed in part, and a failed commit consumes the writer. A store that is retried here
//! therefore offers none, and the packer keeps each pack in memory and stores it with one
//! [`Backend::write`], which can be repeated whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;

use super::{Backend, FileType, FileWriter, Guarantees};
use crate::error::{ErrorKind, Result};

/// How often and how patiently a transient error is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries of one call, the first included (1: no retry).
    pub tries: u32,
    /// The wait before the first retry; it doubles for each further one.
    pub first_delay: Duration,
    /// The longest wait between two tries.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// No retries.
    pub const NONE: Self = Self {
        tries: 1,
        first_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    /// `tries` tries, waiting `first_delay` (doubling, at most `max_delay`) between them.
    pub fn new(tries: u32, first_delay: Duration, max_delay: Duration) -> Self {
        Self {
            tries: tries.max(1),
            first_delay,
            max_delay,
        }
    }

    /// The wait before retry `n` (1 for the first): doubling from `first_delay`, capped, and
    /// cut by a random share of up to half so that threads that failed together do not retry
    /// together.
    pub fn delay(&self, n: u32) -> Duration {
        let full = self
            .first_delay
            .saturating_mul(1 << (n - 1).min(16))
            .min(self.max_delay);
        full.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

/// Five tries, 50 ms doubling to 800 ms between them: about 1.5 s at most per call.
impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new(5, Duration::from_millis(50), Duration::from_secs(1))
    }
}

/// What the retry layer of one repository did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryStats {
    /// Calls repeated after a transient error or a short read.
    pub retries: u64,
    /// Calls that failed on every try.
    pub gave_up: u64,
    /// Reads repeated because what came back failed verification ([`read_verified`]).
    pub rereads: u64,
}

/// Shared counters behind [`RetryStats`].
#[derive(Debug, Default)]
pub(crate) struct RetryCounters {
    retries: AtomicU64,
    gave_up: AtomicU64,
    rereads: AtomicU64,
}

impl RetryCounters {
    /// Counts a read repeated because it failed verification.
    pub(crate) fn note_reread(&self) {
        self.rereads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> RetryStats {
        RetryStats {
            retries: self.retries.load(Ordering::Relaxed),
            gave_up: self.gave_up.load(Ordering::Relaxed),
            rereads: self.rereads.load(Ordering::Relaxed),
        }
    }
}

/// How many times a read that fails verification is read again before it counts as corrupt.
pub const REREADS: u32 = 2;

/// Reads with `fetch` and checks with `verify`, reading again up to [`REREADS`] times while
/// either reports [`ErrorKind::Corrupt`]: a short or garbled answer from a flaky store is not
/// damage in the repository. Damage that is really there is reported after the last read.
///
/// # Errors
/// The last error of `fetch` or `verify`; any kind but [`ErrorKind::Corrupt`] at once.
pub(crate) fn read_verified<T>(
    counters: &RetryCounters,
    mut fetch: impl FnMut() -> Result<Vec<u8>>,
    mut verify: impl FnMut(Vec<u8>) -> Result<T>,
) -> Result<T> {
    let mut n = 0;
    loop {
        match fetch().and_then(&mut verify) {
            Err(e) if e.kind() == ErrorKind::Corrupt && n < REREADS => {
                n += 1;
                counters.note_reread();
                tracing::debug!("reading again ({n} of {REREADS}): {e}");
            }
            r => return r,
        }
    }
}

/// A backend whose transient errors are retried (see the module docs).
pub struct RetryBackend {
    inner: Arc<dyn Backend>,
    policy: RetryPolicy,
    counters: Arc<RetryCounters>,
}

impl RetryBackend {
    /// Retries `inner`'s transient errors by `policy` (once only when `inner` retries
    /// internally), counting into `counters`.
    pub(crate) fn new(
        inner: Arc<dyn Backend>,
        policy: RetryPolicy,
        counters: Arc<RetryCounters>,
    ) -> Self {
        let policy = if inner.retries_internally() {
            RetryPolicy::NONE
        } else {
            policy
        };
        Self {
            inner,
            policy,
            counters,
        }
    }

    /// Runs `call` until it succeeds, fails for good, or the tries are used up. `again` says
    /// whether an outcome is worth another try.
    fn run<T>(
        &self,
        what: &dyn Fn() -> String,
        mut call: impl FnMut(u32) -> Result<T>,
        again: impl Fn(&Result<T>) -> bool,
    ) -> Result<T> {
        let mut n = 1;
        loop {
            let r = call(n);
            if !again(&r) {
                return r;
            }
            if n >= self.policy.tries {
                if self.policy.tries > 1 {
                    self.counters.gave_up.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("{} failed {n} times; giving up", what());
                }
                return r;
            }
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            let delay = self.policy.delay(n);
            if let Err(e) = &r {
                tracing::debug!("{} failed ({e}); retrying in {delay:?}", what());
            }
            std::thread::sleep(delay);
            n += 1;
        }
    }

    fn retry<T>(&self, what: &dyn Fn() -> String, call: impl FnMut(u32) -> Result<T>) -> Result<T> {
        self.run(what, call, transient)
    }
}

/// Whether an error may go away when the call is repeated.
fn transient<T>(r: &Result<T>) -> bool {
    matches!(r, Err(e) if e.kind() == ErrorKind::Backend)
}

impl Backend for RetryBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn guarantees(&self) -> Guarantees {
        self.inner.guarantees()
    }

    fn retries_internally(&self) -> bool {
        true
    }

    /// Not retried: a create that landed would answer "not empty" when repeated.
    fn create(&self) -> Result<()> {
        self.inner.create()
    }

    fn list(&self, tpe: FileType) -> Result<Vec<(String, u64)>> {
        self.retry(&|| format!("listing {}", tpe.dir()), |_| {
            self.inner.list(tpe)
        })
    }

    fn read(&self, tpe: FileType, name: &str) -> Result<Vec<u8>> {
        self.retry(&|| format!("reading {tpe} {name}"), |_| {
            self.inner.read(tpe, name)
        })
    }

    /// Also reads again when fewer than `length` bytes come back, or the store reports a short
    /// read (as [`ErrorKind::Corrupt`]).
    fn read_range(&self, tpe: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.run(
            &|| format!("reading {tpe} {name} at {offset}"),
            |_| self.inner.read_range(tpe, name, offset, length),
            |r| short_or_transient(r, length),
        )
    }

    fn read_tree_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.run(
            &|| format!("reading tree pack {name} at {offset}"),
            |_| self.inner.read_tree_range(name, offset, length),
            |r| short_or_transient(r, length),
        )
    }

    fn write(&self, tpe: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.retry(&|| format!("writing {tpe} {name}"), |_| {
            self.inner.write(tpe, name, data)
        })
    }

    /// None when calls are retried here (see the module docs): the packer then stores whole
    /// packs with [`Backend::write`].
    fn writer(&self, tpe: FileType) -> Result<Option<Box<dyn FileWriter>>> {
        if self.policy.tries > 1 {
            Ok(None)
        } else {
            self.inner.writer(tpe)
        }
    }

    fn remove_leftovers(&self) -> Result<u64> {
        self.retry(&|| "removing leftovers".into(), |_| {
            self.inner.remove_leftovers()
        })
    }

    fn connections(&self) -> usize {
        self.inner.connections()
    }

    fn pack_writers(&self) -> usize {
        self.inner.pack_writers()
    }

    fn remove(&self, tpe: FileType, name: &str) -> Result<()> {
        self.retry(&|| format!("removing {tpe} {name}"), |n| {
            match self.inner.remove(tpe, name) {
                // An earlier try removed it and only its answer was lost.
                Err(e) if n > 1 && e.kind() == ErrorKind::NotFound => {
                    tracing::debug!("{tpe} {name} was already removed (a retried remove)");
                    Ok(())
                }
                r => r,
            }
        })
    }
}

fn short_or_transient(r: &Result<Vec<u8>>, length: u64) -> bool {
    match r {
        Ok(data) => (data.len() as u64) < length,
        Err(e) => matches!(e.kind(), ErrorKind::Backend | ErrorKind::Corrupt),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::error::Error;

    /// A store whose every call fails with the next kind of `kinds` (then succeeds), counting
    /// calls.
    struct Failing {
        kinds: Mutex<Vec<ErrorKind>>,
        calls: AtomicU64,
        internal: bool,
    }

    impl Failing {
        fn new(kinds: &[ErrorKind]) -> Self {
            Self {
                kinds: Mutex::new(kinds.iter().rev().copied().collect()),
                calls: AtomicU64::new(0),
                internal: false,
            }
        }

        fn call(&self) -> Result<()> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            match self.kinds.lock().unwrap().pop() {
                Some(kind) => Err(Error::new(kind, format!("injected {kind:?}"))),
                None => Ok(()),
            }
        }
    }

    impl Backend for Failing {
        fn location(&self) -> String {
            "failing".into()
        }
        fn guarantees(&self) -> Guarantees {
            Guarantees {
                atomic_create: true,
            }
        }
        fn retries_internally(&self) -> bool {
            self.internal
        }
        fn create(&self) -> Result<()> {
            self.call()
        }
        fn list(&self, _: FileType) -> Result<Vec<(String, u64)>> {
            self.call().map(|()| Vec::new())
        }
        fn read(&self, _: FileType, _: &str) -> Result<Vec<u8>> {
            self.call().map(|()| vec![1, 2, 3])
        }
        fn read_range(&self, _: FileType, _: &str, _: u64, length: u64) -> Result<Vec<u8>> {
            self.call().map(|()| vec![0; length as usize])
        }
        fn write(&self, _: FileType, _: &str, _: &[u8]) -> Result<()> {
            self.call()
        }
        fn remove(&self, _: FileType, _: &str) -> Result<()> {
            self.call()
        }
    }

    fn wrap(inner: Arc<Failing>) -> RetryBackend {
        RetryBackend::new(
            inner,
            RetryPolicy::new(5, Duration::from_micros(10), Duration::from_micros(100)),
            Arc::default(),
        )
    }

    const NAME: &str = "config";

    #[test]
    fn transient_errors_are_retried_until_they_pass() {
        let inner = Arc::new(Failing::new(&[ErrorKind::Backend; 3]));
        let b = wrap(inner.clone());
        assert_eq!(b.read(FileType::Config, NAME).unwrap(), [1, 2, 3]);
        assert_eq!(inner.calls.load(Ordering::Relaxed), 4);
        assert_eq!(b.counters.stats().retries, 3);
    }

    #[test]
    fn retries_are_bounded() {
        let inner = Arc::new(Failing::new(&[ErrorKind::Backend; 10]));
        let b = wrap(inner.clone());
        let e = b.write(FileType::Config, NAME, b"x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Backend);
        assert_eq!(inner.calls.load(Ordering::Relaxed), 5);
        assert_eq!(b.counters.stats().gave_up, 1);
    }

    #[test]
    fn permanent_errors_are_not_retried() {
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::Denied,
            ErrorKind::InvalidInput,
            ErrorKind::WrongPassword,
            ErrorKind::AlreadyExists,
            ErrorKind::RepositoryNotFound,
        ] {
            let inner = Arc::new(Failing::new(&[kind]));
            let b = wrap(inner.clone());
            assert_eq!(b.read(FileType::Config, NAME).unwrap_err().kind(), kind);
            assert_eq!(inner.calls.load(Ordering::Relaxed), 1, "{kind:?}");
            let inner = Arc::new(Failing::new(&[kind]));
            let b = wrap(inner.clone());
            assert_eq!(b.remove(FileType::Config, NAME).unwrap_err().kind(), kind);
            assert_eq!(inner.calls.load(Ordering::Relaxed), 1, "{kind:?}");
            assert_eq!(b.counters.stats(), RetryStats::default());
        }
    }

    #[test]
    fn a_store_that_retries_internally_is_tried_once() {
        let mut failing = Failing::new(&[ErrorKind::Backend; 2]);
        failing.internal = true;
        let inner = Arc::new(failing);
        let b = wrap(inner.clone());
        assert_eq!(
            b.list(FileType::Pack).unwrap_err().kind(),
            ErrorKind::Backend
        );
        assert_eq!(inner.calls.load(Ordering::Relaxed), 1);
        assert_eq!(b.counters.stats(), RetryStats::default());
    }

    #[test]
    fn a_retried_remove_that_landed_is_success() {
        // The first try removed the file and its answer was lost; the second finds it gone.
        let inner = Arc::new(Failing::new(&[ErrorKind::Backend, ErrorKind::NotFound]));
        let b = wrap(inner.clone());
        b.remove(FileType::Config, NAME).unwrap();
        assert_eq!(inner.calls.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn short_range_reads_are_read_again() {
        let inner = Arc::new(Failing::new(&[ErrorKind::Corrupt]));
        let b = wrap(inner.clone());
        assert_eq!(b.read_range(FileType::Pack, NAME, 0, 7).unwrap(), [0; 7]);
        assert_eq!(inner.calls.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn verified_reads_are_read_again_a_bounded_number_of_times() {
        let counters = RetryCounters::default();
        let mut reads = 0;
        let r = read_verified(
            &counters,
            || {
                reads += 1;
                Ok(vec![reads])
            },
            |d| {
                if d[0] < 3 {
                    Err(Error::corrupt("short"))
                } else {
                    Ok(d[0])
                }
            },
        );
        assert_eq!(r.unwrap(), 3);
        assert_eq!(counters.stats().rereads, 2);
        let mut reads = 0;
        let e = read_verified(
            &counters,
            || {
                reads += 1;
                Ok(vec![])
            },
            |_| -> Result<()> { Err(Error::corrupt("damaged")) },
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert_eq!(reads, 1 + REREADS);
        let mut reads = 0;
        let e = read_verified(
            &counters,
            || {
                reads += 1;
                Err::<Vec<u8>, _>(Error::new(ErrorKind::NotFound, "gone"))
            },
            |_| Ok(()),
        )
        .unwrap_err();
        assert_eq!((e.kind(), reads), (ErrorKind::NotFound, 1));
    }
}
