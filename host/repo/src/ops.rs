//! One module per operation.

pub mod backup;
pub mod diff;
pub mod dump;
pub mod recover;
pub mod restore;
pub mod stats;
pub mod walk;
