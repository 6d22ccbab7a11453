//! Engine integration tests: one binary, one module per area.

mod support;

mod dedup;
mod integrity;
mod locks;
mod prune;
mod restore_target;
mod stale_index;
mod untrusted;
mod walk_entries;
mod walk_races;
