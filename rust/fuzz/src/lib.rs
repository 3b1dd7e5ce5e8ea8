//! What the fuzz targets share: the arrays they make (element sizes, v3 codec chains with and
//! without sharding, v2 layouts) and selections of them, with a plain model of what each
//! selection holds.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arbitrary::Arbitrary;
use oxzarr_core::array::{chunk_cache, DimSelection, Selection};
use oxzarr_core::concurrency;
use oxzarr_core::metadata::{ArrayMetadata, ArrayMetadataV3, ChunkKeyEncoding, DataType};
use oxzarr_core::store::{FilesystemStore, StoreRef};
use oxzarr_core::Array;
use serde_json::{json, Map, Value};

/// One (start, length, step) per dimension of a 3-d array: see [`Box3::selection`].
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Box3(pub [(u8, u8, i8); 3]);

impl Box3 {
    /// A non-empty slice of each dimension of `shape`, steps of -3 to 3 among them.
    pub fn selection(&self, shape: &[u64]) -> Selection {
        Selection(self.0.iter().zip(shape).map(|(&d, &n)| dim(n, d)).collect())
    }
}

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

pub fn count(sel: &Selection) -> usize {
    sel.0
        .iter()
        .map(|d| match d {
            DimSelection::Slice { len, .. } => *len as usize,
            DimSelection::Indices(v) => v.len(),
        })
        .product()
}

/// The index in a C-order array of `shape` of each element `sel` picks, in output order.
pub fn offsets(shape: &[u64], sel: &Selection) -> Vec<usize> {
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
                out.push(((i * shape[1] + j) * shape[2] + k) as usize);
            }
        }
    }
    out
}

/// The elements `sel` picks out of the whole array's bytes `all`, in output order.
pub fn pick(all: &[u8], shape: &[u64], sel: &Selection, size: usize) -> Vec<u8> {
    offsets(shape, sel)
        .into_iter()
        .flat_map(|e| &all[e * size..(e + 1) * size])
        .copied()
        .collect()
}

/// Up to 16 points of an array of `shape` (each coordinate modulo its dimension), and the
/// same points as the engine takes them: one index list per dimension.
pub fn points_in(points: &[[u8; 3]], shape: &[u64]) -> (Vec<[u64; 3]>, Vec<Vec<u64>>) {
    let points: Vec<[u64; 3]> = points
        .iter()
        .take(16)
        .map(|p| std::array::from_fn(|d| u64::from(p[d]) % shape[d]))
        .collect();
    let coords = (0..3)
        .map(|d| points.iter().map(|p| p[d]).collect())
        .collect();
    (points, coords)
}

/// The elements an array is first written with: every element different in every byte, a
/// few runs of zeros (the fill value) among them.
pub fn elements(n: usize, size: usize) -> Vec<u8> {
    (0..n * size)
        .map(|i| {
            if (i / size) % 37 < 3 {
                0
            } else {
                (i * 131 % 251) as u8
            }
        })
        .collect()
}

static RUN: AtomicU64 = AtomicU64::new(0);

/// A directory of its own under the temporary directory for one fuzz input, and the
/// filesystem store on it.
fn fresh_store() -> (PathBuf, StoreRef) {
    let root = std::env::temp_dir().join(format!(
        "oxzarr-fuzz-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&root);
    let store: StoreRef = Arc::new(FilesystemStore::new(&root));
    (root, store)
}

/// Array "a" of `store` (rooted at `root`): chain `chain % 18` is one of [`codecs`]' v3
/// chains (0..14) or one of [`v2_document`]'s layouts (14..18). `None` when that layout
/// does not fit the data type (a delta filter of complex numbers).
fn create(
    root: &std::path::Path,
    store: &StoreRef,
    chain: u8,
    shape: &[u64],
    dt: &DataType,
) -> Option<Array> {
    if chain % 18 >= 14 {
        // v2: written as zarr-python writes .zarray, then opened.
        std::fs::create_dir_all(root.join("a")).ok()?;
        let zarray = v2_document(chain, shape, dt);
        std::fs::write(root.join("a/.zarray"), zarray.to_string()).ok()?;
        return Array::open(store.clone(), "a").ok();
    }
    let (codecs, sharded) = codecs(chain % 18, dt.size());
    let metadata = ArrayMetadata::V3(Box::new(ArrayMetadataV3 {
        shape: shape.to_vec(),
        data_type: dt.clone(),
        chunk_shape: if sharded { SHARD } else { CHUNK }.to_vec(),
        chunk_key_encoding: ChunkKeyEncoding::Default { separator: '/' },
        fill_value: if *dt == DataType::Complex128 {
            json!([0.0, 0.0])
        } else {
            json!(0)
        },
        codecs: codecs.as_array().cloned().unwrap_or_default(),
        attributes: Map::new(),
        dimension_names: None,
        extra_fields: Map::new(),
    }));
    Some(Array::create(store.clone(), "a", metadata, true).expect("create"))
}

/// What every array target's input starts with: the array and how it is read and written.
#[derive(Arbitrary, Debug)]
pub struct Setup {
    chain: u8,
    element: u8,
    shape: [u8; 3],
    two_threads: bool,
    cache: bool,
}

/// The array of a [`Setup`], in a directory of its own that goes when this does.
pub struct Fixture {
    pub root: PathBuf,
    pub store: StoreRef,
    pub array: Array,
    /// 1 to 20 elements along each of three dimensions.
    pub shape: Vec<u64>,
    /// The element size in bytes.
    pub size: usize,
}

impl Setup {
    /// Sets the thread count and the chunk cache, and creates the array: `None` when its
    /// layout does not fit its data type.
    pub fn make(&self) -> Option<Fixture> {
        concurrency::set_threads(if self.two_threads { 2 } else { 1 });
        chunk_cache::set_budget(if self.cache { 1 << 20 } else { 0 });
        let shape: Vec<u64> = self.shape.iter().map(|&n| u64::from(n) % 20 + 1).collect();
        let dt = data_type(self.element);
        let (root, store) = fresh_store();
        let array = create(&root, &store, self.chain, &shape, &dt);
        let Some(array) = array else {
            let _ = std::fs::remove_dir_all(&root);
            return None;
        };
        Some(Fixture {
            root,
            store,
            array,
            shape,
            size: dt.size(),
        })
    }
}

impl Fixture {
    /// How many elements the array holds.
    pub fn num_elements(&self) -> usize {
        self.shape.iter().product::<u64>() as usize
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Chunks larger than this are not read or written by the targets that take metadata from
/// their input: the fuzzer's process has one memory limit for every allocation, and a chunk
/// shape of gigabytes is valid metadata.
const MAX_CHUNK_BYTES: u64 = 1 << 24;

/// The box of at most three elements along each dimension at an array's origin, and its size
/// in bytes; `None` for an array of variable-length elements or of chunks too large to hold.
pub fn corner(a: &Array) -> Option<(Selection, usize)> {
    let size = a.data_type().size() as u64;
    let chunk_bytes = a
        .chunk_shape()
        .iter()
        .try_fold(size, |n, &c| n.checked_mul(c.max(1)));
    if a.data_type().is_variable() || chunk_bytes.is_none_or(|n| n > MAX_CHUNK_BYTES) {
        return None;
    }
    let sel = Selection(
        a.shape()
            .iter()
            .map(|&n| DimSelection::Slice {
                start: 0,
                step: 1,
                len: n.min(3),
            })
            .collect(),
    );
    let count: u64 = a.shape().iter().map(|&n| n.min(3)).product();
    Some((sel, (count * size) as usize))
}
