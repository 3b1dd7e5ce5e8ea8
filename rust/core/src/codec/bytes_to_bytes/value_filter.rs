//! A numcodecs value filter (`delta`, `fixedscaleoffset`, `quantize`, `astype`) that a Zarr v2
//! chain applies after a filter working on bytes (`shuffle`, a checksum) or after an object
//! codec. numcodecs hands each filter the buffer the one before it left, and a value filter
//! views that buffer as its own dtype (`dtype`, or astype's `decode_dtype`), in that dtype's
//! byte order, whatever the array's dtype. So here the bytes are taken as a one-dimensional
//! chunk of that type, filtered as the filter filters a chunk, and written in the byte order of
//! the type it encodes to. zarr-python writes and reads such chains (`[Shuffle, Delta]`, say).

use std::borrow::Cow;

use serde_json::Value;

use crate::codec::{ArrayToArrayCodec, BytesToBytesCodec, ChunkRepr};
use crate::error::{CodecError, MetadataError};
use crate::metadata::data_type::{swap_in_place, SwapRun};
use crate::metadata::v3::split_extension;
use crate::metadata::{numpy_dtype, DataType};

/// One side of the filter: the type its values have, and the units of each value stored in
/// the other byte order than the machine's.
#[derive(Debug, Clone)]
struct Side {
    data_type: DataType,
    swap: Vec<SwapRun>,
}

impl Side {
    fn parse(name: &str, key: &str, value: &Value) -> Result<Self, MetadataError> {
        let dtype = numpy_dtype::parse(value)?;
        if !dtype.data_type.is_numeric() {
            return Err(MetadataError::invalid(
                &format!("codecs[{name}].configuration.{key}"),
                value,
                "expected the numpy dtype of a boolean, integer or float",
            ));
        }
        Ok(Self {
            swap: dtype.swap_plan(),
            data_type: dtype.data_type,
        })
    }

    /// Turns values between their stored byte order and the machine's (either way).
    fn swap(&self, bytes: &mut [u8]) {
        if self.swap.is_empty() {
            return;
        }
        for element in bytes.chunks_exact_mut(self.data_type.size()) {
            swap_in_place(element, &self.swap);
        }
    }

    /// The number of values in `len` bytes, which must be whole values.
    fn count(&self, name: &'static str, len: usize) -> Result<usize, CodecError> {
        let size = self.data_type.size();
        if len % size != 0 {
            return Err(CodecError::corrupt(
                name,
                format!("{len} bytes are not a whole number of {size}-byte values"),
            ));
        }
        Ok(len / size)
    }
}

#[derive(Debug)]
pub struct ValueFilterOnBytes {
    name: &'static str,
    filter: Box<dyn ArrayToArrayCodec>,
    decoded: Side,
    encoded: Side,
    metadata: Value,
}

impl ValueFilterOnBytes {
    /// The filter of v3 metadata `value` (a `numcodecs.*` codec, as the v2 reader names it),
    /// built by `build` for chunks of the type it names.
    pub fn from_metadata(
        value: &Value,
        build: impl FnOnce(&ChunkRepr) -> Result<Box<dyn ArrayToArrayCodec>, MetadataError>,
    ) -> Result<Self, MetadataError> {
        let (name, config) = split_extension("codecs", value)?;
        let (name, input, output): (&'static str, &str, &str) = match name {
            "numcodecs.delta" => ("numcodecs.delta", "dtype", "astype"),
            "numcodecs.fixedscaleoffset" => ("numcodecs.fixedscaleoffset", "dtype", "astype"),
            "numcodecs.quantize" => ("numcodecs.quantize", "dtype", "astype"),
            "numcodecs.astype" => ("numcodecs.astype", "decode_dtype", "encode_dtype"),
            _ => {
                return Err(MetadataError::Unsupported {
                    field: format!("filters[{name}]"),
                    value: "after a filter that works on bytes (shuffle, a checksum) or an \
                            object codec"
                        .into(),
                })
            }
        };
        let given = config.get(input).filter(|v| !v.is_null()).ok_or_else(|| {
            MetadataError::missing(&format!("codecs[{name}].configuration.{input}"))
        })?;
        let decoded = Side::parse(name, input, given)?;
        let values = ChunkRepr::new(vec![0], decoded.data_type.clone());
        let filter = build(&values)?;
        let encoded_type = filter.encoded_repr(&values).data_type;
        // The encoded values' byte order is the output dtype's as written (the input's when
        // there is none); their type is the filter's own.
        let encoded = match config.get(output).filter(|v| !v.is_null()) {
            Some(v) => Side::parse(name, output, v)?,
            None => decoded.clone(),
        };
        let encoded = Side {
            data_type: encoded_type,
            ..encoded
        };
        Ok(Self {
            name,
            filter,
            decoded,
            encoded,
            metadata: value.clone(),
        })
    }

    fn repr(&self, n: usize) -> ChunkRepr {
        ChunkRepr::new(vec![n as u64], self.decoded.data_type.clone())
    }
}

impl BytesToBytesCodec for ValueFilterOnBytes {
    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        let n = self.decoded.count(self.name, decoded.len())?;
        let mut values = decoded.to_vec();
        self.decoded.swap(&mut values);
        let mut encoded = self.filter.encode(&values, &self.repr(n))?;
        self.encoded.swap(&mut encoded);
        Ok(encoded)
    }

    fn decode<'a>(
        &self,
        encoded: Cow<'a, [u8]>,
        max_decoded: usize,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        let n = self.encoded.count(self.name, encoded.len())?;
        let len = n.saturating_mul(self.decoded.data_type.size());
        if len > max_decoded {
            return Err(CodecError::TooLarge {
                codec: self.name,
                actual: len,
                limit: max_decoded,
            });
        }
        let mut values = encoded.into_owned();
        self.encoded.swap(&mut values);
        let mut out = crate::alloc::zeroed(len)?;
        self.filter.decode_into(&values, &self.repr(n), &mut out)?;
        self.decoded.swap(&mut out);
        Ok(Cow::Owned(out))
    }

    fn max_encoded_size(&self, decoded_len: usize) -> usize {
        self.fixed_encoded_size(decoded_len).unwrap_or(usize::MAX)
    }

    fn fixed_encoded_size(&self, decoded_len: usize) -> Option<usize> {
        let n = decoded_len.div_ceil(self.decoded.data_type.size());
        n.checked_mul(self.encoded.data_type.size())
    }

    fn name(&self) -> &'static str {
        self.name
    }

    fn metadata(&self) -> Value {
        self.metadata.clone()
    }
}
