//! cairn-kubernetes: the cluster's API as one node's agent sees it.
//!
//! [`NodeWatch`] keeps, from watches on the API server, the pods scheduled on this node
//! (`fieldSelector=spec.nodeName=NODE`, the one selector the API offers for a node) and the
//! claims (all of them, filtered here: claims have no node field to select on). kube-runtime's
//! watchers do the protocol: a list, then a watch from its `resourceVersion` with bookmarks,
//! a new list after `410 Gone`, and backoff while the API is away, during which the last
//! state stays in the reflectors' stores. [`NodeWatch::inventory`] renders that state as the
//! inventory the discovery plugins read: a `List` of the node's pods and the claims they
//! mount, as `kubectl get pods,pvc -o json` prints it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_repo::{Error, ErrorKind, Result};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client};

/// Where the API is and which node this is.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// A kubeconfig file; none: the in-cluster service account (`KUBERNETES_SERVICE_HOST`
    /// and the token and CA under `/var/run/secrets/kubernetes.io/serviceaccount`), else
    /// `KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// This node's name, as the pods' `spec.nodeName` says it.
    pub node: String,
}

/// The node's pods and the cluster's claims, kept current (see the module documentation).
/// Dropping it stops the watches.
pub struct NodeWatch {
    node: String,
    server: String,
    pods: Store<Pod>,
    claims: Store<PersistentVolumeClaim>,
    ready: Arc<AtomicBool>,
    /// The runtime the watches run on (its own: the agent's jobs are threads).
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for NodeWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeWatch({} at {})", self.node, self.server)
    }
}

fn api_error(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Backend, format!("{what}: {e}"))
}

/// A client from `kubeconfig`, or from the environment (in-cluster, `KUBECONFIG`), and the
/// API server's URL.
async fn client(kubeconfig: Option<&Path>) -> Result<(Client, String)> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                api_error(format!("cannot read the kubeconfig {}", path.display()), e)
            })?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| {
                    api_error(format!("cannot use the kubeconfig {}", path.display()), e)
                })?
        }
        None => kube::Config::infer().await.map_err(|e| {
            api_error(
                "no Kubernetes API: not in a cluster (no service account) and no kubeconfig; \
                 give one with `kubeconfig` in [agent.kubernetes]",
                e,
            )
        })?,
    };
    let url = config.cluster_url.to_string();
    let client =
        Client::try_from(config).map_err(|e| api_error("cannot make a Kubernetes client", e))?;
    Ok((client, url))
}

impl NodeWatch {
    /// Starts watching. It returns at once; [`NodeWatch::inventory`] waits for the first
    /// complete lists.
    ///
    /// # Errors
    /// When the node name is empty, the kubeconfig cannot be read, or no configuration is
    /// found.
    pub fn start(options: &ClusterOptions) -> Result<Self> {
        if options.node.is_empty() {
            return Err(Error::invalid(
                "the node's name is not known: set `node` in [agent.kubernetes] or \
                 CAIRN_NODE_NAME (the Downward API's spec.nodeName)",
            ));
        }
        // Which of rustls' providers TLS uses, when the process has not said (a binary that
        // links both cannot leave it to rustls); the one the rest of cairn uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cairn-kube")
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start the Kubernetes watches' runtime", e))?;
        let (client, server) = runtime.block_on(client(options.kubeconfig.as_deref()))?;
        let (pods, pods_writer) = reflector::store::<Pod>();
        let (claims, claims_writer) = reflector::store::<PersistentVolumeClaim>();
        let node = options.node.clone();
        let selector = format!("spec.nodeName={node}");
        let pod_api: Api<Pod> = Api::all(client.clone());
        let claim_api: Api<PersistentVolumeClaim> = Api::all(client);
        runtime.spawn(drive(
            "pods",
            watcher(pod_api, watcher::Config::default().fields(&selector))
                .default_backoff()
                .reflect(pods_writer),
        ));
        runtime.spawn(drive(
            "persistentvolumeclaims",
            watcher(claim_api, watcher::Config::default())
                .default_backoff()
                .reflect(claims_writer),
        ));
        let ready = Arc::new(AtomicBool::new(false));
        {
            let (pods, claims, ready) = (pods.clone(), claims.clone(), ready.clone());
            runtime.spawn(async move {
                if pods.wait_until_ready().await.is_ok() && claims.wait_until_ready().await.is_ok()
                {
                    ready.store(true, Ordering::Release);
                    tracing::info!("the Kubernetes API's pods and claims are listed");
                }
            });
        }
        Ok(Self {
            node,
            server,
            pods,
            claims,
            ready,
            runtime: Some(runtime),
        })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether the first lists have come in (from then on the state is the last one known,
    /// also while the API is away).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The inventory: a `List` of this node's pods and the claims they mount, in the API's
    /// JSON. Waits up to `wait` for the first lists.
    ///
    /// # Errors
    /// When the API has not answered within `wait`: a backup must not run without knowing
    /// which claims its volumes are (their identities would change).
    pub fn inventory(&self, wait: Duration) -> Result<String> {
        let deadline = Instant::now()
            .checked_add(wait)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
        while !self.is_ready() {
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Backend,
                    format!(
                        "the Kubernetes API has not listed the pods of node `{}` within {} s; \
                         is it reachable, and may this service account list pods and \
                         persistentvolumeclaims?",
                        self.node,
                        wait.as_secs()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The two stores are filled by two watches: a running pod may come before the claim
        // it mounts, or before its claim is bound. Rendered without it, the volume would be
        // named by its PV and start a new chain; so wait for the claim, then fail.
        loop {
            match render(&self.pods.state(), &self.claims.state()) {
                Ok(inventory) => return Ok(inventory),
                Err(missing) if Instant::now() >= deadline => {
                    return Err(Error::new(
                        ErrorKind::Backend,
                        format!(
                            "the Kubernetes API lists pod {missing} running on node `{}` but                              not its bound claim; try again when the claim is bound",
                            self.node
                        ),
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for NodeWatch {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs a reflector's stream, logging what goes wrong (the backoff retries it).
async fn drive<S, K>(what: &'static str, stream: S)
where
    S: futures::Stream<Item = std::result::Result<watcher::Event<K>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut failing = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("the watch of {what} is back");
            }
            Ok(_) => {}
            Err(e) => {
                if !failing {
                    tracing::warn!("the watch of {what} failed (trying again, with backoff): {e}");
                }
                failing = true;
            }
        }
    }
}

/// The claims `pod` mounts: its `persistentVolumeClaim` volumes, and the claims generic
/// ephemeral volumes get (`<pod>-<volume>`).
fn claims_of(pod: &Pod) -> Vec<(String, String)> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| match (&v.persistent_volume_claim, &v.ephemeral) {
            (Some(c), _) => Some(c.claim_name.clone()),
            (None, Some(_)) => Some(format!("{name}-{}", v.name)),
            _ => None,
        })
        .map(|claim| (ns.clone(), claim))
        .collect()
}

/// The pods and the claims they mount, as one `List`; `Err(namespace/pod)` when a running
/// pod's claim is not there or not bound yet.
fn render(
    pods: &[Arc<Pod>],
    claims: &[Arc<PersistentVolumeClaim>],
) -> std::result::Result<String, String> {
    let bound: BTreeSet<(String, String)> = claims
        .iter()
        .filter(|c| c.spec.as_ref().is_some_and(|s| s.volume_name.is_some()))
        .map(|c| {
            (
                c.metadata.namespace.clone().unwrap_or_default(),
                c.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    let mut mounted = BTreeSet::new();
    for pod in pods {
        let running = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Running");
        for claim in claims_of(pod) {
            if running && !bound.contains(&claim) {
                return Err(format!(
                    "{}/{}",
                    claim.0,
                    pod.metadata.name.as_deref().unwrap_or_default()
                ));
            }
            mounted.insert(claim);
        }
    }
    let mut items: Vec<serde_json::Value> = pods
        .iter()
        .filter_map(|p| serde_json::to_value(p.as_ref()).ok())
        .collect();
    items.extend(
        claims
            .iter()
            .filter(|c| {
                let key = (
                    c.metadata.namespace.clone().unwrap_or_default(),
                    c.metadata.name.clone().unwrap_or_default(),
                );
                mounted.contains(&key)
            })
            .filter_map(|c| serde_json::to_value(c.as_ref()).ok()),
    );
    Ok(serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string())
}

#[cfg(test)]
mod tests;
