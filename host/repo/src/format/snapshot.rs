//! Snapshots (`snapshots/<id>`): what was backed up, when, from where, for which app, and what
//! the run did.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::id::Id;

/// A snapshot as stored (sealed JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the backup started.
    pub time: Timestamp,
    /// Host it was taken on (or `--host`).
    pub hostname: String,
    /// User that ran it.
    pub username: String,
    /// Numeric uid that ran it.
    pub uid: u32,
    /// Numeric gid that ran it.
    pub gid: u32,
    /// The absolute paths backed up, sorted.
    pub paths: Vec<String>,
    /// Tags, sorted and unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Stable app identity (`namespace/app/volume`), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// For a discovered volume: its stable identity (`k8s/<namespace>/<pvc>`). The snapshot's
    /// tree is then the volume's contents, and its chain follows the identity across hosts
    /// and paths (a pod recreated elsewhere continues it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// The snapshot this one was compared against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Id>,
    /// Root tree.
    pub tree: Id,
    /// Exclude patterns in force.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// Version of the program that wrote it.
    pub program_version: String,
    /// What the backup did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// When this snapshot replaces another (`tag` rewrites it): the first one's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Id>,
}

/// Counts and sizes of one backup run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Start of the run.
    pub backup_start: Option<Timestamp>,
    /// End of the run.
    pub backup_end: Option<Timestamp>,
    /// Files not in the parent.
    pub files_new: u64,
    /// Files in the parent whose metadata changed (read again).
    pub files_changed: u64,
    /// Files unchanged since the parent (not read).
    pub files_unmodified: u64,
    /// Directories not in the parent.
    pub dirs_new: u64,
    /// Directories whose tree changed.
    pub dirs_changed: u64,
    /// Directories whose tree is the parent's.
    pub dirs_unmodified: u64,
    /// Data blobs added.
    pub data_blobs: u64,
    /// Tree blobs added.
    pub tree_blobs: u64,
    /// Plaintext bytes of the blobs added.
    pub data_added: u64,
    /// Bytes stored for them (compressed and sealed).
    pub data_added_packed: u64,
    /// Files seen.
    pub total_files_processed: u64,
    /// Bytes of the files seen.
    pub total_bytes_processed: u64,
    /// Entries that could not be read (the snapshot is incomplete when non-zero).
    #[serde(default)]
    pub errors: u64,
    /// Wall time in seconds.
    pub duration_seconds: f64,
    /// The app's hooks that ran before this snapshot was read (pre-backup).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookRun>,
}

/// What one hook did in one phase.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRun {
    /// The hook (its plugin's name).
    pub hook: String,
    /// The phase (`pre-backup`).
    pub phase: String,
    /// Whether it succeeded.
    pub success: bool,
    /// Its one-line report, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Details it reported.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub details: std::collections::BTreeMap<String, String>,
}

// `f64` has no `Eq`; durations are never NaN.
impl Eq for Summary {}

impl Snapshot {
    /// Whether this snapshot is of the same source, the key of parent selection: the same
    /// volume identity for a volume, else the same host, paths and app.
    pub fn same_source(
        &self,
        hostname: &str,
        paths: &[String],
        app: Option<&str>,
        volume: Option<&str>,
    ) -> bool {
        match volume {
            Some(v) => self.volume.as_deref() == Some(v),
            None => {
                self.volume.is_none()
                    && self.hostname == hostname
                    && self.paths == paths
                    && self.app.as_deref() == app
            }
        }
    }
}
