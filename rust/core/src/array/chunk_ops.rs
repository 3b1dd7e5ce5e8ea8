//! Chunk-level work for callers that plan selections themselves: zarr-python's codec
//! pipeline hands over, per chunk, its stored bytes (or none), the region of the chunk it
//! wants and where that region goes. The decoding, encoding and copying run here in parallel,
//! as the engine's own reads and writes do.

use std::ops::Range;

use super::copy::{fill_elements, for_each_row, SharedBuffer};
use super::read_ahead::ReadAhead;
use super::selection::PieceMap;
use crate::codec::array_to_bytes::sharding::{Sharding, Touches};
use crate::codec::array_to_bytes::vlen::VlenChunk;
use crate::codec::CodecChain;
use crate::concurrency;
use crate::error::{CodecError, Error, Result, StorageError};
use crate::store::{PartsRead, ReadableStore, Store, Version};

/// One dimension of a region: `len` indices from `start` by `step` (a positive step) in the
/// chunk, and from `other_start` with step 1 in the other buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionDim {
    pub start: u64,
    pub step: i64,
    pub len: u64,
    pub other_start: u64,
}

/// A chunk's part in an operation: a label for errors (its store key), and its region.
#[derive(Debug, Clone)]
pub struct ChunkRegion {
    pub label: String,
    pub dims: Vec<RegionDim>,
}

impl ChunkRegion {
    fn maps(&self) -> Vec<PieceMap> {
        self.dims
            .iter()
            .map(|d| PieceMap::Run {
                out_start: d.other_start,
                chunk_start: d.start,
                step: d.step,
                len: d.len,
            })
            .collect()
    }

    /// Whether the region holds any element of `part` (per dimension, a range of indices in
    /// the chunk).
    fn touches(&self, part: &[Range<u64>]) -> bool {
        self.dims.iter().zip(part).all(|(d, r)| {
            if d.len == 0 || d.step <= 0 {
                return false;
            }
            let step = d.step as u64;
            // The first of the region's indices at or after the part's start.
            let k = r.start.saturating_sub(d.start).div_ceil(step);
            k < d.len && d.start + k * step < r.end
        })
    }

    /// Whether the region is the whole chunk, in order.
    fn is_whole(&self, chunk_shape: &[u64]) -> bool {
        self.dims
            .iter()
            .zip(chunk_shape)
            .all(|(d, &n)| d.start == 0 && d.step == 1 && d.len == n)
    }

    fn check(&self, chunk_shape: &[u64], other_shape: &[u64]) -> Result<()> {
        let bad = |what: &str| {
            Err(Error::InvalidArgument(format!(
                "{}: {what} (region {:?}, chunk {chunk_shape:?}, buffer {other_shape:?})",
                self.label, self.dims
            )))
        };
        if self.dims.len() != chunk_shape.len() || other_shape.len() != chunk_shape.len() {
            return bad("the region's dimensions do not match");
        }
        for ((d, &c), &o) in self.dims.iter().zip(chunk_shape).zip(other_shape) {
            if d.len == 0 {
                continue;
            }
            let last = d.start as i128 + (d.len as i128 - 1) * d.step as i128;
            if d.step <= 0 || last >= c as i128 || d.other_start + d.len > o {
                return bad("the region lies outside the chunk or the buffer");
            }
        }
        Ok(())
    }
}

fn run<T: Send>(n: usize, work: impl Fn(usize) -> Result<T> + Sync) -> Result<Vec<T>> {
    match n {
        0 => Ok(Vec::new()),
        1 => Ok(vec![work(0)?]),
        _ => concurrency::try_map(0..n, work),
    }
}

fn corrupt(label: &str, source: CodecError) -> Error {
    Error::chunk(label.to_string(), source)
}

/// Checks that `buffer` (the output read into, or the values written; `what` names it)
/// holds `shape` elements of `size` bytes, and that every region fits both its chunk (of
/// `chunk_shape`) and the buffer.
fn check_buffer<'a>(
    what: &str,
    chunk_shape: &[u64],
    size: usize,
    regions: impl Iterator<Item = &'a ChunkRegion>,
    buffer: &[u8],
    shape: &[u64],
) -> Result<()> {
    let expected: u64 = shape.iter().product::<u64>() * size as u64;
    if buffer.len() as u64 != expected {
        return Err(Error::InvalidArgument(format!(
            "the {what} buffer holds {} bytes, its shape {shape:?} needs {expected}",
            buffer.len()
        )));
    }
    for region in regions {
        region.check(chunk_shape, shape)?;
    }
    Ok(())
}

/// Decodes each chunk (`None`: not stored, so the fill value) and copies its region into
/// `out` (C order, shaped `out_shape`, native endian), in parallel.
pub fn decode_regions(
    chain: &CodecChain,
    items: &[(Option<&[u8]>, ChunkRegion)],
    out: &mut [u8],
    out_shape: &[u64],
) -> Result<()> {
    let repr = chain.decoded_repr();
    let size = repr.data_type.size();
    check_buffer(
        "output",
        &repr.shape,
        size,
        items.iter().map(|(_, r)| r),
        out,
        out_shape,
    )?;
    let shared = SharedBuffer::new(out);
    run(items.len(), |i| {
        let (stored, region) = &items[i];
        let chunk = match stored {
            Some(bytes) => {
                let mut chunk =
                    crate::alloc::zeroed(repr.nbytes()).map_err(|e| corrupt(&region.label, e))?;
                chain
                    .decode_into(bytes, &mut chunk)
                    .map_err(|e| corrupt(&region.label, e))?;
                Some(chunk)
            }
            None => None,
        };
        // SAFETY: the callers' regions write disjoint parts of the output (zarr-python's
        // indexers give each output element to one chunk).
        unsafe { copy_region(&shared, chain, region, chunk.as_deref(), out_shape) };
        Ok(())
    })?;
    Ok(())
}

/// Copies `region` of a decoded chunk (of the shape `chain` decodes to) into `out`, shaped
/// `out_shape`; for a chunk not stored (`None`) the fill value goes there instead, so that no
/// buffer of the whole chunk is made for it: one was, and filled, costing the chunk's size
/// in memory for a few elements (a MemoryError for a 4 TiB chunk zarr-python reads).
///
/// # Safety
///
/// No other thread writes the part of `out` the region covers while this runs.
unsafe fn copy_region(
    out: &SharedBuffer,
    chain: &CodecChain,
    region: &ChunkRegion,
    chunk: Option<&[u8]>,
    out_shape: &[u64],
) {
    let repr = chain.decoded_repr();
    let maps = region.maps();
    let refs: Vec<&PieceMap> = maps.iter().collect();
    let size = repr.data_type.size();
    for_each_row(&refs, &repr.shape, out_shape, size, &mut |o, c, n| {
        // SAFETY: the caller's promise: this part of the output is the region's alone.
        let place = unsafe { out.slice(o, n) };
        match chunk {
            Some(chunk) => place.copy_from_slice(&chunk[c..c + n]),
            None => fill_elements(place, &repr.fill_value),
        }
    });
}

/// Decodes whole chunks (`None` in, `None` out), in parallel.
pub fn decode_chunks(
    chain: &CodecChain,
    items: &[(Option<&[u8]>, String)],
) -> Result<Vec<Option<Vec<u8>>>> {
    let n = chain.decoded_repr().nbytes();
    run(items.len(), |i| {
        let (stored, label) = &items[i];
        let Some(bytes) = stored else {
            return Ok(None);
        };
        let mut chunk = crate::alloc::zeroed(n).map_err(|e| corrupt(label, e))?;
        chain
            .decode_into(bytes, &mut chunk)
            .map_err(|e| corrupt(label, e))?;
        Ok(Some(chunk))
    })
}

/// Encodes whole decoded chunks, in parallel.
pub fn encode_chunks(chain: &CodecChain, items: &[(&[u8], String)]) -> Result<Vec<Vec<u8>>> {
    run(items.len(), |i| {
        let (chunk, label) = &items[i];
        chain
            .encode(chunk)
            .map(|c| c.into_owned())
            .map_err(|source| Error::EncodeChunk {
                key: label.clone(),
                source,
            })
    })
}

/// For each chunk: its current stored bytes (`None`: not stored, or about to be rewritten
/// whole) and the region `data` (shaped `data_shape`) writes into it. Returns the new stored
/// bytes of each chunk — `None` when it holds only the fill value and `write_empty_chunks` is
/// off (the caller deletes it).
pub fn encode_regions(
    chain: &CodecChain,
    items: &[(Option<&[u8]>, ChunkRegion)],
    data: &[u8],
    data_shape: &[u64],
    write_empty_chunks: bool,
) -> Result<Vec<Option<Vec<u8>>>> {
    let repr = chain.decoded_repr();
    let size = repr.data_type.size();
    check_buffer(
        "values",
        &repr.shape,
        size,
        items.iter().map(|(_, r)| r),
        data,
        data_shape,
    )?;
    run(items.len(), |i| {
        let (stored, region) = &items[i];
        let maps = region.maps();
        let refs: Vec<&PieceMap> = maps.iter().collect();
        let mut chunk =
            crate::alloc::zeroed(repr.nbytes()).map_err(|e| corrupt(&region.label, e))?;
        // A chunk the region covers is rewritten whole: what was stored does not matter.
        let stored = stored.filter(|_| !region.is_whole(&repr.shape));
        match stored {
            Some(bytes) => chain
                .decode_into(bytes, &mut chunk)
                .map_err(|e| corrupt(&region.label, e))?,
            None => fill_elements(&mut chunk, &repr.fill_value),
        }
        for_each_row(&refs, &repr.shape, data_shape, size, &mut |o, c, n| {
            chunk[c..c + n].copy_from_slice(&data[o..o + n]);
        });
        encode_written(chain, &chunk, region, stored, write_empty_chunks)
    })
}

/// The new stored bytes of a chunk that a write of `region` left as the decoded `chunk`
/// (its stored bytes before: `stored`); `None` when nothing is to be stored. A chunk of the
/// fill value is not stored unless `write_empty_chunks`. A shard keeps its inner chunks as
/// zarr-python's partial shard writes do (see [`Sharding::encode_written`]): an inner chunk
/// past the array's edge, which no write touches, is stored only if it was before.
fn encode_written(
    chain: &CodecChain,
    chunk: &[u8],
    region: &ChunkRegion,
    stored: Option<&[u8]>,
    write_empty_chunks: bool,
) -> Result<Option<Vec<u8>>> {
    let touches = |part: &[Range<u64>]| region.touches(part);
    encode_touched(
        chain,
        chunk,
        &region.label,
        &touches,
        stored,
        write_empty_chunks,
    )
}

/// As [`encode_written`], the parts of the chunk the write touched told by `touches`.
pub(super) fn encode_touched(
    chain: &CodecChain,
    chunk: &[u8],
    label: &str,
    touches: &Touches<'_>,
    stored: Option<&[u8]>,
    write_empty_chunks: bool,
) -> Result<Option<Vec<u8>>> {
    let repr = chain.decoded_repr();
    let encoded = match chain.sharding() {
        Some(sharding) => sharding.encode_written(chunk, repr, stored, touches, write_empty_chunks),
        None if !write_empty_chunks && repr.holds_only_fill(chunk) => return Ok(None),
        // A shard followed by other codecs is encoded whole, as zarr-python encodes it.
        None => chain
            .encode_with(chunk, write_empty_chunks)
            .map(|c| Some(c.into_owned())),
    };
    encoded.map_err(|source| Error::EncodeChunk {
        key: label.to_string(),
        source,
    })
}

/// A chunk a write that is no region (index arrays, masks) changed, the caller having placed
/// the values itself.
#[derive(Debug, Clone, Copy)]
pub struct MaskedWrite<'a> {
    /// Its whole decoded contents after the write (C order, native endian).
    pub chunk: &'a [u8],
    /// Its stored bytes before (`None`: not stored).
    pub stored: Option<&'a [u8]>,
    /// Which of its elements the write touched: one byte each, C order, nonzero where
    /// touched. A shard needs it to keep the inner chunks zarr-python keeps.
    pub touched: &'a [u8],
    /// A label for errors: its store key.
    pub label: &'a str,
}

/// The new stored bytes of each chunk a write that is no region changed, as
/// [`encode_regions`] gives them: `None` when nothing is to be stored.
pub fn encode_masked(
    chain: &CodecChain,
    items: &[MaskedWrite<'_>],
    write_empty_chunks: bool,
) -> Result<Vec<Option<Vec<u8>>>> {
    let repr = chain.decoded_repr();
    for item in items {
        if item.chunk.len() != repr.nbytes() || item.touched.len() as u64 != repr.num_elements() {
            return Err(Error::InvalidArgument(format!(
                "{}: {} bytes and {} touched flags given, the chunk {:?} needs {} and {}",
                item.label,
                item.chunk.len(),
                item.touched.len(),
                repr.shape,
                repr.nbytes(),
                repr.num_elements()
            )));
        }
    }
    run(items.len(), |i| {
        let item = &items[i];
        let touches = |part: &[Range<u64>]| mask_touches(item.touched, &repr.shape, part);
        encode_touched(
            chain,
            item.chunk,
            item.label,
            &touches,
            item.stored,
            write_empty_chunks,
        )
    })
}

/// Whether `mask` (one byte per element of a C-order array of `shape`) is nonzero anywhere
/// in `part` (per dimension, a range of indices within `shape`).
pub(super) fn mask_touches(mask: &[u8], shape: &[u64], part: &[Range<u64>]) -> bool {
    if part.iter().any(|r| r.is_empty()) {
        return false;
    }
    let Some((last, outer)) = part.split_last() else {
        return mask.iter().any(|&m| m != 0);
    };
    let mut strides = vec![1u64; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    // Row by row along the last dimension, the others counting up like an odometer.
    let mut at: Vec<u64> = outer.iter().map(|r| r.start).collect();
    loop {
        let start = at.iter().zip(&strides).map(|(i, s)| i * s).sum::<u64>() + last.start;
        let row = mask.get(start as usize..(start + last.end - last.start) as usize);
        if row.is_some_and(|row| row.iter().any(|&m| m != 0)) {
            return true;
        }
        let mut d = outer.len();
        loop {
            if d == 0 {
                return false;
            }
            d -= 1;
            at[d] += 1;
            if at[d] < outer[d].end {
                break;
            }
            at[d] = outer[d].start;
        }
    }
}

/// Decodes whole chunks of a variable-length data type (`None` in, `None` out), in parallel.
pub fn decode_vlen_chunks(
    chain: &CodecChain,
    items: &[(Option<&[u8]>, String)],
) -> Result<Vec<Option<VlenChunk>>> {
    let n = chain.decoded_repr().num_elements() as usize;
    run(items.len(), |i| {
        let (stored, label) = &items[i];
        let Some(bytes) = stored else {
            return Ok(None);
        };
        let chunk = chain.decode_vlen(bytes).map_err(|e| corrupt(label, e))?;
        if chunk.len() != n {
            return Err(corrupt(
                label,
                CodecError::corrupt(
                    "vlen",
                    format!("{} elements, the chunk holds {n}", chunk.len()),
                ),
            ));
        }
        Ok(Some(chunk))
    })
}

/// Encodes whole chunks of a variable-length data type, in parallel.
pub fn encode_vlen_chunks(
    chain: &CodecChain,
    items: &[(VlenChunk, String)],
) -> Result<Vec<Vec<u8>>> {
    let n = chain.decoded_repr().num_elements() as usize;
    run(items.len(), |i| {
        let (chunk, label) = &items[i];
        if chunk.len() != n {
            return Err(Error::InvalidArgument(format!(
                "{label}: {} elements given, the chunk holds {n}",
                chunk.len()
            )));
        }
        chain
            .encode_vlen(chunk)
            .map_err(|source| Error::EncodeChunk {
                key: label.clone(),
                source,
            })
    })
}

// --- The same, with the chunks' I/O done here too ---
//
// When the caller's store is a directory this engine can open itself, fetching and storing
// chunks here, inside the parallel loop, saves a round trip through the caller's I/O per
// chunk. Keys are store keys (the chunk's full path in the store).

/// One unit of reading work: a region of a chunk, or of an inner chunk of a shard.
struct ReadTask<'a> {
    key: &'a str,
    /// For an inner chunk of a shard: where it is.
    inner: Option<InnerChunk>,
    label: String,
    region: ChunkRegion,
}

#[derive(Debug, Clone, Copy)]
struct InnerChunk {
    /// Its position in the shard.
    position: usize,
    /// Its index entry (`None`: not stored).
    entry: Option<(u64, u64)>,
    /// The version of the shard whose index gave `entry` (`None`: no shard stored).
    version: Option<Version>,
}

/// The inner chunks of a shard a region touches, each with its part of the region: per
/// dimension, the runs of the region's indices that fall in each inner chunk.
fn split_region(region: &ChunkRegion, inner_shape: &[u64]) -> Vec<(Vec<u64>, Vec<RegionDim>)> {
    let per_dim: Vec<Vec<(u64, RegionDim)>> = region
        .dims
        .iter()
        .zip(inner_shape)
        .map(|(d, &n)| {
            let mut runs = Vec::new();
            let step = d.step as u64;
            let mut k = 0u64;
            while k < d.len {
                let index = d.start + k * step;
                let chunk = index / n;
                let end = (chunk + 1) * n; // first index past this inner chunk
                let count = ((end - index).div_ceil(step)).min(d.len - k);
                runs.push((
                    chunk,
                    RegionDim {
                        start: index - chunk * n,
                        step: d.step,
                        len: count,
                        other_start: d.other_start + k,
                    },
                ));
                k += count;
            }
            runs
        })
        .collect();
    let mut out = vec![(Vec::new(), Vec::new())];
    for runs in per_dim {
        let mut next = Vec::with_capacity(out.len() * runs.len());
        for (coords, dims) in &out {
            for (chunk, dim) in &runs {
                let mut c: Vec<u64> = coords.clone();
                c.push(*chunk);
                let mut d: Vec<RegionDim> = dims.clone();
                d.push(*dim);
                next.push((c, d));
            }
        }
        out = next;
    }
    out
}

/// The stored bytes of inner chunk `inner` of the shard at `key`, from one read of the whole
/// shard (so its index and chunks are of one version); `None` if it is not stored.
fn inner_of_whole_shard(
    store: &dyn ReadableStore,
    sharding: &Sharding,
    key: &str,
    inner: usize,
) -> Result<Option<Vec<u8>>> {
    let Some(bytes) = store.get(key).map_err(|e| storage(key, e))? else {
        return Ok(None);
    };
    let size = bytes.len() as u64;
    let range = sharding.index_range().to_range(size).ok_or_else(|| {
        corrupt(
            key,
            CodecError::corrupt("sharding_indexed", "shorter than its index"),
        )
    })?;
    let index = sharding
        .decode_index(&bytes[range.start as usize..range.end as usize], Some(size))
        .map_err(|e| corrupt(key, e))?;
    // Entries were checked to lie within the shard by `decode_index`.
    Ok(index
        .get(inner)
        .map(|(offset, n)| bytes[offset as usize..(offset + n) as usize].to_vec()))
}

/// A store's error reading or writing a chunk: a range past the end of a shard means the
/// shard is corrupt; anything else is the store's own error (which names the key).
fn storage(key: &str, err: StorageError) -> Error {
    match err {
        StorageError::OutOfRange { .. } => corrupt(key, CodecError::corrupt("store", err)),
        other => Error::Storage(other),
    }
}

/// Reads the chunks at `items` (store keys with their regions) from `store` and decodes each
/// region into `out` (C order, shaped `out_shape`, native endian). A region of a shard
/// fetches the shard's index and only the inner chunks it touches.
pub fn read_regions(
    chain: &CodecChain,
    store: &dyn ReadableStore,
    items: &[(String, ChunkRegion)],
    out: &mut [u8],
    out_shape: &[u64],
) -> Result<()> {
    let repr = chain.decoded_repr();
    let size = repr.data_type.size();
    check_buffer(
        "output",
        &repr.shape,
        size,
        items.iter().map(|(_, r)| r),
        out,
        out_shape,
    )?;
    // First the shard indexes (in parallel), to split shard regions into inner chunk tasks.
    let sharding = chain.sharding();
    let planned: Vec<Vec<ReadTask<'_>>> = run(items.len(), |i| {
        let (key, region) = &items[i];
        // Shards split into inner chunks even when read whole: every inner chunk is then a
        // task of its own, decoded straight into the output.
        let Some(sharding) = sharding else {
            return Ok(vec![ReadTask {
                key,
                inner: None,
                label: key.clone(),
                region: region.clone(),
            }]);
        };
        let (index, version) = match store
            .get_range_and_version(key, sharding.index_range())
            .map_err(|e| storage(key, e))?
        {
            None => (None, None),
            Some((encoded, version)) => (
                Some(
                    sharding
                        .decode_index(&encoded, Some(version.size))
                        .map_err(|e| corrupt(key, e))?,
                ),
                Some(version),
            ),
        };
        let per_shard = sharding.chunks_per_shard();
        Ok(split_region(region, sharding.inner_chunk_shape())
            .into_iter()
            .map(|(coords, dims)| {
                let linear = coords
                    .iter()
                    .zip(per_shard)
                    .fold(0u64, |acc, (&c, &n)| acc * n + c) as usize;
                ReadTask {
                    key,
                    inner: Some(InnerChunk {
                        position: linear,
                        entry: index.as_ref().and_then(|ix| ix.get(linear)),
                        version,
                    }),
                    label: format!("{key} (inner chunk {linear})"),
                    region: ChunkRegion {
                        label: String::new(),
                        dims,
                    },
                }
            })
            .collect())
    })?;
    let tasks: Vec<ReadTask<'_>> = planned.into_iter().flatten().collect();
    let shared = SharedBuffer::new(out);
    // Chunks stored one per key are fetched ahead when the store waits for its device, as in
    // the engine's own reads (inner chunks are not: their shards were just opened for the
    // indexes).
    let ahead = sharding
        .is_none()
        .then(|| ReadAhead::new(store, tasks.len(), repr.nbytes() as u64));
    run(tasks.len(), |i| {
        if let Some(ahead) = &ahead {
            ahead.before_fetch(i, |j| Some(tasks[j].key.to_string()));
        }
        let task = &tasks[i];
        let (task_chain, stored) = match (task.inner, sharding) {
            (Some(inner), Some(sharding)) => {
                let stored = match inner.entry {
                    None => None,
                    Some((offset, length)) => {
                        // The index entry was checked against the shard's size.
                        let mut bytes = crate::alloc::zeroed(length as usize)
                            .map_err(|e| corrupt(&task.label, e))?;
                        let read = store
                            .read_parts_into(
                                task.key,
                                &mut [(offset, &mut bytes[..])],
                                inner.version,
                            )
                            .map_err(|e| storage(task.key, e))?;
                        if read == PartsRead::Done {
                            Some(bytes)
                        } else {
                            // Replaced since its index was read: the whole shard, once.
                            inner_of_whole_shard(store, sharding, task.key, inner.position)?
                        }
                    }
                };
                (sharding.inner_chain(), stored)
            }
            _ => (
                chain,
                store.get(task.key).map_err(|e| storage(task.key, e))?,
            ),
        };
        let chunk = match stored {
            Some(bytes) => {
                let mut chunk = crate::alloc::zeroed(task_chain.decoded_repr().nbytes())
                    .map_err(|e| corrupt(&task.label, e))?;
                task_chain
                    .decode_into(&bytes, &mut chunk)
                    .map_err(|e| corrupt(&task.label, e))?;
                Some(chunk)
            }
            None => None,
        };
        // SAFETY: the tasks' regions write disjoint parts of the output (each output element
        // belongs to one chunk's region, and each of those to one inner chunk).
        unsafe {
            copy_region(
                &shared,
                task_chain,
                &task.region,
                chunk.as_deref(),
                out_shape,
            )
        };
        Ok(())
    })?;
    Ok(())
}

/// Writes regions of `data` (shaped `data_shape`) into the chunks at `items` (store keys with
/// their regions) in `store`: a chunk the region covers whole is encoded from the data alone,
/// others are read and merged first. A chunk left holding only the fill value is deleted
/// unless `write_empty_chunks`. Each chunk is stored as the store stores values (the
/// filesystem: a temporary file renamed into place).
pub fn write_regions(
    chain: &CodecChain,
    store: &dyn Store,
    items: &[(String, ChunkRegion)],
    data: &[u8],
    data_shape: &[u64],
    write_empty_chunks: bool,
) -> Result<()> {
    let repr = chain.decoded_repr();
    let size = repr.data_type.size();
    check_buffer(
        "values",
        &repr.shape,
        size,
        items.iter().map(|(_, r)| r),
        data,
        data_shape,
    )?;
    run(items.len(), |i| {
        let (key, region) = &items[i];
        let mut chunk = crate::alloc::zeroed(repr.nbytes()).map_err(|e| corrupt(key, e))?;
        let existing = if region.is_whole(&repr.shape) {
            None
        } else {
            store.get(key).map_err(|e| storage(key, e))?
        };
        match &existing {
            Some(bytes) => chain
                .decode_into(bytes, &mut chunk)
                .map_err(|e| corrupt(key, e))?,
            None => fill_elements(&mut chunk, &repr.fill_value),
        }
        let maps = region.maps();
        let refs: Vec<&PieceMap> = maps.iter().collect();
        for_each_row(&refs, &repr.shape, data_shape, size, &mut |o, c, n| {
            chunk[c..c + n].copy_from_slice(&data[o..o + n]);
        });
        match encode_written(
            chain,
            &chunk,
            region,
            existing.as_deref(),
            write_empty_chunks,
        )? {
            Some(encoded) => store.set(key, &encoded).map_err(|e| storage(key, e)),
            None => store.delete(key).map_err(|e| storage(key, e)),
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dim(start: u64, step: i64, len: u64, other_start: u64) -> RegionDim {
        RegionDim {
            start,
            step,
            len,
            other_start,
        }
    }

    #[test]
    fn a_stepped_region_splits_into_the_inner_chunks_it_touches() {
        // Indices 3, 5, 7, 9, 11 of a shard with inner chunks of 4: [3] | [5, 7] | [9, 11].
        let region = ChunkRegion {
            label: "c/0".into(),
            dims: vec![dim(3, 2, 5, 10)],
        };
        let parts = split_region(&region, &[4]);
        assert_eq!(
            parts,
            vec![
                (vec![0], vec![dim(3, 2, 1, 10)]),
                (vec![1], vec![dim(1, 2, 2, 11)]),
                (vec![2], vec![dim(1, 2, 2, 13)]),
            ]
        );
    }

    #[test]
    fn a_region_touches_the_parts_holding_its_indices() {
        // Indices 3, 5, 7, 9, 11 by rows 1 and 2.
        let region = ChunkRegion {
            label: "c/0".into(),
            dims: vec![dim(3, 2, 5, 0), dim(1, 1, 2, 0)],
        };
        assert!(region.touches(&[0..4, 0..2]));
        assert!(region.touches(&[4..6, 2..4]));
        assert!(!region.touches(&[4..5, 0..4]));
        assert!(!region.touches(&[12..16, 0..4]));
        assert!(!region.touches(&[0..16, 3..4]));
    }

    #[test]
    fn a_mask_touches_the_boxes_holding_an_element_it_sets() {
        let mut mask = vec![0u8; 16];
        mask[2 * 4 + 1] = 1; // (2, 1) of a 4 by 4 chunk
        assert!(mask_touches(&mask, &[4, 4], &[2..4, 0..2]));
        assert!(mask_touches(&mask, &[4, 4], &[0..4, 0..4]));
        assert!(!mask_touches(&mask, &[4, 4], &[0..2, 0..2]));
        assert!(!mask_touches(&mask, &[4, 4], &[2..4, 2..4]));
        assert!(!mask_touches(&mask, &[4, 4], &[2..2, 0..4]));
    }

    #[test]
    fn a_region_splits_over_every_dimension() {
        let region = ChunkRegion {
            label: "c/0/0".into(),
            dims: vec![dim(2, 1, 4, 0), dim(0, 1, 2, 0)],
        };
        let parts = split_region(&region, &[3, 2]);
        assert_eq!(
            parts,
            vec![
                (vec![0, 0], vec![dim(2, 1, 1, 0), dim(0, 1, 2, 0)]),
                (vec![1, 0], vec![dim(0, 1, 3, 1), dim(0, 1, 2, 0)]),
            ]
        );
    }

    #[test]
    fn a_step_longer_than_an_inner_chunk_skips_it() {
        let region = ChunkRegion {
            label: "c/0".into(),
            dims: vec![dim(1, 5, 2, 0)],
        };
        // Indices 1 and 6 with inner chunks of 2: chunks 0 and 3.
        let parts = split_region(&region, &[2]);
        assert_eq!(
            parts,
            vec![
                (vec![0], vec![dim(1, 5, 1, 0)]),
                (vec![3], vec![dim(0, 5, 1, 1)])
            ]
        );
    }

    /// Chunks of 4 bytes, each holding its own number; every read "waits" for the device.
    #[derive(Debug, Default)]
    struct ColdChunks {
        waits: std::sync::atomic::AtomicU64,
        hinted: std::sync::Mutex<Vec<String>>,
    }

    impl ReadableStore for ColdChunks {
        fn get(&self, key: &str) -> std::result::Result<Option<Vec<u8>>, StorageError> {
            self.waits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let n: u8 = key.trim_start_matches("c/").parse().unwrap();
            Ok(Some(vec![n; 4]))
        }
        fn prefetch(&self, key: &str) {
            self.hinted.lock().unwrap().push(key.to_string());
        }
        fn device_waits(&self) -> u64 {
            self.waits.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    #[test]
    fn regions_from_a_store_that_waits_are_fetched_ahead() {
        let repr = crate::codec::ChunkRepr::new(vec![4], crate::metadata::DataType::UInt8);
        let bytes = serde_json::json!([{"name": "bytes"}]);
        let chain = CodecChain::from_metadata(bytes.as_array().unwrap(), &repr).unwrap();
        let items: Vec<(String, ChunkRegion)> = (0..40u64)
            .map(|i| {
                let key = format!("c/{i}");
                let dims = vec![dim(0, 1, 4, i * 4)];
                let region = ChunkRegion {
                    label: key.clone(),
                    dims,
                };
                (key, region)
            })
            .collect();
        let store = ColdChunks::default();
        let mut out = vec![0u8; 160];
        read_regions(&chain, &store, &items, &mut out, &[160]).unwrap();
        assert!(out.iter().enumerate().all(|(i, &v)| v as usize == i / 4));
        let hinted = store.hinted.lock().unwrap().clone();
        let unique: std::collections::HashSet<&String> = hinted.iter().collect();
        assert_eq!(unique.len(), hinted.len(), "a chunk hinted twice");
        assert!(hinted.iter().all(|k| items.iter().any(|(key, _)| key == k)));
        assert!(hinted.len() >= 30, "{} of 40 hinted", hinted.len());
    }

    /// A store whose range reads always find the value replaced since its index was read.
    #[derive(Debug)]
    struct AlwaysReplaced(crate::store::MemoryStore);

    impl ReadableStore for AlwaysReplaced {
        fn get(&self, key: &str) -> std::result::Result<Option<Vec<u8>>, StorageError> {
            self.0.get(key)
        }
        fn get_range_and_version(
            &self,
            key: &str,
            range: crate::store::ByteRange,
        ) -> std::result::Result<Option<(Vec<u8>, Version)>, StorageError> {
            self.0.get_range_and_version(key, range)
        }
        fn read_parts_into(
            &self,
            _key: &str,
            _parts: &mut [(u64, &mut [u8])],
            _expected: Option<Version>,
        ) -> std::result::Result<PartsRead, StorageError> {
            Ok(PartsRead::Replaced)
        }
    }

    #[test]
    fn an_inner_chunk_replaced_after_its_index_was_read_comes_from_the_whole_shard(
    ) -> std::result::Result<(), Box<dyn std::error::Error>> {
        let repr = crate::codec::ChunkRepr::new(vec![8], crate::metadata::DataType::UInt8);
        let meta = serde_json::json!([{"name": "sharding_indexed", "configuration": {
            "chunk_shape": [2], "codecs": [{"name": "bytes"}],
            "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            "index_location": "end"}}]);
        let codecs = meta.as_array().ok_or("not a list")?;
        let chain = CodecChain::from_metadata(codecs, &repr)?;
        let store = crate::store::MemoryStore::new();
        let data: Vec<u8> = (1..=8).collect();
        let region = ChunkRegion {
            label: "c/0".into(),
            dims: vec![dim(0, 1, 8, 0)],
        };
        let items = [("c/0".to_string(), region)];
        write_regions(&chain, &store, &items, &data, &[8], false)?;
        let mut out = vec![0u8; 8];
        read_regions(&chain, &AlwaysReplaced(store), &items, &mut out, &[8])?;
        assert_eq!(out, data);
        Ok(())
    }
}
