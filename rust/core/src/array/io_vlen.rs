//! Reading and writing variable-length elements (`string`, `bytes`).
//!
//! The same plan as fixed-size data — one work item per chunk, in parallel — but a chunk
//! decodes to a [`VlenChunk`] and the selection's elements are gathered by index rather than
//! copied as rows of bytes. The result is one `VlenChunk` in the selection's C order, which
//! the binding turns into Python objects.

use std::collections::HashSet;
use std::ops::Range;

use super::chunk_ops::mask_touches;
use super::copy::for_each_row;
use super::io::{locate_inner, ChunkShare, Plan, ShardsSeen};
use super::selection::{PieceMap, Selection};
use super::Array;
use crate::codec::array_to_bytes::sharding::Touches;
use crate::codec::array_to_bytes::vlen::VlenChunk;
use crate::codec::CodecChain;
use crate::concurrency;
use crate::error::{CodecError, Error, Result};
use crate::metadata::DataType;
use crate::node::describe;

/// The elements one chunk contributes to a read: (output index, element) pairs, the elements
/// held in a local `VlenChunk`.
struct Gathered {
    out: Vec<usize>,
    elements: VlenChunk,
}

/// The elements `parts` gathered, as one chunk of `n` elements in output order.
fn assemble(parts: &[Gathered], n: usize) -> VlenChunk {
    let mut lengths = vec![0usize; n];
    for part in parts {
        for (k, &o) in part.out.iter().enumerate() {
            lengths[o] = part.elements.get(k).len();
        }
    }
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0);
    for len in &lengths {
        offsets.push(offsets[offsets.len() - 1] + len);
    }
    let mut data = vec![0u8; offsets[n]];
    for part in parts {
        for (k, &o) in part.out.iter().enumerate() {
            data[offsets[o]..offsets[o + 1]].copy_from_slice(part.elements.get(k));
        }
    }
    VlenChunk { offsets, data }
}

/// The values of a variable-length write: one per element of the selection (C order), or
/// one for every element.
#[derive(Clone, Copy)]
enum VlenValues<'a> {
    Each(&'a VlenChunk),
    All(&'a [u8]),
}

impl<'a> VlenValues<'a> {
    /// The value of the selection's element `i`.
    fn get(&self, i: usize) -> &'a [u8] {
        match self {
            Self::Each(values) => values.get(i),
            Self::All(value) => value,
        }
    }
}

impl Array {
    fn check_vlen(&self) -> Result<()> {
        if !self.data_type().is_variable() {
            return Err(Error::InvalidArgument(format!(
                "{} holds fixed-size {} elements, not variable-length ones",
                self.path(),
                self.data_type()
            )));
        }
        Ok(())
    }

    /// The decoded chunk (inner chunk, if sharded) at coordinates `coords` of the grid of
    /// encoded chunks, or the fill value's chunk if absent, in the read that has seen the
    /// shards in `seen`.
    fn vlen_chunk(&self, coords: &[u64], seen: &ShardsSeen) -> Result<VlenChunk> {
        let (chain, key, stored) = match self.codecs.sharding() {
            Some(sharding) => {
                let (shard, inner) = locate_inner(coords, sharding.chunks_per_shard());
                let key = self.chunk_key(&shard);
                let stored = self.inner_chunk_bytes(sharding, &key, inner, seen)?;
                (
                    sharding.inner_chain(),
                    format!("{key} (inner chunk {inner})"),
                    stored,
                )
            }
            None => {
                let key = self.chunk_key(coords);
                let stored = self.store.get(&key)?;
                (self.codecs.as_ref(), key, stored)
            }
        };
        self.decode_vlen_chunk(chain, stored.as_deref(), &key)
    }

    /// The elements of a chunk of `chain` stored as `stored` (`None`: not stored, the fill
    /// value's chunk); `label` names it in errors.
    fn decode_vlen_chunk(
        &self,
        chain: &CodecChain,
        stored: Option<&[u8]>,
        label: &str,
    ) -> Result<VlenChunk> {
        let Some(stored) = stored else {
            let n = usize::try_from(chain.decoded_repr().num_elements()).unwrap_or(usize::MAX);
            return VlenChunk::filled(n, &self.fill_value).map_err(|e| self.corrupt(label, e));
        };
        let chunk = chain
            .decode_vlen(stored)
            .map_err(|e| self.corrupt(label, e))?;
        // Text is checked here, where the chunk's key is known, rather than where the
        // selection's elements become Python strings.
        if matches!(self.data_type(), DataType::String) {
            for (i, element) in chunk.iter().enumerate() {
                if let Err(e) = std::str::from_utf8(element) {
                    let reason = format!("element {i} is not UTF-8: {e}");
                    return Err(self.corrupt(label, CodecError::corrupt("vlen-utf8", reason)));
                }
            }
        }
        Ok(chunk)
    }

    /// The stored bytes of a chunk of `chain` holding `elements` after a write: `None` when it
    /// holds only the fill value and empty chunks are not written. A chunk that is a shard
    /// (an inner chunk of a shard, itself a shard) is written in part, as zarr-python writes
    /// it: `existing` is what it stored before and `touches` which parts of it the write
    /// touched (see [`Sharding::encode_written_vlen`](crate::codec::array_to_bytes::sharding::Sharding::encode_written_vlen)); other chunks need neither.
    fn encode_vlen_chunk(
        &self,
        chain: &CodecChain,
        elements: &VlenChunk,
        existing: Option<&[u8]>,
        touches: &Touches<'_>,
        label: &str,
        write_empty_chunks: bool,
    ) -> Result<Option<Vec<u8>>> {
        let encoded = match chain.sharding() {
            Some(nested) => nested.encode_written_vlen(
                elements,
                chain.decoded_repr(),
                existing,
                touches,
                write_empty_chunks,
            ),
            None if !write_empty_chunks
                && elements.iter().all(|e| e == self.fill_value.as_slice()) =>
            {
                return Ok(None)
            }
            // A shard followed by other codecs is encoded whole, as zarr-python encodes it.
            None => chain
                .encode_vlen_with(elements, write_empty_chunks)
                .map(Some),
        };
        encoded.map_err(|source| Error::EncodeChunk {
            key: label.to_string(),
            source,
        })
    }

    /// Stores a chunk's new bytes at `key`, or deletes it (`None`).
    /// Encodes `elements`, a chunk of an unsharded array written whole, and stores it at
    /// `key` (or deletes it, when it holds only the fill value and not `write_empty_chunks`).
    fn store_whole_vlen_chunk(
        &self,
        key: &str,
        elements: &VlenChunk,
        write_empty_chunks: bool,
    ) -> Result<()> {
        let whole = &|_: &[std::ops::Range<u64>]| true;
        let encoded =
            self.encode_vlen_chunk(&self.codecs, elements, None, whole, key, write_empty_chunks)?;
        self.store_vlen_chunk(key, encoded)
    }

    fn store_vlen_chunk(&self, key: &str, encoded: Option<Vec<u8>>) -> Result<()> {
        match encoded {
            Some(bytes) => self.store.set(key, &bytes)?,
            None => self.store.delete(key)?,
        }
        Ok(())
    }

    /// A chunk's elements after its share of `values` is written over `current`.
    fn overlay_vlen(
        &self,
        current: &VlenChunk,
        maps: &[&PieceMap],
        chunk_shape: &[u64],
        in_shape: &[u64],
        values: VlenValues<'_>,
    ) -> VlenChunk {
        let n = current.len();
        // Which input element (if any) replaces each element of the chunk.
        let mut replaced: Vec<Option<usize>> = vec![None; n];
        for_each_row(maps, chunk_shape, in_shape, 1, &mut |o, c, len| {
            for k in 0..len {
                replaced[c + k] = Some(o + k);
            }
        });
        VlenChunk::from_elements((0..n).map(|j| match replaced[j] {
            Some(o) => values.get(o),
            None => current.get(j),
        }))
    }

    /// Reads the selection's variable-length elements, in C order.
    pub fn read_vlen(&self, selection: &Selection) -> Result<VlenChunk> {
        let _threads = self.request_threads();
        self.check_vlen()?;
        selection.check(self.shape())?;
        // The elements' offsets and their Python objects need at least two words each: a
        // selection no memory holds is refused before its chunks are even listed (a list
        // of 2^62 of them aborted the process).
        // (Saturating: the product of a damaged shape's lengths can overflow.)
        let elements = selection.num_elements();
        let room = usize::try_from(elements)
            .ok()
            .and_then(|n| n.checked_mul(2 * std::mem::size_of::<usize>()));
        let too_big = |bytes: u64| Error::OutOfMemory {
            what: format!(
                "a selection of {} elements of {}",
                if elements == u64::MAX {
                    "2^64 or more".to_string()
                } else {
                    elements.to_string()
                },
                describe(self.store(), self.path())
            ),
            bytes,
        };
        match room {
            Some(bytes) => crate::alloc::check_room(bytes).map_err(|_| too_big(bytes as u64))?,
            None => return Err(too_big(u64::MAX)),
        }
        let chunk_shape = self.inner_chunk_shape().to_vec();
        let pieces = selection.pieces(&chunk_shape);
        let out_shape = selection.shape();
        let counts: Vec<usize> = pieces.iter().map(Vec::len).collect();
        let total: usize = counts.iter().product();
        // The grid coordinates of the `i`th chunk the selection takes, with its maps.
        let chunk_of = |mut i: usize| -> (Vec<u64>, Vec<&PieceMap>) {
            let mut coords = vec![0u64; counts.len()];
            let mut maps: Vec<&PieceMap> = Vec::with_capacity(counts.len());
            for d in (0..counts.len()).rev() {
                let piece = &pieces[d][i % counts[d]];
                i /= counts[d];
                coords[d] = piece.chunk;
                maps.push(&piece.map);
            }
            maps.reverse();
            (coords, maps)
        };
        let gather = |i: usize, seen: &ShardsSeen| -> Result<Gathered> {
            let (coords, maps) = chunk_of(i);
            let chunk = self.vlen_chunk(&coords, seen)?;
            let mut gathered = Gathered {
                out: Vec::new(),
                elements: VlenChunk::default(),
            };
            // Rows in units of elements: element size 1.
            for_each_row(&maps, &chunk_shape, &out_shape, 1, &mut |o, c, n| {
                for k in 0..n {
                    gathered.out.push(o + k);
                    gathered.elements.push(chunk.get(c + k));
                }
            });
            Ok(gathered)
        };
        // The chunks of a shard that changed under the read are read again.
        let taken = |i: usize, only: Option<&HashSet<String>>| match self.codecs.sharding() {
            Some(sharding) => self.in_shards(sharding, &chunk_of(i).0, only),
            None => true,
        };
        let mut parts: Vec<Option<Gathered>> = (0..total).map(|_| None).collect();
        self.agreeing_on_shards(|seen, only| {
            let again: Vec<usize> = (0..total).filter(|&i| taken(i, only)).collect();
            let read = match self.codecs.sharding() {
                Some(sharding) => {
                    let located = |k: usize| {
                        let (shard, _) =
                            locate_inner(&chunk_of(again[k]).0, sharding.chunks_per_shard());
                        Some((shard, 1))
                    };
                    self.map_items_in_shards(sharding, again.len(), located, |k| {
                        gather(again[k], seen)
                    })?
                }
                None => match again.len() {
                    1 => vec![gather(again[0], seen)?],
                    _ => concurrency::try_map(&again, |&i| gather(i, seen))?,
                },
            };
            for (i, part) in again.into_iter().zip(read) {
                parts[i] = Some(part);
            }
            Ok(())
        })?;
        let parts: Vec<Gathered> = parts.into_iter().flatten().collect();
        Ok(assemble(&parts, selection.num_elements() as usize))
    }

    /// Reads the elements at the points (`coords[d][i]` is point `i`'s coordinate along
    /// dimension `d`), in point order: each chunk holding some is decoded once, in parallel.
    pub fn read_points_vlen(&self, coords: &[Vec<u64>]) -> Result<VlenChunk> {
        let _threads = self.request_threads();
        self.check_vlen()?;
        let (n, groups) = self.points_by_chunk(coords)?;
        let gather = |(chunk, points): &(Vec<u64>, Vec<(usize, usize)>),
                      seen: &ShardsSeen|
         -> Result<Gathered> {
            concurrency::mark_worker();
            let decoded = self.vlen_chunk(chunk, seen)?;
            let mut gathered = Gathered {
                out: Vec::with_capacity(points.len()),
                elements: VlenChunk::default(),
            };
            for &(i, offset) in points {
                gathered.out.push(i);
                gathered.elements.push(decoded.get(offset));
            }
            Ok(gathered)
        };
        // The chunks of a shard that changed under the read are read again.
        let taken = |g: usize, only: Option<&HashSet<String>>| match self.codecs.sharding() {
            Some(sharding) => self.in_shards(sharding, &groups[g].0, only),
            None => true,
        };
        let mut parts: Vec<Option<Gathered>> = (0..groups.len()).map(|_| None).collect();
        self.agreeing_on_shards(|seen, only| {
            let again: Vec<usize> = (0..groups.len()).filter(|&g| taken(g, only)).collect();
            let read = match self.codecs.sharding() {
                Some(sharding) => {
                    let located = |k: usize| {
                        let (shard, _) =
                            locate_inner(&groups[again[k]].0, sharding.chunks_per_shard());
                        Some((shard, 1))
                    };
                    self.map_items_in_shards(sharding, again.len(), located, |k| {
                        gather(&groups[again[k]], seen)
                    })?
                }
                None => match again.len() {
                    1 => vec![gather(&groups[again[0]], seen)?],
                    _ => concurrency::try_map(&again, |&g| gather(&groups[g], seen))?,
                },
            };
            for (g, part) in again.into_iter().zip(read) {
                parts[g] = Some(part);
            }
            Ok(())
        })?;
        let parts: Vec<Gathered> = parts.into_iter().flatten().collect();
        Ok(assemble(&parts, n))
    }

    /// Writes variable-length `values` (one per point, in point order) to the points
    /// (`coords[d][i]` is point `i`'s coordinate along dimension `d`); a point given more than
    /// once takes its last value, as in numpy. Each chunk (inner chunk) holding some is
    /// decoded, updated and encoded once, in parallel, and each shard rewritten once.
    pub fn write_points_vlen(
        &self,
        coords: &[Vec<u64>],
        values: &VlenChunk,
        write_empty_chunks: bool,
    ) -> Result<()> {
        let _threads = self.request_threads();
        self.check_vlen()?;
        let write_empty_chunks = self.keeps_empty_chunks(write_empty_chunks);
        let (n, groups) = self.points_by_chunk(coords)?;
        if values.len() != n {
            return Err(Error::InvalidArgument(format!(
                "{} values for {n} points",
                values.len()
            )));
        }
        let _claim = self.claim_points(&groups)?;
        // The chunk with its points' values in place: `points` are in point order, so the
        // last value given for an element is the one kept.
        let update = |current: &VlenChunk, points: &[(usize, usize)]| -> VlenChunk {
            let mut value_at: Vec<Option<usize>> = vec![None; current.len()];
            for &(i, offset) in points {
                value_at[offset] = Some(i);
            }
            VlenChunk::from_elements(value_at.iter().enumerate().map(|(j, value)| match value {
                Some(i) => values.get(*i),
                None => current.get(j),
            }))
        };
        if let Some(sharding) = self.codecs.sharding() {
            let chain = sharding.inner_chain();
            return self.rewrite_shards_of_points(sharding, &groups, &|points, existing, label| {
                let current = self.decode_vlen_chunk(chain, existing, label)?;
                // Which elements the points touch, asked only of an inner chunk that is a
                // shard.
                let mut touched = Vec::new();
                if chain.sharding().is_some() {
                    touched =
                        crate::alloc::zeroed(current.len()).map_err(|e| self.corrupt(label, e))?;
                    for &(_, offset) in points {
                        touched[offset] = 1;
                    }
                }
                let shape = &chain.decoded_repr().shape;
                let touches = |part: &[Range<u64>]| mask_touches(&touched, shape, part);
                self.encode_vlen_chunk(
                    chain,
                    &update(&current, points),
                    existing,
                    &touches,
                    label,
                    write_empty_chunks,
                )
            });
        }
        let write = |(chunk, points): &(Vec<u64>, Vec<(usize, usize)>)| -> Result<()> {
            concurrency::mark_worker();
            let key = self.chunk_key(chunk);
            // Unsharded here: no shards to see.
            let current = self.vlen_chunk(chunk, &ShardsSeen::default())?;
            self.store_whole_vlen_chunk(&key, &update(&current, points), write_empty_chunks)
        };
        match groups.len() {
            0 => Ok(()),
            1 => write(&groups[0]),
            _ => concurrency::try_for_each(&groups, write),
        }
    }

    /// Writes variable-length `values` (the selection's elements in C order) into the
    /// selection. A chunk left holding only the fill value is deleted, unless
    /// `write_empty_chunks`.
    pub fn write_vlen(
        &self,
        selection: &Selection,
        values: &VlenChunk,
        write_empty_chunks: bool,
    ) -> Result<()> {
        if values.len() as u64 != selection.num_elements() {
            return Err(Error::InvalidArgument(format!(
                "{} values for a selection of {} elements",
                values.len(),
                selection.num_elements()
            )));
        }
        self.write_vlen_from(selection, VlenValues::Each(values), write_empty_chunks)
    }

    /// Writes one variable-length element, `value`, into every place of the selection, as
    /// [`write_vlen`](Self::write_vlen) writes as many copies of it, without them: a write of
    /// one string over a whole array takes no more memory than its chunks.
    pub fn write_vlen_value(
        &self,
        selection: &Selection,
        value: &[u8],
        write_empty_chunks: bool,
    ) -> Result<()> {
        self.write_vlen_from(selection, VlenValues::All(value), write_empty_chunks)
    }

    fn write_vlen_from(
        &self,
        selection: &Selection,
        values: VlenValues<'_>,
        write_empty_chunks: bool,
    ) -> Result<()> {
        let _threads = self.request_threads();
        self.check_vlen()?;
        let write_empty_chunks = self.keeps_empty_chunks(write_empty_chunks);
        selection.check(self.shape())?;
        // The inner chunks' plan when sharded, else the chunks'.
        let plan = Plan::new(selection, self.inner_chunk_shape());
        let _claim = self.claim_chunks(&plan)?;
        if let Some(sharding) = self.codecs.sharding() {
            let inner_shape = sharding.inner_chunk_shape().to_vec();
            let chain = sharding.inner_chain();
            let encode = |share: &ChunkShare<'_>, existing: Option<&[u8]>, label: &str| {
                let current = self.decode_vlen_chunk(chain, existing, label)?;
                let updated =
                    self.overlay_vlen(&current, &share.maps, &inner_shape, &plan.out_shape, values);
                let touches =
                    |part: &[Range<u64>]| share.maps.iter().zip(part).all(|(m, r)| m.touches(r));
                self.encode_vlen_chunk(
                    chain,
                    &updated,
                    existing,
                    &touches,
                    label,
                    write_empty_chunks,
                )
            };
            return self.write_sharded(sharding, &plan, &encode);
        }
        let chunk_shape = self.chunk_shape().to_vec();
        let pieces = selection.pieces(&chunk_shape);
        let in_shape = selection.shape();
        let counts: Vec<usize> = pieces.iter().map(Vec::len).collect();
        let total: usize = counts.iter().product();
        let write = |mut i: usize| -> Result<()> {
            let mut coords = vec![0u64; counts.len()];
            let mut maps: Vec<&PieceMap> = Vec::with_capacity(counts.len());
            for d in (0..counts.len()).rev() {
                let piece = &pieces[d][i % counts[d]];
                i /= counts[d];
                coords[d] = piece.chunk;
                maps.push(&piece.map);
            }
            maps.reverse();
            let key = self.chunk_key(&coords);
            let extent: Vec<u64> = coords
                .iter()
                .zip(&chunk_shape)
                .zip(self.shape())
                .map(|((&c, &n), &s)| (s - c * n).min(n))
                .collect();
            let covered = PieceMap::cover_chunk(maps.iter().copied(), &extent, &chunk_shape);
            let n =
                usize::try_from(self.codecs.decoded_repr().num_elements()).unwrap_or(usize::MAX);
            let current = if covered {
                VlenChunk::filled(n, &self.fill_value).map_err(|e| self.corrupt(&key, e))?
            } else {
                // Unsharded here: no shards to see.
                self.vlen_chunk(&coords, &ShardsSeen::default())?
            };
            let updated = self.overlay_vlen(&current, &maps, &chunk_shape, &in_shape, values);
            self.store_whole_vlen_chunk(&key, &updated, write_empty_chunks)
        };
        match total {
            0 => Ok(()),
            1 => write(0),
            _ => concurrency::try_for_each(0..total, write),
        }
    }
}
