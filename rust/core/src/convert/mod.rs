//! Converting an array into another of the same shape with a different layout: other chunks or
//! shards, other codecs, another Zarr format or data type.
//!
//! The work goes by the destination's write units (its shards, or its chunks when it has no
//! shards), each written whole, so no destination chunk is ever read back. The source is read
//! by its own decode units (its chunks, or the inner chunks of its shards): each one is
//! decoded once, kept while units still need it, and dropped after its last use. The units go
//! in an order that makes a decoded source chunk's uses consecutive: block by block of the
//! units starting in one source chunk, the dimensions along which a source chunk spans the
//! most destination units varying fastest. They are processed in
//! waves, bounded in number and in bytes; within a wave, the source chunks it needs are
//! decoded in parallel, then its units are assembled, encoded and stored in parallel. Should
//! the decoded chunks still needed exceed the cache budget (an unlucky pair of layouts), the
//! ones needed furthest ahead are dropped and decoded again later: memory stays bounded, at
//! the cost of reading some source chunks twice. The budget is never below what one unit
//! reads (held while it is made anyway), so units reading more than it still decode each
//! source chunk once. The order is made as the work goes (see
//! `order`), and where the units reading no stored source chunk can only hold the fill value,
//! only the others are walked: a sparse array costs what it stores.

pub mod cast;
mod order;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rayon::prelude::*;

use crate::array::copy::{all_fill_of, fill_elements};
use crate::array::selection::{DimSelection, Selection};
use crate::array::Array;
use crate::concurrency;
use crate::error::{Error, Result};
use crate::metadata::DataType;
use order::{Coords, UnitOrder, Units};

/// Memory limits of a conversion, in decoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Decoded source chunks kept between waves (more where one destination unit reads
    /// more: those are held while it is made anyway).
    pub cache_bytes: u64,
    /// Destination units assembled at once (at least one unit, whatever its size).
    pub wave_bytes: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            cache_bytes: 160 << 20,
            wave_bytes: 32 << 20,
        }
    }
}

/// How far a conversion has got, readable while it runs, and a way to stop it.
#[derive(Debug, Default)]
pub struct Progress {
    /// Destination units (shards or chunks) written, and in all.
    pub units_done: AtomicU64,
    pub units_total: AtomicU64,
    /// Decoded bytes of the destination written, and in all.
    pub bytes_done: AtomicU64,
    pub bytes_total: AtomicU64,
    /// Source chunks decoded (more than the source has only when the cache overflowed, or for
    /// variable-length elements, which have no cache: each unit decodes what it reads).
    pub source_decodes: AtomicU64,
    cancelled: AtomicBool,
}

impl Progress {
    /// Asks the conversion to stop: units in flight finish, no new one starts.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// The product of `values`, or u64::MAX past it: counts of grids too large to walk whole.
fn saturating_product(values: impl IntoIterator<Item = u64>) -> u64 {
    values
        .into_iter()
        .try_fold(1u64, |n, v| n.checked_mul(v))
        .unwrap_or(u64::MAX)
}

/// A box of an array: where it starts and how far it extends, per dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Region {
    start: Vec<u64>,
    extent: Vec<u64>,
}

impl Region {
    /// Cell `coords` of a grid of `cell` shapes over an array of `shape`, clipped to it.
    fn cell(coords: &[u64], cell: &[u64], shape: &[u64]) -> Self {
        let start: Vec<u64> = coords.iter().zip(cell).map(|(c, n)| c * n).collect();
        let extent = start
            .iter()
            .zip(cell)
            .zip(shape)
            .map(|((s, n), len)| (*n).min(len - s))
            .collect();
        Self { start, extent }
    }

    /// Saturating: a box of an array may hold more than 2^64 elements (as a byte count, for
    /// the budget and progress, no more could be held anyway).
    fn num_elements(&self) -> u64 {
        saturating_product(self.extent.iter().copied())
    }

    fn selection(&self) -> Selection {
        Selection(
            self.start
                .iter()
                .zip(&self.extent)
                .map(|(&start, &len)| DimSelection::Slice {
                    start,
                    step: 1,
                    len,
                })
                .collect(),
        )
    }
}

/// The grid cells (of `cell` shapes) a region touches, per dimension: `[first, end)`.
fn cells_touched(region: &Region, cell: &[u64]) -> Vec<(u64, u64)> {
    region
        .start
        .iter()
        .zip(&region.extent)
        .zip(cell)
        .map(|((s, e), n)| (s / n, (s + e).div_ceil(*n)))
        .collect()
}

/// Every coordinate in the product of `ranges`, in C order.
fn product(ranges: &[(u64, u64)]) -> Vec<Vec<u64>> {
    let mut out = vec![Vec::with_capacity(ranges.len())];
    for &(lo, hi) in ranges {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                (lo..hi).map(move |i| {
                    let mut c = prefix.clone();
                    c.push(i);
                    c
                })
            })
            .collect();
    }
    out
}

/// Copies the part of `src` (a C-order box `src_region`, elements of `from`) that lies in
/// `dst_region` into `dst` (elements of `to`), converting the values. `dst` is a C-order box
/// of `dst_shape` starting where `dst_region` does: a chunk at the array's edge, whose box
/// reaches past the array's end (even past 2^64 elements), and `dst_region` its part inside
/// the array, so that no end computed here overflows.
fn copy_overlap(
    src: &[u8],
    src_region: &Region,
    from: &DataType,
    dst: &mut [u8],
    dst_region: &Region,
    dst_shape: &[u64],
    to: &DataType,
) -> Result<()> {
    let ndim = src_region.start.len();
    let (from_size, to_size) = (from.size(), to.size());
    if ndim == 0 {
        return cast::cast(from, to, &src[..from_size], &mut dst[..to_size]);
    }
    let lo: Vec<u64> = (0..ndim)
        .map(|d| src_region.start[d].max(dst_region.start[d]))
        .collect();
    let hi: Vec<u64> = (0..ndim)
        .map(|d| {
            (src_region.start[d] + src_region.extent[d])
                .min(dst_region.start[d] + dst_region.extent[d])
        })
        .collect();
    if lo.iter().zip(&hi).any(|(l, h)| l >= h) {
        return Ok(());
    }
    let strides = |extent: &[u64]| {
        let mut s = vec![1u64; ndim];
        for d in (0..ndim - 1).rev() {
            s[d] = s[d + 1] * extent[d + 1];
        }
        s
    };
    let (src_strides, dst_strides) = (strides(&src_region.extent), strides(dst_shape));
    let row = (hi[ndim - 1] - lo[ndim - 1]) as usize;
    // Rows are short (an inner chunk's width): the type check is made once, not per row.
    let same_type = from.same_in_memory(to);
    // An odometer over the rows (every dimension but the last) of the overlap.
    let mut index: Vec<u64> = lo[..ndim - 1].to_vec();
    loop {
        let mut s = lo[ndim - 1] - src_region.start[ndim - 1];
        let mut o = lo[ndim - 1] - dst_region.start[ndim - 1];
        for d in 0..ndim - 1 {
            s += (index[d] - src_region.start[d]) * src_strides[d];
            o += (index[d] - dst_region.start[d]) * dst_strides[d];
        }
        let (s, o) = (s as usize, o as usize);
        let (src_row, dst_row) = (
            &src[s * from_size..(s + row) * from_size],
            &mut dst[o * to_size..(o + row) * to_size],
        );
        if same_type {
            dst_row.copy_from_slice(src_row);
        } else {
            cast::cast(from, to, src_row, dst_row)?;
        }
        // The next row: bump the last leading dimension, carrying into earlier ones.
        let mut d = ndim - 1;
        loop {
            if d == 0 {
                return Ok(());
            }
            d -= 1;
            index[d] += 1;
            if index[d] < hi[d] {
                break;
            }
            index[d] = lo[d];
        }
    }
}

/// What a conversion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Whether every unit was written (false: it was cancelled).
    pub completed: bool,
    pub units_written: u64,
    pub source_decodes: u64,
}

/// Copies every value of `src` into `dst` (of the same shape), converting the data type where
/// they differ. Destination chunks holding only the fill value are not stored unless
/// `write_empty_chunks`. Runs on the engine's thread pool.
pub fn convert(
    src: &Array,
    dst: &Array,
    budget: Budget,
    write_empty_chunks: bool,
    progress: &Progress,
) -> Result<Outcome> {
    let shape = src.shape().to_vec();
    if dst.shape() != shape.as_slice() {
        return Err(Error::InvalidArgument(format!(
            "the source has shape {shape:?}, the destination {:?}",
            dst.shape()
        )));
    }
    let write_empty_chunks = dst.keeps_empty_chunks(write_empty_chunks);
    let (from, to) = (src.data_type().clone(), dst.data_type().clone());
    if !cast::can_cast(&from, &to) {
        return Err(Error::InvalidArgument(format!(
            "cannot convert {from} values to {to}"
        )));
    }
    let unit = dst.chunk_shape().to_vec();
    let order = UnitOrder::new(&shape, src.inner_chunk_shape(), &unit);
    let total_units = order.len();
    let total_bytes = saturating_product(shape.iter().copied().chain([to.size() as u64]));
    progress.units_total.store(total_units, Ordering::SeqCst);
    progress.bytes_total.store(total_bytes, Ordering::SeqCst);
    let (todo, count) = match units_reading_stored_chunks(src, dst, &order, write_empty_chunks) {
        Some(listed) => {
            // The other units hold only the fill value, which is not stored: nothing to do.
            let listed_bytes: u64 = listed
                .iter()
                .map(|u| {
                    let elements = Region::cell(u, &unit, &shape).num_elements();
                    elements.saturating_mul(to.size() as u64)
                })
                .fold(0u64, u64::saturating_add);
            let count = listed.len() as u64;
            progress
                .units_done
                .fetch_add(total_units.saturating_sub(count), Ordering::SeqCst);
            progress
                .bytes_done
                .fetch_add(total_bytes.saturating_sub(listed_bytes), Ordering::SeqCst);
            (Todo::Listed(listed.into_iter()), count)
        }
        None => (Todo::Every(order.iter()), total_units),
    };
    if from.is_variable() {
        return convert_variable(src, dst, todo, count, write_empty_chunks, progress);
    }
    Converter::new(src, dst, &order, from, to, budget).run(
        todo,
        count,
        write_empty_chunks,
        progress,
    )
}

/// The units a conversion writes, in order: every one, or those reading a stored source chunk.
enum Todo<'o> {
    Every(Units<'o>),
    Listed(std::vec::IntoIter<Coords>),
}

impl Iterator for Todo<'_> {
    type Item = Coords;

    fn next(&mut self) -> Option<Coords> {
        match self {
            Todo::Every(units) => units.next(),
            Todo::Listed(units) => units.next(),
        }
    }
}

/// Object stores list their chunks for a conversion only from a grid of this many chunks.
const LISTED_GRID_MIN: u64 = 1 << 20;
/// The most units a conversion holds a list of, where walking every unit is not far longer.
const LISTED_UNITS_MAX: u64 = 1 << 21;

/// The units reading a stored source chunk, in order, when the others need no writing: a
/// source chunk not stored reads as its fill value, which converts to the destination's and
/// is not stored there (`write_empty_chunks` off), and the destination stores nothing yet.
/// A sparse array's conversion then costs what it stores, not what its grid spans: walking
/// every unit of a (10^6)² array in 10² chunks holding two of them did not finish. None
/// where every unit is to be walked, as when the source cannot list its chunks (a web
/// server) or stores most of its grid.
fn units_reading_stored_chunks(
    src: &Array,
    dst: &Array,
    order: &UnitOrder,
    write_empty_chunks: bool,
) -> Option<Vec<Coords>> {
    let (from, to) = (src.data_type(), dst.data_type());
    if write_empty_chunks || from.is_variable() || to.is_variable() {
        return None;
    }
    // As a written unit is counted empty (`assemble_chunk`).
    let mut fill = vec![0u8; to.size()];
    if cast::cast(from, to, src.fill_value(), &mut fill).is_err()
        || !all_fill_of(&fill, dst.fill_value(), to)
    {
        return None;
    }
    let grid = saturating_product(src.grid_shape());
    // An object store lists a thousand keys a request, and a dense source's listing is
    // thrown away: there it is worth making only for grids whose walk would cost far more
    // (every missing chunk a request of its own).
    if src.store().concurrent_requests() > 1 && grid < LISTED_GRID_MIN {
        return None;
    }
    if !dst.stored_chunks().is_ok_and(|stored| stored.is_empty()) {
        return None;
    }
    let stored = src.stored_chunks().ok()?;
    if (stored.len() as u64).saturating_mul(2) > grid {
        return None;
    }
    let (shape, chunk, unit) = (src.shape(), src.chunk_shape(), dst.chunk_shape());
    // The units are held, about 150 bytes each: where units much smaller than the source's
    // chunks make them many, every unit is walked instead, in little memory, unless that
    // walk is far longer (a grid too large to walk).
    let per_chunk = saturating_product(
        chunk
            .iter()
            .zip(unit)
            .map(|(c, u)| c.div_ceil((*u).max(1)).saturating_add(1)),
    );
    let most = (stored.len() as u64).saturating_mul(per_chunk);
    let many = most > LISTED_UNITS_MAX && order.len() / 64 <= most;
    if many || most.saturating_mul(2) > order.len() {
        return None;
    }
    let units = stored
        .iter()
        .flat_map(|c| product(&cells_touched(&Region::cell(c, chunk, shape), unit)));
    Some(order.sorted(units))
}

/// Variable-length elements (strings, bytes) go unit by unit, without a cache, a batch of
/// units at a time.
fn convert_variable(
    src: &Array,
    dst: &Array,
    mut todo: Todo<'_>,
    count: u64,
    write_empty_chunks: bool,
    progress: &Progress,
) -> Result<Outcome> {
    let (shape, unit) = (src.shape(), dst.chunk_shape());
    let batch = 8 * concurrency::threads().max(1);
    let written = AtomicU64::new(0);
    while !progress.is_cancelled() {
        let regions: Vec<Region> = todo
            .by_ref()
            .take(batch)
            .map(|c| Region::cell(&c, unit, shape))
            .collect();
        if regions.is_empty() {
            break;
        }
        // A conversion stops through its `Progress` (its job runs off the main thread, where
        // no Ctrl-C is asked for), not the pool's `Stop`.
        concurrency::install(|_| {
            regions.par_iter().try_for_each(|region| {
                if progress.is_cancelled() {
                    return Ok(());
                }
                let selection = region.selection();
                let values = src.read_vlen(&selection)?;
                // Each unit decodes the source chunks it reads, again for every unit.
                let decodes = cells_touched(region, src.inner_chunk_shape())
                    .iter()
                    .map(|(lo, hi)| hi - lo)
                    .product::<u64>();
                progress
                    .source_decodes
                    .fetch_add(decodes, Ordering::Relaxed);
                dst.write_vlen(&selection, &values, write_empty_chunks)?;
                written.fetch_add(1, Ordering::Relaxed);
                progress.units_done.fetch_add(1, Ordering::Relaxed);
                progress.bytes_done.fetch_add(
                    region.num_elements() * dst.data_type().size() as u64,
                    Ordering::Relaxed,
                );
                Ok(())
            })
        })?;
    }
    let units_written = written.load(Ordering::SeqCst);
    Ok(Outcome {
        completed: units_written == count,
        units_written,
        source_decodes: progress.source_decodes.load(Ordering::SeqCst),
    })
}

type Cell = Vec<u64>;

thread_local! {
    /// The inner chunk being assembled on this thread: reused, so the same size each time
    /// costs no allocation and no zeroing.
    static INNER_CHUNK: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How far ahead, at most, a full cache looks for the next use of its decoded chunks: units,
/// and source chunks they read.
const LOOKAHEAD_UNITS: usize = 4096;
const LOOKAHEAD_READS: usize = 1 << 16;

/// A destination unit to write: its place in the grid, the box it covers, and the source
/// chunks it reads.
struct Planned {
    coords: Coords,
    region: Region,
    needs: Vec<Cell>,
}

struct Converter<'a> {
    src: &'a Array,
    dst: &'a Array,
    order: &'a UnitOrder,
    from: DataType,
    to: DataType,
    budget: Budget,
    source_cell: Vec<u64>,
}

impl<'a> Converter<'a> {
    fn new(
        src: &'a Array,
        dst: &'a Array,
        order: &'a UnitOrder,
        from: DataType,
        to: DataType,
        budget: Budget,
    ) -> Self {
        Self {
            src,
            dst,
            order,
            from,
            to,
            budget,
            source_cell: src.inner_chunk_shape().to_vec(),
        }
    }

    fn plan(&self, coords: Coords) -> Planned {
        let region = Region::cell(&coords, self.dst.chunk_shape(), self.src.shape());
        let needs = product(&cells_touched(&region, &self.source_cell));
        Planned {
            coords,
            region,
            needs,
        }
    }

    fn cell_region(&self, cell: &[u64]) -> Region {
        Region::cell(cell, &self.source_cell, self.src.shape())
    }

    fn cell_bytes(&self, cell: &[u64]) -> u64 {
        (self.cell_region(cell).num_elements()).saturating_mul(self.from.size() as u64)
    }

    fn unit_bytes(&self, region: &Region) -> u64 {
        region.num_elements().saturating_mul(self.to.size() as u64)
    }

    /// The decoded bytes of the source chunks `planned` reads: all held while it is made.
    fn need_bytes(&self, planned: &Planned) -> u64 {
        planned
            .needs
            .iter()
            .map(|c| self.cell_bytes(c))
            .fold(0u64, u64::saturating_add)
    }

    /// The next wave: the units after the last (at least one), such that the cache, the
    /// source chunks the wave adds and its units fit the budget, whose cache part is
    /// `cache_budget`. Units come from those looked at before, then from `todo`; the first
    /// that does not fit goes back.
    fn wave(
        &self,
        ahead: &mut VecDeque<Planned>,
        todo: &mut Todo<'_>,
        cache: &HashMap<Cell, Arc<Vec<u8>>>,
        cache_bytes: u64,
        cache_budget: u64,
    ) -> Vec<Planned> {
        let max_units = 2 * concurrency::threads().max(1);
        let total = cache_budget.saturating_add(self.budget.wave_bytes);
        let mut wave: Vec<Planned> = Vec::new();
        let mut bytes = 0u64;
        let mut new_cells: HashSet<Cell> = HashSet::new();
        while wave.len() < max_units {
            let Some(next) = ahead
                .pop_front()
                .or_else(|| todo.next().map(|c| self.plan(c)))
            else {
                break;
            };
            let mut add = self.unit_bytes(&next.region);
            for c in &next.needs {
                if !cache.contains_key(c) && !new_cells.contains(c) {
                    add = add.saturating_add(self.cell_bytes(c));
                }
            }
            if !wave.is_empty() && cache_bytes.saturating_add(bytes).saturating_add(add) > total {
                ahead.push_front(next);
                break;
            }
            bytes = bytes.saturating_add(add);
            new_cells.extend(next.needs.iter().cloned());
            wave.push(next);
        }
        wave
    }

    /// The values of destination chunk `chunk` (a box of chunk shape, possibly reaching past
    /// the array's end, where the fill value goes) from the decoded source chunks, converted;
    /// or None when it holds only the fill value and empty chunks are not written.
    fn assemble_chunk(
        &self,
        chunk: &Region,
        cache: &HashMap<Cell, Arc<Vec<u8>>>,
        buf: &mut Vec<u8>,
        write_empty_chunks: bool,
    ) -> Result<bool> {
        let shape = self.src.shape();
        let fill = self.dst.fill_value();
        buf.resize(chunk.num_elements() as usize * self.to.size(), 0);
        let inside = Region {
            start: chunk.start.clone(),
            extent: chunk
                .start
                .iter()
                .zip(&chunk.extent)
                .zip(shape)
                .map(|((s, e), n)| (*e).min(n.saturating_sub(*s)))
                .collect(),
        };
        if inside.extent != chunk.extent {
            // An edge chunk: what lies past the array's end holds the fill value.
            fill_elements(buf, fill);
        }
        for cell in product(&cells_touched(&inside, &self.source_cell)) {
            let data = cache.get(&cell).ok_or_else(|| {
                Error::InvalidArgument(format!("source chunk {cell:?} not decoded"))
            })?;
            copy_overlap(
                data,
                &self.cell_region(&cell),
                &self.from,
                buf,
                &inside,
                &chunk.extent,
                &self.to,
            )?;
        }
        // NaN-aware, as a write counts a chunk empty: a chunk of NaNs whose bits differ from
        // the fill value's NaN (x86's has the sign set) was stored where zarr-python's is not.
        Ok(write_empty_chunks || !all_fill_of(buf, fill, &self.to))
    }

    /// Encodes and stores destination unit `region` (a shard, or a chunk) straight from the
    /// decoded source chunks: each of its chunks is assembled in a small buffer and encoded,
    /// in parallel, and a shard goes to the store as its pieces, never assembled whole.
    fn write_unit(
        &self,
        region: &Region,
        cache: &HashMap<Cell, Arc<Vec<u8>>>,
        write_empty_chunks: bool,
    ) -> Result<()> {
        let unit = self.dst.chunk_shape();
        let coords: Vec<u64> = region.start.iter().zip(unit).map(|(s, n)| s / n).collect();
        let key = self.dst.chunk_key(&coords);
        let store = self.dst.store();
        let storage = |e| Error::Storage(e);
        let Some(sharding) = self.dst.codec_chain().sharding() else {
            let chunk = Region {
                start: region.start.clone(),
                extent: unit.to_vec(),
            };
            let mut buf = Vec::new();
            if !self.assemble_chunk(&chunk, cache, &mut buf, write_empty_chunks)? {
                return store.delete(&key).map_err(storage);
            }
            let encoded =
                self.dst
                    .codec_chain()
                    .encode(&buf)
                    .map_err(|source| Error::EncodeChunk {
                        key: key.clone(),
                        source,
                    })?;
            return store.set(&key, &encoded).map_err(storage);
        };
        sharding
            .check_room_to_write()
            .map_err(|e| Error::chunk(key.clone(), e))?;
        let inner = sharding.inner_chunk_shape();
        let per_shard = sharding.chunks_per_shard();
        // The inner chunks holding part of the array (others hold no data).
        let ranges: Vec<(u64, u64)> = region
            .extent
            .iter()
            .zip(inner)
            .map(|(e, n)| (0, e.div_ceil(*n)))
            .collect();
        let inner_chain = sharding.inner_chain();
        let encoded: Vec<(usize, Option<Vec<u8>>)> = product(&ranges)
            .into_par_iter()
            .map(|c| {
                let linear = c
                    .iter()
                    .zip(per_shard)
                    .fold(0u64, |acc, (&i, &n)| acc * n + i) as usize;
                let chunk = Region {
                    start: region
                        .start
                        .iter()
                        .zip(&c)
                        .zip(inner)
                        .map(|((s, i), n)| s + i * n)
                        .collect(),
                    extent: inner.to_vec(),
                };
                INNER_CHUNK.with(|scratch| {
                    let buf = &mut *scratch.borrow_mut();
                    if !self.assemble_chunk(&chunk, cache, buf, write_empty_chunks)? {
                        return Ok((linear, None));
                    }
                    let bytes = inner_chain
                        .encode(buf)
                        .map_err(|source| Error::EncodeChunk {
                            key: format!("{key} (inner chunk {linear})"),
                            source,
                        })?;
                    Ok((linear, Some(bytes.into_owned())))
                })
            })
            .collect::<Result<_>>()?;
        let mut parts: Vec<Option<&[u8]>> = vec![None; sharding.num_inner()];
        for (i, bytes) in &encoded {
            parts[*i] = bytes.as_deref();
        }
        let layout = sharding
            .layout(&parts)
            .map_err(|source| Error::EncodeChunk {
                key: key.clone(),
                source,
            })?;
        match layout {
            None => store.delete(&key).map_err(storage),
            Some(layout) => store
                .set_parts(&key, &layout.pieces())
                .map(drop)
                .map_err(storage),
        }
    }

    fn run(
        &self,
        mut todo: Todo<'_>,
        count: u64,
        write_empty_chunks: bool,
        progress: &Progress,
    ) -> Result<Outcome> {
        let mut cache: HashMap<Cell, Arc<Vec<u8>>> = HashMap::new();
        let mut cache_bytes = 0u64;
        let mut ahead: VecDeque<Planned> = VecDeque::new();
        let mut written = 0u64;
        // The decoded chunks kept between waves: the budget, or more where one unit reads
        // more than it. Those are all held while that unit is made anyway, and trimming the
        // cache below them after it dropped chunks its neighbours read again: a (600, 32, 32)
        // rechunk of 300 (2, 512, 512) u2 chunks, each unit reading all 300 MiB of them,
        // decoded 36,000 chunks in place of 300.
        let mut cache_budget = self.budget.cache_bytes;
        while !progress.is_cancelled() {
            let wave = self.wave(&mut ahead, &mut todo, &cache, cache_bytes, cache_budget);
            let Some(last) = wave.last() else {
                break;
            };
            for planned in &wave {
                cache_budget = cache_budget.max(self.need_bytes(planned));
            }
            // Decode what the wave needs and the cache lacks, in parallel.
            let mut missing: Vec<&Cell> = wave
                .iter()
                .flat_map(|p| &p.needs)
                .filter(|c| !cache.contains_key(*c))
                .collect();
            missing.sort();
            missing.dedup();
            let decoded: Vec<(Cell, Vec<u8>)> = concurrency::install(|_| {
                missing
                    .par_iter()
                    .map(|&cell| {
                        let region = self.cell_region(cell);
                        let mut buf =
                            vec![0u8; (region.num_elements() as usize) * self.from.size()];
                        self.src.read_into(&region.selection(), &mut buf)?;
                        progress.source_decodes.fetch_add(1, Ordering::Relaxed);
                        Ok((cell.clone(), buf))
                    })
                    .collect::<Result<Vec<_>>>()
            })?;
            for (cell, buf) in decoded {
                cache_bytes += buf.len() as u64;
                cache.insert(cell, Arc::new(buf));
            }
            // Assemble, encode and store the wave's units, in parallel.
            let wave_written = AtomicU64::new(0);
            concurrency::install(|_| {
                wave.par_iter().try_for_each(|planned| {
                    if progress.is_cancelled() {
                        return Ok(());
                    }
                    let region = &planned.region;
                    self.write_unit(region, &cache, write_empty_chunks)?;
                    wave_written.fetch_add(1, Ordering::Relaxed);
                    progress.units_done.fetch_add(1, Ordering::Relaxed);
                    progress
                        .bytes_done
                        .fetch_add(self.unit_bytes(region), Ordering::Relaxed);
                    Ok(())
                })
            })?;
            written += wave_written.load(Ordering::SeqCst);
            // Drop the cells no later unit reads: their last reader is done.
            let last_key = self.order.key(&last.coords);
            let mut finished: Vec<Cell> = cache
                .keys()
                .filter(|c| self.order.key(&self.order.last_reader(c)) <= last_key)
                .cloned()
                .collect();
            let mut kept_bytes =
                cache_bytes - finished.iter().map(|c| cache[c].len() as u64).sum::<u64>();
            if kept_bytes > cache_budget {
                // Over the budget, the cells read furthest ahead go too, as far as the units
                // ahead tell (first those none of them reads).
                let mut reads: usize = ahead.iter().map(|p| p.needs.len()).sum();
                while ahead.len() < LOOKAHEAD_UNITS && reads < LOOKAHEAD_READS {
                    let Some(coords) = todo.next() else {
                        break;
                    };
                    let planned = self.plan(coords);
                    reads += planned.needs.len();
                    ahead.push_back(planned);
                }
                let mut first_use: HashMap<&Cell, usize> = HashMap::new();
                for (i, planned) in ahead.iter().enumerate() {
                    for c in &planned.needs {
                        first_use.entry(c).or_insert(i);
                    }
                }
                let done: HashSet<&Cell> = finished.iter().collect();
                let mut next_use: Vec<(usize, Cell)> = cache
                    .keys()
                    .filter(|c| !done.contains(c))
                    .map(|c| (first_use.get(c).copied().unwrap_or(usize::MAX), c.clone()))
                    .collect();
                next_use.sort();
                while kept_bytes > cache_budget {
                    let Some((_, cell)) = next_use.pop() else {
                        break;
                    };
                    kept_bytes -= cache[&cell].len() as u64;
                    finished.push(cell);
                }
            }
            for cell in finished {
                if let Some(data) = cache.remove(&cell) {
                    cache_bytes -= data.len() as u64;
                }
            }
        }
        Ok(Outcome {
            completed: written == count,
            units_written: written,
            source_decodes: progress.source_decodes.load(Ordering::SeqCst),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_copy_row_by_row_with_conversion() {
        // A 2x3 source box at (1, 0) of u8 into a 3x2 destination box at (0, 1) of u16.
        let src: Vec<u8> = (1..=6).collect();
        let src_region = Region {
            start: vec![1, 0],
            extent: vec![2, 3],
        };
        let dst_region = Region {
            start: vec![0, 1],
            extent: vec![3, 2],
        };
        let mut dst = vec![0u8; 12];
        copy_overlap(
            &src,
            &src_region,
            &DataType::UInt8,
            &mut dst,
            &dst_region,
            &dst_region.extent,
            &DataType::UInt16,
        )
        .unwrap();
        let got: Vec<u16> = dst
            .chunks_exact(2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
            .collect();
        // Row 0 is outside the source; rows 1-2, columns 1-2 come from source columns 1-2.
        assert_eq!(got, vec![0, 0, 2, 3, 5, 6]);
    }

    #[test]
    fn cells_touched_by_a_region() {
        let region = Region {
            start: vec![3, 0],
            extent: vec![6, 4],
        };
        assert_eq!(cells_touched(&region, &[4, 4]), vec![(0, 3), (0, 1)]);
    }
}
