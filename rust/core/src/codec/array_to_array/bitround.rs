//! `bitround` (v2 numcodecs filter id `bitround`; v3 names `numcodecs.bitround`, as
//! zarr-python writes it, and `bitround`, the zarr-extensions codec with the same
//! `{keepbits}` configuration): numcodecs' `BitRound(keepbits)`. Each float keeps `keepbits`
//! bits of its mantissa, rounded to nearest with ties to even, so that the chunk compresses
//! better (Klöwer et al. 2021). Decoding changes nothing.
//!
//! The rounding works on the bits as numcodecs does (add half a quantum, clear the dropped
//! bits), including its overflow into the exponent, so the bits match numcodecs' exactly.

use serde_json::{Map, Value};

use crate::codec::{
    check_config_keys, check_len, codec_metadata, invalid_config, ArrayToArrayCodec, ChunkRepr,
};
use crate::error::{CodecError, MetadataError};
use crate::metadata::DataType;

#[derive(Debug, Clone)]
pub struct BitRound {
    /// The name it was configured under, written back.
    name: &'static str,
    keepbits: u32,
    /// Mantissa bits of the chunks' float type.
    mantissa: u32,
}

impl BitRound {
    /// `name` is "bitround" or "numcodecs.bitround".
    pub fn from_config(
        name: &'static str,
        config: &Map<String, Value>,
        decoded: &ChunkRepr,
    ) -> Result<Self, MetadataError> {
        check_config_keys(name, config, &["keepbits"])?;
        let value = config
            .get("keepbits")
            .filter(|v| !v.is_null())
            .ok_or_else(|| {
                MetadataError::missing(&format!("codecs[{name}].configuration.keepbits"))
            })?;
        let mantissa = match decoded.data_type {
            DataType::Float16 => 10,
            DataType::Float32 => 23,
            DataType::Float64 => 52,
            ref other => {
                return Err(MetadataError::Unsupported {
                    field: format!("codecs[{name}]"),
                    value: format!("on {other} data (float16, float32 or float64 only)"),
                })
            }
        };
        let keepbits = value
            .as_u64()
            .filter(|k| *k <= mantissa as u64)
            .ok_or_else(|| {
                invalid_config(
                    name,
                    "keepbits",
                    value,
                    &format!(
                        "expected 0..={mantissa}, the mantissa bits of {}",
                        decoded.data_type
                    ),
                )
            })? as u32;
        Ok(Self {
            name,
            keepbits,
            mantissa,
        })
    }
}

macro_rules! round_bits {
    ($data:expr, $t:ty, $maskbits:expr) => {{
        let m = $maskbits;
        let mask: $t = !0 << m;
        let half_quantum: $t = (1 << (m - 1)) - 1;
        const N: usize = std::mem::size_of::<$t>();
        let mut out = Vec::with_capacity($data.len());
        for chunk in $data.chunks_exact(N) {
            let mut b = [0u8; N];
            b.copy_from_slice(chunk);
            let bits = <$t>::from_ne_bytes(b);
            let rounded = bits.wrapping_add(((bits >> m) & 1) + half_quantum) & mask;
            out.extend_from_slice(&rounded.to_ne_bytes());
        }
        out
    }};
}

impl ArrayToArrayCodec for BitRound {
    fn encoded_repr(&self, decoded: &ChunkRepr) -> ChunkRepr {
        let one = ChunkRepr::new(vec![1], decoded.data_type.clone());
        let fill = self
            .encode(&decoded.fill_value, &one)
            .unwrap_or_else(|_| decoded.fill_value.to_vec());
        ChunkRepr::with_fill(decoded.shape.clone(), decoded.data_type.clone(), &fill)
    }

    fn encode(&self, data: &[u8], decoded: &ChunkRepr) -> Result<Vec<u8>, CodecError> {
        check_len(self.name(), data.len(), decoded.nbytes())?;
        let maskbits = self.mantissa - self.keepbits;
        if maskbits == 0 {
            return Ok(data.to_vec());
        }
        // Unsigned arithmetic on the bits is numcodecs' signed arithmetic: the same bits
        // wrap the same way, and the shifted-in sign bits are masked off by `& 1`.
        Ok(match self.mantissa {
            10 => round_bits!(data, u16, maskbits),
            23 => round_bits!(data, u32, maskbits),
            _ => round_bits!(data, u64, maskbits),
        })
    }

    fn decode_into(
        &self,
        encoded: &[u8],
        decoded: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        check_len(self.name(), encoded.len(), decoded.nbytes())?;
        check_len(self.name(), out.len(), decoded.nbytes())?;
        out.copy_from_slice(encoded);
        Ok(())
    }

    fn metadata(&self) -> Value {
        let mut config = Map::new();
        config.insert("keepbits".into(), self.keepbits.into());
        codec_metadata(self.name, config)
    }
}

impl BitRound {
    fn name(&self) -> &'static str {
        self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::bytes_to_bytes::stream::hex;
    use serde_json::json;

    const NAME: &str = "numcodecs.bitround";

    fn codec(keepbits: u64, dt: DataType) -> BitRound {
        let config = json!({"keepbits": keepbits});
        BitRound::from_config(
            NAME,
            config.as_object().unwrap(),
            &ChunkRepr::new(vec![1], dt),
        )
        .unwrap()
    }

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
    fn rounds_as_numcodecs() {
        // `numcodecs.BitRound(keepbits).encode(x.astype(t))` for
        // x = np.array([pi, -e, 1/3, 1e30, -0.0, inf, nan, 65504], "<f4").
        let x = hex("db0f494054f82dc0abaaaa3ecaf24971000000800000807f0000c07f00e07f47");
        let f4 = |k, expected: &str| (k, DataType::Float32, x.clone(), expected.to_string());
        let cases = [
            f4(
                0,
                "00008040000000c00000803e00008071000000800000807f0000008000008047",
            ),
            f4(
                3,
                "00005040000030c00000b03e00005071000000800000807f0000c07f00008047",
            ),
            f4(
                10,
                "0000494000002ec000a0aa3e00004a71000000800000807f0000c07f00e07f47",
            ),
            f4(
                23,
                "db0f494054f82dc0abaaaa3ecaf24971000000800000807f0000c07f00e07f47",
            ),
            (
                7,
                DataType::Float64,
                // x.astype("<f8")
                hex(
                    "00000060fb210940000000800abf05c0000000605555d53f00000040593e2946\
                     0000000000000080000000000000f07f000000000000f87f0000000000fcef40",
                ),
                "00000000002009400000000000c005c0000000000060d53f0000000000402946\
                 0000000000000080000000000000f07f000000000000f87f000000000000f040"
                    .replace(' ', ""),
            ),
            (
                4,
                DataType::Float16,
                // x.astype("<f2")
                hex("484270c15535007c0080007c007eff7b"),
                "404280c14035007c0080007c007e007c".to_string(),
            ),
        ];
        for (keepbits, dt, input, expected) in cases {
            let c = codec(keepbits, dt.clone());
            let input = native(input, dt.size());
            let repr = ChunkRepr::new(vec![(input.len() / dt.size()) as u64], dt.clone());
            let enc = c.encode(&input, &repr).unwrap();
            assert_eq!(enc, native(hex(&expected), dt.size()), "{keepbits} {dt}");
            let mut out = vec![0u8; input.len()];
            c.decode_into(&enc, &repr, &mut out).unwrap();
            assert_eq!(out, enc);
        }
    }

    #[test]
    fn config_and_errors() {
        let repr = ChunkRepr::new(vec![1], DataType::Float32);
        let c = BitRound::from_config(
            "bitround",
            json!({"keepbits": 5}).as_object().unwrap(),
            &repr,
        )
        .unwrap();
        assert_eq!(
            c.metadata(),
            json!({"name": "bitround", "configuration": {"keepbits": 5}})
        );
        for (config, dt) in [
            (json!({}), DataType::Float32),
            (json!({"keepbits": 24}), DataType::Float32),
            (json!({"keepbits": 11}), DataType::Float16),
            (json!({"keepbits": -1}), DataType::Float64),
            (json!({"keepbits": 3}), DataType::Int32),
            (json!({"keepbits": 3, "dtype": "<f4"}), DataType::Float32),
        ] {
            let repr = ChunkRepr::new(vec![1], dt);
            let err = BitRound::from_config(NAME, config.as_object().unwrap(), &repr).unwrap_err();
            assert!(err.to_string().contains(NAME), "{config}: {err}");
        }
        let c = codec(3, DataType::Float64);
        let repr = ChunkRepr::new(vec![2], DataType::Float64);
        assert!(c.encode(&[0u8; 15], &repr).is_err());
        assert!(c.decode_into(&[0u8; 16], &repr, &mut [0u8; 15]).is_err());
    }
}
