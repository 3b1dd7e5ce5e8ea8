//! `vlen-utf8` and `vlen-bytes` (zarr-extensions codecs; v2 numcodecs ids `vlen-utf8`,
//! `vlen-bytes`): variable-length elements as a little-endian u32 count, then each element as
//! a u32 length and its bytes. Both write the same layout; the data type says whether the
//! bytes are UTF-8 text.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use crate::codec::{check_config_keys, ArrayToBytesCodec, ChunkRepr};
use crate::error::{CodecError, MetadataError};
use crate::metadata::DataType;

/// A chunk of variable-length elements, C order: element `i` is
/// `data[offsets[i]..offsets[i + 1]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VlenChunk {
    pub offsets: Vec<usize>,
    pub data: Vec<u8>,
}

impl VlenChunk {
    /// `n` copies of `element`, or an error when they cannot be held: `n` comes from the
    /// metadata (a chunk of 2^40 strings read where none is stored), and an infallible
    /// allocation of it aborted the process.
    pub fn filled(n: usize, element: &[u8]) -> Result<Self, CodecError> {
        let refused = |bytes: Option<usize>| CodecError::OutOfMemory {
            bytes: bytes.map_or(u64::MAX, |b| b as u64),
        };
        let data_bytes = n.checked_mul(element.len());
        let offsets_len = n.checked_add(1);
        let offset_bytes = offsets_len.and_then(|m| m.checked_mul(std::mem::size_of::<usize>()));
        let total = data_bytes
            .zip(offset_bytes)
            .and_then(|(a, b)| a.checked_add(b));
        let (Some(data_bytes), Some(offsets_len), Some(total)) = (data_bytes, offsets_len, total)
        else {
            return Err(refused(None));
        };
        crate::alloc::check_room(total)?;
        let mut data = Vec::new();
        let mut offsets = Vec::new();
        data.try_reserve_exact(data_bytes)
            .and_then(|()| offsets.try_reserve_exact(offsets_len))
            .map_err(|_| refused(Some(total)))?;
        offsets.push(0);
        for _ in 0..n {
            data.extend_from_slice(element);
            offsets.push(data.len());
        }
        Ok(Self { offsets, data })
    }

    /// A chunk of the given elements.
    pub fn from_elements<'a>(elements: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut chunk = Self {
            offsets: vec![0],
            data: Vec::new(),
        };
        for e in elements {
            chunk.push(e);
        }
        chunk
    }

    pub fn push(&mut self, element: &[u8]) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.data.extend_from_slice(element);
        self.offsets.push(self.data.len());
    }

    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, i: usize) -> &[u8] {
        &self.data[self.offsets[i]..self.offsets[i + 1]]
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// The vlen codec of a `string` or `bytes` array.
#[derive(Debug, Clone)]
pub struct Vlen {
    name: &'static str,
}

impl Vlen {
    pub fn from_config(
        name: &str,
        config: &Map<String, Value>,
        data_type: &DataType,
    ) -> Result<Self, MetadataError> {
        let name: &'static str = if name == "vlen-utf8" {
            "vlen-utf8"
        } else {
            "vlen-bytes"
        };
        check_config_keys(name, config, &[])?;
        if !data_type.is_variable() {
            return Err(MetadataError::invalid(
                "codecs",
                &Value::String(name.into()),
                format!("{name} encodes variable-length data, not {data_type}"),
            ));
        }
        Ok(Self { name })
    }

    fn corrupt(&self, reason: impl ToString) -> CodecError {
        CodecError::corrupt(self.name, reason)
    }
}

impl ArrayToBytesCodec for Vlen {
    fn encode<'a>(
        &self,
        _data: Cow<'a, [u8]>,
        _repr: &ChunkRepr,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        Err(self.corrupt("variable-length data goes through encode_vlen"))
    }

    fn decode_into(
        &self,
        _encoded: &[u8],
        _repr: &ChunkRepr,
        _out: &mut [u8],
    ) -> Result<(), CodecError> {
        Err(self.corrupt("variable-length data goes through decode_vlen"))
    }

    fn encode_vlen(&self, chunk: &VlenChunk, repr: &ChunkRepr) -> Result<Vec<u8>, CodecError> {
        let too_long = || CodecError::Encode {
            codec: self.name,
            reason: "an element or the element count exceeds 4 GiB".into(),
        };
        if self.name == "vlen-utf8" && repr.data_type == DataType::Bytes {
            // Bytes under vlen-utf8 (zarrs writes such arrays) must be UTF-8 text: other
            // bytes make chunks that zarr-python fails to decode.
            if let Some(i) = chunk.iter().position(|e| std::str::from_utf8(e).is_err()) {
                return Err(CodecError::Encode {
                    codec: self.name,
                    reason: format!(
                        "element {i} of the chunk is not UTF-8 text, which vlen-utf8 stores \
                         (use vlen-bytes for bytes that are not text)"
                    ),
                });
            }
        }
        let mut out = Vec::with_capacity(4 + 4 * chunk.len() + chunk.data.len());
        out.extend_from_slice(
            &u32::try_from(chunk.len())
                .map_err(|_| too_long())?
                .to_le_bytes(),
        );
        for element in chunk.iter() {
            out.extend_from_slice(
                &u32::try_from(element.len())
                    .map_err(|_| too_long())?
                    .to_le_bytes(),
            );
            out.extend_from_slice(element);
        }
        Ok(out)
    }

    fn decode_vlen(&self, encoded: &[u8], repr: &ChunkRepr) -> Result<VlenChunk, CodecError> {
        let expected = repr.num_elements() as usize;
        let read_u32 = |at: usize| -> Option<usize> {
            let b = encoded.get(at..at + 4)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        let count = read_u32(0).ok_or_else(|| self.corrupt("shorter than its element count"))?;
        if count != expected {
            return Err(self.corrupt(format!("holds {count} elements, the chunk {expected}")));
        }
        // Every element takes at least its 4-byte length: a count the bytes cannot hold is
        // refused before anything is allocated for it.
        if count > (encoded.len() - 4) / 4 {
            return Err(self.corrupt(format!(
                "{count} elements cannot fit in {} bytes",
                encoded.len()
            )));
        }
        let mut chunk = VlenChunk {
            offsets: Vec::with_capacity(count + 1),
            data: Vec::with_capacity(encoded.len() - 4 - 4 * count),
        };
        chunk.offsets.push(0);
        let mut at = 4;
        for i in 0..count {
            let len =
                read_u32(at).ok_or_else(|| self.corrupt(format!("element {i} is cut off")))?;
            let body = encoded
                .get(at + 4..at + 4 + len)
                .ok_or_else(|| self.corrupt(format!("element {i} is cut off")))?;
            chunk.push(body);
            at += 4 + len;
        }
        if at != encoded.len() {
            return Err(self.corrupt(format!(
                "{} bytes after the last element",
                encoded.len() - at
            )));
        }
        Ok(chunk)
    }

    fn max_encoded_size(&self, _repr: &ChunkRepr) -> usize {
        // Variable-length chunks have no bound from the metadata; decompressors below are
        // bounded by this instead (a chunk of text over 2 GiB is refused).
        i32::MAX as usize
    }

    fn metadata(&self) -> Value {
        // With an empty configuration, as zarr-python writes it, so that zarr.json documents
        // of string arrays are the same bytes from either library.
        json!({"name": self.name, "configuration": {}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() -> Result<(), CodecError> {
        let codec = Vlen::from_config("vlen-utf8", &Map::new(), &DataType::String).unwrap();
        let repr = ChunkRepr::new(vec![3], DataType::String);
        let chunk = VlenChunk::from_elements([&b"a"[..], b"", "é!".as_bytes()]);
        let enc = codec.encode_vlen(&chunk, &repr).unwrap();
        // The layout numcodecs writes: count, then (length, bytes) per element.
        assert_eq!(&enc[..8], &[3, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(codec.decode_vlen(&enc, &repr).unwrap(), chunk);
        for bad in [
            &enc[..enc.len() - 1],
            &enc[..2],
            &[9, 0, 0, 0][..],
            &[255, 255, 255, 127][..],
        ] {
            assert!(codec.decode_vlen(bad, &repr).is_err());
        }
        let mut extra = enc.clone();
        extra.push(0);
        assert!(codec.decode_vlen(&extra, &repr).is_err());
        assert!(Vlen::from_config("vlen-utf8", &Map::new(), &DataType::Int8).is_err());
        assert_eq!(
            VlenChunk::filled(2, b"xy")?.iter().collect::<Vec<_>>(),
            vec![b"xy", b"xy"]
        );
        // A count no memory holds is an error, not an abort.
        assert!(matches!(
            VlenChunk::filled(usize::MAX / 2, b"xy"),
            Err(CodecError::OutOfMemory { .. })
        ));
        assert!(matches!(
            VlenChunk::filled(1 << 40, b""),
            Err(CodecError::OutOfMemory { .. })
        ));
        Ok(())
    }
}
