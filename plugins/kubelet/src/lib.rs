//! Kubernetes volume discovery: scans `<root>/pods/<uid>/` under the kubelet root this
//! plugin was given (read-only), and answers each application volume with an identity that
//! survives the pod being recreated. docs/DISCOVERY.md is the contract: the layouts, what is
//! skipped, the identity rules and the labels.

mod inventory;
mod names;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use cairn_sdk::discovery::{Discovery, Target, VolumeKind, entries};
use cairn_sdk::{Config, Error, Result, log};
use serde_json::Value;

use inventory::{Inventory, Pod};

/// Where the known layouts are mounted (each at its usual path), in the order they are tried.
const LAYOUTS: [&str; 6] = [
    "/var/lib/kubelet",
    "/var/lib/origin/openshift.local.volumes",
    "/opt/rke/var/lib/kubelet",
    "/var/vcap/data/kubelet",
    "/var/snap/microk8s/common/var/lib/kubelet",
    "/var/lib/k0s/kubelet",
];
/// Where the `root` setting's directory is mounted.
const CONFIGURED: &str = "/kubelet-root";
const POD_LOGS: &str = "/var/log/pods";
/// The node's root, for hostPath volumes (only when granted).
const HOST: &str = "/host";

/// API-sourced volumes, never backed up.
const SKIPPED: [&str; 4] = [
    "kubernetes.io~configmap",
    "kubernetes.io~secret",
    "kubernetes.io~projected",
    "kubernetes.io~downward-api",
];

struct Kubelet;

/// Namespace and pod name by UID, from `/var/log/pods/<namespace>_<pod>_<uid>/`.
fn pod_logs() -> BTreeMap<String, (String, String)> {
    entries(POD_LOGS)
        .into_iter()
        .filter_map(|d| {
            let mut parts = d.splitn(3, '_');
            let (ns, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
            Some((uid.to_owned(), (ns.to_owned(), pod.to_owned())))
        })
        .collect()
}

/// `vol_data.json` of a CSI volume: what the kubelet wrote at mount time.
fn vol_data(dir: &str) -> BTreeMap<String, String> {
    fs::read(format!("{dir}/vol_data.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.as_object().cloned())
        .map(|o| {
            o.into_iter()
                .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Who a pod is: from the inventory, else from its log directory, else unknown.
enum Known<'a> {
    Inventory(&'a Pod),
    Logs { namespace: String, pod: String },
    Unknown,
}

/// One volume directory (or block device) found under a pod.
struct Found {
    plugin: String,
    name: String,
    path: String,
    kind: VolumeKind,
    /// For CSI: the metadata; `volumeLifecycleMode` says persistent or ephemeral.
    csi: BTreeMap<String, String>,
}

impl Found {
    fn kind_of(plugin: &str) -> VolumeKind {
        match plugin {
            "kubernetes.io~csi" => VolumeKind::Csi,
            "kubernetes.io~empty-dir" => VolumeKind::EmptyDir,
            "kubernetes.io~nfs" => VolumeKind::Nfs,
            "kubernetes.io~local-volume" => VolumeKind::LocalVolume,
            _ => VolumeKind::Other,
        }
    }

    /// Whether, without an inventory, the directory name is taken for a PV's name.
    fn persistent_by_itself(&self) -> bool {
        match self.kind {
            VolumeKind::Csi => {
                self.csi.get("volumeLifecycleMode").map(String::as_str) != Some("Ephemeral")
            }
            VolumeKind::LocalVolume | VolumeKind::Nfs | VolumeKind::Block => true,
            _ => false,
        }
    }
}

/// The volumes of one pod directory.
fn pod_volumes(pod_dir: &str) -> Vec<Found> {
    let mut found = Vec::new();
    let volumes = format!("{pod_dir}/volumes");
    for plugin in entries(&volumes) {
        if SKIPPED.contains(&plugin.as_str()) {
            continue;
        }
        let kind = Found::kind_of(&plugin);
        for name in entries(&format!("{volumes}/{plugin}")) {
            let dir = format!("{volumes}/{plugin}/{name}");
            let (path, csi) = if kind == VolumeKind::Csi {
                (format!("{dir}/mount"), vol_data(&dir))
            } else {
                (dir, BTreeMap::new())
            };
            found.push(Found {
                plugin: plugin.clone(),
                name,
                path,
                kind,
                csi,
            });
        }
    }
    let devices = format!("{pod_dir}/volumeDevices");
    for plugin in entries(&devices) {
        for name in entries(&format!("{devices}/{plugin}")) {
            found.push(Found {
                path: format!("{devices}/{plugin}/{name}"),
                plugin: plugin.clone(),
                name,
                kind: VolumeKind::Block,
                csi: BTreeMap::new(),
            });
        }
    }
    found
}

/// The target for volume `v` of the pod `uid`, or none when its annotations leave it out.
fn target(uid: &str, known: &Known, inventory: &Inventory, v: Found) -> Option<Target> {
    let mut labels = BTreeMap::new();
    labels.insert("pod-uid".to_owned(), uid.to_owned());
    labels.insert("plugin".to_owned(), v.plugin.replace('~', "/"));
    if let Some(d) = v.csi.get("driverName") {
        labels.insert("driver".into(), d.clone());
    }
    if let Some(h) = v.csi.get("volumeHandle") {
        labels.insert("volume-handle".into(), h.clone());
    }
    let (identity, app, volume) = match known {
        Known::Inventory(pod) => {
            let inline = pod
                .volumes
                .iter()
                .find(|pv| pv.name == v.name && pv.claim.is_none());
            let claim = inventory.claims.get(&v.name).filter(|_| inline.is_none());
            let volume = match (inline, claim) {
                (Some(pv), _) => pv.name.clone(),
                (None, Some((_, claim))) => pod
                    .volumes
                    .iter()
                    .find(|pv| pv.claim.as_ref() == Some(claim))
                    .map_or_else(|| v.name.clone(), |pv| pv.name.clone()),
                (None, None) => v.name.clone(),
            };
            if !pod.selected(&volume) {
                log::debug(&format!(
                    "{}/{}: volume {volume} is not selected by its annotations",
                    pod.namespace, pod.name
                ));
                return None;
            }
            labels.insert("namespace".into(), pod.namespace.clone());
            labels.insert("pod".into(), pod.name.clone());
            labels.insert("owner".into(), pod.owner.clone());
            let identity = match claim {
                Some((_, claim)) => {
                    labels.insert("pv".into(), v.name.clone());
                    labels.insert("pvc".into(), claim.clone());
                    format!("k8s/{}/{claim}", pod.namespace)
                }
                None if inline.is_none() && v.persistent_by_itself() => {
                    labels.insert("pv".into(), v.name.clone());
                    format!("k8s/{}/{}", pod.namespace, v.name)
                }
                None => format!("k8s/{}/{}/{volume}", pod.namespace, pod.owner),
            };
            (identity, pod.namespace.clone(), volume)
        }
        Known::Logs { namespace, pod } => {
            labels.insert("namespace".into(), namespace.clone());
            labels.insert("pod".into(), pod.clone());
            let identity = if v.persistent_by_itself() {
                labels.insert("pv".into(), v.name.clone());
                format!("k8s/{namespace}/{}", v.name)
            } else {
                let owner = names::owner_from_pod_name(pod);
                labels.insert("owner".into(), owner.to_owned());
                format!("k8s/{namespace}/{owner}/{}", v.name)
            };
            (identity, namespace.clone(), v.name.clone())
        }
        Known::Unknown => {
            log::warn(&format!(
                "pod {uid}: its namespace and name are unknown (grant /var/log/pods or give an \
                 inventory); volume {} gets an identity that will not survive the pod",
                v.name
            ));
            (
                format!("k8s/_pod/{uid}/{}", v.name),
                format!("_pod/{uid}"),
                v.name.clone(),
            )
        }
    };
    labels.insert("volume".into(), volume);
    Some(Target {
        identity,
        app,
        path: v.path,
        kind: v.kind,
        labels: labels.into_iter().collect(),
    })
}

/// The hostPath volumes the inventory names for pod `pod` (which runs on this node).
fn host_paths(uid: &str, pod: &Pod) -> Vec<Target> {
    let mut out = Vec::new();
    for pv in &pod.volumes {
        let Some(host_path) = &pv.host_path else {
            continue;
        };
        if !pod.selected(&pv.name) {
            continue;
        }
        let path = format!("{HOST}/{}", host_path.trim_start_matches('/'));
        if !Path::new(&path).is_dir() {
            log::warn(&format!(
                "{}/{}: hostPath volume {} ({host_path}) is not visible; grant the node's root \
                 to back it up",
                pod.namespace, pod.name, pv.name
            ));
            continue;
        }
        let labels = [
            ("namespace", pod.namespace.as_str()),
            ("pod", pod.name.as_str()),
            ("pod-uid", uid),
            ("owner", pod.owner.as_str()),
            ("volume", pv.name.as_str()),
            ("plugin", "kubernetes.io/host-path"),
        ];
        out.push(Target {
            identity: format!("k8s/{}/{}/{}", pod.namespace, pod.owner, pv.name),
            app: pod.namespace.clone(),
            path,
            kind: VolumeKind::HostPath,
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        });
    }
    out
}

impl Discovery for Kubelet {
    fn discover(_config: Config, inventory: Option<String>) -> Result<Vec<Target>> {
        let inventory = match inventory {
            Some(json) => Inventory::parse(&json)?,
            None => Inventory::default(),
        };
        let roots: Vec<&str> = if Path::new(CONFIGURED).join("pods").is_dir() {
            vec![CONFIGURED]
        } else {
            LAYOUTS
                .into_iter()
                .filter(|r| Path::new(r).join("pods").is_dir())
                .collect()
        };
        if roots.is_empty() {
            return Err(Error::NotFound(format!(
                "no kubelet root with a pods/ directory is visible (looked at {}); grant the \
                 node's kubelet root read-only, or set `root` to it",
                LAYOUTS.join(", ")
            )));
        }
        let logs = pod_logs();
        let mut targets = Vec::new();
        for root in roots {
            let pods = format!("{root}/pods");
            for uid in entries(&pods) {
                let known = match (inventory.pods.get(&uid), logs.get(&uid)) {
                    (Some(pod), _) => Known::Inventory(pod),
                    (None, Some((namespace, pod))) => Known::Logs {
                        namespace: namespace.clone(),
                        pod: pod.clone(),
                    },
                    (None, None) => Known::Unknown,
                };
                for v in pod_volumes(&format!("{pods}/{uid}")) {
                    targets.extend(target(&uid, &known, &inventory, v));
                }
                if let Known::Inventory(pod) = known {
                    targets.extend(host_paths(&uid, pod));
                }
            }
        }
        targets.sort_by(|a, b| (&a.identity, &a.path).cmp(&(&b.identity, &b.path)));
        Ok(targets)
    }
}

cairn_sdk::export_discovery!(Kubelet);
