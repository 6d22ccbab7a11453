use std::time::{Duration, Instant};

use cairn_testing::kube::FakeKube;
use serde_json::{Value, json};

use super::*;

fn pod(ns: &str, name: &str, node: &str, claim: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": ns, "name": name},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "app", "image": "app:1"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    })
}

fn claim(ns: &str, name: &str, volume: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"namespace": ns, "name": name},
        "spec": {"volumeName": volume, "accessModes": ["ReadWriteOnce"]},
    })
}

/// The pods' and claims' `namespace/name`s in an inventory.
fn names(inventory: &str) -> (Vec<String>, Vec<String>) {
    let list: Value = serde_json::from_str(inventory).unwrap();
    assert_eq!(list["kind"], "List");
    let (mut pods, mut claims) = (Vec::new(), Vec::new());
    for item in list["items"].as_array().unwrap() {
        let name = format!(
            "{}/{}",
            item["metadata"]["namespace"].as_str().unwrap(),
            item["metadata"]["name"].as_str().unwrap()
        );
        match item["kind"].as_str().unwrap() {
            "Pod" => pods.push(name),
            "PersistentVolumeClaim" => claims.push(name),
            k => panic!("unexpected kind {k}"),
        }
    }
    pods.sort();
    claims.sort();
    (pods, claims)
}

fn watch_of(fake: &FakeKube, node: &str) -> NodeWatch {
    let dir = tempfile::tempdir().unwrap();
    let options = ClusterOptions {
        kubeconfig: Some(fake.kubeconfig(dir.path())),
        node: node.into(),
    };
    NodeWatch::start(&options).unwrap()
}

/// Waits until the inventory's pods are `want`.
fn until_pods(watch: &NodeWatch, want: &[&str]) -> (Vec<String>, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = names(&watch.inventory(Duration::from_secs(10)).unwrap());
        if seen.0 == want {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "pods {:?}, waiting for {want:?}",
            seen.0
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_inventory_holds_this_nodes_pods_and_their_claims_and_follows_changes() {
    let fake = FakeKube::start();
    fake.put(claim("shop", "db", "pv-1"));
    fake.put(claim("blog", "files", "pv-2"));
    fake.put(claim("shop", "unused", "pv-3"));
    fake.put(pod("shop", "db-0", "node-a", "db"));
    fake.put(pod("blog", "web-0", "node-b", "files"));
    let watch = watch_of(&fake, "node-a");
    let (pods, claims) = until_pods(&watch, &["shop/db-0"]);
    assert_eq!(
        claims,
        ["shop/db"],
        "only the claims this node's pods mount"
    );

    // A pod moved: deleted on one node, created on the other.
    fake.delete("v1", "Pod", "blog", "web-0");
    fake.put(pod("blog", "web-0", "node-a", "files"));
    let (_, claims) = until_pods(&watch, &["blog/web-0", "shop/db-0"]);
    assert_eq!(claims, ["blog/files", "shop/db"]);
    fake.delete("v1", "Pod", "shop", "db-0");
    until_pods(&watch, &["blog/web-0"]);
    drop(pods);

    // Only this node's pods were ever asked for, and by watches, not by polling lists.
    let requests = fake.requests();
    let pod_requests: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/pods"))
        .collect();
    assert!(
        pod_requests
            .iter()
            .all(|r| r.contains("fieldSelector=spec.nodeName%3Dnode-a")),
        "{pod_requests:?}"
    );
    let lists = pod_requests
        .iter()
        .filter(|r| !r.contains("watch="))
        .count();
    assert_eq!(lists, 1, "one list, then watches: {pod_requests:?}");
}

#[test]
fn the_last_state_stays_while_the_api_is_away_and_a_lost_history_is_listed_again() {
    let fake = FakeKube::start();
    fake.put(claim("shop", "db", "pv-1"));
    fake.put(pod("shop", "db-0", "node-a", "db"));
    let watch = watch_of(&fake, "node-a");
    until_pods(&watch, &["shop/db-0"]);

    fake.set_down(true);
    std::thread::sleep(Duration::from_millis(500));
    let (pods, claims) = names(&watch.inventory(Duration::ZERO).unwrap());
    assert_eq!(
        (pods, claims),
        (vec!["shop/db-0".to_owned()], vec!["shop/db".to_owned()])
    );
    fake.put(pod("shop", "db-1", "node-a", "db"));
    fake.set_down(false);
    until_pods(&watch, &["shop/db-0", "shop/db-1"]);

    // Away while the history was compacted: the watch from the old version is refused with
    // 410, and what changed meanwhile still arrives.
    fake.set_down(true);
    fake.put(pod("shop", "db-2", "node-a", "db"));
    fake.compact();
    fake.set_down(false);
    until_pods(&watch, &["shop/db-0", "shop/db-1", "shop/db-2"]);
}

#[test]
fn without_an_answer_the_inventory_is_an_error_that_says_why() {
    let fake = FakeKube::start();
    fake.set_down(true);
    let watch = watch_of(&fake, "node-a");
    let e = watch.inventory(Duration::from_millis(300)).unwrap_err();
    assert!(e.to_string().contains("node `node-a`"), "{e}");
    assert!(!watch.is_ready());
    fake.set_down(false);
    assert!(watch.inventory(Duration::from_secs(30)).is_ok());
}

#[test]
fn a_node_name_is_required() {
    let e = NodeWatch::start(&ClusterOptions::default()).unwrap_err();
    assert!(e.to_string().contains("CAIRN_NODE_NAME"), "{e}");
}

#[test]
fn a_running_pods_claim_is_waited_for_and_ephemeral_claims_are_kept() {
    let fake = FakeKube::start();
    let mut running = pod("shop", "db-0", "node-a", "db");
    running["status"] = json!({"phase": "Running"});
    running["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}));
    fake.put(running);
    fake.put(claim("shop", "db-0-scratch", "pv-9"));
    let watch = watch_of(&fake, "node-a");
    // Listed, but the claim `db` is not there: the pod's volume would get another name.
    let e = watch.inventory(Duration::from_secs(2)).unwrap_err();
    assert!(e.to_string().contains("shop/db-0"), "{e}");
    fake.put(claim("shop", "db", "pv-1"));
    let (_, claims) = until_pods(&watch, &["shop/db-0"]);
    assert_eq!(claims, ["shop/db", "shop/db-0-scratch"]);
}
