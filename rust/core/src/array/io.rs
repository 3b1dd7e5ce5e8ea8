//! The parallel read and write paths.
//!
//! A selection becomes one work item per chunk it touches; items run in parallel on the
//! engine's pool, each fetching, decoding and copying its own chunk. A chunk whose share of the
//! output is one contiguous block (a whole chunk, read into a region of matching row layout)
//! decodes straight into the output; others decode into a per-thread scratch buffer and copy
//! their rows out. Nothing allocates a buffer the size of the selection.

use std::cell::RefCell;

use rayon::prelude::*;

use super::copy::{all_fill, c_strides, fill_elements, for_each_row, SharedBuffer};
use super::selection::{DimPiece, PieceMap, Selection};
use super::Array;
use crate::concurrency;
use crate::error::{CodecError, Error, Result};

/// Scratch buffers above this size are freed after use rather than kept for the next chunk.
const KEEP_SCRATCH_BYTES: usize = 64 << 20;

thread_local! {
    /// Stored (encoded) bytes of the chunk being processed.
    static STORED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// A decoded chunk.
    static DECODED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer from `slot`, taken out for the duration so a
/// nested use cannot alias it.
fn with_scratch<T>(
    slot: &'static std::thread::LocalKey<RefCell<Vec<u8>>>,
    f: impl FnOnce(&mut Vec<u8>) -> T,
) -> T {
    let mut buf = slot.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let result = f(&mut buf);
    if buf.capacity() <= KEEP_SCRATCH_BYTES {
        slot.with(|s| *s.borrow_mut() = buf);
    }
    result
}

/// One chunk's share of a selection.
struct ChunkShare<'a> {
    coords: Vec<u64>,
    maps: Vec<&'a PieceMap>,
}

/// All chunk shares of a selection, enumerated without building the cross product.
struct Plan {
    pieces: Vec<Vec<DimPiece>>,
    out_shape: Vec<u64>,
    total: usize,
}

impl Plan {
    fn new(selection: &Selection, chunk_shape: &[u64]) -> Self {
        let pieces = selection.pieces(chunk_shape);
        let total = pieces.iter().map(Vec::len).product();
        Self {
            pieces,
            out_shape: selection.shape(),
            total,
        }
    }

    fn share(&self, mut i: usize) -> ChunkShare<'_> {
        let n = self.pieces.len();
        let mut coords = vec![0u64; n];
        let mut maps = Vec::with_capacity(n);
        for d in (0..n).rev() {
            let count = self.pieces[d].len();
            let piece = &self.pieces[d][i % count];
            i /= count;
            coords[d] = piece.chunk;
            maps.push(&piece.map);
        }
        maps.reverse();
        ChunkShare { coords, maps }
    }
}

/// If a chunk's share is the whole chunk and lands on one contiguous block of the output,
/// the element offset of that block.
fn contiguous_offset(maps: &[&PieceMap], chunk_shape: &[u64], out_shape: &[u64]) -> Option<usize> {
    if !maps.iter().zip(chunk_shape).all(|(m, &c)| m.is_whole(c)) {
        return None;
    }
    // Dimensions before the first one longer than 1 do not break contiguity; every one after
    // it must span the whole output.
    let first = chunk_shape
        .iter()
        .position(|&c| c != 1)
        .unwrap_or(chunk_shape.len());
    if (first + 1..chunk_shape.len()).any(|d| out_shape[d] != chunk_shape[d]) {
        return None;
    }
    let strides = c_strides(out_shape);
    Some(
        maps.iter()
            .zip(strides)
            .map(|(m, s)| m.out_start() as usize * s)
            .sum(),
    )
}

impl Array {
    fn corrupt(&self, key: &str, source: CodecError) -> Error {
        Error::CorruptChunk {
            key: format!("{key} in {}", self.store.describe()),
            source,
        }
    }

    fn checked_len(&self, selection: &Selection, len: usize) -> Result<()> {
        selection.check(self.shape())?;
        let expected = selection.num_elements() as usize * self.data_type().size();
        if len != expected {
            return Err(Error::InvalidArgument(format!(
                "the buffer holds {len} bytes; the selection {:?} needs {expected}",
                selection.shape()
            )));
        }
        Ok(())
    }

    /// Runs `work` for every share of the plan: inline for a single chunk (a pool round trip
    /// would cost more than the work), else in parallel.
    fn for_each_share(
        &self,
        plan: &Plan,
        work: impl Fn(ChunkShare<'_>) -> Result<()> + Sync,
    ) -> Result<()> {
        match plan.total {
            0 => Ok(()),
            1 => work(plan.share(0)),
            n => concurrency::install(|| {
                (0..n).into_par_iter().try_for_each(|i| {
                    concurrency::mark_worker();
                    work(plan.share(i))
                })
            }),
        }
    }

    /// Reads the selection into `out`: C order, native endian, exactly the selection's size.
    pub fn read_into(&self, selection: &Selection, out: &mut [u8]) -> Result<()> {
        self.checked_len(selection, out.len())?;
        let plan = Plan::new(selection, self.chunk_shape());
        let shared = SharedBuffer::new(out);
        self.for_each_share(&plan, |share| {
            self.read_share(&share, &plan.out_shape, &shared)
        })
    }

    fn read_share(
        &self,
        share: &ChunkShare<'_>,
        out_shape: &[u64],
        out: &SharedBuffer,
    ) -> Result<()> {
        let size = self.data_type().size();
        let chunk_shape = self.chunk_shape();
        let key = self.chunk_key(&share.coords);
        let chunk_bytes = self.codecs.decoded_repr().nbytes();
        with_scratch(&STORED, |stored| {
            let found = self.store.get_into(&key, stored)?;
            if let Some(offset) = contiguous_offset(&share.maps, chunk_shape, out_shape) {
                // SAFETY: this block of the output belongs to this chunk alone.
                let dst = unsafe { out.slice(offset * size, chunk_bytes) };
                if found {
                    self.codecs
                        .decode_into(stored, dst)
                        .map_err(|e| self.corrupt(&key, e))?;
                } else {
                    fill_elements(dst, &self.fill_value);
                }
                return Ok(());
            }
            if !found {
                for_each_row(&share.maps, chunk_shape, out_shape, size, &mut |o, _, n| {
                    // SAFETY: every row of this share belongs to this chunk alone.
                    fill_elements(unsafe { out.slice(o, n) }, &self.fill_value);
                });
                return Ok(());
            }
            with_scratch(&DECODED, |decoded| {
                decoded.resize(chunk_bytes, 0);
                self.codecs
                    .decode_into(stored, decoded)
                    .map_err(|e| self.corrupt(&key, e))?;
                for_each_row(&share.maps, chunk_shape, out_shape, size, &mut |o, c, n| {
                    // SAFETY: every row of this share belongs to this chunk alone.
                    unsafe { out.slice(o, n) }.copy_from_slice(&decoded[c..c + n]);
                });
                Ok(())
            })
        })
    }

    /// Writes `data` (C order, native endian, shaped as the selection) into the selection.
    /// Chunks the selection covers only in part are read, updated and rewritten. A chunk left
    /// holding only the fill value is deleted rather than stored, unless `write_empty_chunks`.
    /// Returns once every chunk is in the store.
    pub fn write(
        &self,
        selection: &Selection,
        data: &[u8],
        write_empty_chunks: bool,
    ) -> Result<()> {
        self.checked_len(selection, data.len())?;
        let plan = Plan::new(selection, self.chunk_shape());
        self.for_each_share(&plan, |share| {
            self.write_share(&share, &plan.out_shape, data, write_empty_chunks)
        })
    }

    fn write_share(
        &self,
        share: &ChunkShare<'_>,
        in_shape: &[u64],
        data: &[u8],
        write_empty_chunks: bool,
    ) -> Result<()> {
        let size = self.data_type().size();
        let chunk_shape = self.chunk_shape();
        let key = self.chunk_key(&share.coords);
        let chunk_bytes = self.codecs.decoded_repr().nbytes();
        if let Some(offset) = contiguous_offset(&share.maps, chunk_shape, in_shape) {
            let start = offset * size;
            return self.store_chunk(&key, &data[start..start + chunk_bytes], write_empty_chunks);
        }
        // The part of the chunk inside the array, per dimension.
        let covered = share.maps.iter().enumerate().all(|(d, m)| {
            let extent = (self.shape()[d] - share.coords[d] * chunk_shape[d]).min(chunk_shape[d]);
            m.covers(extent)
        });
        with_scratch(&DECODED, |chunk| {
            chunk.resize(chunk_bytes, 0);
            let found = !covered
                && with_scratch(&STORED, |stored| -> Result<bool> {
                    if !self.store.get_into(&key, stored)? {
                        return Ok(false);
                    }
                    self.codecs
                        .decode_into(stored, chunk)
                        .map_err(|e| self.corrupt(&key, e))?;
                    Ok(true)
                })?;
            if !found {
                fill_elements(chunk, &self.fill_value);
            }
            for_each_row(&share.maps, chunk_shape, in_shape, size, &mut |o, c, n| {
                chunk[c..c + n].copy_from_slice(&data[o..o + n]);
            });
            self.store_chunk(&key, chunk, write_empty_chunks)
        })
    }

    fn store_chunk(&self, key: &str, chunk: &[u8], write_empty_chunks: bool) -> Result<()> {
        if !write_empty_chunks && all_fill(chunk, &self.fill_value) {
            self.store.delete(key)?;
            return Ok(());
        }
        let encoded = self
            .codecs
            .encode(chunk)
            .map_err(|source| Error::EncodeChunk {
                key: key.to_string(),
                source,
            })?;
        self.store.set(key, &encoded)?;
        Ok(())
    }
}
