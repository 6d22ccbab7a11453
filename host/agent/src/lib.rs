//! The node agent: runs each app's backups by itself — on schedules (cron in a time zone,
//! with jitter), after the apps they depend on, one job at a time (or `concurrency`) and one
//! per repository — keeps every run in an embedded database, applies retention after each
//! success, and answers an HTTP API with status, history, logs and Prometheus metrics.
//!
//! The configuration is `cairn_apps`' file with an `[agent]` table (see [`settings`]);
//! `cairn agent serve --config FILE` runs [`serve::serve`].

pub mod agent;
pub mod api;
pub mod client;
pub mod cluster;
pub mod job;
mod memory;
pub mod metrics;
pub mod schedule;
pub mod serve;
pub mod settings;
pub mod store;

pub use agent::{Agent, AppStatus, MaintenanceStatus};
pub use client::Client;
pub use settings::NodeConfig;
pub use store::{Operation, Run, RunState, Trigger};
