//! Codec chains made of numcodecs codecs, as zarr-python writes them in v3 (filters, the bytes
//! codec, compressors and checksums): round trips, metadata that rebuilds the same chain,
//! bounded decoding and corrupt input.

use oxzarr_core::codec::{ChunkRepr, CodecChain};
use oxzarr_core::metadata::DataType;
use serde_json::{json, Value};

fn chain(codecs: &Value, shape: &[u64], dt: DataType) -> CodecChain {
    CodecChain::from_metadata(
        codecs.as_array().unwrap(),
        &ChunkRepr::new(shape.to_vec(), dt),
    )
    .unwrap_or_else(|e| panic!("{codecs}: {e}"))
}

fn elements(n: usize, dt: &DataType) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            let x = (i as f64 * 0.37).sin() * 1000.0;
            match dt {
                DataType::Float64 => x.to_ne_bytes().to_vec(),
                DataType::Float32 => (x as f32).to_ne_bytes().to_vec(),
                DataType::Int32 => (x as i32).to_ne_bytes().to_vec(),
                DataType::UInt16 => ((i * 7) as u16).to_ne_bytes().to_vec(),
                DataType::Bool => vec![(i % 3 == 0) as u8],
                other => panic!("no sample for {other}"),
            }
        })
        .collect()
}

#[test]
fn lossless_chains_round_trip() {
    let bytes = json!({"name": "bytes", "configuration": {"endian": "little"}});
    let cases = [
        (
            json!([{"name": "numcodecs.delta", "configuration": {"dtype": "<i4"}}, bytes,
                   {"name": "numcodecs.zlib", "configuration": {"level": 1}},
                   {"name": "numcodecs.crc32"}]),
            DataType::Int32,
        ),
        (
            json!([{"name": "numcodecs.delta", "configuration": {"dtype": "int32", "astype": "<i8"}},
                   {"name": "bytes", "configuration": {"endian": "big"}},
                   {"name": "numcodecs.shuffle"},
                   {"name": "numcodecs.lz4", "configuration": {"acceleration": 1}},
                   {"name": "numcodecs.adler32", "configuration": {"location": "end"}}]),
            DataType::Int32,
        ),
        (
            json!([{"name": "numcodecs.astype", "configuration": {"encode_dtype": "<f8"}}, bytes,
                   {"name": "numcodecs.bz2", "configuration": {"level": 9}},
                   {"name": "numcodecs.fletcher32"}]),
            DataType::Float32,
        ),
        (
            json!([bytes, {"name": "numcodecs.shuffle", "configuration": {"elementsize": 8}},
                   {"name": "numcodecs.lzma"}, {"name": "numcodecs.crc32c"}]),
            DataType::Float64,
        ),
        (
            json!([{"name": "numcodecs.packbits"}, {"name": "bytes"},
                   {"name": "numcodecs.blosc", "configuration": {"shuffle": -1}}]),
            DataType::Bool,
        ),
        (
            json!([bytes, {"name": "numcodecs.gzip"}, {"name": "numcodecs.zstd"}]),
            DataType::UInt16,
        ),
        (
            json!([{"name": "transpose", "configuration": {"order": [1, 0]}},
                   {"name": "numcodecs.delta", "configuration": {"dtype": "<u2"}}, bytes,
                   {"name": "numcodecs.blosc", "configuration": {"cname": "zstd", "clevel": 3}}]),
            DataType::UInt16,
        ),
    ];
    for (codecs, dt) in cases {
        let c = chain(&codecs, &[10, 7], dt.clone());
        let data = elements(70, &dt);
        let enc = c.encode(&data).unwrap().into_owned();
        let mut out = vec![0u8; data.len()];
        c.decode_into(&enc, &mut out).unwrap();
        assert_eq!(out, data, "{codecs}");
        // The written metadata rebuilds a chain that reads the same bytes.
        let again = chain(&Value::Array(c.metadata()), &[10, 7], dt.clone());
        assert_eq!(again.metadata(), c.metadata(), "{codecs}");
        let mut out2 = vec![0u8; data.len()];
        again.decode_into(&enc, &mut out2).unwrap();
        assert_eq!(out2, data, "{codecs}");
        // Corrupt or truncated chunks are errors, never panics.
        for cut in [0, 1, enc.len() / 2, enc.len() - 1] {
            assert!(
                c.decode_into(&enc[..cut], &mut out).is_err(),
                "{codecs} cut {cut}"
            );
        }
        for i in 0..enc.len() {
            let mut bad = enc.clone();
            bad[i] ^= 0x5a;
            let _ = c.decode_into(&bad, &mut out);
        }
    }
}

#[test]
fn lossy_filters_bound_their_error() {
    let bytes = json!({"name": "bytes", "configuration": {"endian": "little"}});
    let cases = [
        json!([{"name": "numcodecs.fixedscaleoffset",
                "configuration": {"offset": 0, "scale": 100, "dtype": "<f8", "astype": "<i4"}},
               bytes, {"name": "numcodecs.zlib"}]),
        json!([{"name": "numcodecs.quantize", "configuration": {"digits": 2, "dtype": "<f8"}},
               bytes, {"name": "numcodecs.zlib"}]),
        json!([{"name": "numcodecs.bitround", "configuration": {"keepbits": 10}}, bytes]),
        json!([{"name": "bitround", "configuration": {"keepbits": 10}}, bytes]),
    ];
    for codecs in cases {
        let c = chain(&codecs, &[50], DataType::Float64);
        let data = elements(50, &DataType::Float64);
        let enc = c.encode(&data).unwrap().into_owned();
        let mut out = vec![0u8; data.len()];
        c.decode_into(&enc, &mut out).unwrap();
        for (a, b) in data.chunks(8).zip(out.chunks(8)) {
            let (a, b) = (
                f64::from_ne_bytes(a.try_into().unwrap()),
                f64::from_ne_bytes(b.try_into().unwrap()),
            );
            assert!(
                (a - b).abs() <= a.abs() * 1e-3 + 0.01,
                "{codecs}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn numcodecs_configurations_are_checked() {
    let bytes = json!({"name": "bytes", "configuration": {"endian": "little"}});
    let bad = [
        // A decoded dtype that is not the array's.
        json!([{"name": "numcodecs.delta", "configuration": {"dtype": "<i2"}}, bytes]),
        // Unknown keys.
        json!([bytes, {"name": "numcodecs.zlib", "configuration": {"level": 1, "x": 0}}]),
        json!([bytes, {"name": "numcodecs.crc32", "configuration": {"id": "crc32"}}]),
        // Filters that need other data types.
        json!([{"name": "numcodecs.packbits"}, bytes]),
        json!([{"name": "numcodecs.quantize", "configuration": {"digits": 1}}, bytes]),
        // A negative number of bits.
        json!([{"name": "numcodecs.bitround", "configuration": {"keepbits": -1}}, bytes]),
        // Custom LZMA filter chains.
        json!([bytes, {"name": "numcodecs.lzma", "configuration": {"filters": [{"id": 33}]}}]),
        // A filter after the serializer.
        json!([bytes, {"name": "numcodecs.delta", "configuration": {"dtype": "<i4"}}]),
    ];
    for codecs in bad {
        let err = CodecChain::from_metadata(
            codecs.as_array().unwrap(),
            &ChunkRepr::new(vec![8], DataType::Int32),
        )
        .unwrap_err();
        assert!(!err.to_string().is_empty(), "{codecs}");
    }
}

#[test]
fn decoding_is_bounded() {
    // A zlib stream of 1 MiB of zeros, stored for a 400-byte chunk, is refused.
    let c = chain(
        &json!([{"name": "bytes", "configuration": {"endian": "little"}},
                {"name": "numcodecs.zlib"}, {"name": "numcodecs.crc32"}]),
        &[100],
        DataType::Int32,
    );
    let big = chain(
        &json!([{"name": "bytes", "configuration": {"endian": "little"}},
                {"name": "numcodecs.zlib"}, {"name": "numcodecs.crc32"}]),
        &[1 << 18],
        DataType::Int32,
    );
    let bomb = big.encode(&vec![0u8; 1 << 20]).unwrap().into_owned();
    let mut out = vec![0u8; 400];
    let err = c.decode_into(&bomb, &mut out).unwrap_err();
    assert!(err.to_string().contains("exceeds") || err.to_string().contains("expected"));
    for name in ["numcodecs.bz2", "numcodecs.lzma", "numcodecs.lz4"] {
        let codecs = json!([{"name": "bytes", "configuration": {"endian": "little"}},
                            {"name": name}, {"name": "numcodecs.adler32"}]);
        let small = chain(&codecs, &[100], DataType::Int32);
        let bomb = chain(&codecs, &[1 << 18], DataType::Int32)
            .encode(&vec![0u8; 1 << 20])
            .unwrap()
            .into_owned();
        assert!(small.decode_into(&bomb, &mut out).is_err(), "{name}");
    }
}
