//! The audit log: one JSON line per denial and per delete, appended to `audit.log` in the
//! state directory. It holds credential names, never tokens.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use cairn_repo::{Error, Result};
use serde::Serialize;

/// The audit log's file name in the state directory.
pub const AUDIT_FILE: &str = "audit.log";
/// The longest request path recorded.
const MAX_PATH: usize = 512;

/// One audited request.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// RFC 3339 time.
    pub time: String,
    /// The credential's name (`-` when none was accepted).
    pub credential: &'a str,
    /// Its role (`-` when none).
    pub role: &'a str,
    /// HTTP method.
    pub method: &'a str,
    /// The request path as sent (cut at 512 bytes).
    pub path: &'a str,
    /// The status answered.
    pub status: u16,
    /// Why (for a denial), or `deleted`.
    pub reason: &'a str,
}

/// An open audit log.
#[derive(Debug)]
pub struct Audit {
    file: Mutex<File>,
}

impl Audit {
    /// Opens (or creates, 0600) the audit log in `state`.
    ///
    /// # Errors
    /// When it cannot be opened.
    pub fn open(state: &Path) -> Result<Audit> {
        let path = state.join(AUDIT_FILE);
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open the audit log {}", path.display()), e))?;
        Ok(Audit {
            file: Mutex::new(file),
        })
    }

    /// Appends `entry`; a failure is logged, never answered to the client.
    pub fn record(&self, mut entry: Entry<'_>) {
        if entry.path.len() > MAX_PATH {
            let mut cut = MAX_PATH;
            while !entry.path.is_char_boundary(cut) {
                cut -= 1;
            }
            entry.path = &entry.path[..cut];
        }
        let Ok(mut line) = serde_json::to_vec(&entry) else {
            return;
        };
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(&line) {
            tracing::error!("cannot write the audit log: {e}");
        }
    }
}
