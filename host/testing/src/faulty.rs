//! [`FaultyBackend`]: a wrapper that makes any backend unreliable, for reliability tests.
//!
//! It injects the faults a remote store shows: calls that fail with a transient-looking
//! [`ErrorKind::Backend`] error (before the call reaches the store, or after a write or remove
//! went through and only the answer was lost), reads that come back short or garbled, delays, and
//! [`ErrorKind::AlreadyExists`] after a write that did succeed (what a client that retried a
//! write whose first answer was lost sees). Decisions come from a seeded RNG, so a run's
//! sequence of decisions is reproducible; which call meets which decision also depends on how
//! the engine's threads interleave. Counters say how many faults of each kind were injected.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_repo::backend::FileWriter;
use cairn_repo::{Backend, Error, ErrorKind, FileType, Guarantees, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How often each fault happens: shares of calls in `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultRates {
    /// Calls that fail with a transient [`ErrorKind::Backend`] error. For writes and removes,
    /// half of these fail after the store did the work (a lost answer).
    pub fail: f64,
    /// Successful reads whose data comes back cut short.
    pub truncate: f64,
    /// Successful reads whose data comes back with one byte changed (a garbled answer; the
    /// stored file is intact).
    pub garble: f64,
    /// Calls delayed by up to [`FaultRates::max_delay`].
    pub delay: f64,
    /// The longest delay.
    pub max_delay: Duration,
    /// Successful writes that answer [`ErrorKind::AlreadyExists`].
    pub exists_after_write: f64,
}

impl FaultRates {
    /// No faults at all.
    pub const NONE: Self = Self {
        fail: 0.0,
        truncate: 0.0,
        garble: 0.0,
        delay: 0.0,
        max_delay: Duration::ZERO,
        exists_after_write: 0.0,
    };

    /// The hardening issue's mix: 10 % failures, 1 % truncated reads, 5 % of calls delayed by
    /// up to 2 ms, 2 % of writes answering "already exists".
    pub fn harsh() -> Self {
        Self {
            fail: 0.10,
            truncate: 0.01,
            garble: 0.0,
            delay: 0.05,
            max_delay: Duration::from_millis(2),
            exists_after_write: 0.02,
        }
    }
}

/// Counts of calls seen and faults injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Calls made through the wrapper while faults were enabled.
    pub calls: u64,
    /// Calls failed before reaching the store.
    pub failed_before: u64,
    /// Writes and removes that went through but answered with an error.
    pub failed_after: u64,
    /// Reads cut short.
    pub truncated: u64,
    /// Reads with a byte changed.
    pub garbled: u64,
    /// Calls delayed.
    pub delayed: u64,
    /// Successful writes that answered "already exists".
    pub exists_after_write: u64,
}

impl FaultStats {
    /// Faults injected, all kinds (delays excluded: they are not failures).
    pub fn faults(&self) -> u64 {
        self.failed_before
            + self.failed_after
            + self.truncated
            + self.garbled
            + self.exists_after_write
    }

    /// What happened since `earlier`.
    pub fn since(&self, earlier: &FaultStats) -> FaultStats {
        FaultStats {
            calls: self.calls - earlier.calls,
            failed_before: self.failed_before - earlier.failed_before,
            failed_after: self.failed_after - earlier.failed_after,
            truncated: self.truncated - earlier.truncated,
            garbled: self.garbled - earlier.garbled,
            delayed: self.delayed - earlier.delayed,
            exists_after_write: self.exists_after_write - earlier.exists_after_write,
        }
    }
}

/// Sums counts (of several stores, or of several runs).
impl std::ops::AddAssign for FaultStats {
    fn add_assign(&mut self, o: FaultStats) {
        self.calls += o.calls;
        self.failed_before += o.failed_before;
        self.failed_after += o.failed_after;
        self.truncated += o.truncated;
        self.garbled += o.garbled;
        self.delayed += o.delayed;
        self.exists_after_write += o.exists_after_write;
    }
}

impl fmt::Display for FaultStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} calls, {} faults ({} failed, {} failed after the store acted, {} truncated reads, \
             {} garbled reads, {} already-exists after a write), {} delayed",
            self.calls,
            self.faults(),
            self.failed_before,
            self.failed_after,
            self.truncated,
            self.garbled,
            self.exists_after_write,
            self.delayed
        )
    }
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    failed_before: AtomicU64,
    failed_after: AtomicU64,
    truncated: AtomicU64,
    garbled: AtomicU64,
    delayed: AtomicU64,
    exists_after_write: AtomicU64,
}

struct Faults {
    rates: FaultRates,
    rng: Mutex<StdRng>,
    enabled: AtomicBool,
    counts: Counters,
}

/// What to do with one call, decided up front.
struct Plan {
    fail_before: bool,
    fail_after: bool,
    truncate: bool,
    garble: bool,
    exists: bool,
    /// The length to cut a read to, as a share of its length.
    cut: f64,
}

impl Faults {
    fn plan(&self, mutates: bool) -> Plan {
        let none = Plan {
            fail_before: false,
            fail_after: false,
            truncate: false,
            garble: false,
            exists: false,
            cut: 1.0,
        };
        if !self.enabled.load(Ordering::Relaxed) {
            return none;
        }
        self.counts.calls.fetch_add(1, Ordering::Relaxed);
        let r = self.rates;
        let (fail, after, truncate, garble, exists, cut, delay) = {
            let mut rng = self.rng.lock().expect("fault rng");
            let fail = rng.random_bool(r.fail);
            let after = mutates && rng.random_bool(0.5);
            let truncate = rng.random_bool(r.truncate);
            let garble = rng.random_bool(r.garble);
            let exists = rng.random_bool(r.exists_after_write);
            let cut = rng.random_range(0.0..1.0);
            let delay = rng
                .random_bool(r.delay)
                .then(|| r.max_delay.mul_f64(rng.random_range(0.0..1.0)));
            (fail, after, truncate, garble, exists, cut, delay)
        };
        if let Some(d) = delay {
            self.counts.delayed.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(d);
        }
        Plan {
            fail_before: fail && !after,
            fail_after: fail && after,
            truncate: !mutates && truncate,
            garble: !mutates && garble,
            exists: mutates && exists,
            cut,
        }
    }

    fn failure(&self, before: bool, what: fmt::Arguments<'_>) -> Error {
        let counter = if before {
            &self.counts.failed_before
        } else {
            &self.counts.failed_after
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Error::new(
            ErrorKind::Backend,
            format!("injected transient failure (503 slow down) on {what}"),
        )
    }

    /// Runs a call that changes the store (`write`: one that creates a file).
    fn mutate(
        &self,
        write: bool,
        what: fmt::Arguments<'_>,
        call: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let plan = self.plan(true);
        if plan.fail_before {
            return Err(self.failure(true, what));
        }
        call()?;
        if plan.fail_after {
            return Err(self.failure(false, what));
        }
        if write && plan.exists {
            self.counts
                .exists_after_write
                .fetch_add(1, Ordering::Relaxed);
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{what}: already exists (injected after a successful write)"),
            ));
        }
        Ok(())
    }

    /// Runs a read, maybe cutting its data short.
    fn read(
        &self,
        what: fmt::Arguments<'_>,
        call: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let plan = self.plan(false);
        if plan.fail_before {
            return Err(self.failure(true, what));
        }
        let mut data = call()?;
        if plan.truncate && !data.is_empty() {
            self.counts.truncated.fetch_add(1, Ordering::Relaxed);
            data.truncate((data.len() as f64 * plan.cut) as usize);
        } else if plan.garble && !data.is_empty() {
            self.counts.garbled.fetch_add(1, Ordering::Relaxed);
            let at = ((data.len() - 1) as f64 * plan.cut) as usize;
            data[at] ^= 0x40;
        }
        Ok(data)
    }
}

/// A backend that injects faults into the calls it passes to another (see the module docs).
pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    faults: Arc<Faults>,
}

impl FaultyBackend {
    /// Wraps `inner`, injecting faults at `rates` from an RNG seeded with `seed`. Faults start
    /// enabled.
    pub fn new(inner: Arc<dyn Backend>, rates: FaultRates, seed: u64) -> Self {
        Self {
            inner,
            faults: Arc::new(Faults {
                rates,
                rng: Mutex::new(StdRng::seed_from_u64(seed)),
                enabled: AtomicBool::new(true),
                counts: Counters::default(),
            }),
        }
    }

    /// Turns faults on or off (off: every call passes through untouched and uncounted).
    pub fn set_enabled(&self, enabled: bool) {
        self.faults.enabled.store(enabled, Ordering::Relaxed);
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &Arc<dyn Backend> {
        &self.inner
    }

    /// Calls seen and faults injected so far.
    pub fn stats(&self) -> FaultStats {
        let c = &self.faults.counts;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FaultStats {
            calls: l(&c.calls),
            failed_before: l(&c.failed_before),
            failed_after: l(&c.failed_after),
            truncated: l(&c.truncated),
            garbled: l(&c.garbled),
            delayed: l(&c.delayed),
            exists_after_write: l(&c.exists_after_write),
        }
    }
}

impl fmt::Debug for FaultyBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyBackend")
            .field("inner", &self.inner.location())
            .field("rates", &self.faults.rates)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Backend for FaultyBackend {
    fn location(&self) -> String {
        format!("faulty {}", self.inner.location())
    }

    fn guarantees(&self) -> Guarantees {
        self.inner.guarantees()
    }

    fn create(&self) -> Result<()> {
        self.inner.create()
    }

    fn list(&self, tpe: FileType) -> Result<Vec<(String, u64)>> {
        if self.faults.plan(false).fail_before {
            return Err(self
                .faults
                .failure(true, format_args!("list {}", tpe.dir())));
        }
        self.inner.list(tpe)
    }

    fn read(&self, tpe: FileType, name: &str) -> Result<Vec<u8>> {
        self.faults.read(format_args!("read {tpe} {name}"), || {
            self.inner.read(tpe, name)
        })
    }

    fn read_range(&self, tpe: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.faults
            .read(format_args!("read {tpe} {name} at {offset}"), || {
                self.inner.read_range(tpe, name, offset, length)
            })
    }

    fn read_tree_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.faults
            .read(format_args!("read tree pack {name} at {offset}"), || {
                self.inner.read_tree_range(name, offset, length)
            })
    }

    fn write(&self, tpe: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.faults
            .mutate(true, format_args!("write {tpe} {name}"), || {
                self.inner.write(tpe, name, data)
            })
    }

    fn writer(&self, tpe: FileType) -> Result<Option<Box<dyn FileWriter>>> {
        Ok(self.inner.writer(tpe)?.map(|inner| {
            Box::new(FaultyWriter {
                inner,
                tpe,
                faults: self.faults.clone(),
            }) as Box<dyn FileWriter>
        }))
    }

    fn remove_leftovers(&self) -> Result<u64> {
        self.inner.remove_leftovers()
    }

    fn connections(&self) -> usize {
        self.inner.connections()
    }

    fn pack_writers(&self) -> usize {
        self.inner.pack_writers()
    }

    fn remove(&self, tpe: FileType, name: &str) -> Result<()> {
        self.faults
            .mutate(false, format_args!("remove {tpe} {name}"), || {
                self.inner.remove(tpe, name)
            })
    }
}

/// A streaming writer of the wrapped backend, whose appends and commit may fail.
struct FaultyWriter {
    inner: Box<dyn FileWriter>,
    tpe: FileType,
    faults: Arc<Faults>,
}

impl FileWriter for FaultyWriter {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        if self.faults.plan(false).fail_before {
            return Err(self
                .faults
                .failure(true, format_args!("append to a new {}", self.tpe)));
        }
        self.inner.write(data)
    }

    fn commit(self: Box<Self>, name: &str) -> Result<()> {
        let Self { inner, tpe, faults } = *self;
        faults.mutate(true, format_args!("commit {tpe} {name}"), || {
            inner.commit(name)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryBackend;

    #[test]
    fn faults_are_injected_at_the_rates_and_counted() {
        let rates = FaultRates {
            fail: 0.2,
            truncate: 0.3,
            ..FaultRates::NONE
        };
        let b = FaultyBackend::new(Arc::new(InMemoryBackend::new()), rates, 7);
        b.set_enabled(false);
        b.write(FileType::Snapshot, "s", &[1; 100]).unwrap();
        assert_eq!(b.stats(), FaultStats::default());
        b.set_enabled(true);
        let (mut ok, mut short, mut failed) = (0, 0, 0);
        for _ in 0..2000 {
            match b.read(FileType::Snapshot, "s") {
                Ok(d) if d.len() == 100 => ok += 1,
                Ok(_) => short += 1,
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Backend);
                    failed += 1;
                }
            }
        }
        let s = b.stats();
        assert_eq!(s.calls, 2000);
        assert_eq!(s.failed_before, failed);
        assert_eq!(s.truncated, short);
        assert!((300..500).contains(&failed), "{s}");
        assert!((350..650).contains(&short), "{s}");
        assert!(ok > 900, "{s}");
    }

    #[test]
    fn a_write_can_land_and_still_fail() {
        let rates = FaultRates {
            fail: 1.0,
            ..FaultRates::NONE
        };
        let store = Arc::new(InMemoryBackend::new());
        let b = FaultyBackend::new(store.clone(), rates, 1);
        for i in 0..20 {
            assert!(b.write(FileType::Index, &i.to_string(), b"x").is_err());
        }
        let s = b.stats();
        assert_eq!(s.failed_before + s.failed_after, 20);
        assert_eq!(
            store.list(FileType::Index).unwrap().len() as u64,
            s.failed_after
        );
        assert!(s.failed_after > 0 && s.failed_before > 0, "{s}");
    }
}
