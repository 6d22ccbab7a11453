//! The epoch clock: advances the engine's epoch (the granularity of CPU limits and of
//! yielding to tokio) every tick while some store exists, and sleeps otherwise, so that a
//! host that runs no plugin spends nothing on it (an idle agent woke 100 times a second).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use cairn_repo::{Error, Result};

#[derive(Default)]
struct Inner {
    /// Stores alive: the clock ticks while this is above zero.
    holders: usize,
    /// The runtime is gone: the thread ends once no store is left (a store that outlives
    /// its runtime, such as an abandoned call's, still has its CPU limit enforced).
    closed: bool,
}

/// The clock's shared state; the thread that ticks holds one reference.
#[derive(Default)]
pub(crate) struct Clock {
    inner: Mutex<Inner>,
    wake: Condvar,
}

/// Keeps the clock ticking while held (a store holds one for its life).
pub(crate) struct Ticking(Arc<Clock>);

impl Drop for Ticking {
    fn drop(&mut self) {
        self.0.lock().holders -= 1;
    }
}

impl Clock {
    /// Starts the clock's thread: `tick` every `every` while held; it ends when `tick`
    /// returns false (the engine is gone) or after [`Clock::close`] with no holder left.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub(crate) fn start(
        every: Duration,
        mut tick: impl FnMut() -> bool + Send + 'static,
    ) -> Result<Arc<Clock>> {
        let clock = Arc::new(Clock::default());
        let theirs = clock.clone();
        std::thread::Builder::new()
            .name("cairn-plugin-epoch".into())
            .spawn(move || {
                loop {
                    {
                        let mut inner = theirs.lock();
                        while inner.holders == 0 && !inner.closed {
                            inner = theirs.wake.wait(inner).unwrap_or_else(|e| e.into_inner());
                        }
                        if inner.holders == 0 {
                            return;
                        }
                    }
                    if !tick() {
                        return;
                    }
                    std::thread::sleep(every);
                }
            })
            .map_err(|e| Error::io("cannot start the plugin epoch thread", e))?;
        Ok(clock)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ticking from now until the returned value is dropped.
    pub(crate) fn hold(self: &Arc<Self>) -> Ticking {
        self.lock().holders += 1;
        self.wake.notify_one();
        Ticking(self.clone())
    }

    /// Ends the clock's thread when the last holder is gone.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting() -> (Arc<Clock>, Arc<AtomicUsize>) {
        let ticks = Arc::new(AtomicUsize::new(0));
        let counter = ticks.clone();
        let clock = Clock::start(Duration::from_millis(1), move || {
            counter.fetch_add(1, Ordering::SeqCst);
            true
        })
        .unwrap();
        (clock, ticks)
    }

    /// Whether the clock ticks over the next 100 ms (after 20 ms to settle).
    fn ticking(ticks: &AtomicUsize) -> bool {
        std::thread::sleep(Duration::from_millis(20));
        let before = ticks.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
        ticks.load(Ordering::SeqCst) > before + 1
    }

    #[test]
    fn ticks_only_while_held() {
        let (clock, ticks) = counting();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(ticks.load(Ordering::SeqCst), 0, "ticked with no store");
        let held = clock.hold();
        let again = clock.hold();
        assert!(ticking(&ticks), "did not tick while held");
        drop(held);
        assert!(ticking(&ticks), "stopped with a holder left");
        drop(again);
        assert!(!ticking(&ticks), "ticked after the last store went");
        clock.close();
    }

    #[test]
    fn ends_when_the_engine_is_gone() {
        let ticks = Arc::new(AtomicUsize::new(0));
        let counter = ticks.clone();
        let clock = Clock::start(Duration::from_millis(1), move || {
            counter.fetch_add(1, Ordering::SeqCst) < 2
        })
        .unwrap();
        let _held = clock.hold();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(ticks.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn ticks_for_a_store_that_outlives_the_close() {
        let (clock, ticks) = counting();
        let held = clock.hold();
        clock.close();
        assert!(ticking(&ticks), "stopped while a store lives");
        drop(held);
        assert!(!ticking(&ticks), "ticked after the close");
    }
}
