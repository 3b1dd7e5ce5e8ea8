//! `bytes` (v3 core codec; v2 writes the byte order into the dtype instead): elements in C
//! order, little or big endian. Spec: zarr-specs v3.0, codecs/bytes.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::codec::{
    check_config_keys, check_len, codec_metadata, invalid_config, ArrayToBytesCodec, ChunkRepr,
};
use crate::error::{CodecError, MetadataError};
use crate::metadata::data_type::{swap_in_place, SwapRun};
use crate::metadata::DataType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    Little,
    Big,
}

impl Endian {
    pub const NATIVE: Self = if cfg!(target_endian = "little") {
        Self::Little
    } else {
        Self::Big
    };
}

#[derive(Debug, Clone)]
pub struct Bytes {
    /// The byte order the metadata gives: `None` for types without one (one-byte units),
    /// where it means nothing, and for records written without one (read little endian).
    endian: Option<Endian>,
    /// The runs of units of an element whose bytes are reversed between the stored and the
    /// decoded form (see [`DataType::swap_units`]); empty when they are the same.
    swap: Vec<SwapRun>,
    element_size: usize,
}

impl Bytes {
    /// For v2 arrays, whose dtype carries the byte order (per field, for records): `swap` is
    /// the plan from [`DataType::push_swap_units`].
    pub fn with_swap_plan(data_type: &DataType, swap: Vec<SwapRun>) -> Self {
        Self {
            endian: None,
            swap,
            element_size: data_type.size(),
        }
    }

    pub fn from_config(
        config: &Map<String, Value>,
        data_type: &DataType,
    ) -> Result<Self, MetadataError> {
        check_config_keys("bytes", config, &["endian"])?;
        if data_type.is_variable() {
            return Err(MetadataError::invalid(
                "codecs",
                &Value::String("bytes".into()),
                format!(
                    "bytes encodes fixed-size elements, not {data_type} (which takes vlen-utf8 or \
                     vlen-bytes)"
                ),
            ));
        }
        let endian = match config.get("endian") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s == "little" => Some(Endian::Little),
            Some(Value::String(s)) if s == "big" => Some(Endian::Big),
            Some(other) => {
                return Err(invalid_config(
                    "bytes",
                    "endian",
                    other,
                    "expected \"little\" or \"big\"",
                ))
            }
        };
        // zarr-python writes records without an endian and reads them little endian; the
        // metadata keeps what was written, so that a record array's zarr.json is the same bytes.
        let configured = endian;
        let endian = match (endian, data_type) {
            (None, DataType::Structured { .. }) => Some(Endian::Little),
            (endian, _) => endian,
        };
        if endian.is_none() && data_type.has_byte_order() {
            return Err(MetadataError::invalid(
                "codecs[bytes].configuration.endian",
                &Value::Null,
                format!("required for the multi-byte data type {data_type}"),
            ));
        }
        let swap = if endian.is_some_and(|e| e != Endian::NATIVE) {
            data_type.swap_units()
        } else {
            Vec::new()
        };
        Ok(Self {
            endian: configured,
            swap,
            element_size: data_type.size(),
        })
    }

    fn needs_swap(&self) -> bool {
        !self.swap.is_empty()
    }

    /// Copies elements from `src` to `dst`, reversing each unit of the swap plan.
    fn copy_swapping(&self, src: &[u8], dst: &mut [u8]) {
        // Common plans are one width repeated over the whole element (numbers, complex, UTF-32).
        if let Some(&(_, width, _)) = self.swap.first() {
            let (mut uniform, mut covered) = (true, 0);
            for &(offset, w, count) in &self.swap {
                uniform &= w == width && offset == covered;
                covered = offset + w * count;
            }
            if uniform && covered == self.element_size {
                copy_swapped(src, dst, width);
                return;
            }
        }
        dst.copy_from_slice(src);
        for element in dst.chunks_exact_mut(self.element_size.max(1)) {
            swap_in_place(element, &self.swap);
        }
    }
}

/// Copies `src` into `dst`, reversing the bytes of every `unit`-byte word.
pub fn copy_swapped(src: &[u8], dst: &mut [u8], unit: usize) {
    macro_rules! swap {
        ($t:ty, $n:expr) => {
            for (s, d) in src.chunks_exact($n).zip(dst.chunks_exact_mut($n)) {
                let mut a = [0u8; $n];
                a.copy_from_slice(s);
                d.copy_from_slice(&<$t>::from_ne_bytes(a).swap_bytes().to_ne_bytes());
            }
        };
    }
    match unit {
        2 => swap!(u16, 2),
        4 => swap!(u32, 4),
        8 => swap!(u64, 8),
        _ => {
            for (s, d) in src.chunks_exact(unit).zip(dst.chunks_exact_mut(unit)) {
                for (i, b) in s.iter().rev().enumerate() {
                    d[i] = *b;
                }
            }
        }
    }
}

impl ArrayToBytesCodec for Bytes {
    fn encode<'a>(
        &self,
        data: Cow<'a, [u8]>,
        repr: &ChunkRepr,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        check_len("bytes", data.len(), repr.nbytes())?;
        if !self.needs_swap() {
            return Ok(data);
        }
        let mut out = vec![0u8; data.len()];
        self.copy_swapping(&data, &mut out);
        Ok(Cow::Owned(out))
    }

    fn decode_into(
        &self,
        encoded: &[u8],
        repr: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        check_len("bytes", encoded.len(), repr.nbytes())?;
        check_len("bytes", out.len(), repr.nbytes())?;
        if self.needs_swap() {
            self.copy_swapping(encoded, out);
        } else {
            out.copy_from_slice(encoded);
        }
        Ok(())
    }

    fn is_passthrough(&self, _repr: &ChunkRepr) -> bool {
        !self.needs_swap()
    }

    fn max_encoded_size(&self, repr: &ChunkRepr) -> usize {
        repr.nbytes()
    }

    fn fixed_encoded_size(&self, repr: &ChunkRepr) -> Option<usize> {
        repr.checked_nbytes()
    }

    fn metadata(&self) -> Value {
        let mut config = Map::new();
        if let Some(e) = self.endian {
            let name = if e == Endian::Little { "little" } else { "big" };
            config.insert("endian".into(), name.into());
        }
        codec_metadata("bytes", config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn big_endian_swaps_each_unit() {
        let mut config = Map::new();
        config.insert("endian".into(), json!("big"));
        let codec = Bytes::from_config(&config, &DataType::Complex64).unwrap();
        let repr = ChunkRepr::new(vec![1], DataType::Complex64);
        let data = [1.0f32.to_ne_bytes(), 2.0f32.to_ne_bytes()].concat();
        let enc = codec.encode(Cow::Borrowed(&data), &repr).unwrap();
        assert_eq!(&enc[..4], &1.0f32.to_be_bytes());
        assert_eq!(&enc[4..], &2.0f32.to_be_bytes());
        let mut out = vec![0u8; 8];
        codec.decode_into(&enc, &repr, &mut out).unwrap();
        assert_eq!(out, data);
        assert!(codec.decode_into(&enc[..7], &repr, &mut out).is_err());
    }

    #[test]
    fn variable_length_elements_are_not_its_to_encode() {
        for dt in [DataType::String, DataType::Bytes] {
            match Bytes::from_config(&Map::new(), &dt) {
                Err(MetadataError::Invalid { field, reason, .. }) => {
                    assert_eq!(field, "codecs");
                    assert!(reason.contains("vlen-utf8"), "{reason}");
                }
                other => panic!("{dt}: {other:?}"),
            }
        }
    }
}
