//! `astype` (v2 numcodecs filter id `astype`; v3 name `numcodecs.astype`): numcodecs'
//! `AsType(encode_dtype, decode_dtype)`, which stores the values cast to `encode_dtype` and
//! casts them back to `decode_dtype` (the chunks' data type) on decode, as numpy's `astype`
//! (see `numeric` for the casts). Narrowing loses data silently, as in numcodecs.

use serde_json::{Map, Value};

use super::numeric::{cast, cast_into, cast_repr, decoded_dtype, dtype_config, DtypeField};
use crate::codec::{check_config_keys, check_len, codec_metadata, ArrayToArrayCodec, ChunkRepr};
use crate::error::{CodecError, MetadataError};

const NAME: &str = "numcodecs.astype";

#[derive(Debug, Clone)]
pub struct AsType {
    encode_dtype: DtypeField,
    decode_dtype: DtypeField,
}

impl AsType {
    pub fn from_config(
        config: &Map<String, Value>,
        decoded: &ChunkRepr,
    ) -> Result<Self, MetadataError> {
        check_config_keys(NAME, config, &["encode_dtype", "decode_dtype"])?;
        let decode_dtype = decoded_dtype(NAME, config, "decode_dtype", &decoded.data_type)?;
        let encode_dtype = dtype_config(NAME, config, "encode_dtype")?.ok_or_else(|| {
            MetadataError::missing(&format!("codecs[{NAME}].configuration.encode_dtype"))
        })?;
        Ok(Self {
            encode_dtype,
            decode_dtype,
        })
    }
}

impl ArrayToArrayCodec for AsType {
    fn encoded_repr(&self, decoded: &ChunkRepr) -> ChunkRepr {
        let (from, to) = (self.decode_dtype.num, self.encode_dtype.num);
        cast_repr(decoded, decoded.shape.clone(), from, to)
    }

    fn encode(&self, data: &[u8], decoded: &ChunkRepr) -> Result<Vec<u8>, CodecError> {
        check_len(NAME, data.len(), decoded.nbytes())?;
        Ok(cast(data, self.decode_dtype.num, self.encode_dtype.num))
    }

    fn decode_into(
        &self,
        encoded: &[u8],
        decoded: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        let n = decoded.num_elements() as usize;
        check_len(NAME, encoded.len(), n * self.encode_dtype.num.size())?;
        check_len(NAME, out.len(), decoded.nbytes())?;
        cast_into(encoded, self.encode_dtype.num, out, self.decode_dtype.num);
        Ok(())
    }

    fn metadata(&self) -> Value {
        let mut config = Map::new();
        config.insert("encode_dtype".into(), self.encode_dtype.json.clone());
        config.insert("decode_dtype".into(), self.decode_dtype.json.clone());
        codec_metadata(NAME, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::bytes_to_bytes::stream::hex;
    use crate::metadata::DataType;
    use serde_json::json;

    fn native(bytes: Vec<u8>, size: usize) -> Vec<u8> {
        if cfg!(target_endian = "big") {
            bytes
                .chunks(size)
                .flat_map(|c| c.iter().rev().copied())
                .collect()
        } else {
            bytes
        }
    }

    #[test]
    fn casts_as_numcodecs() {
        // `numcodecs.AsType("<i2", "<f8").encode(np.array([1.7, -1.7, 40000.0, 2.5]))` and
        // `numcodecs.AsType("<f4", "<i8").encode(np.array([2**40 + 1, -3]))`.
        let cases = [
            (
                json!({"encode_dtype": "<i2", "decode_dtype": "<f8"}),
                DataType::Float64,
                [1.7f64, -1.7, 40000.0, 2.5]
                    .iter()
                    .flat_map(|f| f.to_ne_bytes())
                    .collect::<Vec<_>>(),
                "0100ffff409c0200",
                2,
            ),
            (
                json!({"encode_dtype": "<f4", "decode_dtype": "<i8"}),
                DataType::Int64,
                [(1i64 << 40) + 1, -3]
                    .iter()
                    .flat_map(|i| i.to_ne_bytes())
                    .collect(),
                "00008053000040c0",
                4,
            ),
        ];
        for (config, dt, input, expected, size) in cases {
            let repr = ChunkRepr::new(vec![(input.len() / dt.size()) as u64], dt.clone());
            let c = AsType::from_config(config.as_object().unwrap(), &repr).unwrap();
            let enc = c.encode(&input, &repr).unwrap();
            assert_eq!(enc, native(hex(expected), size), "{config}");
            assert_eq!(c.encoded_repr(&repr).data_type.size(), size);
            let mut out = vec![0u8; input.len()];
            c.decode_into(&enc, &repr, &mut out).unwrap();
            assert_eq!(out, cast(&enc, c.encode_dtype.num, c.decode_dtype.num));
        }
        // int8 -> bool -> int8: nonzero is true.
        let repr = ChunkRepr::new(vec![3], DataType::Int8);
        let c = AsType::from_config(json!({"encode_dtype": "bool"}).as_object().unwrap(), &repr)
            .unwrap();
        let enc = c.encode(&[0, 5, 0xff], &repr).unwrap();
        assert_eq!(enc, [0, 1, 1]);
    }

    #[test]
    fn config_and_errors() {
        let repr = ChunkRepr::with_fill(vec![2], DataType::Float32, &2.5f32.to_ne_bytes());
        let c = AsType::from_config(json!({"encode_dtype": "int16"}).as_object().unwrap(), &repr)
            .unwrap();
        let native = if cfg!(target_endian = "big") {
            ">f4"
        } else {
            "<f4"
        };
        assert_eq!(
            c.metadata()["configuration"],
            json!({"encode_dtype": "int16", "decode_dtype": native})
        );
        assert_eq!(
            &c.encoded_repr(&repr).fill_value[..],
            &2i16.to_ne_bytes()[..]
        );
        for config in [
            json!({}),
            json!({"encode_dtype": "<c8"}),
            json!({"encode_dtype": "<i2", "decode_dtype": "<f8"}),
            json!({"encode_dtype": "<i2", "dtype": "<f4"}),
        ] {
            let err = AsType::from_config(config.as_object().unwrap(), &repr).unwrap_err();
            assert!(err.to_string().contains(NAME), "{config}: {err}");
        }
        let err = AsType::from_config(
            json!({"encode_dtype": "<i2"}).as_object().unwrap(),
            &ChunkRepr::new(vec![1], DataType::Complex64),
        )
        .unwrap_err();
        assert!(err.to_string().contains(NAME), "{err}");
        assert!(c.encode(&[0u8; 7], &repr).is_err());
        assert!(c.decode_into(&[0u8; 3], &repr, &mut [0u8; 8]).is_err());
    }
}
