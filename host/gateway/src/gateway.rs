//! One request, from its raw path to its answer: authenticate, parse, authorize, serve.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use base64::Engine as _;
use cairn_repo::{Backend, ErrorKind, FileType};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use jiff::Timestamp;
use tokio::sync::Semaphore;

use crate::audit::{Audit, Entry};
use crate::creds::{Credential, Credentials, Role};
use crate::locks::LockOwners;
use crate::metrics::Metrics;
use crate::path::{Object, RepoPath, Target, parse};
use crate::upload::{NamedBy, Upload, receive};

/// restic's media type for v2 listings.
const V2: &str = "application/vnd.x.restic.rest.v2";
/// How much is read from the store at a time for a streamed answer.
const READ_CHUNK: u64 = 4 << 20;

/// Opens the store of one repository below the gateway's storage location.
pub trait Storage: Send + Sync + 'static {
    /// The backend of `repo`.
    ///
    /// # Errors
    /// When it cannot be opened.
    fn open(&self, repo: &RepoPath) -> cairn_repo::Result<Arc<dyn Backend>>;
}

impl<F> Storage for F
where
    F: Fn(&RepoPath) -> cairn_repo::Result<Arc<dyn Backend>> + Send + Sync + 'static,
{
    fn open(&self, repo: &RepoPath) -> cairn_repo::Result<Arc<dyn Backend>> {
        self(repo)
    }
}

/// Limits on what one request may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest object accepted (413 above).
    pub max_object: u64,
    /// The longest pause between two pieces of a request body.
    pub idle: Duration,
    /// Requests one credential may have in progress at once; more wait.
    pub per_credential: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_object: 1 << 30,
            idle: Duration::from_secs(60),
            per_credential: 16,
        }
    }
}

/// The credentials, re-read when their file changes (at most once a second) or on SIGHUP.
struct Creds {
    current: Credentials,
    stamp: Option<(SystemTime, u64)>,
    checked: Instant,
}

/// The gateway: its storage, credentials, audit log, metrics and per-repository stores.
pub struct Gateway {
    storage: Box<dyn Storage>,
    state: PathBuf,
    creds: RwLock<Creds>,
    pub(crate) audit: Audit,
    /// Its metrics.
    pub metrics: Metrics,
    pub(crate) limits: Limits,
    backends: Mutex<HashMap<RepoPath, Arc<dyn Backend>>>,
    locks: LockOwners,
    permits: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Bodies held in memory at once, for stores without a streaming writer.
    pub(crate) in_memory: Semaphore,
}

fn stamp(state: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(state.join(crate::creds::CREDENTIALS_FILE)).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The outcome of a request before it becomes a response: for the metrics and the audit.
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    /// A fixed label for metrics.
    pub(crate) label: &'static str,
    /// What the client and the audit log are told.
    pub(crate) message: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, label: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            label,
            message: message.into(),
        }
    }
}

fn store_error(e: &cairn_repo::Error) -> Refusal {
    match e.kind() {
        ErrorKind::NotFound => Refusal::new(StatusCode::NOT_FOUND, "not-found", "not found"),
        ErrorKind::AlreadyExists => Refusal::new(StatusCode::FORBIDDEN, "exists", "exists"),
        _ => {
            tracing::warn!("storage: {e}");
            Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage",
                "the storage failed; see the gateway's log",
            )
        }
    }
}

impl Gateway {
    /// A gateway over `storage`, keeping its credentials, lock owners and audit log in
    /// `state`.
    ///
    /// # Errors
    /// When the state directory cannot be read or written.
    pub fn new(
        storage: Box<dyn Storage>,
        state: PathBuf,
        limits: Limits,
    ) -> cairn_repo::Result<Arc<Gateway>> {
        std::fs::create_dir_all(&state)
            .map_err(|e| cairn_repo::Error::io(format!("cannot create {}", state.display()), e))?;
        let current = Credentials::load(&state)?;
        Ok(Arc::new(Gateway {
            storage,
            creds: RwLock::new(Creds {
                current,
                stamp: stamp(&state),
                checked: Instant::now(),
            }),
            audit: Audit::open(&state)?,
            metrics: Metrics::default(),
            limits,
            backends: Mutex::new(HashMap::new()),
            locks: LockOwners::open(&state)?,
            permits: Mutex::new(HashMap::new()),
            in_memory: Semaphore::new(crate::upload::IN_MEMORY_BODIES),
            state,
        }))
    }

    /// Re-reads the credentials file (SIGHUP). A bad file keeps the old credentials.
    pub fn reload(&self) {
        match Credentials::load(&self.state) {
            Ok(c) => {
                let mut creds = self.creds.write().unwrap_or_else(|e| e.into_inner());
                creds.current = c;
                creds.stamp = stamp(&self.state);
                creds.checked = Instant::now();
                tracing::info!("credentials reloaded");
            }
            Err(e) => tracing::error!("keeping the old credentials: {e}"),
        }
    }

    /// Re-reads the credentials when their file changed; looks at most once a second
    /// unless `now`.
    fn reload_if_changed(&self, now: bool) {
        let due = now || {
            let creds = self.creds.read().unwrap_or_else(|e| e.into_inner());
            creds.checked.elapsed() >= Duration::from_secs(1)
        };
        if !due {
            return;
        }
        let seen = stamp(&self.state);
        let changed = {
            let mut creds = self.creds.write().unwrap_or_else(|e| e.into_inner());
            creds.checked = Instant::now();
            creds.stamp != seen
        };
        if changed {
            self.reload();
        }
    }

    /// The credential of a request's `Authorization` header.
    fn authenticate(&self, headers: &HeaderMap) -> Result<Credential, Refusal> {
        let unauthorized =
            |label, message: &str| Refusal::new(StatusCode::UNAUTHORIZED, label, message);
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized("no-credentials", "credentials required"));
        };
        let decoded = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok());
        let Some((name, token)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
            return Err(unauthorized(
                "malformed-credentials",
                "malformed credentials",
            ));
        };
        self.reload_if_changed(false);
        let found = self.check(name, token).or_else(|| {
            // A credential made a moment ago: look at the file now.
            self.reload_if_changed(true);
            self.check(name, token)
        });
        let Some(c) = found else {
            return Err(unauthorized("wrong-credentials", "wrong credentials"));
        };
        if c.expired(Timestamp::now()) {
            return Err(unauthorized("expired", "this grant has expired"));
        }
        Ok(c)
    }

    fn check(&self, name: &str, token: &str) -> Option<Credential> {
        let creds = self.creds.read().unwrap_or_else(|e| e.into_inner());
        creds.current.check(name, token).cloned()
    }

    /// The store of `repo`, opened once. Opening may block (a storage plugin starts its
    /// instances), so it runs beside the request threads.
    async fn backend(self: &Arc<Self>, repo: &RepoPath) -> Result<Arc<dyn Backend>, Refusal> {
        let known = self
            .backends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(repo)
            .cloned();
        if let Some(b) = known {
            return Ok(b);
        }
        let gw = self.clone();
        let r = repo.clone();
        let opened = blocking(move || gw.storage.open(&r)).await?;
        // Of two requests that opened it at once, the first one kept serves both.
        let mut all = self.backends.lock().unwrap_or_else(|e| e.into_inner());
        Ok(all.entry(repo.clone()).or_insert(opened).clone())
    }

    fn permits(&self, name: &str) -> Arc<Semaphore> {
        self.permits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.limits.per_credential)))
            .clone()
    }
}

/// Whether `cred` may do `method` on `target`; the refusal otherwise.
fn authorize(
    gw: &Gateway,
    cred: &Credential,
    method: &Method,
    target: &Target,
) -> Result<(), Refusal> {
    let forbidden =
        |label, message: String| Err(Refusal::new(StatusCode::FORBIDDEN, label, message));
    if !cred.covers(&target.repo) {
        return forbidden(
            "other-repository",
            format!(
                "credential `{}` may not use repository {}",
                cred.name, target.repo
            ),
        );
    }
    let read = *method == Method::GET || *method == Method::HEAD;
    match cred.role {
        Role::Node => Ok(()),
        Role::Restore if read && target.object != Object::Root => Ok(()),
        Role::Restore => forbidden("read-only", "a restore grant may only read".into()),
        Role::App if read || *method == Method::POST => Ok(()),
        Role::App if *method == Method::DELETE => match &target.object {
            Object::File(FileType::Lock, name) => {
                if gw.locks.owner(&target.repo, name).as_deref() == Some(cred.name.as_str()) {
                    Ok(())
                } else {
                    forbidden(
                        "not-own-lock",
                        "an app may delete only the locks it created".into(),
                    )
                }
            }
            _ => forbidden(
                "delete",
                "an app may delete only the locks it created".into(),
            ),
        },
        Role::App => forbidden("method", format!("{method} is not allowed")),
    }
}

/// The request handler (axum's fallback: every path comes here).
pub(crate) async fn handle(State(gw): State<Arc<Gateway>>, req: Request) -> Response<Body> {
    let start = Instant::now();
    let method = req.method().clone();
    let raw = req.uri().path().to_owned();
    if method == Method::GET && raw == "/healthz" {
        return text(StatusCode::OK, "ok\n");
    }
    if method == Method::GET && raw == "/metrics" {
        let mut r = text(StatusCode::OK, &gw.metrics.render());
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        return r;
    }
    let (cred, outcome) = match gw.authenticate(req.headers()) {
        Err(refusal) => (None, Err(refusal)),
        Ok(cred) => {
            let outcome = serve(&gw, &cred, req).await;
            (Some(cred), outcome)
        }
    };
    let (name, role) = cred
        .as_ref()
        .map_or(("-", "-"), |c| (c.name.as_str(), c.role.as_str()));
    let audit = |status: StatusCode, reason: &str| {
        gw.audit.record(Entry {
            time: Timestamp::now().to_string(),
            credential: name,
            role,
            method: method.as_str(),
            path: &raw,
            status: status.as_u16(),
            reason,
        });
    };
    let response = match outcome {
        Ok((response, deleted)) => {
            if deleted {
                audit(response.status(), "deleted");
            }
            response
        }
        Err(refusal) => {
            let audited = refusal.status == StatusCode::UNAUTHORIZED
                || refusal.status == StatusCode::FORBIDDEN
                || refusal.status == StatusCode::BAD_REQUEST
                || refusal.status == StatusCode::PAYLOAD_TOO_LARGE
                || refusal.status == StatusCode::REQUEST_TIMEOUT;
            if audited {
                gw.metrics.denial(refusal.label);
                audit(refusal.status, &refusal.message);
            }
            let mut r = text(refusal.status, &format!("{}\n", refusal.message));
            if refusal.status == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"cairn gateway\""),
                );
            }
            r
        }
    };
    gw.metrics.request(
        method.as_str(),
        response.status().as_u16(),
        role_label(cred.as_ref()),
        start.elapsed(),
    );
    response
}

fn role_label(cred: Option<&Credential>) -> &'static str {
    cred.map_or("none", |c| c.role.as_str())
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(body.to_owned()));
    *r.status_mut() = status;
    r
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> cairn_repo::Result<R> + Send + 'static,
) -> Result<R, Refusal> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| store_error(&e)),
        Err(_) => Err(Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )),
    }
}

/// Serves an authenticated request: the response, and whether it deleted something.
async fn serve(
    gw: &Arc<Gateway>,
    cred: &Credential,
    req: Request,
) -> Result<(Response<Body>, bool), Refusal> {
    let method = req.method().clone();
    let target = parse(req.uri().path()).map_err(|why| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad-path",
            format!("bad path: {why}"),
        )
    })?;
    authorize(gw, cred, &method, &target)?;
    let permits = gw.permits(&cred.name);
    let _permit = permits
        .acquire_owned()
        .await
        .map_err(|_| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "shutdown", "shutting down"))?;
    let backend = gw.backend(&target.repo).await?;
    let repo = target.repo.clone();
    match (&method, target.object.clone()) {
        (&Method::POST, Object::Root) => {
            let create = req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "create=true"));
            if !create {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "bad-query",
                    "POST / needs ?create=true",
                ));
            }
            let b = backend.clone();
            let has_config = blocking(move || b.list(FileType::Config)).await?;
            if !has_config.is_empty() {
                return Err(Refusal::new(
                    StatusCode::FORBIDDEN,
                    "exists",
                    "the repository exists",
                ));
            }
            let b = backend.clone();
            match blocking(move || b.create()).await {
                Ok(()) => {}
                // Made before (its directories are there, its config is not).
                Err(r) if r.status == StatusCode::INTERNAL_SERVER_ERROR => return Err(r),
                Err(_) => {}
            }
            Ok((empty(StatusCode::OK), false))
        }
        (&Method::GET, Object::List(tpe)) => {
            let v2 = req
                .headers()
                .get_all(header::ACCEPT)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| v.contains(V2)));
            let b = backend.clone();
            let all = blocking(move || b.list(tpe)).await?;
            let body = if v2 {
                serde_json::to_vec(
                    &all.iter()
                        .map(|(name, size)| serde_json::json!({"name": name, "size": size}))
                        .collect::<Vec<_>>(),
                )
            } else {
                serde_json::to_vec(&all.iter().map(|(n, _)| n).collect::<Vec<_>>())
            }
            .unwrap_or_default();
            gw.metrics
                .bytes_out
                .fetch_add(body.len() as u64, std::sync::atomic::Ordering::Relaxed);
            let mut r = Response::new(Body::from(body));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(if v2 { V2 } else { "application/json" }),
            );
            Ok((r, false))
        }
        (&Method::HEAD, Object::File(tpe, name)) => {
            let b = backend.clone();
            let size = blocking(move || b.size(tpe, &name)).await?;
            let mut r = empty(StatusCode::OK);
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            Ok((r, false))
        }
        (&Method::GET, Object::File(tpe, name)) => {
            let range = req
                .headers()
                .get(header::RANGE)
                .map(|v| parse_range(v.to_str().unwrap_or("")))
                .transpose()?;
            read(gw, backend, tpe, name, range)
                .await
                .map(|r| (r, false))
        }
        (&Method::POST, Object::File(tpe, name)) => {
            let upload = Upload {
                backend,
                tpe,
                name: name.clone(),
                hash: NamedBy::from_header(
                    req.headers().get(cairn_repo::backend::NAME_HASH_HEADER),
                ),
            };
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            receive(gw, upload, req.into_body(), declared).await?;
            if tpe == FileType::Lock && cred.role != Role::Node {
                gw.locks
                    .created(&repo, &name, &cred.name)
                    .map_err(|e| store_error(&e))?;
            }
            Ok((empty(StatusCode::OK), false))
        }
        (&Method::DELETE, Object::File(tpe, name)) => {
            let b = backend.clone();
            let n = name.clone();
            blocking(move || b.remove(tpe, &n)).await?;
            if tpe == FileType::Lock {
                gw.locks.removed(&repo, &name);
            }
            Ok((empty(StatusCode::OK), true))
        }
        _ => Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method",
            format!("{method} is not allowed here"),
        )),
    }
}

/// A `Range: bytes=START-[END]` header: offset and, when given, the inclusive end.
fn parse_range(value: &str) -> Result<(u64, Option<u64>), Refusal> {
    let bad = || Refusal::new(StatusCode::RANGE_NOT_SATISFIABLE, "bad-range", "bad range");
    let spec = value.strip_prefix("bytes=").ok_or_else(bad)?;
    let (start, end) = spec.split_once('-').ok_or_else(bad)?;
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let end = match end.trim() {
        "" => None,
        e => Some(e.parse::<u64>().map_err(|_| bad())?),
    };
    if end.is_some_and(|e| e < start) {
        return Err(bad());
    }
    Ok((start, end))
}

/// Streams `name` (or a range of it) from the store, a few MiB at a time.
async fn read(
    gw: &Arc<Gateway>,
    backend: Arc<dyn Backend>,
    tpe: FileType,
    name: String,
    range: Option<(u64, Option<u64>)>,
) -> Result<Response<Body>, Refusal> {
    let b = backend.clone();
    let n = name.clone();
    let size = blocking(move || b.size(tpe, &n)).await?;
    let (start, end) = match range {
        None => (0, size),
        Some((start, end)) => {
            if start >= size && size > 0 {
                return Err(Refusal::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "bad-range",
                    "range beyond the end",
                ));
            }
            (start, end.map_or(size, |e| (e + 1).min(size)))
        }
    };
    let length = end.saturating_sub(start);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(2);
    let metrics_gw = gw.clone();
    tokio::task::spawn_blocking(move || {
        let mut at = start;
        while at < end {
            let n = READ_CHUNK.min(end - at);
            let piece = backend
                .read_range(tpe, &name, at, n)
                .map_err(|e| std::io::Error::other(e.to_string()));
            let failed = piece.is_err();
            if let Ok(p) = &piece {
                metrics_gw
                    .metrics
                    .bytes_out
                    .fetch_add(p.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            if tx.blocking_send(piece.map(bytes::Bytes::from)).is_err() || failed {
                return;
            }
            at += n;
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if range.is_some() {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) =
            HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end.saturating_sub(1)))
        {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(r)
}
