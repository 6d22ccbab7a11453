//! Engine integration tests: one binary, one module per area.

mod support;

mod dedup;
mod integrity;
mod locks;
mod walk_entries;
mod walk_races;
