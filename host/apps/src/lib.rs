//! Apps as a library: what the configuration file declares (plugin instances, apps), the
//! session that resolves settings once and holds one plugin runtime, the plan of which
//! volumes each app backs up, the pre/post hook bracket around an app's step, and hook sink
//! files saved as snapshots. It prints nothing; the `cairn` CLI and the agent call it.
//!
//! ```no_run
//! use std::sync::Arc;
//! use cairn_apps::{Session, Settings, plan::{Selection, plan}};
//!
//! # fn main() -> cairn_repo::Result<()> {
//! let session = Session::new(Settings::default(), Arc::default());
//! let found = session.discover(&Default::default(), false)?.all()?;
//! let selection = Selection { all_apps: true, ..Selection::default() };
//! for (app, volumes) in plan(session.config()?, found, &selection)? {
//!     println!("{app:?}: {} volumes", volumes.len());
//! }
//! # Ok(())
//! # }
//! ```

pub mod backup;
pub mod config;
pub mod hooks;
pub mod plan;
pub mod plugins;
pub mod session;
pub mod sinks;
pub mod units;

pub use config::{App, ConfigFile, HookSpec, Instance, OnError};
pub use hooks::{AppHooks, Bracketed, HookFailure, Operation, PhaseResult, bracket};
pub use plugins::{Discovered, Discovery, Inventory, Ready};
pub use session::{
    Hints, Password, PasswordSource, Session, Settings, actor, location_key, read_rest_credentials,
};
