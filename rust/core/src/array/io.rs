//! The parallel read and write paths.
//!
//! A selection becomes one work item per chunk it touches — per inner chunk, for sharded
//! arrays; items run in parallel on the engine's pool, each fetching, decoding and copying its
//! own chunk. A chunk whose share of the output is one contiguous block (a whole chunk, read
//! into a region of matching row layout) decodes straight into the output; others decode into
//! a per-thread scratch buffer and copy their rows out. Nothing allocates a buffer the size of
//! the selection.
//!
//! Sharded arrays are read inner chunk by inner chunk: the shard's index (cached per array)
//! says where each one lies, and one request fetches it — or, in a read of many, a run of
//! consecutive inner chunks of one shard, with their bytes wherever they lie in it (small
//! inner chunks cost more in requests than in bytes). They are written shard by
//! shard: inner chunks are encoded in parallel, untouched inner chunks of a partly written
//! shard keep their stored bytes, and each shard is written once.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use rayon::prelude::*;

use super::chunk_cache::{self, Cached, CachedChunk};
use super::copy::{
    c_strides, copy_share_from, fill_elements, for_each_row, share_box, SharedBuffer,
};
use super::read_ahead::ReadAhead;
use super::selection::{DimPiece, PieceMap, Selection};
use super::shard_cache::KnownShard;
use super::write_lock::{self, WriteClaim};
use super::Array;
use crate::alloc;
use crate::codec::array_to_bytes::sharding::{ShardIndex, Sharding, Touches};
use crate::codec::{box_byte_range, CodecChain};
use crate::concurrency;
use crate::error::{CodecError, Error, Result, StorageError};
use crate::scratch;
use crate::store::{same_version, ByteRange, PartsRead, Version};

/// How a sharded write makes an inner chunk's new stored bytes: from its share of the
/// selection, its current stored bytes (if kept) and a label for errors.
pub(super) type EncodeInner<'a> =
    dyn Fn(&ChunkShare<'_>, Option<&[u8]>, &str) -> Result<Option<Vec<u8>>> + Sync + 'a;

/// How a rewrite of a shard makes the new stored bytes of its `k`th touched inner chunk, from
/// its current stored bytes (`None`: not stored) and a label for errors (see
/// [`Array::rewrite_shard`]).
pub(super) type RewriteInner<'a> =
    dyn Fn(usize, Option<&[u8]>, &str) -> Result<Option<Vec<u8>>> + Sync + 'a;

/// How many times a read looks at a shard replaced while it reads it before giving up. Each
/// try is microseconds (a request), or a read again of one shard's inner chunks: a shard
/// rewritten within that window so many times in a row is a writer in a tight loop.
const SHARD_TRIES: usize = 8;
/// After this many reads of a shard that met another version of it, the shard is read whole
/// where the store can hold it: one answer holds one version (a shard rewritten once is read
/// in parts again at the second try; a service answering each request with its own version
/// never agrees).
const WHOLE_AFTER_TRIES: usize = 2;

/// Whole chunks whose rows are shorter than this are decoded into scratch and copied out
/// rather than decoded into their rows (see `decode_share_into_rows`).
const MIN_ROW_BYTES: usize = 64;

/// A sharded read takes up to this many consecutive inner chunks of a shard, and up to this
/// many stored bytes of them, with one request (see `Array::with_inner_run`). Each request
/// saved is an `open`, `statx`, `pread` and `close` of a file store: most of the cost of an
/// inner chunk of a few KiB. Beyond a few hundred KiB, a request per inner chunk costs little
/// more.
const MAX_RUN_ITEMS: usize = 64;
const MAX_RUN_BYTES: u64 = 1 << 20;
/// Uncompressed inner chunks up to this size, wanted whole, are read in runs too (and copied
/// out of the run) rather than each read in place.
const MAX_COPIED_INNER_BYTES: usize = 32 << 10;

thread_local! {
    /// Stored (encoded) bytes of the chunk being processed.
    static STORED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// A decoded chunk.
    static DECODED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Where each row of a chunk goes in the output.
    static OFFSETS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// What one read has learnt of the shards it touches, so that each is looked at once per read
/// rather than once per inner chunk (by the first thread to need it, while the others wait):
/// - each shard's index, or that the shard is absent (otherwise: a failed `open` for each
///   inner chunk of a region never written, and an index fetched twice by threads meeting on
///   one shard);
/// - each shard's version, that cached inner chunks are checked against (otherwise a `stat`
///   per inner chunk: 4096 for a full read of the gate's sharded array).
///
/// A read is not a snapshot of the store anyway (chunks, and shards, are replaced one by one),
/// but a shard is one stored value, written whole: a read's inner chunks of a shard all come
/// from one version of it. A shard replaced while its inner chunks were read, between threads'
/// requests, is noted, and those inner chunks read again (see [`Array::agreeing_on_shards`]).
#[derive(Default)]
pub(super) struct ShardsSeen {
    /// Each shard's version (`None`: absent).
    versions: OnceEach<Option<Version>>,
    /// Each shard's index and version (`None`: absent).
    shards: OnceEach<Option<KnownShard>>,
    /// For each shard, the version its first inner chunks were read from (`None`: found
    /// absent), and whether others were read from another.
    read_from: Mutex<HashMap<String, (Option<Version>, bool)>>,
}

/// A value per key, found by the first thread to ask for it while the others asking meanwhile
/// wait for it: `None` in a slot until found.
struct OnceEach<T>(Mutex<HashMap<String, Arc<Mutex<Option<T>>>>>);

impl<T> Default for OnceEach<T> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

/// Locks a mutex of this read; a thread that panicked holding it left nothing half-done.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<T: Clone> OnceEach<T> {
    fn slot(&self, key: &str) -> Arc<Mutex<Option<T>>> {
        let mut slots = lock(&self.0);
        match slots.get(key) {
            Some(slot) => slot.clone(),
            None => slots.entry(key.to_string()).or_default().clone(),
        }
    }

    /// The value at `key`, found by `find` if no one has yet (holding the key's lock, so
    /// callers meanwhile wait; with no parallel splits, see `concurrency::sequentially`).
    fn get<E>(
        &self,
        key: &str,
        find: impl FnOnce() -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.get_or_replace(key, |_| false, find)
    }

    /// As [`OnceEach::get`], and a value there that `outdated` says is out of date is found
    /// again too.
    fn get_or_replace<E>(
        &self,
        key: &str,
        outdated: impl FnOnce(&T) -> bool,
        find: impl FnOnce() -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let slot = self.slot(key);
        let mut value = lock(&slot);
        if let Some(known) = &*value {
            if !outdated(known) {
                return Ok(known.clone());
            }
        }
        // In sequence: see `concurrency::sequentially` (an index codec may split its work).
        let found = concurrency::sequentially(find)?;
        *value = Some(found.clone());
        Ok(found)
    }

    /// Replaces what is known at `key`.
    fn set(&self, key: &str, value: T) {
        *lock(&self.slot(key)) = Some(value);
    }
}

impl ShardsSeen {
    /// The version of the shard at `key` (`None`: not stored), looked up once per read.
    fn version(
        &self,
        array: &Array,
        key: &str,
    ) -> std::result::Result<Option<Version>, StorageError> {
        self.versions.get(key, || array.store.version(key))
    }

    /// The shard at `key` as this read knows it (`None`: absent), found with `look` once per
    /// read. A shard read from the store (not from the array's cache) also gives the read
    /// its version.
    fn shard(
        &self,
        key: &str,
        look: impl FnOnce() -> Result<Option<KnownShard>>,
    ) -> Result<Option<KnownShard>> {
        self.shards.get(key, || {
            let found = look()?;
            match &found {
                Some(known) if !known.just_read => {}
                _ => self.versions.set(key, found.as_ref().map(|k| k.version)),
            }
            Ok(found)
        })
    }

    /// Notes that inner chunks of the shard at `key` were read from version `version`
    /// (`None`: the shard was absent, so they are the fill value).
    fn note_read(&self, key: &str, version: Option<Version>) {
        let mut read_from = lock(&self.read_from);
        let Some((first, mixed)) = read_from.get_mut(key) else {
            read_from.insert(key.to_string(), (version, false));
            return;
        };
        *mixed |= match (*first, version) {
            (Some(first), Some(now)) => same_version(first, now) != PartsRead::Done,
            (None, None) => false,
            _ => true,
        };
    }

    /// The shards whose inner chunks this read took from more than one version.
    fn mixed(&self) -> HashSet<String> {
        let read_from = lock(&self.read_from);
        (read_from.iter())
            .filter(|(_, (_, mixed))| *mixed)
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// The shard at `key` as a fresh look (`look`) finds it, whatever another thread of the
    /// read found meanwhile.
    fn replace(
        &self,
        key: &str,
        look: impl FnOnce() -> Result<Option<KnownShard>>,
    ) -> Result<Option<KnownShard>> {
        self.shards.get_or_replace(
            key,
            |_| true,
            || {
                let found = look()?;
                self.versions.set(key, found.as_ref().map(|k| k.version));
                Ok(found)
            },
        )
    }

    /// The shard at `key` as a fresh look (`look`) finds it, the read having found it no
    /// longer the one `stale` describes — unless another thread of the read has looked since
    /// `stale` was learnt: then what that thread found. Threads that meet a replaced shard
    /// together read its new index once.
    fn refresh(
        &self,
        key: &str,
        stale: &Option<KnownShard>,
        look: impl FnOnce() -> Result<Option<KnownShard>>,
    ) -> Result<Option<KnownShard>> {
        let outdated = |known: &Option<KnownShard>| match (known, stale) {
            // Each look makes a new index: the same one is what `stale` was.
            (Some(known), Some(stale)) => Arc::ptr_eq(&known.index, &stale.index),
            (None, None) => true,
            _ => false,
        };
        self.shards.get_or_replace(key, outdated, || {
            let found = look()?;
            self.versions.set(key, found.as_ref().map(|k| k.version));
            Ok(found)
        })
    }
}

/// One chunk's share of a selection.
pub(super) struct ChunkShare<'a> {
    /// Its place in the plan's order of work items.
    pub(super) index: usize,
    pub(super) coords: Vec<u64>,
    pub(super) maps: Vec<&'a PieceMap>,
}

/// What [`Array::read_passthrough`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Passthrough {
    Read,
    /// Read nothing: reading the whole chunk and copying its rows is cheaper.
    Declined,
    /// Read nothing: the shard is not the version its cached index describes.
    Stale,
}

/// All chunk shares of a selection, enumerated without building the cross product.
pub(super) struct Plan {
    pieces: Vec<Vec<DimPiece>>,
    pub(super) out_shape: Vec<u64>,
    pub(super) total: usize,
}

impl Plan {
    pub(super) fn new(selection: &Selection, chunk_shape: &[u64]) -> Self {
        let pieces = selection.pieces(chunk_shape);
        let total = pieces.iter().map(Vec::len).product();
        Self {
            pieces,
            out_shape: selection.shape(),
            total,
        }
    }

    /// Per dimension, the first and last chunk the plan touches (inclusive) in the grid of
    /// stored chunks, of which each holds `per_stored[d]` of the plan's chunks along `d` (more
    /// than 1 for the inner chunks of a shard). `(1, 0)` along a dimension with no chunk.
    pub(super) fn stored_bounds(&self, per_stored: &[u64]) -> Vec<(u64, u64)> {
        self.pieces
            .iter()
            .zip(per_stored)
            .map(|(pieces, &n)| {
                let chunks = pieces.iter().map(|p| p.chunk);
                match (chunks.clone().min(), chunks.max()) {
                    (Some(lo), Some(hi)) => (lo / n, hi / n),
                    _ => (1, 0),
                }
            })
            .collect()
    }

    pub(super) fn share(&self, index: usize) -> ChunkShare<'_> {
        let mut i = index;
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
        ChunkShare {
            index,
            coords,
            maps,
        }
    }

    /// The plan's work items in runs of consecutive items that lie in one stored chunk (of
    /// which each holds `per_stored[d]` of the plan's chunks along `d`: the inner chunks of a
    /// shard), none longer than `max_len`.
    pub(super) fn runs_in_stored(&self, per_stored: &[u64], max_len: usize) -> Vec<Range<usize>> {
        let stored = |d: usize, j: usize| self.pieces[d][j].chunk / per_stored[d].max(1);
        let mut at = vec![0usize; self.pieces.len()];
        let mut runs = Vec::new();
        let mut start = 0;
        for i in 1..self.total {
            // Step to item `i` as an odometer does, noting whether its stored chunk changed.
            let mut moved = false;
            for d in (0..at.len()).rev() {
                let before = stored(d, at[d]);
                at[d] = (at[d] + 1) % self.pieces[d].len();
                moved |= stored(d, at[d]) != before;
                if at[d] != 0 {
                    break;
                }
            }
            if moved || i - start == max_len.max(1) {
                runs.push(start..i);
                start = i;
            }
        }
        if self.total > 0 {
            runs.push(start..self.total);
        }
        runs
    }
}

/// Which shards a sharded read hints, whole: each once, and only those holding at least half
/// of the inner chunks the read needs from them. Inner chunks are read by byte range, each
/// from a freshly opened file, so the kernel's readahead never sees a sequential read and
/// fetches each one with a small request of its own (measured on a cold full read: 1056
/// requests of 143 KiB on average, against 107–140 of over 1 MiB by TensorStore).
struct ShardsAhead<'a> {
    array: &'a Array,
    sharding: &'a Sharding,
    plan: &'a Plan,
    /// Per dimension: the inner chunk grid's length (inner chunks of shards overhanging the
    /// array excluded), and how many of the read's pieces lie in each shard (by the shard's
    /// index along that dimension). Made at the first hint, so cached reads never pay.
    counts: std::sync::OnceLock<Vec<(u64, HashMap<u64, u64>)>>,
    seen: std::sync::Mutex<std::collections::HashSet<Vec<u64>>>,
}

impl<'a> ShardsAhead<'a> {
    fn new(array: &'a Array, sharding: &'a Sharding, plan: &'a Plan) -> Self {
        Self {
            array,
            sharding,
            plan,
            counts: Default::default(),
            seen: Default::default(),
        }
    }

    /// The key of the shard holding `share`'s inner chunk, the first time that shard is asked
    /// about and if the read needs at least half of its inner chunks.
    fn key_to_hint(&self, share: &ChunkShare<'_>) -> Option<String> {
        let per_shard = self.sharding.chunks_per_shard();
        let (shard, _) = locate_inner(&share.coords, per_shard);
        if !self.seen.lock().ok()?.insert(shard.clone()) {
            return None;
        }
        let counts = self.counts.get_or_init(|| {
            let array = self.array;
            (self.plan.pieces.iter())
                .zip(per_shard)
                .zip(array.shape().iter().zip(array.inner_chunk_shape()))
                .map(|((pieces, &n), (&len, &inner))| {
                    let mut per_shard_index = HashMap::new();
                    for piece in pieces {
                        *per_shard_index.entry(piece.chunk / n.max(1)).or_insert(0) += 1;
                    }
                    (len.div_ceil(inner.max(1)), per_shard_index)
                })
                .collect()
        });
        let mut needed = 1u64;
        let mut inner_chunks = 1u64;
        for ((&s, &n), (grid, per_shard_index)) in shard.iter().zip(per_shard).zip(counts) {
            // Saturating: the end of the last shard of a grid of nearly 2^64 inner chunks lies
            // past 2^64 (the product overflowed); it is clipped to the grid all the same.
            let (lo, hi) = (s * n, (s.saturating_add(1).saturating_mul(n)).min(*grid));
            inner_chunks = inner_chunks.saturating_mul(hi.saturating_sub(lo));
            needed = needed.saturating_mul(per_shard_index.get(&s).copied().unwrap_or(0));
        }
        (needed.saturating_mul(2) >= inner_chunks).then(|| self.array.chunk_key(&shard))
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

/// The bytes of a row of `share` (elements of `size` bytes): its last dimension's run when
/// that is in order, else one element.
fn row_bytes(share: &ChunkShare<'_>, size: usize) -> usize {
    match share.maps.last() {
        Some(PieceMap::Run { step: 1, len, .. }) => *len as usize * size,
        _ => size,
    }
}

/// How many rows a scattered read of `share` of an uncompressed chunk of `chunk_shape` takes
/// (elements of `size` bytes, `chunk_bytes` in all), when it is read in place; `None` when
/// reading the whole chunk and copying its rows is cheaper. The kernel pays per run of a
/// scattered read (rows that follow one another in the chunk make one run): for a large share
/// in short runs, one read of the chunk and a copy of its rows is cheaper (measured: 128-byte
/// rows of a 512 KiB chunk read 5x faster that way). Small shares (a point, a short run), few
/// or long runs are read in place: a 16x64x64 box of a 64³ uint16 chunk, one run, in 30-42 µs
/// rather than 97-113 µs.
///
/// Half a chunk or more wanted in short rows of the output (few runs in the file, but each row
/// its own buffer of the read) is read whole and copied too: the kernel's copy into many short
/// buffers of a new output is slower than a read into a buffer already in cache and a copy of
/// its rows. Measured on reads of 64³ chunks into new outputs, both threads: whole chunks in
/// 64- or 128-byte rows 20-25% faster that way, in 256-byte rows 8%, in 1 KiB rows the same;
/// halves of chunks in 128-byte rows 7% faster; quarters 15% slower, eighths 2x slower.
fn in_place_rows(
    share: &ChunkShare<'_>,
    chunk_shape: &[u64],
    size: usize,
    chunk_bytes: usize,
) -> Option<usize> {
    let share_bytes: usize = share
        .maps
        .iter()
        .map(|m| m.len() as usize)
        .product::<usize>()
        * size;
    let row_bytes = row_bytes(share, size);
    let mut run_bytes = row_bytes;
    // A row's run goes on into the next dimension out while this one is whole.
    let dims = share.maps.iter().zip(chunk_shape).rev();
    for ((inner, &extent), (outer, _)) in dims.clone().zip(dims.skip(1)) {
        match outer {
            PieceMap::Run { step: 1, len, .. } if inner.is_whole(extent) => {
                run_bytes *= *len as usize
            }
            _ => break,
        }
    }
    let runs = share_bytes / run_bytes.max(1);
    if runs > 16 && share_bytes > chunk_bytes / 16 && run_bytes < 4096 {
        return None;
    }
    let rows = share_bytes / row_bytes.max(1);
    if rows > 16 && share_bytes >= chunk_bytes / 2 && row_bytes < SHORT_OUTPUT_ROW {
        return None;
    }
    Some(rows)
}

/// Rows of the output shorter than this make half an uncompressed chunk or more cheaper to read
/// whole and copy than to read in place (see [`in_place_rows`]).
const SHORT_OUTPUT_ROW: usize = 512;

/// Gaps between the rows of a scattered read up to this long are read through (as the
/// filesystem store's `preadv` does) rather than skipped.
const READ_THROUGH_GAP: usize = 16 << 10;

/// Spans of a chunk up to this long stay in the cache between their read into a buffer and
/// the copy of their rows out of it (see [`short_rows_span`]).
const CACHED_SPAN: usize = 256 << 10;

/// A span beyond the cache is worth reading into a buffer when it holds a row of the share
/// every this many bytes or fewer: each row read in place costs a buffer of the read (and one
/// for the gap before it), each byte of the span read into a buffer a write to memory and a
/// read back (see [`short_rows_span`]).
const SPAN_PER_ROW: usize = 1024;

/// The bytes of an uncompressed chunk to read with one request into a buffer, whose rows are
/// then copied out, when `share` is read in `rows` rows too short to be worth a buffer of the
/// read each: `None` to read it in place. A read in place of short rows close together reads
/// the bytes between them too (into a small buffer that stays in the cache), so the span from
/// the share's first byte to its last costs as much to read; reading it into a buffer costs
/// writing it there too, once it is beyond the cache, and copying the rows out. Measured,
/// medians of three runs in one process, against reads in place: 16³ boxes of 64³ uint16
/// chunks 42 → 28 µs, 8³ boxes 14 → 11 µs (spans in the cache); planes across 64³ uint16
/// chunks (a row of 2 bytes every 128) 1.7 → 0.45 ms, across 128x128x16 float64 chunks (8
/// bytes every 128) 2.1 → 0.86 ms, across 128³ float64 chunks (8 every 1024) 5.6 → 4.2 ms; a
/// column of 1000x1000 float32 chunks (4 bytes every 4000) 0.6-1.0 → 1.2 ms, so it is read in
/// place.
fn short_rows_span(
    share: &ChunkShare<'_>,
    chunk_shape: &[u64],
    out_shape: &[u64],
    size: usize,
    rows: usize,
) -> Option<Range<usize>> {
    if rows <= 16 || row_bytes(share, size) >= SHORT_OUTPUT_ROW {
        return None;
    }
    let span = box_byte_range(&share_box(&share.maps)?, chunk_shape, size);
    if span.len() > CACHED_SPAN && span.len() > SPAN_PER_ROW * rows {
        return None;
    }
    // What a read in place would read: the rows, and the gaps it reads through.
    let (mut read, mut end) = (0usize, None);
    for_each_row(&share.maps, chunk_shape, out_shape, size, &mut |_, c, n| {
        read += n;
        if let Some(gap) = end.and_then(|end: usize| c.checked_sub(end)) {
            read += if gap <= READ_THROUGH_GAP { gap } else { 0 };
        }
        end = Some(c + n);
    });
    (span.len() <= 2 * read).then_some(span)
}

/// Where a sharded array's inner chunk lies: its shard's grid coordinates and its C-order
/// index within the shard.
/// Where a write takes its elements from.
#[derive(Clone, Copy)]
enum WriteSource<'a> {
    /// The caller's buffer, C order, shaped as the selection.
    Buffer(&'a [u8]),
    /// The caller's buffer, F order (the first dimension varying fastest), shaped as the
    /// selection (`shape`, its dimensions `strides` bytes apart, of elements of `size` bytes).
    Fortran {
        data: &'a [u8],
        shape: &'a [u64],
        strides: &'a [usize],
        size: usize,
    },
    /// One value repeated, at least as many times as the longest run a write copies.
    Repeated(&'a [u8]),
}

impl<'a> WriteSource<'a> {
    /// The `len` bytes of elements at byte `offset` of the selection's elements in C order,
    /// if the source holds them in one piece (see [`copy_run`](Self::copy_run)).
    fn run(&self, offset: usize, len: usize) -> Option<&'a [u8]> {
        match *self {
            Self::Buffer(data) => Some(&data[offset..offset + len]),
            Self::Fortran { .. } => None,
            // Every element is the value: any run of them is the first `len` bytes.
            Self::Repeated(runs) => Some(&runs[..len]),
        }
    }

    /// Copies into `out` the elements at byte `offset` of the selection's elements in C
    /// order (as many as `out` holds).
    fn copy_run(&self, offset: usize, out: &mut [u8]) {
        match *self {
            Self::Fortran {
                data,
                shape,
                strides,
                size,
            } => gather_fortran(data, shape, strides, size, offset, out),
            Self::Buffer(data) => out.copy_from_slice(&data[offset..offset + out.len()]),
            Self::Repeated(runs) => out.copy_from_slice(&runs[..out.len()]),
        }
    }
}

/// Copies into `out` the elements of `data`, an F-order buffer of `shape` whose dimensions
/// lie `strides` bytes apart (elements of `size` bytes), that lie at byte `offset` onwards
/// in C order. A row of the last dimension at a time, element by element (they lie a whole
/// plane apart in `data`): the transposition numpy would make of the whole buffer before a
/// C-order write, done here for each chunk by the thread writing it.
fn gather_fortran(
    data: &[u8],
    shape: &[u64],
    strides: &[usize],
    size: usize,
    offset: usize,
    mut out: &mut [u8],
) {
    let (Some((&last, outer)), Some((&step, outer_strides))) =
        (shape.split_last(), strides.split_last())
    else {
        // A 0-d selection: its one element.
        out.copy_from_slice(&data[offset..offset + out.len()]);
        return;
    };
    let last = last as usize;
    let mut element = offset / size;
    while !out.is_empty() {
        let (row, column) = (element / last, element % last);
        // The row's first element: its index along each outer dimension (the last varying
        // fastest in C order) times that dimension's stride.
        let mut start = column * step;
        let mut rest = row;
        for (&n, &stride) in outer.iter().zip(outer_strides).rev() {
            start += (rest % n as usize) * stride;
            rest /= n as usize;
        }
        let count = (last - column).min(out.len() / size);
        let (here, next) = out.split_at_mut(count * size);
        gather_strided(data, start, step, size, here);
        out = next;
        element += count;
    }
}

/// Fills `out` with elements of `size` bytes taken from `data` at `start`, `start + step`, ...
fn gather_strided(data: &[u8], start: usize, step: usize, size: usize, out: &mut [u8]) {
    // Fixed sizes let the compiler copy each element in one move.
    fn fixed<const N: usize>(data: &[u8], start: usize, step: usize, out: &mut [u8]) {
        for (k, element) in out.chunks_exact_mut(N).enumerate() {
            let at = start + k * step;
            element.copy_from_slice(&data[at..at + N]);
        }
    }
    match size {
        1 => fixed::<1>(data, start, step, out),
        2 => fixed::<2>(data, start, step, out),
        4 => fixed::<4>(data, start, step, out),
        8 => fixed::<8>(data, start, step, out),
        16 => fixed::<16>(data, start, step, out),
        _ => {
            for (k, element) in out.chunks_exact_mut(size).enumerate() {
                let at = start + k * step;
                element.copy_from_slice(&data[at..at + size]);
            }
        }
    }
}

pub(super) fn locate_inner(coords: &[u64], chunks_per_shard: &[u64]) -> (Vec<u64>, usize) {
    let mut index = 0usize;
    let mut shard = Vec::with_capacity(coords.len());
    for (&c, &n) in coords.iter().zip(chunks_per_shard) {
        shard.push(c / n);
        index = index * n as usize + (c % n) as usize;
    }
    (shard, index)
}

/// Runs `work` for items `0..n`: inline for a single item (a pool round trip would cost more
/// than the work), else in parallel.
pub(super) fn for_each_item(n: usize, work: impl Fn(usize) -> Result<()> + Sync) -> Result<()> {
    match n {
        0 => Ok(()),
        1 => work(0),
        n => concurrency::try_for_each(0..n, |i| {
            concurrency::mark_worker();
            work(i)
        }),
    }
}

impl Array {
    pub(super) fn corrupt(&self, key: &str, source: CodecError) -> Error {
        Error::chunk(format!("{key} in {}", self.store.describe()), source)
    }

    /// A store error on a chunk key: a byte range outside the stored value means the value is
    /// corrupt (a truncated shard, say), anything else is an I/O error.
    pub(super) fn chunk_storage_error(&self, key: &str, err: StorageError) -> Error {
        match err {
            StorageError::OutOfRange { .. } => {
                self.corrupt(key, CodecError::corrupt("store", err.to_string()))
            }
            other => Error::Storage(other),
        }
    }

    fn checked_len(&self, selection: &Selection, len: usize) -> Result<()> {
        if self.data_type().is_variable() {
            return Err(Error::InvalidArgument(format!(
                "{} holds variable-length {} elements: read and write them as objects",
                self.path(),
                self.data_type()
            )));
        }
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
        for_each_item(plan.total, |i| work(plan.share(i)))
    }

    // --- reading ---

    /// Reads the selection into `out`: C order, native endian (the stored byte order for
    /// [`in_stored_byte_order`](Self::in_stored_byte_order)'s view), exactly the selection's
    /// size.
    pub fn read_into(&self, selection: &Selection, out: &mut [u8]) -> Result<()> {
        let _threads = self.request_threads();
        self.checked_len(selection, out.len())?;
        let plan = Plan::new(selection, self.inner_chunk_shape());
        let shared = SharedBuffer::new(out);
        // When the store has to wait for its device, each thread hints the chunks ahead of it
        // (see `read_ahead`). The plan's work items are inner chunks, for sharded arrays.
        let item_chain: &CodecChain = match self.codecs.sharding() {
            Some(sharding) => sharding.inner_chain(),
            None => &self.codecs,
        };
        let item_bytes = item_chain.decoded_repr().nbytes() as u64;
        let ahead = ReadAhead::new(self.store.as_ref(), plan.total, item_bytes);
        match self.codecs.sharding() {
            Some(sharding) => {
                let shards = ShardsAhead::new(self, sharding, &plan);
                let hint = |i: usize| {
                    ahead.before_fetch(i, |j| shards.key_to_hint(&plan.share(j)));
                };
                // Runs of consecutive inner chunks of one shard are read with one request each
                // (see `read_inner_run`); the decoded-chunk cache keeps inner chunks one by
                // one.
                let max_run = self.max_inner_run(plan.total);
                let runs = match chunk_cache::enabled() || max_run < 2 {
                    true => Vec::new(),
                    false => plan.runs_in_stored(sharding.chunks_per_shard(), max_run),
                };
                // The shard of plan item `i`, unless the read leaves it (see `ShardHolds`).
                let shard_of = |i: usize, only: Option<&HashSet<String>>| {
                    let coords = plan.share(i).coords;
                    (self.in_shards(sharding, &coords, only))
                        .then(|| locate_inner(&coords, sharding.chunks_per_shard()).0)
                };
                self.agreeing_on_shards(|seen, only| {
                    if runs.is_empty() || runs.len() == plan.total {
                        let located = |i: usize| Some((shard_of(i, only)?, 1));
                        return self.for_each_item_in_shards(sharding, plan.total, located, |i| {
                            let share = plan.share(i);
                            if !self.in_shards(sharding, &share.coords, only) {
                                return Ok(());
                            }
                            hint(share.index);
                            self.read_inner_share(sharding, &share, &plan.out_shape, &shared, seen)
                        });
                    }
                    let located = |r: usize| {
                        let run: &Range<usize> = &runs[r];
                        Some((shard_of(run.start, only)?, run.len() as u64))
                    };
                    self.for_each_item_in_shards(sharding, runs.len(), located, |r| {
                        if !self.in_shards(sharding, &plan.share(runs[r].start).coords, only) {
                            return Ok(());
                        }
                        hint(runs[r].start);
                        self.read_inner_run(sharding, &plan, runs[r].clone(), &shared, seen)
                    })
                })
            }
            None => self.for_each_share(&plan, |share| {
                ahead.before_fetch(share.index, |j| Some(self.chunk_key(&plan.share(j).coords)));
                let key = self.chunk_key(&share.coords);
                if chunk_cache::enabled() {
                    let chunk = self.cached_chunk_at(&share.coords, &ShardsSeen::default())?;
                    return self.copy_share(
                        &self.codecs,
                        chunk.as_deref().map(Vec::as_slice),
                        &share,
                        &plan.out_shape,
                        &shared,
                    );
                }
                if self.codecs.is_passthrough() {
                    let size = self.codecs.decoded_repr().nbytes() as u64;
                    let read = self.read_passthrough(
                        &self.codecs,
                        &key,
                        0,
                        Version::of_size(size),
                        &share,
                        &plan.out_shape,
                        &shared,
                    )?;
                    if read == Passthrough::Read {
                        return Ok(());
                    }
                }
                scratch::with(&STORED, |stored| {
                    let found =
                        self.store
                            .get_into(&key, stored, self.codecs.decodes_in_parallel())?;
                    self.decode_share(
                        &self.codecs,
                        &key,
                        found.then_some(stored.as_slice()),
                        &share,
                        &plan.out_shape,
                        &shared,
                    )
                })
            }),
        }
    }

    /// Reads the share of a chunk stored as its raw bytes (a passthrough chain) straight into
    /// the output, with positioned reads of just the rows it needs: no intermediate buffer,
    /// and a point read fetches one element. The chunk's bytes start at `base` in the value at
    /// `key`, which should be of version `expected`: a chunk of the wrong size is corrupt, and
    /// an absent chunk reads as the fill value. In a shard (`base` from its index), a shard of
    /// another version, or gone, is [`Passthrough::Stale`] instead. Declines, having read
    /// nothing, when the rows are so many and small that reading the whole chunk and copying
    /// them is cheaper.
    #[allow(clippy::too_many_arguments)]
    fn read_passthrough(
        &self,
        chain: &CodecChain,
        key: &str,
        base: u64,
        expected: Version,
        share: &ChunkShare<'_>,
        out_shape: &[u64],
        out: &SharedBuffer,
    ) -> Result<Passthrough> {
        let in_shard = self.codecs.sharding().is_some();
        let size = self.data_type().size();
        let repr = chain.decoded_repr();
        let chunk_shape = &repr.shape;
        scratch::with(&STORED, |span_bytes| {
            let mut parts: Vec<(u64, &mut [u8])> = Vec::new();
            let mut span = None;
            if let Some(offset) = contiguous_offset(&share.maps, chunk_shape, out_shape) {
                // SAFETY: this block of the output belongs to this chunk alone.
                parts.push((base, unsafe { out.slice(offset * size, repr.nbytes()) }));
            } else {
                let Some(rows) = in_place_rows(share, chunk_shape, size, repr.nbytes()) else {
                    return Ok(Passthrough::Declined);
                };
                span = short_rows_span(share, chunk_shape, out_shape, size, rows);
                match &span {
                    Some(span) => {
                        alloc::resize(span_bytes, span.len()).map_err(|e| self.corrupt(key, e))?;
                        parts.push((base + span.start as u64, &mut span_bytes[..]));
                    }
                    None => {
                        parts.reserve(rows);
                        for_each_row(&share.maps, chunk_shape, out_shape, size, &mut |o, c, n| {
                            // SAFETY: every row of this share belongs to this chunk alone.
                            parts.push((base + c as u64, unsafe { out.slice(o, n) }));
                        });
                    }
                }
            }
            // A large contiguous part is read on several threads by the store.
            let read = self
                .store
                .read_parts_into(key, &mut parts, Some(expected))
                .map_err(|e| self.chunk_storage_error(key, e))?;
            drop(parts);
            match read {
                PartsRead::Done => {}
                _ if in_shard => return Ok(Passthrough::Stale),
                PartsRead::Missing => {
                    self.decode_share(chain, key, None, share, out_shape, out)?;
                    return Ok(Passthrough::Read);
                }
                PartsRead::WrongSize(actual) => {
                    return Err(self.corrupt(
                        key,
                        CodecError::corrupt(
                            "bytes",
                            format!("{actual} bytes stored, {} expected", repr.nbytes()),
                        ),
                    ))
                }
                // Unsharded chunks are expected by size alone, which has no tag: not reached,
                // but should a store report it, the caller reads and decodes the chunk whole
                // instead.
                PartsRead::Replaced => return Ok(Passthrough::Declined),
            }
            if let Some(span) = span {
                let (maps, start) = (&share.maps, span.start);
                copy_share_from(maps, chunk_shape, out_shape, size, span_bytes, start, out);
            }
            Ok(Passthrough::Read)
        })
    }

    /// Copies a chunk's share into the output from the chunk's stored bytes (`None`: not
    /// stored, so the fill value).
    fn decode_share(
        &self,
        chain: &CodecChain,
        key: &str,
        stored: Option<&[u8]>,
        share: &ChunkShare<'_>,
        out_shape: &[u64],
        out: &SharedBuffer,
    ) -> Result<()> {
        let size = self.data_type().size();
        let chunk_shape = &chain.decoded_repr().shape;
        let chunk_bytes = chain.decoded_repr().nbytes();
        let Some(stored) = stored else {
            for_each_row(&share.maps, chunk_shape, out_shape, size, &mut |o, _, n| {
                // SAFETY: every row of this share belongs to this chunk alone.
                fill_elements(unsafe { out.slice(o, n) }, &self.fill_value);
            });
            return Ok(());
        };
        if let Some(offset) = contiguous_offset(&share.maps, chunk_shape, out_shape) {
            // SAFETY: this block of the output belongs to this chunk alone.
            let dst = unsafe { out.slice(offset * size, chunk_bytes) };
            return chain
                .decode_into(stored, dst)
                .map_err(|e| self.corrupt(key, e));
        }
        if chain.is_passthrough() {
            // The stored bytes are the chunk: copy the rows straight from them.
            if stored.len() != chunk_bytes {
                return Err(self.corrupt(
                    key,
                    CodecError::corrupt(
                        "bytes",
                        format!("{} bytes stored, {chunk_bytes} expected", stored.len()),
                    ),
                ));
            }
            copy_share_from(&share.maps, chunk_shape, out_shape, size, stored, 0, out);
            return Ok(());
        }
        if self.decode_share_into_rows(chain, key, stored, share, out_shape, out)? {
            return Ok(());
        }
        // The box of the chunk the share spans: codec chains that can decode part of a chunk
        // (a point read of a zstd or blosc chunk, or of a transposed one) decode only as much
        // as covers it.
        let part = share_box(&share.maps).unwrap_or_default();
        scratch::with(&DECODED, |decoded| {
            alloc::resize(decoded, chunk_bytes).map_err(|e| self.corrupt(key, e))?;
            chain
                .decode_part_into(stored, decoded, &part)
                .map_err(|e| self.corrupt(key, e))?;
            copy_share_from(&share.maps, chunk_shape, out_shape, size, decoded, 0, out);
            Ok(())
        })
    }

    /// Decodes a whole chunk, whose share is all of it, straight into its rows of the output
    /// when the codec chain can (blosc writes each block there): no decoded copy of the chunk
    /// is written and read back. False, having written nothing, when it cannot.
    fn decode_share_into_rows(
        &self,
        chain: &CodecChain,
        key: &str,
        stored: &[u8],
        share: &ChunkShare<'_>,
        out_shape: &[u64],
        out: &SharedBuffer,
    ) -> Result<bool> {
        let chunk_shape = &chain.decoded_repr().shape;
        let size = self.data_type().size();
        // A row is at least the chunk's last dimension. Rows shorter than a cache line gain
        // nothing from being written in place (a codec call per row instead of a copy per
        // row), and their offsets would outweigh the chunk.
        let min_row = chunk_shape.last().map_or(0, |&n| n as usize * size);
        if !chain.writes_rows()
            || min_row < MIN_ROW_BYTES
            || !share
                .maps
                .iter()
                .zip(chunk_shape)
                .all(|(m, &c)| m.is_whole(c))
        {
            return Ok(false);
        }
        scratch::with(&OFFSETS, |offsets| {
            offsets.clear();
            // A whole chunk's rows are all as long and follow one another in the chunk (so
            // `in_order` is a defensive check: a share whose rows did not would be copied the
            // general way).
            let mut row_len = 0;
            let mut in_order = true;
            for_each_row(&share.maps, chunk_shape, out_shape, size, &mut |o, c, n| {
                row_len = n;
                in_order &= c == offsets.len() * n;
                offsets.push(o);
            });
            // SAFETY: every row of this share belongs to this chunk alone.
            let rows = match unsafe { out.rows(row_len, offsets) } {
                Some(rows) if in_order => rows,
                _ => return Ok(false),
            };
            chain
                .decode_into_rows(stored, &rows)
                .map_err(|e| self.corrupt(key, e))
        })
    }

    /// A decoded chunk from the decoded-chunk cache, if the store still holds the version it
    /// was decoded from (`current`: the version of the chunk, or of an inner chunk's shard,
    /// now); otherwise fetched (by `fetch`, with the version of what it read), decoded and
    /// cached.
    fn cached_chunk(
        &self,
        chain: &CodecChain,
        label: &str,
        cache_key: &str,
        current: &dyn Fn() -> std::result::Result<Option<Version>, StorageError>,
        fetch: impl FnOnce() -> Result<(Option<Vec<u8>>, Option<Version>)>,
    ) -> Result<CachedChunk> {
        let namespace = &self.cache_namespace;
        let checking = crate::config::validate_checksums();
        // Only a version that tells every replacement apart is cached (a size alone, or a
        // web server's modification time in seconds, would serve a rewrite stale).
        let kept = |version: &Option<Version>| version.is_none_or(|v| v.exact);
        if let Some(hit) = chunk_cache::get(namespace, cache_key).filter(|hit| kept(&hit.version)) {
            let now = current().map_err(|e| self.chunk_storage_error(label, e))?;
            let current = match (hit.version, now) {
                (None, None) => true,
                (Some(then), Some(now)) => same_version(then, now) == PartsRead::Done,
                _ => false,
            };
            // Decoded with checksums unchecked, it is not taken once they are checked; nor
            // one of another size than this array's chunks (which would be read past).
            let fits =
                (hit.chunk.as_ref()).is_none_or(|c| c.len() == chain.decoded_repr().nbytes());
            if current && fits && (hit.checked || !checking) {
                return Ok(hit.chunk);
            }
        }
        let (stored, version) = fetch()?;
        let decoded = match stored {
            None => None,
            Some(stored) => {
                let mut chunk = alloc::zeroed(chain.decoded_repr().nbytes())
                    .map_err(|e| self.corrupt(label, e))?;
                chain
                    .decode_into(&stored, &mut chunk)
                    .map_err(|e| self.corrupt(label, e))?;
                Some(Arc::new(chunk))
            }
        };
        if kept(&version) {
            let cached = Cached {
                chunk: decoded.clone(),
                version,
                checked: checking,
            };
            chunk_cache::insert(namespace, cache_key, cached);
        }
        Ok(decoded)
    }

    /// The decoded chunk (inner chunk, if sharded) at grid coordinates `coords` through the
    /// decoded-chunk cache (`None`: not stored, so the fill value), in the read that has seen
    /// the shards in `seen`. A cached inner chunk is checked against its shard's version, a
    /// cached chunk against its own.
    pub(super) fn cached_chunk_at(&self, coords: &[u64], seen: &ShardsSeen) -> Result<CachedChunk> {
        let Some(sharding) = self.codecs.sharding() else {
            let key = self.chunk_key(coords);
            let current = || self.store.version(&key);
            return self.cached_chunk(&self.codecs, &key, &key, &current, || {
                let whole = ByteRange::FromStart {
                    offset: 0,
                    length: None,
                };
                Ok(match self.store.get_range_and_version(&key, whole)? {
                    Some((stored, version)) => (Some(stored), Some(version)),
                    None => (None, None),
                })
            });
        };
        let (shard, inner) = locate_inner(coords, sharding.chunks_per_shard());
        let key = self.chunk_key(&shard);
        let label = format!("{key} (inner chunk {inner})");
        let cache_key = format!("{key}#{inner}");
        // A cached inner chunk is used while the shard is still the version it came from: the
        // read has then taken that inner chunk from that version.
        let current = || {
            let now = seen.version(self, &key)?;
            seen.note_read(&key, now);
            Ok(now)
        };
        self.cached_chunk(sharding.inner_chain(), &label, &cache_key, &current, || {
            self.with_shard(sharding, &key, seen, |known| {
                let fetched = self.fetch_inner(&key, known, inner, seen)?;
                Ok(fetched.map(|stored| (stored, known.map(|k| k.version))))
            })
        })
    }

    /// Copies a chunk's share into the output from the decoded chunk (`None`: the fill value).
    fn copy_share(
        &self,
        chain: &CodecChain,
        decoded: Option<&[u8]>,
        share: &ChunkShare<'_>,
        out_shape: &[u64],
        out: &SharedBuffer,
    ) -> Result<()> {
        let size = self.data_type().size();
        let chunk_shape = &chain.decoded_repr().shape;
        match decoded {
            Some(chunk) => {
                copy_share_from(&share.maps, chunk_shape, out_shape, size, chunk, 0, out)
            }
            None => for_each_row(&share.maps, chunk_shape, out_shape, size, &mut |o, _, n| {
                // SAFETY: every row of this share belongs to this chunk alone.
                fill_elements(unsafe { out.slice(o, n) }, &self.fill_value)
            }),
        }
        Ok(())
    }

    /// The index of the shard at `key` and the shard's version (`None`: the shard is not
    /// stored), from the cache when `cached`, else with one range request (and then cached).
    pub(super) fn shard_index(
        &self,
        sharding: &Sharding,
        key: &str,
        cached: bool,
    ) -> Result<Option<KnownShard>> {
        if cached {
            if let Some(known) = self.shard_indexes.get(key) {
                return Ok(Some(known));
            }
        }
        // With the shard's size, every entry is checked to lie within it: reads of part of an
        // inner chunk fetch only some of its bytes, and must not take others' for them.
        let Some((encoded, version)) = self
            .store
            .get_range_and_version(key, sharding.index_range())
            .map_err(|e| self.chunk_storage_error(key, e))?
        else {
            self.shard_indexes.remove(key);
            return Ok(None);
        };
        let index = sharding
            .decode_index(&encoded, Some(version.size))
            .map_err(|e| self.corrupt(key, e))?;
        let known = KnownShard {
            index: Arc::new(index),
            version,
            just_read: true,
        };
        self.shard_indexes.insert(key, known.clone());
        Ok(Some(known))
    }

    /// Runs `read` with what this read (`seen`) knows of the shard at `key` (`None`: not
    /// stored). When `read` finds the shard replaced or gone since that was learnt (it
    /// returns `Ok(None)`), `read` is retried with the index read again, by this thread or by
    /// another of the read that met the change first ([`ShardsSeen::refresh`]); a shard that
    /// keeps changing under the read is an error after a few tries.
    pub(super) fn with_shard<T>(
        &self,
        sharding: &Sharding,
        key: &str,
        seen: &ShardsSeen,
        read: impl Fn(Option<&KnownShard>) -> Result<Option<T>>,
    ) -> Result<T> {
        let mut shard = seen.shard(key, || self.shard_index(sharding, key, true))?;
        for attempt in 1..=SHARD_TRIES {
            if let Some(done) = read(shard.as_ref())? {
                seen.note_read(key, shard.as_ref().map(|known| known.version));
                return Ok(done);
            }
            if attempt >= WHOLE_AFTER_TRIES {
                if let Some(done) = self.read_shard_held_whole(sharding, key, seen, &read)? {
                    return Ok(done);
                }
            }
            if attempt < SHARD_TRIES {
                shard = seen.refresh(key, &shard, || self.shard_index(sharding, key, false))?;
            }
        }
        Err(self.shard_kept_changing(key))
    }

    /// `read` of the shard at `key` held whole, index and inner chunks from one answer (a
    /// service whose answers to the requests of one shard all differ in version:
    /// load-balanced servers, each with its own entity tags). `None` if the store cannot hold
    /// a value whole.
    fn read_shard_held_whole<T>(
        &self,
        sharding: &Sharding,
        key: &str,
        seen: &ShardsSeen,
        read: &impl Fn(Option<&KnownShard>) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        let held = (self.store.hold_whole(key)).map_err(|e| self.chunk_storage_error(key, e))?;
        if held.is_none() {
            return Ok(None);
        }
        let done = seen
            .replace(key, || self.shard_index(sharding, key, false))
            .and_then(|shard| Ok((read(shard.as_ref())?, shard)));
        self.store.release_whole(key);
        match done? {
            (Some(done), shard) => {
                seen.note_read(key, shard.as_ref().map(|known| known.version));
                Ok(Some(done))
            }
            (None, _) => Err(self.shard_kept_changing(key)),
        }
    }

    /// Runs `read`, a read of inner chunks of some shards (all of them when it is given
    /// `None`, else at least those of the shards named), until no shard's inner chunks have
    /// come from two versions of it (as the [`ShardsSeen`] `read` is given notes): the inner
    /// chunks of a shard replaced after some of them were read are read again.
    pub(super) fn agreeing_on_shards(
        &self,
        mut read: impl FnMut(&ShardsSeen, Option<&HashSet<String>>) -> Result<()>,
    ) -> Result<()> {
        let mut again: Option<HashSet<String>> = None;
        for attempt in 1..=SHARD_TRIES {
            let seen = ShardsSeen::default();
            read(&seen, again.as_ref())?;
            let mixed = seen.mixed();
            if mixed.is_empty() {
                return Ok(());
            }
            if attempt >= WHOLE_AFTER_TRIES && self.read_shards_held_whole(&mixed, &mut read)? {
                return Ok(());
            }
            again = Some(mixed);
        }
        let key = again.iter().flatten().min().cloned().unwrap_or_default();
        Err(self.shard_kept_changing(&key))
    }

    /// `read` of the shards `mixed`, each held whole in turn (see
    /// [`Array::read_shard_held_whole`]), one at a time so that one is held; false if the
    /// store cannot hold a value whole.
    fn read_shards_held_whole(
        &self,
        mixed: &HashSet<String>,
        read: &mut impl FnMut(&ShardsSeen, Option<&HashSet<String>>) -> Result<()>,
    ) -> Result<bool> {
        let mut keys: Vec<&String> = mixed.iter().collect();
        keys.sort_unstable();
        for key in keys {
            let held = (self.store.hold_whole(key)).map_err(|e| self.chunk_storage_error(key, e));
            if held?.is_none() {
                // (The same store for every key: none of them was held.)
                return Ok(false);
            }
            // Its index is read again, from the shard held.
            self.shard_indexes.remove(key);
            let seen = ShardsSeen::default();
            let done = read(&seen, Some(&HashSet::from([key.clone()])));
            self.store.release_whole(key);
            done?;
            if seen.mixed().contains(key) {
                return Err(self.shard_kept_changing(key));
            }
        }
        Ok(true)
    }

    /// How many consecutive inner chunks of a shard a read of `items` inner chunks in all
    /// takes with one request. On a store whose requests wait on a network (tens of
    /// milliseconds each, and a fee on a cloud service) neighbours always go together, however
    /// few; elsewhere runs are kept short enough that a read within one shard still spreads
    /// over the threads.
    pub(super) fn max_inner_run(&self, items: usize) -> usize {
        match self.store.concurrent_requests() > 1 {
            true => MAX_RUN_ITEMS,
            false => (items / 16).min(MAX_RUN_ITEMS),
        }
    }

    /// Whether the inner chunk at grid coordinates `coords` lies in a shard of `only` (the
    /// shards a read takes again, see [`Array::agreeing_on_shards`]; `None`: every shard).
    pub(super) fn in_shards(
        &self,
        sharding: &Sharding,
        coords: &[u64],
        only: Option<&HashSet<String>>,
    ) -> bool {
        only.is_none_or(|keys| {
            let (shard, _) = locate_inner(coords, sharding.chunks_per_shard());
            keys.contains(&self.chunk_key(&shard))
        })
    }

    fn shard_kept_changing(&self, key: &str) -> Error {
        self.chunk_storage_error(
            key,
            StorageError::Io {
                // Named with its store, as the store's own errors name a key.
                key: format!("{}/{key}", self.store.describe().trim_end_matches('/')),
                source: std::io::Error::other(format!(
                    "the shard was replaced while it was read, {SHARD_TRIES} times in a row"
                )),
            },
        )
    }

    /// Reads a run of the plan's items that lie in one shard (see [`Plan::runs_in_stored`])
    /// with one request for the stored bytes of them all (see [`Array::with_inner_run`]).
    /// Shares of uncompressed inner chunks better read in place are read one by one.
    fn read_inner_run(
        &self,
        sharding: &Sharding,
        plan: &Plan,
        items: Range<usize>,
        out: &SharedBuffer,
        seen: &ShardsSeen,
    ) -> Result<()> {
        let out_shape = &plan.out_shape;
        let chain = sharding.inner_chain();
        let repr = chain.decoded_repr();
        let size = self.data_type().size();
        // An uncompressed inner chunk's share is read in place, the rows it needs alone, unless
        // the run's request is cheaper: when the inner chunks are small and wanted whole (what
        // a request per chunk costs, more than copying a few KiB), or the share too scattered
        // to read in place. On a store whose requests wait on a network, a share read in place
        // is a request of its own that spans most of its inner chunk anyway (the store asks
        // for ranges closer than a megabyte as one): inner chunks up to a run's size go in
        // the run.
        let networked = self.store.concurrent_requests() > 1;
        let in_run = |share: &ChunkShare<'_>| {
            let whole = (share.maps.iter().zip(&repr.shape)).all(|(map, &n)| map.covers(n));
            !chain.is_passthrough()
                || (networked && repr.nbytes() as u64 <= MAX_RUN_BYTES)
                || (whole && repr.nbytes() <= MAX_COPIED_INNER_BYTES)
                || (contiguous_offset(&share.maps, &repr.shape, out_shape).is_none()
                    && in_place_rows(share, &repr.shape, size, repr.nbytes()).is_none())
        };
        let (shares, alone): (Vec<ChunkShare<'_>>, Vec<ChunkShare<'_>>) =
            items.map(|i| plan.share(i)).partition(in_run);
        let one_by_one = |shares: &[ChunkShare<'_>]| {
            (shares.iter())
                .try_for_each(|share| self.read_inner_share(sharding, share, out_shape, out, seen))
        };
        one_by_one(&alone)?;
        if shares.len() < 2 {
            return one_by_one(&shares);
        }
        let per_shard = sharding.chunks_per_shard();
        let (shard, _) = locate_inner(&shares[0].coords, per_shard);
        let key = self.chunk_key(&shard);
        let inners: Vec<usize> = (shares.iter())
            .map(|share| locate_inner(&share.coords, per_shard).1)
            .collect();
        let read = self.with_inner_run(sharding, &key, &inners, seen, |k, label, bytes| {
            self.decode_share(chain, label, bytes, &shares[k], out_shape, out)
        })?;
        match read {
            true => Ok(()),
            false => one_by_one(&shares),
        }
    }

    /// Reads the stored bytes of the inner chunks `inners` of the shard at `key` with one
    /// request per [`MAX_RUN_BYTES`] of them, wherever they lie in the shard (a file store
    /// reads them with one `open` and as few `preadv` as their places allow; a remote store
    /// asks for neighbours in one range), and hands each in turn to `each` (its place in
    /// `inners`, a label for errors, its bytes; `None`: absent, so the fill value), in the
    /// read that has seen the shards in `seen`. Returns false, having handed nothing, when
    /// the shard is absent or the run's stored bytes are none: the caller reads those inner
    /// chunks one by one.
    pub(super) fn with_inner_run(
        &self,
        sharding: &Sharding,
        key: &str,
        inners: &[usize],
        seen: &ShardsSeen,
        each: impl Fn(usize, &str, Option<&[u8]>) -> Result<()>,
    ) -> Result<bool> {
        self.with_shard(sharding, key, seen, |known| {
            let Some(known) = known else {
                return Ok(Some(false));
            };
            let entries: Vec<Option<(u64, u64)>> =
                inners.iter().map(|&inner| known.index.get(inner)).collect();
            if entries.iter().flatten().all(|&(_, nbytes)| nbytes == 0) {
                return Ok(Some(false));
            }
            let mut start = 0;
            while start < entries.len() {
                // The next batch: as many entries as fit in MAX_RUN_BYTES, one at least. An
                // absent one joins the batch before it, so that every batch reads some bytes
                // (whose version check vouches for the absent ones too).
                let (mut end, mut total) = (start, 0);
                while let Some(entry) = entries.get(end) {
                    let nbytes = entry.map_or(0, |(_, nbytes)| nbytes);
                    if end > start && nbytes > 0 && total + nbytes > MAX_RUN_BYTES {
                        break;
                    }
                    total += nbytes;
                    end += 1;
                }
                let batch = start..end;
                start = end;
                let read =
                    self.read_run_batch(key, known, &entries[batch.clone()], total, |k, bytes| {
                        let k = batch.start + k;
                        each(k, &format!("{key} (inner chunk {})", inners[k]), bytes)
                    })?;
                if !read {
                    return Ok(None);
                }
            }
            Ok(Some(true))
        })
    }

    /// Reads the stored bytes of `entries` (`total` of them) of the shard `known` at `key`
    /// with one request and hands each in turn to `each`; false, having handed nothing, if
    /// the shard is no longer that version.
    fn read_run_batch(
        &self,
        key: &str,
        known: &KnownShard,
        entries: &[Option<(u64, u64)>],
        total: u64,
        each: impl Fn(usize, Option<&[u8]>) -> Result<()>,
    ) -> Result<bool> {
        scratch::with(&STORED, |stored| {
            alloc::resize(stored, total as usize).map_err(|e| self.corrupt(key, e))?;
            // Each stored inner chunk into its own stretch of the buffer, in the run's
            // order: the store reads them in the order they lie in the shard.
            let mut parts = Vec::with_capacity(entries.len());
            let mut rest = &mut stored[..];
            for &(offset, nbytes) in entries.iter().flatten() {
                let (part, tail) = std::mem::take(&mut rest).split_at_mut(nbytes as usize);
                parts.push((offset, part));
                rest = tail;
            }
            let read = self
                .store
                .read_parts_into(key, &mut parts, Some(known.version))
                .map_err(|e| self.chunk_storage_error(key, e))?;
            drop(parts);
            if read != PartsRead::Done {
                return Ok(false);
            }
            // The shard is the version the index describes (the read checked it), so an
            // inner chunk absent from the index is absent: the fill value.
            let mut at = 0;
            for (k, entry) in entries.iter().enumerate() {
                let bytes = entry.map(|(_, nbytes)| {
                    at += nbytes as usize;
                    &stored[at - nbytes as usize..at]
                });
                each(k, bytes)?;
            }
            Ok(true)
        })
    }

    fn read_inner_share(
        &self,
        sharding: &Sharding,
        share: &ChunkShare<'_>,
        out_shape: &[u64],
        out: &SharedBuffer,
        seen: &ShardsSeen,
    ) -> Result<()> {
        let (shard, inner) = locate_inner(&share.coords, sharding.chunks_per_shard());
        let key = self.chunk_key(&shard);
        let label = format!("{key} (inner chunk {inner})");
        let inner_chain = sharding.inner_chain();
        if chunk_cache::enabled() {
            let chunk = self.cached_chunk_at(&share.coords, seen)?;
            return self.copy_share(
                inner_chain,
                chunk.as_deref().map(Vec::as_slice),
                share,
                out_shape,
                out,
            );
        }
        self.with_shard(sharding, &key, seen, |known| {
            let entry = known.and_then(|k| Some((k.index.get(inner)?, k.version)));
            if let (Some(((offset, nbytes), version)), true) = (entry, inner_chain.is_passthrough())
            {
                let chunk_bytes = inner_chain.decoded_repr().nbytes() as u64;
                if nbytes != chunk_bytes {
                    return Err(self.corrupt(
                        &label,
                        CodecError::corrupt(
                            "bytes",
                            format!("{nbytes} bytes stored, {chunk_bytes} expected"),
                        ),
                    ));
                }
                let read = self.read_passthrough(
                    inner_chain,
                    &key,
                    offset,
                    version,
                    share,
                    out_shape,
                    out,
                )?;
                match read {
                    Passthrough::Read => return Ok(Some(())),
                    Passthrough::Stale => return Ok(None),
                    Passthrough::Declined => {}
                }
            }
            let Some(stored) = self.fetch_inner(&key, known, inner, seen)? else {
                return Ok(None);
            };
            self.decode_share(
                inner_chain,
                &label,
                stored.as_deref(),
                share,
                out_shape,
                out,
            )?;
            Ok(Some(()))
        })
    }

    /// How many chunks are stored: for a sharded array, inner chunks (each stored shard's
    /// index is read), so that the count compares with [`Array::nchunks`].
    pub fn nchunks_initialized(&self) -> Result<u64> {
        let shards = self.stored_chunks()?;
        let Some(sharding) = self.codecs.sharding() else {
            return Ok(shards.len() as u64);
        };
        let shape = self.metadata.shape();
        let shard_shape = self.chunk_shape();
        let inner_shape = sharding.inner_chunk_shape();
        let per_shard = sharding.chunks_per_shard();
        let mut count = 0;
        for shard in shards {
            let key = self.chunk_key(&shard);
            // Read afresh: another writer may have changed the shard since it was cached.
            let Some(known) = self.shard_index(sharding, &key, false)? else {
                continue;
            };
            // An inner chunk wholly outside the array (kept in an edge shard when the
            // array shrank) is no chunk of it: counted, the number could pass nchunks.
            let inside = |i: usize| {
                let mut rest = i as u64;
                (0..shape.len()).rev().all(|d| {
                    let at = rest % per_shard[d];
                    rest /= per_shard[d];
                    let start = shard[d].saturating_mul(shard_shape[d]);
                    start.saturating_add(at.saturating_mul(inner_shape[d])) < shape[d]
                })
            };
            count += (0..sharding.num_inner())
                .filter(|&i| known.index.get(i).is_some() && inside(i))
                .count() as u64;
        }
        Ok(count)
    }

    /// The stored bytes of inner chunk `inner` of the shard at `key` (`None`: not stored), in
    /// the read that has seen the shards in `seen`.
    pub(super) fn inner_chunk_bytes(
        &self,
        sharding: &Sharding,
        key: &str,
        inner: usize,
        seen: &ShardsSeen,
    ) -> Result<Option<Vec<u8>>> {
        self.with_shard(sharding, key, seen, |known| {
            self.fetch_inner(key, known, inner, seen)
        })
    }

    /// The stored bytes of inner chunk `inner` of the shard `known` at `key`: `Some(None)`
    /// when the shard or the inner chunk is not stored, `None` when the shard is no longer
    /// the version `known` describes (as far as the read `seen` knows).
    fn fetch_inner(
        &self,
        key: &str,
        known: Option<&KnownShard>,
        inner: usize,
        seen: &ShardsSeen,
    ) -> Result<Option<Option<Vec<u8>>>> {
        let Some(known) = known else {
            return Ok(Some(None));
        };
        let Some((offset, nbytes)) = known.index.get(inner) else {
            // Absent from the shard this index describes: true if the shard is still that one.
            if known.just_read {
                return Ok(Some(None));
            }
            let now = seen
                .version(self, key)
                .map_err(|e| self.chunk_storage_error(key, e))?;
            let same = now.is_some_and(|v| same_version(known.version, v) == PartsRead::Done);
            return Ok(same.then_some(None));
        };
        // The index was checked against the shard's size, so `nbytes` is within it.
        let mut bytes = alloc::zeroed(nbytes as usize).map_err(|e| self.corrupt(key, e))?;
        let read = self
            .store
            .read_parts_into(key, &mut [(offset, &mut bytes[..])], Some(known.version))
            .map_err(|e| self.chunk_storage_error(key, e))?;
        Ok((read == PartsRead::Done).then_some(Some(bytes)))
    }

    // --- writing ---

    /// Writes `data` (C order, in the byte order of [`read_into`](Self::read_into), shaped as
    /// the selection) into the selection.
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
        self.write_from(selection, WriteSource::Buffer(data), write_empty_chunks)
    }

    /// Writes `data`, the selection's values in F order (its first dimension varying
    /// fastest), into an array stored in C order: each chunk's thread takes its elements
    /// from where they lie, so no C-order copy of the whole buffer is made.
    pub(super) fn write_from_fortran(
        &self,
        selection: &Selection,
        data: &[u8],
        write_empty_chunks: bool,
    ) -> Result<()> {
        self.checked_len(selection, data.len())?;
        let size = self.data_type().size();
        let shape = selection.shape();
        let mut strides = Vec::with_capacity(shape.len());
        let mut stride = size;
        for &n in &shape {
            strides.push(stride);
            stride = stride.saturating_mul(n as usize);
        }
        let source = WriteSource::Fortran {
            data,
            shape: &shape,
            strides: &strides,
            size,
        };
        self.write_from(selection, source, write_empty_chunks)
    }

    /// Writes one element, `value` (in the byte order of [`read_into`](Self::read_into)),
    /// into every place of the selection, as [`write`](Self::write) writes a buffer of it,
    /// without one: a selection of the whole array takes no more memory than its chunks
    /// (numpy's broadcast of a scalar would be as large as the selection).
    pub fn write_value(
        &self,
        selection: &Selection,
        value: &[u8],
        write_empty_chunks: bool,
    ) -> Result<()> {
        if value.len() != self.data_type().size() {
            return Err(Error::InvalidArgument(format!(
                "the value holds {} bytes; an element of {} holds {}",
                value.len(),
                self.path(),
                self.data_type().size()
            )));
        }
        // The checks of a buffer of the value (variable-length elements are refused there).
        let elements = selection.num_elements() as usize;
        self.checked_len(selection, elements.saturating_mul(value.len()))?;
        // The longest run of elements a write copies at once is a chunk (an inner chunk, if
        // sharded), so that many copies of the value serve every run.
        let longest = match self.codecs.sharding() {
            Some(sharding) => sharding.inner_chain().decoded_repr().nbytes(),
            None => self.codecs.decoded_repr().nbytes(),
        };
        let mut runs = alloc::with_capacity(longest).map_err(|_| Error::OutOfMemory {
            what: format!("a chunk of {}", self.path()),
            bytes: longest as u64,
        })?;
        // Doubled, not grown one element at a time (64 M steps for a 64 MiB chunk of bytes).
        runs.extend_from_slice(value);
        while runs.len() < longest {
            let n = runs.len().min(longest - runs.len());
            runs.extend_from_within(..n);
        }
        self.write_from(selection, WriteSource::Repeated(&runs), write_empty_chunks)
    }

    fn write_from(
        &self,
        selection: &Selection,
        data: WriteSource<'_>,
        write_empty_chunks: bool,
    ) -> Result<()> {
        let _threads = self.request_threads();
        let write_empty_chunks = self.keeps_empty_chunks(write_empty_chunks);
        let plan = Plan::new(selection, self.inner_chunk_shape());
        let _claim = self.claim_chunks(&plan)?;
        match self.codecs.sharding() {
            Some(sharding) => {
                let encode = |share: &ChunkShare<'_>, existing: Option<&[u8]>, label: &str| {
                    scratch::with(&DECODED, |chunk| {
                        let inner_chain = sharding.inner_chain();
                        self.updated_chunk(
                            inner_chain,
                            label,
                            existing,
                            share,
                            &plan.out_shape,
                            data,
                            chunk,
                        )?;
                        let touches = |part: &[Range<u64>]| {
                            share.maps.iter().zip(part).all(|(m, r)| m.touches(r))
                        };
                        self.encode_written_inner(
                            inner_chain,
                            chunk,
                            existing,
                            &touches,
                            write_empty_chunks,
                            label,
                        )
                    })
                };
                self.write_sharded(sharding, &plan, &encode)
            }
            None => self.for_each_share(&plan, |share| {
                let key = self.chunk_key(&share.coords);
                self.write_chunk(&key, &share, &plan.out_shape, data, write_empty_chunks)
            }),
        }
    }

    /// The new stored bytes (`None`: not stored) of an inner chunk of a shard that a write
    /// left as the decoded `chunk` of `chain` (the sharding codec's inner chain), its stored
    /// bytes before being `existing`; `touches` says which parts of it the write touched. An
    /// inner chunk of the fill value is not stored unless `write_empty_chunks`; one that is a
    /// shard itself is written in part, as zarr-python writes it, down to its own inner
    /// chunks (see [`Sharding::encode_written`]).
    pub(super) fn encode_written_inner(
        &self,
        chain: &CodecChain,
        chunk: &[u8],
        existing: Option<&[u8]>,
        touches: &Touches<'_>,
        write_empty_chunks: bool,
        label: &str,
    ) -> Result<Option<Vec<u8>>> {
        // (The inner chain's chunks have the array's data type and fill value: the sharding
        // codec is the whole chain here.)
        super::chunk_ops::encode_touched(chain, chunk, label, touches, existing, write_empty_chunks)
    }

    /// Claims, against other threads' writes to this array, the stored chunks (shards, if
    /// sharded) that the plan's chunks lie in (see [`write_lock`]). Held until dropped.
    pub(super) fn claim_chunks(&self, plan: &Plan) -> Result<Option<WriteClaim>> {
        self.claim_bounds(plan.stored_bounds(&self.chunks_per_stored()))
    }

    /// How many encoded chunks each stored chunk spans along each dimension: the inner
    /// chunks per shard, if sharded, else 1.
    pub(super) fn chunks_per_stored(&self) -> Vec<u64> {
        match self.codecs.sharding() {
            Some(sharding) => sharding.chunks_per_shard().to_vec(),
            None => vec![1; self.shape().len()],
        }
    }

    /// Claims the stored chunks in `bounds` (per dimension of the chunk grid, inclusive).
    pub(super) fn claim_bounds(&self, mut bounds: Vec<(u64, u64)>) -> Result<Option<WriteClaim>> {
        // Claimed as the stored array's chunks, so that writes through a view of it with its
        // dimensions reversed and writes through the array itself wait for one another.
        if self.dims_reversed {
            bounds.reverse();
        }
        write_lock::claim(&self.store.cache_namespace(), &self.path, bounds)
    }

    /// The part of the chunk at `coords` (of `chunk_shape`) that lies inside the array.
    fn extent_in_array(&self, coords: &[u64], chunk_shape: &[u64]) -> Vec<u64> {
        coords
            .iter()
            .zip(chunk_shape)
            .zip(self.shape())
            .map(|((&c, &n), &s)| (s - c * n).min(n))
            .collect()
    }

    /// Builds in `chunk` the decoded contents of a chunk after its share of `data` is written:
    /// its current contents (`existing`, stored bytes, unless the share covers it) or the fill
    /// value, overlaid with the share.
    #[allow(clippy::too_many_arguments)]
    fn updated_chunk(
        &self,
        chain: &CodecChain,
        key: &str,
        existing: Option<&[u8]>,
        share: &ChunkShare<'_>,
        in_shape: &[u64],
        data: WriteSource<'_>,
        chunk: &mut Vec<u8>,
    ) -> Result<()> {
        let size = self.data_type().size();
        let chunk_shape = &chain.decoded_repr().shape;
        alloc::resize(chunk, chain.decoded_repr().nbytes()).map_err(|e| self.corrupt(key, e))?;
        match existing {
            Some(stored) => chain
                .decode_into(stored, chunk)
                .map_err(|e| self.corrupt(key, e))?,
            None => fill_elements(chunk, &self.fill_value),
        }
        for_each_row(&share.maps, chunk_shape, in_shape, size, &mut |o, c, n| {
            data.copy_run(o, &mut chunk[c..c + n]);
        });
        Ok(())
    }

    /// Whether a share writes every element of its chunk that lies inside the array (see
    /// [`PieceMap::cover_chunk`]).
    pub(super) fn covers(&self, share: &ChunkShare<'_>, chunk_shape: &[u64]) -> bool {
        let extent = self.extent_in_array(&share.coords, chunk_shape);
        PieceMap::cover_chunk(share.maps.iter().copied(), &extent, chunk_shape)
    }

    fn write_chunk(
        &self,
        key: &str,
        share: &ChunkShare<'_>,
        in_shape: &[u64],
        data: WriteSource<'_>,
        write_empty_chunks: bool,
    ) -> Result<()> {
        let size = self.data_type().size();
        let chunk_shape = self.chunk_shape();
        let chunk_bytes = self.codecs.decoded_repr().nbytes();
        if let Some(run) = contiguous_offset(&share.maps, chunk_shape, in_shape)
            .and_then(|offset| data.run(offset * size, chunk_bytes))
        {
            return self.store_chunk(key, run, write_empty_chunks);
        }
        let covered = self.covers(share, chunk_shape);
        scratch::with(&DECODED, |chunk| {
            if self.codecs.is_passthrough() {
                // The stored bytes are the chunk: read straight into it, not into a copy to
                // decode from.
                let found = !covered
                    && self
                        .store
                        .get_into(key, chunk, self.codecs.decodes_in_parallel())?;
                if found && chunk.len() != chunk_bytes {
                    return Err(self.corrupt(
                        key,
                        CodecError::corrupt(
                            "bytes",
                            format!("{} bytes stored, {chunk_bytes} expected", chunk.len()),
                        ),
                    ));
                }
                if !found {
                    alloc::resize(chunk, chunk_bytes).map_err(|e| self.corrupt(key, e))?;
                    fill_elements(chunk, &self.fill_value);
                }
                for_each_row(&share.maps, chunk_shape, in_shape, size, &mut |o, c, n| {
                    data.copy_run(o, &mut chunk[c..c + n]);
                });
                return self.store_chunk(key, chunk, write_empty_chunks);
            }
            scratch::with(&STORED, |stored| -> Result<()> {
                let found = !covered
                    && self
                        .store
                        .get_into(key, stored, self.codecs.decodes_in_parallel())?;
                self.updated_chunk(
                    &self.codecs,
                    key,
                    found.then_some(stored.as_slice()),
                    share,
                    in_shape,
                    data,
                    chunk,
                )
            })?;
            self.store_chunk(key, chunk, write_empty_chunks)
        })
    }

    pub(super) fn store_chunk(
        &self,
        key: &str,
        chunk: &[u8],
        write_empty_chunks: bool,
    ) -> Result<()> {
        let stored = if !write_empty_chunks && self.codecs.decoded_repr().holds_only_fill(chunk) {
            self.store.delete(key).map_err(Error::from)
        } else {
            // A shard followed by other codecs is encoded whole: with write_empty_chunks, its
            // inner chunks of the fill value are stored too, as zarr-python stores them.
            let encoded = self
                .codecs
                .encode_with(chunk, write_empty_chunks)
                .map_err(|source| Error::EncodeChunk {
                    key: key.to_string(),
                    source,
                })?;
            self.store.set(key, &encoded).map_err(Error::from)
        };
        // Dropped once the store has changed: a read in between would cache the old chunk.
        if chunk_cache::enabled() {
            chunk_cache::invalidate(&self.cache_namespace, key);
        }
        stored
    }

    /// Writes a sharded array: the inner chunks the selection touches, grouped by shard.
    /// `encode` gives the new stored bytes of an inner chunk (`None`: not stored) from its
    /// share and its current stored bytes (`None` when absent or rewritten whole).
    pub(super) fn write_sharded(
        &self,
        sharding: &Sharding,
        plan: &Plan,
        encode: &EncodeInner<'_>,
    ) -> Result<()> {
        let shares = (0..plan.total).map(|i| (i, plan.share(i).coords));
        self.for_each_shard(sharding, shares, |shard, shares| {
            self.write_shard(sharding, plan, shard, shares, encode)
        })
    }

    /// Runs `work(shard, touched)` once for each shard holding some of the inner chunks of
    /// `items` (an item and its inner chunk's grid coordinates each), shards in parallel;
    /// `touched` lists (inner chunk index in the shard, item).
    pub(super) fn for_each_shard(
        &self,
        sharding: &Sharding,
        items: impl Iterator<Item = (usize, Vec<u64>)>,
        work: impl Fn(&[u64], &[(usize, usize)]) -> Result<()> + Sync,
    ) -> Result<()> {
        let mut by_shard: HashMap<Vec<u64>, Vec<(usize, usize)>> = HashMap::new();
        for (item, chunk) in items {
            let (shard, inner) = locate_inner(&chunk, sharding.chunks_per_shard());
            by_shard.entry(shard).or_default().push((inner, item));
        }
        let shards: Vec<_> = by_shard.into_iter().collect();
        let run = |(shard, touched): &(Vec<u64>, Vec<(usize, usize)>)| {
            concurrency::mark_worker();
            work(shard, touched)
        };
        match shards.len() {
            0 => Ok(()),
            // On the engine's pool all the same: the shard's inner chunks encode in parallel.
            1 => concurrency::in_pool(|| run(&shards[0]))?,
            _ => concurrency::try_for_each(&shards, run),
        }
    }

    /// Rewrites one shard: `shares` are (inner chunk index, share of the plan) pairs.
    fn write_shard(
        &self,
        sharding: &Sharding,
        plan: &Plan,
        shard: &[u64],
        shares: &[(usize, usize)],
        encode_inner: &EncodeInner<'_>,
    ) -> Result<()> {
        let inner_shape = sharding.inner_chunk_shape();
        // Inner chunks that lie (partly) inside the array; the others never hold data.
        let extent = self.extent_in_array(shard, self.chunk_shape());
        let inner_in_array: usize = extent
            .iter()
            .zip(inner_shape)
            .map(|(&e, &n)| e.div_ceil(n) as usize)
            .product();
        // A shard inside this one is written in part, as zarr-python writes it: what it holds
        // past the array's edge (left by a shrink) stays. So it is read unless the write
        // covers all of it, not just its part inside the array.
        let nested = sharding.inner_chain().sharding().is_some();
        let covered = |share: &ChunkShare<'_>| {
            self.covers(share, inner_shape)
                && (!nested || self.extent_in_array(&share.coords, inner_shape) == inner_shape)
        };
        let whole_in_array =
            shares.len() == inner_in_array && shares.iter().all(|&(_, i)| covered(&plan.share(i)));
        let touched: Vec<usize> = shares.iter().map(|&(inner, _)| inner).collect();
        // An edge shard's inner chunks past the array's edge hold what an array shrunk since
        // kept there, which a regrown array reads again (as zarr-python's does): the shard is
        // rewritten whole only when its index shows none of them stored.
        let whole = whole_in_array
            && (inner_in_array == sharding.num_inner()
                || !self.stores_inner_chunks_besides(sharding, shard, &touched)?);
        self.rewrite_shard(sharding, shard, &touched, whole, &|k, existing, label| {
            let share = plan.share(shares[k].1);
            // A share that covers its inner chunk does not need what is stored there.
            let existing = if covered(&share) { None } else { existing };
            encode_inner(&share, existing, label)
        })
    }

    /// Whether the shard at grid coordinates `shard` stores any inner chunk but those
    /// `touched` (their indices in the shard), as its index, read anew, says.
    fn stores_inner_chunks_besides(
        &self,
        sharding: &Sharding,
        shard: &[u64],
        touched: &[usize],
    ) -> Result<bool> {
        let key = self.chunk_key(shard);
        let Some(known) = self.shard_index(sharding, &key, false)? else {
            return Ok(false);
        };
        let mut others = vec![true; sharding.num_inner()];
        for &inner in touched {
            if let Some(other) = others.get_mut(inner) {
                *other = false;
            }
        }
        Ok((others.iter().enumerate()).any(|(i, &other)| other && known.index.get(i).is_some()))
    }

    /// Rewrites the shard at grid coordinates `shard`: the inner chunks `touched` (their
    /// indices in the shard) are encoded anew, in parallel, by `encode(k, existing, label)`
    /// for `touched[k]` from its current stored bytes (`None`: not stored), and the others
    /// are kept as stored. With `whole`, every inner chunk inside the array is touched, so
    /// the current shard is not read.
    pub(super) fn rewrite_shard(
        &self,
        sharding: &Sharding,
        shard: &[u64],
        touched: &[usize],
        whole: bool,
        encode: &RewriteInner<'_>,
    ) -> Result<()> {
        let key = self.chunk_key(shard);
        sharding
            .check_room_to_write()
            .map_err(|e| self.corrupt(&key, e))?;
        // The current shard and its version, unless every inner chunk in it is rewritten.
        let existing: Option<(Vec<u8>, ShardIndex, Version)> = if whole {
            None
        } else {
            let all = ByteRange::FromStart {
                offset: 0,
                length: None,
            };
            match self.store.get_range_and_version(&key, all)? {
                None => None,
                Some((bytes, version)) => {
                    let range = sharding
                        .index_range()
                        .to_range(bytes.len() as u64)
                        .ok_or_else(|| {
                            self.corrupt(
                                &key,
                                CodecError::corrupt("sharding_indexed", "shorter than its index"),
                            )
                        })?;
                    let index = sharding
                        .decode_index(
                            &bytes[range.start as usize..range.end as usize],
                            Some(bytes.len() as u64),
                        )
                        .map_err(|e| self.corrupt(&key, e))?;
                    Some((bytes, index, version))
                }
            }
        };
        let stored_inner = |inner: usize| -> Option<&[u8]> {
            let (bytes, index, _) = existing.as_ref()?;
            let (offset, nbytes) = index.get(inner)?;
            Some(&bytes[offset as usize..(offset + nbytes) as usize])
        };
        let encoded: Vec<(usize, Option<Vec<u8>>)> = (0..touched.len())
            .into_par_iter()
            .map(|k| {
                let inner = touched[k];
                let label = format!("{key} (inner chunk {inner})");
                Ok((inner, encode(k, stored_inner(inner), &label)?))
            })
            .collect::<Result<_>>()?;
        let mut parts: Vec<Option<&[u8]>> = (0..sharding.num_inner()).map(stored_inner).collect();
        for (inner, bytes) in &encoded {
            parts[*inner] = bytes.as_deref();
        }
        let layout = sharding
            .layout(&parts)
            .map_err(|source| Error::EncodeChunk {
                key: key.clone(),
                source,
            })?;
        let stored = match layout {
            None => self.store.delete(&key).map(|()| None),
            // Written piece by piece: the shard is never assembled in memory.
            Some(layout) => self
                .store
                .set_parts(&key, &layout.pieces())
                .map(|version| Some((layout.index, version?))),
        };
        // Both dropped once the store has changed (a read in between would cache the old
        // ones). Where the store told the new shard's version, its index is kept, so that the
        // writer's next read of an inner chunk costs one request; otherwise that read learns
        // both.
        self.shard_indexes.remove(&key);
        if chunk_cache::enabled() {
            let namespace = &self.cache_namespace;
            for (inner, _) in &encoded {
                chunk_cache::invalidate(namespace, &format!("{key}#{inner}"));
            }
            // The inner chunks kept as stored decode as before: their cached decodings stay
            // good for the new shard (otherwise a write of one element would make every
            // cached inner chunk of its shard be read again).
            if let (Some((_, _, read)), Ok(Some((_, written)))) = (&existing, &stored) {
                let mut kept = vec![true; sharding.num_inner()];
                for &inner in touched {
                    if let Some(kept) = kept.get_mut(inner) {
                        *kept = false;
                    }
                }
                let kept = (kept.iter().enumerate())
                    .filter(|&(_, &kept)| kept)
                    .map(|(i, _)| format!("{key}#{i}"));
                chunk_cache::carry_over(namespace, kept, *read, *written);
            }
        }
        if let Some((index, version)) = stored? {
            let known = KnownShard {
                index: Arc::new(index),
                version,
                just_read: false,
            };
            self.shard_indexes.insert(&key, known);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::selection::DimSelection;

    fn slice(start: u64, step: i64, len: u64) -> DimSelection {
        DimSelection::Slice { start, step, len }
    }

    #[test]
    fn runs_stay_in_one_shard_and_within_their_length() {
        // A 4x8 grid of inner chunks in shards of 2x4 of them: a row of a shard is a run.
        let plan = Plan::new(&Selection::all(&[4, 8]), &[1, 1]);
        let rows: Vec<Range<usize>> = (0..8).map(|r| r * 4..r * 4 + 4).collect();
        assert_eq!(plan.runs_in_stored(&[2, 4], 64), rows);
        assert_eq!(plan.runs_in_stored(&[2, 4], 3)[..3], [0..3, 3..4, 4..7]);
        assert_eq!(plan.runs_in_stored(&[2, 4], 0).len(), 32);
        // Within one shard along the last dimension, a run goes on into the next row.
        let plan = Plan::new(
            &Selection(vec![DimSelection::all(4), slice(4, 1, 4)]),
            &[1, 1],
        );
        assert_eq!(plan.runs_in_stored(&[2, 4], 64), [0..8, 8..16]);
        // Backwards, and by a list of indices (taken chunk by chunk, in the chunks' order).
        let plan = Plan::new(&Selection(vec![slice(0, 1, 1), slice(7, -1, 8)]), &[1, 1]);
        assert_eq!(plan.runs_in_stored(&[2, 4], 64), [0..4, 4..8]);
        let picks = DimSelection::Indices(vec![0, 5, 1, 6]);
        let plan = Plan::new(&Selection(vec![slice(0, 1, 1), picks]), &[1, 1]);
        assert_eq!(plan.runs_in_stored(&[2, 4], 64), [0..2, 2..4]);
        // A 0-d array is one item; an empty selection none.
        let scalar = Plan::new(&Selection(vec![]), &[]).runs_in_stored(&[], 64);
        assert_eq!(scalar.iter().map(|run| run.len()).collect::<Vec<_>>(), [1]);
        let plan = Plan::new(&Selection(vec![slice(0, 1, 0)]), &[1]);
        assert!(plan.runs_in_stored(&[4], 64).is_empty());
    }

    #[test]
    fn half_a_chunk_or_more_in_short_output_rows_is_read_whole() {
        // Shares of a 64³ chunk, `lens` from the start of each dimension, into a larger output.
        let rows = |lens: [u64; 3], size: usize| {
            let maps: Vec<PieceMap> = lens
                .iter()
                .map(|&len| PieceMap::Run {
                    out_start: 0,
                    chunk_start: 0,
                    step: 1,
                    len,
                })
                .collect();
            let share = ChunkShare {
                index: 0,
                coords: vec![0; 3],
                maps: maps.iter().collect(),
            };
            in_place_rows(&share, &[64, 64, 64], size, 64 * 64 * 64 * size)
        };
        // The whole chunk in rows of 128 or 256 bytes: read whole and copied.
        assert_eq!(rows([64, 64, 64], 2), None);
        assert_eq!(rows([64, 64, 64], 4), None);
        // In rows of 512 bytes: read in place, row by row.
        assert_eq!(rows([64, 64, 64], 8), Some(4096));
        // Half of it in rows of 128 bytes: read whole; a quarter: in place.
        assert_eq!(rows([32, 64, 64], 2), None);
        assert_eq!(rows([16, 64, 64], 2), Some(1024));
        // A point, and a line along the last dimension: in place.
        assert_eq!(rows([1, 1, 1], 2), Some(1));
        assert_eq!(rows([1, 1, 64], 2), Some(1));
    }
}
