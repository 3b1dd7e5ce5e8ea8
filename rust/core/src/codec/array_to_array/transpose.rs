//! `transpose` (v3 core codec; no v2 equivalent — v2 has only `order: "F"`): permutes the
//! dimensions of a chunk. Spec: zarr-specs v3.0, codecs/transpose.
//!
//! `order[i]` names the decoded dimension that becomes encoded dimension `i`. Early v3 drafts
//! wrote `"C"` (identity) and `"F"` (reversal); both are read.

use serde_json::{Map, Value};

use crate::codec::{
    check_config_keys, check_len, codec_metadata, invalid_config, ArrayToArrayCodec, ChunkRepr,
};
use crate::error::{CodecError, MetadataError};

#[derive(Debug, Clone)]
pub struct Transpose {
    order: Vec<usize>,
}

impl Transpose {
    pub fn from_config(config: &Map<String, Value>, ndim: usize) -> Result<Self, MetadataError> {
        check_config_keys("transpose", config, &["order"])?;
        let value = config
            .get("order")
            .ok_or_else(|| MetadataError::missing("codecs[transpose].configuration.order"))?;
        let order: Vec<usize> = match value {
            Value::String(s) if s == "C" => (0..ndim).collect(),
            Value::String(s) if s == "F" => (0..ndim).rev().collect(),
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_u64().map(|u| u as usize))
                .collect::<Option<_>>()
                .ok_or_else(|| invalid_config("transpose", "order", value, "expected integers"))?,
            _ => {
                return Err(invalid_config(
                    "transpose",
                    "order",
                    value,
                    "expected a permutation",
                ))
            }
        };
        let mut seen = vec![false; ndim];
        if order.len() != ndim
            || order
                .iter()
                .any(|&d| d >= ndim || std::mem::replace(&mut seen[d], true))
        {
            return Err(invalid_config(
                "transpose",
                "order",
                value,
                &format!("expected a permutation of 0..{ndim}"),
            ));
        }
        Ok(Self { order })
    }
}

/// C-order strides, in elements.
fn c_strides(shape: &[u64]) -> Vec<u64> {
    let mut strides = vec![1u64; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    strides
}

/// Writes `dst` (C order, shape `dst_shape`) from `src`, where moving one step along
/// destination dimension `d` moves `src_strides[d]` elements in the source.
fn gather(src: &[u8], dst: &mut [u8], dst_shape: &[u64], src_strides: &[u64], size: usize) {
    let n: u64 = dst_shape.iter().product();
    if n == 0 {
        return;
    }
    let ndim = dst_shape.len();
    if ndim == 0 {
        dst[..size].copy_from_slice(&src[..size]);
        return;
    }
    let inner = dst_shape[ndim - 1] as usize;
    let inner_stride = src_strides[ndim - 1] as usize * size;
    let mut index = vec![0u64; ndim];
    let mut src_base = 0usize;
    for row in dst.chunks_exact_mut(inner * size) {
        let mut s = src_base;
        for out in row.chunks_exact_mut(size) {
            out.copy_from_slice(&src[s..s + size]);
            s += inner_stride;
        }
        // Advance the odometer over the outer dimensions.
        for d in (0..ndim - 1).rev() {
            index[d] += 1;
            src_base += src_strides[d] as usize * size;
            if index[d] < dst_shape[d] {
                break;
            }
            src_base -= (src_strides[d] * index[d]) as usize * size;
            index[d] = 0;
        }
    }
}

impl ArrayToArrayCodec for Transpose {
    fn encoded_repr(&self, decoded: &ChunkRepr) -> ChunkRepr {
        ChunkRepr {
            shape: self.order.iter().map(|&d| decoded.shape[d]).collect(),
            ..decoded.clone()
        }
    }

    fn encode(&self, data: &[u8], decoded: &ChunkRepr) -> Result<Vec<u8>, CodecError> {
        check_len("transpose", data.len(), decoded.nbytes())?;
        let encoded = self.encoded_repr(decoded);
        let strides = c_strides(&decoded.shape);
        let src_strides: Vec<u64> = self.order.iter().map(|&d| strides[d]).collect();
        let mut out = vec![0u8; data.len()];
        gather(
            data,
            &mut out,
            &encoded.shape,
            &src_strides,
            decoded.data_type.size(),
        );
        Ok(out)
    }

    fn decode_into(
        &self,
        encoded: &[u8],
        decoded: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        check_len("transpose", encoded.len(), decoded.nbytes())?;
        check_len("transpose", out.len(), decoded.nbytes())?;
        let enc_strides = c_strides(&self.encoded_repr(decoded).shape);
        // Decoded dimension order[k] is encoded dimension k.
        let mut src_strides = vec![0u64; self.order.len()];
        for (k, &d) in self.order.iter().enumerate() {
            src_strides[d] = enc_strides[k];
        }
        gather(
            encoded,
            out,
            &decoded.shape,
            &src_strides,
            decoded.data_type.size(),
        );
        Ok(())
    }

    fn metadata(&self) -> Value {
        let mut config = Map::new();
        config.insert("order".into(), serde_json::json!(self.order));
        codec_metadata("transpose", config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::DataType;
    use serde_json::json;

    fn transpose(order: Value, ndim: usize) -> Transpose {
        let mut config = Map::new();
        config.insert("order".into(), order);
        Transpose::from_config(&config, ndim).unwrap()
    }

    #[test]
    fn transposes_a_matrix() {
        let t = transpose(json!([1, 0]), 2);
        let repr = ChunkRepr::new(vec![2, 3], DataType::UInt8);
        let enc = t.encode(&[0, 1, 2, 3, 4, 5], &repr).unwrap();
        assert_eq!(enc, vec![0, 3, 1, 4, 2, 5]);
        let mut out = vec![0u8; 6];
        t.decode_into(&enc, &repr, &mut out).unwrap();
        assert_eq!(out, vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn three_d_round_trip_and_legacy_orders() {
        let repr = ChunkRepr::new(vec![2, 3, 4], DataType::UInt16);
        let data: Vec<u8> = (0..48).collect();
        for order in [json!([2, 0, 1]), json!([0, 1, 2]), json!("F"), json!("C")] {
            let t = transpose(order, 3);
            let enc = t.encode(&data, &repr).unwrap();
            let mut out = vec![0u8; 48];
            t.decode_into(&enc, &repr, &mut out).unwrap();
            assert_eq!(out, data);
        }
        // Element [i, j, k] of the decoded array is element [k, i, j] of the encoded one.
        let t = transpose(json!([2, 0, 1]), 3);
        let enc = t.encode(&data, &repr).unwrap();
        let elem = |buf: &[u8], i: usize| u16::from_ne_bytes([buf[2 * i], buf[2 * i + 1]]);
        let (i, j, k) = (1, 2, 3);
        assert_eq!(
            elem(&enc, k * 6 + i * 3 + j),
            elem(&data, i * 12 + j * 4 + k)
        );
    }

    #[test]
    fn bad_orders() {
        for order in [
            json!([0, 0]),
            json!([0]),
            json!([0, 2]),
            json!("X"),
            json!([0, -1]),
        ] {
            let mut config = Map::new();
            config.insert("order".into(), order);
            assert!(Transpose::from_config(&config, 2).is_err());
        }
    }
}
