//! cairn on Nomad, against the fake Nomad cluster (no Nomad agent can run here): the agent
//! learns its node's allocations from the node's Nomad agent by blocking queries, and
//! allocations appearing and stopping change what it backs up.

use std::path::Path;
use std::process::Command;

use cairn_testing::nomad::{FakeNomad, TOKEN, alloc};
use cairn_tests::agent::Agent;
use cairn_tests::node::{Node, Nomad};
use serde_json::Value;

const FIRST: &str = "5e1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c01";
const SECOND: &str = "5e1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c02";

fn snapshots(tmp: &Path) -> Vec<Value> {
    cairn_tests::snapshots_of(&tmp.join("repo"), &tmp.join("password"))
}

#[test]
fn the_agent_backs_up_its_nodes_live_allocations_and_a_replacement_continues_the_chain() {
    let fake = FakeNomad::start(&["node-a", "node-b"]);
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    fake.put_alloc(alloc(FIRST, "node-a", "prod", "shop", "db"));
    fake.put_alloc(alloc("b-1", "node-b", "prod", "blog", "web"));
    let node = Node::new(tmp.join("node-a"));
    let nomad = Nomad::new(&node, "/opt/nomad/data");
    std::fs::write(nomad.alloc(FIRST, "server").join("orders.db"), "v1\n").unwrap();
    let pass = tmp.join("password");
    std::fs::write(&pass, "secret\n").unwrap();
    let token = tmp.join("nomad-token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let agent_extra = format!(
        "password-file = \"{}\"\nrepository = \"{}\"\nhost-root = \"{}\"\n\n\
         [agent.nomad]\naddress = \"{}\"\ntoken-file = \"{}\"\nwait = \"20s\"\n",
        pass.display(),
        tmp.join("repo").display(),
        node.root.display(),
        fake.address("node-a"),
        token.display(),
    );
    let agent = Agent::start(
        &tmp.join("agent"),
        &agent_extra,
        "[apps.shop]\nvolumes = [\"nomad/prod/shop/**\"]\n",
    );
    agent.cli(&["run", "shop", "--wait"]).ok();
    let snaps = snapshots(tmp);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert_eq!(snaps[0]["volume"], "nomad/prod/shop/db/alloc-data");

    // The allocation is replaced: the old one stops (its directory stays until Nomad
    // collects it), a new one runs.
    fake.stop_alloc(FIRST);
    fake.put_alloc(alloc(SECOND, "node-a", "prod", "shop", "db"));
    std::fs::write(nomad.alloc(SECOND, "server").join("orders.db"), "v2\n").unwrap();
    agent.wait_for(30, "the new allocation backed up", |_| {
        agent.cli(&["run", "shop", "--wait"]).ok();
        let snaps = snapshots(tmp);
        snaps.len() == 2 || snaps.len() > 2
    });
    let snaps = snapshots(tmp);
    assert_eq!(
        snaps.len(),
        2,
        "one snapshot per run, the stopped allocation not in it: {snaps:?}"
    );
    assert_eq!(snaps[1]["volume"], "nomad/prod/shop/db/alloc-data");
    assert_eq!(snaps[1]["parent"], snaps[0]["id"], "the chain goes on");
    let out = tmp.join("restored");
    let restore = Command::new(cairn_tests::cairn_bin())
        .args(["restore", "latest", "--target"])
        .arg(&out)
        .arg("-r")
        .arg(tmp.join("repo"))
        .arg("--password-file")
        .arg(&pass)
        .output()
        .unwrap();
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    let found: Vec<String> = walk(&out)
        .into_iter()
        .filter(|p| p.ends_with("orders.db"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(
        found,
        ["v2\n"],
        "the new allocation's data, not the stopped one's"
    );

    // Blocking queries on this node's allocations only.
    let requests = fake.requests();
    assert!(requests.iter().any(|r| r.contains("GET /v1/agent/self")));
    assert!(
        requests
            .iter()
            .filter(|r| r.contains("/allocations"))
            .all(|r| r.contains("/v1/node/node-a/allocations?index=")),
        "{requests:?}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
