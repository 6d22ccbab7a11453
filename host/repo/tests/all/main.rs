//! Engine integration tests: one binary, one module per area.

mod support;

// Measures the largest allocation of the thread that asks (the fuzz tests); passes everything
// to the system allocator.
#[global_allocator]
static ALLOCATOR: cairn_testing::alloc::TrackingAllocator =
    cairn_testing::alloc::TrackingAllocator::new();

mod byte_flips;
mod dedup;
mod faults;
mod fuzz;
mod integrity;
mod locks;
mod prune;
mod restore_target;
mod stale_index;
mod untrusted;
mod walk_entries;
mod walk_races;
