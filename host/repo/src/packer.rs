//! Saving blobs: dedup against the index, compress, seal, bundle into packs, upload, index.
//!
//! Callers on any thread call [`BlobSaver::save`]; the CPU work (hash, compression, sealing)
//! runs on the caller's thread, outside any lock. Sealed blobs are appended to the open pack of
//! their type — streamed straight into the store when the backend offers a
//! [`FileWriter`](crate::backend::FileWriter) (a local directory writes a temporary file), else
//! buffered — and the pack's name (the BLAKE3 hash of its bytes) is computed as it grows. Full
//! packs go through a rendezvous channel to upload threads, which commit or upload them, add
//! them to the in-memory index and write an index file every [`PACKS_PER_INDEX`] packs, so that
//! an interrupted backup leaves its uploaded packs indexed and the next one re-uses them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded};
use dashmap::DashSet;

use crate::backend::{FileType, FileWriter};
use crate::buffers::BufferPool;
use crate::error::{ErrorKind, Result};
use crate::format::index::{IndexFile, IndexPack};
use crate::format::pack::{BlobEntry, BlobType, Compression, header_bytes, seal_blob};
use crate::id::Id;
use crate::index::Index;
use crate::repository::Repository;

/// How many packs an index file describes before a new one is written.
pub const PACKS_PER_INDEX: usize = 16;

/// Where an open pack's bytes go.
enum Sink {
    Stream(Box<dyn FileWriter>),
    Memory(Vec<u8>),
}

impl Sink {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        match self {
            Sink::Stream(w) => w.write(data),
            Sink::Memory(buf) => {
                buf.extend_from_slice(data);
                Ok(())
            }
        }
    }
}

struct OpenPack {
    sink: Sink,
    hasher: blake3::Hasher,
    size: u64,
    entries: Vec<BlobEntry>,
}

/// A finished pack on its way to the store.
struct Finished {
    sink: Sink,
    id: Id,
    size: u64,
    entries: Vec<BlobEntry>,
}

/// Counts of what was added.
#[derive(Debug, Default, Clone, Copy)]
pub struct SaverStats {
    /// New data blobs.
    pub data_blobs: u64,
    /// New tree blobs.
    pub tree_blobs: u64,
    /// Plaintext bytes of new blobs.
    pub bytes_added: u64,
    /// Sealed bytes of new blobs.
    pub bytes_packed: u64,
    /// Packs uploaded.
    pub packs: u64,
}

/// The packs that hold what a saver saved or found stored (deduplicated against), filled as it
/// goes: a snapshot of its blobs is only restorable while all of them exist.
#[derive(Debug, Clone, Default)]
pub struct PacksUsed(Arc<DashSet<Id>>);

impl PacksUsed {
    /// The packs so far, in no particular order.
    pub fn ids(&self) -> Vec<Id> {
        self.0.iter().map(|id| *id).collect()
    }

    /// Records the packs the index places `blobs` in (blobs still being saved are recorded
    /// with their pack once it is uploaded).
    fn add_placed(&self, index: &Index, blobs: &[Id]) {
        for b in blobs {
            if let Some(loc) = index.get(b) {
                self.0.insert(loc.pack);
            }
        }
    }
}

struct Shared {
    repo: Repository,
    index: Arc<Index>,
    used: PacksUsed,
    pending_index: Mutex<IndexFile>,
    error: Mutex<Option<crate::Error>>,
    packs: AtomicU64,
    buffers: BufferPool,
}

impl Shared {
    fn upload(&self, pack: Finished) -> Result<()> {
        let Finished {
            sink,
            id,
            size,
            entries,
        } = pack;
        let name = id.to_hex();
        let stored = match sink {
            Sink::Stream(w) => w.commit(&name),
            Sink::Memory(buf) => {
                let r = self.repo.backend().write(FileType::Pack, &name, &buf);
                self.buffers.put(buf);
                r
            }
        };
        match stored {
            Ok(()) => {}
            // Content-addressed: an existing pack of this name holds these very bytes.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.context(format!("failed to upload pack {id}"))),
        }
        let pack = IndexPack {
            id,
            size,
            blobs: entries,
        };
        self.index.add_pack(&pack);
        self.used.0.insert(id);
        self.packs.fetch_add(1, Ordering::Relaxed);
        let full = {
            let mut pending = self.pending_index.lock().expect("index lock");
            pending.packs.push(pack);
            (pending.packs.len() >= PACKS_PER_INDEX).then(|| std::mem::take(&mut *pending))
        };
        if let Some(file) = full {
            self.repo.save_file(FileType::Index, &file)?;
        }
        Ok(())
    }

    fn new_pack(&self) -> Result<OpenPack> {
        let sink = match self.repo.backend().writer(FileType::Pack)? {
            Some(w) => Sink::Stream(w),
            None => {
                let mut buf = self.buffers.get();
                let config = self.repo.config();
                // Room for a full pack, the blob that overshoots it and the header, so that
                // the buffer never grows by copying.
                let pack = config.pack_size as usize;
                buf.reserve(pack + config.chunker.max_size as usize + pack / 32 + 4096);
                Sink::Memory(buf)
            }
        };
        Ok(OpenPack {
            sink,
            hasher: blake3::Hasher::new(),
            size: 0,
            entries: Vec::new(),
        })
    }
}

/// Saves blobs into packs of one repository.
pub struct BlobSaver {
    shared: Arc<Shared>,
    compression: Compression,
    dry_run: bool,
    open: [Mutex<Option<OpenPack>>; 2],
    tx: Option<Sender<Finished>>,
    threads: Vec<JoinHandle<()>>,
    data_blobs: AtomicU64,
    tree_blobs: AtomicU64,
    bytes_added: AtomicU64,
    bytes_packed: AtomicU64,
}

impl BlobSaver {
    /// A saver adding to `index`. With `dry_run` nothing is written but counts are kept.
    pub fn new(
        repo: &Repository,
        index: Arc<Index>,
        compression: Compression,
        dry_run: bool,
    ) -> Self {
        let shared = Arc::new(Shared {
            repo: repo.clone(),
            index,
            used: PacksUsed::default(),
            pending_index: Mutex::default(),
            error: Mutex::default(),
            packs: AtomicU64::new(0),
            buffers: BufferPool::new(repo.backend().pack_writers() + 2),
        });
        let uploaders = repo.backend().pack_writers().max(1);
        // Rendezvous: a finished pack waits for a free upload thread, so at most
        // `uploaders + 1` finished packs exist at a time.
        let (tx, rx): (_, Receiver<Finished>) = bounded(0);
        let threads = (0..uploaders)
            .map(|_| {
                let rx = rx.clone();
                let shared = shared.clone();
                std::thread::spawn(move || {
                    for pack in rx {
                        if let Err(e) = shared.upload(pack) {
                            shared.error.lock().expect("error lock").get_or_insert(e);
                        }
                    }
                })
            })
            .collect();
        Self {
            shared,
            compression,
            dry_run,
            open: Default::default(),
            tx: Some(tx),
            threads,
            data_blobs: AtomicU64::new(0),
            tree_blobs: AtomicU64::new(0),
            bytes_added: AtomicU64::new(0),
            bytes_packed: AtomicU64::new(0),
        }
    }

    /// The first upload error, if any (checked by every save so a failure stops the run soon).
    fn check_failed(&self) -> Result<()> {
        match self.shared.error.lock().expect("error lock").take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Saves a blob unless the repository has it; returns its id and whether it was new.
    ///
    /// # Errors
    /// The first upload error of any thread.
    pub fn save(&self, tpe: BlobType, plaintext: &[u8]) -> Result<(Id, bool)> {
        let id = self.shared.repo.key().blob_id(plaintext);
        self.save_with_id(tpe, id, plaintext)
    }

    /// As [`BlobSaver::save`] with the id already computed.
    ///
    /// # Errors
    /// The first upload error of any thread.
    pub fn save_with_id(&self, tpe: BlobType, id: Id, plaintext: &[u8]) -> Result<(Id, bool)> {
        self.check_failed()?;
        if !self.shared.index.reserve(id, tpe) {
            self.shared
                .used
                .add_placed(&self.shared.index, std::slice::from_ref(&id));
            return Ok((id, false));
        }
        let (sealed, compressed) = if self.dry_run {
            (Vec::new(), false)
        } else {
            seal_blob(
                self.shared.repo.key(),
                tpe,
                &id,
                plaintext,
                self.compression,
            )
        };
        match tpe {
            BlobType::Data => &self.data_blobs,
            BlobType::Tree => &self.tree_blobs,
        }
        .fetch_add(1, Ordering::Relaxed);
        self.bytes_added
            .fetch_add(plaintext.len() as u64, Ordering::Relaxed);
        self.bytes_packed
            .fetch_add(sealed.len() as u64, Ordering::Relaxed);
        if self.dry_run {
            return Ok((id, true));
        }
        let full = {
            let mut slot = self.open[tpe as usize].lock().expect("pack lock");
            let open = match &mut *slot {
                Some(open) => open,
                None => slot.insert(self.shared.new_pack()?),
            };
            open.entries.push(BlobEntry {
                id,
                tpe,
                offset: u32::try_from(open.size).expect("pack below 4 GiB"),
                length: u32::try_from(sealed.len()).expect("blob below 4 GiB"),
                raw_length: u32::try_from(plaintext.len()).expect("blob below 4 GiB"),
                compressed,
            });
            open.sink.write(&sealed)?;
            open.hasher.update(&sealed);
            open.size += sealed.len() as u64;
            if open.size >= u64::from(self.shared.repo.config().pack_size) {
                slot.take()
            } else {
                None
            }
        };
        if let Some(pack) = full {
            self.send(pack)?;
        }
        Ok((id, true))
    }

    fn send(&self, mut pack: OpenPack) -> Result<()> {
        let header = header_bytes(self.shared.repo.key(), &pack.entries);
        pack.sink.write(&header)?;
        pack.hasher.update(&header);
        let finished = Finished {
            sink: pack.sink,
            id: Id(*pack.hasher.finalize().as_bytes()),
            size: pack.size + header.len() as u64,
            entries: pack.entries,
        };
        self.tx
            .as_ref()
            .expect("saver not finished")
            .send(finished)
            .expect("upload threads outlive the saver");
        Ok(())
    }

    /// Records that the caller uses `blobs`, found in the index without saving them (the
    /// content of an unchanged file), for [`BlobSaver::packs_used`].
    pub fn note_reused(&self, blobs: &[Id]) {
        self.shared.used.add_placed(&self.shared.index, blobs);
    }

    /// The packs holding every blob saved, found stored, or noted so far; it keeps filling
    /// until [`BlobSaver::finish`] has uploaded the last packs.
    pub fn packs_used(&self) -> PacksUsed {
        self.shared.used.clone()
    }

    /// Uploads the open packs, waits for every upload and writes the last index file.
    ///
    /// # Errors
    /// The first upload or index error.
    pub fn finish(mut self) -> Result<SaverStats> {
        for i in 0..2 {
            let pack = self.open[i].lock().expect("pack lock").take();
            if let Some(pack) = pack {
                self.send(pack)?;
            }
        }
        // Index what was uploaded even when an upload failed, so nothing stored is orphaned.
        let closed = self.close();
        self.write_pending_index()?;
        closed?;
        Ok(SaverStats {
            data_blobs: self.data_blobs.load(Ordering::Relaxed),
            tree_blobs: self.tree_blobs.load(Ordering::Relaxed),
            bytes_added: self.bytes_added.load(Ordering::Relaxed),
            bytes_packed: self.bytes_packed.load(Ordering::Relaxed),
            packs: self.shared.packs.load(Ordering::Relaxed),
        })
    }

    fn write_pending_index(&self) -> Result<()> {
        let rest = std::mem::take(&mut *self.shared.pending_index.lock().expect("index lock"));
        if !rest.packs.is_empty() {
            self.shared.repo.save_file(FileType::Index, &rest)?;
        }
        Ok(())
    }

    /// Stops the upload threads after they drain the queue; reports their first error.
    fn close(&mut self) -> Result<()> {
        self.tx.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.check_failed()
    }

    /// Abandons open packs but keeps what was uploaded indexed: used when a backup is cancelled
    /// or fails, so the next run re-uses the uploaded packs.
    ///
    /// # Errors
    /// When the index of the uploaded packs cannot be written.
    pub fn abandon(mut self) -> Result<()> {
        let _ = self.close();
        self.write_pending_index()
    }
}

impl Drop for BlobSaver {
    fn drop(&mut self) {
        self.tx.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
