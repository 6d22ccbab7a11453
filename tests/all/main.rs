//! End-to-end tests of the `cairn` binary: one test binary, one module per area.

mod agent;
mod azure;
mod buckets;
mod commands;
mod copy;
mod discovery;
mod errors;
mod find;
mod gateway;
mod gcs;
mod hooks;
mod hostile;
mod interrupt;
mod kill_points;
mod kubernetes;
mod lifecycle;
mod mount;
mod nomad;
mod plugins;
mod prune;
mod rclone;
mod repair;
mod rest;
mod roundtrip;
mod s3;
