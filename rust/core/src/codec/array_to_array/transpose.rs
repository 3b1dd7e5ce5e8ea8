//! `transpose` (v3 core codec; no v2 equivalent — v2 has only `order: "F"`): permutes the
//! dimensions of a chunk. Spec: zarr-specs v3.0, codecs/transpose.
//!
//! `order[i]` names the decoded dimension that becomes encoded dimension `i`. Early v3 drafts
//! wrote `"C"` (identity) and `"F"` (reversal); both are read.

use serde_json::{Map, Value};

use crate::codec::{
    box_fits, check_config_keys, check_len, codec_metadata, invalid_config, ArrayToArrayCodec,
    BoxRange, ChunkBox, ChunkRepr,
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

/// Elements per side of the square tiles a transposition copies: a tile's source rows and
/// destination rows then stay in the L1 cache while it is copied, where a whole row of a
/// reversed 64³ chunk would touch 64 source lines 8 KiB apart per destination row.
const TILE: usize = 16;

/// A box of elements moved from one buffer to another: its shape, and, in each buffer, where
/// it starts and how far one step along each of its dimensions moves (all in elements).
struct Walk<'a> {
    shape: &'a [u64],
    src_start: u64,
    src_strides: &'a [u64],
    dst_start: u64,
    dst_strides: &'a [u64],
}

/// Moves the elements of `walk`'s box from `src` to `dst`.
fn gather(src: &[u8], dst: &mut [u8], walk: &Walk<'_>, size: usize) {
    // Elements of a fixed size move as one load and store each; other sizes (records, fixed
    // strings) as byte runs.
    match size {
        1 => gather_elements::<1>(src, dst, walk, size),
        2 => gather_elements::<2>(src, dst, walk, size),
        4 => gather_elements::<4>(src, dst, walk, size),
        8 => gather_elements::<8>(src, dst, walk, size),
        16 => gather_elements::<16>(src, dst, walk, size),
        _ => gather_elements::<0>(src, dst, walk, size),
    }
}

/// `gather` for elements of `N` bytes (`N` = 0: of `size` bytes, known only at run time).
///
/// The box is walked as 2-d planes: its last dimension `l`, along which the destination is
/// contiguous (or nearly, in a box with steps), against the dimension `u` along which the
/// source is. Those planes are copied in tiles, so each source cache line read serves a tile's
/// worth of destination rows; the other dimensions (and `l` and `u` themselves when they
/// coincide, which leaves plain rows) are walked around them.
fn gather_elements<const N: usize>(src: &[u8], dst: &mut [u8], walk: &Walk<'_>, size: usize) {
    let size = if N == 0 { size } else { N };
    let ndim = walk.shape.len();
    let bytes =
        |strides: &[u64]| -> Vec<usize> { strides.iter().map(|&n| n as usize * size).collect() };
    let shape: Vec<usize> = walk.shape.iter().map(|&n| n as usize).collect();
    let (sstr, dstr) = (bytes(walk.src_strides), bytes(walk.dst_strides));
    let (src_start, dst_start) = (
        walk.src_start as usize * size,
        walk.dst_start as usize * size,
    );
    if shape.contains(&0) {
        return;
    }
    if ndim == 0 {
        dst[dst_start..dst_start + size].copy_from_slice(&src[src_start..src_start + size]);
        return;
    }
    let l = ndim - 1;
    // The destination dimension the source is contiguous along (of those longer than one).
    let u = (0..ndim)
        .filter(|&d| shape[d] > 1)
        .min_by_key(|&d| sstr[d])
        .unwrap_or(l);
    // Tiles when the source is dense along a dimension other than the last (its elements a
    // cache line apart or less); plain rows (one "row" of the plane per position of the outer
    // dimensions) otherwise.
    let tiled = u != l && sstr[u] < 64;
    let (rows, tile, src_row, dst_row) = if tiled {
        (shape[u], TILE, sstr[u], dstr[u])
    } else {
        (1, shape[l], 0, 0)
    };
    // The dimensions walked around each plane (all but `l`, and but `u` when it is tiled).
    let outer: Vec<usize> = (0..l).filter(|&d| !tiled || d != u).collect();
    let mut index = vec![0usize; outer.len()];
    let (mut src_base, mut dst_base) = (src_start, dst_start);
    loop {
        for i0 in (0..rows).step_by(tile) {
            for j0 in (0..shape[l]).step_by(tile) {
                let n = tile.min(shape[l] - j0);
                for i in i0..(i0 + tile).min(rows) {
                    let s = src_base + i * src_row + j0 * sstr[l];
                    let d = dst_base + i * dst_row + j0 * dstr[l];
                    if dstr[l] != size {
                        // Every other element or so of the destination (a box with steps).
                        for k in 0..n {
                            let (at, to) = (s + k * sstr[l], d + k * dstr[l]);
                            dst[to..to + size].copy_from_slice(&src[at..at + size]);
                        }
                        continue;
                    }
                    let run = &mut dst[d..d + n * size];
                    if sstr[l] == size {
                        // The source is contiguous along the row too: one copy.
                        run.copy_from_slice(&src[s..s + n * size]);
                        continue;
                    }
                    for (k, out) in run.chunks_exact_mut(size).enumerate() {
                        let at = s + k * sstr[l];
                        out.copy_from_slice(&src[at..at + size]);
                    }
                }
            }
        }
        // Advance the odometer over the outer dimensions.
        let mut k = outer.len();
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            let d = outer[k];
            index[k] += 1;
            src_base += sstr[d];
            dst_base += dstr[d];
            if index[k] < shape[d] {
                break;
            }
            src_base -= sstr[d] * index[k];
            dst_base -= dstr[d] * index[k];
            index[k] = 0;
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
        let walk = Walk {
            shape: &encoded.shape,
            src_start: 0,
            src_strides: &src_strides,
            dst_start: 0,
            dst_strides: &c_strides(&encoded.shape),
        };
        gather(data, &mut out, &walk, decoded.data_type.size());
        Ok(out)
    }

    fn decode_into(
        &self,
        encoded: &[u8],
        decoded: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        let whole: Vec<BoxRange> = decoded.shape.iter().map(|&n| BoxRange::all(n)).collect();
        match decoded.shape.contains(&0) {
            true => {
                check_len("transpose", encoded.len(), 0)?;
                check_len("transpose", out.len(), 0)
            }
            false => self.decode_box_into(encoded, decoded, out, &whole),
        }
    }

    fn encoded_box(&self, part: &ChunkBox) -> Option<Vec<BoxRange>> {
        // Encoded dimension k is decoded dimension order[k].
        (part.len() == self.order.len()).then(|| self.order.iter().map(|&d| part[d]).collect())
    }

    fn decode_box_into(
        &self,
        encoded: &[u8],
        decoded: &ChunkRepr,
        out: &mut [u8],
        part: &ChunkBox,
    ) -> Result<(), CodecError> {
        check_len("transpose", encoded.len(), decoded.nbytes())?;
        check_len("transpose", out.len(), decoded.nbytes())?;
        let ndim = self.order.len();
        if decoded.shape.len() != ndim || !box_fits(part, &decoded.shape) {
            return Err(CodecError::corrupt(
                "transpose",
                format!("{part:?} is not a box of a chunk of {:?}", decoded.shape),
            ));
        }
        let enc_strides = c_strides(&self.encoded_repr(decoded).shape);
        // Decoded dimension order[k] is encoded dimension k.
        let mut src_strides = vec![0u64; ndim];
        for (k, &d) in self.order.iter().enumerate() {
            src_strides[d] = enc_strides[k];
        }
        let dst_strides = c_strides(&decoded.shape);
        let start = |strides: &[u64]| part.iter().zip(strides).map(|(r, s)| r.first * s).sum();
        // One step of the box moves `step` positions along its dimension in both buffers.
        let stepped = |strides: &[u64]| -> Vec<u64> {
            part.iter().zip(strides).map(|(r, s)| r.step * s).collect()
        };
        let shape: Vec<u64> = part.iter().map(BoxRange::count).collect();
        let walk = Walk {
            shape: &shape,
            src_start: start(&src_strides),
            src_strides: &stepped(&src_strides),
            dst_start: start(&dst_strides),
            dst_strides: &stepped(&dst_strides),
        };
        gather(encoded, out, &walk, decoded.data_type.size());
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

    /// The decoded chunk from an encoded one, element by element from the spec's definition.
    fn reference_decode(order: &[usize], shape: &[u64], size: usize, encoded: &[u8]) -> Vec<u8> {
        let enc_shape: Vec<u64> = order.iter().map(|&d| shape[d]).collect();
        let (dec_strides, enc_strides) = (c_strides(shape), c_strides(&enc_shape));
        let n: u64 = shape.iter().product();
        let mut out = vec![0u8; n as usize * size];
        for e in 0..n {
            let index: Vec<u64> = (0..shape.len())
                .map(|d| e / dec_strides[d] % shape[d])
                .collect();
            let at: u64 = (order.iter().enumerate())
                .map(|(k, &d)| index[d] * enc_strides[k])
                .sum();
            let (e, at) = (e as usize * size, at as usize * size);
            out[e..e + size].copy_from_slice(&encoded[at..at + size]);
        }
        out
    }

    #[test]
    fn tiled_transposition_matches_the_definition() {
        let shapes: [&[u64]; 7] = [
            &[37, 3, 20],
            &[64, 64, 8],
            &[1, 17, 33],
            &[5, 1, 1, 18],
            &[40, 23],
            &[1],
            &[19],
        ];
        for shape in shapes {
            let ndim = shape.len();
            // Every permutation of the dimensions (ndim <= 4).
            let mut orders: Vec<Vec<usize>> = vec![vec![]];
            for _ in 0..ndim {
                orders = (orders.into_iter())
                    .flat_map(|o| {
                        (0..ndim)
                            .filter(|d| !o.contains(d))
                            .map(|d| [o.clone(), vec![d]].concat())
                            .collect::<Vec<_>>()
                    })
                    .collect();
            }
            for size in [1usize, 2, 3, 4, 8, 12, 16] {
                let repr = ChunkRepr::new(shape.to_vec(), DataType::RawBits(size));
                let n = repr.nbytes();
                let encoded: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
                for order in &orders {
                    let t = transpose(json!(order), ndim);
                    let expected = reference_decode(order, shape, size, &encoded);
                    let mut out = vec![0u8; n];
                    t.decode_into(&encoded, &repr, &mut out).unwrap();
                    assert_eq!(out, expected, "{shape:?} {order:?} size {size}");
                    // Encoding gives back what was decoded from.
                    assert_eq!(t.encode(&out, &repr).unwrap(), encoded);
                    // A box, with steps of 1 and of 2 or 3, decodes its own elements right,
                    // at their places, and nothing else.
                    for steps in [[1u64; 4], [2, 3, 1, 2]] {
                        let part: Vec<BoxRange> = (shape.iter().zip(steps))
                            .map(|(&n, step)| {
                                let (first, last) = (n / 3, n - 1 - n / 4);
                                let last = first.max(last - (last - first) % step);
                                BoxRange { first, last, step }
                            })
                            .collect();
                        let mut boxed = vec![0xeeu8; n];
                        t.decode_box_into(&encoded, &repr, &mut boxed, &part)
                            .unwrap();
                        let strides = c_strides(shape);
                        for e in 0..n / size {
                            let inside = (0..ndim).all(|d| {
                                let i = e as u64 / strides[d] % shape[d];
                                let r = part[d];
                                r.first <= i && i <= r.last && (i - r.first) % r.step == 0
                            });
                            let bytes = e * size..(e + 1) * size;
                            match inside {
                                true => assert_eq!(boxed[bytes.clone()], expected[bytes]),
                                false => assert!(boxed[bytes].iter().all(|&b| b == 0xee)),
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn boxes_outside_the_chunk_are_refused() {
        let t = transpose(json!([1, 0]), 2);
        let repr = ChunkRepr::new(vec![4, 5], DataType::UInt8);
        let mut out = vec![0u8; 20];
        let span = BoxRange::span;
        let stepped = |first, last, step| BoxRange { first, last, step };
        for part in [
            vec![span(0, 4), span(0, 4)],
            vec![span(2, 1), span(0, 1)],
            vec![span(0, 1)],
            vec![stepped(0, 3, 0), span(0, 1)],
            vec![stepped(0, 3, 2), span(0, 1)],
        ] {
            assert!(t
                .decode_box_into(&[0u8; 20], &repr, &mut out, &part)
                .is_err());
        }
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
