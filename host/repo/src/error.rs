//! The engine's error type.
//!
//! Rules (after rustic's `error.rs`):
//! - every fallible `pub fn` returns [`Result<T>`];
//! - a message is lowercase, has no trailing period and names the object it is about
//!   (`failed to read pack 3fa2…`); lower-level errors are kept as the `source`, not re-worded;
//! - the [`ErrorKind`] is what callers branch on (the CLI maps it to an exit code once, in `main`).

use std::fmt;

/// A specialized result for the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller can act on.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// There is no repository at the given location.
    RepositoryNotFound,
    /// No key slot opens with the given password.
    WrongPassword,
    /// The repository is locked by another process.
    Locked,
    /// An object does not exist.
    NotFound,
    /// A create-only write found the object already there.
    AlreadyExists,
    /// Stored data failed to decrypt, verify or parse.
    Corrupt,
    /// The caller asked for something that cannot be done as asked.
    InvalidInput,
    /// Several objects match an abbreviated id.
    Ambiguous,
    /// The storage backend failed.
    Backend,
    /// Reading or writing local files failed.
    Io,
    /// The operation was cancelled (Ctrl-C, SIGTERM).
    Interrupted,
    /// A sandbox, a grant or the store refused the operation (a plugin without the
    /// capability, an append-only server refusing a delete).
    Denied,
}

/// The engine's error: a kind, a message naming the object, and the cause.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the lower-level cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Shorthand for an [`ErrorKind::Corrupt`] error.
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, message)
    }

    /// Shorthand for an [`ErrorKind::InvalidInput`] error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// An [`ErrorKind::Io`] error about `what` caused by `err`.
    pub fn io(what: impl fmt::Display, err: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, what.to_string()).with_source(err)
    }

    /// Prefixes the message with more context, keeping kind and source.
    #[must_use]
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
