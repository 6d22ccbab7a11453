//! Request paths, parsed once: the same parsed form is authorized and stored.
//!
//! A path is `/<repo>/` (with `?create=true`), `/<repo>/config`, `/<repo>/<type>/` (a
//! listing) or `/<repo>/<type>/<name>`, where `<repo>` is one to three segments of
//! `[A-Za-z0-9._-]` (not `.`, `..`, nor a type name) and `<name>` is 64 lower-case hex digits.
//! Everything else — percent-encoding of any kind, backslashes, NUL, empty, `.` or `..`
//! segments, other names — is refused before anything reaches the store.

use std::fmt;

use cairn_repo::FileType;

/// The most segments a repository path may have (`/<kind>/<app>/<volume>/`).
pub const MAX_REPO_SEGMENTS: usize = 3;
/// The longest segment accepted.
const MAX_SEGMENT: usize = 128;

/// A repository's path below the storage location: one to three checked segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoPath(String);

impl RepoPath {
    /// Parses `kind/app` (slashes at either end are ignored).
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn parse(text: &str) -> Result<RepoPath, String> {
        let trimmed = text.trim_matches('/');
        let segments: Vec<&str> = trimmed.split('/').collect();
        if trimmed.is_empty() || segments.len() > MAX_REPO_SEGMENTS {
            return Err(format!(
                "repository path `{text}` must have 1 to {MAX_REPO_SEGMENTS} segments"
            ));
        }
        for s in &segments {
            check_segment(s)?;
            if type_of(s).is_some() {
                return Err(format!(
                    "repository path `{text}`: `{s}` is the name of a repository file type"
                ));
            }
        }
        Ok(RepoPath(segments.join("/")))
    }

    /// `kind/app`, without slashes at the ends.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_segment(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty path segment".into());
    }
    if s == "." || s == ".." {
        return Err(format!("path segment `{s}`"));
    }
    if s.len() > MAX_SEGMENT {
        return Err("path segment too long".into());
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("path segment with a character outside [A-Za-z0-9._-]".into());
    }
    Ok(())
}

fn type_of(s: &str) -> Option<FileType> {
    FileType::ALL.into_iter().find(|t| t.dir() == s)
}

/// What a request names inside a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// The repository itself (`POST /<repo>/?create=true`).
    Root,
    /// All files of a type (`GET /<repo>/<type>/`).
    List(FileType),
    /// One file (`config`, or a type and a 64-hex name).
    File(FileType, String),
}

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The repository.
    pub repo: RepoPath,
    /// What inside it.
    pub object: Object,
}

impl Target {
    /// The file's type, if it names files.
    pub fn file_type(&self) -> Option<FileType> {
        match &self.object {
            Object::Root => None,
            Object::List(t) | Object::File(t, _) => Some(*t),
        }
    }
}

fn is_name(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parses a raw request path (as sent, before any decoding).
///
/// # Errors
/// A reason for the 400 answer.
pub fn parse(raw: &str) -> Result<Target, String> {
    if raw.len() > 1024 {
        return Err("path too long".into());
    }
    if raw.contains(['%', '\\', '\0']) {
        return Err("path with percent-encoding, a backslash or NUL".into());
    }
    let Some(rest) = raw.strip_prefix('/') else {
        return Err("path must start with /".into());
    };
    let dir = rest.ends_with('/');
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segments: Vec<&str> = rest.split('/').collect();
    for s in &segments {
        check_segment(s)?;
    }
    // The first segment that names a file type ends the repository path.
    let at = segments.iter().position(|s| type_of(s).is_some());
    let (repo, object) = match at {
        None => {
            if !dir {
                return Err("a repository path must end with /".into());
            }
            (&segments[..], Object::Root)
        }
        Some(i) => {
            let tpe = type_of(segments[i]).unwrap_or(FileType::Config);
            let object = match (tpe, &segments[i + 1..], dir) {
                (FileType::Config, [], false) => Object::File(FileType::Config, "config".into()),
                (FileType::Config, _, _) => return Err("nothing lies below config".into()),
                (t, [], _) => Object::List(t),
                (t, [name], false) if is_name(name) => Object::File(t, (*name).to_owned()),
                (t, [_], false) => {
                    return Err(format!("a {t} name must be 64 lower-case hex digits"));
                }
                _ => return Err("too many segments after the file type".into()),
            };
            (&segments[..i], object)
        }
    };
    if repo.is_empty() || repo.len() > MAX_REPO_SEGMENTS {
        return Err(format!(
            "the repository path must have 1 to {MAX_REPO_SEGMENTS} segments"
        ));
    }
    Ok(Target {
        repo: RepoPath(repo.join("/")),
        object,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn good_paths() {
        let t = parse(&format!("/apps/shop/data/{N}")).unwrap();
        assert_eq!(t.repo.as_str(), "apps/shop");
        assert_eq!(t.object, Object::File(FileType::Pack, N.into()));
        assert_eq!(
            parse("/a/b/c/config").unwrap().object,
            Object::File(FileType::Config, "config".into())
        );
        assert_eq!(
            parse("/r/locks/").unwrap().object,
            Object::List(FileType::Lock)
        );
        assert_eq!(
            parse("/r/keys").unwrap().object,
            Object::List(FileType::Key)
        );
        assert_eq!(parse("/r/").unwrap().object, Object::Root);
        assert_eq!(parse("/a.b_c-d/").unwrap().repo.as_str(), "a.b_c-d");
    }

    #[test]
    fn every_spelling_of_traversal_and_every_bad_name_is_refused() {
        for bad in [
            "/",
            "",
            "r/config",
            "/r",
            "/../r/config",
            "/r/../other/config",
            "/r/./config",
            "/r//config",
            "//r/config",
            "/r%2F..%2Fother/config",
            "/r/%2e%2e/config",
            "/r/%2E%2E/config",
            "/r\\..\\other/config",
            "/r\0/config",
            "/a/b/c/d/config",
            "/config",
            "/data/",
            &format!("/data/{N}"),
            &format!("/r/data/{}", N.to_uppercase()),
            &format!("/r/data/{}", &N[1..]),
            &format!("/r/data/{N}0"),
            &format!("/r/data/{N}/"),
            &format!("/r/data/{N}/x"),
            "/r/data/config",
            "/r/config/",
            "/r/config/x",
            "/r/snapshots/../config",
            "/r/ü/config",
            "/r/a b/config",
        ] {
            assert!(
                parse(bad).is_err(),
                "{bad:?} was accepted: {:?}",
                parse(bad)
            );
        }
    }

    #[test]
    fn repository_paths() {
        assert_eq!(
            RepoPath::parse("/apps/shop/").unwrap().as_str(),
            "apps/shop"
        );
        for bad in ["", "/", "a/../b", "a//b", "a/b/c/d", "a/data", "a/%2e"] {
            assert!(RepoPath::parse(bad).is_err(), "{bad}");
        }
    }
}
