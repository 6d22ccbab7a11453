//! cairn on Kubernetes, against the fake API server (no real one can run here): the fake
//! checked against the real client, `kubectl`, then the agent learning its node's pods from
//! the API.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use cairn_testing::kube::FakeKube;
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
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let stdout = watch.stdout.take().unwrap();
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
    let _ = watch.kill();
    let _ = watch.wait();
}
