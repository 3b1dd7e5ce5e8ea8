//! `delta` (v2 numcodecs filter id `delta`; v3 name `numcodecs.delta`): numcodecs'
//! `Delta(dtype, astype)`. The chunk, flattened in C order, is encoded as its first value and
//! then the differences between neighbours, stored as `astype` (default: `dtype`).
//!
//! numcodecs computes the differences in `dtype` (integers wrap) and casts them to `astype`;
//! decoding accumulates in the type numpy's `cumsum(enc, out=dec)` uses, the promotion of
//! `astype` and `dtype` (float64 for uint64 and int64, say), and casts the sums to `dtype`.
//! Both are done here the same way, so the values match numcodecs' even when they overflow.

use serde_json::{Map, Value};

use super::numeric::{
    cast, cast_into, cast_repr, decoded_dtype, dtype_config, map_in_place, unsupported_type,
    with_num, Arith, DtypeField, Num,
};
use crate::codec::{check_config_keys, check_len, codec_metadata, ArrayToArrayCodec, ChunkRepr};
use crate::error::{CodecError, MetadataError};

const NAME: &str = "numcodecs.delta";

#[derive(Debug, Clone)]
pub struct Delta {
    dtype: DtypeField,
    astype: DtypeField,
}

/// Replaces every element after the first by its difference from the one before.
fn diff_in_place<T: Arith>(buf: &mut [u8]) {
    let mut previous: Option<T> = None;
    map_in_place(buf, |x: T| {
        let out = match previous {
            Some(p) => x.sub(p),
            None => x,
        };
        previous = Some(x);
        out
    });
}

/// Replaces every element by the sum of it and those before it.
fn cumsum_in_place<T: Arith>(buf: &mut [u8]) {
    let mut sum: Option<T> = None;
    map_in_place(buf, |x: T| {
        let s = match sum {
            Some(s) => s.add(x),
            None => x,
        };
        sum = Some(s);
        s
    });
}

impl Delta {
    pub fn from_config(
        config: &Map<String, Value>,
        decoded: &ChunkRepr,
    ) -> Result<Self, MetadataError> {
        check_config_keys(NAME, config, &["dtype", "astype"])?;
        let dtype = decoded_dtype(NAME, config, "dtype", &decoded.data_type)?;
        let astype = dtype_config(NAME, config, "astype")?.unwrap_or_else(|| dtype.clone());
        // numpy cannot subtract booleans.
        for field in [&dtype, &astype] {
            if field.num == Num::Bool {
                return Err(unsupported_type(NAME, &field.num.data_type()));
            }
        }
        Ok(Self { dtype, astype })
    }
}

impl ArrayToArrayCodec for Delta {
    fn encoded_repr(&self, decoded: &ChunkRepr) -> ChunkRepr {
        cast_repr(
            decoded,
            decoded.shape.clone(),
            self.dtype.num,
            self.astype.num,
        )
    }

    fn encode(&self, data: &[u8], decoded: &ChunkRepr) -> Result<Vec<u8>, CodecError> {
        check_len(NAME, data.len(), decoded.nbytes())?;
        let (from, to) = (self.dtype.num, self.astype.num);
        if from != to && !from.is_float() && !to.is_float() {
            // numcodecs stores the first value as it is (the rest are differences, which
            // wrap as numpy's do): one the narrower integer type cannot hold is an
            // OverflowError there, and would read back as another number.
            let first = &data[..from.size().min(data.len())];
            if cast(&cast(first, from, to), to, from) != first {
                return Err(CodecError::Encode {
                    codec: NAME,
                    reason: format!(
                        "the chunk's first value does not fit astype {}",
                        self.astype.json
                    ),
                });
            }
        }
        let mut diffs = data.to_vec();
        with_num!(self.dtype.num, T => diff_in_place::<T>(&mut diffs));
        Ok(if self.astype.num == self.dtype.num {
            diffs
        } else {
            cast(&diffs, self.dtype.num, self.astype.num)
        })
    }

    fn decode_into(
        &self,
        encoded: &[u8],
        decoded: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        let n = decoded.num_elements() as usize;
        check_len(NAME, encoded.len(), n * self.astype.num.size())?;
        check_len(NAME, out.len(), decoded.nbytes())?;
        let (from, to) = (self.astype.num, self.dtype.num);
        let sum = Num::promote(from, to);
        if sum == to {
            cast_into(encoded, from, out, to);
            with_num!(sum, T => cumsum_in_place::<T>(out));
        } else {
            let mut sums = cast(encoded, from, sum);
            with_num!(sum, T => cumsum_in_place::<T>(&mut sums));
            cast_into(&sums, sum, out, to);
        }
        Ok(())
    }

    fn metadata(&self) -> Value {
        let mut config = Map::new();
        config.insert("dtype".into(), self.dtype.json.clone());
        config.insert("astype".into(), self.astype.json.clone());
        codec_metadata(NAME, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::bytes_to_bytes::stream::hex;
    use crate::metadata::DataType;
    use serde_json::json;

    fn delta(config: Value, dt: DataType) -> Delta {
        Delta::from_config(config.as_object().unwrap(), &ChunkRepr::new(vec![1], dt)).unwrap()
    }

    fn le<T: Copy, const N: usize>(values: &[T], to_le: fn(T) -> [u8; N]) -> Vec<u8> {
        values.iter().flat_map(|v| to_le(*v)).collect()
    }

    /// Little-endian bytes as the machine's (these tests compare little-endian vectors).
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
    fn encodes_as_numcodecs() {
        // `numcodecs.Delta(dtype, astype).encode(np.array(values, dtype))`.
        let cases: Vec<(Value, DataType, Vec<u8>, &str, usize)> = vec![
            (
                json!({"dtype": "<i4"}),
                DataType::Int32,
                le(&[10i32, 13, 7, -100, i32::MAX, i32::MIN], i32::to_le_bytes),
                "0a00000003000000faffffff95ffffff6300008001000000",
                4,
            ),
            (
                json!({"dtype": "<i2", "astype": "<i1"}),
                DataType::Int16,
                le(&[100i16, 102, 104, 300, -300, 0], i16::to_le_bytes),
                "640202c4a82c",
                1,
            ),
            (
                json!({"dtype": "|u1", "astype": "<i2"}),
                DataType::UInt8,
                vec![0, 255, 1, 200],
                "0000ff000200c700",
                2,
            ),
            (
                json!({"dtype": "<f4", "astype": "<f8"}),
                DataType::Float32,
                le(&[0.1f32, 0.2, 0.7, -1e30], f32::to_le_bytes),
                "000000a09999b93f000000a09999b93f000000000000e03f00000040593e29c6",
                8,
            ),
            (
                json!({"dtype": "<f8"}),
                DataType::Float64,
                le(&[0.1f64, 0.2, 0.7, f64::INFINITY], f64::to_le_bytes),
                "9a9999999999b93f9a9999999999b93fffffffffffffdf3f000000000000f07f",
                8,
            ),
            (
                json!({"dtype": "float16"}),
                DataType::Float16,
                hex("662e66329a39d063"), // [0.1, 0.2, 0.7, 1000] as float16
                "662e662e0038cf63",
                2,
            ),
        ];
        for (config, dt, data, expected, size) in cases {
            let c = delta(config.clone(), dt.clone());
            let repr = ChunkRepr::new(vec![(data.len() / dt.size()) as u64], dt.clone());
            let data = native(data, dt.size());
            let enc = c.encode(&data, &repr).unwrap();
            assert_eq!(enc, native(hex(expected), size), "{config}");
            assert_eq!(c.encoded_repr(&repr).data_type.size(), size);
            let mut out = vec![0u8; data.len()];
            c.decode_into(&enc, &repr, &mut out).unwrap();
            if dt.size() == size || config == json!({"dtype": "|u1", "astype": "<i2"}) {
                assert_eq!(out, data, "{config}");
            }
        }
    }

    #[test]
    fn a_first_value_the_narrower_type_cannot_hold_is_refused() -> Result<(), CodecError> {
        // numcodecs raises OverflowError for [173, -100] as int16 into int8; the differences
        // after it wrap, as numpy's do.
        let c = delta(json!({"dtype": "<i2", "astype": "|i1"}), DataType::Int16);
        let repr = ChunkRepr::new(vec![2], DataType::Int16);
        let refused: Vec<u8> = [173i16, -100]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        match c.encode(&refused, &repr) {
            Err(CodecError::Encode { reason, .. }) if reason.contains("first value") => {}
            other => {
                return Err(CodecError::corrupt(NAME, format!("not refused: {other:?}")));
            }
        }
        let wrapped: Vec<u8> = [-100i16, 173]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        assert_eq!(c.encode(&wrapped, &repr)?, [0x9c, 0x11]);
        Ok(())
    }

    #[test]
    fn decodes_as_numcodecs() {
        // `numcodecs.Delta(dtype, astype).decode(np.array(encoded, astype))`: the sums are
        // taken in the promoted type (float64 for uint64 + int64) and then cast.
        let c = delta(json!({"dtype": "<i8", "astype": "<u8"}), DataType::Int64);
        let repr = ChunkRepr::new(vec![4], DataType::Int64);
        let enc: Vec<u8> = [1u64 << 62, 1 << 62, 1 << 62, 5]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        let mut out = vec![0u8; 32];
        c.decode_into(&enc, &repr, &mut out).unwrap();
        let values: Vec<i64> = out
            .chunks(8)
            .map(|b| i64::from_ne_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(values, [1 << 62, i64::MIN, i64::MIN, i64::MIN]);

        let c = delta(json!({"dtype": "<i4", "astype": "<f8"}), DataType::Int32);
        let repr = ChunkRepr::new(vec![4], DataType::Int32);
        let enc: Vec<u8> = [1.5f64, 1.5, 1.5, -0.7]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        let mut out = vec![0u8; 16];
        c.decode_into(&enc, &repr, &mut out).unwrap();
        let values: Vec<i32> = out
            .chunks(4)
            .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(values, [1, 3, 4, 3]);

        let c = delta(json!({"dtype": "<f4", "astype": "<f8"}), DataType::Float32);
        let repr = ChunkRepr::new(vec![4], DataType::Float32);
        let enc: Vec<u8> = [1e8f64, 1.0, 1.0, 0.1]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        let mut out = vec![0u8; 16];
        c.decode_into(&enc, &repr, &mut out).unwrap();
        assert_eq!(out, native(hex("20bcbe4c20bcbe4c20bcbe4c20bcbe4c"), 4));
    }

    #[test]
    fn config_and_metadata() {
        let c = delta(json!({}), DataType::UInt16);
        let native = if cfg!(target_endian = "big") {
            ">u2"
        } else {
            "<u2"
        };
        assert_eq!(
            c.metadata(),
            json!({"name": NAME, "configuration": {"dtype": native, "astype": native}})
        );
        let c = delta(json!({"dtype": "int32", "astype": null}), DataType::Int32);
        assert_eq!(
            c.metadata()["configuration"],
            json!({"dtype": "int32", "astype": "int32"})
        );
        let repr = ChunkRepr::new(vec![3], DataType::Int32);
        for (config, dt) in [
            (json!({"dtype": "<i2"}), DataType::Int32),
            (json!({"dtype": "bool"}), DataType::Bool),
            (json!({}), DataType::Bool),
            (json!({}), DataType::Complex64),
            (json!({"dtype": "<i4", "astype": "|S4"}), DataType::Int32),
            (json!({"dtype": "<i4", "scale": 1}), DataType::Int32),
        ] {
            let err = Delta::from_config(config.as_object().unwrap(), &ChunkRepr::new(vec![3], dt))
                .unwrap_err();
            assert!(err.to_string().contains(NAME), "{config}: {err}");
        }
        let err =
            Delta::from_config(json!({"dtype": "<i2"}).as_object().unwrap(), &repr).unwrap_err();
        assert!(err.to_string().contains("configuration.dtype"), "{err}");
        // Wrong sizes are errors, not panics.
        let c = delta(json!({"dtype": "<i4", "astype": "<i2"}), DataType::Int32);
        assert!(c.encode(&[0u8; 11], &repr).is_err());
        assert!(c.decode_into(&[0u8; 12], &repr, &mut [0u8; 12]).is_err());
        assert!(c.decode_into(&[0u8; 6], &repr, &mut [0u8; 11]).is_err());
        let empty = ChunkRepr::new(vec![0], DataType::Int32);
        assert!(c.encode(&[], &empty).unwrap().is_empty());
        c.decode_into(&[], &empty, &mut []).unwrap();
    }
}
