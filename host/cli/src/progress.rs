//! Progress: bars on a terminal (indicatif), JSON status lines with `--json`, nothing otherwise.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_repo::ops::backup::BackupProgress;
use cairn_repo::ops::restore::RestoreProgress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::output;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bar,
    Json,
    Silent,
}

impl Mode {
    pub fn choose(quiet: bool, json: bool) -> Self {
        if quiet {
            Mode::Silent
        } else if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Silent
        }
    }
}

#[derive(Serialize)]
struct Status<'a> {
    message_type: &'static str,
    seconds_elapsed: u64,
    percent_done: f64,
    total_files: u64,
    files_done: u64,
    total_bytes: u64,
    bytes_done: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_file: Option<&'a str>,
}

/// Progress of a backup or restore.
pub struct Progress {
    mode: Mode,
    bar: Option<ProgressBar>,
    start: Instant,
    last_json: Mutex<Instant>,
    total_files: AtomicU64,
    total_bytes: AtomicU64,
    files: AtomicU64,
    bytes: AtomicU64,
    current: Mutex<String>,
}

impl Progress {
    pub fn new(mode: Mode) -> Self {
        let bar = (mode == Mode::Bar).then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                )
                .expect("valid template"),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Self {
            mode,
            bar,
            start: Instant::now(),
            last_json: Mutex::new(Instant::now()),
            total_files: AtomicU64::new(0),
            total_bytes: AtomicU64::new(0),
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            current: Mutex::new(String::new()),
        }
    }

    fn set_totals(&self, files: u64, bytes: u64) {
        self.total_files.store(files, Ordering::Relaxed);
        self.total_bytes.store(bytes, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_length(bytes);
        }
    }

    fn add_bytes(&self, n: u64) {
        let done = self.bytes.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(b) = &self.bar {
            b.set_position(done);
        }
        self.maybe_json();
    }

    fn maybe_json(&self) {
        if self.mode != Mode::Json {
            return;
        }
        let mut last = self.last_json.lock().expect("progress lock");
        if last.elapsed() < Duration::from_secs(1) {
            return;
        }
        *last = Instant::now();
        let total = self.total_bytes.load(Ordering::Relaxed);
        let done = self.bytes.load(Ordering::Relaxed);
        let current = self.current.lock().expect("progress lock").clone();
        let _ = output::json(&Status {
            message_type: "status",
            seconds_elapsed: self.start.elapsed().as_secs(),
            percent_done: if total == 0 {
                0.0
            } else {
                (done as f64 / total as f64).min(1.0)
            },
            total_files: self.total_files.load(Ordering::Relaxed),
            files_done: self.files.load(Ordering::Relaxed),
            total_bytes: total,
            bytes_done: done,
            current_file: (!current.is_empty()).then_some(current.as_str()),
        });
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    /// Prints a warning above the bar (or plainly on stderr).
    pub fn warn(&self, message: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln_safe(message)),
            None => eprintln_safe(message),
        }
    }
}

fn eprintln_safe(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "warning: {message}");
}

impl BackupProgress for Progress {
    fn wants_totals(&self) -> bool {
        self.mode != Mode::Silent
    }
    fn totals(&self, files: u64, bytes: u64, _done: bool) {
        self.set_totals(files, bytes);
    }
    fn file_started(&self, path: &Path) {
        if self.mode == Mode::Silent {
            return;
        }
        let p = path.display().to_string();
        if let Some(b) = &self.bar {
            let done = self.files.load(Ordering::Relaxed);
            let total = self.total_files.load(Ordering::Relaxed);
            b.set_message(format!("{done}/{total} files  {p}"));
        }
        *self.current.lock().expect("progress lock") = p;
    }
    fn bytes(&self, n: u64) {
        self.add_bytes(n);
    }
    fn file_done(&self, _path: &Path) {
        self.files.fetch_add(1, Ordering::Relaxed);
    }
    fn warning(&self, _path: &Path, message: &str) {
        self.warn(message);
    }
}

impl RestoreProgress for Progress {
    fn totals(&self, files: u64, bytes: u64) {
        self.set_totals(files, bytes);
    }
    fn bytes(&self, n: u64) {
        self.add_bytes(n);
    }
    fn warning(&self, _path: &Path, message: &str) {
        self.warn(message);
    }
}
