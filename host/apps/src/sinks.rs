//! Hook sink files as snapshots. Each file a hook opens becomes its own snapshot (the app's,
//! volume identity `apps/<app>/<path>`), streamed through a small bounded channel into a
//! backup on its own thread: memory stays bounded whatever the file's size. The backup keeps
//! the file only when the hook finished it and then the hook's phase succeeded; otherwise no
//! snapshot is saved (a truncated dump is never saved as good).

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use cairn_plugin_host::{SinkFile, Sinks};
use cairn_repo::ops::backup::{BackupOptions, BackupOutcome, BackupSource, NoProgress, backup};
use cairn_repo::{Error, IndexedRepository, Result};

/// Chunks in flight per file (each up to what the plugin writes at once, ≤ 1 MiB from HTTP).
const IN_FLIGHT: usize = 4;

/// Sink files one phase of one hook may open: each is a backup of its own, with its threads,
/// buffers and open pack, so a hook must not start them without bound.
pub const MAX_SINKS: usize = 8;

/// Worker threads of each sink file's backup (a stream is read in order; a few threads seal
/// its chunks).
const SINK_THREADS: usize = 4;

/// Whether the phase that wrote the files succeeded; set once, after the hook returned.
#[derive(Default)]
struct Verdict {
    state: Mutex<Option<bool>>,
    settled: Condvar,
}

impl Verdict {
    fn set(&self, success: bool) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(success);
        self.settled.notify_all();
    }

    fn wait(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(v) = *state {
                return v;
            }
            state = self.settled.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The sinks of one app's phase.
pub struct StreamSinks {
    repo: Arc<IndexedRepository>,
    opts: BackupOptions,
    app: String,
    cancel: Arc<AtomicBool>,
    verdict: Arc<Verdict>,
    files: Mutex<Vec<(String, JoinHandle<Result<BackupOutcome>>)>>,
}

impl StreamSinks {
    /// Sinks whose files go into `repo` as snapshots of `app`, with `opts`.
    pub fn new(
        repo: Arc<IndexedRepository>,
        opts: BackupOptions,
        app: &str,
        cancel: Arc<AtomicBool>,
    ) -> Arc<StreamSinks> {
        Arc::new(StreamSinks {
            repo,
            opts,
            app: app.to_owned(),
            cancel,
            verdict: Arc::default(),
            files: Mutex::default(),
        })
    }

    /// Tells the files' backups whether the phase succeeded and waits for them: each file's
    /// volume identity with its backup's outcome (an error when it was not kept).
    pub fn settle(&self, success: bool) -> Vec<(String, Result<BackupOutcome>)> {
        self.verdict.set(success);
        let files = std::mem::take(&mut *self.files.lock().unwrap_or_else(|e| e.into_inner()));
        files
            .into_iter()
            .map(|(identity, thread)| {
                let outcome = thread.join().unwrap_or_else(|_| {
                    Err(Error::invalid(format!("the backup of {identity} crashed")))
                });
                (identity, outcome)
            })
            .collect()
    }
}

impl Sinks for StreamSinks {
    fn open(&self, path: &str) -> Result<Box<dyn SinkFile>> {
        let identity = format!("apps/{}/{path}", self.app);
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if files.len() >= MAX_SINKS {
            return Err(Error::invalid(format!(
                "the hook opened more than {MAX_SINKS} sink files in one phase; {identity} \
                 was refused (write several dumps into one file, or split the hook)"
            )));
        }
        let filename = path.to_owned();
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let finished = Arc::new(AtomicBool::new(false));
        let mut opts = self.opts.clone();
        opts.app = Some(self.app.clone());
        opts.volume = Some(identity.clone());
        opts.threads = SINK_THREADS;
        let repo = self.repo.clone();
        let cancel = self.cancel.clone();
        let verdict = self.verdict.clone();
        let done = finished.clone();
        let what = identity.clone();
        let thread = std::thread::Builder::new()
            .name("cairn-sink".into())
            .spawn(move || {
                let source = BackupSource::Stream {
                    filename,
                    reader: Box::new(ChannelReader {
                        rx,
                        chunk: Vec::new(),
                        at: 0,
                    }),
                    finish: Some(Box::new(move || {
                        if !done.load(Ordering::SeqCst) {
                            return Err(Error::invalid(format!(
                                "the hook ended {what} without finishing it; no snapshot was saved"
                            )));
                        }
                        if !verdict.wait() {
                            return Err(Error::invalid(format!(
                                "the hook that wrote {what} failed; no snapshot was saved"
                            )));
                        }
                        Ok(())
                    })),
                };
                backup(&repo, source, &opts, &NoProgress, &cancel)
            })
            .map_err(|e| Error::io("cannot start a sink", e))?;
        files.push((identity, thread));
        Ok(Box::new(StreamFile {
            tx: Some(tx),
            finished,
        }))
    }
}

/// The writing end of one sink file.
struct StreamFile {
    tx: Option<SyncSender<Vec<u8>>>,
    finished: Arc<AtomicBool>,
}

impl SinkFile for StreamFile {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| Error::invalid("the file is finished"))?;
        tx.send(data.to_vec())
            .map_err(|_| Error::invalid("the backup of this file failed; see the log"))
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.finished.store(true, Ordering::SeqCst);
        // Closing the channel ends the stream; the backup then checks the verdict.
        self.tx.take();
        Ok(())
    }
}

/// The reading end: the chunks, in order, as a byte stream that ends when the writer is
/// dropped or finished.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_repo::{Actor, InitOptions, KdfParams, Repository};

    /// A hook may open [`MAX_SINKS`] files in a phase, and no more.
    #[test]
    fn sinks_per_phase_are_capped() {
        let kdf = KdfParams {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        };
        let actor = Actor {
            hostname: "h".into(),
            username: "u".into(),
        };
        let repo = Repository::init(
            Arc::new(cairn_testing::InMemoryBackend::new()),
            b"pw",
            &InitOptions::default().kdf(kdf),
            &actor,
        )
        .unwrap();
        let sinks = StreamSinks::new(
            Arc::new(repo.to_indexed().unwrap()),
            BackupOptions::new(actor),
            "shop",
            Arc::default(),
        );
        let open: Vec<_> = (0..MAX_SINKS)
            .map(|i| sinks.open(&format!("dump-{i}")).unwrap())
            .collect();
        let e = sinks.open("one-too-many").err().unwrap().to_string();
        assert!(e.contains("more than 8 sink files"), "{e}");
        assert!(e.contains("apps/shop/one-too-many"), "{e}");
        drop(open);
        let outcomes = sinks.settle(false);
        assert_eq!(outcomes.len(), MAX_SINKS);
        assert!(outcomes.iter().all(|(_, o)| o.is_err()));
    }
}
