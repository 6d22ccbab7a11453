//! `plugin.toml`: what a plugin is and what it asks for.
//!
//! ```toml
//! name = "rest"
//! version = "0.1.0"
//! world = "cairn:plugin/storage-backend@0.1.0"
//! description = "…"
//!
//! [[config]]                 # the settings it takes
//! key = "url"
//! location = true            # where the repository is: the gateway appends `/<repo path>`
//! [[config]]
//! key = "password"
//! secret = true              # never logged or printed
//!
//! [capabilities]
//! http = ["config:url"]      # "host:port", or the authority of the URL in a setting
//! [[capabilities.dirs]]
//! mount = "/repo"            # where the plugin sees it
//! path = "config:path"       # an absolute host path, or a setting that holds one
//! access = "read-write"      # or "read-only" (the default)
//! [[capabilities.dirs]]
//! mount = "/var/lib/kubelet"
//! path = "${host-root}/var/lib/kubelet"   # `${host-root}` and `${SETTING}` are replaced
//! optional = true            # skipped (not refused) when missing, not granted, or unset
//!
//! [limits]                   # what it needs per instance and per call
//! memory-mib = 128
//! cpu-ms = 10000
//! wall-ms = 300000
//! ```
//!
//! Requests are only requests: the operator's grants decide ([`crate::grants`]).

use std::path::Path;

use cairn_repo::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::world::World;

/// A plugin's manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name: lowercase letters, digits and `-`.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The world it implements, with its version (`cairn:plugin/storage-backend@0.1.0`).
    pub world: String,
    /// One line about it.
    #[serde(default)]
    pub description: String,
    /// The settings it takes.
    #[serde(default)]
    pub config: Vec<ConfigKey>,
    /// What it asks to reach.
    #[serde(default)]
    pub capabilities: Requests,
    /// What it needs to run.
    #[serde(default)]
    pub limits: LimitRequests,
}

/// One setting a plugin takes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConfigKey {
    /// The key.
    pub key: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Whether the plugin refuses to start without it.
    #[serde(default)]
    pub required: bool,
    /// Whether the value is a secret (password, token): never logged or printed.
    #[serde(default)]
    pub secret: bool,
    /// Whether the value says where the repository is (a directory, a URL): a storage
    /// plugin's one such setting, to which `cairn gateway` appends `/<repository path>` to
    /// serve many repositories from one instance.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub location: bool,
}

/// The capabilities a plugin requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Requests {
    /// Authorities for outgoing HTTP: `host:port`, or `config:KEY` for the authority of the URL
    /// in setting `KEY`.
    #[serde(default)]
    pub http: Vec<String>,
    /// Directories to see.
    #[serde(default)]
    pub dirs: Vec<DirRequest>,
}

/// A directory a plugin asks to see.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DirRequest {
    /// Where the plugin sees it (an absolute guest path such as `/repo`).
    pub mount: String,
    /// The host directory: an absolute path, or `config:KEY` for the path in setting `KEY`.
    /// `${host-root}` is replaced by the prefix under which the node's file system is seen
    /// (`--host-root`, empty by default) and `${KEY}` by setting `KEY`.
    pub path: String,
    /// How it may be used.
    #[serde(default)]
    pub access: Access,
    /// When true, a directory that does not exist, is not granted, or names an unset setting
    /// is left out instead of stopping the plugin.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

/// The variable `${host-root}` in directory paths.
pub const HOST_ROOT: &str = "host-root";

/// The names of the `${NAME}` variables in `path`.
///
/// # Errors
/// When a `${` is not closed or a name is empty.
pub(crate) fn variables(path: &str) -> Result<Vec<&str>> {
    let mut names = Vec::new();
    interpolate(path, |name| {
        names.push(name);
        Some("")
    })?
    .ok();
    Ok(names)
}

/// `path` with every `${NAME}` replaced by `value(NAME)`; `Err(NAME)` for the first name
/// without a value.
///
/// # Errors
/// When a `${` is not closed or a name is empty.
pub(crate) fn interpolate<'p, 'v>(
    path: &'p str,
    mut value: impl FnMut(&'p str) -> Option<&'v str>,
) -> Result<std::result::Result<String, &'p str>> {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| {
            Error::invalid(format!("`{path}` has a `${{` without its closing `}}`"))
        })?;
        if end == 0 {
            return Err(Error::invalid(format!("`{path}` has an empty `${{}}`")));
        }
        match value(&after[..end]) {
            Some(v) => out.push_str(v),
            None => return Ok(Err(&after[..end])),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Ok(out))
}

/// How a directory may be used.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Read contents and metadata; no create, delete, rename or write.
    #[default]
    ReadOnly,
    /// Everything.
    ReadWrite,
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Access::ReadOnly => "read-only",
            Access::ReadWrite => "read-write",
        })
    }
}

/// What a plugin needs to run; each is capped by the grant.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitRequests {
    /// Linear memory of one instance, all memories together, in MiB.
    pub memory_mib: Option<u64>,
    /// CPU time of one call, in milliseconds.
    pub cpu_ms: Option<u64>,
    /// Wall-clock time of one call, in milliseconds.
    pub wall_ms: Option<u64>,
}

/// A value that names a setting (`config:KEY`) rather than giving itself.
pub(crate) fn config_ref(value: &str) -> Option<&str> {
    value.strip_prefix("config:")
}

/// Words that mark a setting as secret even when the manifest forgets to.
const SECRET_WORDS: [&str; 5] = ["password", "secret", "token", "credential", "private"];

impl Manifest {
    /// Reads and checks a manifest file.
    ///
    /// # Errors
    /// When the file cannot be read or is not a valid manifest (the message names the file).
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read plugin manifest {}", path.display()), e))?;
        Manifest::parse(&text).map_err(|e| e.context(path.display()))
    }

    /// Parses and checks a manifest.
    ///
    /// # Errors
    /// When it is not valid TOML, misses a field, or holds a bad value.
    pub fn parse(text: &str) -> Result<Manifest> {
        let manifest: Manifest = toml::from_str(text)
            .map_err(|e| Error::invalid(format!("invalid plugin manifest: {}", e.message())))?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::invalid(format!("invalid plugin manifest: {msg}")));
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad(format!(
                "name `{}` must be 1–64 lowercase letters, digits or `-`",
                self.name
            ));
        }
        if self.version.trim().is_empty() {
            return bad("version is empty".into());
        }
        let world = World::from_wit_name(&self.world)?;
        let locations: Vec<&str> = self
            .config
            .iter()
            .filter(|c| c.location)
            .map(|c| c.key.as_str())
            .collect();
        if locations.len() > 1 {
            return bad(format!(
                "settings {} are all marked `location`; a plugin has at most one",
                locations.join(", ")
            ));
        }
        if let Some(c) = self.config.iter().find(|c| c.location && !c.required) {
            return bad(format!(
                "setting `{}` is marked `location` and must also be `required`",
                c.key
            ));
        }
        if !locations.is_empty() && world != World::StorageBackend {
            return bad(format!(
                "setting `{}` is marked `location`, which only a storage plugin's setting may be",
                locations[0]
            ));
        }
        for http in &self.capabilities.http {
            match config_ref(http) {
                Some(key) => self.check_declared(key, "capabilities.http")?,
                None => {
                    crate::grants::parse_authority(http)
                        .map_err(|e| e.context("invalid plugin manifest"))?;
                }
            }
        }
        for dir in &self.capabilities.dirs {
            if !dir.mount.starts_with('/') || dir.mount.split('/').any(|c| c == "..") {
                return bad(format!(
                    "directory mount `{}` must be an absolute path without `..`",
                    dir.mount
                ));
            }
            let names = variables(&dir.path).map_err(|e| e.context("invalid plugin manifest"))?;
            for name in &names {
                if *name != HOST_ROOT {
                    self.check_declared(name, "capabilities.dirs")?;
                }
            }
            match config_ref(&dir.path) {
                Some(key) => self.check_declared(key, "capabilities.dirs")?,
                None if dir.path.starts_with('/') || dir.path.starts_with("${") => {}
                None => {
                    return bad(format!(
                        "directory path `{}` must be absolute, start with `${{host-root}}` or \
                         `${{KEY}}`, or be `config:KEY`",
                        dir.path
                    ));
                }
            }
        }
        for (value, what) in [
            (self.limits.memory_mib, "memory-mib"),
            (self.limits.cpu_ms, "cpu-ms"),
            (self.limits.wall_ms, "wall-ms"),
        ] {
            if value == Some(0) {
                return bad(format!("limits.{what} must be more than 0"));
            }
        }
        Ok(())
    }

    fn check_declared(&self, key: &str, field: &str) -> Result<()> {
        if self.config.iter().any(|c| c.key == key) {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "invalid plugin manifest: {field} refers to `config:{key}`, but no [[config]] \
                 entry declares `{key}`"
            )))
        }
    }

    /// The world this plugin implements.
    pub fn world(&self) -> World {
        // Checked when the manifest was parsed.
        World::from_wit_name(&self.world).unwrap_or(World::StorageBackend)
    }

    /// The setting that says where the repository is, when one is marked `location`.
    pub fn location_key(&self) -> Option<&str> {
        self.config
            .iter()
            .find(|c| c.location)
            .map(|c| c.key.as_str())
    }

    /// Whether setting `key` holds a secret.
    pub fn is_secret(&self, key: &str) -> bool {
        let lower = key.to_ascii_lowercase();
        self.config.iter().any(|c| c.key == key && c.secret)
            || SECRET_WORDS.iter().any(|w| lower.contains(w))
    }

    /// Checks a configuration against the declared settings: every required key is present
    /// and no key is unknown.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](cairn_repo::ErrorKind::InvalidInput) naming the key.
    pub fn check_config<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let keys: Vec<&str> = keys.into_iter().collect();
        let known: Vec<&str> = self.config.iter().map(|c| c.key.as_str()).collect();
        if let Some(unknown) = keys.iter().find(|k| !known.contains(k)) {
            return Err(Error::invalid(format!(
                "plugin `{}` has no setting `{unknown}` (it takes: {})",
                self.name,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        }
        if let Some(missing) = self
            .config
            .iter()
            .find(|c| c.required && !keys.contains(&c.key.as_str()))
        {
            return Err(Error::invalid(format!(
                "plugin `{}` needs the setting `{}` ({}): set it in the configuration file or \
                 with -o {}=VALUE",
                self.name, missing.key, missing.description, missing.key
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REST: &str = r#"
        name = "rest"
        version = "0.1.0"
        world = "cairn:plugin/storage-backend@0.1.0"
        [[config]]
        key = "url"
        required = true
        location = true
        [[config]]
        key = "pass"
        secret = true
        [capabilities]
        http = ["config:url", "127.0.0.1:9000"]
        [[capabilities.dirs]]
        mount = "/repo"
        path = "/srv/x"
        access = "read-write"
    "#;

    #[test]
    fn parses_and_checks_settings() {
        let m = Manifest::parse(REST).unwrap();
        assert_eq!(m.world(), World::StorageBackend);
        assert_eq!(m.capabilities.dirs[0].access, Access::ReadWrite);
        assert!(m.is_secret("pass") && m.is_secret("db-password") && !m.is_secret("url"));
        assert_eq!(m.location_key(), Some("url"));
        m.check_config(["url", "pass"]).unwrap();
        let e = m.check_config(["pass"]).unwrap_err().to_string();
        assert!(e.contains("needs the setting `url`"), "{e}");
        let e = m.check_config(["url", "urll"]).unwrap_err().to_string();
        assert!(
            e.contains("no setting `urll`") && e.contains("url, pass"),
            "{e}"
        );
    }

    #[test]
    fn refuses_bad_manifests() {
        for (text, needle) in [
            (REST.replace("\"rest\"", "\"Rest!\""), "name `Rest!`"),
            (
                REST.replace("storage-backend@0.1.0", "storage-backend@9.0.0"),
                "9.0.0",
            ),
            (REST.replace("config:url", "config:nope"), "`nope`"),
            (REST.replace("\"/repo\"", "\"repo\""), "mount `repo`"),
            (REST.replace("\"/srv/x\"", "\"srv\""), "path `srv`"),
            (REST.replace("\"/srv/x\"", "\"${nope}/x\""), "`nope`"),
            (REST.replace("\"/srv/x\"", "\"${url/x\""), "closing"),
            (REST.replace("127.0.0.1:9000", "no port"), "no port"),
            (format!("{REST}\nsurprise = 1"), "surprise"),
            (
                REST.replace("secret = true", "secret = true\nlocation = true"),
                "at most one",
            ),
            (
                REST.replace("storage-backend", "volume-discovery"),
                "only a storage plugin",
            ),
            (
                REST.replace("required = true\n        location", "location"),
                "must also be `required`",
            ),
        ] {
            let e = Manifest::parse(&text).unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }
}

#[cfg(test)]
mod interpolation {
    use super::*;

    #[test]
    fn replaces_variables_and_reports_missing_ones() {
        let value = |name: &str| match name {
            "host-root" => Some("/host"),
            "root" => Some("/srv/kubelet"),
            _ => None,
        };
        assert_eq!(
            interpolate("${host-root}/var/lib/kubelet", value).unwrap(),
            Ok("/host/var/lib/kubelet".to_owned())
        );
        assert_eq!(
            interpolate("${host-root}${root}", value).unwrap(),
            Ok("/host/srv/kubelet".to_owned())
        );
        assert_eq!(
            interpolate("${host-root}${unset}", value).unwrap(),
            Err("unset")
        );
        assert_eq!(
            variables("${host-root}/a/${b}").unwrap(),
            ["host-root", "b"]
        );
    }
}
