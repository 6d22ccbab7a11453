//! Running a volume-discovery plugin (`cairn discover`): one call in a fresh sandbox that
//! sees only the granted read-only directories; its answer is checked and mapped back to the
//! node's paths. A path outside the directories the plugin was given is refused, and so is
//! the whole answer: a plugin that points outside its view is not trusted for the rest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use cairn_repo::{Error, ErrorKind, Result};

use crate::bindings::discovery::exports::cairn::plugin::discovery as wit;
use crate::bindings::discovery::{VolumeDiscovery, VolumeDiscoveryPre};
use crate::grants::{Capabilities, normalize};
use crate::runtime::{Plugin, Runtime, one_shot};
use crate::world::World;

/// What kind of volume a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeKind {
    /// A CSI volume.
    Csi,
    /// A pod's emptyDir.
    EmptyDir,
    /// An NFS mount.
    Nfs,
    /// A local persistent volume.
    LocalVolume,
    /// A hostPath.
    HostPath,
    /// A Nomad host volume.
    HostVolume,
    /// A Nomad allocation's shared data directory.
    AllocData,
    /// A raw block device (reported, not backed up as files).
    Block,
    /// Another volume type.
    Other,
    /// Not a volume: a bucket's objects below a prefix (an app's `buckets`); the target's
    /// path is the bucket's location.
    Bucket,
}

impl VolumeKind {
    /// The kind's name (`empty-dir`).
    pub fn name(self) -> &'static str {
        match self {
            VolumeKind::Csi => "csi",
            VolumeKind::EmptyDir => "empty-dir",
            VolumeKind::Nfs => "nfs",
            VolumeKind::LocalVolume => "local-volume",
            VolumeKind::HostPath => "host-path",
            VolumeKind::HostVolume => "host-volume",
            VolumeKind::AllocData => "alloc-data",
            VolumeKind::Block => "block",
            VolumeKind::Other => "other",
            VolumeKind::Bucket => "bucket",
        }
    }

    /// Whether its data is a directory tree cairn backs up (everything but block devices).
    pub fn has_files(self) -> bool {
        self != VolumeKind::Block
    }
}

impl From<wit::VolumeKind> for VolumeKind {
    fn from(k: wit::VolumeKind) -> Self {
        match k {
            wit::VolumeKind::Csi => VolumeKind::Csi,
            wit::VolumeKind::EmptyDir => VolumeKind::EmptyDir,
            wit::VolumeKind::Nfs => VolumeKind::Nfs,
            wit::VolumeKind::LocalVolume => VolumeKind::LocalVolume,
            wit::VolumeKind::HostPath => VolumeKind::HostPath,
            wit::VolumeKind::HostVolume => VolumeKind::HostVolume,
            wit::VolumeKind::AllocData => VolumeKind::AllocData,
            wit::VolumeKind::Block => VolumeKind::Block,
            wit::VolumeKind::Other => VolumeKind::Other,
        }
    }
}

/// A volume found on this node, its path on the node (not in the plugin's view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// A stable identity (`k8s/<namespace>/<pvc>`), the key of its snapshot chain.
    pub identity: String,
    /// The app it belongs to.
    pub app: String,
    /// What kind of volume it is.
    pub kind: VolumeKind,
    /// Its data on the node.
    pub path: PathBuf,
    /// The discovery plugin instance that found it.
    pub plugin: String,
    /// Namespace, pod, PVC, … as the plugin reports them.
    pub labels: BTreeMap<String, String>,
}

/// Checks that `identity` is a clean `/`-separated name: no empty, `.` or `..` part, no
/// whitespace or control characters, at most 256 bytes.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] saying what is wrong.
pub fn check_identity(identity: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::invalid(format!("identity `{identity}` {why}")));
    if identity.is_empty() || identity.len() > 256 {
        return bad("must be 1 to 256 bytes");
    }
    if identity
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return bad("must not contain spaces or control characters");
    }
    if identity
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return bad("must be `/`-separated names without empty, `.` or `..` parts");
    }
    Ok(())
}

/// A plugin's "none of my layouts is here", with what cairn did not give it that exists:
/// those directories are there but not granted, and the TOML that grants them (in the
/// node's paths, without the host root).
fn not_granted(e: Error, name: &str, caps: &Capabilities) -> Error {
    let there: Vec<&crate::grants::LeftOut> = caps
        .left_out
        .iter()
        .filter(|l| l.why == crate::grants::Why::NotGranted)
        .collect();
    if e.kind() != ErrorKind::NotFound || there.is_empty() {
        return e;
    }
    let paths: Vec<String> = there.iter().map(|l| l.path.display().to_string()).collect();
    Error::new(
        ErrorKind::NotFound,
        format!(
            "{e}; these exist but are not granted: {} (grant them read-only in \
             [plugins.{name}.grant], e.g. dirs = [{{ path = \"{}\" }}]; under --host-root \
             a grant may name the node's path)",
            paths.join(", "),
            paths[0]
        ),
    )
}

/// Runs discovery plugin `plugin` (instance `name`) once with `config` and the optional
/// `inventory`, holding `caps`, and returns its targets on the node, sorted by identity.
/// Two targets with one identity (a volume two pods share) are reported once.
///
/// # Errors
/// When the plugin is not a discovery plugin, fails, or answers a bad identity or a path
/// outside its directories ([`ErrorKind::Denied`]).
pub fn discover(
    runtime: &Runtime,
    plugin: &Plugin,
    name: &str,
    config: &[(String, String)],
    caps: &Capabilities,
    inventory: Option<&str>,
) -> Result<Vec<Target>> {
    plugin.expect(World::VolumeDiscovery, name)?;
    let pre = VolumeDiscoveryPre::new(plugin.pre.clone())
        .map_err(|e| Error::invalid(format!("plugin `{name}` is not a discovery plugin: {e:#}")))?;
    let request = wit::Request {
        config: config.to_vec(),
        inventory: inventory.map(str::to_owned),
    };
    let answer = one_shot(
        runtime,
        name,
        caps,
        "discovery",
        |_| {},
        async move |store| {
            let bindings: VolumeDiscovery = pre.instantiate_async(&mut *store).await?;
            bindings
                .cairn_plugin_discovery()
                .call_discover(&mut *store, &request)
                .await
        },
    )?;
    let found = answer
        .map_err(|e| crate::storage::plugin_error(name, "discovering volumes", e))
        .map_err(|e| not_granted(e, name, caps))?;
    let mut targets = BTreeMap::new();
    for t in found {
        check_identity(&t.identity)
            .map_err(|e| e.context(format!("plugin `{name}` answered a bad target")))?;
        if t.app.is_empty() {
            return Err(Error::invalid(format!(
                "plugin `{name}` answered target `{}` without an app",
                t.identity
            )));
        }
        let kind = VolumeKind::from(t.kind);
        let Some(path) = to_host(name, caps, &t.path, kind)? else {
            tracing::warn!(
                plugin = name,
                path = t.path,
                "target {} vanished while it was being discovered",
                t.identity
            );
            continue;
        };
        let target = Target {
            identity: t.identity,
            app: t.app,
            kind,
            path,
            plugin: name.to_owned(),
            labels: t.labels.into_iter().collect(),
        };
        match targets.get(&target.identity) {
            Some(Target { path, .. }) if *path <= target.path => {}
            _ => {
                targets.insert(target.identity.clone(), target);
            }
        }
    }
    Ok(targets.into_values().collect())
}

/// The node path of `guest` (a path in the plugin's view): through the mount that holds it,
/// resolved, and still inside that mount's directory. `None` when it does not exist.
fn to_host(
    plugin: &str,
    caps: &Capabilities,
    guest: &str,
    kind: VolumeKind,
) -> Result<Option<PathBuf>> {
    let refused = |why: String| {
        Error::new(
            ErrorKind::Denied,
            format!("plugin `{plugin}` answered the path {guest}, {why}; its answer is refused"),
        )
    };
    let wanted = Path::new(guest);
    if !wanted.is_absolute() {
        return Err(refused("which is not absolute".into()));
    }
    let wanted = normalize(wanted);
    let mount = caps
        .dirs
        .iter()
        .filter(|d| wanted.starts_with(&d.mount))
        .max_by_key(|d| d.mount.len());
    let Some(crate::grants::GrantedDir { real, mount, .. }) = mount else {
        return Err(refused("outside every directory it was given".into()));
    };
    let rest = wanted.strip_prefix(mount).unwrap_or(Path::new(""));
    let host = real.join(rest);
    // A block device entry is itself a link; its directory must stay inside.
    let (checked, leaf) = match (kind.has_files(), host.parent(), host.file_name()) {
        (false, Some(parent), Some(leaf)) => (parent.to_path_buf(), Some(leaf.to_owned())),
        _ => (host.clone(), None),
    };
    let resolved = match checked.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("cannot resolve {}", host.display()), e)),
    };
    if !resolved.starts_with(real) {
        return Err(refused(format!(
            "which resolves to {} outside {}",
            resolved.display(),
            real.display()
        )));
    }
    Ok(Some(match leaf {
        Some(leaf) => resolved.join(leaf),
        None => resolved,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::Limits;
    use crate::manifest::Access;

    #[test]
    fn identities() {
        for good in ["k8s/shop/data", "nomad/default/pg", "k8s/_pod/1-2/v"] {
            check_identity(good).unwrap();
        }
        for bad in ["", "/k8s/a", "k8s//a", "k8s/../a", "k8s/a b", "a/"] {
            assert!(check_identity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_map_back_through_mounts_and_never_leave_them() {
        let tmp = tempfile::tempdir().unwrap();
        let kubelet = tmp.path().join("var/lib/kubelet");
        std::fs::create_dir_all(kubelet.join("pods/u/volumes")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), kubelet.join("pods/u/volumes/out")).unwrap();
        let real = kubelet.canonicalize().unwrap();
        let caps = Capabilities {
            http: vec![],
            dirs: vec![
                crate::grants::GrantedDir::open(&real, "/var/lib/kubelet", Access::ReadOnly)
                    .unwrap(),
            ],
            limits: Limits::default(),
            left_out: vec![],
        };
        let map = |p: &str| to_host("k", &caps, p, VolumeKind::Csi);
        assert_eq!(
            map("/var/lib/kubelet/pods/u/volumes").unwrap(),
            Some(real.join("pods/u/volumes"))
        );
        assert_eq!(map("/var/lib/kubelet/pods/gone").unwrap(), None);
        for outside in [
            "/etc",
            "/var/lib/kubelet/../../etc",
            "/var/lib/kubeletx",
            "/var/lib/kubelet/pods/u/volumes/out",
            "relative",
        ] {
            let e = map(outside).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Denied, "{outside}: {e}");
        }
        // A block entry may be a link (to a device); only its directory must stay inside.
        assert_eq!(
            to_host(
                "k",
                &caps,
                "/var/lib/kubelet/pods/u/volumes/out",
                VolumeKind::Block
            )
            .unwrap(),
            Some(real.join("pods/u/volumes/out"))
        );
    }
}
