//! Codecs and the codec chain (spec: zarr-specs v3.0, "Codecs").
//!
//! A chain is zero or more array→array codecs, exactly one array→bytes codec, then zero or more
//! bytes→bytes codecs. Encoding runs them in that order; decoding runs them in reverse. One
//! module per codec, grouped by the spec's three kinds.
//!
//! Decoded array data is always C order, native byte order (but for a v2 array's chunks
//! read in the other byte order they are stored in, see [`ChunkRepr::byte_swapped`]).
//! Decoding is bounded: every stage refuses, before allocating it, an output larger than the
//! metadata allows.

pub mod array_to_array;
pub mod array_to_bytes;
pub mod bytes_to_bytes;
pub(crate) mod rows;

pub use rows::ChunkRows;

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::Debug;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::{CodecError, MetadataError};
use crate::metadata::data_type::DataType;
use crate::metadata::v3::split_extension;
use crate::{alloc, scratch};

thread_local! {
    /// A chunk between the array->bytes codec and the array->array codecs (a transposed
    /// chunk, decoded but not yet put back in order).
    static ARRAY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What a codec knows of the chunk it transforms: its shape, data type and fill value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRepr {
    pub shape: Vec<u64>,
    pub data_type: DataType,
    /// One element of the fill value, native endian (the other order where `byte_swapped`).
    pub fill_value: Arc<[u8]>,
    /// Whether `fill_value` is the array's fill value exactly. An array->array codec that
    /// changes the element type hands on the fill value cast to its type, as zarr-python
    /// does; where that cast is inexact (1.23 into integers, NaN), no inner chunk of a
    /// sharding codec after it counts as the fill value: each is stored, as zarr-python
    /// stores it.
    pub fill_is_exact: bool,
    /// Whether the elements are in the other byte order than the machine's: the chunks of a
    /// v2 array seen in the byte order they are stored in (see
    /// [`Array::in_stored_byte_order`](crate::Array::in_stored_byte_order)). Their bytes are
    /// moved, never computed with, but for the test of a NaN fill value, which reads them.
    pub byte_swapped: bool,
}

impl ChunkRepr {
    /// A representation whose fill value is zero.
    pub fn new(shape: Vec<u64>, data_type: DataType) -> Self {
        let zero = vec![0u8; data_type.size()];
        Self::with_fill(shape, data_type, &zero)
    }

    pub fn with_fill(shape: Vec<u64>, data_type: DataType, fill_value: &[u8]) -> Self {
        Self {
            shape,
            data_type,
            fill_value: Arc::from(fill_value),
            fill_is_exact: true,
            byte_swapped: false,
        }
    }

    /// Whether every element of `data`, a decoded chunk of this representation, counts as
    /// its fill value when empty chunks are left out (see [`all_fill_of`]).
    ///
    /// [`all_fill_of`]: crate::array::copy::all_fill_of
    pub(crate) fn holds_only_fill(&self, data: &[u8]) -> bool {
        crate::array::copy::all_fill_in_order(
            data,
            &self.fill_value,
            &self.data_type,
            self.byte_swapped,
        )
    }

    pub fn num_elements(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Size in bytes of the decoded chunk. A codec chain is only built for chunks whose size
    /// [`Self::checked_nbytes`] gives, so within one this cannot overflow.
    pub fn nbytes(&self) -> usize {
        self.num_elements() as usize * self.data_type.size()
    }

    /// Size in bytes of the decoded chunk, if one allocation could hold it (at most
    /// `isize::MAX` bytes); `None` for chunk shapes of valid metadata that no machine holds.
    pub fn checked_nbytes(&self) -> Option<usize> {
        let elements = self.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d))?;
        let bytes = elements.checked_mul(self.data_type.size() as u64)?;
        usize::try_from(bytes)
            .ok()
            .filter(|&b| isize::try_from(b).is_ok())
    }
}

/// Refuses chunks of more bytes than one allocation can hold, before any codec computes with
/// their size.
fn check_addressable(repr: &ChunkRepr) -> Result<(), MetadataError> {
    if repr.checked_nbytes().is_some() {
        return Ok(());
    }
    Err(MetadataError::invalid(
        "chunk_shape",
        &Value::from(repr.shape.clone()),
        format!(
            "chunks of this many {} elements are more bytes than one allocation holds ({} at \
             most)",
            repr.data_type,
            isize::MAX
        ),
    ))
}

/// One dimension of the part of a chunk a read needs: positions `first`, `first + step`, ...
/// up to `last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoxRange {
    pub first: u64,
    pub last: u64,
    pub step: u64,
}

impl BoxRange {
    /// Every position from `first` to `last`.
    pub fn span(first: u64, last: u64) -> Self {
        Self {
            first,
            last,
            step: 1,
        }
    }

    /// Every position of a dimension of extent `n` (which must not be 0).
    pub fn all(n: u64) -> Self {
        Self::span(0, n.saturating_sub(1))
    }

    /// How many positions it holds (never none).
    pub fn count(&self) -> u64 {
        (self.last - self.first) / self.step + 1
    }
}

/// A box of a chunk, the part of it a read needs: one range per dimension.
pub type ChunkBox = [BoxRange];

/// Whether `part` is a non-empty box inside a chunk of `shape`, with steps that reach its
/// ends.
pub(crate) fn box_fits(part: &ChunkBox, shape: &[u64]) -> bool {
    part.len() == shape.len()
        && part.iter().zip(shape).all(|(r, &n)| {
            r.first <= r.last && r.last < n && r.step > 0 && (r.last - r.first) % r.step == 0
        })
}

/// The bytes of a chunk of `shape` (C order, elements of `size` bytes) from the first element
/// of box `part` to its last (which must fit: see `box_fits`).
pub(crate) fn box_byte_range(
    part: &ChunkBox,
    shape: &[u64],
    size: usize,
) -> std::ops::Range<usize> {
    let (mut first, mut last, mut stride) = (0u64, 0u64, 1u64);
    for (r, &n) in part.iter().zip(shape).rev() {
        first += r.first * stride;
        last += r.last * stride;
        stride *= n;
    }
    first as usize * size..(last as usize + 1) * size
}

/// A codec from array to array (e.g. transpose). The data is a whole chunk, C order.
pub trait ArrayToArrayCodec: Send + Sync + Debug {
    /// The representation that `encode` produces from `decoded`.
    fn encoded_repr(&self, decoded: &ChunkRepr) -> ChunkRepr;
    fn encode(&self, data: &[u8], decoded: &ChunkRepr) -> Result<Vec<u8>, CodecError>;
    /// `encoded` is shaped `self.encoded_repr(decoded)`; `out` receives data shaped `decoded`.
    fn decode_into(
        &self,
        encoded: &[u8],
        decoded: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError>;
    /// The box of the encoded chunk that holds box `part` of the decoded one, for codecs
    /// that only move elements (transpose); `None`, the whole encoded chunk, for the others.
    fn encoded_box(&self, _part: &ChunkBox) -> Option<Vec<BoxRange>> {
        None
    }
    /// Decodes into `out` at least the elements of box `part` of the decoded chunk (at their
    /// places in it); the rest of `out` is left unspecified. By default the whole chunk.
    fn decode_box_into(
        &self,
        encoded: &[u8],
        decoded: &ChunkRepr,
        out: &mut [u8],
        _part: &ChunkBox,
    ) -> Result<(), CodecError> {
        self.decode_into(encoded, decoded, out)
    }
    fn metadata(&self) -> Value;
}

/// A codec from array to bytes (e.g. bytes): serialises C-order native-endian elements.
pub trait ArrayToBytesCodec: Send + Sync + Debug {
    fn encode<'a>(
        &self,
        data: Cow<'a, [u8]>,
        repr: &ChunkRepr,
    ) -> Result<Cow<'a, [u8]>, CodecError>;
    /// Decodes `encoded` into `out`, which is exactly `repr.nbytes()` long.
    fn decode_into(
        &self,
        encoded: &[u8],
        repr: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError>;
    /// Whether the encoded bytes are the decoded bytes themselves, so that the stage before
    /// (a decompressor, or the store) may write straight into the output.
    fn is_passthrough(&self, _repr: &ChunkRepr) -> bool {
        false
    }
    /// An upper bound on the encoded size of a chunk of `repr`.
    fn max_encoded_size(&self, repr: &ChunkRepr) -> usize;
    /// The encoded size of every chunk of `repr`, for codecs whose output size does not
    /// depend on the data (bytes); `None` for the others.
    fn fixed_encoded_size(&self, _repr: &ChunkRepr) -> Option<usize> {
        None
    }
    /// The sharding codec, if this is one: the array layer reads shards partially.
    fn as_sharding(&self) -> Option<&array_to_bytes::sharding::Sharding> {
        None
    }
    /// Makes a sharding codec (and those nested in it) store inner chunks that hold only
    /// the fill value; nothing for the others.
    fn keep_empty_inner_chunks(&mut self) {}
    /// As `encode`, a sharding codec (and those nested in it) storing this chunk's inner
    /// chunks that hold only the fill value; the others encode as always.
    fn encode_keeping_empty<'a>(
        &self,
        data: Cow<'a, [u8]>,
        repr: &ChunkRepr,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        self.encode(data, repr)
    }
    /// Encodes variable-length elements (only the vlen codecs can).
    fn encode_vlen(
        &self,
        _chunk: &array_to_bytes::vlen::VlenChunk,
        repr: &ChunkRepr,
    ) -> Result<Vec<u8>, CodecError> {
        Err(CodecError::Encode {
            codec: "codec chain",
            reason: format!("cannot encode variable-length {} elements", repr.data_type),
        })
    }
    /// As `encode_vlen`, a sharding codec (and those nested in it) storing this chunk's inner
    /// chunks that hold only the fill value.
    fn encode_vlen_keeping_empty(
        &self,
        chunk: &array_to_bytes::vlen::VlenChunk,
        repr: &ChunkRepr,
    ) -> Result<Vec<u8>, CodecError> {
        self.encode_vlen(chunk, repr)
    }
    /// Decodes variable-length elements (only the vlen codecs can).
    fn decode_vlen(
        &self,
        _encoded: &[u8],
        repr: &ChunkRepr,
    ) -> Result<array_to_bytes::vlen::VlenChunk, CodecError> {
        Err(CodecError::corrupt(
            "codec chain",
            format!("cannot decode variable-length {} elements", repr.data_type),
        ))
    }
    fn metadata(&self) -> Value;
}

/// A codec from bytes to bytes (compressors, checksums).
pub trait BytesToBytesCodec: Send + Sync + Debug {
    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError>;
    /// Decodes `encoded`, refusing (before allocating it) any output longer than `max_decoded`.
    /// A codec that only strips bytes (a checksum) returns a slice of its input.
    fn decode<'a>(
        &self,
        encoded: Cow<'a, [u8]>,
        max_decoded: usize,
    ) -> Result<Cow<'a, [u8]>, CodecError>;
    /// Decodes into `out` when the decoded length is known exactly; any other length is an
    /// error. Compressors override this to decompress in place.
    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let decoded = self.decode(Cow::Borrowed(encoded), out.len())?;
        check_len(self.name(), decoded.len(), out.len())?;
        out.copy_from_slice(&decoded);
        Ok(())
    }
    /// Decodes into `out` (the whole decoded length) at least the bytes in `range`; the rest
    /// of `out` is left unspecified. A read of part of a chunk uses it: codecs that can decode
    /// less than everything (zstd stops early, blosc decodes only the blocks it needs)
    /// override it.
    fn decode_range_into(
        &self,
        encoded: &[u8],
        out: &mut [u8],
        _range: std::ops::Range<usize>,
    ) -> Result<(), CodecError> {
        self.decode_into(encoded, out)
    }
    /// Decodes the whole of `encoded` straight into `rows` (as long as the decoded bytes),
    /// when this codec produces its output in pieces it can place there (blosc's blocks);
    /// `Ok(false)`, having written nothing, when it cannot. The default cannot.
    fn decode_into_rows(&self, _encoded: &[u8], _rows: &ChunkRows<'_>) -> Result<bool, CodecError> {
        Ok(false)
    }
    /// Whether decoding `decoded_len` bytes is split between threads (blosc decodes a large
    /// frame's blocks in parallel). The default is not.
    fn decodes_in_parallel(&self, _decoded_len: usize) -> bool {
        false
    }
    /// Whether `decode_into_rows` can ever write rows (so callers can skip gathering them).
    fn writes_rows(&self) -> bool {
        false
    }
    /// An upper bound on the encoded size of `decoded_len` bytes, so that the chain can bound
    /// every intermediate decode by what the metadata allows.
    fn max_encoded_size(&self, decoded_len: usize) -> usize;
    /// The encoded size of any `decoded_len` bytes, for codecs whose output size does not
    /// depend on the data (checksums, shuffles); `None` for the others (compressors).
    fn fixed_encoded_size(&self, _decoded_len: usize) -> Option<usize> {
        None
    }
    fn name(&self) -> &'static str;
    fn metadata(&self) -> Value;
}

/// The bound on what `codec` encodes from at most `decoded_len` bytes, held at what one
/// allocation can hold: bounds only cap decoders, and those of vast shards (from metadata)
/// must not overflow in a chain of codecs that each add a little.
fn next_bound(codec: &dyn BytesToBytesCodec, decoded_len: usize) -> usize {
    codec
        .max_encoded_size(decoded_len.min(isize::MAX as usize))
        .min(isize::MAX as usize)
}

/// An error unless a decoded length is the expected one.
pub(crate) fn check_len(
    codec: &'static str,
    actual: usize,
    expected: usize,
) -> Result<(), CodecError> {
    if actual == expected {
        Ok(())
    } else {
        Err(CodecError::corrupt(
            codec,
            format!("decoded to {actual} bytes, expected {expected}"),
        ))
    }
}

/// A codec's `{name, configuration}` document.
pub fn codec_metadata(name: &str, configuration: Map<String, Value>) -> Value {
    let mut obj = Map::new();
    obj.insert("name".into(), Value::String(name.into()));
    if !configuration.is_empty() {
        obj.insert("configuration".into(), Value::Object(configuration));
    }
    Value::Object(obj)
}

/// Checks that a configuration holds only the given keys: unknown configuration is refused,
/// as an unknown codec would be.
pub(crate) fn check_config_keys(
    codec: &str,
    config: &Map<String, Value>,
    allowed: &[&str],
) -> Result<(), MetadataError> {
    for key in config.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(MetadataError::Invalid {
                field: format!("codecs[{codec}].configuration"),
                value: key.clone(),
                reason: "unknown configuration key".into(),
            });
        }
    }
    Ok(())
}

/// An error for a codec configuration value.
pub(crate) fn invalid_config(codec: &str, key: &str, value: &Value, reason: &str) -> MetadataError {
    MetadataError::invalid(
        &format!("codecs[{codec}].configuration.{key}"),
        value,
        reason,
    )
}

/// Fields of numcodecs codecs that zarr-python fills in from the array when they are not
/// given (and the engine does too).
const FROM_THE_ARRAY: [&str; 3] = ["elementsize", "dtype", "decode_dtype"];

/// `complete`, one codec's metadata as the engine writes it, in the form `given` had where
/// that is how zarr-python writes it: see [`CodecChain::metadata_for_new_array`].
fn as_given(given: &Value, complete: Value) -> Value {
    let name = complete
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // A codec given by its bare name, or under another name, is written complete.
    if given.get("name").and_then(Value::as_str) != Some(name) {
        return complete;
    }
    let config_of = |v: &Value| v.get("configuration").and_then(Value::as_object).cloned();
    if name == "sharding_indexed" {
        let (Some(given_config), Some(mut config)) = (config_of(given), config_of(&complete))
        else {
            return complete;
        };
        for field in ["codecs", "index_codecs"] {
            if let (Some(Value::Array(g)), Some(Value::Array(c))) =
                (given_config.get(field), config.get(field))
            {
                if g.len() == c.len() {
                    let inner = g.iter().zip(c.clone()).map(|(g, c)| as_given(g, c));
                    config.insert(field.into(), Value::Array(inner.collect()));
                }
            }
        }
        return serde_json::json!({"name": name, "configuration": config});
    }
    if !name.starts_with("numcodecs.") {
        return complete;
    }
    let mut config = match given.get("configuration") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(c)) => c.clone(),
        Some(_) => return complete,
    };
    if let Some(filled) = config_of(&complete) {
        for field in FROM_THE_ARRAY {
            if config.get(field).is_none_or(Value::is_null) {
                if let Some(value) = filled.get(field) {
                    config.insert(field.into(), value.clone());
                }
            }
        }
    }
    serde_json::json!({"name": name, "configuration": config})
}

/// One entry of a chain being built: codec metadata, or a serializer built already (the v2
/// byte-order serializer has no v3 metadata of its own). Metadata is borrowed: a nested
/// sharding codec builds its inner chains from its own part of the document, and a copy at
/// each level would cost the depth times the document.
enum Spec<'a> {
    Json(&'a Value),
    Serializer(Box<dyn ArrayToBytesCodec>),
    /// A v2 value filter after a filter on bytes (see `bytes_to_bytes::value_filter`).
    ValueFilterOnBytes(&'a Value),
}

/// The size of the values a v2 value filter given `codec` (v3 metadata) makes: its output
/// dtype's (`astype`, astype's `encode_dtype`), else its input's. `None` for other codecs.
fn value_filter_output_size(codec: &Value) -> Option<usize> {
    let name = codec.get("name").and_then(Value::as_str)?;
    if !VALUE_FILTERS.contains(&name) {
        return None;
    }
    let config = codec.get("configuration")?;
    ["astype", "encode_dtype", "dtype"]
        .iter()
        .filter_map(|key| config.get(*key).filter(|v| !v.is_null()))
        .find_map(|dtype| crate::metadata::numpy_dtype::parse(dtype).ok())
        .map(|dtype| dtype.data_type.size())
}

/// The v3 names of numcodecs' filters that work on values (array->array codecs).
const VALUE_FILTERS: [&str; 6] = [
    "numcodecs.delta",
    "numcodecs.fixedscaleoffset",
    "numcodecs.quantize",
    "numcodecs.astype",
    "numcodecs.packbits",
    "numcodecs.bitround",
];

enum AnyCodec {
    ArrayToArray(Box<dyn ArrayToArrayCodec>),
    ArrayToBytes(Box<dyn ArrayToBytesCodec>),
    BytesToBytes(Box<dyn BytesToBytesCodec>),
}

/// Builds one codec of a chain from its metadata; `decoded` is what it receives when encoding.
fn build_codec(value: &Value, decoded: &ChunkRepr) -> Result<AnyCodec, MetadataError> {
    use array_to_array::{
        astype::AsType, bitround::BitRound, delta::Delta, fixedscaleoffset::FixedScaleOffset,
        packbits::PackBits, quantize::Quantize, transpose::Transpose,
    };
    use array_to_bytes::bytes::Bytes;
    use array_to_bytes::sharding::Sharding;
    use bytes_to_bytes::checksum32::{Algorithm, Checksum32};
    use bytes_to_bytes::jenkins_lookup3::JenkinsLookup3;
    use bytes_to_bytes::numcodecs::NumcodecsAlias;
    use bytes_to_bytes::{
        blosc::Blosc, bz2::Bz2, crc32c::Crc32c, gzip::Gzip, lz4::Lz4, lzma::Lzma, shuffle::Shuffle,
        zlib::Zlib, zstd::Zstd,
    };
    let (name, config) = split_extension("codecs", value)?;
    Ok(match name {
        "transpose" => AnyCodec::ArrayToArray(Box::new(Transpose::from_config(
            &config,
            decoded.shape.len(),
        )?)),
        "bytes" => {
            AnyCodec::ArrayToBytes(Box::new(Bytes::from_config(&config, &decoded.data_type)?))
        }
        "vlen-utf8" | "vlen-bytes" => AnyCodec::ArrayToBytes(Box::new(
            array_to_bytes::vlen::Vlen::from_config(name, &config, &decoded.data_type)?,
        )),
        "sharding_indexed" => {
            AnyCodec::ArrayToBytes(Box::new(Sharding::from_config(&config, decoded)?))
        }
        "gzip" => AnyCodec::BytesToBytes(Box::new(Gzip::from_config(&config)?)),
        "zstd" => AnyCodec::BytesToBytes(Box::new(Zstd::from_config(&config)?)),
        "blosc" => {
            AnyCodec::BytesToBytes(Box::new(Blosc::from_config(&config, &decoded.data_type)?))
        }
        "crc32c" => AnyCodec::BytesToBytes(Box::new(Crc32c::from_config(&config)?)),
        // numcodecs codecs, under the names zarr-python gives them in v3.
        "numcodecs.delta" => {
            AnyCodec::ArrayToArray(Box::new(Delta::from_config(&config, decoded)?))
        }
        "numcodecs.fixedscaleoffset" => {
            AnyCodec::ArrayToArray(Box::new(FixedScaleOffset::from_config(&config, decoded)?))
        }
        "numcodecs.quantize" => {
            AnyCodec::ArrayToArray(Box::new(Quantize::from_config(&config, decoded)?))
        }
        "numcodecs.astype" => {
            AnyCodec::ArrayToArray(Box::new(AsType::from_config(&config, decoded)?))
        }
        "numcodecs.packbits" => {
            AnyCodec::ArrayToArray(Box::new(PackBits::from_config(&config, decoded)?))
        }
        // Also a zarr-extensions codec, with the same configuration.
        "bitround" | "numcodecs.bitround" => {
            let name = if name == "bitround" {
                "bitround"
            } else {
                "numcodecs.bitround"
            };
            AnyCodec::ArrayToArray(Box::new(BitRound::from_config(name, &config, decoded)?))
        }
        "numcodecs.zlib" => AnyCodec::BytesToBytes(Box::new(Zlib::from_config(&config)?)),
        "numcodecs.bz2" => AnyCodec::BytesToBytes(Box::new(Bz2::from_config(&config)?)),
        "numcodecs.lz4" => AnyCodec::BytesToBytes(Box::new(Lz4::from_config(&config)?)),
        "numcodecs.lzma" => AnyCodec::BytesToBytes(Box::new(Lzma::from_config(&config)?)),
        "numcodecs.shuffle" => {
            AnyCodec::BytesToBytes(Box::new(Shuffle::from_config(&config, &decoded.data_type)?))
        }
        "numcodecs.crc32" | "numcodecs.adler32" | "numcodecs.crc32c" | "numcodecs.fletcher32" => {
            let algorithm = match name {
                "numcodecs.crc32" => Algorithm::Crc32,
                "numcodecs.adler32" => Algorithm::Adler32,
                "numcodecs.crc32c" => Algorithm::Crc32c,
                _ => Algorithm::Fletcher32,
            };
            AnyCodec::BytesToBytes(Box::new(Checksum32::from_config(algorithm, &config)?))
        }
        "numcodecs.jenkins_lookup3" => {
            AnyCodec::BytesToBytes(Box::new(JenkinsLookup3::from_config(&config)?))
        }
        "numcodecs.zstd" => AnyCodec::BytesToBytes(Box::new(NumcodecsAlias::zstd(&config)?)),
        "numcodecs.gzip" => AnyCodec::BytesToBytes(Box::new(NumcodecsAlias::gzip(&config)?)),
        "numcodecs.blosc" => AnyCodec::BytesToBytes(Box::new(NumcodecsAlias::blosc(&config)?)),
        _ => return Err(MetadataError::unsupported("codec", value)),
    })
}

/// A parsed, validated codec chain for chunks of one representation.
#[derive(Debug)]
pub struct CodecChain {
    array_to_array: Vec<Box<dyn ArrayToArrayCodec>>,
    array_to_bytes: Box<dyn ArrayToBytesCodec>,
    bytes_to_bytes: Vec<Box<dyn BytesToBytesCodec>>,
    /// `reprs[i]` is what array→array codec `i` receives when encoding; the last entry is what
    /// the array→bytes codec receives.
    reprs: Vec<ChunkRepr>,
    /// `bounds[i]` is the most bytes that bytes→bytes codec `i` may decode to.
    bounds: Vec<usize>,
    /// The array→bytes codec leaves the bytes as they are (native byte order), so the first
    /// bytes→bytes codec can decode straight into the array its output is.
    bytes_direct: bool,
    /// Stored bytes can be decoded straight into the caller's buffer by the first bytes→bytes
    /// codec (or copied, if there is none): `bytes_direct` with no array→array codec.
    direct: bool,
}

impl CodecChain {
    /// Builds the chain from the `codecs` list of the metadata, for chunks of `repr`.
    pub fn from_metadata(codecs: &[Value], repr: &ChunkRepr) -> Result<Self, MetadataError> {
        let specs = codecs.iter().map(Spec::Json).collect();
        Self::assemble(specs, codecs, repr)
    }

    /// Builds the chain of a v2 array: its filters and compressor under their v3 names around
    /// a serializer that writes the dtype's byte order (per field, for records).
    pub fn from_v2(
        metadata: &crate::metadata::ArrayMetadataV2,
        repr: &ChunkRepr,
    ) -> Result<Self, MetadataError> {
        Self::v2(metadata, repr, true)
    }

    /// The chain of [`from_v2`](Self::from_v2) for chunks decoded in the byte order they are
    /// stored in: its serializer copies the elements' bytes as they are. Only for arrays
    /// whose elements nothing but the serializer swaps (see
    /// [`ArrayMetadataV2::swaps_only_in_serializer`]): value filters compute with the
    /// machine's byte order. `repr` is then the chunk of elements in that order.
    ///
    /// [`ArrayMetadataV2::swaps_only_in_serializer`]:
    ///     crate::metadata::ArrayMetadataV2::swaps_only_in_serializer
    pub fn from_v2_in_stored_byte_order(
        metadata: &crate::metadata::ArrayMetadataV2,
        repr: &ChunkRepr,
    ) -> Result<Self, MetadataError> {
        if !metadata.swaps_only_in_serializer() {
            return Err(MetadataError::invalid(
                "dtype",
                &metadata.dtype_json,
                "its elements are read in the machine's byte order: they are stored in it, \
                 have no one byte order, or filters compute with their values",
            ));
        }
        Self::v2(metadata, repr, false)
    }

    /// [`from_v2`](Self::from_v2), with a serializer that swaps the elements into the
    /// machine's byte order if `swap`, else leaves them in the stored order.
    fn v2(
        metadata: &crate::metadata::ArrayMetadataV2,
        repr: &ChunkRepr,
        swap: bool,
    ) -> Result<Self, MetadataError> {
        let (array_to_array, object_codec, mut bytes_to_bytes) = metadata.codecs_v3()?;
        // numcodecs' Blosc takes its typesize from the buffer it is given: after a filter that
        // works on bytes (shuffle, a checksum), that is a uint8 buffer, so typesize 1; after a
        // value filter, the values it made. The same here keeps the compressed bytes identical
        // to numcodecs'.
        for i in 1..bytes_to_bytes.len() {
            if bytes_to_bytes[i].get("name").and_then(Value::as_str) != Some("blosc") {
                continue;
            }
            let typesize = value_filter_output_size(&bytes_to_bytes[i - 1]).unwrap_or(1);
            if let Some(config) = bytes_to_bytes[i]
                .get_mut("configuration")
                .and_then(Value::as_object_mut)
            {
                config.entry("typesize").or_insert(Value::from(typesize));
            }
        }
        let mut specs: Vec<Spec> = array_to_array.iter().map(Spec::Json).collect();
        specs.push(match &object_codec {
            Some(codec) => Spec::Json(codec),
            None => {
                let stored = metadata.stored_dtype()?;
                let plan = if swap { stored.swap_plan() } else { Vec::new() };
                Spec::Serializer(Box::new(array_to_bytes::bytes::Bytes::with_swap_plan(
                    &stored.data_type,
                    plan,
                )))
            }
        });
        // Value filters among them come after a filter on bytes or an object codec: they
        // filter the bytes they are given, as numcodecs does.
        specs.extend(bytes_to_bytes.iter().map(|codec| {
            match codec.get("name").and_then(Value::as_str) {
                Some(name) if VALUE_FILTERS.contains(&name) => Spec::ValueFilterOnBytes(codec),
                _ => Spec::Json(codec),
            }
        }));
        // (A v2 chain is a few small documents: copied whole for the errors that name it.)
        let all: Vec<Value> = array_to_array
            .iter()
            .chain(&bytes_to_bytes)
            .cloned()
            .collect();
        Self::assemble(specs, &all, repr)
    }

    fn assemble(
        specs: Vec<Spec>,
        codecs: &[Value],
        repr: &ChunkRepr,
    ) -> Result<Self, MetadataError> {
        let mut array_to_array = Vec::new();
        let mut array_to_bytes = None;
        let mut bytes_to_bytes = Vec::new();
        check_addressable(repr)?;
        let mut reprs = vec![repr.clone()];
        let serializer_name = Value::String("bytes".into());
        for spec in specs {
            let current = reprs.last().unwrap_or(repr).clone();
            let (codec, value) = match spec {
                Spec::Json(value) => (build_codec(value, &current)?, value),
                Spec::Serializer(codec) => (AnyCodec::ArrayToBytes(codec), &serializer_name),
                Spec::ValueFilterOnBytes(value) => {
                    let filter = bytes_to_bytes::value_filter::ValueFilterOnBytes::from_metadata(
                        value,
                        |values| match build_codec(value, values)? {
                            AnyCodec::ArrayToArray(filter) => Ok(filter),
                            _ => Err(MetadataError::unsupported("codec", value)),
                        },
                    )?;
                    (AnyCodec::BytesToBytes(Box::new(filter)), value)
                }
            };
            match codec {
                AnyCodec::ArrayToArray(c) => {
                    if array_to_bytes.is_some() {
                        return Err(MetadataError::invalid(
                            "codecs",
                            value,
                            "an array->array codec cannot follow the array->bytes codec",
                        ));
                    }
                    let encoded = c.encoded_repr(&current);
                    check_addressable(&encoded)?;
                    reprs.push(encoded);
                    array_to_array.push(c);
                }
                AnyCodec::ArrayToBytes(c) => {
                    if array_to_bytes.is_some() {
                        return Err(MetadataError::invalid(
                            "codecs",
                            value,
                            "a chain holds exactly one array->bytes codec",
                        ));
                    }
                    array_to_bytes = Some(c);
                }
                AnyCodec::BytesToBytes(c) => {
                    if array_to_bytes.is_none() {
                        return Err(MetadataError::invalid(
                            "codecs",
                            value,
                            "a bytes->bytes codec must follow the array->bytes codec",
                        ));
                    }
                    bytes_to_bytes.push(c);
                }
            }
        }
        let array_to_bytes = array_to_bytes.ok_or_else(|| {
            MetadataError::invalid(
                "codecs",
                &Value::Array(codecs.to_vec()),
                "a chain needs an array->bytes codec (e.g. bytes)",
            )
        })?;
        let last = reprs.last().unwrap_or(repr);
        let mut bounds = Vec::with_capacity(bytes_to_bytes.len());
        let mut bound = array_to_bytes.max_encoded_size(last);
        for codec in &bytes_to_bytes {
            bounds.push(bound);
            bound = next_bound(codec.as_ref(), bound);
        }
        let bytes_direct = array_to_bytes.is_passthrough(last);
        let direct = array_to_array.is_empty() && bytes_direct;
        Ok(Self {
            array_to_array,
            array_to_bytes,
            bytes_to_bytes,
            reprs,
            bounds,
            bytes_direct,
            direct,
        })
    }

    /// The representation of the decoded chunks.
    pub fn decoded_repr(&self) -> &ChunkRepr {
        &self.reprs[0]
    }

    /// Whether stored chunks are the decoded bytes themselves (no codec changes them).
    pub fn is_passthrough(&self) -> bool {
        self.direct && self.bytes_to_bytes.is_empty()
    }

    /// Shards encoded by this chain keep their inner chunks that hold only the fill value,
    /// as zarr-python's do with `write_empty_chunks=True` (its codec pipeline is given
    /// whole shards to encode, with that setting).
    pub fn keep_empty_inner_chunks(&mut self) {
        self.array_to_bytes.keep_empty_inner_chunks();
    }

    /// The sharding codec, when it is the whole chain (as zarr-python writes sharded arrays):
    /// then shards can be read and written in part.
    pub fn sharding(&self) -> Option<&array_to_bytes::sharding::Sharding> {
        if self.array_to_array.is_empty() && self.bytes_to_bytes.is_empty() {
            self.array_to_bytes.as_sharding()
        } else {
            None
        }
    }

    /// An upper bound on the stored size of a chunk.
    pub fn max_encoded_size(&self) -> usize {
        let last = &self.reprs[self.reprs.len() - 1];
        self.bytes_to_bytes
            .iter()
            .fold(self.array_to_bytes.max_encoded_size(last), |n, c| {
                next_bound(c.as_ref(), n)
            })
    }

    /// The stored size of every chunk, when no codec's output size depends on the data (a
    /// shard index's chain must be so); `None` otherwise, or if it would overflow.
    pub fn fixed_encoded_size(&self) -> Option<usize> {
        let last = &self.reprs[self.reprs.len() - 1];
        self.bytes_to_bytes
            .iter()
            .try_fold(self.array_to_bytes.fixed_encoded_size(last)?, |n, c| {
                c.fixed_encoded_size(n)
            })
    }

    /// The chain's metadata, as it is written to zarr.json.
    pub fn metadata(&self) -> Vec<Value> {
        self.array_to_array
            .iter()
            .map(|c| c.metadata())
            .chain(std::iter::once(self.array_to_bytes.metadata()))
            .chain(self.bytes_to_bytes.iter().map(|c| c.metadata()))
            .collect()
    }

    /// The chain's metadata for a new array made from `given`: as [`Self::metadata`], except
    /// that numcodecs codecs (`numcodecs.*`, also inside shards) keep the configuration they
    /// were given, with only the fields taken from the array added (a shuffle's element size,
    /// a filter's data type), as zarr-python writes them; their other defaults stay unwritten,
    /// so that zarr.json is the same bytes from either library.
    pub fn metadata_for_new_array(&self, given: &[Value]) -> Vec<Value> {
        let complete = self.metadata();
        if given.len() != complete.len() {
            return complete;
        }
        given
            .iter()
            .zip(complete)
            .map(|(given, complete)| as_given(given, complete))
            .collect()
    }

    /// Encodes a decoded chunk (C order, native endian) into its stored bytes.
    pub fn encode<'a>(&self, data: &'a [u8]) -> Result<Cow<'a, [u8]>, CodecError> {
        self.encode_with(data, false)
    }

    /// As [`Self::encode`]; with `keep_empty_inner`, shards keep their inner chunks that hold
    /// only the fill value, at every level, as zarr-python's do when it encodes a whole shard
    /// with `write_empty_chunks=True`.
    pub fn encode_with<'a>(
        &self,
        data: &'a [u8],
        keep_empty_inner: bool,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        check_len("codec chain", data.len(), self.reprs[0].nbytes())?;
        let mut array: Cow<'a, [u8]> = Cow::Borrowed(data);
        for (codec, repr) in self.array_to_array.iter().zip(&self.reprs) {
            array = Cow::Owned(codec.encode(&array, repr)?);
        }
        let last = &self.reprs[self.reprs.len() - 1];
        let mut bytes = if keep_empty_inner {
            self.array_to_bytes.encode_keeping_empty(array, last)?
        } else {
            self.array_to_bytes.encode(array, last)?
        };
        for codec in &self.bytes_to_bytes {
            bytes = Cow::Owned(codec.encode(&bytes)?);
        }
        Ok(bytes)
    }

    /// The permutation the array→array codecs apply to the elements of a chunk: element `i`
    /// of the encoded chunk is element `perm[i]` of the decoded one. Only codecs that move
    /// elements without changing them (transpose) can stand before a vlen codec.
    fn vlen_permutation(&self) -> Result<Option<Vec<u32>>, CodecError> {
        if self.array_to_array.is_empty() {
            return Ok(None);
        }
        let decoded = &self.reprs[0];
        let n = decoded.num_elements() as usize;
        let mut indices: Vec<u8> = (0..n as u32).flat_map(|i| i.to_ne_bytes()).collect();
        let mut repr = ChunkRepr::new(decoded.shape.clone(), DataType::UInt32);
        for codec in &self.array_to_array {
            indices = codec.encode(&indices, &repr)?;
            repr = codec.encoded_repr(&repr);
        }
        Ok(Some(
            indices
                .chunks_exact(4)
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ))
    }

    /// Encodes a chunk of variable-length elements (C order).
    pub fn encode_vlen(
        &self,
        chunk: &array_to_bytes::vlen::VlenChunk,
    ) -> Result<Vec<u8>, CodecError> {
        self.encode_vlen_with(chunk, false)
    }

    /// As [`Self::encode_vlen`]; with `keep_empty_inner`, as [`Self::encode_with`].
    pub fn encode_vlen_with(
        &self,
        chunk: &array_to_bytes::vlen::VlenChunk,
        keep_empty_inner: bool,
    ) -> Result<Vec<u8>, CodecError> {
        let permuted;
        let chunk = match self.vlen_permutation()? {
            Some(perm) => {
                permuted = array_to_bytes::vlen::VlenChunk::from_elements(
                    perm.iter().map(|&i| chunk.get(i as usize)),
                );
                &permuted
            }
            None => chunk,
        };
        let last = &self.reprs[self.reprs.len() - 1];
        let mut bytes = if keep_empty_inner {
            self.array_to_bytes.encode_vlen_keeping_empty(chunk, last)?
        } else {
            self.array_to_bytes.encode_vlen(chunk, last)?
        };
        for codec in &self.bytes_to_bytes {
            bytes = codec.encode(&bytes)?;
        }
        Ok(bytes)
    }

    /// Decodes a chunk of variable-length elements (C order).
    pub fn decode_vlen(
        &self,
        encoded: &[u8],
    ) -> Result<array_to_bytes::vlen::VlenChunk, CodecError> {
        let mut bytes: Cow<'_, [u8]> = Cow::Borrowed(encoded);
        for (i, codec) in self.bytes_to_bytes.iter().enumerate().rev() {
            bytes = codec.decode(bytes, self.bounds[i])?;
        }
        let last = &self.reprs[self.reprs.len() - 1];
        let chunk = self.array_to_bytes.decode_vlen(&bytes, last)?;
        Ok(match self.vlen_permutation()? {
            Some(perm) => {
                let mut order = vec![0usize; perm.len()];
                for (encoded_at, &decoded_at) in perm.iter().enumerate() {
                    order[decoded_at as usize] = encoded_at;
                }
                array_to_bytes::vlen::VlenChunk::from_elements(order.iter().map(|&i| chunk.get(i)))
            }
            None => chunk,
        })
    }

    /// Decodes into `out` (the whole decoded chunk's size) at least the elements of box
    /// `part`, the part of the chunk a read needs; the rest of `out` is left unspecified.
    /// A compressor over the chunk's bytes as they are may stop after the box's last byte;
    /// behind a transpose, it may stop after the last byte of the box's encoded place, and
    /// only the box is put back in order. Other chains decode the whole chunk.
    pub fn decode_part_into(
        &self,
        encoded: &[u8],
        out: &mut [u8],
        part: &ChunkBox,
    ) -> Result<(), CodecError> {
        check_len("codec chain", out.len(), self.reprs[0].nbytes())?;
        let decoded = &self.reprs[0];
        if !box_fits(part, &decoded.shape) {
            return self.decode_into(encoded, out);
        }
        match self.array_to_array.as_slice() {
            [] => self.decode_array_part_into(encoded, out, part),
            [codec] => scratch::with(&ARRAY, |array| {
                let last = &self.reprs[1];
                alloc::resize(array, last.nbytes())?;
                match codec.encoded_box(part) {
                    Some(encoded_part) if box_fits(&encoded_part, &last.shape) => {
                        self.decode_array_part_into(encoded, array, &encoded_part)?
                    }
                    _ => self.decode_array_into(encoded, array)?,
                }
                codec.decode_box_into(array, decoded, out, part)
            }),
            _ => self.decode_into(encoded, out),
        }
    }

    /// Decodes stored bytes through the bytes→bytes codecs and the array→bytes codec into
    /// `out` (the array the array→array codecs receive), at least the elements of box `part`
    /// of it.
    fn decode_array_part_into(
        &self,
        encoded: &[u8],
        out: &mut [u8],
        part: &ChunkBox,
    ) -> Result<(), CodecError> {
        let last = &self.reprs[self.reprs.len() - 1];
        match self.bytes_to_bytes.as_slice() {
            [compressor] if self.bytes_direct => {
                let range = box_byte_range(part, &last.shape, last.data_type.size());
                compressor.decode_range_into(encoded, out, range)
            }
            _ => self.decode_array_into(encoded, out),
        }
    }

    /// Whether decoding a stored chunk is split between threads by one of the chain's codecs
    /// (judged by the decoded chunk's size, which a compressor's decoded bytes are): the store
    /// may then read the chunk on several threads too.
    pub fn decodes_in_parallel(&self) -> bool {
        let decoded_len = self.reprs[0].nbytes();
        self.bytes_to_bytes
            .iter()
            .any(|c| c.decodes_in_parallel(decoded_len))
    }

    /// Whether `decode_into_rows` may write rows: one compressor over the chunk's bytes as they
    /// are, which can. Callers ask before gathering the rows.
    pub fn writes_rows(&self) -> bool {
        match self.bytes_to_bytes.as_slice() {
            [compressor] => self.direct && compressor.writes_rows(),
            _ => false,
        }
    }

    /// Decodes a whole stored chunk straight into `rows` when the chain is one compressor over
    /// the chunk's bytes as they are and that compressor can (see
    /// `BytesToBytesCodec::decode_into_rows`); `Ok(false)`, having written nothing, otherwise.
    pub fn decode_into_rows(
        &self,
        encoded: &[u8],
        rows: &ChunkRows<'_>,
    ) -> Result<bool, CodecError> {
        match self.bytes_to_bytes.as_slice() {
            [compressor] if self.direct && rows.nbytes() == self.reprs[0].nbytes() => {
                compressor.decode_into_rows(encoded, rows)
            }
            _ => Ok(false),
        }
    }

    /// Decodes stored bytes into `out` (C order, native endian, exactly the decoded chunk's
    /// size).
    pub fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        check_len("codec chain", out.len(), self.reprs[0].nbytes())?;
        if self.array_to_array.is_empty() {
            return self.decode_array_into(encoded, out);
        }
        // The array the array->bytes codec gives, in this thread's reused buffer: a chunk
        // read in part is decoded whole again and again, and a fresh buffer for each would
        // be mapped and faulted in page by page.
        scratch::with(&ARRAY, |array| {
            let last = &self.reprs[self.reprs.len() - 1];
            alloc::resize(array, last.nbytes())?;
            self.decode_array_into(encoded, array)?;
            let mut stages = self.array_to_array.iter().zip(&self.reprs).rev();
            // `stages` holds at least one codec: the last is put back into `out`.
            let first = stages.next_back();
            for (codec, repr) in stages {
                let mut next = alloc::zeroed(repr.nbytes())?;
                codec.decode_into(array, repr, &mut next)?;
                *array = next;
            }
            match first {
                Some((codec, repr)) => codec.decode_into(array, repr, out),
                None => Err(CodecError::corrupt("codec chain", "no array->array codec")),
            }
        })
    }

    /// Decodes stored bytes through the bytes→bytes codecs and the array→bytes codec into
    /// `out`, the array the array→array codecs receive (exactly its size).
    fn decode_array_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let last = &self.reprs[self.reprs.len() - 1];
        let mut bytes: Cow<'_, [u8]> = Cow::Borrowed(encoded);
        for (i, codec) in self.bytes_to_bytes.iter().enumerate().rev() {
            if i == 0 && self.bytes_direct {
                return codec.decode_into(&bytes, out);
            }
            bytes = codec.decode(bytes, self.bounds[i])?;
        }
        self.array_to_bytes.decode_into(&bytes, last, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(codecs: Value, shape: &[u64], dt: DataType) -> Result<CodecChain, MetadataError> {
        CodecChain::from_metadata(
            codecs.as_array().unwrap(),
            &ChunkRepr::new(shape.to_vec(), dt),
        )
    }

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| ((i * 7) % 251) as u8).collect()
    }

    #[test]
    fn chunks_no_allocation_holds_are_refused_before_their_size_overflows() {
        let bytes = json!({"name": "bytes", "configuration": {"endian": "little"}});
        let shard = |inner: &[u64]| {
            json!([{"name": "sharding_indexed", "configuration": {
                "chunk_shape": inner, "codecs": [bytes], "index_codecs": [bytes]}}])
        };
        let cases = [
            (json!([bytes]), vec![1u64 << 63], DataType::Float64),
            (json!([bytes]), vec![1 << 32, 1 << 32], DataType::UInt8),
            (json!([bytes]), vec![1 << 60], DataType::UInt64),
            (shard(&[1 << 63]), vec![1 << 63], DataType::Float64),
            // 2^62 inner chunks: their index would be 2^66 bytes.
            (shard(&[1]), vec![1 << 62], DataType::UInt8),
        ];
        for (codecs, shape, dt) in cases {
            match chain(codecs, &shape, dt) {
                Err(MetadataError::Invalid { field, .. }) => assert_eq!(field, "chunk_shape"),
                other => panic!("{shape:?}: {other:?}"),
            }
        }
        assert!(chain(shard(&[1 << 61]), &[1 << 62], DataType::UInt8).is_ok());
        // The largest that could be allocated is still valid metadata.
        assert!(chain(json!([bytes]), &[(isize::MAX as u64) / 8], DataType::UInt64).is_ok());
    }

    #[test]
    fn part_of_a_chunk_decodes_as_the_whole_does_there() -> Result<(), Box<dyn std::error::Error>> {
        // 512 KiB: zstd frames of four blocks, so a zstd decode can stop after the first ones.
        let shape = [64u64, 64, 32];
        let t = json!({"name": "transpose", "configuration": {"order": [2, 0, 1]}});
        let le = json!({"name": "bytes", "configuration": {"endian": "little"}});
        let be = json!({"name": "bytes", "configuration": {"endian": "big"}});
        let zstd = json!({"name": "zstd", "configuration": {"level": 1, "checksum": false}});
        let gzip = json!({"name": "gzip", "configuration": {"level": 1}});
        let chains = [
            json!([le, zstd]),
            json!([t, le, zstd]),
            json!([t, be, zstd]),
            json!([t, le, gzip]),
            json!([t, le]),
            json!([t, t, le, zstd]),
        ];
        let strides = [shape[1] * shape[2], shape[2], 1];
        for codecs in chains {
            let c = chain(codecs.clone(), &shape, DataType::UInt32)?;
            let data = sample(c.decoded_repr().nbytes());
            let stored = c.encode(&data)?;
            let span = BoxRange::span;
            let stepped = |first, last, step| BoxRange { first, last, step };
            let parts = [
                vec![span(3, 3), span(7, 7), span(5, 5)],
                // Early in the decoded chunk, late in the transposed one.
                vec![span(20, 20), span(7, 7), span(30, 30)],
                vec![span(0, 63), span(0, 63), span(0, 31)],
                vec![span(2, 20), span(9, 9), span(0, 31)],
                vec![span(63, 63), span(63, 63), span(31, 31)],
                vec![stepped(1, 61, 2), stepped(0, 63, 3), stepped(5, 29, 4)],
                // Not a box of the chunk: decoded whole.
                vec![span(0, 64), span(0, 0), span(0, 0)],
            ];
            for part in parts {
                let mut out = vec![0u8; data.len()];
                c.decode_part_into(&stored, &mut out, &part)?;
                let fits = part.iter().zip(&shape).all(|(p, &n)| p.last < n);
                for e in 0..data.len() / 4 {
                    let index = [0, 1, 2].map(|d| e as u64 / strides[d] % shape[d]);
                    let inside = (0..3).all(|d| {
                        let r = part[d];
                        r.first <= index[d]
                            && index[d] <= r.last
                            && (index[d] - r.first) % r.step == 0
                    });
                    if inside || !fits {
                        assert_eq!(
                            out[e * 4..e * 4 + 4],
                            data[e * 4..e * 4 + 4],
                            "{codecs} {part:?}"
                        );
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn chains_round_trip() {
        let chains = [
            json!([{"name": "bytes", "configuration": {"endian": "little"}}]),
            json!([{"name": "bytes", "configuration": {"endian": "big"}}, {"name": "crc32c"}]),
            json!([{"name": "transpose", "configuration": {"order": [2, 0, 1]}},
                   {"name": "bytes", "configuration": {"endian": "big"}},
                   {"name": "zstd", "configuration": {"level": 3, "checksum": true}},
                   {"name": "crc32c"}]),
            json!([{"name": "transpose", "configuration": {"order": [1, 0, 2]}},
                   {"name": "transpose", "configuration": {"order": [2, 1, 0]}},
                   {"name": "bytes", "configuration": {"endian": "little"}},
                   {"name": "gzip", "configuration": {"level": 5}},
                   {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5,
                    "shuffle": "bitshuffle", "typesize": 4, "blocksize": 0}}]),
            json!([{"name": "bytes", "configuration": {"endian": "little"}},
                   {"name": "blosc", "configuration": {"cname": "zstd", "clevel": 1,
                    "shuffle": "shuffle", "typesize": 4, "blocksize": 0}},
                   {"name": "zstd", "configuration": {"level": -1, "checksum": false}}]),
        ];
        for codecs in chains {
            let c = chain(codecs.clone(), &[3, 4, 5], DataType::Float32).unwrap();
            let data = sample(3 * 4 * 5 * 4);
            let enc = c.encode(&data).unwrap().into_owned();
            let mut out = vec![0u8; data.len()];
            c.decode_into(&enc, &mut out).unwrap();
            assert_eq!(out, data, "{codecs}");
            assert_eq!(
                chain(Value::Array(c.metadata()), &[3, 4, 5], DataType::Float32)
                    .unwrap()
                    .metadata(),
                c.metadata()
            );
        }
    }

    #[test]
    fn large_blosc_chunks_are_decoded_in_parallel() -> Result<(), MetadataError> {
        let bytes = json!({"name": "bytes", "configuration": {"endian": "little"}});
        let blosc = json!({"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5,
                           "shuffle": "shuffle", "typesize": 2, "blocksize": 0}});
        let zstd = json!({"name": "zstd", "configuration": {"level": 3, "checksum": false}});
        // (codecs, chunk shape of uint16, decoded in parallel)
        let cases = [
            (json!([bytes, blosc]), [64, 64, 64], true),
            (
                json!([bytes, blosc, {"name": "crc32c"}]),
                [64, 64, 64],
                true,
            ),
            // 128 KiB: one thread decodes it.
            (json!([bytes, blosc]), [32, 32, 64], false),
            (json!([bytes, zstd]), [64, 64, 64], false),
            (json!([bytes]), [64, 64, 64], false),
        ];
        for (codecs, shape, parallel) in cases {
            let c = chain(codecs.clone(), &shape, DataType::UInt16)?;
            assert_eq!(c.decodes_in_parallel(), parallel, "{codecs} {shape:?}");
        }
        Ok(())
    }

    #[test]
    fn invalid_chains_are_refused() {
        let bad = [
            json!([]),
            json!([{"name": "zstd"}]),
            json!([{"name": "bytes", "configuration": {"endian": "little"}},
                   {"name": "bytes", "configuration": {"endian": "little"}}]),
            json!([{"name": "bytes", "configuration": {"endian": "little"}},
                   {"name": "transpose", "configuration": {"order": [0, 1, 2]}}]),
            json!([{"name": "no-such-codec"}, {"name": "bytes"}]),
            json!([{"name": "bytes"}]),
            json!([{"name": "bytes", "configuration": {"endian": "middle"}}]),
        ];
        for codecs in bad {
            assert!(
                chain(codecs.clone(), &[3, 4, 5], DataType::Int16).is_err(),
                "{codecs}"
            );
        }
        // One-byte types need no endian.
        assert!(chain(json!([{"name": "bytes"}]), &[3], DataType::UInt8).is_ok());
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        let c = chain(
            json!([{"name": "bytes", "configuration": {"endian": "little"}},
                   {"name": "zstd", "configuration": {"level": 1, "checksum": false}}]),
            &[100],
            DataType::Int32,
        )
        .unwrap();
        let mut out = vec![0u8; 400];
        for input in [&b""[..], b"garbage", &[0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0]] {
            assert!(c.decode_into(input, &mut out).is_err());
        }
        // A valid frame of the wrong size is refused too.
        let small = zstd::bulk::compress(&[1u8; 40], 1).unwrap();
        assert!(c.decode_into(&small, &mut out).is_err());
        let big = zstd::bulk::compress(&[1u8; 4000], 1).unwrap();
        assert!(c.decode_into(&big, &mut out).is_err());
    }
}
