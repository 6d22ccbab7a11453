//! A bucket's objects below a prefix as a backup source and as a restore's target
//! (`s3:http(s)://HOST:PORT/BUCKET/PREFIX`, `s3://BUCKET/PREFIX`, `az://CONTAINER/PREFIX`,
//! `gs://BUCKET/PREFIX`, with credentials from the same environment as a repository there).
//!
//! Objects are read as streams (never whole in memory) and written in one request up to
//! [`SINGLE_PUT`], in parts above it. Unlike a repository's store, a put replaces what is
//! there and S3 payloads are signed with their hash: these are plain objects.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use cairn_repo::ops::backup::{ObjectInfo, ObjectSource};
use cairn_repo::ops::restore::ObjectSink;
use cairn_repo::{Error, Result};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, WriteMultipart};

use crate::RemoteOptions;
use crate::object::{Remote, azure_store, gcs_store, runtime, s3_store};

/// Objects up to this size are put in one request; larger ones in parts of this size.
const SINGLE_PUT: usize = 8 << 20;

/// Parts of one object in flight at once.
const PARTS_AT_ONCE: usize = 4;

/// The most parts an object may have (S3's and GCS's limit).
const MAX_PARTS: u64 = 10_000;

/// The most objects one backup lists (each is held in memory until the snapshot is saved).
const MAX_OBJECTS: usize = 20_000_000;

/// The objects of a bucket below a prefix.
pub struct Bucket {
    remote: Remote,
    prefix: Path,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bucket({})", self.remote.location)
    }
}

impl Bucket {
    /// The bucket at `location` (see the module's documentation).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a location that is not a bucket's or is malformed.
    pub fn open(location: &str, opts: &RemoteOptions) -> Result<Bucket> {
        let (store, prefix, shown): (Arc<dyn ObjectStore>, String, String) =
            if location.starts_with("s3:") {
                let (store, prefix, shown) = s3_store(location, opts, false)?;
                (Arc::new(store), prefix, shown)
            } else if location.starts_with("az://") {
                let (store, prefix) = azure_store(location, opts, false)?;
                (Arc::new(store), prefix.to_owned(), location.to_owned())
            } else if location.starts_with("gs://") {
                let (store, prefix) = gcs_store(location, opts, false)?;
                (Arc::new(store), prefix.to_owned(), location.to_owned())
            } else {
                return Err(Error::invalid(format!(
                    "`{location}` is not a bucket; use s3:http(s)://HOST:PORT/BUCKET/PREFIX, \
                     s3://BUCKET/PREFIX, az://CONTAINER/PREFIX or gs://BUCKET/PREFIX"
                )));
            };
        let prefix = Path::parse(prefix.trim_matches('/')).map_err(|e| {
            Error::invalid(format!(
                "`{location}`: the prefix is not a valid object name: {e}"
            ))
        })?;
        Ok(Bucket {
            remote: Remote {
                store,
                multipart: None,
                rt: runtime()?,
                location: shown.trim_end_matches('/').to_owned(),
                spools: cairn_repo::buffers::BufferPool::new(0),
            },
            prefix,
        })
    }

    /// The object name of `key` (relative to the prefix).
    fn path(&self, key: &str) -> Result<Path> {
        let full = if self.prefix.as_ref().is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix.as_ref())
        };
        match Path::parse(&full) {
            Ok(p) if !key.is_empty() && !key.ends_with('/') => Ok(p),
            Ok(_) => Err(Error::invalid(format!("`{key}` cannot be an object's key"))),
            Err(e) => Err(Error::invalid(format!(
                "`{}` cannot be an object's key: {e}",
                key.escape_debug()
            ))),
        }
    }

    /// What `meta` says, with the key relative to the prefix (`None` for a key outside it,
    /// or the prefix itself: a folder marker).
    fn info(&self, meta: &ObjectMeta) -> Option<ObjectInfo> {
        let full: &str = meta.location.as_ref();
        let key = match self.prefix.as_ref() {
            "" => full,
            p => full.strip_prefix(p)?.strip_prefix('/')?,
        };
        if key.is_empty() {
            return None;
        }
        let t = meta.last_modified;
        let modified = jiff::Timestamp::new(
            t.timestamp(),
            i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
        )
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        Some(ObjectInfo {
            key: key.to_owned(),
            size: meta.size,
            modified,
            etag: meta.e_tag.as_deref().and_then(strong_etag),
        })
    }
}

/// An ETag without the quotes HTTP puts around it; none for an empty or weak one (`W/…`
/// does not promise the same bytes).
fn strong_etag(etag: &str) -> Option<String> {
    let etag = etag.trim();
    let plain = etag.trim_matches('"');
    (!plain.is_empty() && !etag.starts_with("W/")).then(|| plain.to_owned())
}

/// An object's body as a reader: each read waits for the next piece of the stream.
struct Body {
    rt: tokio::runtime::Handle,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    piece: Bytes,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.piece.is_empty() {
            match self.rt.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(piece)) => self.piece = piece,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.piece.len());
        buf[..n].copy_from_slice(&self.piece.split_to(n));
        Ok(n)
    }
}

impl ObjectSource for Bucket {
    fn location(&self) -> String {
        self.remote.location.clone()
    }

    fn list(&self) -> Result<Vec<ObjectInfo>> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let remote = &self.remote;
        remote.rt.block_on(async {
            let mut listing = remote.store.list(prefix);
            let mut out = Vec::new();
            while let Some(meta) = listing
                .try_next()
                .await
                .map_err(|e| list_error(remote, e))?
            {
                if out.len() == MAX_OBJECTS {
                    return Err(Error::invalid(format!(
                        "{} holds more than {MAX_OBJECTS} objects, more than one backup takes; \
                         back up its prefixes one by one",
                        remote.location
                    )));
                }
                out.extend(self.info(&meta));
            }
            Ok(out)
        })
    }

    fn open(&self, key: &str) -> Result<(ObjectInfo, Box<dyn Read + Send>)> {
        let path = self.path(key)?;
        let got = self
            .remote
            .rt
            .block_on(self.remote.store.get(&path))
            .map_err(|e| self.remote.err(format!("cannot read object {key}"), e))?;
        let info = self.info(&got.meta).ok_or_else(|| {
            Error::invalid(format!(
                "object {key} is not below {}",
                self.remote.location
            ))
        })?;
        let body = Body {
            rt: self.remote.rt.handle().clone(),
            stream: got.into_stream(),
            piece: Bytes::new(),
        };
        Ok((info, Box::new(body)))
    }
}

/// A listing's error. A key object_store cannot take (an empty, `.` or `..` part, a control
/// character) stops the whole listing: it is named, with what to do.
fn list_error(remote: &Remote, e: object_store::Error) -> Error {
    if let object_store::Error::InvalidPath { source } = &e {
        return Error::invalid(format!(
            "cannot list the objects at {}: a key there is not a clean path and stops the \
             listing ({}); rename or remove that object",
            remote.location,
            source.to_string().escape_debug()
        ));
    }
    remote.err("cannot list the objects".into(), e)
}

/// Reads up to `buf.len()` bytes (fewer only at the end of `content`).
fn fill(content: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match content.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl ObjectSink for Bucket {
    fn location(&self) -> String {
        self.remote.location.clone()
    }

    fn put(&self, key: &str, size: u64, content: &mut dyn Read) -> Result<()> {
        let path = self.path(key)?;
        let remote = &self.remote;
        let cannot_read = |e| Error::io(format!("cannot read the content of {key}"), e);
        let cannot_put = |e| remote.err(format!("cannot put object {key}"), e);
        // What `size` says only sizes the first buffer: the content decides.
        let mut first =
            Vec::with_capacity(usize::try_from(size).map_or(SINGLE_PUT, |s| s.min(SINGLE_PUT)) + 1);
        content
            .take(SINGLE_PUT as u64 + 1)
            .read_to_end(&mut first)
            .map_err(cannot_read)?;
        if first.len() <= SINGLE_PUT {
            return remote
                .rt
                .block_on(remote.store.put(&path, first.into()))
                .map(|_| ())
                .map_err(cannot_put);
        }
        let upload = remote
            .rt
            .block_on(remote.store.put_multipart(&path))
            .map_err(cannot_put)?;
        // Parts large enough that the object fits in the store's most parts.
        let part = usize::try_from(size.div_ceil(MAX_PARTS))
            .unwrap_or(usize::MAX)
            .max(SINGLE_PUT);
        let mut parts = WriteMultipart::new_with_chunk_size(upload, part);
        let mut n = first.len();
        let mut buf = first;
        buf.resize(SINGLE_PUT + 1, 0);
        loop {
            {
                let _in_runtime = remote.rt.enter();
                parts.write(&buf[..n]);
            }
            if let Err(e) = remote.rt.block_on(parts.wait_for_capacity(PARTS_AT_ONCE)) {
                let _ = remote.rt.block_on(parts.abort());
                return Err(cannot_put(e));
            }
            n = match fill(content, &mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = remote.rt.block_on(parts.abort());
                    return Err(cannot_read(e));
                }
            };
        }
        remote
            .rt
            .block_on(parts.finish())
            .map(|_| ())
            .map_err(cannot_put)
    }
}
