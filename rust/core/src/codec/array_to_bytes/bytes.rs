//! `bytes` (v3 core codec; v2 writes the byte order into the dtype instead): elements in C
//! order, little or big endian. Spec: zarr-specs v3.0, codecs/bytes.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::codec::{
    check_config_keys, check_len, codec_metadata, invalid_config, ArrayToBytesCodec, ChunkRepr,
};
use crate::error::{CodecError, MetadataError};
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
    /// `None` for one-byte types, where the order means nothing.
    endian: Option<Endian>,
}

impl Bytes {
    pub fn from_config(
        config: &Map<String, Value>,
        data_type: DataType,
    ) -> Result<Self, MetadataError> {
        check_config_keys("bytes", config, &["endian"])?;
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
        if endian.is_none() && data_type.size() > 1 {
            return Err(MetadataError::invalid(
                "codecs[bytes].configuration.endian",
                &Value::Null,
                format!("required for the multi-byte data type {data_type}"),
            ));
        }
        Ok(Self { endian })
    }

    fn needs_swap(&self, repr: &ChunkRepr) -> bool {
        repr.data_type.swap_unit() > 1 && self.endian.is_some_and(|e| e != Endian::NATIVE)
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
        if !self.needs_swap(repr) {
            return Ok(data);
        }
        let mut out = vec![0u8; data.len()];
        copy_swapped(&data, &mut out, repr.data_type.swap_unit());
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
        if self.needs_swap(repr) {
            copy_swapped(encoded, out, repr.data_type.swap_unit());
        } else {
            out.copy_from_slice(encoded);
        }
        Ok(())
    }

    fn is_passthrough(&self, repr: &ChunkRepr) -> bool {
        !self.needs_swap(repr)
    }

    fn max_encoded_size(&self, repr: &ChunkRepr) -> usize {
        repr.nbytes()
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
        let codec = Bytes::from_config(&config, DataType::Complex64).unwrap();
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
}
