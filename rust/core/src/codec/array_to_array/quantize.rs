//! `quantize` (v2 numcodecs filter id `quantize`; v3 name `numcodecs.quantize`): numcodecs'
//! `Quantize(digits, dtype, astype)`, a lossy filter for floats. Encoding rounds each value to
//! a multiple of 2^-bits, the power of two just finer than 10^-digits, in `dtype`, and stores
//! it as `astype`; decoding only casts back.
//!
//! The scale is computed as numcodecs computes it, with the same libm functions (`pow`,
//! `log10`, `log2`), so it is the same number; values are rounded half to even in `dtype`.

use serde_json::{Map, Value};

use super::numeric::{
    cast, cast_into, cast_repr, decoded_dtype, dtype_config, map_in_place, unsupported_type,
    with_float, DtypeField, Float,
};
use crate::codec::{
    check_config_keys, check_len, codec_metadata, invalid_config, ArrayToArrayCodec, ChunkRepr,
};
use crate::error::{CodecError, MetadataError};

const NAME: &str = "numcodecs.quantize";

#[derive(Debug, Clone)]
pub struct Quantize {
    digits: i64,
    /// 2^bits, the multiplier before rounding.
    scale: f64,
    dtype: DtypeField,
    astype: DtypeField,
}

/// numcodecs' scale for `digits` decimal digits; `None` where Python fails (overflow).
fn scale_for(digits: i64) -> Option<f64> {
    let precision = 10f64.powf(-(digits as f64));
    if !precision.is_finite() || precision == 0.0 {
        return None;
    }
    let exp = precision.log10();
    let exp = if exp < 0.0 { exp.floor() } else { exp.ceil() };
    let bits = 10f64.powf(-exp).log2().ceil();
    let scale = 2f64.powf(bits);
    (scale.is_finite() && scale > 0.0).then_some(scale)
}

impl Quantize {
    pub fn from_config(
        config: &Map<String, Value>,
        decoded: &ChunkRepr,
    ) -> Result<Self, MetadataError> {
        check_config_keys(NAME, config, &["digits", "dtype", "astype"])?;
        let value = config
            .get("digits")
            .filter(|v| !v.is_null())
            .ok_or_else(|| {
                MetadataError::missing(&format!("codecs[{NAME}].configuration.digits"))
            })?;
        let digits = value
            .as_i64()
            .ok_or_else(|| invalid_config(NAME, "digits", value, "expected an integer"))?;
        let scale = scale_for(digits)
            .ok_or_else(|| invalid_config(NAME, "digits", value, "out of a float's range"))?;
        let dtype = decoded_dtype(NAME, config, "dtype", &decoded.data_type)?;
        let astype = dtype_config(NAME, config, "astype")?.unwrap_or_else(|| dtype.clone());
        for field in [&dtype, &astype] {
            if !field.num.is_float() {
                return Err(unsupported_type(NAME, &field.num.data_type()));
            }
        }
        Ok(Self {
            digits,
            scale,
            dtype,
            astype,
        })
    }

    fn quantize<T: Float>(&self, buf: &mut [u8]) {
        let scale = T::from_val(super::numeric::Val::F(self.scale));
        map_in_place(buf, |x: T| scale.mul(x).rint().div(scale));
    }
}

impl ArrayToArrayCodec for Quantize {
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
        let mut values = data.to_vec();
        with_float!(self.dtype.num, T => self.quantize::<T>(&mut values));
        Ok(if self.astype.num == self.dtype.num {
            values
        } else {
            cast(&values, self.dtype.num, self.astype.num)
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
        cast_into(encoded, self.astype.num, out, self.dtype.num);
        Ok(())
    }

    fn metadata(&self) -> Value {
        let mut config = Map::new();
        config.insert("digits".into(), self.digits.into());
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

    fn codec(config: Value, dt: DataType) -> Quantize {
        Quantize::from_config(config.as_object().unwrap(), &ChunkRepr::new(vec![1], dt)).unwrap()
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
    fn encodes_as_numcodecs() {
        // `numcodecs.Quantize(**config).encode(np.linspace(0, 1, 10, dtype))`.
        let cases = [
            (
                json!({"digits": 1, "dtype": "<f8"}),
                DataType::Float64,
                "0000000000000000000000000000c03f000000000000d03f000000000000d43f000000000000dc3f\
                 000000000000e23f000000000000e63f000000000000e83f000000000000ec3f000000000000f03f",
            ),
            (
                json!({"digits": 2, "dtype": "<f8"}),
                DataType::Float64,
                "0000000000000000000000000000bc3f000000000000cc3f000000000080d53f000000000080dc3f\
                 0000000000c0e13f000000000040e53f000000000000e93f000000000080ec3f000000000000f03f",
            ),
            (
                json!({"digits": 3, "dtype": "<f8"}),
                DataType::Float64,
                "0000000000000000000000000080bc3f000000000080cc3f000000000050d53f000000000070dc3f\
                 0000000000c8e13f000000000058e53f0000000000e0e83f000000000070ec3f000000000000f03f",
            ),
            (
                json!({"digits": 0, "dtype": "<f8"}),
                DataType::Float64,
                "00000000000000000000000000000000000000000000000000000000000000000000000000000000\
                 000000000000f03f000000000000f03f000000000000f03f000000000000f03f000000000000f03f",
            ),
            (
                json!({"digits": -1, "dtype": "<f8"}),
                DataType::Float64,
                "00000000000000000000000000000000000000000000000000000000000000000000000000000000\
                 00000000000000000000000000000000000000000000000000000000000000000000000000000000",
            ),
            (
                json!({"digits": 2, "dtype": "<f8", "astype": "<f4"}),
                DataType::Float64,
                "000000000000e03d0000603e0000ac3e0000e43e00000e3f00002a3f0000483f0000643f0000803f",
            ),
            (
                json!({"digits": 2, "dtype": "<f4"}),
                DataType::Float32,
                "000000000000e03d0000603e0000ac3e0000e43e00000e3f00002a3f0000483f0000643f0000803f",
            ),
        ];
        for (config, dt, expected) in cases {
            let c = codec(config.clone(), dt.clone());
            let input: Vec<u8> = (0..10)
                .flat_map(|i| {
                    let x = i as f64 / 9.0;
                    if dt == DataType::Float32 {
                        (x as f32).to_ne_bytes().to_vec()
                    } else {
                        x.to_ne_bytes().to_vec()
                    }
                })
                .collect();
            let repr = ChunkRepr::new(vec![10], dt.clone());
            let size = c.encoded_repr(&repr).data_type.size();
            let enc = c.encode(&input, &repr).unwrap();
            assert_eq!(enc, native(hex(expected), size), "{config}");
            let mut out = vec![0u8; input.len()];
            c.decode_into(&enc, &repr, &mut out).unwrap();
            assert_eq!(out, cast(&enc, c.astype.num, c.dtype.num));
        }
    }

    #[test]
    fn config_and_errors() {
        let c = codec(json!({"digits": 3}), DataType::Float32);
        let native = if cfg!(target_endian = "big") {
            ">f4"
        } else {
            "<f4"
        };
        assert_eq!(
            c.metadata()["configuration"],
            json!({"digits": 3, "dtype": native, "astype": native})
        );
        for (config, dt) in [
            (json!({}), DataType::Float64),
            (json!({"digits": 1.5}), DataType::Float64),
            (json!({"digits": 400}), DataType::Float64),
            (json!({"digits": -400}), DataType::Float64),
            (json!({"digits": 2}), DataType::Int32),
            (json!({"digits": 2, "astype": "<i4"}), DataType::Float64),
            (json!({"digits": 2, "dtype": "<f4"}), DataType::Float64),
            (json!({"digits": 2, "keepbits": 2}), DataType::Float64),
        ] {
            let err =
                Quantize::from_config(config.as_object().unwrap(), &ChunkRepr::new(vec![1], dt))
                    .unwrap_err();
            assert!(err.to_string().contains(NAME), "{config}: {err}");
        }
    }
}
