//! `bitround` (v2 numcodecs filter id `bitround`; v3 names `numcodecs.bitround`, as
//! zarr-python writes it, and `bitround`, the zarr-extensions codec, which takes the same
//! `{keepbits}` configuration and calls the other name its alias): numcodecs'
//! `BitRound(keepbits)`. Each float keeps `keepbits` bits of its mantissa, rounded to nearest
//! with ties to even, so that the chunk compresses better (Klöwer et al. 2021). Decoding
//! changes nothing.
//!
//! The rounding works on the bits as numcodecs does (add half a quantum, clear the dropped
//! bits), including its overflow into the exponent, so the bits match numcodecs' exactly.
//!
//! The zarr-extensions codec also rounds complex numbers (each part as a float) and integers
//! (datetimes and timedeltas as int64): an integer keeps `keepbits` bits from its most
//! significant set bit (of its two's complement bits, for negative values), rounded the same
//! way but saturating rather than carrying out of the type (its sample data rounds 255 to 224
//! with 3 bits). numcodecs refuses those types; both names accept them here, so that chunks
//! zarrs writes under either name read.

use serde_json::{Map, Value};

use crate::codec::{
    check_config_keys, check_len, codec_metadata, invalid_config, ArrayToArrayCodec, ChunkRepr,
};
use crate::error::{CodecError, MetadataError};
use crate::metadata::DataType;

/// How the elements' bits are rounded.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Floats (or complex parts) of `width` bytes with `mantissa` bits of mantissa.
    Float { width: usize, mantissa: u32 },
    /// Integers of `width` bytes.
    Int { width: usize },
}

#[derive(Debug, Clone)]
pub struct BitRound {
    /// The name it was configured under, written back.
    name: &'static str,
    keepbits: u32,
    kind: Kind,
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
        let kind = match decoded.data_type {
            DataType::Float16 => Kind::Float {
                width: 2,
                mantissa: 10,
            },
            DataType::Float32 | DataType::Complex64 => Kind::Float {
                width: 4,
                mantissa: 23,
            },
            DataType::Float64 | DataType::Complex128 => Kind::Float {
                width: 8,
                mantissa: 52,
            },
            DataType::Int8 | DataType::UInt8 => Kind::Int { width: 1 },
            DataType::Int16 | DataType::UInt16 => Kind::Int { width: 2 },
            DataType::Int32 | DataType::UInt32 => Kind::Int { width: 4 },
            DataType::Int64
            | DataType::UInt64
            | DataType::DateTime64 { .. }
            | DataType::TimeDelta64 { .. } => Kind::Int { width: 8 },
            ref other => {
                return Err(MetadataError::Unsupported {
                    field: format!("codecs[{name}]"),
                    value: format!("on {other} data (numbers only)"),
                })
            }
        };
        // An integer narrower than `keepbits` is left as it is (zarrs writes keepbits 10 for
        // uint8); a float cannot keep more bits than its mantissa has.
        let max = match kind {
            Kind::Float { mantissa, .. } => mantissa,
            Kind::Int { .. } => u32::MAX,
        };
        let keepbits = value.as_u64().filter(|k| *k <= max as u64).ok_or_else(|| {
            invalid_config(
                name,
                "keepbits",
                value,
                &format!(
                    "expected 0..={max}, the mantissa bits of {}",
                    decoded.data_type
                ),
            )
        })? as u32;
        Ok(Self {
            name,
            keepbits,
            kind,
        })
    }
}

/// Rounds every `$t` of `$data` in place to `$keep` bits out of the `$len(bits)` low bits,
/// adding half a quantum with `$add` (wrapping for floats, saturating for integers).
macro_rules! round_in_place {
    ($data:expr, $t:ty, $keep:expr, $len:expr, $add:ident) => {{
        const N: usize = std::mem::size_of::<$t>();
        for chunk in $data.chunks_exact_mut(N) {
            let mut b = [0u8; N];
            b.copy_from_slice(chunk);
            let bits = <$t>::from_ne_bytes(b);
            let len: u32 = $len(bits);
            if $keep < len {
                let m = len - $keep;
                let mask = <$t>::MAX.checked_shl(m).unwrap_or(0);
                let half_quantum: $t = (1 << (m - 1)) - 1;
                // `m` is the whole width when an integer keeps no bits.
                let lowest_kept = bits.checked_shr(m).unwrap_or(0) & 1;
                let rounded = bits.$add(lowest_kept + half_quantum) & mask;
                chunk.copy_from_slice(&rounded.to_ne_bytes());
            }
        }
    }};
}

impl ArrayToArrayCodec for BitRound {
    fn encoded_repr(&self, decoded: &ChunkRepr) -> ChunkRepr {
        // The type stays, and so does the fill value (not rounded), as in zarr-python.
        decoded.clone()
    }

    fn encode(&self, data: &[u8], decoded: &ChunkRepr) -> Result<Vec<u8>, CodecError> {
        check_len(self.name, data.len(), decoded.nbytes())?;
        let mut out = data.to_vec();
        let keep = self.keepbits;
        // Unsigned arithmetic on a float's bits is numcodecs' signed arithmetic: the same bits
        // wrap the same way, and the shifted-in sign bits are masked off by `& 1`.
        match self.kind {
            Kind::Float { width, mantissa } => match width {
                2 => round_in_place!(out, u16, keep, |_| mantissa, wrapping_add),
                4 => round_in_place!(out, u32, keep, |_| mantissa, wrapping_add),
                _ => round_in_place!(out, u64, keep, |_| mantissa, wrapping_add),
            },
            Kind::Int { width } => match width {
                1 => round_in_place!(out, u8, keep, |b: u8| 8 - b.leading_zeros(), saturating_add),
                2 => {
                    round_in_place!(
                        out,
                        u16,
                        keep,
                        |b: u16| 16 - b.leading_zeros(),
                        saturating_add
                    )
                }
                4 => {
                    round_in_place!(
                        out,
                        u32,
                        keep,
                        |b: u32| 32 - b.leading_zeros(),
                        saturating_add
                    )
                }
                _ => {
                    round_in_place!(
                        out,
                        u64,
                        keep,
                        |b: u64| 64 - b.leading_zeros(),
                        saturating_add
                    )
                }
            },
        }
        Ok(out)
    }

    fn decode_into(
        &self,
        encoded: &[u8],
        decoded: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        check_len(self.name, encoded.len(), decoded.nbytes())?;
        check_len(self.name, out.len(), decoded.nbytes())?;
        out.copy_from_slice(encoded);
        Ok(())
    }

    fn metadata(&self) -> Value {
        let mut config = Map::new();
        config.insert("keepbits".into(), self.keepbits.into());
        codec_metadata(self.name, config)
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
    fn rounds_integers_and_complex_as_zarr_extensions() {
        // The zarr-extensions sample data (codecs/bitround/sample_data/README.md), keepbits 3.
        let c = codec(3, DataType::UInt8);
        let repr = ChunkRepr::new(vec![10], DataType::UInt8);
        let enc = c
            .encode(&[0, 1, 10, 11, 100, 123, 200, 208, 209, 255], &repr)
            .unwrap();
        assert_eq!(enc, [0, 1, 10, 12, 96, 128, 192, 192, 224, 224]);
        // More bits than the type has keep them all.
        let data = [0, 1, 10, 11, 100, 123, 200, 208, 209, 255];
        assert_eq!(
            codec(10, DataType::UInt8).encode(&data, &repr).unwrap(),
            data
        );
        let floats = [
            0.0f32,
            0.1,
            1.2,
            12.3,
            123.4,
            1234.5,
            f32::NAN,
            f32::INFINITY,
        ];
        let rounded = [
            0.0f32,
            0.1015625,
            1.25,
            12.0,
            120.0,
            1280.0,
            f32::NAN,
            f32::INFINITY,
        ];
        let bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|f| f.to_ne_bytes()).collect() };
        let c = codec(3, DataType::Float32);
        let repr = ChunkRepr::new(vec![8], DataType::Float32);
        assert_eq!(c.encode(&bytes(&floats), &repr).unwrap(), bytes(&rounded));
        // Complex numbers round each part.
        let c = codec(3, DataType::Complex64);
        let repr = ChunkRepr::new(vec![4], DataType::Complex64);
        assert_eq!(c.encode(&bytes(&floats), &repr).unwrap(), bytes(&rounded));
        // Wider and signed integers: from the most significant set bit of the bits.
        let c = codec(3, DataType::Int16);
        let repr = ChunkRepr::new(vec![3], DataType::Int16);
        let ints: Vec<u8> = [-1i16, 1000, 7]
            .iter()
            .flat_map(|i| i.to_ne_bytes())
            .collect();
        let want: Vec<u8> = [-8192i16, 1024, 7]
            .iter()
            .flat_map(|i| i.to_ne_bytes())
            .collect();
        assert_eq!(c.encode(&ints, &repr).unwrap(), want);
        let repr = ChunkRepr::new(vec![2], DataType::UInt64);
        let big: Vec<u8> = [u64::MAX, 5].iter().flat_map(|i| i.to_ne_bytes()).collect();
        let want: Vec<u8> = [1u64 << 63, 4]
            .iter()
            .flat_map(|i| i.to_ne_bytes())
            .collect();
        assert_eq!(
            codec(1, DataType::UInt64).encode(&big, &repr).unwrap(),
            want
        );
        // No bits kept (the spec asks for at least one): no overflow either.
        let want: Vec<u8> = [0u64, 8].iter().flat_map(|i| i.to_ne_bytes()).collect();
        assert_eq!(
            codec(0, DataType::UInt64).encode(&big, &repr).unwrap(),
            want
        );
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
            (json!({"keepbits": 1u64 << 32}), DataType::Int8),
            (json!({"keepbits": -1}), DataType::Float64),
            (json!({"keepbits": 3}), DataType::Bool),
            (json!({"keepbits": 3}), DataType::NullTerminatedBytes(4)),
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
