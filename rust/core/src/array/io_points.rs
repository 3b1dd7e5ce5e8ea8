//! Coordinate selections: reading and writing a list of points (numpy's and zarr-python's
//! `vindex`, and boolean masks through their coordinates).
//!
//! Points are grouped by the chunk that holds them (the inner chunk, in a sharded array);
//! each chunk is fetched and decoded once, in parallel, and its points copied to or from
//! their places in the output. A sharded array's inner chunks are read in runs within one
//! shard, with one request per run, as region reads do; its points are written shard by
//! shard: each shard is rewritten once, with only the inner chunks that hold points encoded
//! anew.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;

use super::chunk_cache;
use super::chunk_ops::mask_touches;
use super::copy::{c_strides, fill_elements, SharedBuffer};
use super::io::{for_each_item, locate_inner, ShardsSeen};
use super::write_lock::WriteClaim;
use super::Array;
use crate::codec::array_to_bytes::sharding::Sharding;
use crate::codec::{BoxRange, ChunkBox, CodecChain};
use crate::error::{Error, Result};

/// Points grouped by chunk: for each chunk (grid coordinates), the (output index, element
/// offset within the chunk) of each of its points, in output order.
pub(super) type ByChunk = Vec<(Vec<u64>, Vec<(usize, usize)>)>;

/// How a rewrite of the shards holding some points makes the new stored bytes of an inner
/// chunk (see [`Array::rewrite_shards_of_points`]).
pub(super) type UpdateInner<'a> =
    dyn Fn(&[(usize, usize)], Option<&[u8]>, &str) -> Result<Option<Vec<u8>>> + Sync + 'a;

/// Items sorted by their shard's grid coordinates (the first of each item's key) in runs of
/// consecutive items of one shard, none longer than `max_len`.
fn runs_in_shards<T>(items: &[((Vec<u64>, usize), T)], max_len: usize) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..items.len() {
        if i - start == max_len || items[i].0 .0 != items[start].0 .0 {
            runs.push(start..i);
            start = i;
        }
    }
    if !items.is_empty() {
        runs.push(start..items.len());
    }
    runs
}

impl Array {
    /// Groups points (`coords[d][i]` is point `i`'s coordinate along dimension `d`) by chunk,
    /// checking them against the shape.
    pub(super) fn points_by_chunk(&self, coords: &[Vec<u64>]) -> Result<(usize, ByChunk)> {
        let shape = self.shape();
        if coords.len() != shape.len() {
            return Err(Error::OutOfBounds(format!(
                "a coordinate selection needs {} index arrays, not {}",
                shape.len(),
                coords.len()
            )));
        }
        let n = coords.first().map_or(1, Vec::len);
        if coords.iter().any(|c| c.len() != n) {
            return Err(Error::InvalidArgument(
                "the index arrays of a coordinate selection must have the same length".into(),
            ));
        }
        // The chunks encoded on their own: inner chunks, if sharded.
        let chunk_shape = self.inner_chunk_shape();
        let strides = c_strides(chunk_shape);
        let mut groups: HashMap<Vec<u64>, Vec<(usize, usize)>> = HashMap::new();
        for i in 0..n {
            let mut chunk = Vec::with_capacity(shape.len());
            let mut offset = 0usize;
            for (d, axis) in coords.iter().enumerate() {
                let x = axis[i];
                if x >= shape[d] {
                    return Err(Error::OutOfBounds(format!(
                        "index {x} is out of bounds for dimension {d} with length {}",
                        shape[d]
                    )));
                }
                chunk.push(x / chunk_shape[d]);
                offset += (x % chunk_shape[d]) as usize * strides[d];
            }
            groups.entry(chunk).or_default().push((i, offset));
        }
        Ok((n, groups.into_iter().collect()))
    }

    /// The codec chain of the chunks points are grouped by (the inner chain, if sharded).
    fn point_chain(&self) -> &CodecChain {
        match self.codecs.sharding() {
            Some(sharding) => sharding.inner_chain(),
            None => &self.codecs,
        }
    }

    /// The decoded chunk (inner chunk, if sharded) at grid coordinates `coords` into `buf`,
    /// in the read that has seen the shards in `seen`, and whether it is stored (see
    /// [`Array::decode_point_chunk`]). Only the elements in box `needed` are sure to be
    /// decoded (a codec chain may leave the rest).
    fn decoded_chunk(
        &self,
        coords: &[u64],
        buf: &mut Vec<u8>,
        needed: &ChunkBox,
        seen: &ShardsSeen,
    ) -> Result<bool> {
        let chain = self.point_chain();
        let (label, stored) = match self.codecs.sharding() {
            Some(sharding) => {
                let (shard, inner) = locate_inner(coords, sharding.chunks_per_shard());
                let key = self.chunk_key(&shard);
                let stored = self.inner_chunk_bytes(sharding, &key, inner, seen)?;
                (format!("{key} (inner chunk {inner})"), stored)
            }
            None => {
                let key = self.chunk_key(coords);
                let stored = self.store.get(&key)?;
                (key, stored)
            }
        };
        self.decode_point_chunk(chain, &label, stored.as_deref(), buf, needed)
    }

    /// Decodes a chunk's stored bytes into `buf`, sure to decode only the elements in box
    /// `needed`; `label` names the chunk in errors. False, `buf` left as it was, for a chunk
    /// not stored (`None`): it holds only the fill value, which the caller puts where it
    /// needs it. Filling a buffer of the whole chunk for a few points cost the chunk's size
    /// in memory (a MemoryError for a chunk of 2^42 bytes, where zarr-python gives the fill
    /// value).
    fn decode_point_chunk(
        &self,
        chain: &CodecChain,
        label: &str,
        stored: Option<&[u8]>,
        buf: &mut Vec<u8>,
        needed: &ChunkBox,
    ) -> Result<bool> {
        let Some(stored) = stored else {
            return Ok(false);
        };
        crate::alloc::resize(buf, chain.decoded_repr().nbytes())
            .map_err(|e| self.corrupt(label, e))?;
        chain
            .decode_part_into(stored, buf, needed)
            .map_err(|e| self.corrupt(label, e))?;
        Ok(true)
    }

    fn check_points_supported(&self) -> Result<()> {
        if self.data_type().is_variable() {
            // Those go through orthogonal reads of each point (the Python layer does it).
            return Err(Error::InvalidArgument(format!(
                "{}: coordinate selections of variable-length arrays go point by point",
                self.path()
            )));
        }
        Ok(())
    }

    /// Reads the points into `out` (in the byte order of [`read_into`](Self::read_into), in
    /// point order), through the decoded-chunk cache when it is on.
    pub fn read_points(&self, coords: &[Vec<u64>], out: &mut [u8]) -> Result<()> {
        let _threads = self.request_threads();
        self.check_points_supported()?;
        let size = self.data_type().size();
        let (n, groups) = self.points_by_chunk(coords)?;
        if out.len() != n * size {
            return Err(Error::InvalidArgument(format!(
                "the buffer holds {} bytes; {n} points need {}",
                out.len(),
                n * size
            )));
        }
        let shared = SharedBuffer::new(out);
        // The box of a chunk its points lie in: a codec chain may decode only that.
        let chunk_shape = self.inner_chunk_shape();
        let strides = c_strides(chunk_shape);
        let needed = |points: &[(usize, usize)]| {
            let mut part = vec![BoxRange::span(u64::MAX, 0); chunk_shape.len()];
            for &(_, offset) in points {
                for (r, (&n, &stride)) in part.iter_mut().zip(chunk_shape.iter().zip(&strides)) {
                    let at = (offset / stride) as u64 % n.max(1);
                    (r.first, r.last) = (r.first.min(at), r.last.max(at));
                }
            }
            part
        };
        // The points' values from their decoded chunk, or (None: not stored) the fill value.
        let copy_out = |points: &[(usize, usize)], chunk: Option<&[u8]>| {
            for &(i, offset) in points {
                // SAFETY: each point has its own place in the output.
                let place = unsafe { shared.slice(i * size, size) };
                match chunk {
                    Some(chunk) => {
                        place.copy_from_slice(&chunk[offset * size..(offset + 1) * size])
                    }
                    None => fill_elements(place, &self.fill_value),
                }
            }
        };
        let cached = chunk_cache::enabled();
        let one =
            |(chunk, points): &(Vec<u64>, Vec<(usize, usize)>), seen: &ShardsSeen| -> Result<()> {
                if cached {
                    let decoded = self.cached_chunk_at(chunk, seen)?;
                    copy_out(points, decoded.as_deref().map(Vec::as_slice));
                    return Ok(());
                }
                let mut buf = Vec::new();
                let stored = self.decoded_chunk(chunk, &mut buf, &needed(points), seen)?;
                copy_out(points, stored.then_some(&buf[..]));
                Ok(())
            };
        let Some(sharding) = self.codecs.sharding() else {
            let seen = ShardsSeen::default(); // (none to see)
            return for_each_item(groups.len(), |g| one(&groups[g], &seen));
        };
        let per_shard = sharding.chunks_per_shard();
        if cached {
            // The decoded-chunk cache keeps inner chunks one by one: no runs.
            return self.agreeing_on_shards(|seen, only| {
                let located = |g: usize| {
                    let chunk = &groups[g].0;
                    (self.in_shards(sharding, chunk, only))
                        .then(|| (locate_inner(chunk, per_shard).0, 1))
                };
                self.for_each_item_in_shards(sharding, groups.len(), located, |g| {
                    match self.in_shards(sharding, &groups[g].0, only) {
                        true => one(&groups[g], seen),
                        false => Ok(()),
                    }
                })
            });
        }
        // As region reads do, the inner chunks of a shard are read in runs with one request
        // each (see `Array::with_inner_run` and `Array::max_inner_run`).
        let max_run = self.max_inner_run(groups.len()).max(1);
        // Each group with its shard and its inner chunk's place there, sorted by those.
        let mut located: Vec<_> = (groups.into_iter())
            .map(|group| (locate_inner(&group.0, per_shard), group))
            .collect();
        located.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let runs = runs_in_shards(&located, max_run);
        let chain = sharding.inner_chain();
        self.agreeing_on_shards(|seen, only| {
            let in_run = |r: usize| {
                let run = &located[runs[r].clone()];
                let ((shard, _), (chunk, _)) = &run[0];
                (self.in_shards(sharding, chunk, only)).then(|| (shard.clone(), run.len() as u64))
            };
            self.for_each_item_in_shards(sharding, runs.len(), in_run, |r| {
                let run = &located[runs[r].clone()];
                if !self.in_shards(sharding, &run[0].1 .0, only) {
                    return Ok(());
                }
                if run.len() < 2 {
                    return run.iter().try_for_each(|(_, group)| one(group, seen));
                }
                let key = self.chunk_key(&run[0].0 .0);
                let inners: Vec<usize> = run.iter().map(|((_, inner), _)| *inner).collect();
                let buf = RefCell::new(Vec::new());
                let read =
                    self.with_inner_run(sharding, &key, &inners, seen, |k, label, stored| {
                        let points = &run[k].1 .1;
                        let mut buf = buf.borrow_mut();
                        let stored = self.decode_point_chunk(
                            chain,
                            label,
                            stored,
                            &mut buf,
                            &needed(points),
                        )?;
                        copy_out(points, stored.then_some(&buf[..]));
                        Ok(())
                    })?;
                match read {
                    true => Ok(()),
                    false => run.iter().try_for_each(|(_, group)| one(group, seen)),
                }
            })
        })
    }

    /// Writes `data` (one element per point, in the byte order of
    /// [`read_into`](Self::read_into)) to the points. A point given more than once takes its
    /// last value, as in numpy.
    pub fn write_points(
        &self,
        coords: &[Vec<u64>],
        data: &[u8],
        write_empty_chunks: bool,
    ) -> Result<()> {
        let _threads = self.request_threads();
        self.check_points_supported()?;
        let write_empty_chunks = self.keeps_empty_chunks(write_empty_chunks);
        let size = self.data_type().size();
        let (n, groups) = self.points_by_chunk(coords)?;
        if data.len() != n * size {
            return Err(Error::InvalidArgument(format!(
                "{} bytes of values for {n} points of {size} bytes",
                data.len()
            )));
        }
        let _claim = self.claim_points(&groups)?;
        if let Some(sharding) = self.codecs.sharding() {
            return self.write_sharded_points(sharding, &groups, data, write_empty_chunks);
        }
        // Unsharded from here on: no shards to see.
        let seen = ShardsSeen::default();
        let work = |(chunk, points): &(Vec<u64>, Vec<(usize, usize)>)| -> Result<()> {
            let mut buf = Vec::new();
            // The whole chunk is rewritten, so all of it is decoded.
            let whole: Vec<BoxRange> = (self.codecs.decoded_repr().shape.iter())
                .map(|&n| BoxRange::all(n))
                .collect();
            let key = self.chunk_key(chunk);
            if !self.decoded_chunk(chunk, &mut buf, &whole, &seen)? {
                // Not stored: the points go over the fill value.
                crate::alloc::resize(&mut buf, self.codecs.decoded_repr().nbytes())
                    .map_err(|e| self.corrupt(&key, e))?;
                fill_elements(&mut buf, &self.fill_value);
            }
            for &(i, offset) in points {
                buf[offset * size..(offset + 1) * size]
                    .copy_from_slice(&data[i * size..(i + 1) * size]);
            }
            self.store_chunk(&key, &buf, write_empty_chunks)
        };
        for_each_item(groups.len(), |g| work(&groups[g]))
    }

    /// Claims, for a write of points grouped by chunk, the box of stored chunks (shards, if
    /// sharded) that holds them.
    pub(super) fn claim_points(&self, groups: &ByChunk) -> Result<Option<WriteClaim>> {
        let per_stored = self.chunks_per_stored();
        let bounds = (0..self.shape().len())
            .map(|d| {
                let along = groups.iter().map(|(chunk, _)| chunk[d] / per_stored[d]);
                (along.clone().min().unwrap_or(1), along.max().unwrap_or(0))
            })
            .collect();
        self.claim_bounds(bounds)
    }

    /// Writes points of a sharded array, grouped by inner chunk (`groups`): each shard that
    /// holds some is rewritten once, its touched inner chunks decoded, updated and encoded
    /// in parallel.
    fn write_sharded_points(
        &self,
        sharding: &Sharding,
        groups: &ByChunk,
        data: &[u8],
        write_empty_chunks: bool,
    ) -> Result<()> {
        let size = self.data_type().size();
        let chain = sharding.inner_chain();
        self.rewrite_shards_of_points(sharding, groups, &|points, existing, label| {
            let mut chunk = Vec::new();
            crate::alloc::resize(&mut chunk, chain.decoded_repr().nbytes())
                .map_err(|e| self.corrupt(label, e))?;
            match existing {
                Some(stored) => chain
                    .decode_into(stored, &mut chunk)
                    .map_err(|e| self.corrupt(label, e))?,
                None => fill_elements(&mut chunk, &self.fill_value),
            }
            for &(i, offset) in points {
                chunk[offset * size..(offset + 1) * size]
                    .copy_from_slice(&data[i * size..(i + 1) * size]);
            }
            // Which elements the points touch, asked only of an inner chunk that is a shard.
            let mut touched = Vec::new();
            if chain.sharding().is_some() {
                touched = crate::alloc::zeroed(chain.decoded_repr().num_elements() as usize)
                    .map_err(|e| self.corrupt(label, e))?;
                for &(_, offset) in points {
                    touched[offset] = 1;
                }
            }
            let shape = &chain.decoded_repr().shape;
            let touches = |part: &[Range<u64>]| mask_touches(&touched, shape, part);
            self.encode_written_inner(chain, &chunk, existing, &touches, write_empty_chunks, label)
        })
    }

    /// Rewrites each shard holding some of the points (grouped by inner chunk: `groups`)
    /// once, in parallel: `update(points, existing, label)` gives the new stored bytes of
    /// each inner chunk holding points from its current ones (`None`: not stored), the
    /// points as (index among the values, element offset in the inner chunk).
    pub(super) fn rewrite_shards_of_points(
        &self,
        sharding: &Sharding,
        groups: &ByChunk,
        update: &UpdateInner<'_>,
    ) -> Result<()> {
        let chunks = groups
            .iter()
            .enumerate()
            .map(|(g, (chunk, _))| (g, chunk.clone()));
        self.for_each_shard(sharding, chunks, |shard, touched| {
            let inners: Vec<usize> = touched.iter().map(|&(inner, _)| inner).collect();
            self.rewrite_shard(sharding, shard, &inners, false, &|k, existing, label| {
                update(&groups[touched[k].1].1, existing, label)
            })
        })
    }
}
