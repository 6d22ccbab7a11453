//! Lock files (`locks/<id>`): who holds the repository and how.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A lock as stored (sealed JSON). Refreshing writes a new lock and removes the old one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFile {
    /// When it was written (or last refreshed).
    pub time: Timestamp,
    /// Exclusive (prune) or shared (backup, restore, check).
    pub exclusive: bool,
    /// Host of the holder.
    pub hostname: String,
    /// User of the holder.
    pub username: String,
    /// Process id of the holder.
    pub pid: u32,
}
