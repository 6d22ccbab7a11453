//! cairn on Kubernetes, against the fake API server (no real one can run here): the fake
//! checked against the real client, `kubectl`, then the agent learning its node's pods from
//! the API.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use cairn_testing::kube::FakeKube;
use cairn_tests::agent::Agent;
use cairn_tests::node::Node;
use serde_json::{Value, json};

fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new("kubectl");
    c.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env("HOME", kubeconfig.parent().unwrap())
        .stdin(Stdio::null());
    c
}

/// A child process killed when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ok(mut c: Command) -> String {
    let out = c.output().expect("kubectl runs");
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn pod(ns: &str, name: &str, uid: &str, node: &str, claim: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": ns, "name": name, "uid": uid},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "app", "image": "app:1"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    })
}

pub fn claim(ns: &str, name: &str, volume: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"namespace": ns, "name": name},
        "spec": {"volumeName": volume, "accessModes": ["ReadWriteOnce"]},
        "status": {"phase": "Bound"},
    })
}

#[test]
fn kubectl_gets_lists_selects_and_watches_the_fake_api_as_a_real_one() {
    let fake = FakeKube::start();
    let dir = tempfile::tempdir().unwrap();
    let kc = fake.kubeconfig(dir.path());
    fake.put(claim("shop", "db", "pv-1"));
    fake.put(pod("shop", "db-0", "uid-1", "node-a", "db"));
    fake.put(pod("blog", "web-0", "uid-2", "node-b", "files"));

    let all: Value =
        serde_json::from_str(&ok(kubectl(&kc, &["get", "pods", "-A", "-o", "json"]))).unwrap();
    assert_eq!(all["kind"], "List");
    assert_eq!(all["items"].as_array().unwrap().len(), 2, "{all}");
    let on_a = ok(kubectl(
        &kc,
        &[
            "get",
            "pods",
            "-A",
            "--field-selector",
            "spec.nodeName=node-a",
            "-o",
            "name",
        ],
    ));
    assert_eq!(on_a.trim(), "pod/db-0");
    let not_a = ok(kubectl(
        &kc,
        &[
            "get",
            "pods",
            "-A",
            "--field-selector",
            "spec.nodeName!=node-a",
            "-o",
            "name",
        ],
    ));
    assert_eq!(not_a.trim(), "pod/web-0");
    let volume = ok(kubectl(
        &kc,
        &[
            "get",
            "pvc",
            "db",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.volumeName}",
        ],
    ));
    assert_eq!(volume, "pv-1");
    let missing = kubectl(&kc, &["get", "pod", "nope", "-n", "shop"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("\"nope\" not found"),
        "{} {:?}",
        String::from_utf8_lossy(&missing.stderr),
        fake.requests()
    );
    // An unsupported field is refused as the API refuses it.
    let bad = kubectl(
        &kc,
        &["get", "pvc", "-A", "--field-selector", "spec.nodeName=x"],
    )
    .output()
    .unwrap();
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("field label not supported"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    // With another token: refused.
    let wrong = dir.path().join("wrong");
    std::fs::write(
        &wrong,
        std::fs::read_to_string(&kc)
            .unwrap()
            .replace(cairn_testing::kube::TOKEN, "not-the-token"),
    )
    .unwrap();
    let refused = kubectl(&wrong, &["get", "pods", "-A", "-o", "name"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("(Unauthorized)"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // `get --watch`: the list, then what changes, as kubectl prints it.
    let mut watch = kubectl(
        &kc,
        &[
            "get",
            "pods",
            "-n",
            "shop",
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = watch.stdout.take().unwrap();
    // Killed however the test ends.
    let _watch = KillOnDrop(watch);
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines() {
            text.push_str(&line.unwrap());
            text.push('\n');
            // kubectl prints each event as indented JSON; one ends at a closing brace alone.
            if text.ends_with("}\n") && serde_json::from_str::<Value>(&text).is_ok() {
                let _ = tx.send(serde_json::from_str(&text).unwrap());
                text.clear();
            }
        }
    });
    let next = || rx.recv_timeout(Duration::from_secs(20)).expect("an event");
    let first = next();
    assert_eq!(first["type"], "ADDED", "{first}");
    assert_eq!(first["object"]["metadata"]["name"], "db-0");
    fake.put(pod("shop", "db-1", "uid-3", "node-a", "db"));
    let added = next();
    assert_eq!(
        (&added["type"], &added["object"]["metadata"]["name"]),
        (&json!("ADDED"), &json!("db-1"))
    );
    fake.delete("v1", "Pod", "shop", "db-0");
    let deleted = next();
    assert_eq!(
        (&deleted["type"], &deleted["object"]["metadata"]["name"]),
        (&json!("DELETED"), &json!("db-0"))
    );
}

const UID_DB: &str = "6f1d2c3b-0000-4000-8000-00000000db00";
const UID_WEB: &str = "6f1d2c3b-0000-4000-8000-0000000000eb";
const UID_DB_MOVED: &str = "6f1d2c3b-0000-4000-8000-00000000db01";

/// An agent for node `name`: its node tree under `tmp/<name>`, the shared repository and
/// password, the fake API through `kubeconfig`, and the apps `shop` and `blog`.
fn node_agent(tmp: &std::path::Path, name: &str, kubeconfig: &std::path::Path) -> Agent {
    let pass = tmp.join("password");
    std::fs::write(&pass, "secret\n").unwrap();
    let agent_extra = format!(
        "password-file = \"{}\"\nrepository = \"{}\"\nhost-root = \"{}\"\n\n\
         [agent.kubernetes]\nnode = \"{name}\"\nkubeconfig = \"{}\"\nwait = \"20s\"\n",
        pass.display(),
        tmp.join("repo").display(),
        tmp.join(name).display(),
        kubeconfig.display(),
    );
    let apps =
        "[apps.shop]\nvolumes = [\"k8s/shop/**\"]\n\n[apps.blog]\nvolumes = [\"k8s/blog/**\"]\n";
    Agent::start(&tmp.join(format!("agent-{name}")), &agent_extra, apps)
}

fn snapshots(tmp: &std::path::Path) -> Vec<Value> {
    cairn_tests::snapshots_of(&tmp.join("repo"), &tmp.join("password"))
}

/// Two nodes' agents against one cluster: each backs up the volumes of the pods on its own
/// node, from the API's inventory (the claim names the volume); a pod moved to the other node
/// is backed up there, continuing the same chain.
#[test]
fn each_nodes_agent_backs_up_its_own_pods_and_a_moved_pod_continues_its_chain() {
    let fake = FakeKube::start();
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let kc = fake.kubeconfig(tmp);
    fake.put(claim("shop", "db", "pv-db"));
    fake.put(claim("blog", "files", "pv-files"));
    fake.put(pod("shop", "db-0", UID_DB, "node-a", "db"));
    fake.put(pod("blog", "web-0", UID_WEB, "node-b", "files"));
    let (node_a, node_b) = (Node::new(tmp.join("node-a")), Node::new(tmp.join("node-b")));
    let kubelet = "/var/lib/kubelet";
    let db = node_a.pod(kubelet, "shop", "db-0", UID_DB, false);
    db.csi("pv-db", "csi.example.com", "Persistent", "orders.db");
    node_b.pod(kubelet, "blog", "web-0", UID_WEB, false).csi(
        "pv-files",
        "csi.example.com",
        "Persistent",
        "index.html",
    );
    let a = node_agent(tmp, "node-a", &kc);
    let b = node_agent(tmp, "node-b", &kc);

    a.cli(&["run", "shop", "--wait"]).ok();
    b.cli(&["run", "blog", "--wait"]).ok();
    // Neither node has the other's app's pods: their runs back up nothing.
    a.cli(&["run", "blog", "--wait"]).ok();
    b.cli(&["run", "shop", "--wait"]).ok();
    let snaps = snapshots(tmp);
    let volumes: Vec<&str> = snaps
        .iter()
        .map(|s| s["volume"].as_str().unwrap())
        .collect();
    assert_eq!(volumes, ["k8s/shop/db", "k8s/blog/files"], "{snaps:?}");
    let first = snaps[0]["id"].clone();

    // The pod moves: deleted on node-a (the kubelet removes its directory), created anew on
    // node-b, where the same claim's volume is mounted.
    fake.delete("v1", "Pod", "shop", "db-0");
    std::fs::remove_dir_all(node_a.path(&format!("{kubelet}/pods/{UID_DB}"))).unwrap();
    fake.put(pod("shop", "db-0", UID_DB_MOVED, "node-b", "db"));
    let moved = node_b.pod(kubelet, "shop", "db-0", UID_DB_MOVED, false);
    let mount = moved.csi("pv-db", "csi.example.com", "Persistent", "orders.db");
    std::fs::write(mount.join("new.txt"), "written on node-b\n").unwrap();

    b.wait_for(30, "node-b's agent sees the moved pod", |_| {
        b.cli(&["run", "shop", "--wait"]).ok();
        snapshots(tmp).len() == 3
    });
    a.cli(&["run", "shop", "--wait"]).ok();
    let snaps = snapshots(tmp);
    assert_eq!(
        snaps.len(),
        3,
        "node-a has no shop volume any more: {snaps:?}"
    );
    let last = &snaps[2];
    assert_eq!(last["volume"], "k8s/shop/db");
    assert_eq!(
        last["parent"], first,
        "the chain goes on from node-a's snapshot"
    );

    // Each agent asked only for its own node's pods, and by watches.
    let pods: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET /api/v1/pods"))
        .collect();
    for node in ["node-a", "node-b"] {
        let mine = pods
            .iter()
            .filter(|r| r.contains(&format!("spec.nodeName%3D{node}")))
            .count();
        assert!(mine >= 2, "a list and a watch for {node}: {pods:?}");
    }
    assert!(
        pods.iter()
            .all(|r| r.contains("fieldSelector=spec.nodeName")),
        "{pods:?}"
    );
}
