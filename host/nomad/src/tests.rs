use std::time::{Duration, Instant};

use cairn_testing::nomad::{FakeNomad, TOKEN, alloc};
use serde_json::Value;

use super::*;

fn watch_of(fake: &FakeNomad, node: &str, token: &str) -> AllocWatch {
    AllocWatch::start(&NomadOptions {
        address: Some(fake.address(node)),
        token: Some(token.into()),
    })
    .unwrap()
}

fn ids(inventory: &str) -> Vec<String> {
    let list: Value = serde_json::from_str(inventory).unwrap();
    let mut ids: Vec<String> = list["Allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ID"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn until(watch: &AllocWatch, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = ids(&watch.inventory(Duration::from_secs(10)).unwrap());
        if seen == want {
            return;
        }
        assert!(Instant::now() < deadline, "{seen:?}, waiting for {want:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_inventory_follows_this_nodes_allocations_by_blocking_queries() {
    let fake = FakeNomad::start(&["node-a", "node-b"]);
    fake.put_alloc(alloc("a1", "node-a", "default", "shop", "db"));
    fake.put_alloc(alloc("b1", "node-b", "default", "blog", "web"));
    let watch = watch_of(&fake, "node-a", TOKEN);
    until(&watch, &["a1"]);
    assert_eq!(watch.node_id().as_deref(), Some("node-a"));
    fake.put_alloc(alloc("a2", "node-a", "prod", "shop", "cache"));
    until(&watch, &["a1", "a2"]);
    fake.stop_alloc("a1");
    until(&watch, &["a2"]);

    // Blocking queries, each from the index the last answer gave; never a poll from 0
    // after the first.
    let queries: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("node-a GET /v1/node/node-a/allocations"))
        .collect();
    assert!(queries[0].contains("index=0"), "{queries:?}");
    assert!(
        queries[1..].iter().all(|q| !q.contains("index=0&")),
        "{queries:?}"
    );
    assert!(queries.len() <= 6, "one query per change: {queries:?}");
}

#[test]
fn the_last_list_stays_while_the_agent_is_away_and_a_wrong_token_says_why() {
    let fake = FakeNomad::start(&["node-a"]);
    fake.put_alloc(alloc("a1", "node-a", "default", "shop", "db"));
    let watch = watch_of(&fake, "node-a", TOKEN);
    until(&watch, &["a1"]);
    fake.set_down(true);
    fake.put_alloc(alloc("a2", "node-a", "default", "shop", "db"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ids(&watch.inventory(Duration::ZERO).unwrap()), ["a1"]);
    fake.set_down(false);
    until(&watch, &["a1", "a2"]);

    let refused = watch_of(&fake, "node-a", "wrong");
    let e = refused.inventory(Duration::from_millis(500)).unwrap_err();
    assert!(e.to_string().contains("node:read"), "{e}");
}
