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
//! the cost of reading some source chunks twice.

pub mod cast;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rayon::prelude::*;

use crate::array::copy::{all_fill, fill_elements};
use crate::array::selection::{DimSelection, Selection};
use crate::array::Array;
use crate::concurrency;
use crate::error::{Error, Result};
use crate::metadata::DataType;

/// Memory limits of a conversion, in decoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Decoded source chunks kept between waves.
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
    /// Source chunks decoded (more than the source has only when the cache overflowed).
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

    fn num_elements(&self) -> u64 {
        self.extent.iter().product()
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

/// The destination units in processing order: block by block, a block being the units that
/// start in one source chunk, so that the units reading a source chunk come together and it
/// is decoded once, however many units it spans (an order going along whole rows of units
/// came back to a source chunk after a row, by when the cache could have dropped it). Blocks,
/// and units within a block, go with the dimensions along which a source chunk spans the
/// most units fastest.
fn unit_order(shape: &[u64], source_cell: &[u64], unit: &[u64]) -> Vec<Vec<u64>> {
    let ndim = shape.len();
    let grid: Vec<u64> = shape
        .iter()
        .zip(unit)
        .map(|(s, u)| s.div_ceil(*u))
        .collect();
    let mut dims: Vec<usize> = (0..ndim).collect();
    // Stable: ties keep C order (the last dimension fastest).
    dims.sort_by(|&a, &b| {
        let ra = source_cell[a] as f64 / unit[a] as f64;
        let rb = source_cell[b] as f64 / unit[b] as f64;
        ra.total_cmp(&rb)
    });
    let permuted: Vec<(u64, u64)> = dims.iter().map(|&d| (0, grid[d])).collect();
    let mut order: Vec<Vec<u64>> = product(&permuted)
        .into_iter()
        .map(|p| {
            let mut coords = vec![0u64; ndim];
            for (i, &d) in dims.iter().enumerate() {
                coords[d] = p[i];
            }
            coords
        })
        .collect();
    // Stable: within a block, the order above.
    order.sort_by_cached_key(|coords| {
        dims.iter()
            .map(|&d| coords[d] * unit[d] / source_cell[d].max(1))
            .collect::<Vec<u64>>()
    });
    order
}

/// Copies the part of `src` (a C-order box `src_region`, elements of `from`) that lies in
/// `dst_region` into `dst` (a C-order box, elements of `to`), converting the values.
fn copy_overlap(
    src: &[u8],
    src_region: &Region,
    from: &DataType,
    dst: &mut [u8],
    dst_region: &Region,
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
    let (src_strides, dst_strides) = (strides(&src_region.extent), strides(&dst_region.extent));
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
    let units = unit_order(&shape, src.inner_chunk_shape(), &unit);
    let unit_regions: Vec<Region> = units
        .iter()
        .map(|c| Region::cell(c, &unit, &shape))
        .filter(|r| r.num_elements() > 0)
        .collect();
    progress
        .units_total
        .store(unit_regions.len() as u64, Ordering::SeqCst);
    let total_bytes: u64 = unit_regions
        .iter()
        .map(|r| r.num_elements() * to.size() as u64)
        .sum();
    progress.bytes_total.store(total_bytes, Ordering::SeqCst);
    if from.is_variable() {
        return convert_variable(src, dst, &unit_regions, write_empty_chunks, progress);
    }
    Converter::new(src, dst, &unit_regions, from, to, budget).run(write_empty_chunks, progress)
}

/// Variable-length elements (strings, bytes) go unit by unit, without a cache.
fn convert_variable(
    src: &Array,
    dst: &Array,
    units: &[Region],
    write_empty_chunks: bool,
    progress: &Progress,
) -> Result<Outcome> {
    let written = AtomicU64::new(0);
    // A conversion stops through its `Progress` (its job runs off the main thread, where no
    // Ctrl-C is asked for), not the pool's `Stop`.
    concurrency::install(|_| {
        units.par_iter().try_for_each(|region| {
            if progress.is_cancelled() {
                return Ok(());
            }
            let selection = region.selection();
            let values = src.read_vlen(&selection)?;
            progress.source_decodes.fetch_add(1, Ordering::Relaxed);
            dst.write_vlen(&selection, &values, write_empty_chunks)?;
            written.fetch_add(1, Ordering::Relaxed);
            progress.units_done.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
    })?;
    let units_written = written.load(Ordering::SeqCst);
    Ok(Outcome {
        completed: units_written == units.len() as u64,
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

struct Converter<'a> {
    src: &'a Array,
    dst: &'a Array,
    units: &'a [Region],
    from: DataType,
    to: DataType,
    budget: Budget,
    source_cell: Vec<u64>,
    /// For each unit, the source cells it reads.
    needs: Vec<Vec<Cell>>,
    /// For each source cell, the units that read it, in processing order.
    uses: HashMap<Cell, Vec<usize>>,
}

impl<'a> Converter<'a> {
    fn new(
        src: &'a Array,
        dst: &'a Array,
        units: &'a [Region],
        from: DataType,
        to: DataType,
        budget: Budget,
    ) -> Self {
        let source_cell = src.inner_chunk_shape().to_vec();
        let needs: Vec<Vec<Cell>> = units
            .iter()
            .map(|r| product(&cells_touched(r, &source_cell)))
            .collect();
        let mut uses: HashMap<Cell, Vec<usize>> = HashMap::new();
        for (i, cells) in needs.iter().enumerate() {
            for c in cells {
                uses.entry(c.clone()).or_default().push(i);
            }
        }
        Self {
            src,
            dst,
            units,
            from,
            to,
            budget,
            source_cell,
            needs,
            uses,
        }
    }

    fn cell_region(&self, cell: &[u64]) -> Region {
        Region::cell(cell, &self.source_cell, self.src.shape())
    }

    fn cell_bytes(&self, cell: &[u64]) -> u64 {
        self.cell_region(cell).num_elements() * self.from.size() as u64
    }

    fn unit_bytes(&self, unit: usize) -> u64 {
        self.units[unit].num_elements() * self.to.size() as u64
    }

    /// The next wave: units from `start` on (at least one), such that the cache, the source
    /// chunks the wave adds and its units fit the budget.
    fn wave(&self, start: usize, cache: &HashMap<Cell, Arc<Vec<u8>>>, cache_bytes: u64) -> usize {
        let max_units = 2 * concurrency::threads().max(1);
        let total = self.budget.cache_bytes + self.budget.wave_bytes;
        let mut end = start;
        let mut bytes = 0u64;
        let mut new_cells: std::collections::HashSet<&Cell> = Default::default();
        while end < self.units.len() && end - start < max_units {
            let mut add = self.unit_bytes(end);
            for c in &self.needs[end] {
                if !cache.contains_key(c) && !new_cells.contains(c) {
                    add += self.cell_bytes(c);
                }
            }
            if end > start && cache_bytes + bytes + add > total {
                break;
            }
            bytes += add;
            new_cells.extend(self.needs[end].iter());
            end += 1;
        }
        end
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
                chunk,
                &self.to,
            )?;
        }
        Ok(write_empty_chunks || !all_fill(buf, fill))
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

    fn run(&self, write_empty_chunks: bool, progress: &Progress) -> Result<Outcome> {
        let mut cache: HashMap<Cell, Arc<Vec<u8>>> = HashMap::new();
        let mut cache_bytes = 0u64;
        // Per cell, how many of its uses are done.
        let mut used: HashMap<&Cell, usize> = HashMap::new();
        let mut written = 0u64;
        let mut start = 0;
        while start < self.units.len() {
            if progress.is_cancelled() {
                break;
            }
            let end = self.wave(start, &cache, cache_bytes);
            // Decode what the wave needs and the cache lacks, in parallel.
            let mut missing: Vec<&Cell> = self.needs[start..end]
                .iter()
                .flatten()
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
                (start..end).into_par_iter().try_for_each(|u| {
                    if progress.is_cancelled() {
                        return Ok(());
                    }
                    let region = &self.units[u];
                    self.write_unit(region, &cache, write_empty_chunks)?;
                    wave_written.fetch_add(1, Ordering::Relaxed);
                    progress.units_done.fetch_add(1, Ordering::Relaxed);
                    progress.bytes_done.fetch_add(
                        region.num_elements() * self.to.size() as u64,
                        Ordering::Relaxed,
                    );
                    Ok(())
                })
            })?;
            written += wave_written.load(Ordering::SeqCst);
            // Drop the cells no later unit reads; then, over the budget, the ones read
            // furthest ahead.
            for cells in &self.needs[start..end] {
                for c in cells {
                    *used.entry(c).or_default() += 1;
                }
            }
            let mut next_use: Vec<(usize, Cell)> = Vec::new();
            let mut finished: Vec<Cell> = Vec::new();
            for (cell, _) in cache.iter() {
                let all = &self.uses[cell];
                let done = used.get(cell).copied().unwrap_or(0);
                if done >= all.len() {
                    finished.push(cell.clone());
                } else {
                    next_use.push((all[done], cell.clone()));
                }
            }
            let mut kept_bytes =
                cache_bytes - finished.iter().map(|c| cache[c].len() as u64).sum::<u64>();
            if kept_bytes > self.budget.cache_bytes {
                next_use.sort();
                while kept_bytes > self.budget.cache_bytes {
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
            start = end;
        }
        Ok(Outcome {
            completed: written == self.units.len() as u64,
            units_written: written,
            source_decodes: progress.source_decodes.load(Ordering::SeqCst),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_go_fastest_along_the_dimension_a_source_chunk_spans() {
        // Source chunks span the whole first dimension: units vary fastest along it.
        let order = unit_order(&[4, 4], &[4, 1], &[2, 2]);
        assert_eq!(order, vec![vec![0, 0], vec![1, 0], vec![0, 1], vec![1, 1]]);
        // Equal ratios keep C order.
        let order = unit_order(&[4, 4], &[2, 2], &[2, 2]);
        assert_eq!(order, vec![vec![0, 0], vec![0, 1], vec![1, 0], vec![1, 1]]);
    }

    #[test]
    fn the_units_in_one_source_chunk_come_together() {
        // 4x4 source chunks of 2x2 units: the four units of each source chunk, one after
        // another (not the first row of units across both source chunks).
        let order = unit_order(&[4, 8], &[4, 4], &[2, 2]);
        let blocks: Vec<u64> = order.iter().map(|c| c[1] * 2 / 4).collect();
        assert_eq!(blocks, vec![0, 0, 0, 0, 1, 1, 1, 1]);
        assert_eq!(order[..4], [vec![0, 0], vec![0, 1], vec![1, 0], vec![1, 1]]);
    }

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
