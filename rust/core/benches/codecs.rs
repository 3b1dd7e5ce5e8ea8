//! Each codec alone on one chunk, encode and decode: the ceiling for full reads and writes.
//!
//! The chunk is a 64³ uint16 block of the values ../shared/bench/peers.py writes (smooth with
//! noise), so the figures compare with its cases. Run with `make bench-codecs`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use oxzarr_core::codec::{BoxRange, ChunkRepr, CodecChain};
use oxzarr_core::metadata::DataType;
use serde_json::{json, Value};

const N: u64 = 64;

fn chunk() -> Vec<u8> {
    // peers.py: ((z + y + x) * 7) % 4096 plus noise in 0..16.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::with_capacity((N * N * N * 2) as usize);
    for z in 0..N {
        for y in 0..N {
            for x in 0..N {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let v = (((z + y + x) * 7) % 4096 + state % 16) as u16;
                out.extend_from_slice(&v.to_ne_bytes());
            }
        }
    }
    out
}

fn chains() -> Vec<(&'static str, Value)> {
    let bytes = json!({"name": "bytes", "configuration": {"endian": "little"}});
    vec![
        ("bytes", json!([bytes])),
        (
            "bytes_big_endian",
            json!([{"name": "bytes", "configuration": {"endian": "big"}}]),
        ),
        (
            "transpose",
            json!([{"name": "transpose", "configuration": {"order": [2, 1, 0]}}, bytes]),
        ),
        (
            "transpose_zstd_0",
            json!([{"name": "transpose", "configuration": {"order": [2, 1, 0]}}, bytes,
                {"name": "zstd", "configuration": {"level": 0, "checksum": false}}]),
        ),
        ("crc32c", json!([bytes, {"name": "crc32c"}])),
        (
            "zstd_0",
            json!([bytes, {"name": "zstd", "configuration": {"level": 0, "checksum": false}}]),
        ),
        (
            "zstd_1",
            json!([bytes, {"name": "zstd", "configuration": {"level": 1, "checksum": false}}]),
        ),
        (
            "gzip_5",
            json!([bytes, {"name": "gzip", "configuration": {"level": 5}}]),
        ),
        (
            "blosc_lz4_shuffle",
            json!([bytes, {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5,
                "shuffle": "shuffle", "typesize": 2, "blocksize": 0}}]),
        ),
        (
            "blosc_zstd_bitshuffle",
            json!([bytes, {"name": "blosc", "configuration": {"cname": "zstd", "clevel": 5,
                "shuffle": "bitshuffle", "typesize": 2, "blocksize": 0}}]),
        ),
    ]
}

fn codecs(c: &mut Criterion) {
    let data = chunk();
    let repr = ChunkRepr::new(vec![N, N, N], DataType::UInt16);
    let mut encode = c.benchmark_group("encode");
    encode.throughput(Throughput::Bytes(data.len() as u64));
    for (name, codecs) in chains() {
        let chain = CodecChain::from_metadata(codecs.as_array().unwrap(), &repr).unwrap();
        encode.bench_with_input(BenchmarkId::from_parameter(name), &data, |b, data| {
            b.iter(|| chain.encode(data).unwrap().len())
        });
    }
    encode.finish();
    let mut decode = c.benchmark_group("decode");
    decode.throughput(Throughput::Bytes(data.len() as u64));
    for (name, codecs) in chains() {
        let chain = CodecChain::from_metadata(codecs.as_array().unwrap(), &repr).unwrap();
        let encoded = chain.encode(&data).unwrap().into_owned();
        let mut out = vec![0u8; data.len()];
        decode.bench_with_input(BenchmarkId::from_parameter(name), &encoded, |b, encoded| {
            b.iter(|| chain.decode_into(encoded, &mut out).unwrap())
        });
    }
    decode.finish();

    // One chunk's decode on one thread, against its blocks split between the calling thread
    // and the engine's team (what a read of a single chunk does), and against halves handed
    // to the rayon pool (which puts the caller to sleep and wakes a worker for every call).
    let (_, blosc) = chains()
        .into_iter()
        .find(|(name, _)| *name == "blosc_lz4_shuffle")
        .unwrap();
    let chain = CodecChain::from_metadata(blosc.as_array().unwrap(), &repr).unwrap();
    let encoded = chain.encode(&data).unwrap().into_owned();
    let half = data.len() / 2;
    let (mut first, mut second) = (vec![0u8; data.len()], vec![0u8; data.len()]);
    let mut split = c.benchmark_group("one_chunk_blosc_lz4");
    split.throughput(Throughput::Bytes(data.len() as u64));
    split.bench_function("one_thread", |b| {
        oxzarr_core::concurrency::set_threads(1);
        b.iter(|| chain.decode_into(&encoded, &mut first).unwrap())
    });
    split.bench_function("caller_and_team", |b| {
        oxzarr_core::concurrency::set_threads(0);
        b.iter(|| chain.decode_into(&encoded, &mut first).unwrap())
    });
    split.bench_function("halves_on_the_pool", |b| {
        b.iter(|| {
            oxzarr_core::concurrency::in_pool(|| {
                rayon::join(
                    || {
                        chain.decode_part_into(
                            &encoded,
                            &mut first,
                            &[
                                BoxRange::span(0, N / 2 - 1),
                                BoxRange::all(N),
                                BoxRange::all(N),
                            ],
                        )
                    },
                    || {
                        chain.decode_part_into(
                            &encoded,
                            &mut second,
                            &[
                                BoxRange::span(N / 2, N - 1),
                                BoxRange::all(N),
                                BoxRange::all(N),
                            ],
                        )
                    },
                )
            })
            .unwrap()
        })
    });
    split.finish();
    assert_eq!(first[..half], data[..half]);
    assert_eq!(second[half..], data[half..]);
}

criterion_group!(benches, codecs);
criterion_main!(benches);
