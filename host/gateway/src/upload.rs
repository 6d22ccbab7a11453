//! Receiving a file: create-only, streamed with bounded memory, checked against its name
//! while it arrives, idempotent for a client's retry.
//!
//! A file's name must be the hash of its bytes — SHA-256 (restic's files) or BLAKE3
//! (cairn's) — except `config`. Nothing is stored under a name until the whole body has
//! arrived and hashes to it. A name that exists answers 200 when the body is what is stored
//! (for a hashed name: it hashes to the name; for `config`: the same bytes), 403 otherwise.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use bytes::Bytes;
use cairn_repo::backend::FileWriter;
use cairn_repo::{Backend, ErrorKind, FileType};
use http::StatusCode;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

use crate::gateway::{Gateway, Refusal};

/// The largest `config` accepted (restic's and cairn's are a few hundred bytes).
const MAX_CONFIG: u64 = 1 << 20;
/// Pieces of a body in flight to the store's writer.
const IN_FLIGHT: usize = 4;
/// The largest body taken into memory, for a store without a streaming writer (a storage
/// plugin takes a file as one buffer); packs are 16 MiB by default, 128 MiB at most.
const IN_MEMORY_MAX: u64 = 128 << 20;
/// How many such bodies the gateway holds at once; more wait their turn.
pub(crate) const IN_MEMORY_BODIES: usize = 4;

/// Where a received body goes.
pub(crate) struct Upload {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) tpe: FileType,
    pub(crate) name: String,
    /// The hash the client named for it.
    pub(crate) hash: NamedBy,
}

/// Which hash names an upload, as the client's
/// [`NAME_HASH_HEADER`](cairn_repo::backend::NAME_HASH_HEADER) says (`blake3` or `sha256`):
/// then only that one is computed. It spares work and nothing else: the body must still hash
/// to its name by the hash named. Without the header (restic), either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NamedBy {
    Blake3,
    Sha256,
    Either,
}

impl NamedBy {
    /// From the header's value, if sent; anything else is [`NamedBy::Either`].
    pub(crate) fn from_header(value: Option<&http::HeaderValue>) -> Self {
        match value.and_then(|v| v.to_str().ok()) {
            Some(v) if v.eq_ignore_ascii_case("blake3") => NamedBy::Blake3,
            Some(v) if v.eq_ignore_ascii_case("sha256") => NamedBy::Sha256,
            _ => NamedBy::Either,
        }
    }

    /// The hashes tried, for a refusal.
    fn tried(self) -> &'static str {
        match self {
            NamedBy::Blake3 => "BLAKE3, as the client said",
            NamedBy::Sha256 => "SHA-256, as the client said",
            NamedBy::Either => "SHA-256 or BLAKE3",
        }
    }
}

/// The hashes a name may be, computed as the body streams.
struct Hashes {
    sha256: Option<Sha256>,
    blake3: Option<blake3::Hasher>,
}

impl Hashes {
    fn new(named: NamedBy) -> Self {
        Hashes {
            sha256: (named != NamedBy::Blake3).then(Sha256::new),
            blake3: (named != NamedBy::Sha256).then(blake3::Hasher::new),
        }
    }

    fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
        if let Some(h) = &mut self.blake3 {
            h.update(data);
        }
    }

    fn matches(self, name: &str) -> bool {
        self.sha256
            .is_some_and(|h| hex::encode(h.finalize()) == name)
            || self
                .blake3
                .is_some_and(|h| h.finalize().to_hex().as_str() == name)
    }
}

fn too_large(limit: u64) -> Refusal {
    Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too-large",
        format!("the body is larger than the limit of {limit} bytes"),
    )
}

fn storage(e: &cairn_repo::Error) -> Refusal {
    tracing::warn!("storage: {e}");
    Refusal::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage",
        "the storage failed; see the gateway's log",
    )
}

/// Where the body's pieces go while it arrives: a store's streaming writer on a blocking
/// thread, or memory for stores without one.
enum Sink {
    Stream {
        tx: tokio::sync::mpsc::Sender<Bytes>,
        done: tokio::task::JoinHandle<cairn_repo::Result<Box<dyn FileWriter>>>,
    },
    Memory(Vec<u8>),
}

/// Receives `body` into `upload`'s store; `declared` is its Content-Length, if sent.
pub(crate) async fn receive(
    gw: &Arc<Gateway>,
    upload: Upload,
    body: Body,
    declared: Option<u64>,
) -> Result<(), Refusal> {
    let mut limit = if upload.tpe == FileType::Config {
        MAX_CONFIG
    } else {
        gw.limits.max_object
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let backend = upload.backend.clone();
    let tpe = upload.tpe;
    let writer = if tpe == FileType::Config {
        None
    } else {
        let b = backend.clone();
        tokio::task::spawn_blocking(move || b.writer(tpe))
            .await
            .map_err(|_| storage(&cairn_repo::Error::invalid("writer task failed")))?
            .map_err(|e| storage(&e))?
    };
    // A store that takes whole buffers: a bounded body, and a bounded number of them.
    let _in_memory = if writer.is_none() && tpe != FileType::Config {
        limit = limit.min(IN_MEMORY_MAX);
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large(limit));
        }
        Some(gw.in_memory.acquire().await.map_err(|_| {
            Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "shutdown", "shutting down")
        })?)
    } else {
        None
    };
    let mut sink = match writer {
        Some(mut w) => {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(IN_FLIGHT);
            let done = tokio::task::spawn_blocking(move || {
                while let Some(piece) = rx.blocking_recv() {
                    w.write(&piece)?;
                }
                Ok(w)
            });
            Sink::Stream { tx, done }
        }
        None => Sink::Memory(Vec::new()),
    };
    let mut hashes = Hashes::new(upload.hash);
    let mut received: u64 = 0;
    let mut body = body;
    // The body, until its end or a refusal.
    let taken: Result<(), Refusal> = async {
        loop {
            let frame = match tokio::time::timeout(gw.limits.idle, body.frame()).await {
                Err(_) => {
                    return Err(Refusal::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "idle",
                        format!(
                            "the body stopped arriving for {} s; nothing was stored",
                            gw.limits.idle.as_secs()
                        ),
                    ));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "body",
                        format!("the body could not be read ({e}); nothing was stored"),
                    ));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            received += data.len() as u64;
            gw.metrics
                .bytes_in
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            if received > limit {
                return Err(too_large(limit));
            }
            hashes.update(&data);
            match &mut sink {
                Sink::Memory(buf) => buf.extend_from_slice(&data),
                Sink::Stream { tx, .. } => {
                    // The writer failed: its error comes out of `done` below.
                    if tx.send(data).await.is_err() {
                        break;
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    // The writer is waited for also after a refusal of the body, so that what it wrote is
    // gone before the answer. Else its own failure is why the body stopped being taken.
    let (writer, buf) = match sink {
        Sink::Stream { tx, done } => {
            drop(tx);
            let w = done
                .await
                .map_err(|_| storage(&cairn_repo::Error::invalid("writer task failed")));
            taken?;
            (Some(w?.map_err(|e| storage(&e))?), Vec::new())
        }
        Sink::Memory(buf) => {
            taken?;
            (None, buf)
        }
    };
    if declared.is_some_and(|n| n != received) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "short-body",
            "the body is shorter than its Content-Length; nothing was stored",
        ));
    }
    let name = upload.name;
    if tpe != FileType::Config && !hashes.matches(&name) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "hash-mismatch",
            format!(
                "the body does not hash to its name {name} ({}); nothing was stored",
                upload.hash.tried()
            ),
        ));
    }
    let b = backend.clone();
    let n = name.clone();
    let stored = tokio::task::spawn_blocking(move || match writer {
        Some(w) => w.commit(&n),
        None => match b.write(tpe, &n, &buf) {
            // A config that exists must be the same bytes; a hashed name holds them.
            Err(e) if e.kind() == ErrorKind::AlreadyExists && tpe == FileType::Config => {
                match b.read(FileType::Config, "config") {
                    Ok(there) if there == buf => Ok(()),
                    _ => Err(e),
                }
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            r => r,
        },
    })
    .await
    .map_err(|_| storage(&cairn_repo::Error::invalid("write task failed")))?;
    match stored {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists && tpe == FileType::Config => Err(exists()),
        // The same bytes are stored (they hash to the name): a client's retry.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(storage(&e)),
    }
}

fn exists() -> Refusal {
    Refusal::new(
        StatusCode::FORBIDDEN,
        "overwrite",
        "a different file exists under this name; files are never replaced",
    )
}
