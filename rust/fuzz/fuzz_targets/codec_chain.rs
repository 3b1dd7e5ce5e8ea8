//! Codec chains decoding bytes the fuzzer gives or damages, whole and in part.
//!
//! Each input picks a chain (every bytes→bytes codec, numcodecs' among them, behind the bytes
//! codec, a transpose or a filter), a chunk shape and a data type. The chunk is either the
//! fuzzer's own bytes or a real encoding of known elements, damaged or not. It is decoded
//! whole and as a box (with steps). Nothing may crash or hang, and AddressSanitizer checks
//! every copy; an undamaged chunk must decode to its elements, and where the whole decode
//! succeeds a box that decodes must hold the same elements.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use oxzarr_core::codec::array_to_bytes::vlen::VlenChunk;
use oxzarr_core::codec::{BoxRange, ChunkRepr, CodecChain};
use oxzarr_core::metadata::DataType;
use serde_json::{json, Value};

#[derive(Arbitrary, Debug)]
struct Input {
    chain: u8,
    element: u8,
    shape: Vec<u8>,
    stored: Stored,
    part: Vec<(u8, u8, u8)>,
}

#[derive(Arbitrary, Debug)]
enum Stored {
    Raw(Vec<u8>),
    Encoded(Vec<(u32, u8)>, Option<u32>),
}

fn chain(i: u8, size: usize) -> Value {
    let bytes = json!({"name": "bytes", "configuration": {"endian": "little"}});
    let big = json!({"name": "bytes", "configuration": {"endian": "big"}});
    let blosc = |cname: &str, shuffle: &str, typesize: usize, blocksize: usize| {
        json!({"name": "blosc", "configuration": {"cname": cname, "clevel": 5,
            "shuffle": shuffle, "typesize": typesize, "blocksize": blocksize}})
    };
    let named = |name: &str, config: Value| json!({"name": name, "configuration": config});
    match i % 27 {
        0 => json!([bytes]),
        1 => json!([big]),
        2 => json!([bytes, named("zstd", json!({"level": 1, "checksum": false}))]),
        3 => json!([bytes, named("zstd", json!({"level": 3, "checksum": true}))]),
        4 => json!([bytes, named("gzip", json!({"level": 1}))]),
        5 => json!([bytes, {"name": "crc32c"}]),
        6 => json!([bytes, blosc("lz4", "shuffle", size, 0)]),
        7 => json!([bytes, blosc("lz4", "shuffle", size, 128)]),
        8 => json!([bytes, blosc("zstd", "bitshuffle", size, 256)]),
        9 => json!([bytes, blosc("blosclz", "noshuffle", 1, 64)]),
        10 => json!([bytes, blosc("zlib", "shuffle", size, 0)]),
        11 => json!([bytes, blosc("lz4hc", "bitshuffle", 3, 32)]),
        12 => json!([{"name": "transpose", "configuration": {"order": "F"}}, bytes,
                     named("zstd", json!({"level": 1, "checksum": false}))]),
        13 => json!([{"name": "transpose", "configuration": {"order": "F"}}, big,
                     blosc("lz4", "shuffle", size, 64)]),
        14 => json!([bytes, named("numcodecs.zlib", json!({"level": 1}))]),
        15 => json!([bytes, named("numcodecs.bz2", json!({"level": 1}))]),
        16 => json!([bytes, named("numcodecs.lz4", json!({"acceleration": 1}))]),
        17 => json!([bytes, named("numcodecs.lzma", json!({}))]),
        18 => json!([
            bytes,
            named("numcodecs.shuffle", json!({"elementsize": size}))
        ]),
        19 => json!([bytes, {"name": "numcodecs.crc32"}, {"name": "numcodecs.adler32"}]),
        20 => json!([bytes, {"name": "numcodecs.fletcher32"}]),
        21 => json!([
            bytes,
            named("numcodecs.shuffle", json!({"elementsize": 3})),
            named("numcodecs.zstd", json!({"level": 1}))
        ]),
        22 => json!([
            bytes,
            named(
                "numcodecs.blosc",
                json!({"cname": "lz4", "clevel": 1,
                     "shuffle": 2, "blocksize": 0})
            )
        ]),
        _ => json!([{"name": "transpose", "configuration": {"order": "F"}}, bytes,
                    named("numcodecs.packbits", json!({}))]),
    }
}

/// An encoded chunk with up to four bytes changed (never to themselves) and cut to `cut`
/// bytes (modulo its length), and whether it is still the chunk as encoded.
fn damaged(mut bytes: Vec<u8>, changes: &[(u32, u8)], cut: Option<u32>) -> (Vec<u8>, bool) {
    for &(at, byte) in changes.iter().take(4) {
        if !bytes.is_empty() {
            let i = at as usize % bytes.len();
            bytes[i] ^= byte | 1;
        }
    }
    if let Some(keep) = cut {
        bytes.truncate(keep as usize % (bytes.len() + 1));
    }
    (bytes, changes.is_empty() && cut.is_none())
}

fn data_type(element: u8) -> DataType {
    match element % 8 {
        0 => DataType::UInt8,
        1 => DataType::UInt16,
        2 => DataType::Int32,
        3 => DataType::Float64,
        4 => DataType::Complex128,
        5 => DataType::String,
        6 => DataType::Bytes,
        _ => DataType::Bool,
    }
}

fuzz_target!(|input: Input| {
    let mut shape: Vec<u64> = input
        .shape
        .iter()
        .take(3)
        .map(|&n| u64::from(n) % 24 + 1)
        .collect();
    if shape.is_empty() {
        shape.push(1);
    }
    let dt = data_type(input.element);
    let size = dt.size();
    let Ok(chain) = CodecChain::from_metadata(
        chain(input.chain, size)
            .as_array()
            .map_or(&[][..], Vec::as_slice),
        &ChunkRepr::new(shape.clone(), dt.clone()),
    ) else {
        return;
    };
    let n: u64 = shape.iter().product();
    if dt.is_variable() {
        return variable_length(&chain, n as usize, &input.stored);
    }
    let elements: Vec<u8> = (0..n as usize * size)
        .map(|i| match dt {
            DataType::Bool => (i % 3 == 0) as u8,
            _ => (i * 131 % 251) as u8,
        })
        .collect();
    let (stored, intact) = match &input.stored {
        Stored::Raw(bytes) => (bytes.clone(), false),
        Stored::Encoded(changes, cut) => {
            // Some configurations cannot encode these elements (a shuffle of 3-byte
            // elements over an odd length); they are refused, which is all there is to check.
            let Ok(stored) = chain.encode(&elements) else {
                return;
            };
            damaged(stored.into_owned(), changes, *cut)
        }
    };

    let mut whole = vec![0u8; elements.len()];
    let whole_ok = chain.decode_into(&stored, &mut whole).is_ok();
    if intact {
        assert!(whole_ok, "an undamaged chunk decodes");
        assert_eq!(
            whole, elements,
            "an undamaged chunk decodes to its elements"
        );
    }

    let part: Vec<BoxRange> = shape
        .iter()
        .enumerate()
        .map(|(d, &len)| {
            let (a, b, step) = input.part.get(d).copied().unwrap_or((0, 255, 1));
            let first = u64::from(a) % len;
            let step = u64::from(step % 4) + 1;
            let last = first + (u64::from(b) % (len - first)) / step * step;
            BoxRange { first, last, step }
        })
        .collect();
    let mut got = vec![0u8; elements.len()];
    if chain.decode_part_into(&stored, &mut got, &part).is_ok() && whole_ok {
        // Every element of the box, compared at its place in the chunk.
        let mut index = vec![0u64; shape.len()];
        'elements: loop {
            let offset = index
                .iter()
                .zip(&part)
                .zip(&shape)
                .fold(0u64, |o, ((&i, r), &len)| o * len + r.first + i * r.step)
                as usize
                * size;
            assert_eq!(
                got[offset..offset + size],
                whole[offset..offset + size],
                "element {index:?} of box {part:?}"
            );
            for d in (0..shape.len()).rev() {
                index[d] += 1;
                if index[d] < part[d].count() {
                    continue 'elements;
                }
                index[d] = 0;
            }
            break;
        }
    }
});

/// Strings and bytes of different lengths (some empty), encoded and damaged or given raw,
/// then decoded: an undamaged chunk must give its elements back.
fn variable_length(chain: &CodecChain, n: usize, stored: &Stored) {
    let texts: Vec<String> = (0..n).map(|i| "\u{e9}a".repeat(i % 4)).collect();
    let elements = VlenChunk::from_elements(texts.iter().map(|t| t.as_bytes()));
    let (bytes, intact) = match stored {
        Stored::Raw(bytes) => (bytes.clone(), false),
        Stored::Encoded(changes, cut) => {
            let Ok(bytes) = chain.encode_vlen(&elements) else {
                return;
            };
            damaged(bytes, changes, *cut)
        }
    };
    match chain.decode_vlen(&bytes) {
        Ok(decoded) if intact => {
            assert!(
                decoded.iter().eq(elements.iter()),
                "an undamaged chunk decodes"
            );
        }
        Ok(decoded) => assert_eq!(decoded.len(), n, "a decoded chunk holds every element"),
        Err(e) => assert!(!intact, "an undamaged chunk decodes: {e}"),
    }
}
