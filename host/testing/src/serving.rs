//! A test server's thread and runtime, stopped and joined when dropped.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// A server running on a thread of its own (two tokio workers).
pub(crate) struct Serving {
    stop: Option<watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Serving {
    /// Runs the future `serve` makes until it ends; it is given a receiver that turns true
    /// when the server is dropped.
    pub(crate) fn spawn<F, Fut>(serve: F) -> Self
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (stop, stopped) = watch::channel(false);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(serve(stopped));
            rt.shutdown_timeout(Duration::from_secs(1));
        });
        Self {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
