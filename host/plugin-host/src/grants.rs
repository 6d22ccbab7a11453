//! What the operator allows a plugin instance, and the check that its requests fit.
//!
//! A plugin gets exactly what its manifest requests, and only when every request is covered
//! by a grant; otherwise it does not start, and the error names the plugin and the capability.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_repo::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use crate::manifest::{Access, DirRequest, HOST_ROOT, Manifest, config_ref, interpolate};

/// Memory per instance when neither manifest nor grant says (MiB).
pub const DEFAULT_MEMORY_MIB: u64 = 256;
/// CPU time per call when neither says (ms).
pub const DEFAULT_CPU_MS: u64 = 30_000;
/// Wall-clock time per call when neither says (ms).
pub const DEFAULT_WALL_MS: u64 = 300_000;

/// The operator's grants for one plugin instance (a `grant` table in the configuration file).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Grants {
    /// Authorities (`host:port`) the plugin may send HTTP requests to; `*.example.com:443`
    /// covers every subdomain on that port.
    #[serde(default)]
    pub http: Vec<String>,
    /// Host directories (and everything below them) the plugin may be given.
    #[serde(default)]
    pub dirs: Vec<DirGrant>,
    /// The most memory an instance may use (MiB); default 256.
    pub memory_mib: Option<u64>,
    /// The most CPU time a call may use (ms); default 30 000.
    pub cpu_ms: Option<u64>,
    /// The most wall-clock time a call may take (ms); default 300 000.
    pub wall_ms: Option<u64>,
}

/// A directory the operator allows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// The host directory.
    pub path: PathBuf,
    /// The most access allowed.
    #[serde(default)]
    pub access: Access,
}

/// What a plugin instance gets: its requests, resolved, all covered by grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Authorities (`host:port`) for outgoing HTTP.
    pub http: Vec<String>,
    /// Directories, each held open since it was checked.
    pub dirs: Vec<GrantedDir>,
    /// Limits for every instance and call.
    pub limits: Limits,
    /// Optional directories left out, and why (for the messages of a plugin that saw none
    /// of its layouts).
    pub left_out: Vec<LeftOut>,
}

/// An optional directory a plugin instance did not get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// The host path it names (as seen by cairn, under the host root).
    pub path: PathBuf,
    /// Why.
    pub why: Why,
}

/// Why an optional directory was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// It does not exist (or is not a directory).
    Missing,
    /// No grant covers it.
    NotGranted,
}

/// A directory given to a plugin instance: held open from the moment it was checked against
/// the grants, so that what the instance gets is that directory even if a path component is
/// swapped for a link afterwards.
#[derive(Debug, Clone)]
pub struct GrantedDir {
    /// Its real path when it was checked (for messages and for mapping guest paths back).
    pub real: PathBuf,
    /// Where the guest sees it.
    pub mount: String,
    /// Its access.
    pub access: Access,
    handle: Arc<OwnedFd>,
}

impl PartialEq for GrantedDir {
    fn eq(&self, other: &Self) -> bool {
        (&self.real, &self.mount, self.access) == (&other.real, &other.mount, other.access)
    }
}

impl Eq for GrantedDir {}

impl GrantedDir {
    /// Opens `path` (links followed: a grant may contain them) and records where it really
    /// is: the kernel's name for the held descriptor, so that no second lookup can differ
    /// from the first.
    pub(crate) fn open(path: &Path, mount: &str, access: Access) -> std::io::Result<Self> {
        use nix::fcntl::{OFlag, open};
        let fd = open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        let real = if cairn_repo::target_dir::have_proc() {
            PathBuf::from(nix::fcntl::readlink(&cairn_repo::target_dir::proc_path(
                fd.as_fd(),
            ))?)
        } else {
            path.canonicalize()?
        };
        Ok(GrantedDir {
            real,
            mount: mount.to_owned(),
            access,
            handle: Arc::new(fd),
        })
    }

    /// The path to give wasmtime's preopen: `/proc/self/fd/N` of the held directory (the same
    /// inode whatever happened to its path since), or its real path without `/proc`.
    pub fn host_path(&self) -> PathBuf {
        if cairn_repo::target_dir::have_proc() {
            cairn_repo::target_dir::proc_path(self.handle.as_fd())
        } else {
            self.real.clone()
        }
    }
}

/// Resource limits of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// All linear memories of an instance together, in bytes.
    pub memory: u64,
    /// CPU time of one call.
    pub cpu: Duration,
    /// Wall-clock time of one call.
    pub wall: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: DEFAULT_MEMORY_MIB << 20,
            cpu: Duration::from_millis(DEFAULT_CPU_MS),
            wall: Duration::from_millis(DEFAULT_WALL_MS),
        }
    }
}

/// Parses `host:port` (the port is required) into its lowercase form.
///
/// # Errors
/// When it is not `host:port`.
pub fn parse_authority(value: &str) -> Result<String> {
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| Error::invalid(format!("`{value}` is not host:port")))?;
    if host.is_empty() || host.contains(['/', '@', ' ']) || port.parse::<u16>().is_err() {
        return Err(Error::invalid(format!("`{value}` is not host:port")));
    }
    Ok(format!("{}:{port}", host.to_ascii_lowercase()))
}

/// The `host:port` of an http(s) URL, with the scheme's default port when none is written.
///
/// # Errors
/// When it is not an http(s) URL.
pub fn url_authority(url: &str) -> Result<String> {
    let (default_port, rest) = if let Some(r) = url.strip_prefix("https://") {
        (443, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (80, r)
    } else {
        return Err(Error::invalid(format!(
            "`{url}` is not an http:// or https:// URL"
        )));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let has_port = match authority.strip_prefix('[') {
        Some(v6) => v6
            .split_once(']')
            .is_some_and(|(_, rest)| rest.starts_with(':')),
        None => authority.contains(':'),
    };
    if has_port {
        parse_authority(authority)
    } else {
        parse_authority(&format!("{authority}:{default_port}"))
    }
}

fn covers(grant: &str, authority: &str) -> bool {
    if let Some(suffix) = grant.strip_prefix("*.") {
        let Some((host, port)) = authority.rsplit_once(':') else {
            return false;
        };
        let Some((gsuffix, gport)) = suffix.rsplit_once(':') else {
            return false;
        };
        port == gport && host.ends_with(&format!(".{gsuffix}"))
    } else {
        grant.eq_ignore_ascii_case(authority)
    }
}

/// `path` with `.` and `..` resolved lexically (no file system access).
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn denied(plugin: &str, what: String) -> Error {
    Error::new(
        ErrorKind::Denied,
        format!("plugin `{plugin}` requests {what}"),
    )
}

impl Grants {
    /// What a built-in discovery plugin is granted when the configuration file does not name
    /// it (`cairn discover` on a node with no configuration): read-only access to each of its
    /// manifest's layout directories — requested optional and read-only, at a fixed path
    /// under `${host-root}` that is not the node's root itself. Nothing else: no HTTP, no
    /// writable directory, no path a setting names, not the whole node.
    pub fn layout_defaults(manifest: &Manifest, host_root: &str) -> Grants {
        let root = host_root.trim_end_matches('/');
        let dirs = manifest
            .capabilities
            .dirs
            .iter()
            .filter(|d| d.optional && d.access == Access::ReadOnly)
            .filter_map(|d| {
                let rest = d.path.strip_prefix("${host-root}")?;
                let clean = rest.split('/').all(|c| c != "." && c != "..");
                let fixed = rest.starts_with('/') && !rest.contains("${") && clean;
                (fixed && normalize(Path::new(rest)) != Path::new("/")).then(|| DirGrant {
                    path: PathBuf::from(format!("{root}{rest}")),
                    access: Access::ReadOnly,
                })
            })
            .collect();
        Grants {
            dirs,
            ..Grants::default()
        }
    }

    /// Resolves what `manifest` requests under `config` and checks every request against
    /// these grants. `host_root` replaces `${host-root}` in directory paths (empty: the node's
    /// own root). A read-write directory that does not exist yet is created, once it is known
    /// to be inside a grant. An optional directory that is missing, not granted or names an
    /// unset setting is left out.
    ///
    /// # Errors
    /// [`ErrorKind::Denied`] naming the plugin and the capability when a request is not
    /// granted; [`ErrorKind::InvalidInput`] when a setting it refers to is missing or bad.
    pub fn resolve(
        &self,
        manifest: &Manifest,
        config: &[(String, String)],
        host_root: &str,
    ) -> Result<Capabilities> {
        // Grants name the node's paths: under a host root they also cover the same path
        // there (`/var/lib/kubelet` with `--host-root /host` covers /host/var/lib/kubelet).
        let expanded;
        let this = match host_root.trim_end_matches('/') {
            "" => self,
            root => {
                let mut g = self.clone();
                for d in &self.dirs {
                    if let Ok(rel) = d.path.strip_prefix("/") {
                        g.dirs.push(DirGrant {
                            path: Path::new(root).join(rel),
                            access: d.access,
                        });
                    }
                }
                expanded = g;
                &expanded
            }
        };
        this.resolve_expanded(manifest, config, host_root)
    }

    fn resolve_expanded(
        &self,
        manifest: &Manifest,
        config: &[(String, String)],
        host_root: &str,
    ) -> Result<Capabilities> {
        let plugin = manifest.name.as_str();
        // A setting's value (the last pair wins); `${host-root}` in directory paths.
        let lookup = |key: &str| -> Option<&str> {
            if key == HOST_ROOT {
                return Some(host_root.trim_end_matches('/'));
            }
            config
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let setting = |key: &str| -> Result<&str> {
            lookup(key).ok_or_else(|| {
                Error::invalid(format!(
                    "plugin `{plugin}` needs the setting `{key}`: set it in the configuration \
                         file or with -o {key}=VALUE"
                ))
            })
        };
        let hint = "add it to the plugin's `grant` table in the configuration file";

        let mut http = Vec::new();
        for request in &manifest.capabilities.http {
            let authority = match config_ref(request) {
                Some(key) => url_authority(setting(key)?)
                    .map_err(|e| e.context(format!("plugin `{plugin}` setting `{key}`")))?,
                None => parse_authority(request)?,
            };
            if !self.http.iter().any(|g| covers(g, &authority)) {
                return Err(denied(
                    plugin,
                    format!(
                        "HTTP access to {authority}, which is not granted; {hint} (http = [\"{authority}\"])"
                    ),
                ));
            }
            if !http.contains(&authority) {
                http.push(authority);
            }
        }

        let mut dirs = Vec::new();
        let mut left_out = Vec::new();
        for request in &manifest.capabilities.dirs {
            // `config:KEY` is the path `${KEY}`.
            let path = match config_ref(&request.path) {
                Some(key) => format!("${{{key}}}"),
                None => request.path.clone(),
            };
            let raw = match interpolate(&path, lookup)? {
                Ok(raw) => raw,
                Err(_) if request.optional => {
                    tracing::debug!(plugin, mount = %request.mount, "optional directory left out: a setting it names is unset");
                    continue;
                }
                Err(missing) => {
                    return Err(Error::invalid(format!(
                        "plugin `{plugin}` needs the setting `{missing}` for directory {}: set \
                         it in the configuration file or with -o {missing}=VALUE",
                        request.mount
                    )));
                }
            };
            match self.dir(plugin, request, &raw, hint)? {
                Ok(dir) => dirs.push(dir),
                Err(why) => {
                    tracing::debug!(plugin, mount = %request.mount, path = raw, "optional directory left out: {}", match why {
                        Why::Missing => "missing",
                        Why::NotGranted => "not granted",
                    });
                    left_out.push(LeftOut {
                        path: normalize(Path::new(&raw)),
                        why,
                    });
                }
            }
        }

        let limit = |what: &str, requested: Option<u64>, granted: Option<u64>, default: u64| {
            let cap = granted.unwrap_or(default);
            match requested {
                Some(r) if r > cap => Err(denied(
                    plugin,
                    format!("{what} = {r}, more than the {cap} granted; {hint} ({what} = {r})"),
                )),
                Some(r) => Ok(r),
                None => Ok(cap),
            }
        };
        let wanted = &manifest.limits;
        let limits = Limits {
            memory: limit(
                "memory-mib",
                wanted.memory_mib,
                self.memory_mib,
                DEFAULT_MEMORY_MIB,
            )? << 20,
            cpu: Duration::from_millis(limit(
                "cpu-ms",
                wanted.cpu_ms,
                self.cpu_ms,
                DEFAULT_CPU_MS,
            )?),
            wall: Duration::from_millis(limit(
                "wall-ms",
                wanted.wall_ms,
                self.wall_ms,
                DEFAULT_WALL_MS,
            )?),
        };
        Ok(Capabilities {
            http,
            dirs,
            limits,
            left_out,
        })
    }

    /// Checks one directory request for `raw` (its host path): the real directory to give,
    /// held open, or why an optional one is left out.
    fn dir(
        &self,
        plugin: &str,
        request: &DirRequest,
        raw: &str,
        hint: &str,
    ) -> Result<std::result::Result<GrantedDir, Why>> {
        let path = Path::new(raw);
        if !path.is_absolute() {
            return Err(Error::invalid(format!(
                "plugin `{plugin}`: directory `{raw}` must be an absolute path"
            )));
        }
        let wanted = normalize(path);
        let granted = |p: &Path| {
            self.dirs.iter().any(|g| {
                let root = normalize(&g.path);
                p.starts_with(&root) && g.access >= request.access
            })
        };
        if !granted(&wanted) {
            if request.optional {
                return Ok(Err(if wanted.is_dir() {
                    Why::NotGranted
                } else {
                    Why::Missing
                }));
            }
            return Err(denied(
                plugin,
                format!(
                    "{} access to {}, which is not granted; {hint} (dirs = [{{ path = \"{}\", access = \"{}\" }}])",
                    request.access,
                    wanted.display(),
                    wanted.display(),
                    request.access
                ),
            ));
        }
        if request.optional && !wanted.is_dir() {
            return Ok(Err(Why::Missing));
        }
        if request.access == Access::ReadWrite && std::fs::symlink_metadata(&wanted).is_err() {
            self.create_beneath(plugin, &wanted)?;
        }
        // Symbolic links must not lead out of the grant; what is checked is what is held.
        let dir = GrantedDir::open(&wanted, &request.mount, request.access).map_err(|e| {
            Error::io(
                format!(
                    "cannot open directory {} for plugin `{plugin}`",
                    wanted.display()
                ),
                e,
            )
        })?;
        // Compared with the grants' real paths, so that neither side's links mislead.
        if !self.covers_real(&dir.real, request.access) {
            return Err(denied(
                plugin,
                format!(
                    "{} which resolves to {}, outside its grants",
                    wanted.display(),
                    dir.real.display()
                ),
            ));
        }
        Ok(Ok(dir))
    }

    /// Creates the missing directories of `wanted` only where a grant covers them for
    /// writing: the deepest existing directory is resolved first and must be inside a grant,
    /// and the rest is made below it without following a link (none can lead the creation out).
    fn create_beneath(&self, plugin: &str, wanted: &Path) -> Result<()> {
        let cannot = |e: std::io::Error| {
            Error::io(
                format!("cannot create {} for plugin `{plugin}`", wanted.display()),
                e,
            )
        };
        let mut base = wanted;
        while std::fs::symlink_metadata(base).is_err() {
            base = base.parent().unwrap_or(Path::new("/"));
        }
        let rest = wanted.strip_prefix(base).unwrap_or(Path::new(""));
        let real = base.canonicalize().map_err(cannot)?;
        if !self.covers_real(&real, Access::ReadWrite) {
            return Err(denied(
                plugin,
                format!(
                    "{} would be created below {}, which resolves to {}, outside its grants",
                    wanted.display(),
                    base.display(),
                    real.display()
                ),
            ));
        }
        cairn_repo::target_dir::TargetDir::open_existing(&real)
            .and_then(|dir| dir.make_dirs(rest, false))
            .map(drop)
            .map_err(cannot)
    }

    /// Whether `real` (a canonical path) lies inside a grant of at least `access`, comparing
    /// with the grants' canonical paths.
    pub fn covers_real(&self, real: &Path, access: Access) -> bool {
        self.dirs.iter().any(|g| {
            g.path
                .canonicalize()
                .is_ok_and(|root| real.starts_with(root) && g.access >= access)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra: &str) -> Manifest {
        Manifest::parse(&format!(
            r#"
            name = "t"
            version = "1"
            world = "cairn:plugin/storage-backend@0.1.0"
            [[config]]
            key = "url"
            [[config]]
            key = "path"
            {extra}
            "#
        ))
        .unwrap()
    }

    fn cfg(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn authorities() {
        assert_eq!(
            url_authority("http://Example.com/x").unwrap(),
            "example.com:80"
        );
        assert_eq!(url_authority("https://a.b:8443").unwrap(), "a.b:8443");
        assert_eq!(
            url_authority("http://127.0.0.1:9/r?x").unwrap(),
            "127.0.0.1:9"
        );
        assert!(url_authority("ftp://x").is_err());
        assert!(covers("*.s3.example.com:443", "b.s3.example.com:443"));
        assert!(!covers("*.s3.example.com:443", "b.s3.example.com:80"));
        assert!(!covers("*.s3.example.com:443", "evil-s3.example.com:443"));
    }

    #[test]
    fn http_from_config_must_be_granted() {
        let m = manifest("[capabilities]\nhttp = [\"config:url\"]");
        let config = cfg(&[("url", "http://127.0.0.1:8000/repo")]);
        let e = Grants::default().resolve(&m, &config, "").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Denied);
        assert!(
            e.to_string()
                .contains("plugin `t` requests HTTP access to 127.0.0.1:8000"),
            "{e}"
        );
        let grants = Grants {
            http: vec!["127.0.0.1:8000".into()],
            ..Grants::default()
        };
        let caps = grants.resolve(&m, &config, "").unwrap();
        assert_eq!(caps.http, ["127.0.0.1:8000"]);
        assert_eq!(caps.limits, Limits::default());
        let e = grants.resolve(&m, &[], "").unwrap_err().to_string();
        assert!(e.contains("needs the setting `url`"), "{e}");
    }

    #[test]
    fn dirs_must_lie_inside_a_grant_with_enough_access() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("granted");
        std::fs::create_dir(&root).unwrap();
        let m = manifest(
            "[[capabilities.dirs]]\nmount = \"/repo\"\npath = \"config:path\"\naccess = \"read-write\"",
        );
        let grants = Grants {
            dirs: vec![DirGrant {
                path: root.clone(),
                access: Access::ReadWrite,
            }],
            ..Grants::default()
        };
        let inside = root.join("new/repo");
        let caps = grants
            .resolve(&m, &cfg(&[("path", inside.to_str().unwrap())]), "")
            .unwrap();
        assert!(
            inside.is_dir(),
            "a read-write directory inside a grant is created"
        );
        assert_eq!(caps.dirs[0].mount, "/repo");

        let escape = format!("{}/../elsewhere", root.display());
        let e = grants
            .resolve(&m, &cfg(&[("path", &escape)]), "")
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Denied);
        assert!(!tmp.path().join("elsewhere").exists());

        std::os::unix::fs::symlink(tmp.path(), root.join("link")).unwrap();
        let via_link = format!("{}/link", root.display());
        let e = grants
            .resolve(&m, &cfg(&[("path", &via_link)]), "")
            .unwrap_err();
        assert!(e.to_string().contains("outside its grants"), "{e}");
        // A directory to create below a link out of the grant: nothing made outside.
        let below_link = format!("{}/link/made-outside", root.display());
        let e = grants
            .resolve(&m, &cfg(&[("path", &below_link)]), "")
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
        assert!(!tmp.path().join("made-outside").exists());

        let read_only = Grants {
            dirs: vec![DirGrant {
                path: root.clone(),
                access: Access::ReadOnly,
            }],
            ..Grants::default()
        };
        let e = read_only
            .resolve(&m, &cfg(&[("path", inside.to_str().unwrap())]), "")
            .unwrap_err();
        assert!(e.to_string().contains("read-write access"), "{e}");
    }

    /// The directory an instance is given is the one that was checked: a path component
    /// swapped for a link after the check does not change it.
    #[test]
    fn a_directory_swapped_after_the_check_is_not_what_the_plugin_gets() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("granted");
        let tenant = root.join("tenant");
        std::fs::create_dir_all(&tenant).unwrap();
        std::fs::write(tenant.join("mine.txt"), "tenant").unwrap();
        let outside = tmp.path().join("host-secrets");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), "secret").unwrap();
        let m = manifest("[[capabilities.dirs]]\nmount = \"/data\"\npath = \"config:path\"");
        let grants = Grants {
            dirs: vec![DirGrant {
                path: root.clone(),
                access: Access::ReadOnly,
            }],
            ..Grants::default()
        };
        let caps = grants
            .resolve(&m, &cfg(&[("path", tenant.to_str().unwrap())]), "")
            .unwrap();
        // The tenant swaps its directory for a link to the host's secrets.
        std::fs::rename(&tenant, root.join("old")).unwrap();
        std::os::unix::fs::symlink(&outside, &tenant).unwrap();
        let given = caps.dirs[0].host_path();
        let names: Vec<String> = std::fs::read_dir(&given)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["mine.txt"], "the plugin gets the checked directory");
    }

    #[test]
    fn limits_are_capped_by_grants() {
        let m = manifest("[limits]\nmemory-mib = 512");
        let e = Grants::default().resolve(&m, &[], "").unwrap_err();
        assert!(
            e.to_string()
                .contains("memory-mib = 512, more than the 256 granted"),
            "{e}"
        );
        let grants = Grants {
            memory_mib: Some(1024),
            ..Grants::default()
        };
        assert_eq!(
            grants.resolve(&m, &[], "").unwrap().limits.memory,
            512 << 20
        );
    }

    #[test]
    fn layout_defaults_are_the_fixed_optional_read_only_directories_only() {
        let m = manifest(
            r#"
            [[capabilities.dirs]]
            mount = "/var/lib/kubelet"
            path = "${host-root}/var/lib/kubelet"
            optional = true
            [[capabilities.dirs]]
            mount = "/custom"
            path = "${host-root}${path}"
            optional = true
            [[capabilities.dirs]]
            mount = "/host"
            path = "${host-root}/"
            optional = true
            [[capabilities.dirs]]
            mount = "/host2"
            path = "${host-root}/./"
            optional = true
            [[capabilities.dirs]]
            mount = "/state"
            path = "${host-root}/var/lib/state"
            access = "read-write"
            optional = true
            [[capabilities.dirs]]
            mount = "/etc"
            path = "${host-root}/etc"
            [[capabilities.dirs]]
            mount = "/abs"
            path = "/var/log/pods"
            optional = true
            [[capabilities.dirs]]
            mount = "/up"
            path = "${host-root}/var/../etc"
            optional = true
            "#,
        );
        let g = Grants::layout_defaults(&m, "/host/");
        let paths: Vec<_> = g.dirs.iter().map(|d| d.path.clone()).collect();
        assert_eq!(paths, [PathBuf::from("/host/var/lib/kubelet")]);
        assert!(g.dirs.iter().all(|d| d.access == Access::ReadOnly));
        assert!(g.http.is_empty() && g.memory_mib.is_none());
    }

    #[test]
    fn optional_dirs_are_left_out_and_host_root_prefixes_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let node = tmp.path().join("node");
        std::fs::create_dir_all(node.join("var/lib/kubelet")).unwrap();
        std::fs::create_dir_all(node.join("var/log/pods")).unwrap();
        let m = Manifest::parse(
            r#"
            name = "k"
            version = "1"
            world = "cairn:plugin/volume-discovery@0.1.0"
            [[config]]
            key = "root"
            [[capabilities.dirs]]
            mount = "/var/lib/kubelet"
            path = "${host-root}/var/lib/kubelet"
            optional = true
            [[capabilities.dirs]]
            mount = "/var/snap/microk8s"
            path = "${host-root}/var/snap/microk8s"
            optional = true
            [[capabilities.dirs]]
            mount = "/kubelet-root"
            path = "${host-root}${root}"
            optional = true
            [[capabilities.dirs]]
            mount = "/var/log/pods"
            path = "${host-root}/var/log/pods"
            optional = true
            "#,
        )
        .unwrap();
        let host_root = node.to_str().unwrap();
        // Nothing granted: every optional directory is left out, nothing is refused.
        let caps = Grants::default().resolve(&m, &[], host_root).unwrap();
        assert!(caps.dirs.is_empty());
        let grants = Grants {
            dirs: vec![DirGrant {
                path: node.join("var/lib"),
                access: Access::ReadOnly,
            }],
            ..Grants::default()
        };
        let caps = grants.resolve(&m, &[], &format!("{host_root}/")).unwrap();
        let mounts: Vec<&str> = caps.dirs.iter().map(|d| d.mount.as_str()).collect();
        assert_eq!(
            mounts,
            ["/var/lib/kubelet"],
            "missing, unset and ungranted are left out"
        );
        assert_eq!(
            caps.dirs[0].real,
            node.join("var/lib/kubelet").canonicalize().unwrap()
        );

        // The same request, not optional, is refused when not granted.
        let mut strict = m.clone();
        for d in &mut strict.capabilities.dirs {
            d.optional = false;
        }
        let e = grants.resolve(&strict, &[], host_root).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Denied);
        assert!(e.to_string().contains("var/snap/microk8s"), "{e}");
    }
}
