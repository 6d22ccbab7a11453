//! Fake node trees, laid out as kubelet and Nomad lay them out on disk (see
//! docs/DISCOVERY.md and the sources cited there), for the discovery tests.

use std::path::{Path, PathBuf};

/// A node's file system below a temporary directory (the tests' `--host-root`).
pub struct Node {
    /// The node's `/`.
    pub root: PathBuf,
}

/// A pod directory under a kubelet root.
pub struct Pod {
    /// `<kubelet root>/pods/<uid>` on the node.
    pub dir: PathBuf,
    /// Its UID.
    pub uid: String,
}

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, data).expect("write");
}

impl Node {
    /// An empty node at `root`.
    pub fn new(root: PathBuf) -> Node {
        std::fs::create_dir_all(&root).expect("node root");
        Node { root }
    }

    /// `rel` (a node path such as `/var/lib/kubelet`) on this node.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    /// A pod `namespace/name` with `uid` under kubelet root `kubelet` (a node path); with
    /// `logs`, its `/var/log/pods/<ns>_<name>_<uid>/` directory too.
    pub fn pod(&self, kubelet: &str, namespace: &str, name: &str, uid: &str, logs: bool) -> Pod {
        let dir = self.path(kubelet).join("pods").join(uid);
        write(&dir.join("etc-hosts"), b"127.0.0.1 localhost\n");
        write(&dir.join("containers/app/0a1b2c3d"), b"");
        if logs {
            write(
                &self
                    .path("/var/log/pods")
                    .join(format!("{namespace}_{name}_{uid}"))
                    .join("app/0.log"),
                b"started\n",
            );
        }
        Pod {
            dir,
            uid: uid.to_owned(),
        }
    }
}

impl Pod {
    /// A filesystem volume `name` of in-tree plugin `plugin` (escaped, `kubernetes.io~nfs`)
    /// holding `file`; returns its directory.
    pub fn volume(&self, plugin: &str, name: &str, file: &str) -> PathBuf {
        let dir = self.dir.join("volumes").join(plugin).join(name);
        write(&dir.join(file), format!("{name} data\n").as_bytes());
        dir
    }

    /// A CSI volume: `<name>/mount/<file>` and `<name>/vol_data.json`; returns `mount/`.
    pub fn csi(&self, name: &str, driver: &str, lifecycle: &str, file: &str) -> PathBuf {
        let dir = self.dir.join("volumes/kubernetes.io~csi").join(name);
        let handle = if lifecycle == "Ephemeral" {
            format!("csi-{}", self.uid.replace('-', ""))
        } else {
            format!("vol-{name}")
        };
        let data = serde_json::json!({
            "specVolID": name,
            "volumeHandle": handle,
            "driverName": driver,
            "nodeName": "node-1",
            "attachmentID": format!("csi-{name}"),
            "volumeLifecycleMode": lifecycle,
        });
        write(&dir.join("vol_data.json"), data.to_string().as_bytes());
        write(
            &dir.join("mount").join(file),
            format!("{name} data\n").as_bytes(),
        );
        dir.join("mount")
    }

    /// A block volume `volumeDevices/kubernetes.io~csi/<name>` (a file standing in for the
    /// device link); returns it.
    pub fn block(&self, name: &str) -> PathBuf {
        let path = self.dir.join("volumeDevices/kubernetes.io~csi").join(name);
        write(&path, b"");
        path
    }

    /// A subPath bind mount of volume `volume` (a duplicate discovery must skip).
    pub fn subpath(&self, volume: &str) {
        write(
            &self
                .dir
                .join("volume-subpaths")
                .join(volume)
                .join("app/0/file"),
            b"dup\n",
        );
    }

    /// The API-sourced volumes discovery must skip: configmap, secret, projected, downward-api.
    pub fn api_volumes(&self) {
        for (plugin, name) in [
            ("kubernetes.io~configmap", "config"),
            ("kubernetes.io~secret", "token"),
            ("kubernetes.io~projected", "kube-api-access-7x9qz"),
            ("kubernetes.io~downward-api", "podinfo"),
        ] {
            self.volume(plugin, name, "..data");
        }
    }
}

/// A Nomad client's data_dir.
pub struct Nomad {
    /// `data_dir` on the node.
    pub dir: PathBuf,
}

impl Nomad {
    /// The data dir at node path `data_dir` of `node`.
    pub fn new(node: &Node, data_dir: &str) -> Nomad {
        let dir = node.path(data_dir);
        write(&dir.join("client/state.db"), b"bbolt");
        Nomad { dir }
    }

    /// A CSI volume published for `alloc` by plugin `plugin` (`node` or `monolith` type);
    /// with `namespace`, the staging dir that names it. Returns the publish (usage) dir.
    pub fn csi(
        &self,
        kind: &str,
        plugin: &str,
        alloc: &str,
        volume: &str,
        namespace: Option<&str>,
    ) -> PathBuf {
        let base = self.dir.join("client/csi").join(kind).join(plugin);
        let usage = "rw-file-system-single-node-writer";
        if let Some(ns) = namespace {
            std::fs::create_dir_all(base.join("staging").join(ns).join(volume).join(usage))
                .expect("staging");
        }
        let publish = base.join("per-alloc").join(alloc).join(volume).join(usage);
        write(&publish.join("db.sqlite"), format!("{volume}\n").as_bytes());
        publish
    }

    /// A dynamic host volume `host_volumes/<id>`.
    pub fn host_volume(&self, id: &str) -> PathBuf {
        let dir = self.dir.join("host_volumes").join(id);
        write(&dir.join("data.bin"), id.as_bytes());
        dir
    }

    /// An allocation dir with its shared `alloc/data`, and task `task` with `secrets/`
    /// (a tmpfs discovery must skip). Returns `alloc/data`.
    pub fn alloc(&self, id: &str, task: &str) -> PathBuf {
        let dir = self.dir.join("alloc").join(id);
        write(&dir.join("alloc/data/state.json"), b"{}");
        write(
            &dir.join("alloc/logs").join(format!("{task}.stdout.0")),
            b"log\n",
        );
        write(&dir.join(task).join("secrets/vault_token"), b"s.secret");
        write(&dir.join(task).join("local/config.hcl"), b"x = 1\n");
        dir.join("alloc/data")
    }
}
