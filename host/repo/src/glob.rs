//! Path patterns for `--exclude`/`--include`: a pattern with a `/` is matched against the
//! whole path, one without against the last component (so `*.tmp` works at any depth).

use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// A set of path patterns.
#[derive(Debug, Clone)]
pub struct PathPatterns {
    by_path: GlobSet,
    by_name: GlobSet,
    empty: bool,
}

impl PathPatterns {
    /// Compiles `patterns`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] naming the bad pattern.
    pub fn new(patterns: &[String]) -> Result<Self> {
        let mut by_path = GlobSetBuilder::new();
        let mut by_name = GlobSetBuilder::new();
        for p in patterns {
            let glob = Glob::new(p)
                .map_err(|e| Error::invalid(format!("pattern `{p}` is invalid: {e}")))?;
            if p.contains('/') {
                by_path.add(glob);
            } else {
                by_name.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| Error::invalid(format!("patterns are invalid: {e}")))
        };
        Ok(Self {
            by_path: build(by_path)?,
            by_name: build(by_name)?,
            empty: patterns.is_empty(),
        })
    }

    /// Whether no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// Whether `path` matches a pattern.
    pub fn matches(&self, path: &Path) -> bool {
        self.by_path.is_match(path)
            || path
                .file_name()
                .is_some_and(|n| self.by_name.is_match(Path::new(n)))
    }
}
