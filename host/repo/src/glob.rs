//! Path patterns for `--exclude`/`--include`, anchored as restic anchors them:
//! - a pattern without `/` is matched against each entry's name (so `*.tmp` works at any
//!   depth);
//! - one that starts with `/` is matched against the whole path from the root it applies to
//!   (the snapshot's root, or the restored subpath: `restore latest:/srv --include /etc/*`
//!   means `/srv/etc/*`);
//! - any other (`etc/*`, `a/b`) is matched against the path's end at any depth, as if it
//!   began with `**/`.
//!
//! `*` crosses `/` (globset's default), `**` spans directories.

use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// A set of path patterns.
#[derive(Debug, Clone)]
pub struct PathPatterns {
    anchored: GlobSet,
    anywhere: GlobSet,
    by_name: GlobSet,
    /// For each set, the index of each of its globs in the patterns given.
    order: [Vec<usize>; 3],
    len: usize,
}

impl PathPatterns {
    /// Compiles `patterns`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] naming the bad pattern.
    pub fn new(patterns: &[String]) -> Result<Self> {
        let mut sets = [
            GlobSetBuilder::new(),
            GlobSetBuilder::new(),
            GlobSetBuilder::new(),
        ];
        let mut order: [Vec<usize>; 3] = Default::default();
        for (i, p) in patterns.iter().enumerate() {
            let (set, glob) = if p.starts_with('/') {
                (0, p.clone())
            } else if p.contains('/') {
                (1, format!("**/{}", p.trim_start_matches("./")))
            } else {
                (2, p.clone())
            };
            let glob = Glob::new(&glob)
                .map_err(|e| Error::invalid(format!("pattern `{p}` is invalid: {e}")))?;
            sets[set].add(glob);
            order[set].push(i);
        }
        let [a, b, c] = sets.map(|b| {
            b.build()
                .map_err(|e| Error::invalid(format!("patterns are invalid: {e}")))
        });
        Ok(Self {
            anchored: a?,
            anywhere: b?,
            by_name: c?,
            order,
            len: patterns.len(),
        })
    }

    /// Whether no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `path` (absolute from the patterns' root: `/etc/hosts`) matches a pattern.
    pub fn matches(&self, path: &Path) -> bool {
        self.anchored.is_match(path)
            || self.anywhere.is_match(relative(path))
            || path
                .file_name()
                .is_some_and(|n| self.by_name.is_match(Path::new(n)))
    }

    /// The indices (in the patterns given) of every pattern `path` matches.
    pub fn which(&self, path: &Path) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        let mut add = |set: &GlobSet, order: &[usize], p: &Path| {
            out.extend(set.matches(p).into_iter().map(|i| order[i]));
        };
        add(&self.anchored, &self.order[0], path);
        add(&self.anywhere, &self.order[1], relative(path));
        if let Some(n) = path.file_name() {
            add(&self.by_name, &self.order[2], Path::new(n));
        }
        out
    }
}

fn relative(path: &Path) -> &Path {
    path.strip_prefix("/").unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(p: &[&str]) -> PathPatterns {
        PathPatterns::new(&p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn anchored_anywhere_and_by_name() {
        let m = |pats: &[&str], path: &str| set(pats).matches(Path::new(path));
        assert!(m(&["*.tmp"], "/a/b/c.tmp"));
        assert!(m(&["etc"], "/srv/etc"));
        assert!(m(&["/etc/*"], "/etc/hosts"));
        assert!(!m(&["/etc/*"], "/srv/etc/hosts"), "anchored at the root");
        assert!(m(&["etc/*"], "/etc/hosts"));
        assert!(m(&["etc/*"], "/srv/etc/hosts"), "at any depth");
        assert!(m(&["etc/**"], "/srv/etc/a/b"));
        assert!(!m(&["etc/*"], "/srv/etcx/hosts"));
        assert!(m(&["/home/*/.cache"], "/home/u/.cache"));
        assert!(m(&["*/.cache"], "/home/u/.cache"));
        assert!(m(&["./etc/*"], "/etc/hosts"));
        assert!(!m(&[], "/x"));
        let s = set(&["/x/*", "*.rs", "a/b"]);
        assert_eq!(s.which(Path::new("/x/main.rs")), [0, 1]);
        assert_eq!(s.which(Path::new("/q/a/b")), [2]);
        assert!(PathPatterns::new(&["[".to_owned()]).is_err());
    }
}
