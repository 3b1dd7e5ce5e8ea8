//! `fixedscaleoffset` (v2 numcodecs filter id `fixedscaleoffset`; v3 name
//! `numcodecs.fixedscaleoffset`): numcodecs' `FixedScaleOffset(offset, scale, dtype, astype)`.
//! Encoding stores `round((x - offset) * scale)` as `astype` (rounding half to even, as
//! `numpy.around`); decoding gives `x / scale + offset` as `dtype`.
//!
//! The arithmetic is numpy's (2.x, NEP 50), where `offset` and `scale` are Python numbers: on
//! floats it is done in the array's own float type; on integers, an int `offset` is subtracted
//! in the integer type (wrapping) and a float `offset` or `scale` turns the values into
//! float64; dividing integers is done in float64. JSON keeps the difference between `1000`
//! and `1000.0`, and so does this codec.

use serde_json::{Map, Value};

use super::numeric::{
    cast, cast_into, cast_repr, decoded_dtype, dtype_config, map_in_place, unsupported_type,
    with_float, with_num, Arith, DtypeField, Float, Num, Val,
};
use crate::codec::{
    check_config_keys, check_len, codec_metadata, invalid_config, ArrayToArrayCodec, ChunkRepr,
};
use crate::error::{CodecError, MetadataError};

const NAME: &str = "numcodecs.fixedscaleoffset";

#[derive(Debug, Clone)]
pub struct FixedScaleOffset {
    offset: Val,
    scale: Val,
    /// As configured, written back unchanged.
    offset_json: Value,
    scale_json: Value,
    dtype: DtypeField,
    astype: DtypeField,
}

fn number(config: &Map<String, Value>, key: &str) -> Result<(Val, Value), MetadataError> {
    let v = config
        .get(key)
        .filter(|v| !v.is_null())
        .ok_or_else(|| MetadataError::missing(&format!("codecs[{NAME}].configuration.{key}")))?;
    let val = Val::from_json(v).ok_or_else(|| invalid_config(NAME, key, v, "expected a number"))?;
    Ok((val, v.clone()))
}

impl FixedScaleOffset {
    pub fn from_config(
        config: &Map<String, Value>,
        decoded: &ChunkRepr,
    ) -> Result<Self, MetadataError> {
        check_config_keys(NAME, config, &["offset", "scale", "dtype", "astype"])?;
        let (offset, offset_json) = number(config, "offset")?;
        let (scale, scale_json) = number(config, "scale")?;
        let dtype = decoded_dtype(NAME, config, "dtype", &decoded.data_type)?;
        let astype = dtype_config(NAME, config, "astype")?.unwrap_or_else(|| dtype.clone());
        for field in [&dtype, &astype] {
            if field.num == Num::Bool {
                return Err(unsupported_type(NAME, &field.num.data_type()));
            }
        }
        Ok(Self {
            offset,
            scale,
            offset_json,
            scale_json,
            dtype,
            astype,
        })
    }

    /// `(x - offset) * scale`, rounded, in float type `T`.
    fn scale_float<T: Float>(&self, buf: &mut [u8], subtract: bool) {
        let offset = T::from_val(self.offset);
        let scale = T::from_val(self.scale);
        if subtract {
            map_in_place(buf, |x: T| x.sub(offset).mul(scale).rint());
        } else {
            map_in_place(buf, |x: T| x.mul(scale).rint());
        }
    }

    fn subtract_int<T: Arith>(&self, buf: &mut [u8]) {
        let offset = T::from_val(self.offset);
        map_in_place(buf, |x: T| x.sub(offset));
    }

    fn scale_int<T: Arith>(&self, buf: &mut [u8]) {
        let scale = T::from_val(self.scale);
        map_in_place(buf, |x: T| x.mul(scale));
    }

    fn unscale<T: Float>(&self, buf: &mut [u8]) {
        let offset = T::from_val(self.offset);
        let scale = T::from_val(self.scale);
        map_in_place(buf, |x: T| x.div(scale).add(offset));
    }
}

impl ArrayToArrayCodec for FixedScaleOffset {
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
        let dtype = self.dtype.num;
        let (values, num) = if dtype.is_float() {
            let mut values = data.to_vec();
            with_float!(dtype, T => self.scale_float::<T>(&mut values, true));
            (values, dtype)
        } else if !self.offset.is_float() {
            let mut values = data.to_vec();
            with_num!(dtype, T => self.subtract_int::<T>(&mut values));
            if self.scale.is_float() {
                let mut values = cast(&values, dtype, Num::F64);
                self.scale_float::<f64>(&mut values, false);
                (values, Num::F64)
            } else {
                // Integers times an integer: no rounding to do.
                with_num!(dtype, T => self.scale_int::<T>(&mut values));
                (values, dtype)
            }
        } else {
            let mut values = cast(data, dtype, Num::F64);
            self.scale_float::<f64>(&mut values, true);
            (values, Num::F64)
        };
        Ok(if num == self.astype.num {
            values
        } else {
            cast(&values, num, self.astype.num)
        })
    }

    fn decode_into(
        &self,
        encoded: &[u8],
        decoded: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        let n = decoded.num_elements() as usize;
        let astype = self.astype.num;
        check_len(NAME, encoded.len(), n * astype.size())?;
        check_len(NAME, out.len(), decoded.nbytes())?;
        let num = if astype.is_float() { astype } else { Num::F64 };
        let mut values = cast(encoded, astype, num);
        with_float!(num, T => self.unscale::<T>(&mut values));
        cast_into(&values, num, out, self.dtype.num);
        Ok(())
    }

    fn metadata(&self) -> Value {
        let mut config = Map::new();
        config.insert("offset".into(), self.offset_json.clone());
        config.insert("scale".into(), self.scale_json.clone());
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

    fn codec(config: Value, dt: &DataType) -> FixedScaleOffset {
        let repr = ChunkRepr::new(vec![1], dt.clone());
        FixedScaleOffset::from_config(config.as_object().unwrap(), &repr).unwrap()
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

    fn linspace() -> Vec<u8> {
        // np.linspace(1000, 1001, 10, dtype="<f8")
        (0..10)
            .flat_map(|i| (1000.0 + i as f64 / 9.0).to_ne_bytes())
            .collect()
    }

    #[test]
    fn matches_numcodecs() {
        // (config, dtype, input (little endian), encode(input), decode(encode(input))), from
        // `numcodecs.FixedScaleOffset(**config)`.
        let f4 = hex("0000003f0000c03f00002040000000bf0000c0bf0000504000247449");
        let cases: Vec<(Value, DataType, Vec<u8>, &str, &str)> = vec![
            (
                json!({"offset": 1000, "scale": 10, "dtype": "<f8", "astype": "|u1"}),
                DataType::Float64,
                linspace(),
                "0001020304060708090a",
                "0000000000408f40cdcccccccc408f409a99999999418f406666666666428f403333333333438f40\
                 cdcccccccc448f409a99999999458f406666666666468f403333333333478f400000000000488f40",
            ),
            (
                json!({"offset": 1000, "scale": 1000, "dtype": "<f8", "astype": "<u2"}),
                DataType::Float64,
                linspace(),
                "00006f00de004d01bc012c029b020a037903e803",
                "0000000000408f40d9cef753e3408f40b29defa7c6418f408b6ce7fba9428f40643bdf4f8d438f40\
                 9cc420b072448f407593180456458f404e62105839468f40273108ac1c478f400000000000488f40",
            ),
            (
                json!({"offset": 1000.5, "scale": 2, "dtype": "<f8", "astype": "|i1"}),
                DataType::Float64,
                linspace(),
                "ffffff00000000010101",
                "0000000000408f400000000000408f400000000000408f400000000000448f400000000000448f40\
                 0000000000448f400000000000448f400000000000488f400000000000488f400000000000488f40",
            ),
            // Ties round to even: [0.5, 1.5, 2.5, -0.5, -1.5, 3.25, 1e6] as float32.
            (
                json!({"offset": 0, "scale": 1, "dtype": "<f4", "astype": "<i4"}),
                DataType::Float32,
                f4.clone(),
                "00000000020000000200000000000000feffffff0300000040420f00",
                "00000000000000400000004000000000000000c00000404000247449",
            ),
            (
                json!({"offset": 0.1, "scale": 3.3, "dtype": "<f4", "astype": "<i2"}),
                DataType::Float32,
                f4,
                "010005000800fefffbff0a00a05a",
                "fd59ce3e49bdce3f308d2140308d01bfaf23b5bfe356484039b3db45",
            ),
            // int16 [5, 100, -7, 32767]: integer arithmetic, wrapping.
            (
                json!({"offset": 3, "scale": 2, "dtype": "<i2", "astype": "<i2"}),
                DataType::Int16,
                hex("05006400f9ffff7f"),
                "0400c200ecfff8ff",
                "05006400f9ffffff",
            ),
            (
                json!({"offset": 3, "scale": 0.5, "dtype": "<i2", "astype": "<i1"}),
                DataType::Int16,
                hex("05006400f9ffff7f"),
                "0130fbfe",
                "05006300f9ffffff",
            ),
            (
                json!({"offset": 2.5, "scale": 1, "dtype": "<i2", "astype": "<i2"}),
                DataType::Int16,
                hex("05006400f9ffff7f"),
                "02006200f6fffc7f",
                "04006400f9fffe7f",
            ),
            // float16 [1000, 1000.5, 1001, 1003.5]: computed in half precision.
            (
                json!({"offset": 1000, "scale": 10, "dtype": "<f2", "astype": "|u1"}),
                DataType::Float16,
                hex("d063d163d263d763"),
                "00050a23",
                "d063d163d263d763",
            ),
        ];
        for (config, dt, input, encoded, decoded) in cases {
            let c = codec(config.clone(), &dt);
            let n = input.len() / dt.size();
            let repr = ChunkRepr::new(vec![n as u64], dt.clone());
            let size = c.encoded_repr(&repr).data_type.size();
            let input = native(input, dt.size());
            let enc = c.encode(&input, &repr).unwrap();
            assert_eq!(enc, native(hex(encoded), size), "{config}");
            let mut out = vec![0u8; input.len()];
            c.decode_into(&enc, &repr, &mut out).unwrap();
            assert_eq!(out, native(hex(decoded), dt.size()), "{config}");
        }
    }

    #[test]
    fn config_fill_and_errors() {
        let c = codec(
            json!({"offset": 1000, "scale": 10, "astype": "u1"}),
            &DataType::Float64,
        );
        let native = if cfg!(target_endian = "big") {
            ">f8"
        } else {
            "<f8"
        };
        assert_eq!(
            c.metadata()["configuration"],
            json!({"offset": 1000, "scale": 10, "dtype": native, "astype": "u1"})
        );
        // The encoded chunks' fill value is the fill value cast, not encoded, as zarr-python
        // makes it (out of range, wrapped as numpy wraps it): exact where it casts back.
        for (fill, cast, exact) in [(7.0f64, 7u8, true), (7.5, 7, false), (1001.0, 233, false)] {
            let repr = ChunkRepr::with_fill(vec![4], DataType::Float64, &fill.to_ne_bytes());
            let enc = c.encoded_repr(&repr);
            assert_eq!(
                (enc.data_type, &enc.fill_value[..], enc.fill_is_exact),
                (DataType::UInt8, &[cast][..], exact)
            );
        }
        for (config, dt) in [
            (json!({"scale": 1}), DataType::Float64),
            (json!({"offset": 1}), DataType::Float64),
            (json!({"offset": "1", "scale": 1}), DataType::Float64),
            (
                json!({"offset": 1, "scale": 1, "dtype": "<f4"}),
                DataType::Float64,
            ),
            (json!({"offset": 1, "scale": 1}), DataType::Bool),
            (
                json!({"offset": 1, "scale": 1, "astype": "<c8"}),
                DataType::Float64,
            ),
            (
                json!({"offset": 1, "scale": 1, "digits": 1}),
                DataType::Float64,
            ),
        ] {
            let repr = ChunkRepr::new(vec![1], dt);
            let err =
                FixedScaleOffset::from_config(config.as_object().unwrap(), &repr).unwrap_err();
            assert!(err.to_string().contains(NAME), "{config}: {err}");
        }
        let repr = ChunkRepr::new(vec![2], DataType::Float64);
        assert!(c.encode(&[0u8; 15], &repr).is_err());
        assert!(c.decode_into(&[0u8; 3], &repr, &mut [0u8; 16]).is_err());
    }
}
