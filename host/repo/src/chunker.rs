//! Content-defined chunking: FastCDC v2020 (normalization level 1) with a keyed gear table.
//!
//! The stream is read in large batches; a boundary is cut within a batch when the chunker finds
//! it with at least `avg_size` bytes ahead, or with `max_size` bytes (or the end of the stream)
//! ahead, so the cuts are the same whatever the batch size. The uncut tail (usually less than
//! one chunk) is carried into the next batch. A batch's chunks are slices of
//! one buffer, so chunking copies nothing, and a caller can process one batch's chunks in
//! parallel while the next batch is read.

use std::io::{self, Read};
use std::ops::Range;

use fastcdc::v2020::{FastCDC, Normalization};

use crate::format::config::ChunkerParams;

/// Bytes read per batch beyond the largest chunk.
const BATCH_EXTRA: usize = 4 * 1024 * 1024;

/// One read of a stream, cut into chunks.
#[derive(Debug, Default)]
pub struct Batch {
    /// The bytes the chunks point into.
    pub buf: Vec<u8>,
    /// The chunks, in order.
    pub chunks: Vec<Range<usize>>,
    /// The bytes after the last cut (in `buf`), which start the next batch.
    pub carry: Range<usize>,
    /// Whether the stream ended (no more batches follow).
    pub eof: bool,
}

/// Cuts streams into chunks.
#[derive(Debug, Clone, Copy)]
pub struct Chunker {
    params: ChunkerParams,
    batch: usize,
}

impl Chunker {
    /// A chunker with validated `params`.
    pub fn new(params: ChunkerParams) -> Self {
        Self {
            params,
            batch: params.max_size as usize + BATCH_EXTRA.max(4 * params.avg_size as usize),
        }
    }

    /// Reads the next batch into `buf` (a recycled buffer; its content is dropped), starting
    /// with `carry`, the uncut tail of the previous batch.
    ///
    /// # Errors
    /// The reader's errors.
    pub fn read_batch(
        &self,
        reader: &mut dyn Read,
        carry: &[u8],
        mut buf: Vec<u8>,
    ) -> io::Result<Batch> {
        buf.clear();
        buf.extend_from_slice(carry);
        let start = buf.len();
        let want = self.batch.saturating_sub(start);
        // `reserve` + `read_to_end` on a `Take` fills spare capacity without zeroing it (a
        // recycled 16 MiB buffer for a 4 KiB file costs nothing) and, once the limit is hit,
        // probes for the end with a small stack read instead of growing the buffer.
        buf.reserve(want);
        reader.take(want as u64).read_to_end(&mut buf)?;
        let filled = buf.len();
        let eof = filled - start < want;
        let (chunks, end) = self.cut(&buf, eof);
        Ok(Batch {
            carry: end..buf.len(),
            buf,
            chunks,
            eof,
        })
    }

    /// Cuts `buf`; when not at the end of the stream, keeps back fewer than `max_size` bytes.
    /// Returns the chunks and where the uncut tail starts.
    fn cut(&self, buf: &[u8], eof: bool) -> (Vec<Range<usize>>, usize) {
        let p = self.params;
        let mut chunks = Vec::new();
        let mut start = 0;
        if !buf.is_empty() {
            let cdc = FastCDC::with_level_and_seed(
                buf,
                p.min_size,
                p.avg_size,
                p.max_size,
                Normalization::Level1,
                p.seed,
            );
            while start < buf.len() {
                let remaining = buf.len() - start;
                if eof || remaining >= p.max_size as usize {
                    let (_, end) = cdc.cut(start, remaining);
                    chunks.push(start..end);
                    start = end;
                    continue;
                }
                // Short of a full window: a boundary found before the end of the data is the
                // one the whole stream would give (with at least `avg_size` bytes ahead the
                // chunker scans with the same masks); none found means more data is needed.
                if remaining < p.avg_size as usize {
                    break;
                }
                let (_, end) = cdc.cut(start, remaining);
                if end >= buf.len() {
                    break;
                }
                chunks.push(start..end);
                start = end;
            }
        }
        (chunks, start)
    }

    /// All chunk lengths of a stream (for tests and tools).
    ///
    /// # Errors
    /// The reader's errors.
    pub fn lengths(&self, mut reader: impl Read) -> io::Result<Vec<usize>> {
        let mut out = Vec::new();
        let mut b = self.read_batch(&mut reader, &[], Vec::new())?;
        loop {
            out.extend(b.chunks.iter().map(|r| r.len()));
            if b.eof {
                return Ok(out);
            }
            b = self.read_batch(&mut reader, &b.buf[b.carry.clone()], Vec::new())?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, mut state: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    fn params() -> ChunkerParams {
        ChunkerParams {
            min_size: 512 * 1024,
            avg_size: 1024 * 1024,
            max_size: 8 * 1024 * 1024,
            seed: 0x0123_4567_89ab_cdef,
        }
    }

    /// Golden test: pins chunk boundaries for a fixed input and seed. A change here changes
    /// every repository's dedup and is a format change.
    #[test]
    fn golden_chunk_boundaries() {
        let data = pseudo_random(12 * 1024 * 1024, 42);
        let lens = Chunker::new(params()).lengths(&data[..]).unwrap();
        assert_eq!(lens.iter().sum::<usize>(), data.len());
        assert_eq!(
            lens,
            vec![
                808_345, 1_067_176, 1_186_483, 556_450, 905_535, 1_138_987, 2_662_082, 2_938_226,
                721_380, 598_248
            ],
            "update only with a format version bump"
        );
    }

    #[test]
    fn boundaries_do_not_depend_on_batch_size() {
        let data = pseudo_random(40 * 1024 * 1024, 7);
        let a = Chunker::new(params()).lengths(&data[..]).unwrap();
        let mut small = Chunker::new(params());
        small.batch = 8 * 1024 * 1024 + 12345;
        let b = small.lengths(&data[..]).unwrap();
        assert_eq!(a, b);
        assert!(a.len() > 10);
    }

    #[test]
    fn boundaries_do_not_depend_on_batch_size_small_chunks() {
        let p = ChunkerParams {
            min_size: 16 * 1024,
            avg_size: 64 * 1024,
            max_size: 256 * 1024,
            seed: 5,
        };
        // Mixed data: random stretches and runs of zeros (which give max-size chunks).
        let mut data = pseudo_random(6 * 1024 * 1024, 3);
        data[1_000_000..2_500_000].fill(0);
        let whole = Chunker::new(p).lengths(&data[..]).unwrap();
        for batch in [256 * 1024 + 1, 256 * 1024 + 777, 300_000, 1 << 20, 3 << 20] {
            let mut c = Chunker::new(p);
            c.batch = batch;
            assert_eq!(c.lengths(&data[..]).unwrap(), whole, "batch {batch}");
        }
        assert!(whole.contains(&(256 * 1024)));
    }

    #[test]
    fn small_and_empty_streams() {
        let c = Chunker::new(params());
        assert_eq!(c.lengths(&b""[..]).unwrap(), Vec::<usize>::new());
        assert_eq!(c.lengths(&[1u8; 100][..]).unwrap(), vec![100]);
    }
}
