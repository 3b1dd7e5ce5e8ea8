//! Reads and writes of an array whose stored chunks the fuzzer damages, on the filesystem store.
//!
//! Each input picks a small array (element size; a v3 codec chain, sharded or not, or a v2
//! layout), writes it whole, then damages some of its stored chunks or shards (bytes changed,
//! cut, replaced, appended, deleted) and reads it whole, in boxes, with steps, with index lists
//! and by points, with one or two threads and with the decoded-chunk cache on or off. Nothing
//! may crash or hang, and AddressSanitizer checks every copy the engine makes. Where the whole
//! read succeeded, every other read that succeeds must give the same elements; a write that
//! succeeds must read back.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use oxzarr_core::array::{chunk_cache, DimSelection, Selection};
use oxzarr_core::concurrency;
use oxzarr_core::metadata::{ArrayMetadata, ArrayMetadataV3, ChunkKeyEncoding, DataType};
use oxzarr_core::store::{FilesystemStore, StoreRef};
use oxzarr_core::Array;
use serde_json::{json, Map, Value};

#[derive(Arbitrary, Debug)]
struct Input {
    chain: u8,
    element: u8,
    shape: [u8; 3],
    damage: Vec<Damage>,
    reads: Vec<Read>,
    write: Option<(Box3, u8)>,
    two_threads: bool,
    cache: bool,
}

#[derive(Arbitrary, Debug)]
enum Damage {
    Set { file: u8, at: u32, byte: u8 },
    Cut { file: u8, keep: u32 },
    Replace { file: u8, bytes: Vec<u8> },
    Append { file: u8, bytes: Vec<u8> },
    Delete { file: u8 },
}

#[derive(Arbitrary, Debug)]
enum Read {
    Box(Box3),
    Points(Vec<[u8; 3]>),
    Lists([Vec<u8>; 3]),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Box3([(u8, u8, i8); 3]);

const CHUNK: [u64; 3] = [8, 8, 4];
const SHARD: [u64; 3] = [16, 8, 8];

fn codecs(chain: u8, size: usize) -> (Value, bool) {
    let bytes = json!({"name": "bytes", "configuration": {"endian": "little"}});
    let zstd = json!({"name": "zstd", "configuration": {"level": 1, "checksum": false}});
    let blosc = |cname: &str, shuffle: &str| {
        json!({"name": "blosc", "configuration": {"cname": cname, "clevel": 5,
            "shuffle": shuffle, "typesize": size, "blocksize": 64}})
    };
    let transpose = json!({"name": "transpose", "configuration": {"order": [2, 0, 1]}});
    let crc = json!({"name": "crc32c"});
    let shard = |inner: Value, location: &str, index: Value| {
        json!([{"name": "sharding_indexed", "configuration": {
            "chunk_shape": CHUNK, "codecs": inner, "index_codecs": index,
            "index_location": location}}])
    };
    let index = json!([bytes.clone(), crc.clone()]);
    match chain % 14 {
        0 => (json!([bytes]), false),
        1 => (
            json!([{"name": "bytes", "configuration": {"endian": "big"}}]),
            false,
        ),
        2 => (json!([bytes, zstd]), false),
        3 => (
            json!([bytes, {"name": "zstd", "configuration": {"level": 1, "checksum": true}}]),
            false,
        ),
        4 => (json!([bytes, blosc("lz4", "shuffle")]), false),
        5 => (json!([bytes, blosc("zstd", "bitshuffle")]), false),
        6 => (json!([bytes, blosc("blosclz", "noshuffle")]), false),
        7 => (
            json!([bytes, {"name": "gzip", "configuration": {"level": 1}}]),
            false,
        ),
        8 => (json!([transpose, bytes, zstd]), false),
        9 => (json!([transpose, bytes, crc]), false),
        10 => (shard(json!([bytes]), "end", index), true),
        11 => (shard(json!([bytes, zstd]), "start", index), true),
        12 => (
            shard(
                json!([transpose, bytes, blosc("lz4", "shuffle")]),
                "end",
                json!([bytes]),
            ),
            true,
        ),
        _ => (shard(json!([bytes, crc]), "start", json!([bytes])), true),
    }
}

/// A v2 `.zarray` for chains 14..18 (of 18): C or F order, '.' or '/' separators, little or
/// big endian, v2 compressors and filters.
fn v2_document(chain: u8, shape: &[u64], dt: &DataType) -> Value {
    let big = chain % 18 == 17;
    let code = match dt {
        DataType::UInt8 => "|u1",
        DataType::UInt16 if big => ">u2",
        DataType::UInt16 => "<u2",
        DataType::UInt64 if big => ">u8",
        DataType::UInt64 => "<u8",
        _ if big => ">c16",
        _ => "<c16",
    };
    let (order, compressor, filters, separator) = match chain % 18 {
        14 => ("C", json!({"id": "zstd", "level": 1}), Value::Null, "."),
        15 => ("F", Value::Null, Value::Null, "/"),
        16 => (
            "F",
            json!({"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}),
            json!([{"id": "delta", "dtype": code}]),
            ".",
        ),
        _ => ("C", json!({"id": "zlib", "level": 1}), Value::Null, "/"),
    };
    json!({"zarr_format": 2, "shape": shape, "chunks": CHUNK, "dtype": code, "order": order,
        "compressor": compressor, "filters": filters, "fill_value": null,
        "dimension_separator": separator})
}

fn data_type(element: u8) -> DataType {
    match element % 4 {
        0 => DataType::UInt8,
        1 => DataType::UInt16,
        2 => DataType::UInt64,
        _ => DataType::Complex128,
    }
}

/// A slice of a dimension of length `n` (which is at least 1), never empty.
fn dim(n: u64, (start, len, step): (u8, u8, i8)) -> DimSelection {
    let start = u64::from(start) % n;
    let step = match step % 4 {
        0 => 1,
        s => i64::from(s),
    };
    let room = if step > 0 {
        (n - start - 1) / step as u64 + 1
    } else {
        start / step.unsigned_abs() + 1
    };
    DimSelection::Slice {
        start,
        step,
        len: (u64::from(len) % room) + 1,
    }
}

fn count(sel: &Selection) -> usize {
    sel.0
        .iter()
        .map(|d| match d {
            DimSelection::Slice { len, .. } => *len as usize,
            DimSelection::Indices(v) => v.len(),
        })
        .product()
}

/// The elements `sel` picks out of the whole array's bytes `all`, in output order.
fn pick(all: &[u8], shape: &[u64], sel: &Selection, size: usize) -> Vec<u8> {
    let lists: Vec<Vec<u64>> = sel
        .0
        .iter()
        .map(|d| match d {
            DimSelection::Slice { start, step, len } => (0..*len)
                .map(|j| (*start as i64 + j as i64 * step) as u64)
                .collect(),
            DimSelection::Indices(v) => v.clone(),
        })
        .collect();
    let mut out = Vec::new();
    for &i in &lists[0] {
        for &j in &lists[1] {
            for &k in &lists[2] {
                let e = ((i * shape[1] + j) * shape[2] + k) as usize * size;
                out.extend_from_slice(&all[e..e + size]);
            }
        }
    }
    out
}

fn chunk_files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.file_name().is_some_and(|n| {
                ![".zarray", ".zattrs", "zarr.json"].contains(&n.to_str().unwrap_or(""))
            }) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.sort();
    out
}

fn damage(root: &Path, damages: &[Damage]) {
    for d in damages.iter().take(4) {
        let files = chunk_files(root);
        if files.is_empty() {
            return;
        }
        let file = |i: &u8| &files[usize::from(*i) % files.len()];
        let _ = match d {
            Damage::Set { file: f, at, byte } => {
                let path = file(f);
                let mut bytes = std::fs::read(path).unwrap_or_default();
                if !bytes.is_empty() {
                    let i = *at as usize % bytes.len();
                    bytes[i] = *byte;
                }
                std::fs::write(path, bytes)
            }
            Damage::Cut { file: f, keep } => {
                let path = file(f);
                let mut bytes = std::fs::read(path).unwrap_or_default();
                bytes.truncate(*keep as usize % (bytes.len() + 1));
                std::fs::write(path, bytes)
            }
            Damage::Replace { file: f, bytes } => std::fs::write(file(f), bytes),
            Damage::Append { file: f, bytes } => {
                let path = file(f);
                let mut old = std::fs::read(path).unwrap_or_default();
                old.extend_from_slice(bytes);
                std::fs::write(path, old)
            }
            Damage::Delete { file: f } => std::fs::remove_file(file(f)),
        };
    }
}

static RUN: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|input: Input| {
    let shape: Vec<u64> = input.shape.iter().map(|&n| u64::from(n) % 20 + 1).collect();
    let dt = data_type(input.element);
    let size = dt.size();
    concurrency::set_threads(if input.two_threads { 2 } else { 1 });
    chunk_cache::set_budget(if input.cache { 1 << 20 } else { 0 });

    let root = std::env::temp_dir().join(format!(
        "oxzarr-fuzz-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&root);
    let store: StoreRef = Arc::new(FilesystemStore::new(&root));
    let a = if input.chain % 18 >= 14 {
        // v2: written as zarr-python writes .zarray, then opened.
        let _ = std::fs::create_dir_all(root.join("a"));
        let zarray = v2_document(input.chain, &shape, &dt);
        if std::fs::write(root.join("a/.zarray"), zarray.to_string()).is_err() {
            return;
        }
        let Ok(a) = Array::open(store.clone(), "a") else {
            // Filters that do not fit the data type (delta of complex numbers).
            let _ = std::fs::remove_dir_all(&root);
            return;
        };
        a
    } else {
        let (codecs, sharded) = codecs(input.chain % 18, size);
        let grid = if sharded { SHARD } else { CHUNK };
        let metadata = ArrayMetadata::V3(Box::new(ArrayMetadataV3 {
            shape: shape.clone(),
            data_type: dt.clone(),
            chunk_shape: grid.to_vec(),
            chunk_key_encoding: ChunkKeyEncoding::Default { separator: '/' },
            fill_value: if dt == DataType::Complex128 {
                json!([0.0, 0.0])
            } else {
                json!(0)
            },
            codecs: codecs.as_array().cloned().unwrap_or_default(),
            attributes: Map::new(),
            dimension_names: None,
            extra_fields: Map::new(),
        }));
        Array::create(store.clone(), "a", metadata, true).expect("create")
    };
    let n: u64 = shape.iter().product();
    // Every element different in every byte, a few runs of zeros (fill value) among them.
    let written: Vec<u8> = (0..n as usize * size)
        .map(|i| {
            if (i / size) % 37 < 3 {
                0
            } else {
                (i * 131 % 251) as u8
            }
        })
        .collect();
    a.write(&Selection::all(&shape), &written, false)
        .expect("write whole");
    damage(&root.join("a"), &input.damage);

    // A fresh open: no shard index cached from before the damage.
    let Ok(a) = Array::open(store, "a") else {
        let _ = std::fs::remove_dir_all(&root);
        return;
    };
    let mut whole = vec![0u8; n as usize * size];
    let whole_ok = a.read_into(&Selection::all(&shape), &mut whole).is_ok();

    for read in input.reads.iter().take(6) {
        let (sel, got) = match read {
            Read::Box(b) => {
                let sel = Selection(
                    b.0.iter()
                        .zip(&shape)
                        .map(|(&d, &len)| dim(len, d))
                        .collect(),
                );
                let mut out = vec![0u8; count(&sel) * size];
                let ok = a.read_into(&sel, &mut out).is_ok();
                (sel, ok.then_some(out))
            }
            Read::Lists(lists) => {
                let sel = Selection(
                    lists
                        .iter()
                        .zip(&shape)
                        .map(|(l, &len)| {
                            let v: Vec<u64> =
                                l.iter().take(8).map(|&i| u64::from(i) % len).collect();
                            if v.is_empty() {
                                DimSelection::Indices(vec![0])
                            } else {
                                DimSelection::Indices(v)
                            }
                        })
                        .collect(),
                );
                let mut out = vec![0u8; count(&sel) * size];
                let ok = a.read_into(&sel, &mut out).is_ok();
                (sel, ok.then_some(out))
            }
            Read::Points(points) => {
                let points: Vec<[u64; 3]> = points
                    .iter()
                    .take(16)
                    .map(|p| std::array::from_fn(|d| u64::from(p[d]) % shape[d]))
                    .collect();
                let coords: Vec<Vec<u64>> = (0..3)
                    .map(|d| points.iter().map(|p| p[d]).collect())
                    .collect();
                let mut out = vec![0u8; points.len() * size];
                if a.read_points(&coords, &mut out).is_ok() && whole_ok {
                    for (i, p) in points.iter().enumerate() {
                        let sel = Selection(
                            p.iter()
                                .map(|&x| DimSelection::Slice {
                                    start: x,
                                    step: 1,
                                    len: 1,
                                })
                                .collect(),
                        );
                        assert_eq!(
                            &out[i * size..(i + 1) * size],
                            pick(&whole, &shape, &sel, size),
                            "point {p:?}"
                        );
                    }
                }
                continue;
            }
        };
        if let (true, Some(got)) = (whole_ok, got) {
            assert_eq!(got, pick(&whole, &shape, &sel, size), "{sel:?}");
        }
    }

    if let Some((b, value)) = input.write {
        let sel = Selection(
            b.0.iter()
                .zip(&shape)
                .map(|(&d, &len)| dim(len, d))
                .collect(),
        );
        let values = vec![value; count(&sel) * size];
        if a.write(&sel, &values, false).is_ok() {
            let mut back = vec![0u8; values.len()];
            a.read_into(&sel, &mut back)
                .expect("a selection just written reads back");
            assert_eq!(back, values, "written {sel:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&root);
});
