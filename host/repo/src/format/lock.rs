//! Lock files (`locks/<id>`): who holds the repository and how.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A lock as stored (sealed JSON). Refreshing writes a new lock and removes the old one.
///
/// `boot_id`, `pid_ns` and `start_time` were added later: a lock without them (written by an
/// older cairn, or where `/proc` could not be read) is judged by its age only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFile {
    /// When it was written (or last refreshed), by the holder's clock.
    pub time: Timestamp,
    /// Exclusive (prune) or shared (backup, restore, check).
    pub exclusive: bool,
    /// Host of the holder.
    pub hostname: String,
    /// User of the holder.
    pub username: String,
    /// Process id of the holder, in its own PID namespace.
    pub pid: u32,
    /// The holder's kernel boot (`/proc/sys/kernel/random/boot_id`): containers that share a
    /// host name may still run on different machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// Inode of the holder's PID namespace (`/proc/self/ns/pid`): a pid means something only
    /// in its namespace (`--network host` containers share the host name, not the pids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_ns: Option<u64>,
    /// When the holder process started, in clock ticks after boot (field 22 of
    /// `/proc/<pid>/stat`): tells a reused pid from the holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
}
