//! cairn-nomad: the Nomad agent's API as the cairn agent on the same node sees it.
//!
//! [`AllocWatch`] learns the node's ID from `GET /v1/agent/self` (`stats.client.node_id`:
//! Nomad has no `/v1/node/self`) and keeps the node's allocations from
//! `GET /v1/node/:id/allocations` with blocking queries: each request carries the last
//! `X-Nomad-Index` and returns when something changed (or after `wait`), so an idle node costs
//! the API one open request, not polling. While the API is away the last list stays, and the
//! query is tried again with backoff. [`AllocWatch::inventory`] gives the allocations that are
//! not terminal (a stopped allocation's directory may stay until Nomad collects it) as the
//! JSON array the `nomad` discovery plugin reads.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_repo::{Error, ErrorKind, Result};
use serde_json::Value;

/// How long one blocking query may wait on the server.
const WAIT: &str = "5m";
/// The longest pause between tries while the API is away.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where the node's Nomad agent is.
#[derive(Debug, Clone, Default)]
pub struct NomadOptions {
    /// `http(s)://HOST:PORT` (default: `NOMAD_ADDR`, else `http://127.0.0.1:4646`).
    pub address: Option<String>,
    /// The ACL token (default: `NOMAD_TOKEN`).
    pub token: Option<String>,
}

#[derive(Default)]
struct Known {
    /// The node's allocations, once listed.
    allocs: Option<Vec<Value>>,
    node_id: Option<String>,
}

/// This node's allocations, kept current (see the module documentation). Dropping it stops
/// the watch.
pub struct AllocWatch {
    address: String,
    known: Arc<Mutex<Known>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for AllocWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AllocWatch({})", self.address)
    }
}

impl AllocWatch {
    /// Starts watching the agent `options` name. It returns at once;
    /// [`AllocWatch::inventory`] waits for the first list.
    ///
    /// # Errors
    /// When the address is not a URL.
    pub fn start(options: &NomadOptions) -> Result<Self> {
        let address = options
            .address
            .clone()
            .or_else(|| std::env::var("NOMAD_ADDR").ok())
            .unwrap_or_else(|| "http://127.0.0.1:4646".into());
        let base = reqwest::Url::parse(&address)
            .map_err(|e| Error::invalid(format!("the Nomad address `{address}`: {e}")))?;
        let token = options
            .token
            .clone()
            .or_else(|| std::env::var("NOMAD_TOKEN").ok());
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::invalid(format!("cannot make the Nomad client: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cairn-nomad")
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start the Nomad watch's runtime", e))?;
        let known = Arc::new(Mutex::new(Known::default()));
        let api = Api {
            client,
            base,
            token,
        };
        runtime.spawn(watch(api, known.clone()));
        Ok(Self {
            address,
            known,
            runtime: Some(runtime),
        })
    }

    /// The node's ID, once the agent has said it.
    pub fn node_id(&self) -> Option<String> {
        self.known.lock().expect("nomad lock").node_id.clone()
    }

    /// The node's allocations that are not terminal, as `{"Allocations": [...]}` (the form
    /// the `nomad` plugin reads and the `kubelet` plugin knows is not its own). Waits up to
    /// `wait` for the first list.
    ///
    /// # Errors
    /// When the agent has not answered within `wait`.
    pub fn inventory(&self, wait: Duration) -> Result<String> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(allocs) = &self.known.lock().expect("nomad lock").allocs {
                let live: Vec<&Value> = allocs.iter().filter(|a| !terminal(a)).collect();
                return Ok(serde_json::json!({ "Allocations": live }).to_string());
            }
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Backend,
                    format!(
                        "the Nomad agent at {} has not listed this node's allocations within \
                         {} s; is it running, and may the token read the node \
                         (node:read)?",
                        self.address,
                        wait.as_secs()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for AllocWatch {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Whether an allocation has ended (or is ending) on the client.
fn terminal(alloc: &Value) -> bool {
    let client = alloc["ClientStatus"].as_str().unwrap_or_default();
    let desired = alloc["DesiredStatus"].as_str().unwrap_or_default();
    matches!(client, "complete" | "failed" | "lost") || matches!(desired, "stop" | "evict")
}

struct Api {
    client: reqwest::Client,
    base: reqwest::Url,
    token: Option<String>,
}

impl Api {
    async fn get(&self, path: &str) -> std::result::Result<(Value, Option<u64>), String> {
        let url = self.base.join(path).map_err(|e| e.to_string())?;
        let mut request = self.client.get(url);
        if let Some(t) = &self.token {
            request = request.header("X-Nomad-Token", t);
        }
        let answer = request
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = answer.status();
        let index = answer
            .headers()
            .get("X-Nomad-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        if !status.is_success() {
            let text = answer.text().await.unwrap_or_default();
            return Err(format!(
                "{status}: {}",
                text.chars().take(200).collect::<String>()
            ));
        }
        let body = answer
            .json()
            .await
            .map_err(|e| e.without_url().to_string())?;
        Ok((body, index))
    }
}

/// The watch: the node's ID, then blocking queries of its allocations, forever.
async fn watch(api: Api, known: Arc<Mutex<Known>>) {
    let mut backoff = Duration::from_millis(500);
    let mut failing = false;
    let mut index = 0u64;
    let mut node: Option<String> = None;
    loop {
        let step = async {
            let id = match &node {
                Some(id) => id.clone(),
                None => {
                    let (agent, _) = api.get("/v1/agent/self").await?;
                    let id = agent["stats"]["client"]["node_id"]
                        .as_str()
                        .filter(|s| !s.is_empty())
                        .ok_or("the agent is not a Nomad client (no stats.client.node_id)")?
                        .to_owned();
                    known.lock().expect("nomad lock").node_id = Some(id.clone());
                    id
                }
            };
            let path = format!("/v1/node/{id}/allocations?index={index}&wait={WAIT}");
            let (list, next) = api.get(&path).await?;
            let allocs = list
                .as_array()
                .cloned()
                .ok_or("the allocations are not a list")?;
            Ok::<_, String>((id, allocs, next))
        };
        match step.await {
            Ok((id, allocs, next)) => {
                if failing {
                    tracing::info!("the Nomad agent answers again");
                    failing = false;
                }
                backoff = Duration::from_millis(500);
                node = Some(id);
                // An index that went back (a restored server) starts over; one that did not
                // move waits again.
                index = match next {
                    Some(n) if n > index => n,
                    Some(n) if n < index => 0,
                    _ => index,
                };
                known.lock().expect("nomad lock").allocs = Some(allocs);
            }
            Err(e) => {
                if !failing {
                    tracing::warn!("the Nomad agent: {e} (trying again, with backoff)");
                    failing = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests;
