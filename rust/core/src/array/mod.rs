//! Arrays: metadata, chunk keys, and the parallel read and write paths (in [`io`]).

pub mod chunk_cache;
pub mod chunk_ops;
pub(crate) mod copy;
mod io;
mod io_points;
mod io_vlen;
mod read_ahead;
pub mod selection;
mod shard_cache;
mod shard_holds;
mod write_lock;

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::codec::{ChunkRepr, CodecChain};
use crate::error::{Error, Result};
use crate::group::Consolidated;
use crate::metadata::data_type::swap_in_place;
use crate::metadata::v2::{ArrayMetadataV2, ZARRAY};
use crate::metadata::{ArrayMetadata, DataType, NodeMetadata, ZARR_JSON};
use crate::node::{self, describe, normalize_path, write_node_metadata};
use crate::store::{join_key, StoreRef};

pub use selection::{DimSelection, Selection};

/// An open array. Immutable: changing its metadata gives a new `Array`.
#[derive(Debug, Clone)]
pub struct Array {
    store: StoreRef,
    path: String,
    metadata: ArrayMetadata,
    /// One element of the fill value, in the byte order the elements are decoded in (the
    /// machine's, or the stored one for the view of `stored_byte_order`).
    fill_value: Vec<u8>,
    codecs: Arc<CodecChain>,
    /// Indexes of the shards this array has read or written (sharded arrays only).
    shard_indexes: Arc<shard_cache::ShardIndexCache>,
    /// Its entries' namespace in the decoded-chunk cache: the store's, and how its chunks
    /// decode (see `decoding_scope`).
    cache_namespace: Arc<str>,
    /// For a v2 array stored in F order (of two dimensions or more): the same array seen with
    /// its dimensions reversed (see [`Array::reversed_dims`]), through which Fortran-order
    /// reads and writes go.
    fortran: Option<Arc<Array>>,
    /// Whether this is such a view: its chunk grid coordinates are the stored array's
    /// reversed, so they are reversed back for chunk keys and write claims.
    dims_reversed: bool,
    /// The consolidated metadata the array was opened through, as a member of a group
    /// opened through it: the array's attributes are shared with the other nodes opened
    /// from it (see [`Array::with_attributes`]).
    consolidated: Option<Arc<Consolidated>>,
    /// For a v2 array whose elements are stored in the other byte order than the machine's
    /// (and only the serializer swaps them): the same array with its elements in that
    /// order (see [`Array::in_stored_byte_order`]).
    stored_byte_order: Option<Arc<Array>>,
}

/// The byte order an array's elements are decoded into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElementOrder {
    /// The machine's.
    Native,
    /// The order a v2 array stores them in, the other one (see
    /// [`Array::in_stored_byte_order`]).
    Stored,
}

/// Refuses codecs (in `codecs`, or in a sharding codec's chains) that a new v3 array must
/// not be written with, though arrays that have them open: a zstd level zarr-python cannot
/// open (see the zstd codec's module).
fn refuse_for_new_array(codecs: &[Value]) -> Result<()> {
    for codec in codecs {
        if let Some(reason) = crate::codec::bytes_to_bytes::zstd::refusal_for_new_array(codec) {
            return Err(Error::InvalidArgument(reason));
        }
        let config = codec.get("configuration");
        for chain in ["codecs", "index_codecs"] {
            if let Some(inner) = config.and_then(|c| c.get(chain)).and_then(Value::as_array) {
                refuse_for_new_array(inner)?;
            }
        }
    }
    Ok(())
}

/// How an array's stored chunks decode, as a short tag: its codec chain and the chunks it
/// decodes to. Decoded chunks are cached under it, so that another array at the same key
/// (replaced by one of other chunks or codecs, or v2 metadata edited beside its chunks) never
/// takes them for its own: they were read past their end, or as other values.
fn decoding_scope(codecs: &CodecChain) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    crate::metadata::json::to_string(&Value::Array(codecs.metadata())).hash(&mut hasher);
    let repr = codecs.decoded_repr();
    // The byte order too: an array and its view in the stored byte order have the same
    // codec metadata, and decode the same chunk into other bytes.
    let decoded = (&repr.shape, format!("{:?}", repr.data_type));
    (decoded, repr.byte_swapped).hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

impl Array {
    /// Builds an array from parsed metadata, checking everything the metadata implies.
    pub fn from_metadata(store: StoreRef, path: &str, metadata: ArrayMetadata) -> Result<Self> {
        // (Copied only for such a view: a document's attributes can be large.)
        let view_metadata = match &metadata {
            ArrayMetadata::V2(m) if m.swaps_only_in_serializer() => Some(metadata.clone()),
            _ => None,
        };
        let mut array =
            Self::with_element_order(store.clone(), path, metadata, ElementOrder::Native)?;
        if let Some(metadata) = view_metadata {
            let view = Self::with_element_order(store, path, metadata, ElementOrder::Stored)?;
            array.stored_byte_order = Some(Arc::new(view));
        }
        Ok(array)
    }

    /// [`from_metadata`](Self::from_metadata), its elements decoded in `order`.
    fn with_element_order(
        store: StoreRef,
        path: &str,
        metadata: ArrayMetadata,
        order: ElementOrder,
    ) -> Result<Self> {
        let document = if metadata.zarr_format() == 2 {
            ZARRAY
        } else {
            ZARR_JSON
        };
        // The store named too, as chunk errors name it.
        let key = format!("{} in {}", join_key(path, document), store.describe());
        let invalid = |source| Error::InvalidMetadata {
            key: key.clone(),
            source,
        };
        let data_type = metadata.data_type().clone();
        let mut fill_value = metadata.fill_value_bytes().map_err(invalid)?;
        let chunk_shape = metadata.chunk_shape().to_vec();
        let codecs = match (&metadata, order) {
            (_, ElementOrder::Native) => {
                let repr =
                    ChunkRepr::with_fill(chunk_shape.clone(), data_type.clone(), &fill_value);
                metadata.codec_chain(&repr).map_err(invalid)?
            }
            (ArrayMetadata::V2(m), ElementOrder::Stored) => {
                swap_in_place(&mut fill_value, &m.dtype.swap_plan());
                let mut repr =
                    ChunkRepr::with_fill(chunk_shape.clone(), data_type.clone(), &fill_value);
                repr.byte_swapped = true;
                CodecChain::from_v2_in_stored_byte_order(m, &repr).map_err(invalid)?
            }
            (ArrayMetadata::V3(_), ElementOrder::Stored) => {
                return Err(Error::InvalidArgument(format!(
                    "{}: only v2 arrays are read in a stored byte order of their own",
                    describe(&store, path)
                )))
            }
        };
        let chunk_bytes = chunk_shape
            .iter()
            .try_fold(data_type.size() as u64, |acc, &n| acc.checked_mul(n));
        if chunk_bytes.is_none_or(|n| n > isize::MAX as u64) {
            return Err(Error::InvalidMetadata {
                key,
                source: crate::error::MetadataError::invalid(
                    "chunk shape",
                    &serde_json::json!(chunk_shape),
                    "a chunk of this shape is too large to hold in memory",
                ),
            });
        }
        let cache_namespace = format!("{}\0{}", store.cache_namespace(), decoding_scope(&codecs));
        let fortran = match &metadata {
            ArrayMetadata::V2(m) if m.order_f && m.shape.len() > 1 => {
                Some(Arc::new(Self::reversed_dims(&store, path, m, order)?))
            }
            _ => None,
        };
        Ok(Self {
            store,
            path: path.to_string(),
            metadata,
            fill_value,
            codecs: Arc::new(codecs),
            shard_indexes: Default::default(),
            cache_namespace: cache_namespace.into(),
            fortran,
            dims_reversed: false,
            consolidated: None,
            stored_byte_order: None,
        })
    }

    /// The same array with its elements in the byte order they are stored in, where that
    /// is the other one than the machine's and nothing but the serializer swaps them (a v2
    /// array of dtype ">i4", ">f8", ">M8[s]" or ">U3" on a little-endian machine, with no
    /// value filter): `None` for the others. Its chunks decode into their stored bytes as
    /// they are, so that reads and writes of its elements in that order (numpy's ">i4",
    /// what zarr-python hands out) swap nothing; an uncompressed chunk is read straight
    /// into the output. Its store, path and metadata are the array's; its fill value is in
    /// that order; chunks it decodes are cached apart from the array's.
    pub fn in_stored_byte_order(&self) -> Option<&Arc<Array>> {
        self.stored_byte_order.as_ref()
    }

    /// The v2 array of `metadata`, stored in F order, seen with its dimensions reversed: a
    /// C-order array of the reversed shape and chunk shape, whose chunks are the stored ones
    /// byte for byte (an F-order chunk is the C-order chunk of its reversed shape, and v2's
    /// filters and compressor work on those bytes whatever their order). A C-order read of
    /// it fills memory in the order of an F-order read of the array itself, without the
    /// transposition of every chunk that the array's own chain does: reads of F-order
    /// results (numpy's layout for them, and zarr-python's) then cost what C-order ones do.
    /// Its elements are decoded in `order`, as the array's are.
    fn reversed_dims(
        store: &StoreRef,
        path: &str,
        metadata: &ArrayMetadataV2,
        order: ElementOrder,
    ) -> Result<Self> {
        let mut reversed = metadata.clone();
        reversed.shape.reverse();
        reversed.chunks.reverse();
        reversed.order_f = false;
        let reversed = ArrayMetadata::V2(Box::new(reversed));
        let view = Self::with_element_order(store.clone(), path, reversed, order)?;
        Ok(Self {
            dims_reversed: true,
            ..view
        })
    }

    /// Whether this array's chunks are stored in F order, so that
    /// [`read_into_fortran`](Self::read_into_fortran) and
    /// [`write_fortran`](Self::write_fortran) take F-order buffers straight.
    pub fn stores_fortran_order(&self) -> bool {
        self.fortran.is_some()
    }

    /// The view of [`reversed_dims`](Self::reversed_dims) and the selection as it sees it,
    /// for an array stored in F order.
    fn fortran_view(&self, selection: &Selection) -> Result<(&Array, Selection)> {
        let view = self.fortran.as_deref().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} does not store its chunks in F order",
                describe(&self.store, &self.path)
            ))
        })?;
        let mut reversed = selection.clone();
        reversed.0.reverse();
        Ok((view, reversed))
    }

    /// Reads the selection into `out` in F order (the selection's first dimension varying
    /// fastest), for an array that [stores F order](Self::stores_fortran_order).
    pub fn read_into_fortran(&self, selection: &Selection, out: &mut [u8]) -> Result<()> {
        selection.check(self.shape())?;
        let (view, reversed) = self.fortran_view(selection)?;
        view.read_into(&reversed, out)
    }

    /// Writes `data`, the selection's values in F order, as [`write`](Self::write) writes
    /// C-order ones: straight, for an array that [stores F order](Self::stores_fortran_order),
    /// else taken from where they lie as each chunk is written.
    pub fn write_fortran(
        &self,
        selection: &Selection,
        data: &[u8],
        write_empty_chunks: bool,
    ) -> Result<()> {
        selection.check(self.shape())?;
        if self.fortran.is_none() {
            return self.write_from_fortran(selection, data, write_empty_chunks);
        }
        let (view, reversed) = self.fortran_view(selection)?;
        view.write(&reversed, data, write_empty_chunks)
    }

    /// Opens the array at `path` (v3 or v2).
    pub fn open(store: StoreRef, path: &str) -> Result<Self> {
        Self::open_as(store, path, None)
    }

    /// Opens the array of Zarr format `format` (2 or 3; `None`: either) at `path`.
    pub fn open_as(store: StoreRef, path: &str, format: Option<u8>) -> Result<Self> {
        let path = normalize_path(path)?;
        match node::read_node_metadata_as(&store, &path, format)? {
            Some(NodeMetadata::Array(meta)) => Self::from_metadata(store, &path, meta),
            Some(NodeMetadata::Group(_)) => Err(Error::NotAnArray {
                path: describe(&store, &path),
            }),
            None => Err(Error::NodeNotFound {
                kind: "array",
                path: describe(&store, &path),
            }),
        }
    }

    /// Creates an array at `path` (and any missing parent groups, in the same format). v3
    /// codec metadata is written in its complete form (every configuration field spelled
    /// out), but for numcodecs codecs, written as given, as zarr-python writes them.
    pub fn create(
        store: StoreRef,
        path: &str,
        mut metadata: ArrayMetadata,
        overwrite: bool,
    ) -> Result<Self> {
        let path = normalize_path(path)?;
        // Validate everything before touching the store.
        let array = Self::from_metadata(store.clone(), &path, metadata.clone())?;
        if let ArrayMetadata::V3(m) = &mut metadata {
            m.codecs = array.codecs.metadata_for_new_array(&m.codecs);
            refuse_for_new_array(&m.codecs)?;
        }
        node::prepare_new_node(&store, &path, overwrite, metadata.zarr_format())?;
        node::write_new_node(
            &store,
            &path,
            &NodeMetadata::Array(metadata.clone()),
            overwrite,
        )?;
        Ok(Self { metadata, ..array })
    }

    /// Held by operations on many chunks: the pools they enter are as large as the store
    /// serves requests best at once, when that is more than the configured threads.
    pub(crate) fn request_threads(&self) -> crate::concurrency::AtLeast {
        crate::concurrency::AtLeast::new(self.store.concurrent_requests())
    }

    pub fn store(&self) -> &StoreRef {
        &self.store
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The codec chain chunks go through (for Zarr v2, its filters and compressor under
    /// their v3 names around the serializer its dtype implies).
    pub fn codec_chain(&self) -> &CodecChain {
        &self.codecs
    }

    pub fn metadata(&self) -> &ArrayMetadata {
        &self.metadata
    }

    pub fn zarr_format(&self) -> u8 {
        self.metadata.zarr_format()
    }

    pub fn shape(&self) -> &[u64] {
        self.metadata.shape()
    }

    pub fn data_type(&self) -> &DataType {
        self.metadata.data_type()
    }

    /// The shape of a chunk of the chunk grid: a shard, for sharded arrays.
    pub fn chunk_shape(&self) -> &[u64] {
        self.metadata.chunk_shape()
    }

    /// The shape of the chunks that are encoded on their own: the inner chunks of a sharded
    /// array, the chunks of the grid otherwise.
    pub fn inner_chunk_shape(&self) -> &[u64] {
        match self.codecs.sharding() {
            Some(sharding) => sharding.inner_chunk_shape(),
            None => self.chunk_shape(),
        }
    }

    /// The shape of a shard, for arrays whose chain is the sharding codec.
    pub fn shard_shape(&self) -> Option<&[u64]> {
        self.codecs.sharding().map(|_| self.chunk_shape())
    }

    /// Whether a write stores chunks that hold only the fill value: when asked to, and always
    /// for a v2 array without a fill value (`null`), whose unwritten elements other readers
    /// may not read as zeros. zarr-python 3.1 drops chunks of zeros there and reads them back
    /// as zeros, but zarr-python 2 reads a missing chunk there as uninitialized memory.
    pub(crate) fn keeps_empty_chunks(&self, write_empty_chunks: bool) -> bool {
        write_empty_chunks || !self.metadata.has_fill_value()
    }

    pub fn fill_value(&self) -> &[u8] {
        &self.fill_value
    }

    pub fn attributes(&self) -> &Map<String, Value> {
        self.metadata.attributes()
    }

    /// The number of chunks along each dimension.
    pub fn grid_shape(&self) -> Vec<u64> {
        self.shape()
            .iter()
            .zip(self.chunk_shape())
            .map(|(&n, &c)| n.div_ceil(c))
            .collect()
    }

    /// The number of chunks in the grid.
    pub fn nchunks(&self) -> u64 {
        self.grid_shape().iter().product()
    }

    /// The store key of the chunk at grid coordinates `coords`.
    pub fn chunk_key(&self, coords: &[u64]) -> String {
        let encoding = self.metadata.chunk_key_encoding();
        if self.dims_reversed {
            let stored: Vec<u64> = coords.iter().rev().copied().collect();
            return join_key(&self.path, &encoding.encode(&stored));
        }
        join_key(&self.path, &encoding.encode(coords))
    }

    /// The chunks (shards, for sharded arrays) stored, by grid coordinates.
    pub fn stored_chunks(&self) -> Result<Vec<Vec<u64>>> {
        let prefix = crate::store::node_prefix(&self.path);
        let encoding = self.metadata.chunk_key_encoding();
        let grid = self.grid_shape();
        let mut chunks = Vec::new();
        for key in self.store.list_prefix(&prefix)? {
            if let Some(mut coords) = encoding.decode(&key[prefix.len()..], grid.len()) {
                if self.dims_reversed {
                    coords.reverse();
                }
                if coords.iter().zip(&grid).all(|(c, g)| c < g) {
                    chunks.push(coords);
                }
            }
        }
        Ok(chunks)
    }

    /// Bytes stored for this array: its chunks and metadata documents.
    pub fn nbytes_stored(&self) -> Result<u64> {
        let prefix = crate::store::node_prefix(&self.path);
        let mut total = 0;
        for key in self.store.list_prefix(&prefix)? {
            total += self.store.size(&key)?.unwrap_or(0);
        }
        Ok(total)
    }

    /// Changes the shape, writing the metadata; chunks that fall wholly outside the new shape
    /// are deleted (as zarr-python does). Returns the resized array.
    pub fn resize(&self, shape: &[u64]) -> Result<Self> {
        if shape.len() != self.shape().len() {
            return Err(Error::InvalidArgument(format!(
                "cannot resize a {}-dimensional array to {shape:?}",
                self.shape().len()
            )));
        }
        // Every stored chunk, as a write would claim them: writes to this array in this
        // process finish before chunks are deleted, and the next ones wait until the
        // deletions are done. (Handles still holding the old shape can write outside the new
        // one afterwards, as in zarr-python.)
        let _claim = self.claim_bounds(vec![(0, u64::MAX); shape.len()])?;
        let chunk_shape = self.chunk_shape().to_vec();
        // A shape growing in every dimension leaves no chunk outside it that was inside the
        // old one: the stored chunks are not listed (a listing of them all made a loop of
        // appends quadratic), as zarr-python deletes chunks only when a dimension shrinks.
        let grows = shape.iter().zip(self.shape()).all(|(new, old)| new >= old);
        let stored = match grows {
            true => Vec::new(),
            false => self.stored_chunks()?,
        };
        for coords in stored {
            let outside = coords
                .iter()
                .zip(&chunk_shape)
                .zip(shape)
                .any(|((&c, &n), &s)| c * n >= s);
            if outside {
                self.store.delete(&self.chunk_key(&coords))?;
            }
        }
        let mut metadata = self.metadata.clone();
        metadata.set_shape(shape.to_vec());
        // The document is written with the attributes as the last write through a node
        // sharing them left them, and before another such write starts from them: the new
        // shape is the array's own, not shared (as in zarr-python, a resize is not seen
        // through the group it was opened from).
        let turn = self.consolidated.as_deref().map(Consolidated::write_turn);
        if let Some(attributes) = turn.as_ref().and_then(|t| t.attributes(&self.path)) {
            metadata.set_attributes(attributes);
        }
        write_node_metadata(
            &self.store,
            &self.path,
            &NodeMetadata::Array(metadata.clone()),
        )?;
        drop(turn);
        Ok(
            Self::from_metadata(self.store.clone(), &self.path, metadata)?
                .opened_through(self.consolidated.clone()),
        )
    }

    /// The array, as opened through the consolidated metadata `consolidated` (see
    /// [`Array::with_attributes`]).
    pub(crate) fn opened_through(self, consolidated: Option<Arc<Consolidated>>) -> Self {
        Self {
            consolidated,
            ..self
        }
    }

    /// How many attribute writes through the nodes opened from the consolidated metadata
    /// the array was opened through have been recorded; `None` if it was opened without.
    pub fn consolidated_generation(&self) -> Option<u64> {
        self.consolidated.as_deref().map(Consolidated::generation)
    }

    /// The array's metadata as it is now: opened through consolidated metadata, with the
    /// attributes last written to it through any node opened from it.
    pub fn current_metadata(&self) -> Cow<'_, ArrayMetadata> {
        let written = self
            .consolidated
            .as_deref()
            .and_then(|c| c.written_attributes(&self.path));
        match written {
            Some(attributes) => {
                let mut metadata = self.metadata.clone();
                metadata.set_attributes(attributes);
                Cow::Owned(metadata)
            }
            None => Cow::Borrowed(&self.metadata),
        }
    }

    /// Replaces the attributes, writing `zarr.json` (v2: `.zattrs`); returns the updated
    /// array.
    ///
    /// An array opened through consolidated metadata shares its attributes with the nodes
    /// opened from it, as zarr-python's do: the write is recorded there, so that later
    /// lookups through the group see it. With `seen` (the
    /// [generation](Array::consolidated_generation) of the attributes the new ones were made
    /// from) it is made only if no write through them came after that; `None` is returned
    /// if one did, for the caller to start again from the attributes as they now are
    /// (another thread's write through another handle is then kept, not written over).
    pub fn with_attributes(
        &self,
        attributes: Map<String, Value>,
        seen: Option<u64>,
    ) -> Result<Option<Self>> {
        let turn = self.consolidated.as_deref().map(Consolidated::write_turn);
        if turn.as_ref().is_some_and(|t| !t.saw_every_write(seen)) {
            return Ok(None);
        }
        let mut metadata = self.metadata.clone();
        metadata.set_attributes(attributes.clone());
        write_node_metadata(
            &self.store,
            &self.path,
            &NodeMetadata::Array(metadata.clone()),
        )?;
        if let Some(turn) = turn {
            turn.record(&self.path, attributes);
        }
        Ok(Some(Self {
            metadata,
            ..self.clone()
        }))
    }
}
