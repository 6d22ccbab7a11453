//! A fake Kubernetes API server on loopback, faithful to the parts of the protocol cairn and
//! `kubectl` use: discovery (`/api`, `/apis`, resource lists), `get` and `list` of pods,
//! PVCs, PVs and VolumeAttachments (all namespaces or one), field selectors
//! (`metadata.name`, `metadata.namespace`, and `spec.nodeName` for pods, with `=`, `==`,
//! `!=`), label selectors of `key=value` terms, and `watch` from a `resourceVersion`. A watch
//! sends what changed after that version, then live changes; an object that stops matching
//! its selector arrives as `DELETED` and one that starts as `ADDED`; a version older than the
//! kept history ends the watch with `410 Gone` ("too old resource version"), as the API's
//! watch cache does; `allowWatchBookmarks` gets `BOOKMARK` events; `timeoutSeconds` ends it.
//! It serves HTTPS only, as an API server does, with a certificate from a private CA that its
//! kubeconfig names (kubectl sends no bearer token over plain HTTP). Requests need
//! `Authorization: Bearer TOKEN`.
//!
//! The test drives the cluster through [`FakeKube`]'s methods (put, delete, compact the
//! history, take the API down) and reads back every request the server was sent.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// The bearer token every request must carry.
pub const TOKEN: &str = "fake-service-account-token";

/// A kind of resource the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Resource {
    /// `""` for the core group.
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
}

const RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
        short: &["ns"],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "pods",
        kind: "Pod",
        namespaced: true,
        short: &["po"],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "persistentvolumeclaims",
        kind: "PersistentVolumeClaim",
        namespaced: true,
        short: &["pvc"],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "persistentvolumes",
        kind: "PersistentVolume",
        namespaced: false,
        short: &["pv"],
    },
    Resource {
        group: "storage.k8s.io",
        version: "v1",
        plural: "volumeattachments",
        kind: "VolumeAttachment",
        namespaced: false,
        short: &[],
    },
];

impl Resource {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn of(api_version: &str, kind: &str) -> Option<&'static Resource> {
        RESOURCES
            .iter()
            .find(|r| r.kind == kind && r.api_version() == api_version)
    }
}

/// One change, as a watch sends it.
#[derive(Debug, Clone)]
struct Change {
    rv: u64,
    resource: &'static Resource,
    /// The object before (`None` for an addition).
    old: Option<Value>,
    /// The object after (`None` for a deletion).
    new: Option<Value>,
}

#[derive(Debug, Default)]
struct Inner {
    rv: u64,
    uids: u64,
    objects: BTreeMap<(&'static Resource, String, String), Value>,
    /// Changes a watch can still start from; older versions are gone (410).
    history: VecDeque<Change>,
    /// The version before the oldest change kept.
    compacted: u64,
    down: bool,
    requests: Vec<String>,
}

struct Shared {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Change>,
    /// Bumped when the API goes down: open watches end.
    outage: tokio::sync::watch::Sender<u64>,
    bookmark_every: Duration,
}

/// The fake API server (see the module documentation). Dropping it stops it.
pub struct FakeKube {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The CA and the server's certificate.
    dir: tempfile::TempDir,
    /// Declared last: the server stops after the rest is dropped.
    _serving: crate::serving::Serving,
}

impl FakeKube {
    /// A server on a free loopback port, bookmarking open watches every second.
    ///
    /// # Panics
    /// When no port can be bound.
    pub fn start() -> Self {
        Self::start_with(Duration::from_secs(1))
    }

    /// As [`FakeKube::start`], with bookmarks every `bookmark_every`.
    ///
    /// # Panics
    /// When no port can be bound.
    pub fn start_with(bookmark_every: Duration) -> Self {
        let shared = Arc::new(Shared {
            inner: Mutex::default(),
            changes: broadcast::channel(4096).0,
            outage: tokio::sync::watch::channel(0).0,
            bookmark_every,
        });
        let dir = tempfile::tempdir().expect("a directory for the certificates");
        crate::tls::private_ca(dir.path(), "kube-");
        let tls = tls_config(dir.path());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("its address");
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let serving =
            crate::serving::Serving::spawn(move |stopped| serve(listener, tls, app, stopped));
        Self {
            addr,
            shared,
            dir,
            _serving: serving,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA that signed the server's certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("kube-ca.pem")
    }

    /// Writes a kubeconfig for this server (with [`TOKEN`]) into `dir` and returns its path.
    ///
    /// # Panics
    /// When it cannot be written.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n    \
             certificate-authority: {}\nusers:\n- name: agent\n  user:\n    token: {TOKEN}\ncontexts:\n- name: fake\n  \
             context:\n    cluster: fake\n    user: agent\ncurrent-context: fake\n",
            self.url(),
            self.ca().display()
        );
        std::fs::write(&path, text).expect("kubeconfig written");
        path
    }

    /// Creates or replaces an object (its `apiVersion`, `kind`, `metadata.name` and, for a
    /// namespaced kind, `metadata.namespace` say which). It gets a `uid` unless it has one,
    /// and the next `resourceVersion`; its namespace is created when there is none. Returns
    /// the object as stored.
    ///
    /// # Panics
    /// For a kind the fake does not serve, or an object without a name.
    pub fn put(&self, mut object: Value) -> Value {
        let resource = resource_of(&object);
        let (ns, name) = key_of(resource, &object);
        if resource.namespaced {
            let namespaces = Resource::of("v1", "Namespace").expect("served");
            let known = self
                .shared
                .inner
                .lock()
                .expect("fake lock")
                .objects
                .contains_key(&(namespaces, String::new(), ns.clone()));
            if !known {
                self.put(json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns}, "status": {"phase": "Active"}}));
            }
        }
        let mut inner = self.shared.inner.lock().expect("fake lock");
        inner.rv += 1;
        let rv = inner.rv;
        let key = (resource, ns, name);
        let old = inner.objects.get(&key).cloned();
        let meta = object["metadata"].as_object_mut().expect("metadata");
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        if resource.namespaced {
            meta.insert("namespace".into(), json!(key.1));
        }
        if !meta.contains_key("uid") {
            let uid = match old.as_ref().and_then(|o| o["metadata"]["uid"].as_str()) {
                Some(uid) => uid.to_owned(),
                None => {
                    inner.uids += 1;
                    format!("00000000-0000-4000-8000-{:012x}", inner.uids)
                }
            };
            meta.insert("uid".into(), json!(uid));
        }
        meta.entry("creationTimestamp")
            .or_insert(json!("2026-12-01T00:00:00Z"));
        inner.objects.insert(key, object.clone());
        self.record(
            &mut inner,
            Change {
                rv,
                resource,
                old,
                new: Some(object.clone()),
            },
        );
        object
    }

    /// Deletes an object by its `apiVersion`, `kind`, namespace (`""` for cluster-scoped)
    /// and name; `false` when there is none.
    ///
    /// # Panics
    /// For a kind the fake does not serve.
    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> bool {
        let resource = Resource::of(api_version, kind).expect("a kind the fake serves");
        let mut inner = self.shared.inner.lock().expect("fake lock");
        let key = (resource, namespace.to_owned(), name.to_owned());
        let Some(mut old) = inner.objects.remove(&key) else {
            return false;
        };
        inner.rv += 1;
        let rv = inner.rv;
        old["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.record(
            &mut inner,
            Change {
                rv,
                resource,
                old: Some(old),
                new: None,
            },
        );
        true
    }

    /// Forgets the history: a watch from any version before now is refused with `410 Gone`,
    /// and open watches end with it, as after an etcd compaction.
    pub fn compact(&self) {
        let mut inner = self.shared.inner.lock().expect("fake lock");
        inner.history.clear();
        inner.compacted = inner.rv;
        drop(inner);
        self.shared.outage.send_modify(|n| *n += 1);
    }

    /// Takes the API down (every request answers 503 and open watches end) or up again.
    pub fn set_down(&self, down: bool) {
        let mut inner = self.shared.inner.lock().expect("fake lock");
        inner.down = down;
        if down {
            // Under the lock: a watch starting now either sees `down` or this outage.
            self.shared.outage.send_modify(|n| *n += 1);
        }
    }

    /// Every request so far, as `METHOD PATH?QUERY`.
    pub fn requests(&self) -> Vec<String> {
        self.shared
            .inner
            .lock()
            .expect("fake lock")
            .requests
            .clone()
    }

    fn record(&self, inner: &mut Inner, change: Change) {
        inner.history.push_back(change.clone());
        while inner.history.len() > 10_000 {
            let gone = inner.history.pop_front().expect("not empty");
            inner.compacted = gone.rv;
        }
        let _ = self.shared.changes.send(change);
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        // Open watches end, so that the server can stop.
        self.shared.outage.send_modify(|n| *n += 1);
    }
}

fn tls_config(dir: &Path) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join("kube-srv.pem"))
            .expect("the certificate")
            .collect::<Result<_, _>>()
            .expect("the certificate");
    let key = PrivateKeyDer::from_pem_file(dir.join("kube-srv.key")).expect("the key");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("the certificate and key fit");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Accepts TLS connections and serves `app` on each until `stopped`.
async fn serve(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(_) => continue,
            },
            _ = stopped.wait_for(|s| *s) => return,
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
        });
    }
}

fn resource_of(object: &Value) -> &'static Resource {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    Resource::of(api_version, kind)
        .unwrap_or_else(|| panic!("the fake does not serve {api_version} {kind}"))
}

fn key_of(resource: &Resource, object: &Value) -> (String, String) {
    let name = object["metadata"]["name"]
        .as_str()
        .expect("an object has a name")
        .to_owned();
    let ns = if resource.namespaced {
        object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned()
    } else {
        String::new()
    };
    (ns, name)
}

/// An API `Status` answer.
fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = status_object(code, reason, message);
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn status_object(code: StatusCode, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    })
}

fn unavailable() -> Response {
    status(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        "the fake API is down",
    )
}

fn json_answer(value: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// A request's path, split into what it names.
enum Target {
    Version,
    Core,
    Groups,
    GroupVersion(&'static str, &'static str),
    Collection {
        resource: &'static Resource,
        namespace: Option<String>,
    },
    Object {
        resource: &'static Resource,
        namespace: String,
        name: String,
    },
}

fn route(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["version"] => return Some(Target::Version),
        ["api"] => return Some(Target::Core),
        ["apis"] => return Some(Target::Groups),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let find = |plural: &str| {
        RESOURCES
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    };
    match rest {
        [] => RESOURCES
            .iter()
            .find(|r| r.group == group && r.version == version)
            .map(|r| Target::GroupVersion(r.group, r.version)),
        ["namespaces", ns, plural] => find(plural).map(|r| Target::Collection {
            resource: r,
            namespace: Some((*ns).to_owned()),
        }),
        ["namespaces", ns, plural, name] => find(plural).map(|r| Target::Object {
            resource: r,
            namespace: (*ns).to_owned(),
            name: (*name).to_owned(),
        }),
        [plural] => find(plural).map(|r| Target::Collection {
            resource: r,
            namespace: None,
        }),
        [plural, name] => find(plural)
            .filter(|r| !r.namespaced)
            .map(|r| Target::Object {
                resource: r,
                namespace: String::new(),
                name: (*name).to_owned(),
            }),
        _ => None,
    }
}

fn resource_list(group: &str, version: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            json!({
                "name": r.plural, "singularName": r.kind.to_ascii_lowercase(),
                "namespaced": r.namespaced, "kind": r.kind,
                "verbs": ["get", "list", "watch"], "shortNames": r.short,
            })
        })
        .collect();
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

fn groups() -> Value {
    let mut by_group: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        let versions = by_group.entry(r.group).or_default();
        if !versions.contains(&r.version) {
            versions.push(r.version);
        }
    }
    let groups: Vec<Value> = by_group
        .iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// One term of a field or label selector.
#[derive(Debug)]
struct Term {
    key: String,
    value: String,
    equal: bool,
}

fn parse_selector(text: &str) -> Result<Vec<Term>, String> {
    let mut terms = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value, equal) = if let Some((k, v)) = part.split_once("!=") {
            (k, v, false)
        } else if let Some((k, v)) = part.split_once("==") {
            (k, v, true)
        } else if let Some((k, v)) = part.split_once('=') {
            (k, v, true)
        } else {
            return Err(format!("invalid selector: '{text}'"));
        };
        terms.push(Term {
            key: key.trim().to_owned(),
            value: value.trim().to_owned(),
            equal,
        });
    }
    Ok(terms)
}

/// What a list or watch selects.
#[derive(Debug)]
struct Selection {
    resource: &'static Resource,
    namespace: Option<String>,
    fields: Vec<Term>,
    labels: Vec<Term>,
}

impl Selection {
    fn new(
        resource: &'static Resource,
        namespace: Option<String>,
        query: &BTreeMap<String, String>,
    ) -> Result<Self, String> {
        let fields = parse_selector(query.get("fieldSelector").map_or("", String::as_str))?;
        for t in &fields {
            let known = matches!(t.key.as_str(), "metadata.name" | "metadata.namespace")
                || (resource.kind == "Pod" && t.key == "spec.nodeName");
            if !known {
                return Err(format!("field label not supported: {}", t.key));
            }
        }
        let labels = parse_selector(query.get("labelSelector").map_or("", String::as_str))?;
        Ok(Self {
            resource,
            namespace,
            fields,
            labels,
        })
    }

    fn matches(&self, object: &Value) -> bool {
        let meta = &object["metadata"];
        if let Some(ns) = &self.namespace
            && meta["namespace"].as_str() != Some(ns)
        {
            return false;
        }
        let field = |key: &str| -> String {
            let v = match key {
                "metadata.name" => &meta["name"],
                "metadata.namespace" => &meta["namespace"],
                _ => &object["spec"]["nodeName"],
            };
            v.as_str().unwrap_or_default().to_owned()
        };
        let fields_ok = self
            .fields
            .iter()
            .all(|t| (field(&t.key) == t.value) == t.equal);
        let labels_ok = self
            .labels
            .iter()
            .all(|t| (meta["labels"][&t.key].as_str() == Some(t.value.as_str())) == t.equal);
        fields_ok && labels_ok
    }

    /// The watch event a change is for this selection, if any.
    fn event(&self, change: &Change) -> Option<Value> {
        if change.resource != self.resource {
            return None;
        }
        let was = change.old.as_ref().is_some_and(|o| self.matches(o));
        let is = change.new.as_ref().is_some_and(|o| self.matches(o));
        let (kind, object) = match (was, is, &change.new) {
            (false, true, Some(new)) => ("ADDED", new.clone()),
            (true, true, Some(new)) => ("MODIFIED", new.clone()),
            (true, false, _) => {
                // Gone, or no longer selected: the last state the watcher saw (the object
                // before the change), at this version, as the API's watch cache sends it.
                let mut last = change.old.clone()?;
                last["metadata"]["resourceVersion"] = json!(change.rv.to_string());
                ("DELETED", last)
            }
            _ => return None,
        };
        Some(json!({"type": kind, "object": with_kind(self.resource, object)}))
    }
}

fn with_kind(resource: &Resource, mut object: Value) -> Value {
    object["apiVersion"] = json!(resource.api_version());
    object["kind"] = json!(resource.kind);
    object
}

fn query_of(req: &Request) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .map(|q| {
            url_pairs(q)
                .into_iter()
                .collect::<BTreeMap<String, String>>()
        })
        .unwrap_or_default()
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let line = format!(
        "{} {}",
        req.method(),
        req.uri()
            .path_and_query()
            .map_or(req.uri().path(), |p| p.as_str())
    );
    let down = {
        let mut inner = shared.inner.lock().expect("fake lock");
        inner.requests.push(line);
        inner.down
    };
    if down {
        return unavailable();
    }
    if !authorized(req.headers()) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    if req.method() != Method::GET {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the fake serves get, list and watch",
        );
    }
    let query = query_of(&req);
    match route(req.uri().path()) {
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        ),
        Some(Target::Version) => json_answer(&json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "platform": "linux/amd64"
        })),
        Some(Target::Core) => json_answer(&json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]
        })),
        Some(Target::Groups) => json_answer(&groups()),
        Some(Target::GroupVersion(g, v)) => json_answer(&resource_list(g, v)),
        Some(Target::Object {
            resource,
            namespace,
            name,
        }) => {
            let inner = shared.inner.lock().expect("fake lock");
            match inner.objects.get(&(resource, namespace, name.clone())) {
                Some(o) => json_answer(&with_kind(resource, o.clone())),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("{} \"{name}\" not found", resource.plural),
                ),
            }
        }
        Some(Target::Collection {
            resource,
            namespace,
        }) => {
            let selection = match Selection::new(resource, namespace, &query) {
                Ok(s) => s,
                Err(m) => return status(StatusCode::BAD_REQUEST, "BadRequest", &m),
            };
            if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) {
                watch(&shared, selection, &query)
            } else {
                list(&shared, &selection)
            }
        }
    }
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"))
}

fn list(shared: &Shared, selection: &Selection) -> Response {
    let inner = shared.inner.lock().expect("fake lock");
    if inner.down {
        return unavailable();
    }
    let items: Vec<Value> = inner
        .objects
        .iter()
        .filter(|((r, _, _), o)| *r == selection.resource && selection.matches(o))
        .map(|(_, o)| {
            // A typed list's items carry no apiVersion or kind.
            let mut item = o.clone();
            if let Some(m) = item.as_object_mut() {
                m.remove("apiVersion");
                m.remove("kind");
            }
            item
        })
        .collect();
    json_answer(&json!({
        "kind": format!("{}List", selection.resource.kind),
        "apiVersion": selection.resource.api_version(),
        "metadata": {"resourceVersion": inner.rv.to_string()},
        "items": items,
    }))
}

fn watch(shared: &Arc<Shared>, selection: Selection, query: &BTreeMap<String, String>) -> Response {
    let from: u64 = match query.get("resourceVersion").map(String::as_str) {
        None | Some("") => 0,
        Some(v) => match v.parse() {
            Ok(n) => n,
            Err(_) => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("invalid resource version: {v}"),
                );
            }
        },
    };
    if query.contains_key("sendInitialEvents") {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the fake does not serve streaming lists (sendInitialEvents)",
        );
    }
    let bookmarks = query.get("allowWatchBookmarks").map(String::as_str) == Some("true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    // The backlog and the subscription under one lock: nothing falls between them.
    let (backlog, mut live, mut outage, current) = {
        let inner = shared.inner.lock().expect("fake lock");
        // Under the lock that takes the backlog: an outage begun since the request came in
        // is not missed.
        if inner.down {
            return unavailable();
        }
        let live = shared.changes.subscribe();
        let outage = shared.outage.subscribe();
        if from != 0 && from < inner.compacted {
            let gone = status_object(
                StatusCode::GONE,
                "Expired",
                &format!("too old resource version: {from} ({})", inner.compacted),
            );
            let event = json!({"type": "ERROR", "object": gone});
            return watch_body(futures_once(event));
        }
        let backlog: Vec<Value> = if from == 0 {
            // Version 0: every object that exists, as additions.
            inner
                .objects
                .iter()
                .filter(|((r, _, _), o)| *r == selection.resource && selection.matches(o))
                .map(|(_, o)| {
                    json!({"type": "ADDED", "object": with_kind(selection.resource, o.clone())})
                })
                .collect()
        } else {
            inner
                .history
                .iter()
                .filter(|c| c.rv > from)
                .filter_map(|c| selection.event(c))
                .collect()
        };
        (backlog, live, outage, inner.rv)
    };
    let every = shared.bookmark_every;
    let resource = selection.resource;
    let shared = shared.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(async move {
        let send = |v: Value| {
            let tx = tx.clone();
            async move { tx.send(Ok(Bytes::from(format!("{v}\n")))).await.is_ok() }
        };
        for event in backlog {
            if !send(event).await {
                return;
            }
        }
        let mut last = current;
        let end = tokio::time::sleep(timeout);
        tokio::pin!(end);
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tokio::select! {
                () = &mut end => return,
                _ = outage.changed() => return,
                _ = tick.tick(), if bookmarks => {
                    if shared.inner.lock().expect("fake lock").down { return; }
                    let mark = json!({"type": "BOOKMARK", "object": {
                        "apiVersion": resource.api_version(), "kind": resource.kind,
                        "metadata": {"resourceVersion": last.to_string()}}});
                    if !send(mark).await { return; }
                }
                change = live.recv() => {
                    let Ok(change) = change else { return };
                    // A server that is down sends nothing more.
                    if shared.inner.lock().expect("fake lock").down { return; }
                    if change.rv <= last { continue; }
                    last = change.rv;
                    if let Some(event) = selection.event(&change)
                        && !send(event).await
                    {
                        return;
                    }
                }
            }
        }
    });
    watch_body(tokio_stream(rx))
}

fn watch_body(
    stream: impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("a response")
}

fn futures_once(
    event: Value,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures::stream::once(async move { Ok(Bytes::from(format!("{event}\n"))) })
}

fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, Infallible>>,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
