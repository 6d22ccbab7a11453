//! Logging into the host's log, tagged with the plugin's name. Never log secrets.

use crate::bindings::cairn::plugin::log::{Level, log};

/// Logs a very detailed message.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Logs a message for debugging.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Logs normal operation.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Logs something unusual that did not stop the operation.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Logs a failure.
pub fn error(message: &str) {
    log(Level::Error, message);
}
