//! One module per operation.

pub mod backup;
pub mod check;
pub mod copy;
pub mod diff;
pub mod dump;
pub mod forget;
pub mod prune;
pub mod recover;
pub mod restore;
pub mod stats;
pub mod walk;
