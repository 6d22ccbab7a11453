//! Large packs with bounded memory: a pack is [spooled](crate::spool) to an unnamed temporary
//! file once it outgrows [`SPILL_AT`](crate::spool::SPILL_AT), then stored by an S3 multipart
//! upload that reads [`PART_SIZE`] parts back from the file, at most [`PARTS_IN_FLIGHT`] at a
//! time. Memory per pack is therefore bounded whatever the repository's pack size; smaller
//! packs stay in memory and go up in one conditional PUT.
//!
//! Create-only: every multipart completion carries `If-None-Match: *` (the [`CreateOnly`]
//! connector adds it, as object_store itself does for its conditional copy), so S3 refuses to
//! complete onto an existing object. `init` probes whether the store honours that; where it
//! does not, the object is looked up before the upload (not atomic, and `init` says so).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use cairn_repo::backend::FileWriter;
use cairn_repo::{FileType, Result};
use futures::{StreamExt, TryStreamExt};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::path::Path;
use object_store::{ClientOptions, PutPayload};

use crate::object::{Remote, object_path};
use crate::spool::{Spool, recycle};

/// Bytes per uploaded part (S3 wants at least 5 MiB for all but the last).
pub(crate) const PART_SIZE: u64 = 16 << 20;
/// Parts of one pack in memory and on the wire at once.
pub(crate) const PARTS_IN_FLIGHT: usize = 2;

/// A pack being written to an object store (see the module documentation).
pub(crate) struct PackWriter {
    remote: Arc<Remote>,
    /// The repository's prefix in the store.
    prefix: Path,
    spool: Spool,
    /// Whether a single PUT may rely on the store's `If-None-Match`.
    atomic_put: bool,
    /// Whether a multipart completion may.
    atomic_multipart: bool,
}

impl PackWriter {
    pub(crate) fn new(
        remote: Arc<Remote>,
        prefix: Path,
        atomic_put: bool,
        atomic_multipart: bool,
    ) -> Self {
        Self {
            spool: Spool::new(&remote.spools),
            remote,
            prefix,
            atomic_put,
            atomic_multipart,
        }
    }
}

impl FileWriter for PackWriter {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.spool.write(data)
    }

    fn commit(self: Box<Self>, name: &str) -> Result<()> {
        let path = object_path(&self.prefix, FileType::Pack, name)?;
        let what = format!("cannot write {}", crate::what(FileType::Pack, name));
        let remote = &self.remote;
        let stored = match self.spool {
            Spool::Memory(buf) => {
                let bytes = Bytes::from(buf);
                let stored =
                    remote
                        .rt
                        .block_on(remote.create(&path, bytes.clone(), self.atomic_put));
                recycle(&remote.spools, bytes);
                stored
            }
            Spool::File { file, len } => remote.rt.block_on(remote.create_multipart(
                &path,
                &file,
                len,
                self.atomic_multipart,
            )),
        };
        stored.map_err(|e| remote.err(what, e))
    }
}

impl Remote {
    /// Stores `len` bytes of `file` at `path` part by part, refusing to replace an object
    /// (by the conditional completion, or a look first where that is not `conditional`). An
    /// upload that fails is aborted so that its parts do not linger.
    pub(crate) async fn create_multipart(
        &self,
        path: &Path,
        file: &File,
        len: u64,
        conditional: bool,
    ) -> std::result::Result<(), object_store::Error> {
        let Some(mp) = &self.multipart else {
            return Err(object_store::Error::NotSupported {
                source: "this store has no multipart uploads".into(),
            });
        };
        if !conditional {
            self.refuse_existing(path).await?;
        }
        let id = mp.create_multipart(path).await?;
        let parts = len.div_ceil(PART_SIZE);
        let uploaded = async {
            let parts: Vec<_> = futures::stream::iter(0..parts)
                .map(|i| {
                    let id = &id;
                    async move {
                        let offset = i * PART_SIZE;
                        let mut buf = vec![0; PART_SIZE.min(len - offset) as usize];
                        file.read_exact_at(&mut buf, offset).map_err(|e| {
                            object_store::Error::Generic {
                                store: "spool",
                                source: Box::new(e),
                            }
                        })?;
                        let idx = usize::try_from(i).expect("part count fits");
                        mp.put_part(path, id, idx, PutPayload::from(buf)).await
                    }
                })
                .buffered(PARTS_IN_FLIGHT)
                .try_collect()
                .await?;
            mp.complete_multipart(path, &id, parts).await
        }
        .await;
        match uploaded {
            Ok(_) => Ok(()),
            Err(e) => {
                let _ = mp.abort_multipart(path, &id).await;
                Err(match e {
                    // What a refused conditional completion is.
                    object_store::Error::Precondition { path, source } => {
                        object_store::Error::AlreadyExists { path, source }
                    }
                    e => e,
                })
            }
        }
    }
}

/// Builds object_store's usual HTTP client and wraps it in [`CreateOnly`].
#[derive(Debug, Default)]
pub(crate) struct CreateOnlyConnector;

impl HttpConnector for CreateOnlyConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(CreateOnly(
            ReqwestConnector::default().connect(options)?,
        )))
    }
}

/// Makes every S3 multipart completion (`POST …?uploadId=…`) conditional on the object not
/// existing. The header is not signed, exactly as object_store sends it for a conditional copy.
#[derive(Debug)]
struct CreateOnly(HttpClient);

fn is_completion(req: &HttpRequest) -> bool {
    req.method() == http::Method::POST
        && req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("uploadId=")))
}

#[async_trait]
impl HttpService for CreateOnly {
    async fn call(&self, mut req: HttpRequest) -> std::result::Result<HttpResponse, HttpError> {
        if is_completion(&req) {
            req.headers_mut().insert(
                http::header::IF_NONE_MATCH,
                http::HeaderValue::from_static("*"),
            );
        }
        self.0.execute(req).await
    }
}
