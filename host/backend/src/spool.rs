//! A pack on its way to a remote store. Its name, the hash of its bytes, is known only when it
//! is complete, so it is held until then: in memory up to [`SPILL_AT`], in an unnamed
//! temporary file (`TMPDIR`, 0600, gone with the process whatever happens) beyond. Packs are
//! 16 MiB by default, so they stay in memory and the file is for repositories with larger ones.
//!
//! A pack's memory goes back to a pool once it is stored ([`recycle`]). A fresh buffer for
//! every pack cost a page fault per 4 KiB written into it and an unmap when it was freed
//! (about 0.5 s of CPU per GiB stored), and a temporary file for every pack cost the kernel's
//! page cache as much again: bench/gateway.sh's backup of a 2 GiB file through `rest:` spent
//! two thirds of its CPU in writing its spool files.

use std::fs::File;
use std::io::Write as _;

use bytes::Bytes;
use cairn_repo::buffers::BufferPool;
use cairn_repo::{Error, ErrorKind, Result};

/// A pack larger than this leaves memory for a temporary file.
pub(crate) const SPILL_AT: usize = 32 << 20;

/// Where a pack's bytes are while it is written.
pub(crate) enum Spool {
    Memory(Vec<u8>),
    File { file: File, len: u64 },
}

impl Spool {
    /// An empty spool in a buffer from `pool`.
    pub(crate) fn new(pool: &BufferPool) -> Self {
        let mut buf = pool.get();
        buf.reserve(SPILL_AT);
        Spool::Memory(buf)
    }

    /// Appends `data`, moving to a temporary file when memory would outgrow [`SPILL_AT`].
    ///
    /// # Errors
    /// The temporary file cannot be made or written.
    pub(crate) fn write(&mut self, data: &[u8]) -> Result<()> {
        if let Spool::Memory(buf) = self
            && buf.len() + data.len() > SPILL_AT
        {
            let mut file = tempfile::tempfile().map_err(spool_error)?;
            file.write_all(buf).map_err(spool_error)?;
            *self = Spool::File {
                file,
                len: buf.len() as u64,
            };
        }
        match self {
            Spool::Memory(buf) => buf.extend_from_slice(data),
            Spool::File { file, len } => {
                file.write_all(data).map_err(spool_error)?;
                *len += data.len() as u64;
            }
        }
        Ok(())
    }
}

/// Puts the buffer behind `bytes` back into `pool`, if nothing else holds it any more.
pub(crate) fn recycle(pool: &BufferPool, bytes: Bytes) {
    if let Ok(buf) = bytes.try_into_mut() {
        pool.put(Vec::from(buf));
    }
}

fn spool_error(e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Backend,
        format!(
            "cannot spool a pack to a temporary file in {} (set TMPDIR to a directory with room)",
            std::env::temp_dir().display()
        ),
    )
    .with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spool_moves_to_a_file_past_its_limit_with_every_byte() {
        let pool = BufferPool::new(1);
        let mut spool = Spool::new(&pool);
        let piece = vec![7u8; 1 << 20];
        for _ in 0..(SPILL_AT >> 20) {
            spool.write(&piece).unwrap();
        }
        assert!(matches!(spool, Spool::Memory(ref b) if b.len() == SPILL_AT));
        spool.write(b"tail").unwrap();
        let Spool::File { file, len } = spool else {
            panic!("a spool past its limit is a file");
        };
        assert_eq!(len, SPILL_AT as u64 + 4);
        assert_eq!(file.metadata().unwrap().len(), len);
        let mut end = [0u8; 5];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut end, len - 5).unwrap();
        assert_eq!(&end, b"\x07tail");
    }

    #[test]
    fn a_stored_buffer_is_used_again_unless_still_held() {
        let pool = BufferPool::new(2);
        let Spool::Memory(mut buf) = Spool::new(&pool) else {
            panic!("a new spool is in memory");
        };
        buf.extend_from_slice(b"pack");
        let ptr = buf.as_ptr();
        let bytes = Bytes::from(buf);
        let held = bytes.clone();
        recycle(&pool, bytes);
        assert_eq!(
            pool.get().capacity(),
            0,
            "a buffer still held is not pooled"
        );
        recycle(&pool, held);
        let again = pool.get();
        assert_eq!((again.as_ptr(), again.len()), (ptr, 0));
    }
}
