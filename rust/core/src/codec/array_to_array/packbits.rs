//! `packbits` (v2 numcodecs filter id `packbits`; v3 name `numcodecs.packbits`, no
//! configuration): numcodecs' `PackBits`, for bool chunks. The chunk, flattened in C order,
//! becomes a 1-D uint8 array: first the number of padding bits in the last byte (0..=7), then
//! eight values per byte, the first in the most significant bit (numpy's `packbits`).

use serde_json::{Map, Value};

use super::numeric::{cast_repr, Num};
use crate::codec::bytes_to_bytes::numcodecs::numcodecs_metadata;
use crate::codec::{check_config_keys, check_len, ArrayToArrayCodec, ChunkRepr};
use crate::error::{CodecError, MetadataError};
use crate::metadata::DataType;

const NAME: &str = "numcodecs.packbits";

#[derive(Debug, Clone, Default)]
pub struct PackBits;

impl PackBits {
    pub fn from_config(
        config: &Map<String, Value>,
        decoded: &ChunkRepr,
    ) -> Result<Self, MetadataError> {
        check_config_keys(NAME, config, &[])?;
        if decoded.data_type != DataType::Bool {
            return Err(MetadataError::Unsupported {
                field: format!("codecs[{NAME}]"),
                value: format!("on {} data (bool only)", decoded.data_type),
            });
        }
        Ok(Self)
    }

    fn padding(n: usize) -> u8 {
        ((8 - n % 8) % 8) as u8
    }
}

impl ArrayToArrayCodec for PackBits {
    fn encoded_repr(&self, decoded: &ChunkRepr) -> ChunkRepr {
        let n = decoded.num_elements();
        cast_repr(decoded, vec![1 + n.div_ceil(8)], Num::Bool, Num::U8)
    }

    fn encode(&self, data: &[u8], decoded: &ChunkRepr) -> Result<Vec<u8>, CodecError> {
        check_len(NAME, data.len(), decoded.nbytes())?;
        let mut out = Vec::with_capacity(1 + data.len().div_ceil(8));
        out.push(Self::padding(data.len()));
        out.extend(data.chunks(8).map(|values| {
            values
                .iter()
                .enumerate()
                .fold(0u8, |byte, (i, &v)| byte | (u8::from(v != 0) << (7 - i)))
        }));
        Ok(out)
    }

    fn decode_into(
        &self,
        encoded: &[u8],
        decoded: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        let n = decoded.nbytes();
        check_len(NAME, out.len(), n)?;
        check_len(NAME, encoded.len(), 1 + n.div_ceil(8))?;
        if encoded[0] != Self::padding(n) {
            return Err(CodecError::corrupt(
                NAME,
                format!(
                    "{} padding bits recorded, {} expected for {n} values",
                    encoded[0],
                    Self::padding(n)
                ),
            ));
        }
        for (values, &byte) in out.chunks_mut(8).zip(&encoded[1..]) {
            for (i, v) in values.iter_mut().enumerate() {
                *v = (byte >> (7 - i)) & 1;
            }
        }
        Ok(())
    }

    fn metadata(&self) -> Value {
        numcodecs_metadata(NAME, Map::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn packs_as_numcodecs() {
        // `numcodecs.PackBits().encode(np.array(values, bool))`.
        let cases: [(&[u8], &[u8]); 4] = [
            (&[1, 0, 0, 1, 1, 1, 0, 1, 0, 1, 1], &[0x05, 0x9d, 0x60]),
            (&[1, 0, 0, 1, 1, 1, 0, 1], &[0x00, 0x9d]),
            (&[1], &[0x07, 0x80]),
            (&[], &[0x00]),
        ];
        for (values, expected) in cases {
            let repr = ChunkRepr::new(vec![values.len() as u64], DataType::Bool);
            let c = PackBits::from_config(&Map::new(), &repr).unwrap();
            assert_eq!(c.encoded_repr(&repr).shape, vec![expected.len() as u64]);
            let enc = c.encode(values, &repr).unwrap();
            assert_eq!(enc, expected);
            let mut out = vec![9u8; values.len()];
            c.decode_into(&enc, &repr, &mut out).unwrap();
            assert_eq!(out, values);
        }
    }

    #[test]
    fn shapes_and_errors() {
        let repr = ChunkRepr::new(vec![3, 5], DataType::Bool);
        let c = PackBits::from_config(&Map::new(), &repr).unwrap();
        assert_eq!(c.metadata(), json!({"name": NAME, "configuration": {}}));
        let enc_repr = c.encoded_repr(&repr);
        assert_eq!(
            (enc_repr.shape, enc_repr.data_type),
            (vec![3], DataType::UInt8)
        );
        let data: Vec<u8> = (0..15).map(|i| (i % 3 == 0) as u8).collect();
        let enc = c.encode(&data, &repr).unwrap();
        let mut out = vec![0u8; 15];
        let mut bad = enc.clone();
        bad[0] = 3;
        assert!(c.decode_into(&bad, &repr, &mut out).is_err());
        assert!(c.decode_into(&enc[..2], &repr, &mut out).is_err());
        assert!(
            PackBits::from_config(&Map::new(), &ChunkRepr::new(vec![1], DataType::UInt8)).is_err()
        );
        assert!(PackBits::from_config(json!({"x": 1}).as_object().unwrap(), &repr).is_err());
    }
}
