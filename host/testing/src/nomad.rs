//! A fake Nomad cluster's HTTP API on loopback, one listener per client node as each node runs
//! its own agent: `GET /v1/agent/self` (the node's ID under `stats.client.node_id`) and
//! `GET /v1/node/:id/allocations` with Nomad's blocking queries: `?index=N` waits until the
//! allocations' index passes `N` (or `wait`, default 5 minutes, passes), and every answer
//! carries `X-Nomad-Index`. Requests need `X-Nomad-Token` when the fake has a token. The test
//! drives it with [`FakeNomad::put_alloc`] and [`FakeNomad::stop_alloc`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The ACL token the fake wants.
pub const TOKEN: &str = "fake-nomad-acl-token";

#[derive(Default)]
struct Inner {
    index: u64,
    /// Allocations by ID.
    allocs: BTreeMap<String, Value>,
    requests: Vec<String>,
    down: bool,
}

struct Shared {
    inner: Mutex<Inner>,
    changed: tokio::sync::watch::Sender<u64>,
}

/// The fake cluster (see the module documentation). Dropping it stops it.
pub struct FakeNomad {
    shared: Arc<Shared>,
    nodes: BTreeMap<String, std::net::SocketAddr>,
    _serving: crate::serving::Serving,
}

impl FakeNomad {
    /// A cluster of client nodes with these IDs, each with its agent on a loopback port.
    ///
    /// # Panics
    /// When no port can be bound.
    pub fn start(node_ids: &[&str]) -> Self {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                index: 1,
                ..Inner::default()
            }),
            changed: tokio::sync::watch::channel(1).0,
        });
        let mut nodes = BTreeMap::new();
        let mut listeners = Vec::new();
        for id in node_ids {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
            l.set_nonblocking(true).expect("non-blocking");
            nodes.insert((*id).to_owned(), l.local_addr().expect("its address"));
            listeners.push(((*id).to_owned(), l));
        }
        let s = shared.clone();
        let serving = crate::serving::Serving::spawn(move |stopped| async move {
            let mut served = Vec::new();
            for (id, l) in listeners {
                let app = axum::Router::new()
                    .fallback(handle)
                    .with_state((s.clone(), Arc::new(id)));
                let l = tokio::net::TcpListener::from_std(l).expect("listener");
                let mut stopped = stopped.clone();
                served.push(tokio::spawn(async move {
                    let _ = axum::serve(l, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        })
                        .await;
                }));
            }
            for s in served {
                let _ = s.await;
            }
        });
        Self {
            shared,
            nodes,
            _serving: serving,
        }
    }

    /// The address of node `id`'s agent: `http://127.0.0.1:PORT`.
    ///
    /// # Panics
    /// For a node the cluster does not have.
    pub fn address(&self, id: &str) -> String {
        format!("http://{}", self.nodes[id])
    }

    /// Creates or replaces an allocation (by its `ID`); it gets the next index as its
    /// `ModifyIndex` (and `CreateIndex` when new), and blocked queries answer.
    pub fn put_alloc(&self, mut alloc: Value) {
        let mut inner = self.shared.inner.lock().expect("fake lock");
        inner.index += 1;
        let index = inner.index;
        let id = alloc["ID"].as_str().expect("an ID").to_owned();
        let created = inner
            .allocs
            .get(&id)
            .and_then(|a| a["CreateIndex"].as_u64())
            .unwrap_or(index);
        alloc["CreateIndex"] = json!(created);
        alloc["ModifyIndex"] = json!(index);
        inner.allocs.insert(id, alloc);
        drop(inner);
        self.shared.changed.send_replace(index);
    }

    /// Stops an allocation: `DesiredStatus` stop, `ClientStatus` complete.
    ///
    /// # Panics
    /// When there is no such allocation.
    pub fn stop_alloc(&self, id: &str) {
        let mut alloc = self.shared.inner.lock().expect("fake lock").allocs[id].clone();
        alloc["DesiredStatus"] = json!("stop");
        alloc["ClientStatus"] = json!("complete");
        self.put_alloc(alloc);
    }

    /// Takes every node's API down (503) or up again.
    pub fn set_down(&self, down: bool) {
        self.shared.inner.lock().expect("fake lock").down = down;
    }

    /// Every request so far, as `NODE METHOD PATH?QUERY`.
    pub fn requests(&self) -> Vec<String> {
        self.shared
            .inner
            .lock()
            .expect("fake lock")
            .requests
            .clone()
    }
}

/// An allocation of `job`'s group `group` in `namespace` on `node`, running.
pub fn alloc(id: &str, node: &str, namespace: &str, job: &str, group: &str) -> Value {
    json!({
        "ID": id, "EvalID": "e0", "Name": format!("{job}.{group}[0]"), "Namespace": namespace,
        "NodeID": node, "NodeName": node, "JobID": job, "TaskGroup": group,
        "DesiredStatus": "run", "ClientStatus": "running",
    })
}

fn error(code: StatusCode, text: &str) -> Response {
    (code, text.to_owned()).into_response()
}

async fn handle(
    State((shared, node)): State<(Arc<Shared>, Arc<String>)>,
    req: Request,
) -> Response {
    let line = format!(
        "{node} {} {}",
        req.method(),
        req.uri()
            .path_and_query()
            .map_or(req.uri().path(), |p| p.as_str())
    );
    {
        let mut inner = shared.inner.lock().expect("fake lock");
        inner.requests.push(line);
        if inner.down {
            return error(StatusCode::SERVICE_UNAVAILABLE, "No cluster leader");
        }
    }
    let token = req
        .headers()
        .get("X-Nomad-Token")
        .and_then(|v| v.to_str().ok());
    if token != Some(TOKEN) {
        return error(StatusCode::FORBIDDEN, "Permission denied");
    }
    let query: BTreeMap<String, String> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let parts: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["v1", "agent", "self"] => json_answer(
            &json!({
                "config": {"Client": {"Enabled": true}},
                "member": {"Name": format!("{node}.global")},
                "stats": {"client": {"node_id": node.as_str(), "known_servers": "127.0.0.1:4647"}},
            }),
            None,
        ),
        ["v1", "node", id, "allocations"] => allocations(&shared, id, &query).await,
        _ => error(StatusCode::NOT_FOUND, "Invalid URL"),
    }
}

/// Nomad's `wait`: `30s`, `5m`, or plain seconds; at most 10 minutes.
fn wait_of(query: &BTreeMap<String, String>) -> Duration {
    let Some(w) = query.get("wait") else {
        return Duration::from_secs(300);
    };
    let (n, unit) = w.split_at(w.find(|c: char| !c.is_ascii_digit()).unwrap_or(w.len()));
    let n: u64 = n.parse().unwrap_or(300);
    let secs = match unit {
        "ms" => n / 1000,
        "m" => n * 60,
        _ => n,
    };
    Duration::from_secs(secs.min(600))
}

async fn allocations(shared: &Shared, node: &str, query: &BTreeMap<String, String>) -> Response {
    let after: u64 = query.get("index").and_then(|i| i.parse().ok()).unwrap_or(0);
    let mut changed = shared.changed.subscribe();
    let deadline = tokio::time::sleep(wait_of(query));
    tokio::pin!(deadline);
    loop {
        if *changed.borrow_and_update() > after {
            break;
        }
        tokio::select! {
            () = &mut deadline => break,
            r = changed.changed() => if r.is_err() { break },
        }
    }
    let inner = shared.inner.lock().expect("fake lock");
    if inner.down {
        return error(StatusCode::SERVICE_UNAVAILABLE, "No cluster leader");
    }
    let list: Vec<&Value> = inner
        .allocs
        .values()
        .filter(|a| a["NodeID"] == node)
        .collect();
    json_answer(&json!(list), Some(inner.index))
}

/// A JSON answer, with `X-Nomad-Index` when `index` is given.
fn json_answer(body: &Value, index: Option<u64>) -> Response {
    let mut answer = (StatusCode::OK, body.to_string()).into_response();
    let headers = answer.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(i) = index {
        headers.insert(
            "X-Nomad-Index",
            HeaderValue::from_str(&i.to_string()).expect("digits"),
        );
    }
    answer
}
