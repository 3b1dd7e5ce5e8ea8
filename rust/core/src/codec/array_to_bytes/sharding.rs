//! `sharding_indexed` (v3 core codec; no v2 equivalent): many inner chunks in one stored
//! object, followed (or preceded) by an index of where each one is. Spec: zarr-specs v3.0,
//! codecs/sharding-indexed.
//!
//! The index holds, for each inner chunk in C order, a little-endian (offset, nbytes) pair of
//! uint64; (2^64 - 1, 2^64 - 1) marks an inner chunk that is not stored (it reads as the fill
//! value). The index is encoded with its own codec chain (`index_codecs`), whose output size
//! is fixed, so a reader can fetch it with one range request before fetching only the inner
//! chunks it needs. The array layer does that; this module also encodes and decodes whole
//! shards, which nested sharding and unusual chains need.

use std::borrow::Cow;
use std::ops::Range;

use rayon::prelude::*;
use serde_json::{Map, Value};

use crate::alloc;
use crate::array::copy::{fill_elements, for_each_row};
use crate::array::selection::PieceMap;
use crate::codec::array_to_bytes::vlen::VlenChunk;
use crate::codec::{
    check_config_keys, codec_metadata, invalid_config, ArrayToBytesCodec, ChunkRepr, CodecChain,
};
use crate::concurrency;
use crate::error::{CodecError, MetadataError};
use crate::metadata::DataType;
use crate::store::ByteRange;

const NAME: &str = "sharding_indexed";
/// The index entry of an inner chunk that is not stored.
const MISSING: u64 = u64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexLocation {
    Start,
    End,
}

/// Which parts of a chunk a write touched: whether it wrote any element of a box (per
/// dimension, a range of indices in the chunk).
pub type Touches<'a> = dyn Fn(&[Range<u64>]) -> bool + Sync + 'a;

/// The decoded index of a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardIndex {
    /// (offset, nbytes) per inner chunk, C order, flattened.
    entries: Vec<u64>,
}

impl ShardIndex {
    /// An index of `n` inner chunks, none stored.
    pub fn empty(n: usize) -> Self {
        Self {
            entries: vec![MISSING; 2 * n],
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Where inner chunk `i` is stored, or `None` if it is not.
    pub fn get(&self, i: usize) -> Option<(u64, u64)> {
        let (offset, nbytes) = (self.entries[2 * i], self.entries[2 * i + 1]);
        (offset != MISSING || nbytes != MISSING).then_some((offset, nbytes))
    }

    pub fn set(&mut self, i: usize, entry: Option<(u64, u64)>) {
        let (offset, nbytes) = entry.unwrap_or((MISSING, MISSING));
        self.entries[2 * i] = offset;
        self.entries[2 * i + 1] = nbytes;
    }

    /// Whether no inner chunk is stored.
    pub fn is_all_missing(&self) -> bool {
        self.entries.iter().all(|&e| e == MISSING)
    }

    /// Bytes this index takes in memory (for cache budgets).
    pub fn heap_size(&self) -> usize {
        self.entries.len() * 8
    }
}

/// A shard laid out for writing: its inner chunks' bytes and its index, in the order
/// [`ShardLayout::pieces`] gives.
pub struct ShardLayout<'a> {
    pub encoded_index: Vec<u8>,
    pub index: ShardIndex,
    chunks: Vec<&'a [u8]>,
    index_at_start: bool,
}

impl ShardLayout<'_> {
    /// The shard's bytes as consecutive pieces.
    pub fn pieces(&self) -> Vec<&[u8]> {
        let mut pieces: Vec<&[u8]> = Vec::with_capacity(self.chunks.len() + 1);
        if self.index_at_start {
            pieces.push(&self.encoded_index);
        }
        pieces.extend(self.chunks.iter().copied());
        if !self.index_at_start {
            pieces.push(&self.encoded_index);
        }
        pieces
    }
}

/// The sharding codec of an array (or of an outer shard, when nested).
#[derive(Debug)]
pub struct Sharding {
    /// The shape of an inner chunk.
    chunk_shape: Vec<u64>,
    /// Inner chunks along each dimension of a shard.
    chunks_per_shard: Vec<u64>,
    inner: CodecChain,
    index_codecs: CodecChain,
    index_location: IndexLocation,
    /// The encoded size of the index, in bytes (fixed for a given chain).
    index_size: usize,
    /// Inner chunks holding only the fill value are stored too (zarr-python's
    /// `write_empty_chunks=True` reaches its inner chunks); by default they are left out.
    keep_empty_inner: bool,
}

impl Sharding {
    /// Builds the codec for shards of `shard` (the outer chunk's representation).
    pub fn from_config(
        config: &Map<String, Value>,
        shard: &ChunkRepr,
    ) -> Result<Self, MetadataError> {
        check_config_keys(
            NAME,
            config,
            &["chunk_shape", "codecs", "index_codecs", "index_location"],
        )?;
        let shape_value = config.get("chunk_shape").ok_or_else(|| {
            MetadataError::missing("codecs[sharding_indexed].configuration.chunk_shape")
        })?;
        let chunk_shape: Vec<u64> = shape_value
            .as_array()
            .and_then(|v| v.iter().map(Value::as_u64).collect::<Option<Vec<_>>>())
            .ok_or_else(|| invalid_config(NAME, "chunk_shape", shape_value, "expected integers"))?;
        if chunk_shape.len() != shard.shape.len()
            || chunk_shape.contains(&0)
            || chunk_shape
                .iter()
                .zip(&shard.shape)
                .any(|(&c, &s)| s % c != 0)
        {
            return Err(invalid_config(
                NAME,
                "chunk_shape",
                shape_value,
                &format!(
                    "inner chunks must divide the shard shape {:?} evenly",
                    shard.shape
                ),
            ));
        }
        let chunks_per_shard: Vec<u64> = shard
            .shape
            .iter()
            .zip(&chunk_shape)
            .map(|(&s, &c)| s / c)
            .collect();
        // Borrowed, not copied: see codec::Spec.
        let list = |key: &str| -> Result<&[Value], MetadataError> {
            match config.get(key) {
                Some(Value::Array(v)) => Ok(v),
                Some(other) => Err(invalid_config(
                    NAME,
                    key,
                    other,
                    "expected a list of codecs",
                )),
                None => Err(MetadataError::missing(&format!(
                    "codecs[sharding_indexed].configuration.{key}"
                ))),
            }
        };
        let inner_repr = ChunkRepr {
            shape: chunk_shape.clone(),
            ..shard.clone()
        };
        let inner = CodecChain::from_metadata(list("codecs")?, &inner_repr)?;
        let mut index_shape = chunks_per_shard.clone();
        index_shape.push(2);
        let index_repr =
            ChunkRepr::with_fill(index_shape, DataType::UInt64, &MISSING.to_ne_bytes());
        let index_codecs_json = list("index_codecs")?;
        let index_codecs = CodecChain::from_metadata(index_codecs_json, &index_repr)?;
        let index_location = match config.get("index_location") {
            None => IndexLocation::End,
            Some(Value::String(s)) if s == "end" => IndexLocation::End,
            Some(Value::String(s)) if s == "start" => IndexLocation::Start,
            Some(other) => {
                return Err(invalid_config(
                    NAME,
                    "index_location",
                    other,
                    "expected \"start\" or \"end\"",
                ))
            }
        };
        let mut codec = Self {
            chunk_shape,
            chunks_per_shard,
            inner,
            index_codecs,
            index_location,
            index_size: 0,
            keep_empty_inner: false,
        };
        // The index codecs must produce a size that does not depend on the entries (bytes,
        // crc32c): work it out from the chain, without building an index, so that opening an
        // array whose metadata asks for a vast index costs nothing until a shard is read.
        codec.index_size = codec.index_codecs.fixed_encoded_size().ok_or_else(|| {
            invalid_config(
                NAME,
                "index_codecs",
                &Value::Array(index_codecs_json.to_vec()),
                "the index codecs must encode to a fixed size (bytes and crc32c)",
            )
        })?;
        Ok(codec)
    }

    pub fn inner_chain(&self) -> &CodecChain {
        &self.inner
    }

    /// The shape of an inner chunk.
    pub fn inner_chunk_shape(&self) -> &[u64] {
        &self.chunk_shape
    }

    pub fn chunks_per_shard(&self) -> &[u64] {
        &self.chunks_per_shard
    }

    /// The number of inner chunks in a shard.
    pub fn num_inner(&self) -> usize {
        self.chunks_per_shard.iter().product::<u64>() as usize
    }

    /// An error unless this process can now hold what writing part of a shard keeps for
    /// each of its inner chunks (its place in the new shard, its index entry, encoded and
    /// not): metadata may ask for more inner chunks per shard than memory holds, and those
    /// small pieces cannot each be allocated fallibly.
    pub fn check_room_to_write(&self) -> Result<(), CodecError> {
        const PER_INNER_CHUNK: usize = 64;
        crate::alloc::check_room(self.num_inner().saturating_mul(PER_INNER_CHUNK))
    }

    /// Where the index lies in a shard.
    pub fn index_range(&self) -> ByteRange {
        match self.index_location {
            IndexLocation::End => ByteRange::Suffix(self.index_size as u64),
            IndexLocation::Start => ByteRange::FromStart {
                offset: 0,
                length: Some(self.index_size as u64),
            },
        }
    }

    pub fn index_size(&self) -> usize {
        self.index_size
    }

    /// Decodes an encoded index, checking every entry lies within a shard of `shard_len`
    /// bytes when that is known.
    pub fn decode_index(
        &self,
        encoded: &[u8],
        shard_len: Option<u64>,
    ) -> Result<ShardIndex, CodecError> {
        // As long as the encoded index (which was read whole), less its checksum.
        let mut raw = crate::alloc::zeroed(self.num_inner() * 16)?;
        self.index_codecs
            .decode_into(encoded, &mut raw)
            .map_err(|e| CodecError::corrupt(NAME, format!("shard index: {e}")))?;
        let entries: Vec<u64> = raw
            .chunks_exact(8)
            .map(|b| u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect();
        let index = ShardIndex { entries };
        for i in 0..index.len() {
            let Some((offset, nbytes)) = index.get(i) else {
                continue;
            };
            // Without the shard's length, the bound is the largest file offset (`off_t`):
            // a range past it could only fail later, in the operating system, as an
            // unexplained EINVAL.
            let end = offset.checked_add(nbytes);
            let fits = end.is_some_and(|e| e <= shard_len.unwrap_or(i64::MAX as u64));
            if !fits {
                return Err(CodecError::corrupt(
                    NAME,
                    format!("shard index entry {i} ({offset}, {nbytes}) lies outside the shard"),
                ));
            }
        }
        Ok(index)
    }

    pub fn encode_index(&self, index: &ShardIndex) -> Result<Vec<u8>, CodecError> {
        let mut raw = crate::alloc::zeroed(index.entries.len() * 8)?;
        for (bytes, e) in raw.chunks_exact_mut(8).zip(&index.entries) {
            bytes.copy_from_slice(&e.to_ne_bytes());
        }
        Ok(self.index_codecs.encode(&raw)?.into_owned())
    }

    /// Assembles a shard from its encoded inner chunks (`None`: not stored), in C order.
    /// Returns `None` when no inner chunk is stored.
    /// A shard as the pieces that make it up (its stored inner chunks and encoded index), for
    /// stores that write them without assembling the shard. `None` when no inner chunk is
    /// stored.
    pub fn layout<'a>(
        &self,
        inner: &[Option<&'a [u8]>],
    ) -> Result<Option<ShardLayout<'a>>, CodecError> {
        if inner.iter().all(Option::is_none) {
            return Ok(None);
        }
        let mut offset = match self.index_location {
            IndexLocation::Start => self.index_size as u64,
            IndexLocation::End => 0,
        };
        let mut index = ShardIndex::empty(inner.len());
        let mut chunks = Vec::with_capacity(inner.len());
        for (i, part) in inner.iter().enumerate() {
            if let Some(bytes) = part {
                index.set(i, Some((offset, bytes.len() as u64)));
                offset += bytes.len() as u64;
                chunks.push(*bytes);
            }
        }
        Ok(Some(ShardLayout {
            encoded_index: self.encode_index(&index)?,
            index,
            chunks,
            index_at_start: self.index_location == IndexLocation::Start,
        }))
    }

    pub fn assemble<'a>(
        &self,
        inner: impl IntoIterator<Item = Option<&'a [u8]>>,
    ) -> Result<Option<Vec<u8>>, CodecError> {
        let parts: Vec<Option<&[u8]>> = inner.into_iter().collect();
        if parts.iter().all(Option::is_none) {
            return Ok(None);
        }
        let data_len: usize = parts.iter().flatten().map(|p| p.len()).sum();
        let mut out = alloc::with_capacity(data_len + self.index_size)?;
        if self.index_location == IndexLocation::Start {
            // Room for the index, filled in once the offsets are known.
            out.resize(self.index_size, 0);
        }
        let mut index = ShardIndex::empty(parts.len());
        for (i, part) in parts.iter().enumerate() {
            if let Some(bytes) = part {
                index.set(i, Some((out.len() as u64, bytes.len() as u64)));
                out.extend_from_slice(bytes);
            }
        }
        let encoded = self.encode_index(&index)?;
        match self.index_location {
            IndexLocation::Start => out[..self.index_size].copy_from_slice(&encoded),
            IndexLocation::End => out.extend_from_slice(&encoded),
        }
        Ok(Some(out))
    }

    /// The grid coordinates of inner chunk `i` (C order) within a shard.
    fn inner_coords(&self, i: usize) -> Vec<u64> {
        let mut coords = vec![0u64; self.chunks_per_shard.len()];
        let mut rest = i as u64;
        for d in (0..coords.len()).rev() {
            coords[d] = rest % self.chunks_per_shard[d];
            rest /= self.chunks_per_shard[d];
        }
        coords
    }

    /// The maps that place inner chunk `i` within a shard buffer.
    fn inner_maps(&self, i: usize) -> Vec<PieceMap> {
        self.inner_coords(i)
            .iter()
            .zip(&self.chunk_shape)
            .map(|(&c, &n)| PieceMap::Run {
                out_start: c * n,
                chunk_start: 0,
                step: 1,
                len: n,
            })
            .collect()
    }

    /// The box inner chunk `i` covers in a shard: per dimension, its range of indices.
    fn inner_box(&self, i: usize) -> Vec<Range<u64>> {
        self.inner_coords(i)
            .iter()
            .zip(&self.chunk_shape)
            .map(|(&c, &n)| c * n..(c + 1) * n)
            .collect()
    }

    /// Runs `f(offset in the shard, offset in the inner chunk, length)`, in bytes, over the
    /// rows of inner chunk `i` of a decoded shard of `repr`.
    fn for_each_inner_row(
        &self,
        i: usize,
        repr: &ChunkRepr,
        f: &mut impl FnMut(usize, usize, usize),
    ) {
        let maps = self.inner_maps(i);
        let refs: Vec<&PieceMap> = maps.iter().collect();
        let size = repr.data_type.size();
        for_each_row(&refs, &self.chunk_shape, &repr.shape, size, f);
    }

    /// The data of the shard's index range and where the inner chunks' bytes may lie.
    fn split<'a>(&self, shard: &'a [u8]) -> Result<&'a [u8], CodecError> {
        let range = self
            .index_range()
            .to_range(shard.len() as u64)
            .ok_or_else(|| CodecError::corrupt(NAME, "shorter than its index"))?;
        Ok(&shard[range.start as usize..range.end as usize])
    }

    /// The index of a whole shard, every entry checked to lie within it.
    pub(crate) fn read_index(&self, shard: &[u8]) -> Result<ShardIndex, CodecError> {
        self.decode_index(self.split(shard)?, Some(shard.len() as u64))
    }

    /// For each element of inner chunk `i` (C order), its position in a shard of
    /// `shard_shape` (C order): variable-length elements are moved one by one, not as rows
    /// of bytes.
    fn inner_positions(&self, i: usize, shard_shape: &[u64]) -> Vec<usize> {
        let maps = self.inner_maps(i);
        let refs: Vec<&PieceMap> = maps.iter().collect();
        let mut positions = vec![0usize; self.inner.decoded_repr().num_elements() as usize];
        // Rows in units of elements: element size 1.
        for_each_row(&refs, &self.chunk_shape, shard_shape, 1, &mut |o, c, n| {
            for k in 0..n {
                positions[c + k] = o + k;
            }
        });
        positions
    }

    /// A whole shard from its inner chunks, `encode_one(i)` giving inner chunk `i`'s stored
    /// bytes (`None`: not stored), encoded in parallel. A shard with no stored inner chunk is
    /// just its index.
    fn encode_shard(
        &self,
        encode_one: impl Fn(usize) -> Result<Option<Vec<u8>>, CodecError> + Sync + Send,
    ) -> Result<Vec<u8>, CodecError> {
        match self.encode_stored(encode_one)? {
            Some(bytes) => Ok(bytes),
            None => self.encode_index(&ShardIndex::empty(self.num_inner())),
        }
    }

    /// The shard of the inner chunks `encode_one` gives (`None`: not stored), encoded in
    /// parallel; `None` when it gives none.
    fn encode_stored(
        &self,
        encode_one: impl Fn(usize) -> Result<Option<Vec<u8>>, CodecError> + Sync + Send,
    ) -> Result<Option<Vec<u8>>, CodecError> {
        let encoded: Vec<Option<Vec<u8>>> = concurrency::in_pool(|| {
            (0..self.num_inner())
                .into_par_iter()
                .map(encode_one)
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| CodecError::Encode {
            codec: NAME,
            reason: e.to_string(),
        })??;
        self.assemble(encoded.iter().map(|e| e.as_deref()))
    }

    /// The shard `data` (decoded, of `repr`) after a write, as zarr-python's partial shard
    /// writes store it: `stored` is the shard stored before (`None`: none), `touches` says
    /// which parts of the shard the write touched. Inner chunks the write did not touch stay
    /// as they were stored (fill value or not), byte for byte; those it touched are stored
    /// unless they hold only the fill value and `write_empty_chunks` is off. An inner chunk
    /// that is itself a shard (nested sharding) goes through the same, level by level, as
    /// zarr-python hands `write_empty_chunks` down to the innermost chunks. `None` when no
    /// inner chunk is left to store, as zarr-python then stores no shard.
    pub fn encode_written(
        &self,
        data: &[u8],
        repr: &ChunkRepr,
        stored: Option<&[u8]>,
        touches: &Touches<'_>,
        write_empty_chunks: bool,
    ) -> Result<Option<Vec<u8>>, CodecError> {
        if data.len() != repr.nbytes() {
            return Err(CodecError::Encode {
                codec: NAME,
                reason: format!("{} bytes for a shard of {}", data.len(), repr.nbytes()),
            });
        }
        self.encode_touched(stored, touches, |i, before, touches_inner| {
            let Some(nested) = self.inner.sharding() else {
                return self.encode_inner(i, data, repr, write_empty_chunks);
            };
            let mut chunk = crate::alloc::zeroed(self.inner.decoded_repr().nbytes())?;
            self.for_each_inner_row(i, repr, &mut |o, c, n| {
                chunk[c..c + n].copy_from_slice(&data[o..o + n]);
            });
            nested.encode_written(
                &chunk,
                self.inner.decoded_repr(),
                before,
                touches_inner,
                write_empty_chunks,
            )
        })
    }

    /// As [`Self::encode_written`], for a shard of variable-length elements (`chunk`).
    pub fn encode_written_vlen(
        &self,
        chunk: &VlenChunk,
        repr: &ChunkRepr,
        stored: Option<&[u8]>,
        touches: &Touches<'_>,
        write_empty_chunks: bool,
    ) -> Result<Option<Vec<u8>>, CodecError> {
        self.check_vlen_len(chunk, repr)?;
        self.encode_touched(stored, touches, |i, before, touches_inner| {
            let positions = self.inner_positions(i, &repr.shape);
            if let Some(nested) = self.inner.sharding() {
                let inner = VlenChunk::from_elements(positions.iter().map(|&p| chunk.get(p)));
                let inner_repr = self.inner.decoded_repr();
                return nested.encode_written_vlen(
                    &inner,
                    inner_repr,
                    before,
                    touches_inner,
                    write_empty_chunks,
                );
            }
            self.encode_inner_vlen(chunk, repr, &positions, write_empty_chunks)
        })
    }

    /// The shard after a write that touched the parts `touches` says, its stored bytes before
    /// being `stored`: inner chunks the write did not touch as they were stored, and each one
    /// it touched from `encode_one(i, its stored bytes before, which parts of it the write
    /// touched)`. `None` when no inner chunk is left to store.
    fn encode_touched(
        &self,
        stored: Option<&[u8]>,
        touches: &Touches<'_>,
        encode_one: impl Fn(usize, Option<&[u8]>, &Touches<'_>) -> Result<Option<Vec<u8>>, CodecError>
            + Sync
            + Send,
    ) -> Result<Option<Vec<u8>>, CodecError> {
        let touched: Vec<bool> = (0..self.num_inner())
            .map(|i| touches(&self.inner_box(i)))
            .collect();
        // What was stored matters for the inner chunks left untouched, and inside the
        // touched ones when they are shards themselves.
        let nested = self.inner.sharding().is_some();
        let before = match stored {
            Some(bytes) if nested || !touched.iter().all(|&t| t) => {
                Some((bytes, self.read_index(bytes)?))
            }
            _ => None,
        };
        let stored_inner = |i: usize| match &before {
            Some((bytes, index)) => stored_inner_chunk(bytes, index, i),
            None => Ok(None),
        };
        self.encode_stored(|i| {
            if !touched[i] {
                return Ok(stored_inner(i)?.map(<[u8]>::to_vec));
            }
            // The inner chunk's parts, in the coordinates of this shard.
            let origin: Vec<u64> = self.inner_box(i).iter().map(|r| r.start).collect();
            let touches_inner = |part: &[Range<u64>]| {
                let shifted: Vec<Range<u64>> = part
                    .iter()
                    .zip(&origin)
                    .map(|(r, &o)| r.start + o..r.end + o)
                    .collect();
                touches(&shifted)
            };
            encode_one(i, stored_inner(i)?, &touches_inner)
        })
    }

    /// The inner chunk of the shard `chunk` of variable-length elements at `positions`,
    /// encoded; `None` when it holds only the fill value, unless `keep_empty` (which shards
    /// inside it then follow too).
    fn encode_inner_vlen(
        &self,
        chunk: &VlenChunk,
        repr: &ChunkRepr,
        positions: &[usize],
        keep_empty: bool,
    ) -> Result<Option<Vec<u8>>, CodecError> {
        // As for fixed-size data, an inner chunk holding only the fill value is not stored:
        // it reads back as the fill value.
        if !keep_empty && positions.iter().all(|&p| chunk.get(p) == &*repr.fill_value) {
            return Ok(None);
        }
        let inner = VlenChunk::from_elements(positions.iter().map(|&p| chunk.get(p)));
        Ok(Some(self.inner.encode_vlen_with(&inner, keep_empty)?))
    }

    /// An error unless `chunk` holds a shard's elements.
    fn check_vlen_len(&self, chunk: &VlenChunk, repr: &ChunkRepr) -> Result<(), CodecError> {
        if chunk.len() as u64 != repr.num_elements() {
            return Err(CodecError::Encode {
                codec: NAME,
                reason: format!(
                    "{} elements for a shard of {}",
                    chunk.len(),
                    repr.num_elements()
                ),
            });
        }
        Ok(())
    }

    /// The shard `chunk` of variable-length elements, encoded whole; with `keep_empty`, its
    /// inner chunks of the fill value are stored too.
    fn encode_vlen_as(
        &self,
        chunk: &VlenChunk,
        repr: &ChunkRepr,
        keep_empty: bool,
    ) -> Result<Vec<u8>, CodecError> {
        self.check_vlen_len(chunk, repr)?;
        self.encode_shard(|i| {
            let positions = self.inner_positions(i, &repr.shape);
            self.encode_inner_vlen(chunk, repr, &positions, keep_empty)
        })
    }

    /// Inner chunk `i` of the decoded shard `data`, encoded; `None` when it holds only the
    /// fill value, unless `keep_empty` (which shards inside it then follow too).
    fn encode_inner(
        &self,
        i: usize,
        data: &[u8],
        repr: &ChunkRepr,
        keep_empty: bool,
    ) -> Result<Option<Vec<u8>>, CodecError> {
        let mut chunk = crate::alloc::zeroed(self.inner.decoded_repr().nbytes())?;
        self.for_each_inner_row(i, repr, &mut |o, c, n| {
            chunk[c..c + n].copy_from_slice(&data[o..o + n]);
        });
        if !keep_empty && repr.fill_is_exact && repr.holds_only_fill(&chunk) {
            return Ok(None);
        }
        Ok(Some(
            self.inner.encode_with(&chunk, keep_empty)?.into_owned(),
        ))
    }
}

/// The stored bytes of inner chunk `i` of `shard`, whose `index` was read (and its entries
/// checked to lie within the shard) by `Sharding::read_index`; `None` if it is not stored.
fn stored_inner_chunk<'a>(
    shard: &'a [u8],
    index: &ShardIndex,
    i: usize,
) -> Result<Option<&'a [u8]>, CodecError> {
    let Some((offset, nbytes)) = index.get(i) else {
        return Ok(None);
    };
    // `read_index` has checked the entry; an index from elsewhere is refused here rather than
    // read as a missing inner chunk.
    let range = usize::try_from(offset)
        .ok()
        .zip(usize::try_from(offset.saturating_add(nbytes)).ok());
    range
        .and_then(|(start, end)| shard.get(start..end))
        .map(Some)
        .ok_or_else(|| {
            CodecError::corrupt(
                NAME,
                format!("shard index entry {i} ({offset}, {nbytes}) lies outside the shard"),
            )
        })
}

impl ArrayToBytesCodec for Sharding {
    fn encode<'a>(
        &self,
        data: Cow<'a, [u8]>,
        repr: &ChunkRepr,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        let encode_one = |i| self.encode_inner(i, &data, repr, self.keep_empty_inner);
        Ok(Cow::Owned(self.encode_shard(encode_one)?))
    }

    fn encode_keeping_empty<'a>(
        &self,
        data: Cow<'a, [u8]>,
        repr: &ChunkRepr,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        let encode_one = |i| self.encode_inner(i, &data, repr, true);
        Ok(Cow::Owned(self.encode_shard(encode_one)?))
    }

    fn decode_into(
        &self,
        encoded: &[u8],
        repr: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        let index = self.read_index(encoded)?;
        let inner_bytes = self.inner.decoded_repr().nbytes();
        let shared = crate::array::copy::SharedBuffer::new(out);
        let decode_one = |i: usize| -> Result<(), CodecError> {
            match stored_inner_chunk(encoded, &index, i)? {
                None => self.for_each_inner_row(i, repr, &mut |o, _, n| {
                    // SAFETY: inner chunks cover disjoint parts of the shard.
                    fill_elements(unsafe { shared.slice(o, n) }, &repr.fill_value);
                }),
                Some(bytes) => {
                    let mut chunk = crate::alloc::zeroed(inner_bytes)?;
                    self.inner.decode_into(bytes, &mut chunk)?;
                    self.for_each_inner_row(i, repr, &mut |o, c, n| {
                        // SAFETY: inner chunks cover disjoint parts of the shard.
                        unsafe { shared.slice(o, n) }.copy_from_slice(&chunk[c..c + n]);
                    });
                }
            }
            Ok(())
        };
        concurrency::in_pool(|| {
            (0..self.num_inner())
                .into_par_iter()
                .try_for_each(decode_one)
        })
        .map_err(|e| CodecError::corrupt(NAME, e))?
    }

    fn encode_vlen(&self, chunk: &VlenChunk, repr: &ChunkRepr) -> Result<Vec<u8>, CodecError> {
        self.encode_vlen_as(chunk, repr, self.keep_empty_inner)
    }

    fn encode_vlen_keeping_empty(
        &self,
        chunk: &VlenChunk,
        repr: &ChunkRepr,
    ) -> Result<Vec<u8>, CodecError> {
        self.encode_vlen_as(chunk, repr, true)
    }

    fn decode_vlen(&self, encoded: &[u8], repr: &ChunkRepr) -> Result<VlenChunk, CodecError> {
        let index = self.read_index(encoded)?;
        let n = repr.num_elements() as usize;
        let inner_n = self.inner.decoded_repr().num_elements() as usize;
        // The shard's elements are gathered one by one (an inner chunk and a position in it
        // for each, then an offset): metadata may ask for more than memory holds.
        crate::alloc::check_room(n.saturating_mul(3 * std::mem::size_of::<usize>()))?;
        let decode_one = |i: usize| -> Result<Option<VlenChunk>, CodecError> {
            let Some(bytes) = stored_inner_chunk(encoded, &index, i)? else {
                return Ok(None);
            };
            let inner = self.inner.decode_vlen(bytes)?;
            if inner.len() != inner_n {
                return Err(CodecError::corrupt(
                    NAME,
                    format!(
                        "inner chunk {i} holds {} elements, not {inner_n}",
                        inner.len()
                    ),
                ));
            }
            Ok(Some(inner))
        };
        let inner: Vec<Option<VlenChunk>> = concurrency::in_pool(|| {
            (0..self.num_inner())
                .into_par_iter()
                .map(decode_one)
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| CodecError::corrupt(NAME, e))??;
        // Where each element of the shard comes from: (inner chunk, position in it).
        let mut sources = vec![(0usize, 0usize); n];
        for i in 0..self.num_inner() {
            for (k, p) in self.inner_positions(i, &repr.shape).into_iter().enumerate() {
                sources[p] = (i, k);
            }
        }
        Ok(VlenChunk::from_elements(sources.iter().map(
            |&(i, k)| match &inner[i] {
                Some(chunk) => chunk.get(k),
                None => &*repr.fill_value,
            },
        )))
    }

    fn max_encoded_size(&self, repr: &ChunkRepr) -> usize {
        let _ = repr;
        // Only a bound for decoders: metadata may ask for shards larger than any machine holds,
        // so saturate (at what one allocation could hold, leaving codecs after this one room
        // to add their own headers) rather than overflow.
        self.num_inner()
            .saturating_mul(self.inner.max_encoded_size())
            .saturating_add(self.index_size)
            .min(isize::MAX as usize)
    }

    fn as_sharding(&self) -> Option<&Sharding> {
        Some(self)
    }

    fn keep_empty_inner_chunks(&mut self) {
        self.keep_empty_inner = true;
        self.inner.keep_empty_inner_chunks();
    }

    fn metadata(&self) -> Value {
        let mut config = Map::new();
        config.insert("chunk_shape".into(), serde_json::json!(self.chunk_shape));
        config.insert("codecs".into(), Value::Array(self.inner.metadata()));
        config.insert(
            "index_codecs".into(),
            Value::Array(self.index_codecs.metadata()),
        );
        config.insert(
            "index_location".into(),
            match self.index_location {
                IndexLocation::Start => "start",
                IndexLocation::End => "end",
            }
            .into(),
        );
        codec_metadata(NAME, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::CodecChain;
    use serde_json::json;

    fn chain(codecs: Value, shape: &[u64]) -> CodecChain {
        CodecChain::from_metadata(
            codecs.as_array().unwrap(),
            &ChunkRepr::with_fill(shape.to_vec(), DataType::UInt16, &7u16.to_ne_bytes()),
        )
        .unwrap()
    }

    fn sharded(inner: &[u64], location: &str, codecs: Value) -> Value {
        json!([{"name": "sharding_indexed", "configuration": {
            "chunk_shape": inner, "codecs": codecs, "index_location": location,
            "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]}}])
    }

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn sharding_of(
        shard: &[u64],
        inner: &[u64],
        index_codecs: Value,
    ) -> Result<CodecChain, MetadataError> {
        let codecs = [json!({"name": "sharding_indexed", "configuration": {
            "chunk_shape": inner, "index_codecs": index_codecs,
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                       {"name": "zstd", "configuration": {"level": 1, "checksum": false}}]}})];
        CodecChain::from_metadata(&codecs, &ChunkRepr::new(shard.to_vec(), DataType::UInt16))
    }

    #[test]
    fn index_sizes_come_from_the_index_codecs_without_building_an_index() -> TestResult {
        let bytes = json!({"name": "bytes", "configuration": {"endian": "little"}});
        let size = |shard: &[u64], codecs: Value| -> Result<usize, Box<dyn std::error::Error>> {
            let chain = sharding_of(shard, &[1, 1], codecs)?;
            Ok(chain.sharding().ok_or("not sharded")?.index_size())
        };
        assert_eq!(size(&[4, 6], json!([bytes]))?, 4 * 6 * 16);
        assert_eq!(
            size(&[4, 6], json!([bytes, {"name": "crc32c"}]))?,
            4 * 6 * 16 + 4
        );
        let transposed = json!([{"name": "transpose", "configuration": {"order": [2, 1, 0]}},
                                bytes, {"name": "crc32c"}]);
        assert_eq!(size(&[4, 6], transposed)?, 4 * 6 * 16 + 4);
        // Metadata may ask for an index no machine holds (2^40 inner chunks: 16 TiB): opening
        // it costs nothing; only reading a shard would need it. 2^58 inner chunks still have
        // an index one allocation could address, but the bound on a whole shard of them (zstd
        // may add some 60 bytes to each) saturates.
        assert_eq!(size(&[1 << 20, 1 << 20], json!([bytes]))?, 16 << 40);
        let vast = sharding_of(
            &[1 << 29, 1 << 29],
            &[1, 1],
            json!([bytes, {"name": "crc32c"}]),
        )?;
        assert_eq!(vast.max_encoded_size(), isize::MAX as usize);
        // An index larger than one allocation can hold, and chains whose size depends on the
        // entries, are refused.
        assert!(sharding_of(&[1 << 31, 1 << 31], &[1, 1], json!([bytes])).is_err());
        let zstd =
            json!([bytes, {"name": "zstd", "configuration": {"level": 1, "checksum": false}}]);
        let err = sharding_of(&[4, 6], &[1, 1], zstd)
            .err()
            .ok_or("compressed index accepted")?;
        assert!(err.to_string().contains("fixed size"), "{err}");
        Ok(())
    }

    #[test]
    fn whole_shards_round_trip() {
        let zstd = json!([{"name": "bytes", "configuration": {"endian": "little"}},
                          {"name": "zstd", "configuration": {"level": 1, "checksum": false}}]);
        let shape = [6u64, 7, 10];
        let n = 6 * 7 * 10;
        for codecs in [
            sharded(&[3, 7, 5], "end", zstd.clone()),
            sharded(&[2, 7, 5], "start", zstd.clone()),
            sharded(
                &[3, 7, 5],
                "end",
                sharded(&[1, 7, 5], "start", zstd.clone()),
            ),
        ] {
            let c = chain(codecs, &shape);
            // Some regions hold only the fill value (7), so some inner chunks are not stored.
            let values: Vec<u16> = (0..n)
                .map(|i| if i < 105 { 7 } else { (i % 13) as u16 })
                .collect();
            let data: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
            let enc = c.encode(&data).unwrap().into_owned();
            let mut out = vec![0u8; data.len()];
            c.decode_into(&enc, &mut out).unwrap();
            assert_eq!(out, data);
        }
    }

    /// A chain of `codecs` for shards of `shape` variable-length strings whose fill value is
    /// "-".
    fn vlen_chain(codecs: Value, shape: &[u64]) -> Result<CodecChain, MetadataError> {
        let list = codecs.as_array().cloned().unwrap_or_default();
        CodecChain::from_metadata(
            &list,
            &ChunkRepr::with_fill(shape.to_vec(), DataType::String, b"-"),
        )
    }

    /// Strings for a shard of 4 x 6, C order, whose first two rows and the start of the
    /// third hold only the fill value.
    fn vlen_sample() -> VlenChunk {
        let texts: Vec<String> = (0..24)
            .map(|i| match i {
                0..=14 => "-".to_string(),
                15 => String::new(),
                _ => "é".repeat(i % 5) + &i.to_string(),
            })
            .collect();
        VlenChunk::from_elements(texts.iter().map(|t| t.as_bytes()))
    }

    #[test]
    fn shards_of_variable_length_elements_round_trip() -> TestResult {
        let vlen = json!([{"name": "vlen-utf8"}]);
        let zstd = json!({"name": "zstd", "configuration": {"level": 1, "checksum": false}});
        let nested = sharded(&[2, 6], "start", sharded(&[1, 3], "end", vlen.clone()));
        let mut compressed = sharded(&[2, 3], "end", vlen.clone());
        if let Some(list) = compressed.as_array_mut() {
            list.push(zstd);
        }
        let mut transposed = sharded(&[3, 2], "end", vlen.clone());
        if let Some(list) = transposed.as_array_mut() {
            list.insert(
                0,
                json!({"name": "transpose", "configuration": {"order": [1, 0]}}),
            );
        }
        let data = vlen_sample();
        for codecs in [
            sharded(&[2, 3], "end", vlen.clone()),
            sharded(&[1, 1], "start", vlen.clone()),
            nested,
            compressed,
            transposed,
        ] {
            let c = vlen_chain(codecs.clone(), &[4, 6])?;
            let stored = c.encode_vlen(&data)?;
            assert_eq!(c.decode_vlen(&stored)?, data, "{codecs}");
        }
        // A shard holding only the fill value is just its index, and reads back as the fill
        // value.
        let c = vlen_chain(sharded(&[2, 3], "end", vlen.clone()), &[4, 6])?;
        let sharding = c.sharding().ok_or("not sharded")?;
        let fill = VlenChunk::filled(24, b"-")?;
        let stored = c.encode_vlen(&fill)?;
        assert_eq!(stored.len(), sharding.index_size());
        assert_eq!(c.decode_vlen(&stored)?, fill);
        Ok(())
    }

    #[test]
    fn inner_chunks_of_the_fill_value_are_left_out() -> TestResult {
        let vlen = json!([{"name": "vlen-utf8"}]);
        let nested = sharded(&[2, 6], "end", sharded(&[1, 3], "end", vlen));
        let c = vlen_chain(nested, &[4, 6])?;
        let sharding = c.sharding().ok_or("not sharded")?;
        let stored = c.encode_vlen(&vlen_sample())?;
        let index = sharding.read_index(&stored)?;
        // The first inner chunk (rows 0 and 1) holds only the fill value.
        assert_eq!(index.get(0), None);
        let inner = stored_inner_chunk(&stored, &index, 1)?.ok_or("inner chunk 1 missing")?;
        // Within the second, a shard itself, so does the inner chunk of row 2, columns 0 to
        // 2; the rest hold "" or other strings.
        let nested = sharding.inner_chain().sharding().ok_or("not nested")?;
        let inner_index = nested.read_index(inner)?;
        assert_eq!(inner_index.get(0), None);
        assert!((1..inner_index.len()).all(|i| inner_index.get(i).is_some()));
        Ok(())
    }

    #[test]
    fn corrupt_shards_of_variable_length_elements_are_errors() -> TestResult {
        let vlen = json!([{"name": "vlen-utf8"}]);
        let c = vlen_chain(sharded(&[2, 3], "end", vlen), &[4, 6])?;
        let stored = c.encode_vlen(&vlen_sample())?;
        let index_size = c.sharding().ok_or("not sharded")?.index_size();
        let index_at = stored.len() - index_size;
        let mut bad: Vec<Vec<u8>> = vec![Vec::new(), stored[..index_size - 1].to_vec()];
        // An index whose checksum fails.
        let mut flipped = stored.clone();
        flipped[index_at] ^= 1;
        bad.push(flipped);
        // An inner chunk whose element count is wrong (inner chunks 0 and 1 hold only the
        // fill value, so inner chunk 2 is stored first).
        let mut miscounted = stored.clone();
        miscounted[0] ^= 0xff;
        bad.push(miscounted);
        // An entry past the end of the shard, with a valid checksum.
        let mut outside = stored.clone();
        let entries = &mut outside[index_at..stored.len() - 4];
        entries[16 * 2..16 * 2 + 8].copy_from_slice(&u64::MAX.wrapping_sub(1).to_le_bytes());
        let crc = crc32c::crc32c(&outside[index_at..stored.len() - 4]);
        let end = outside.len();
        outside[end - 4..].copy_from_slice(&crc.to_le_bytes());
        bad.push(outside);
        for (k, shard) in bad.iter().enumerate() {
            assert!(c.decode_vlen(shard).is_err(), "case {k}");
        }
        // Too few elements for the shard are refused, not indexed past.
        let short = VlenChunk::from_elements([&b"x"[..]]);
        assert!(c.encode_vlen(&short).is_err());
        Ok(())
    }
}
