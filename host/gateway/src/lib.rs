//! `cairn gateway`: one authenticated REST endpoint (restic's REST protocol v2) in front of
//! a storage location holding many repositories, where an app's credential may only add to
//! its own repository.
//!
//! - [`path`] parses a request path once; the parsed form is both authorized and stored.
//! - [`creds`] holds the credentials (tokens stored as hashes) and their roles.
//! - [`gateway`] answers one request; [`upload`] receives a file (create-only, verified,
//!   streamed); [`locks`] remembers which app made which lock.
//! - [`audit`] and [`metrics`] record what happened; [`server`] listens (TLS optional) and
//!   reloads credentials and certificates on SIGHUP.

pub mod audit;
pub mod creds;
pub mod gateway;
pub mod locks;
pub mod metrics;
pub mod path;
pub mod server;
mod upload;

pub use creds::{Credential, Credentials, Role};
pub use gateway::{Gateway, Limits, Storage};
pub use path::RepoPath;
pub use server::{ServeOptions, run, serve};
