//! Credentials: random tokens shown once, stored only as SHA-256 hashes in the state
//! directory (`credentials.json`, 0600), checked in constant time.
//!
//! A token has 256 bits from the OS's generator, so one SHA-256 is as good as a slow KDF
//! here (nothing to guess) and costs microseconds per request.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use cairn_repo::{Error, ErrorKind, Result};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::path::RepoPath;

/// The file of hashed credentials in the state directory.
pub const CREDENTIALS_FILE: &str = "credentials.json";
/// The longest credential name.
const MAX_NAME: usize = 64;

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything, on every repository (prune, forget, check, unlock).
    Node,
    /// Its repositories only: list, read, create new files, delete the locks it created.
    App,
    /// Read-only on one repository until it expires.
    Restore,
}

impl Role {
    /// Its name (`node`, `app`, `restore`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::App => "app",
            Role::Restore => "restore",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Role> {
        match s {
            "node" => Ok(Role::Node),
            "app" => Ok(Role::App),
            other => Err(Error::invalid(format!(
                "role `{other}` is not `node` or `app` (restore grants are made with `cairn gateway grant restore`)"
            ))),
        }
    }
}

/// One credential as stored (its token only as a hash).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Its name: the HTTP Basic user.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The repositories it may use (app and restore; empty for node).
    #[serde(default)]
    pub repos: Vec<RepoPath>,
    /// SHA-256 of the token, hex.
    hash: String,
    /// When it was made.
    pub created: Timestamp,
    /// When it stops working (restore grants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Timestamp>,
}

impl Credential {
    /// Whether it may use `repo` at all.
    pub fn covers(&self, repo: &RepoPath) -> bool {
        self.role == Role::Node || self.repos.contains(repo)
    }

    /// Whether it has expired at `now`.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires.is_some_and(|e| now >= e)
    }
}

impl<'de> Deserialize<'de> for RepoPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RepoPath::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for RepoPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    credentials: Vec<Credential>,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Checks a credential name: 1–64 of `[A-Za-z0-9._-]` (it is an HTTP Basic user name, so
/// never a `:`).
///
/// # Errors
/// [`ErrorKind::InvalidInput`] saying what is allowed.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "credential name `{name}` must be 1 to {MAX_NAME} of A-Z, a-z, 0-9, `.`, `_`, `-`"
        )))
    }
}

/// The credentials of a state directory.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    all: Vec<Credential>,
}

impl Credentials {
    /// Reads `credentials.json` in `state` (none yet: no credentials).
    ///
    /// # Errors
    /// When the file cannot be read or parsed (naming it).
    pub fn load(state: &Path) -> Result<Credentials> {
        let path = state.join(CREDENTIALS_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        let file: CredentialsFile = serde_json::from_str(&text).map_err(|e| {
            Error::invalid(format!("{} is not a credentials file: {e}", path.display()))
        })?;
        Ok(Credentials {
            all: file.credentials,
        })
    }

    /// Writes them to `state` (made 0700), through a temporary file renamed into place.
    ///
    /// # Errors
    /// When the directory or file cannot be written.
    pub fn save(&self, state: &Path) -> Result<()> {
        let cannot = |e: std::io::Error| Error::io(format!("cannot write {}", state.display()), e);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state)
            .map_err(cannot)?;
        let path = state.join(CREDENTIALS_FILE);
        let temp: PathBuf = state.join(format!(
            ".{CREDENTIALS_FILE}.{:016x}",
            rand::random::<u64>()
        ));
        let body = serde_json::to_vec_pretty(&CredentialsFile {
            credentials: self.all.clone(),
        })
        .map_err(|e| Error::invalid(e.to_string()))?;
        let mut f: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(cannot)?;
        let written = f
            .write_all(&body)
            .and_then(|()| f.sync_all())
            .and_then(|()| fs::rename(&temp, &path));
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written.map_err(cannot)
    }

    /// All credentials (hashes included, for listing without them).
    pub fn all(&self) -> &[Credential] {
        &self.all
    }

    /// Adds a credential and returns its token (the only time it is seen).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a bad name, a taken one, or an app without a
    /// repository.
    pub fn add(
        &mut self,
        name: &str,
        role: Role,
        repos: Vec<RepoPath>,
        expires: Option<Timestamp>,
    ) -> Result<String> {
        check_name(name)?;
        if self.all.iter().any(|c| c.name == name) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("a credential named `{name}` exists; remove it first or pick another name"),
            ));
        }
        if role != Role::Node && repos.is_empty() {
            return Err(Error::invalid(format!(
                "an {} credential needs at least one --repo",
                role.as_str()
            )));
        }
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        let token = hex::encode(bytes);
        self.all.push(Credential {
            name: name.to_owned(),
            role,
            repos: if role == Role::Node {
                Vec::new()
            } else {
                repos
            },
            hash: hash(&token),
            created: Timestamp::now(),
            expires,
        });
        Ok(token)
    }

    /// Removes the credential `name`.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when there is none.
    pub fn remove(&mut self, name: &str) -> Result<()> {
        let before = self.all.len();
        self.all.retain(|c| c.name != name);
        if self.all.len() == before {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("there is no credential named `{name}`"),
            ));
        }
        Ok(())
    }

    /// The credential `name` whose token is `token`: `None` when either is wrong. The
    /// comparison takes the same time whatever matches.
    pub fn check(&self, name: &str, token: &str) -> Option<&Credential> {
        let given = hash(token);
        let found = self.all.iter().find(|c| c.name == name);
        let stored = found.map_or("", |c| c.hash.as_str());
        let equal: bool = given.as_bytes().ct_eq(stored.as_bytes()).into();
        found.filter(|_| equal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_only_as_hashes_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut creds = Credentials::default();
        let repo = RepoPath::parse("apps/shop").unwrap();
        let token = creds
            .add("shop", Role::App, vec![repo.clone()], None)
            .unwrap();
        assert_eq!(token.len(), 64);
        creds.save(dir.path()).unwrap();
        let text = fs::read_to_string(dir.path().join(CREDENTIALS_FILE)).unwrap();
        assert!(!text.contains(&token), "the token itself is never stored");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &fs::metadata(dir.path().join(CREDENTIALS_FILE))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let loaded = Credentials::load(dir.path()).unwrap();
        let c = loaded.check("shop", &token).unwrap();
        assert!(c.covers(&repo));
        assert!(!c.covers(&RepoPath::parse("apps/blog").unwrap()));
        assert!(loaded.check("shop", "wrong").is_none());
        assert!(loaded.check("blog", &token).is_none());
        assert!(creds.add("shop", Role::Node, vec![], None).is_err());
        assert!(creds.add("a:b", Role::Node, vec![], None).is_err());
        assert!(creds.add("app2", Role::App, vec![], None).is_err());
    }
}
