//! Repositories on a server that speaks restic's REST protocol, version 2 (restic's
//! `rest-server`, `rclone serve restic`).
//!
//! A location is `rest:http(s)://[USER:PASSWORD@]HOST:PORT/PATH/`, written as restic writes it.
//! The server lays the files out. cairn sees `config`, `keys/`, `snapshots/`, `index/`,
//! `locks/` and `data/` (packs), addresses each file as `PATH/TYPE/NAME`, lists a type with
//! `GET PATH/TYPE/` in the `application/vnd.x.restic.rest.v2` JSON format, reads files whole
//! or by `Range`, creates them with `POST` and removes them with `DELETE`. `create` is
//! `POST PATH/?create=true`. Credentials travel as HTTP basic auth. They come from the URL,
//! else from [`RemoteOptions::rest_credentials`](crate::RemoteOptions::rest_credentials) (the
//! CLI fills that from `CAIRN_REST_USERNAME` and `CAIRN_REST_PASSWORD`). They never appear in
//! the location, in messages or in logs.
//!
//! The protocol has no conditional create. rest-server refuses to replace a file (403), but
//! `rclone serve restic` refuses only with `--append-only`. So every write first asks whether
//! the name exists (`HEAD`). Two writers racing for one name can defeat that check, so
//! [`Guarantees::atomic_create`] is false. A 403 to a `POST` of a file means the file is
//! there ([`ErrorKind::AlreadyExists`]). A 403 to anything else is a refusal
//! ([`ErrorKind::Denied`]), for example an append-only server asked to remove a pack.
//!
//! Transient failures are retried here, with exponential backoff and jitter, bounded in count
//! and in time. They are no connection, a timeout, a broken answer, 408, 429 and most 5xx.
//! Because of that the backend [retries internally](Backend::retries_internally) and can give
//! the packer a streaming writer. The writer [spools](crate::spool) a pack: in a buffer from a
//! pool when it is at most 32 MiB (packs are 16 MiB by default), in an unnamed temporary file
//! beyond. At commit it `POST`s the buffer, or the file in 1 MiB chunks, from the beginning
//! again on a retry, so memory does not grow with the pack size.
//!
//! restic's rest-server checks that each file's name is the SHA-256 of its bytes. cairn names
//! files by BLAKE3, so such a server must run with `--no-verify-upload`; its 400 answer says so.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_repo::backend::{FileWriter, RetryPolicy};
use cairn_repo::buffers::BufferPool;
use cairn_repo::{Backend, Error, ErrorKind, FileType, Guarantees, Result};
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, RANGE};
use reqwest::{Method, StatusCode, Url};

use crate::spool::{Spool, recycle};
use crate::{RemoteOptions, what};

/// The media type of restic's REST protocol v2 (listings with sizes).
const V2: &str = "application/vnd.x.restic.rest.v2";
/// The location's form, for messages.
const USAGE: &str = "use rest:http(s)://[USER:PASSWORD@]HOST:PORT/PATH/";
/// Where credentials come from, for messages about refused ones.
const CREDENTIALS_HINT: &str = "give the right ones in the URL \
     (rest:http(s)://USER:PASSWORD@HOST:PORT/PATH/) or in CAIRN_REST_USERNAME and \
     CAIRN_REST_PASSWORD";
/// Concurrent uploads by default, as for the object stores.
const DEFAULT_CONNECTIONS: usize = 4;
/// Bytes per read of a pack spooled to a file.
const CHUNK: usize = 1 << 20;

/// A user name and a password for HTTP basic auth. Debug output never shows the password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RestCredentials {
    username: String,
    password: String,
}

impl RestCredentials {
    /// These credentials.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }
}

impl std::fmt::Debug for RestCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The object stores' policy: four retries, 100 ms doubling to at most 5 s …
const RETRY: RetryPolicy = RetryPolicy {
    tries: 5,
    first_delay: Duration::from_millis(100),
    max_delay: Duration::from_secs(5),
};
/// … and no retry starts later than 60 s after the first try.
const RETRY_TOTAL: Duration = Duration::from_secs(60);

/// One try that failed, and whether another try may go better.
struct Failure {
    error: Error,
    transient: bool,
}

impl Failure {
    /// A failure that another try would only repeat.
    fn fatal(error: Error) -> Self {
        Self {
            error,
            transient: false,
        }
    }
}

/// The outcome of one try.
type Try<T> = std::result::Result<T, Failure>;

/// What a request does, which decides what a 403 or a 400 means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `POST` of a file.
    Store,
    /// `DELETE` of a file.
    Remove,
    /// Anything else.
    Other,
}

/// A location taken apart.
#[derive(Debug)]
struct Parsed {
    /// The repository's URL, without user info, ending in `/`.
    base: Url,
    credentials: Option<RestCredentials>,
    /// `rest:` and the base URL.
    location: String,
}

/// Takes `spec` apart. Credentials in the URL win. `fallback` applies only when the URL
/// has none, as with restic's `RESTIC_REST_USERNAME` and `RESTIC_REST_PASSWORD`.
fn parse(spec: &str, fallback: Option<&RestCredentials>) -> Result<Parsed> {
    let bad = |why: &str| {
        Error::invalid(format!(
            "`{}` is not a REST location ({why}); {USAGE}",
            redact(spec)
        ))
    };
    let url = spec
        .strip_prefix("rest:")
        .ok_or_else(|| bad("it does not start with rest:"))?;
    // The URL parser's messages name the problem, never the input.
    let mut base = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(bad("the URL must start with http:// or https://"));
    }
    if base.host_str().is_none_or(str::is_empty) {
        return Err(bad("it names no host"));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(bad("it has a query or a fragment"));
    }
    let credentials = if !base.username().is_empty() || base.password().is_some() {
        Some(RestCredentials::new(
            percent_decode(base.username()),
            percent_decode(base.password().unwrap_or("")),
        ))
    } else {
        fallback.cloned()
    };
    // Neither can fail on an http(s) URL with a host.
    let _ = base.set_username("");
    let _ = base.set_password(None);
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(Parsed {
        location: format!("rest:{base}"),
        base,
        credentials,
    })
}

/// `spec` with the user info of its URL replaced by `***`, for messages and labels about a
/// location (also one that does not parse).
pub fn redact(spec: &str) -> String {
    let start = spec
        .find("://")
        .map(|i| i + 3)
        .or_else(|| spec.find(':').map(|i| i + 1))
        .unwrap_or(0);
    let rest = &spec[start..];
    let authority = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority].rfind('@') {
        Some(at) => format!("{}***{}", &spec[..start], &rest[at..]),
        None => spec.to_owned(),
    }
}

/// Decodes the `%XX` escapes of a URL's user info.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The HTTP client: timeouts as for the object stores, no redirects (they would carry the
/// credentials elsewhere), HTTP/1.1 (parallel uploads go over separate connections), and
/// the private CA's certificates next to the system's.
fn client(opts: &RemoteOptions) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        // The whole request, upload included: generous enough for a 512 MiB pack at ~1 MB/s.
        .timeout(Duration::from_secs(600))
        .redirect(reqwest::redirect::Policy::none())
        .http1_only();
    if let Some(pem) = &opts.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
            Error::invalid(format!(
                "the CA certificate file holds no usable PEM certificate: {}",
                innermost(&e)
            ))
        })?;
        if certs.is_empty() {
            return Err(Error::invalid(
                "the CA certificate file holds no PEM certificate",
            ));
        }
        b = b.tls_certs_merge(certs);
    }
    b.build().map_err(|e| {
        Error::new(
            ErrorKind::Backend,
            format!("cannot set up the HTTP client: {}", innermost(&e)),
        )
    })
}

/// The innermost cause of an error, short. Our request URLs carry no credentials, so no cause
/// can show them.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    let mut s = inner.to_string();
    if s.len() > 300 {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The connection to a server, shared by the backend and its pack writers.
struct Rest {
    client: reqwest::Client,
    base: Url,
    credentials: Option<RestCredentials>,
    location: String,
    rt: tokio::runtime::Runtime,
    retry: RetryPolicy,
    /// Buffers of packs being written, for the next ones.
    spools: BufferPool,
}

/// A repository on a REST server (see the module documentation).
pub struct RestBackend {
    rest: Arc<Rest>,
    /// Concurrent uploads.
    connections: usize,
}

impl std::fmt::Debug for RestBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RestBackend({})", self.rest.location)
    }
}

impl RestBackend {
    /// `rest:http(s)://[USER:PASSWORD@]HOST:PORT/PATH/` (a missing final `/` is added). The
    /// URL's credentials win over `opts`' [`RemoteOptions::rest_credentials`]. `opts` also
    /// gives the private CA and the number of connections.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a malformed location or CA file. The message names the
    /// location without its credentials.
    pub fn new(spec: &str, opts: &RemoteOptions) -> Result<Self> {
        let Parsed {
            base,
            credentials,
            location,
        } = parse(spec, opts.rest_credentials.as_ref())?;
        let connections = if opts.connections == 0 {
            DEFAULT_CONNECTIONS
        } else {
            opts.connections
        };
        Ok(Self {
            rest: Arc::new(Rest {
                client: client(opts)?,
                base,
                credentials,
                location,
                rt: crate::object::runtime()?,
                retry: RETRY,
                // As many as a backup has packs at once: one open per blob type, and one
                // being stored per connection.
                spools: BufferPool::new(connections + 2),
            }),
            connections,
        })
    }
}

impl Rest {
    /// A URL below the repository's.
    fn join(&self, rel: &str) -> Url {
        self.base
            .join(rel)
            .expect("a relative path joins onto an http URL")
    }

    /// Where a file is. Names other than hex digits are refused, so no name reaches
    /// another path on the server.
    fn url(&self, tpe: FileType, name: &str) -> Result<Url> {
        if tpe == FileType::Config {
            return Ok(self.join("config"));
        }
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid(format!(
                "`{name}` is not a valid {tpe} name"
            )));
        }
        Ok(self.join(&format!("{}/{name}", tpe.dir())))
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let r = self.client.request(method, url);
        match &self.credentials {
            Some(c) => r.basic_auth(&c.username, Some(&c.password)),
            None => r,
        }
    }

    /// Runs `attempt` (given its number, 1 for the first) until it succeeds, fails for good,
    /// or the retries or the time run out.
    fn retry<T>(&self, what: &str, mut attempt: impl FnMut(u32) -> Try<T>) -> Result<T> {
        let start = Instant::now();
        let mut n = 1;
        loop {
            let failure = match attempt(n) {
                Ok(v) => return Ok(v),
                Err(f) => f,
            };
            let delay = self.retry.delay(n);
            if !failure.transient || n >= self.retry.tries || start.elapsed() + delay > RETRY_TOTAL
            {
                if failure.transient && n > 1 {
                    tracing::warn!("{what} at {}: giving up after {n} tries", self.location);
                }
                return Err(failure.error);
            }
            tracing::debug!("{}; trying again in {delay:?}", failure.error);
            std::thread::sleep(delay);
            n += 1;
        }
    }

    /// Sends a request and waits for the head of the answer.
    async fn send(&self, what: &str, request: reqwest::RequestBuilder) -> Try<reqwest::Response> {
        request.send().await.map_err(|e| self.transport(what, e))
    }

    /// A failure to get an answer, or a whole one: transient, unless the TLS certificate was
    /// refused or the request could not be built.
    fn transport(&self, what: &str, e: reqwest::Error) -> Failure {
        let e = e.without_url();
        let cause = innermost(&e);
        let how = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "cannot connect"
        } else {
            "the connection failed"
        };
        let certificate = cause.to_ascii_lowercase().contains("certificate");
        let hint = if certificate {
            " (for a server with a private CA, give its certificate with --ca-cert or CAIRN_CA_CERT)"
        } else {
            ""
        };
        Failure {
            error: Error::new(
                ErrorKind::Backend,
                format!("{what} at {}: {how}: {cause}{hint}", self.location),
            ),
            transient: !certificate && !e.is_builder(),
        }
    }

    /// What an answer that is not a success means.
    fn status(&self, what: &str, op: Op, status: StatusCode) -> Failure {
        use ErrorKind::{AlreadyExists, Backend, Corrupt, Denied, InvalidInput, NotFound};
        let (kind, why, transient) = match status.as_u16() {
            401 if self.credentials.is_some() => (
                Denied,
                format!("the server refused the credentials ({status}); {CREDENTIALS_HINT}"),
                false,
            ),
            401 => (
                Denied,
                format!(
                    "the server refused the request without credentials ({status}); \
                     give them in the URL (rest:http(s)://USER:PASSWORD@HOST:PORT/PATH/) or in \
                     CAIRN_REST_USERNAME and CAIRN_REST_PASSWORD"
                ),
                false,
            ),
            403 if op == Op::Store => (
                AlreadyExists,
                format!(
                    "the server refused to store it ({status}): a file of that name is there, \
                     and files are never replaced"
                ),
                false,
            ),
            403 if op == Op::Remove => (
                Denied,
                format!(
                    "the server refused to remove it ({status}); an append-only server removes \
                     nothing but locks"
                ),
                false,
            ),
            403 => (Denied, format!("the server refused ({status})"), false),
            404 => (NotFound, format!("it does not exist ({status})"), false),
            413 => (
                InvalidInput,
                format!(
                    "the server refused it as too large ({status}); raise the server's (or its \
                     proxy's) limit on the size of an upload"
                ),
                false,
            ),
            416 => (
                Corrupt,
                format!("the file is shorter than the range asked for ({status})"),
                false,
            ),
            400 if op == Op::Store => (
                Backend,
                format!(
                    "the server refused it ({status}); restic's rest-server checks that a \
                     file's name is the SHA-256 of its bytes, which cairn's names are not: run \
                     it with --no-verify-upload"
                ),
                false,
            ),
            400 => (
                Backend,
                format!(
                    "the server refused the request ({status}); does it speak restic's REST \
                     protocol v2?"
                ),
                false,
            ),
            507 => (
                Backend,
                format!("the server is out of space ({status})"),
                false,
            ),
            408 | 429 => (Backend, format!("the server is busy ({status})"), true),
            501 | 505 => (
                Backend,
                format!("the server cannot do this ({status})"),
                false,
            ),
            500..=599 => (Backend, format!("the server failed ({status})"), true),
            300..=399 => (
                Backend,
                format!("the server redirects ({status}); give the URL it redirects to"),
                false,
            ),
            _ => (Backend, format!("unexpected answer ({status})"), false),
        };
        Failure {
            error: Error::new(kind, format!("{what} at {}: {why}", self.location)),
            transient,
        }
    }

    /// The size of the file at `url` (`HEAD`), `None` when there is none.
    async fn head(&self, what: &str, url: &Url) -> Try<Option<u64>> {
        let answer = self
            .send(what, self.request(Method::HEAD, url.clone()))
            .await?;
        match answer.status() {
            StatusCode::NOT_FOUND => Ok(None),
            // From the header: a HEAD answer has no body, so its body's length is 0.
            s if s.is_success() => Ok(Some(
                answer
                    .headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            s => Err(self.status(what, Op::Other, s)),
        }
    }

    /// The file at `url`, or `length` bytes of it at `offset`, with the answer's status (206
    /// for a range, or 200 when the server ignored the range and sent the whole file).
    async fn get(
        &self,
        what: &str,
        url: &Url,
        range: Option<(u64, u64)>,
    ) -> Try<(StatusCode, Bytes)> {
        let mut request = self.request(Method::GET, url.clone());
        if let Some((offset, length)) = range {
            request = request.header(RANGE, format!("bytes={offset}-{}", offset + length - 1));
        }
        let answer = self.send(what, request).await?;
        let status = answer.status();
        if !status.is_success() {
            return Err(self.status(what, Op::Other, status));
        }
        let body = answer.bytes().await.map_err(|e| self.transport(what, e))?;
        Ok((status, body))
    }

    /// Stores `len` bytes from `body` as a new file at `url`, unless a file is there. The
    /// protocol has no conditional create, so this looks first.
    async fn store(
        &self,
        what: &str,
        url: &Url,
        len: u64,
        body: impl FnOnce() -> reqwest::Body,
    ) -> Try<()> {
        if self.head(what, url).await?.is_some() {
            return Err(Failure::fatal(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "{what} at {}: it exists, and files are never replaced",
                    self.location
                ),
            )));
        }
        let request = self
            .request(Method::POST, url.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, len)
            // A config is not named by a hash; cairn's other files by BLAKE3.
            .header(cairn_repo::backend::NAME_HASH_HEADER, "blake3")
            .body(body());
        let answer = self.send(what, request).await?;
        match answer.status() {
            s if s.is_success() => Ok(()),
            s => Err(self.status(what, Op::Store, s)),
        }
    }
}

/// A body that streams `len` bytes of `file` in [`CHUNK`]s, each read off the runtime's
/// workers. Every body reads from offset 0, whatever an earlier one read.
fn file_body(file: Arc<File>, len: u64) -> reqwest::Body {
    let chunks = futures::stream::try_unfold(0u64, move |offset| {
        let file = file.clone();
        async move {
            if offset >= len {
                return Ok(None);
            }
            let n = usize::try_from(len - offset)
                .unwrap_or(usize::MAX)
                .min(CHUNK);
            let chunk = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0; n];
                file.read_exact_at(&mut buf, offset).map(|()| buf)
            })
            .await
            .map_err(std::io::Error::other)??;
            Ok::<_, std::io::Error>(Some((Bytes::from(chunk), offset + n as u64)))
        }
    });
    reqwest::Body::wrap_stream(chunks)
}

/// A pack being [spooled](crate::spool), `POST`ed at commit. Dropped uncommitted, it leaves
/// nothing behind.
struct Spooled {
    rest: Arc<Rest>,
    spool: Spool,
}

impl FileWriter for Spooled {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.spool.write(data)
    }

    fn commit(self: Box<Self>, name: &str) -> Result<()> {
        let Spooled { rest, spool } = *self;
        let url = rest.url(FileType::Pack, name)?;
        let what = format!("cannot write {}", what(FileType::Pack, name));
        match spool {
            Spool::Memory(buf) => {
                let bytes = Bytes::from(buf);
                let stored = rest.retry(&what, |_| {
                    rest.rt
                        .block_on(rest.store(&what, &url, bytes.len() as u64, || {
                            reqwest::Body::from(bytes.clone())
                        }))
                });
                recycle(&rest.spools, bytes);
                stored
            }
            Spool::File { file, len } => {
                let file = Arc::new(file);
                rest.retry(&what, |_| {
                    rest.rt
                        .block_on(rest.store(&what, &url, len, || file_body(file.clone(), len)))
                })
            }
        }
    }
}

/// A listed file in the v2 format.
#[derive(serde::Deserialize)]
struct Listed {
    name: String,
    size: u64,
}

impl Backend for RestBackend {
    fn location(&self) -> String {
        self.rest.location.clone()
    }

    /// Writes look before they `POST` (see the module documentation).
    fn guarantees(&self) -> Guarantees {
        Guarantees {
            atomic_create: false,
        }
    }

    fn connections(&self) -> usize {
        self.connections
    }

    /// Transient failures are retried here (see [`RETRY`]), which lets packs stream from
    /// their temporary files.
    fn retries_internally(&self) -> bool {
        true
    }

    fn create(&self) -> Result<()> {
        let rest = &self.rest;
        for tpe in FileType::ALL {
            if let Some((name, _)) = self.list(tpe)?.into_iter().next() {
                return Err(Error::invalid(format!(
                    "{} is not empty (it holds {}); a repository is only created in an empty place",
                    rest.location,
                    what(tpe, &name)
                )));
            }
        }
        let mut url = rest.base.clone();
        url.set_query(Some("create=true"));
        let what = "cannot create the repository";
        // Making the directories again is harmless, so a retry is too.
        rest.retry(what, |_| {
            rest.rt.block_on(async {
                let answer = rest
                    .send(what, rest.request(Method::POST, url.clone()))
                    .await?;
                match answer.status() {
                    s if s.is_success() => Ok(()),
                    s => Err(rest.status(what, Op::Other, s)),
                }
            })
        })
    }

    fn list(&self, tpe: FileType) -> Result<Vec<(String, u64)>> {
        let rest = &self.rest;
        if tpe == FileType::Config {
            let what = "cannot look up the config";
            let url = rest.join("config");
            let size = rest.retry(what, |_| rest.rt.block_on(rest.head(what, &url)))?;
            return Ok(size
                .map(|size| ("config".to_owned(), size))
                .into_iter()
                .collect());
        }
        let what = format!("cannot list {}", tpe.dir());
        let url = rest.join(&format!("{}/", tpe.dir()));
        let body = rest.retry(&what, |_| {
            rest.rt.block_on(async {
                let request = rest.request(Method::GET, url.clone()).header(ACCEPT, V2);
                let answer = rest.send(&what, request).await?;
                match answer.status() {
                    // Nothing of this type yet (rest-server before `create`).
                    StatusCode::NOT_FOUND => Ok(None),
                    s if s.is_success() => answer
                        .bytes()
                        .await
                        .map(Some)
                        .map_err(|e| rest.transport(&what, e)),
                    s => Err(rest.status(&what, Op::Other, s)),
                }
            })
        })?;
        let Some(body) = body else {
            return Ok(Vec::new());
        };
        let listed: Vec<Listed> = serde_json::from_slice(&body).map_err(|e| {
            Error::new(
                ErrorKind::Backend,
                format!(
                    "{what} at {}: the answer is not a listing in restic's REST v2 format ({e})",
                    rest.location
                ),
            )
        })?;
        Ok(listed.into_iter().map(|l| (l.name, l.size)).collect())
    }

    fn read(&self, tpe: FileType, name: &str) -> Result<Vec<u8>> {
        let rest = &self.rest;
        let url = rest.url(tpe, name)?;
        let what = format!("cannot read {}", what(tpe, name));
        let (_, body) = rest.retry(&what, |_| rest.rt.block_on(rest.get(&what, &url, None)))?;
        // Without a copy when the body came in one buffer of its own.
        Ok(Vec::from(body))
    }

    /// One `HEAD`.
    fn size(&self, tpe: FileType, name: &str) -> Result<u64> {
        let rest = &self.rest;
        let url = rest.url(tpe, name)?;
        let what = format!("cannot find {}", what(tpe, name));
        rest.retry(&what, |_| rest.rt.block_on(rest.head(&what, &url)))?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("{what} at {}: it does not exist", rest.location),
                )
            })
    }

    fn read_range(&self, tpe: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let rest = &self.rest;
        let url = rest.url(tpe, name)?;
        let what = format!("cannot read {}", what(tpe, name));
        if length == 0 {
            // No range is empty; only whether the file is there matters.
            return match rest.retry(&what, |_| rest.rt.block_on(rest.head(&what, &url)))? {
                Some(_) => Ok(Vec::new()),
                None => Err(Error::new(
                    ErrorKind::NotFound,
                    format!("{what} at {}: it does not exist", rest.location),
                )),
            };
        }
        let (status, body) = rest.retry(&what, |_| {
            rest.rt
                .block_on(rest.get(&what, &url, Some((offset, length))))
        })?;
        let data = if status == StatusCode::PARTIAL_CONTENT {
            body
        } else {
            // A server that ignores `Range` answers 200 with the whole file.
            let len = body.len() as u64;
            let (start, end) = (offset.min(len), offset.saturating_add(length).min(len));
            body.slice(start as usize..end as usize)
        };
        crate::exact_range(tpe, name, offset, length, data)
    }

    fn write(&self, tpe: FileType, name: &str, data: &[u8]) -> Result<()> {
        let rest = &self.rest;
        let url = rest.url(tpe, name)?;
        let what = format!("cannot write {}", what(tpe, name));
        let body = Bytes::copy_from_slice(data);
        rest.retry(&what, |_| {
            rest.rt
                .block_on(rest.store(&what, &url, body.len() as u64, || {
                    reqwest::Body::from(body.clone())
                }))
        })
    }

    fn writer(&self, tpe: FileType) -> Result<Option<Box<dyn FileWriter>>> {
        if tpe != FileType::Pack {
            return Ok(None);
        }
        Ok(Some(Box::new(Spooled {
            spool: Spool::new(&self.rest.spools),
            rest: self.rest.clone(),
        })))
    }

    fn remove(&self, tpe: FileType, name: &str) -> Result<()> {
        let rest = &self.rest;
        let url = rest.url(tpe, name)?;
        let what = format!("cannot remove {}", what(tpe, name));
        rest.retry(&what, |n| {
            rest.rt.block_on(async {
                let answer = rest
                    .send(&what, rest.request(Method::DELETE, url.clone()))
                    .await?;
                match answer.status() {
                    s if s.is_success() => Ok(()),
                    // An earlier try removed it and only its answer was lost.
                    StatusCode::NOT_FOUND if n > 1 => Ok(()),
                    s => Err(rest.status(&what, Op::Remove, s)),
                }
            })
        })
    }
}

#[cfg(test)]
mod tests;
