//! Nomad volume discovery: scans a client's data_dir (read-only) for CSI publish dirs,
//! dynamic host volumes and allocations' shared data, plus the static host volumes named in
//! the `host-volumes` setting. docs/DISCOVERY.md is the contract.

use std::collections::BTreeMap;
use std::path::Path;

use cairn_sdk::discovery::{Discovery, Target, VolumeKind, entries};
use cairn_sdk::{Config, Error, Result, log};
use serde_json::Value;

/// Where the `data-dir` setting's directory is mounted.
const CONFIGURED: &str = "/nomad-data";
/// Nomad's default data_dir, mounted at its own path.
const DEFAULT: &str = "/opt/nomad/data";
/// The node's root, for static host volumes (only when granted).
const HOST: &str = "/host";

struct Nomad;

/// An allocation as the inventory describes it.
struct Alloc {
    namespace: String,
    job: String,
    group: String,
}

/// What the inventory says: allocations and dynamic host volumes by ID.
#[derive(Default)]
struct Inventory {
    allocs: BTreeMap<String, Alloc>,
    /// `(namespace, name)` by host volume ID.
    host_volumes: BTreeMap<String, (String, String)>,
}

fn field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl Inventory {
    /// Parses the allocations API's JSON (an array), or `{"Allocations": [...],
    /// "HostVolumes": [...]}`.
    fn parse(json: &str) -> Result<Inventory> {
        let bad = |why: String| Error::InvalidConfig(format!("inventory: {why}"));
        let doc: Value = serde_json::from_str(json).map_err(|e| bad(format!("not JSON: {e}")))?;
        let (allocs, volumes) = match &doc {
            Value::Array(a) => (a.clone(), Vec::new()),
            Value::Object(o) => (
                o.get("Allocations")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                o.get("HostVolumes")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            ),
            _ => return Err(bad("expected the allocations list or an object".into())),
        };
        let mut inventory = Inventory::default();
        for a in &allocs {
            let id = field(a, "ID").ok_or_else(|| bad("an allocation without ID".into()))?;
            inventory.allocs.insert(
                id,
                Alloc {
                    namespace: field(a, "Namespace").unwrap_or_else(|| "default".into()),
                    job: field(a, "JobID").unwrap_or_default(),
                    group: field(a, "TaskGroup").unwrap_or_default(),
                },
            );
        }
        for v in &volumes {
            if let (Some(id), Some(name)) = (field(v, "ID"), field(v, "Name")) {
                let ns = field(v, "Namespace").unwrap_or_else(|| "default".into());
                inventory.host_volumes.insert(id, (ns, name));
            }
        }
        Ok(inventory)
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut l: Vec<(String, String)> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    l.sort();
    l
}

/// CSI publish dirs: `client/csi/{node,monolith}/<plugin>/per-alloc/<alloc>/<volume>/<usage>`.
fn csi(data: &str, inventory: &Inventory, out: &mut Vec<Target>) {
    for kind in ["node", "monolith"] {
        let base = format!("{data}/client/csi/{kind}");
        for plugin in entries(&base) {
            let per_alloc = format!("{base}/{plugin}/per-alloc");
            for alloc in entries(&per_alloc) {
                for volume in entries(&format!("{per_alloc}/{alloc}")) {
                    let dir = format!("{per_alloc}/{alloc}/{volume}");
                    let usages = entries(&dir);
                    // One target per volume: the read-write usage if there is one.
                    let Some(usage) = usages
                        .iter()
                        .find(|u| u.starts_with("rw-"))
                        .or_else(|| usages.first())
                    else {
                        continue;
                    };
                    let staged = entries(&format!("{base}/{plugin}/staging"))
                        .into_iter()
                        .find(|ns| {
                            Path::new(&format!("{base}/{plugin}/staging/{ns}/{volume}")).is_dir()
                        });
                    let known = inventory.allocs.get(&alloc);
                    let namespace = staged
                        .or_else(|| known.map(|a| a.namespace.clone()))
                        .unwrap_or_else(|| "default".into());
                    let app = known.map_or_else(|| namespace.clone(), |a| a.job.clone());
                    out.push(Target {
                        identity: format!("nomad/{namespace}/{volume}"),
                        labels: labels(&[
                            ("namespace", &namespace),
                            ("alloc", &alloc),
                            ("plugin", &plugin),
                            ("volume", &volume),
                            ("usage", usage),
                            ("job", known.map_or("", |a| a.job.as_str())),
                        ]),
                        app,
                        path: format!("{dir}/{usage}"),
                        kind: VolumeKind::Csi,
                    });
                }
            }
        }
    }
}

/// Dynamic host volumes `host_volumes/<id>` and the static ones of the `host-volumes` setting.
fn host_volumes(
    data: &str,
    config: &Config,
    inventory: &Inventory,
    out: &mut Vec<Target>,
) -> Result<()> {
    for id in entries(&format!("{data}/host_volumes")) {
        let (namespace, name) = inventory
            .host_volumes
            .get(&id)
            .cloned()
            .unwrap_or_else(|| ("default".into(), id.clone()));
        out.push(Target {
            identity: format!("nomad/{namespace}/{name}"),
            app: namespace.clone(),
            path: format!("{data}/host_volumes/{id}"),
            kind: VolumeKind::HostVolume,
            labels: labels(&[
                ("namespace", &namespace),
                ("volume", &name),
                ("volume-id", &id),
            ]),
        });
    }
    for entry in config.get("host-volumes").unwrap_or_default().split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let (name, host_path) = entry.split_once('=').ok_or_else(|| {
            Error::InvalidConfig(format!("host-volumes: `{entry}` is not name=/path"))
        })?;
        let path = format!("{HOST}/{}", host_path.trim().trim_start_matches('/'));
        if !Path::new(&path).is_dir() {
            log::debug(&format!(
                "static host volume {name} ({host_path}) is not visible: absent, or the node's \
                 root is not granted"
            ));
            continue;
        }
        out.push(Target {
            identity: format!("nomad/default/{}", name.trim()),
            app: "default".into(),
            path,
            kind: VolumeKind::HostVolume,
            labels: labels(&[("volume", name.trim()), ("host-path", host_path.trim())]),
        });
    }
    Ok(())
}

/// The shared `alloc/<id>/alloc/data` of each allocation (task dirs, with their tmpfs
/// `secrets/`, are never entered).
fn alloc_data(data: &str, inventory: &Inventory, out: &mut Vec<Target>) {
    for id in entries(&format!("{data}/alloc")) {
        let path = format!("{data}/alloc/{id}/alloc/data");
        if !Path::new(&path).is_dir() {
            continue;
        }
        let (identity, app, namespace) = match inventory.allocs.get(&id) {
            Some(a) => (
                format!("nomad/{}/{}/{}/alloc-data", a.namespace, a.job, a.group),
                a.job.clone(),
                a.namespace.clone(),
            ),
            None => {
                log::warn(&format!(
                    "allocation {id}: its job is unknown without an inventory; its data gets an \
                     identity that will not survive the allocation"
                ));
                (
                    format!("nomad/_alloc/{id}/alloc-data"),
                    "default".into(),
                    String::new(),
                )
            }
        };
        out.push(Target {
            identity,
            app,
            path,
            kind: VolumeKind::AllocData,
            labels: labels(&[("alloc", &id), ("namespace", &namespace)]),
        });
    }
}

impl Discovery for Nomad {
    fn discover(config: Config, inventory: Option<String>) -> Result<Vec<Target>> {
        let inventory = match inventory {
            Some(json) => Inventory::parse(&json)?,
            None => Inventory::default(),
        };
        let data = [CONFIGURED, DEFAULT]
            .into_iter()
            .find(|d| Path::new(d).is_dir())
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no Nomad data_dir is visible (looked at {DEFAULT}); grant it read-only, or \
                     set `data-dir`"
                ))
            })?;
        let mut targets = Vec::new();
        csi(data, &inventory, &mut targets);
        host_volumes(data, &config, &inventory, &mut targets)?;
        alloc_data(data, &inventory, &mut targets);
        targets.sort_by(|a, b| (&a.identity, &a.path).cmp(&(&b.identity, &b.path)));
        Ok(targets)
    }
}

cairn_sdk::export_discovery!(Nomad);
