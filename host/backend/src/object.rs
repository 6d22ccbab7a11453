//! Repositories in object stores (S3 and S3-compatible, Azure Blob, Google Cloud Storage,
//! WebDAV over HTTP) through the
//! `object_store` crate.
//!
//! The engine's backend trait is synchronous; this backend owns a small tokio runtime and blocks
//! on it (callers are plain threads, never tokio workers). Layout is the local one under the
//! URL's prefix: `config`, `keys/`, `snapshots/`, `index/`, `locks/`, `data/xx/`.
//!
//! Create-only writes use the store's conditional put (`If-None-Match: *`) where it has one; at
//! `init` a probe writes one object twice and finds out whether the store really refuses the
//! second write. Where it does not (e.g. `rclone serve s3`, WebDAV), every write is checked
//! before it is made — which is not atomic against racing writers, and `init` says so.
//! Transient errors (5xx, timeouts, resets) are retried with exponential backoff and jitter
//! (object_store's retry layer, bounded in count and time); others fail at once, naming the
//! bucket and object.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::multipart::{CreateOnlyConnector, PackWriter};
use crate::what;
use cairn_repo::backend::FileWriter;
use cairn_repo::{Backend, Error, ErrorKind, FileType, Guarantees, Result};
use futures::TryStreamExt;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig,
};

/// How to reach a remote store. Its `Debug` never shows the secret.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct RemoteOptions {
    /// Access key and secret (default: from the environment).
    pub keys: Option<(String, String)>,
    /// PEM certificates to trust besides the system's (a private CA).
    pub ca_pem: Option<Vec<u8>>,
    /// Concurrent uploads (0: 4).
    pub connections: usize,
    /// User name and password for a `rest:` server whose URL has none.
    pub rest_credentials: Option<crate::RestCredentials>,
}

impl std::fmt::Debug for RemoteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteOptions")
            .field("access_key", &self.keys.as_ref().map(|(k, _)| k))
            .field("ca_pem", &self.ca_pem.is_some())
            .field("connections", &self.connections)
            .field("rest_credentials", &self.rest_credentials)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod debug_tests {
    #[test]
    fn debug_output_hides_the_secret() {
        let o = super::RemoteOptions::default().keys("AKID", "very-secret");
        let shown = format!("{o:?}");
        assert!(
            shown.contains("AKID") && !shown.contains("very-secret"),
            "{shown}"
        );
    }
}

impl RemoteOptions {
    /// With these keys.
    #[must_use]
    pub fn keys(mut self, key: &str, secret: &str) -> Self {
        self.keys = Some((key.to_owned(), secret.to_owned()));
        self
    }
    /// Trusting these PEM certificates.
    #[must_use]
    pub fn ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.ca_pem = Some(pem);
        self
    }
    /// With this many uploads at once.
    #[must_use]
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n;
        self
    }
    /// With these credentials for a `rest:` server whose URL has none.
    #[must_use]
    pub fn rest_credentials(mut self, username: &str, password: &str) -> Self {
        self.rest_credentials = Some(crate::RestCredentials::new(username, password));
        self
    }
}

/// The connection to a store, shared by the backend and its pack writers.
pub(crate) struct Remote {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The same store's multipart uploads, where it has them (S3).
    pub(crate) multipart: Option<Arc<dyn MultipartStore>>,
    pub(crate) rt: tokio::runtime::Runtime,
    /// Where this is, for messages (never with credentials).
    pub(crate) location: String,
    /// Memory of packs already uploaded, for the next ones.
    pub(crate) spools: cairn_repo::buffers::BufferPool,
}

/// Whether the store refuses a second create of one name, by either way of writing.
#[derive(Debug, Clone, Copy)]
struct Atomic {
    put: bool,
    multipart: bool,
}

/// A repository under a prefix of an object store.
pub struct ObjectBackend {
    remote: Arc<Remote>,
    prefix: Path,
    /// Probed at init, and by every process before its first write (a store that ignores
    /// `If-None-Match` would otherwise replace objects silently).
    atomic: OnceLock<Atomic>,
    /// Whether the store has a conditional put at all.
    conditional: bool,
    /// Concurrent uploads.
    connections: usize,
}

impl std::fmt::Debug for ObjectBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectBackend({})", self.remote.location)
    }
}

/// Concurrent uploads by default: each holds a pack (16 MiB) in memory.
const DEFAULT_CONNECTIONS: usize = 4;

/// `SCHEME` `CONTAINER/PREFIX` split into its container (or bucket) and prefix.
fn container_and_prefix<'a>(
    spec: &'a str,
    scheme: &str,
    store: &str,
    container: &str,
) -> Result<(&'a str, &'a str)> {
    let usage = format!("use {scheme}{}/PREFIX", container.to_uppercase());
    let rest = spec
        .strip_prefix(scheme)
        .ok_or_else(|| Error::invalid(format!("`{spec}` is not a {store} location; {usage}")))?;
    let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if name.is_empty() {
        return Err(Error::invalid(format!(
            "`{spec}` names no {container}; {usage}"
        )));
    }
    Ok((name, prefix))
}

fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 4,
        retry_timeout: Duration::from_secs(60),
    }
}

fn client(opts: &RemoteOptions) -> Result<ClientOptions> {
    let mut c = ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(10))
        // Whole-request timeout, upload included: generous enough for a 512 MiB pack at ~1 MB/s.
        .with_timeout(Duration::from_secs(600));
    if let Some(pem) = &opts.ca_pem {
        let certs = object_store::Certificate::from_pem_bundle(pem).map_err(|e| {
            Error::invalid(format!(
                "the CA certificate file holds no usable PEM certificate: {e}"
            ))
        })?;
        if certs.is_empty() {
            return Err(Error::invalid(
                "the CA certificate file holds no PEM certificate",
            ));
        }
        for cert in certs {
            c = c.with_root_certificate(cert);
        }
    }
    Ok(c)
}

/// The client of a store: a repository's requests are bounded as a whole (a pack at
/// ~1 MB/s); a bucket's objects may be of any size, so only a stalled read ends one.
fn store_client(opts: &RemoteOptions, repository: bool) -> Result<ClientOptions> {
    let c = client(opts)?;
    Ok(if repository {
        c
    } else {
        c.with_timeout_disabled()
            .with_read_timeout(Duration::from_secs(120))
    })
}

/// The small runtime a remote backend blocks on (its callers are plain threads).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cairn-io")
        .enable_all()
        .build()
        .map_err(|e| Error::new(ErrorKind::Backend, "cannot start the I/O runtime").with_source(e))
}

impl ObjectBackend {
    /// `s3:http(s)://HOST:PORT/BUCKET/PREFIX` (an S3-compatible endpoint, path-style) or
    /// `s3://BUCKET/PREFIX` (AWS, from the usual `AWS_*` environment). Credentials come from
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and the rest of the AWS environment), else
    /// from the profile `AWS_PROFILE` (or `default`) of `~/.aws/credentials` and
    /// `~/.aws/config`, which also give the region when the environment has none.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a malformed location or AWS file.
    pub fn s3(spec: &str, opts: &RemoteOptions) -> Result<Self> {
        let (store, prefix, location) = s3_store(spec, opts, true)?;
        let store = Arc::new(store);
        Self::new(store.clone(), Some(store), &prefix, location, true, opts)
    }

    /// `az://CONTAINER/PREFIX`: Azure Blob Storage, with the account and credentials from the
    /// usual Azure environment (`AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, SAS
    /// tokens, managed identity …; `AZURE_STORAGE_USE_EMULATOR` and
    /// `AZURITE_BLOB_STORAGE_URL` for Azurite). Create-only writes use `If-None-Match: *`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a malformed location or missing account.
    pub fn azure(spec: &str, opts: &RemoteOptions) -> Result<Self> {
        let (store, prefix) = azure_store(spec, opts, true)?;
        Self::new(Arc::new(store), None, prefix, spec.to_owned(), true, opts)
    }

    /// `gs://BUCKET/PREFIX`: Google Cloud Storage, with credentials from the usual Google
    /// environment (`GOOGLE_APPLICATION_CREDENTIALS`, `GOOGLE_SERVICE_ACCOUNT`,
    /// `GOOGLE_SERVICE_ACCOUNT_KEY`, or the instance's metadata server). Create-only writes
    /// use `x-goog-if-generation-match: 0`; packs go up in one request each.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a malformed location or unreadable credentials.
    pub fn gcs(spec: &str, opts: &RemoteOptions) -> Result<Self> {
        let (store, prefix) = gcs_store(spec, opts, true)?;
        Self::new(Arc::new(store), None, prefix, spec.to_owned(), true, opts)
    }

    /// `webdav+http(s)://HOST:PORT/PATH`: a WebDAV server. WebDAV has no conditional create, so
    /// writes are checked first (not atomic against racing writers).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a malformed location.
    pub fn webdav(spec: &str, opts: &RemoteOptions) -> Result<Self> {
        let url = spec
            .strip_prefix("webdav+")
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "`{spec}` is not a WebDAV location; use webdav+http://HOST:PORT/PATH"
                ))
            })?;
        // The store's base is the server's root and the path our prefix, so that missing
        // collections along the path are made (MKCOL) by the store's put.
        let (scheme, rest) = url.split_once("://").expect("checked above");
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let store = object_store::http::HttpBuilder::new()
            .with_url(format!("{scheme}://{host}"))
            .with_retry(retry())
            .with_client_options(client(opts)?.with_allow_http(true))
            .build()
            .map_err(|e| Error::invalid(format!("cannot use {spec}: {e}")))?;
        Self::new(Arc::new(store), None, path, spec.to_owned(), false, opts)
    }

    /// The common part of every constructor. A store with a conditional put is probed before
    /// its first write; one without is checked before every write.
    fn new(
        store: Arc<dyn ObjectStore>,
        multipart: Option<Arc<dyn MultipartStore>>,
        prefix: &str,
        location: impl Into<String>,
        conditional: bool,
        opts: &RemoteOptions,
    ) -> Result<Self> {
        Ok(Self {
            remote: Arc::new(Remote {
                store,
                multipart,
                rt: runtime()?,
                location: location.into(),
                // Two: packs are made and stored one after another, so one buffer comes back
                // about when the next is needed; more would only hold memory.
                spools: cairn_repo::buffers::BufferPool::new(2),
            }),
            prefix: Path::from(prefix.trim_matches('/')),
            atomic: if conditional {
                OnceLock::new()
            } else {
                OnceLock::from(Atomic {
                    put: false,
                    multipart: false,
                })
            },
            conditional,
            connections: if opts.connections == 0 {
                DEFAULT_CONNECTIONS
            } else {
                opts.connections
            },
        })
    }

    fn path(&self, tpe: FileType, name: &str) -> Result<Path> {
        object_path(&self.prefix, tpe, name)
    }

    /// Whether create-only writes are atomic here (probing once per process).
    fn atomic(&self) -> Atomic {
        *self
            .atomic
            .get_or_init(|| match self.probe_atomic_create() {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(
                        "could not find out whether {} enforces create-only writes: {e}",
                        self.remote.location
                    );
                    Atomic {
                        put: false,
                        multipart: false,
                    }
                }
            })
    }

    /// Whether the store refuses to replace an object with a conditional put (and with a
    /// conditional multipart completion), found by trying.
    fn probe_atomic_create(&self) -> Result<Atomic> {
        let probe = self.prefix.clone().join(format!(
            ".cairn-create-probe-{:016x}",
            rand::random::<u64>()
        ));
        let remote = &self.remote;
        let refused = |r: std::result::Result<(), object_store::Error>| match r {
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(true),
            Ok(()) => Ok(false),
            // A store without conditional writes says so.
            Err(
                object_store::Error::NotSupported { .. }
                | object_store::Error::NotImplemented { .. },
            ) => Ok(false),
            Err(e) => Err(remote.err("cannot write a probe object".into(), e)),
        };
        remote.rt.block_on(async {
            remote
                .create(&probe, b"1".to_vec(), true)
                .await
                .map_err(|e| remote.err("cannot write a probe object".into(), e))?;
            let put = refused(remote.create(&probe, b"2".to_vec(), true).await);
            let multipart = match (&put, &remote.multipart) {
                (Ok(true), Some(_)) => {
                    let spool = tempfile::tempfile().and_then(|mut f| {
                        std::io::Write::write_all(&mut f, b"3")?;
                        Ok(f)
                    });
                    match spool {
                        Ok(f) => refused(remote.create_multipart(&probe, &f, 1, true).await),
                        Err(_) => Ok(false),
                    }
                }
                _ => Ok(false),
            };
            let _ = remote.store.delete(&probe).await;
            Ok(Atomic {
                put: put?,
                multipart: multipart?,
            })
        })
    }
}

/// The store of an S3 location (see [`ObjectBackend::s3`]), its prefix, and how it is named
/// in messages. For a `repository` (whose objects are sealed), payloads are not hashed and
/// every multipart completion is conditional; otherwise (a bucket's plain objects) payloads
/// are signed with their hash and completions replace.
pub(crate) fn s3_store(
    spec: &str,
    opts: &RemoteOptions,
    repository: bool,
) -> Result<(object_store::aws::AmazonS3, String, String)> {
    let bad = |why: &str| {
        Error::invalid(format!(
            "`{spec}` is not an S3 location ({why}); use s3:http://HOST:PORT/BUCKET/PREFIX or s3://BUCKET/PREFIX"
        ))
    };
    let mut b = object_store::aws::AmazonS3Builder::from_env()
        .with_retry(retry())
        .with_client_options(store_client(opts, repository)?);
    // Every object cairn stores is sealed (XChaCha20-Poly1305) and most are named by their
    // hash, both checked on read, so a SHA-256 of the payload in the signature adds CPU
    // (1.3 s per 2 GiB here) and no integrity; AWS_UNSIGNED_PAYLOAD=false restores it.
    if repository && std::env::var_os("AWS_UNSIGNED_PAYLOAD").is_none() {
        b = b.with_unsigned_payload(true);
    }
    let env_keys = std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
    let mut region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if let Some((key, secret)) = &opts.keys {
        b = b.with_access_key_id(key).with_secret_access_key(secret);
    } else if !(env_keys && region) {
        // What the environment leaves out, from ~/.aws/credentials and ~/.aws/config.
        let profile = crate::aws_profile::load()?;
        if !env_keys && let Some((id, secret, token)) = profile.keys {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
            if let Some(token) = token {
                b = b.with_token(token);
            }
        }
        if !region && let Some(r) = profile.region {
            b = b.with_region(r);
            region = true;
        }
    }
    let (bucket, prefix, location) = if let Some(rest) = spec.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        (bucket.to_owned(), prefix.to_owned(), format!("s3://{rest}"))
    } else if let Some(url) = spec.strip_prefix("s3:") {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("no http:// or https://"))?;
        if scheme != "http" && scheme != "https" {
            return Err(bad("the endpoint must be http or https"));
        }
        let (host, path) = rest.split_once('/').ok_or_else(|| bad("no bucket"))?;
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        b = b
            .with_endpoint(format!("{scheme}://{host}"))
            .with_allow_http(scheme == "http")
            .with_virtual_hosted_style_request(false);
        if !region {
            b = b.with_region("us-east-1");
        }
        (
            bucket.to_owned(),
            prefix.to_owned(),
            format!("s3:{scheme}://{host}/{path}"),
        )
    } else {
        return Err(bad("unknown scheme"));
    };
    if bucket.is_empty() {
        return Err(bad("no bucket"));
    }
    b = b.with_bucket_name(&bucket);
    if repository {
        b = b.with_http_connector(CreateOnlyConnector);
    }
    let store = b
        .build()
        .map_err(|e| Error::invalid(format!("cannot use {location}: {e}")))?;
    Ok((store, prefix, location))
}

/// The store of an `az://CONTAINER/PREFIX` location and its prefix.
pub(crate) fn azure_store<'a>(
    spec: &'a str,
    opts: &RemoteOptions,
    repository: bool,
) -> Result<(object_store::azure::MicrosoftAzure, &'a str)> {
    let (container, prefix) = container_and_prefix(spec, "az://", "Azure", "container")?;
    let store = object_store::azure::MicrosoftAzureBuilder::from_env()
        .with_container_name(container)
        .with_retry(retry())
        .with_client_options(store_client(opts, repository)?)
        .build()
        .map_err(|e| Error::invalid(format!("cannot use {spec}: {e}")))?;
    Ok((store, prefix))
}

/// The store of a `gs://BUCKET/PREFIX` location and its prefix.
pub(crate) fn gcs_store<'a>(
    spec: &'a str,
    opts: &RemoteOptions,
    repository: bool,
) -> Result<(object_store::gcp::GoogleCloudStorage, &'a str)> {
    let (bucket, prefix) = container_and_prefix(spec, "gs://", "Google Cloud Storage", "bucket")?;
    // Plain http only where the credentials name an http `gcs_base_url` (an emulator).
    let store = object_store::gcp::GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry())
        .with_client_options(store_client(opts, repository)?.with_allow_http(true))
        .build()
        .map_err(|e| {
            Error::invalid(format!(
                "cannot use {spec}: {e} (check the credentials that GOOGLE_APPLICATION_CREDENTIALS, \
                 GOOGLE_SERVICE_ACCOUNT or GOOGLE_SERVICE_ACCOUNT_KEY give)"
            ))
        })?;
    Ok((store, prefix))
}

/// Where a file of the repository under `prefix` is: `config`, `keys/NAME`, `data/XX/NAME` ….
pub(crate) fn object_path(prefix: &Path, tpe: FileType, name: &str) -> Result<Path> {
    if tpe == FileType::Config {
        return Ok(prefix.clone().join("config"));
    }
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid(format!(
            "`{name}` is not a valid {tpe} name"
        )));
    }
    let dir = prefix.clone().join(tpe.dir());
    Ok(match tpe {
        FileType::Pack => dir.join(&name[..2.min(name.len())]).join(name),
        _ => dir.join(name),
    })
}

impl Remote {
    /// Our error for a store error: the kind, what we tried, where, and the store's own short
    /// reason (its S3 error code and message when it sent one), not the whole nested chain.
    pub(crate) fn err(&self, what: String, e: object_store::Error) -> Error {
        let kind = match &e {
            object_store::Error::NotFound { .. } => ErrorKind::NotFound,
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => ErrorKind::AlreadyExists,
            _ => ErrorKind::Backend,
        };
        Error::new(
            kind,
            format!("{what} at {}: {}", self.location, short_cause(&e)),
        )
    }

    /// Writes `data` to `path` unless something is there: by the store's conditional put, or
    /// (not `conditional`) by looking first.
    pub(crate) async fn create(
        &self,
        path: &Path,
        data: impl Into<PutPayload>,
        conditional: bool,
    ) -> std::result::Result<(), object_store::Error> {
        let payload = data.into();
        // A WebDAV server answers 423 Locked while another request holds the resource (rclone
        // under load does): that passes, so it is tried again, a few times, backing off.
        let mut wait = Duration::from_millis(100);
        for _ in 0..6 {
            match self.create_once(path, payload.clone(), conditional).await {
                Err(e) if e.to_string().contains("423 Locked") => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                other => return other,
            }
        }
        self.create_once(path, payload, conditional).await
    }

    async fn create_once(
        &self,
        path: &Path,
        payload: PutPayload,
        conditional: bool,
    ) -> std::result::Result<(), object_store::Error> {
        if conditional {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            return self.store.put_opts(path, payload, opts).await.map(|_| ());
        }
        self.refuse_existing(path).await?;
        self.store.put(path, payload).await.map(|_| ())
    }

    /// `AlreadyExists` when something is at `path`.
    pub(crate) async fn refuse_existing(
        &self,
        path: &Path,
    ) -> std::result::Result<(), object_store::Error> {
        match self.store.head(path).await {
            Ok(_) => Err(object_store::Error::AlreadyExists {
                path: path.to_string(),
                source: "the object exists".into(),
            }),
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The gist of a store error: `Code: Message` from an S3 error body, else the innermost cause.
fn short_cause(e: &object_store::Error) -> String {
    let text = e.to_string();
    let tag = |t: &str| {
        let open = format!("<{t}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{t}>"))? + start;
        Some(text[start..end].to_owned())
    };
    if let Some(code) = tag("Code") {
        return match tag("Message") {
            Some(m) => format!("{code}: {m}"),
            None => code,
        };
    }
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    let mut s = inner.to_string();
    if s.len() > 300 {
        s.truncate(300);
    }
    s
}

fn no_such_bucket(e: &object_store::Error) -> bool {
    e.to_string().contains("NoSuchBucket")
}

impl Backend for ObjectBackend {
    fn location(&self) -> String {
        self.remote.location.clone()
    }

    fn guarantees(&self) -> Guarantees {
        let atomic = self.atomic();
        Guarantees {
            atomic_create: atomic.put && (atomic.multipart || self.remote.multipart.is_none()),
        }
    }

    fn connections(&self) -> usize {
        self.connections
    }

    /// object_store's retry layer retries 5xx, timeouts and resets (see [`retry`]).
    fn retries_internally(&self) -> bool {
        true
    }

    fn create(&self) -> Result<()> {
        let first = self
            .remote
            .rt
            .block_on(async { self.remote.store.list(Some(&self.prefix)).try_next().await });
        match first {
            Ok(Some(o)) => {
                return Err(Error::invalid(format!(
                    "{} is not empty (it holds {}); a repository is only created in an empty place",
                    self.remote.location, o.location
                )));
            }
            Ok(None) => {}
            // The first write creates it, where the store allows that.
            Err(e) if no_such_bucket(&e) => {}
            Err(e) => return Err(self.remote.err("cannot list".into(), e)),
        }
        if self.conditional {
            let probed = self.probe_atomic_create()?;
            let _ = self.atomic.set(probed);
        }
        Ok(())
    }

    fn list(&self, tpe: FileType) -> Result<Vec<(String, u64)>> {
        if tpe == FileType::Config {
            let path = self.prefix.clone().join("config");
            return match self.remote.rt.block_on(self.remote.store.head(&path)) {
                Ok(m) => Ok(vec![("config".into(), m.size)]),
                Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
                Err(e) => Err(self.remote.err("cannot read the config".into(), e)),
            };
        }
        let dir = self.prefix.clone().join(tpe.dir());
        let all: Vec<object_store::ObjectMeta> = match self
            .remote
            .rt
            .block_on(self.remote.store.list(Some(&dir)).try_collect())
        {
            Ok(all) => all,
            // A bucket not made yet holds no files (its first write makes it, where the
            // store allows that).
            Err(e) if no_such_bucket(&e) => Vec::new(),
            Err(e) => return Err(self.remote.err(format!("cannot list {}", tpe.dir()), e)),
        };
        Ok(all
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_owned();
                (!name.starts_with('.')).then_some((name, m.size))
            })
            .collect())
    }

    fn size(&self, tpe: FileType, name: &str) -> Result<u64> {
        let path = self.path(tpe, name)?;
        self.remote
            .rt
            .block_on(self.remote.store.head(&path))
            .map(|m| m.size)
            .map_err(|e| {
                self.remote
                    .err(format!("cannot find {}", what(tpe, name)), e)
            })
    }

    fn read(&self, tpe: FileType, name: &str) -> Result<Vec<u8>> {
        let path = self.path(tpe, name)?;
        self.remote
            .rt
            .block_on(async { self.remote.store.get(&path).await?.bytes().await })
            // Without a copy when the body was gathered into one buffer of its own.
            .map(Vec::from)
            .map_err(|e| {
                self.remote
                    .err(format!("cannot read {}", what(tpe, name)), e)
            })
    }

    fn read_range(&self, tpe: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let path = self.path(tpe, name)?;
        let data = self
            .remote
            .rt
            .block_on(async {
                match self
                    .remote
                    .store
                    .get_range(&path, offset..offset + length)
                    .await
                {
                    // Some servers answer a range that covers the whole object with the whole
                    // object (200, not 206), which the client refuses; take it and cut.
                    Err(e) if e.to_string().contains("non-partial response") => {
                        let all = self.remote.store.get(&path).await?.bytes().await?;
                        let end = usize::try_from(offset + length)
                            .unwrap_or(usize::MAX)
                            .min(all.len());
                        Ok(all.slice(usize::try_from(offset).unwrap_or(usize::MAX).min(end)..end))
                    }
                    r => r,
                }
            })
            .map_err(|e| {
                self.remote
                    .err(format!("cannot read {}", what(tpe, name)), e)
            })?;
        crate::exact_range(tpe, name, offset, length, data)
    }

    fn write(&self, tpe: FileType, name: &str, data: &[u8]) -> Result<()> {
        let path = self.path(tpe, name)?;
        self.remote
            .rt
            .block_on(self.remote.create(
                &path,
                data.to_vec(),
                self.conditional && self.atomic().put,
            ))
            .map_err(|e| {
                self.remote
                    .err(format!("cannot write {}", what(tpe, name)), e)
            })
    }

    fn writer(&self, tpe: FileType) -> Result<Option<Box<dyn FileWriter>>> {
        if tpe != FileType::Pack || self.remote.multipart.is_none() {
            return Ok(None);
        }
        let atomic = self.atomic();
        let prefix = self.prefix.clone();
        Ok(Some(Box::new(PackWriter::new(
            self.remote.clone(),
            prefix,
            self.conditional && atomic.put,
            self.conditional && atomic.multipart,
        ))))
    }

    fn remove(&self, tpe: FileType, name: &str) -> Result<()> {
        let path = self.path(tpe, name)?;
        self.remote
            .rt
            .block_on(self.remote.store.delete(&path))
            .map_err(|e| {
                self.remote
                    .err(format!("cannot remove {}", what(tpe, name)), e)
            })
    }
}
