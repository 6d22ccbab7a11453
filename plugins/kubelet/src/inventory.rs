//! The inventory: pods and PVCs as the API returns them (`kubectl get pods,pvc -A -o json`,
//! or a plain PodList).

use std::collections::{BTreeMap, BTreeSet};

use cairn_sdk::{Error, Result};
use serde_json::Value;

use crate::names::without_hash;

/// A pod volume as the pod's spec declares it.
#[derive(Debug, Clone)]
pub struct PodVolume {
    /// The pod's name for it.
    pub name: String,
    /// The claim it mounts, for a PVC volume.
    pub claim: Option<String>,
    /// The node path, for a hostPath volume.
    pub host_path: Option<String>,
}

/// What the inventory says about a pod.
#[derive(Debug, Clone)]
pub struct Pod {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The stable name of what owns it (Deployment, StatefulSet pod, DaemonSet, Job), or
    /// the pod's name for a bare pod.
    pub owner: String,
    /// Its volumes.
    pub volumes: Vec<PodVolume>,
    /// Pod volume names opted in (when the annotation is present).
    pub only: Option<BTreeSet<String>>,
    /// Pod volume names opted out.
    pub excluded: BTreeSet<String>,
}

/// Pods by UID, and PVCs by the PV they are bound to.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Pods by UID.
    pub pods: BTreeMap<String, Pod>,
    /// `(namespace, claim)` by PV name.
    pub claims: BTreeMap<String, (String, String)>,
}

const OPT_IN: [&str; 2] = ["backup.velero.io/backup-volumes", "cairn.io/backup-volumes"];
const OPT_OUT: [&str; 2] = [
    "backup.velero.io/backup-volumes-excludes",
    "cairn.io/backup-volumes-excludes",
];

fn text(v: &Value, path: &[&str]) -> Option<String> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    v.as_str().map(str::to_owned)
}

fn names(annotations: &Value, keys: &[&str]) -> Option<BTreeSet<String>> {
    let mut found: Option<BTreeSet<String>> = None;
    for key in keys {
        if let Some(list) = annotations.get(key).and_then(Value::as_str) {
            found.get_or_insert_default().extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    found
}

impl Inventory {
    /// Parses `json`.
    ///
    /// # Errors
    /// `invalid-config` saying what is wrong with it.
    pub fn parse(json: &str) -> Result<Inventory> {
        let bad = |why: String| Error::InvalidConfig(format!("inventory: {why}"));
        let doc: Value = serde_json::from_str(json).map_err(|e| bad(format!("not JSON: {e}")))?;
        // A Nomad cluster's inventory (`{"Allocations": [...]}`, as a node agent gives every
        // discovery plugin) says nothing about pods: as if there were none.
        if doc.get("Allocations").is_some() && doc.get("items").is_none() {
            return Ok(Inventory::default());
        }
        let items = doc.get("items").and_then(Value::as_array).ok_or_else(|| {
            bad("no `items` list (expected `kubectl get pods,pvc -A -o json`)".into())
        })?;
        let mut inventory = Inventory::default();
        for item in items {
            match item.get("kind").and_then(Value::as_str).unwrap_or("Pod") {
                "Pod" => {
                    let uid = text(item, &["metadata", "uid"])
                        .ok_or_else(|| bad("a pod without metadata.uid".into()))?;
                    inventory.pods.insert(uid, Self::pod(item)?);
                }
                "PersistentVolumeClaim" => {
                    if let (Some(ns), Some(name), Some(pv)) = (
                        text(item, &["metadata", "namespace"]),
                        text(item, &["metadata", "name"]),
                        text(item, &["spec", "volumeName"]),
                    ) {
                        inventory.claims.insert(pv, (ns, name));
                    }
                }
                _ => {}
            }
        }
        Ok(inventory)
    }

    fn pod(item: &Value) -> Result<Pod> {
        let bad = |why: &str| Error::InvalidConfig(format!("inventory: a pod {why}"));
        let name = text(item, &["metadata", "name"]).ok_or_else(|| bad("without a name"))?;
        let namespace =
            text(item, &["metadata", "namespace"]).unwrap_or_else(|| "default".to_owned());
        let owners = item
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let owner = owners
            .iter()
            .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
            .or_else(|| owners.first());
        let owner = match owner {
            Some(o) => {
                let kind = text(o, &["kind"]).unwrap_or_default();
                let oname = text(o, &["name"]).unwrap_or_else(|| name.clone());
                match kind.as_str() {
                    "ReplicaSet" => without_hash(&oname).to_owned(),
                    "StatefulSet" => name.clone(),
                    _ => oname,
                }
            }
            None => name.clone(),
        };
        let volumes = item
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .map(|vs| {
                vs.iter()
                    .filter_map(|v| {
                        Some(PodVolume {
                            name: text(v, &["name"])?,
                            claim: text(v, &["persistentVolumeClaim", "claimName"]),
                            host_path: text(v, &["hostPath", "path"]),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let annotations = item
            .pointer("/metadata/annotations")
            .cloned()
            .unwrap_or(Value::Null);
        Ok(Pod {
            namespace,
            name,
            owner,
            volumes,
            only: names(&annotations, &OPT_IN),
            excluded: names(&annotations, &OPT_OUT).unwrap_or_default(),
        })
    }
}

impl Pod {
    /// Whether the annotations let pod volume `name` be backed up.
    pub fn selected(&self, name: &str) -> bool {
        !self.excluded.contains(name) && self.only.as_ref().is_none_or(|o| o.contains(name))
    }
}
