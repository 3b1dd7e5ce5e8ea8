//! Arrays end to end on the memory and filesystem stores: writes and reads of many selections
//! checked against a plain in-memory model of the array.

use std::sync::Arc;

use oxzarr_core::array::{DimSelection, Selection};
use oxzarr_core::error::StorageError;
use oxzarr_core::metadata::{ArrayMetadata, ArrayMetadataV3, ChunkKeyEncoding, DataType};
use oxzarr_core::store::{
    FilesystemStore, ListDir, ListableStore, MemoryStore, ReadableStore, Store, StoreRef,
    WritableStore,
};
use oxzarr_core::{Array, Error, Group};
use serde_json::{json, Map, Value};

fn metadata(
    shape: &[u64],
    chunks: &[u64],
    dt: DataType,
    codecs: Value,
    fill: Value,
) -> ArrayMetadata {
    ArrayMetadata::V3(Box::new(ArrayMetadataV3 {
        shape: shape.to_vec(),
        data_type: dt,
        chunk_shape: chunks.to_vec(),
        chunk_key_encoding: ChunkKeyEncoding::Default { separator: '/' },
        fill_value: fill,
        codecs: codecs.as_array().unwrap().clone(),
        attributes: Map::new(),
        dimension_names: None,
        extra_fields: Map::new(),
    }))
}

/// A dense model of an array of u16: what every read must return.
struct Model {
    shape: Vec<u64>,
    data: Vec<u16>,
}

impl Model {
    fn index_lists(&self, sel: &Selection) -> Vec<Vec<u64>> {
        sel.0
            .iter()
            .map(|s| match s {
                DimSelection::Slice { start, step, len } => (0..*len)
                    .map(|j| (*start as i64 + j as i64 * step) as u64)
                    .collect(),
                DimSelection::Indices(v) => v.clone(),
            })
            .collect()
    }

    fn offsets(&self, sel: &Selection) -> Vec<usize> {
        let lists = self.index_lists(sel);
        let mut out = vec![0usize];
        for (d, list) in lists.iter().enumerate() {
            let stride: u64 = self.shape[d + 1..].iter().product();
            out = out
                .iter()
                .flat_map(|&o| list.iter().map(move |&i| o + (i * stride) as usize))
                .collect();
        }
        out
    }

    fn read(&self, sel: &Selection) -> Vec<u16> {
        self.offsets(sel)
            .into_iter()
            .map(|o| self.data[o])
            .collect()
    }

    fn write(&mut self, sel: &Selection, values: &[u16]) {
        for (o, v) in self.offsets(sel).into_iter().zip(values) {
            self.data[o] = *v;
        }
    }
}

fn to_bytes(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

fn from_bytes(b: &[u8]) -> Vec<u16> {
    b.chunks(2)
        .map(|c| u16::from_ne_bytes([c[0], c[1]]))
        .collect()
}

fn read(a: &Array, sel: &Selection) -> Vec<u16> {
    let mut out = vec![0u8; sel.num_elements() as usize * 2];
    a.read_into(sel, &mut out).unwrap();
    from_bytes(&out)
}

/// A small deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn selection(&mut self, shape: &[u64]) -> Selection {
        Selection(
            shape
                .iter()
                .map(|&n| match self.below(4) {
                    0 => DimSelection::all(n),
                    1 => DimSelection::Indices((0..self.below(5)).map(|_| self.below(n)).collect()),
                    _ => {
                        let step =
                            (self.below(3) + 1) as i64 * if self.below(3) == 0 { -1 } else { 1 };
                        let start = self.below(n);
                        let room = if step > 0 {
                            (n - 1 - start) / step as u64 + 1
                        } else {
                            start / (-step) as u64 + 1
                        };
                        DimSelection::Slice {
                            start,
                            step,
                            len: self.below(room + 1),
                        }
                    }
                })
                .collect(),
        )
    }
}

fn exercise(store: StoreRef, codecs: Value) {
    let shape = [13u64, 7, 10];
    let chunks = [4u64, 7, 3];
    let a = Array::create(
        store.clone(),
        "g/arr",
        metadata(&shape, &chunks, DataType::UInt16, codecs, json!(7)),
        false,
    )
    .unwrap();
    let mut model = Model {
        shape: shape.to_vec(),
        data: vec![7; 13 * 7 * 10],
    };
    assert_eq!(
        read(&a, &Selection::all(&shape)),
        model.data,
        "unwritten chunks read as fill"
    );
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for round in 0..300 {
        let sel = rng.selection(&shape);
        if round % 2 == 0 {
            let values: Vec<u16> = (0..sel.num_elements())
                .map(|_| (rng.below(5) as u16) + 5)
                .collect();
            a.write(&sel, &to_bytes(&values), false).unwrap();
            model.write(&sel, &values);
        } else {
            assert_eq!(read(&a, &sel), model.read(&sel), "round {round}: {sel:?}");
        }
    }
    // Reopened from the store, the whole array matches.
    let again = Array::open(store, "g/arr").unwrap();
    assert_eq!(read(&again, &Selection::all(&shape)), model.data);
}

#[test]
fn random_selections_on_memory_and_disk() {
    let chains = [
        json!([{"name": "bytes", "configuration": {"endian": "little"}}]),
        json!([{"name": "transpose", "configuration": {"order": [2, 0, 1]}},
               {"name": "bytes", "configuration": {"endian": "big"}},
               {"name": "zstd", "configuration": {"level": 1, "checksum": false}}, {"name": "crc32c"}]),
        json!([{"name": "bytes", "configuration": {"endian": "little"}},
               {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "shuffle", "typesize": 2, "blocksize": 0}}]),
        json!([{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "gzip", "configuration": {"level": 1}}]),
    ];
    for codecs in chains {
        exercise(Arc::new(MemoryStore::new()), codecs.clone());
        let dir = tempfile::tempdir().unwrap();
        exercise(Arc::new(FilesystemStore::new(dir.path())), codecs);
    }
}

#[test]
fn empty_chunks_are_not_stored() {
    let store: StoreRef = Arc::new(MemoryStore::new());
    let codecs = json!([{"name": "bytes", "configuration": {"endian": "little"}}]);
    let a = Array::create(
        store.clone(),
        "",
        metadata(&[10], &[5], DataType::UInt16, codecs, json!(3)),
        false,
    )
    .unwrap();
    a.write(&Selection::all(&[10]), &to_bytes(&[3; 10]), false)
        .unwrap();
    assert_eq!(store.list_prefix("").unwrap(), vec!["zarr.json"]);
    a.write(
        &Selection::all(&[10]),
        &to_bytes(&[1, 3, 3, 3, 3, 3, 3, 3, 3, 3]),
        false,
    )
    .unwrap();
    assert_eq!(store.list_prefix("").unwrap(), vec!["c/0", "zarr.json"]);
    // Writing the fill value back removes the chunk.
    a.write(
        &Selection(vec![DimSelection::Indices(vec![0])]),
        &to_bytes(&[3]),
        false,
    )
    .unwrap();
    assert_eq!(store.list_prefix("").unwrap(), vec!["zarr.json"]);
    a.write(&Selection::all(&[10]), &to_bytes(&[3; 10]), true)
        .unwrap();
    assert_eq!(
        store.list_prefix("").unwrap(),
        vec!["c/0", "c/1", "zarr.json"]
    );
}

#[test]
fn zero_dimensional_and_empty_arrays() {
    let store: StoreRef = Arc::new(MemoryStore::new());
    let codecs = json!([{"name": "bytes", "configuration": {"endian": "little"}}]);
    let a = Array::create(
        store.clone(),
        "scalar",
        metadata(&[], &[], DataType::UInt16, codecs.clone(), json!(9)),
        false,
    )
    .unwrap();
    assert_eq!(read(&a, &Selection(vec![])), vec![9]);
    a.write(&Selection(vec![]), &to_bytes(&[4]), false).unwrap();
    assert_eq!(read(&a, &Selection(vec![])), vec![4]);
    assert!(store.exists("scalar/c").unwrap());
    let e = Array::create(
        store,
        "empty",
        metadata(&[0, 5], &[2, 2], DataType::UInt16, codecs, json!(0)),
        false,
    )
    .unwrap();
    assert_eq!(e.nchunks(), 0);
    assert!(read(&e, &Selection::all(&[0, 5])).is_empty());
    e.write(&Selection::all(&[0, 5]), &[], false).unwrap();
}

#[test]
fn errors_name_what_went_wrong() {
    let store: StoreRef = Arc::new(MemoryStore::new());
    let codecs =
        json!([{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]);
    let a = Array::create(
        store.clone(),
        "a",
        metadata(&[4], &[2], DataType::UInt16, codecs.clone(), json!(0)),
        false,
    )
    .unwrap();
    a.write(&Selection::all(&[4]), &to_bytes(&[1, 2, 3, 4]), false)
        .unwrap();
    let mut bad = store.get("a/c/1").unwrap().unwrap();
    bad[0] ^= 0xff;
    store.set("a/c/1", &bad).unwrap();
    let mut out = vec![0u8; 8];
    let err = a.read_into(&Selection::all(&[4]), &mut out).unwrap_err();
    assert!(matches!(err, Error::CorruptChunk { .. }));
    assert!(err.to_string().contains("a/c/1"), "{err}");
    store.set("a/c/1", &bad[..3]).unwrap();
    assert!(a
        .read_into(&Selection::all(&[4]), &mut out)
        .unwrap_err()
        .to_string()
        .contains("a/c/1"));

    let oob = Selection(vec![DimSelection::Indices(vec![4])]);
    assert!(matches!(
        a.read_into(&oob, &mut out[..2]),
        Err(Error::OutOfBounds(_))
    ));
    assert!(matches!(
        Array::open(store.clone(), "nope"),
        Err(Error::NodeNotFound { .. })
    ));
    assert!(matches!(
        Array::create(
            store.clone(),
            "a",
            metadata(&[4], &[2], DataType::UInt16, codecs.clone(), json!(0)),
            false
        ),
        Err(Error::NodeExists { .. })
    ));
    assert!(matches!(
        Array::create(
            store.clone(),
            "a/b",
            metadata(&[4], &[2], DataType::UInt16, codecs.clone(), json!(0)),
            false
        ),
        Err(Error::NodeExists { .. })
    ));
    store.set("broken/zarr.json", b"{").unwrap();
    let err = Array::open(store.clone(), "broken")
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken/zarr.json"), "{err}");
    // Overwrite replaces the node and its chunks.
    let a2 = Array::create(
        store.clone(),
        "a",
        metadata(&[4], &[2], DataType::UInt16, codecs, json!(5)),
        true,
    )
    .unwrap();
    assert_eq!(read(&a2, &Selection::all(&[4])), vec![5; 4]);
}

#[test]
fn groups_hold_members_and_attributes() {
    let store: StoreRef = Arc::new(MemoryStore::new());
    let codecs = json!([{"name": "bytes", "configuration": {"endian": "little"}}]);
    Array::create(
        store.clone(),
        "a/b/c",
        metadata(&[4], &[2], DataType::UInt16, codecs.clone(), json!(0)),
        false,
    )
    .unwrap();
    let root = Group::open(store.clone(), "").unwrap();
    assert_eq!(root.members().unwrap().len(), 1);
    let b = Group::open(store.clone(), "a/b").unwrap();
    let members = b.members().unwrap();
    assert_eq!(
        members,
        vec![("c".to_string(), oxzarr_core::group::NodeKind::Array)]
    );
    let mut attrs = Map::new();
    attrs.insert("k".into(), json!([1, "x"]));
    b.with_attributes(attrs.clone(), None).unwrap();
    assert_eq!(
        Group::open(store.clone(), "a/b").unwrap().attributes(),
        &attrs
    );
    assert!(matches!(
        Group::open(store, "a/b/c"),
        Err(Error::NotAGroup { .. })
    ));
}

/// Members come in name order whichever way the group is opened, even where the store's
/// listing of `name/` prefixes puts `a.b/` before `a/`.
#[test]
fn members_come_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let stores: [StoreRef; 2] = [
        Arc::new(MemoryStore::new()),
        Arc::new(FilesystemStore::new(dir.path())),
    ];
    for store in stores {
        Group::create(store.clone(), "g", Map::new(), false, 3).unwrap();
        for name in ["a_b", "a.b", "a", "a-b"] {
            Group::create(store.clone(), &format!("g/{name}"), Map::new(), false, 3).unwrap();
        }
        let names = |g: &Group| -> Vec<String> {
            g.members().unwrap().into_iter().map(|(n, _)| n).collect()
        };
        let g = Group::open(store.clone(), "g").unwrap();
        assert_eq!(
            names(&g),
            ["a", "a-b", "a.b", "a_b"],
            "{}",
            store.describe()
        );
        assert_eq!(names(&g.consolidate().unwrap()), names(&g));
    }
}

fn sharded(inner: &[u64], index_location: &str, inner_codecs: Value) -> Value {
    json!([{"name": "sharding_indexed", "configuration": {
        "chunk_shape": inner,
        "codecs": inner_codecs,
        "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
        "index_location": index_location,
    }}])
}

/// Random selections on sharded arrays: shards overhanging the edge, inner chunks absent,
/// index at either end, nested shards.
fn exercise_sharded(store: StoreRef, shard: &[u64], codecs: Value) {
    let shape = [13u64, 7, 10];
    let a = Array::create(
        store.clone(),
        "s",
        metadata(&shape, shard, DataType::UInt16, codecs, json!(7)),
        false,
    )
    .unwrap();
    let mut model = Model {
        shape: shape.to_vec(),
        data: vec![7; 13 * 7 * 10],
    };
    let mut rng = Rng(0x2545f4914f6cdd1d);
    for round in 0..300 {
        let sel = rng.selection(&shape);
        if round % 2 == 0 {
            let values: Vec<u16> = (0..sel.num_elements())
                .map(|_| (rng.below(3) as u16) + 6)
                .collect();
            a.write(&sel, &to_bytes(&values), false).unwrap();
            model.write(&sel, &values);
            let all = Selection::all(&shape);
            assert_eq!(
                read(&a, &all),
                model.read(&all),
                "after write round {round}: {sel:?}"
            );
        } else {
            assert_eq!(read(&a, &sel), model.read(&sel), "round {round}: {sel:?}");
        }
    }
    let again = Array::open(store, "s").unwrap();
    assert_eq!(read(&again, &Selection::all(&shape)), model.data);
}

#[test]
fn sharded_random_selections() {
    let raw = json!([{"name": "bytes", "configuration": {"endian": "little"}}]);
    let zstd = json!([{"name": "bytes", "configuration": {"endian": "little"}},
                      {"name": "zstd", "configuration": {"level": 1, "checksum": false}}]);
    let cases = [
        (vec![8u64, 7, 4], sharded(&[4, 7, 2], "end", zstd.clone())),
        (vec![8, 7, 4], sharded(&[2, 1, 4], "start", raw.clone())),
        (
            vec![6, 7, 10],
            sharded(&[3, 7, 5], "end", sharded(&[1, 7, 5], "start", zstd)),
        ),
    ];
    for (shard, codecs) in cases {
        exercise_sharded(Arc::new(MemoryStore::new()), &shard, codecs.clone());
        let dir = tempfile::tempdir().unwrap();
        exercise_sharded(Arc::new(FilesystemStore::new(dir.path())), &shard, codecs);
    }
}

#[test]
fn sharded_writes_keep_absent_inner_chunks_absent() {
    let store: StoreRef = Arc::new(MemoryStore::new());
    let raw = json!([{"name": "bytes", "configuration": {"endian": "little"}}]);
    let a = Array::create(
        store.clone(),
        "",
        metadata(
            &[8],
            &[8],
            DataType::UInt16,
            sharded(&[2], "end", raw),
            json!(0),
        ),
        false,
    )
    .unwrap();
    a.write(
        &Selection(vec![DimSelection::Indices(vec![3])]),
        &to_bytes(&[5]),
        false,
    )
    .unwrap();
    // One inner chunk of 4 bytes, then the index: 4 entries of 16 bytes and a checksum.
    assert_eq!(store.get("c/0").unwrap().unwrap().len(), 4 + 64 + 4);
    a.write(
        &Selection(vec![DimSelection::Indices(vec![6])]),
        &to_bytes(&[9]),
        false,
    )
    .unwrap();
    assert_eq!(store.get("c/0").unwrap().unwrap().len(), 8 + 68);
    assert_eq!(
        read(&a, &Selection::all(&[8])),
        vec![0, 0, 0, 5, 0, 0, 9, 0]
    );
    // Back to the fill value: the inner chunks go, and then the shard.
    a.write(
        &Selection(vec![DimSelection::Indices(vec![3, 6])]),
        &to_bytes(&[0, 0]),
        false,
    )
    .unwrap();
    assert!(store.get("c/0").unwrap().is_none());
    assert_eq!(read(&a, &Selection::all(&[8])), vec![0; 8]);
}

#[test]
fn corrupt_shards_name_the_key() {
    let store: StoreRef = Arc::new(MemoryStore::new());
    let raw = json!([{"name": "bytes", "configuration": {"endian": "little"}}]);
    let a = Array::create(
        store.clone(),
        "x",
        metadata(
            &[8],
            &[8],
            DataType::UInt16,
            sharded(&[2], "end", raw),
            json!(0),
        ),
        false,
    )
    .unwrap();
    a.write(
        &Selection::all(&[8]),
        &to_bytes(&[1, 2, 3, 4, 5, 6, 7, 8]),
        false,
    )
    .unwrap();
    let good = store.get("x/c/0").unwrap().unwrap();
    let mut out = vec![0u8; 16];
    for bad in [good[..10].to_vec(), {
        let mut b = good.clone();
        let n = b.len();
        b[n - 10] ^= 1;
        b
    }] {
        store.set("x/c/0", &bad).unwrap();
        let fresh = Array::open(store.clone(), "x").unwrap();
        let err = fresh
            .read_into(&Selection::all(&[8]), &mut out)
            .unwrap_err();
        assert!(matches!(err, Error::CorruptChunk { .. }), "{err}");
        assert!(err.to_string().contains("x/c/0"), "{err}");
    }
}

/// Writes, listing and a description for a test store wrapping a `MemoryStore` in `inner`,
/// whose reads are what the test is about.
macro_rules! writes_and_listing_from_inner {
    ($store:ty, $description:expr) => {
        impl WritableStore for $store {
            fn set(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
                self.inner.set(key, value)
            }
            fn delete(&self, key: &str) -> Result<(), StorageError> {
                self.inner.delete(key)
            }
            fn delete_prefix(&self, prefix: &str) -> Result<(), StorageError> {
                self.inner.delete_prefix(prefix)
            }
        }

        impl ListableStore for $store {
            fn list_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
                self.inner.list_prefix(prefix)
            }
            fn list_dir(&self, prefix: &str) -> Result<ListDir, StorageError> {
                self.inner.list_dir(prefix)
            }
        }

        impl Store for $store {
            fn describe(&self) -> String {
                $description.into()
            }
        }
    };
}

/// A memory store whose reads all "wait for the device" when `cold` is set, and which records
/// the keys it is asked to prefetch.
#[derive(Debug, Default)]
struct ColdStore {
    inner: MemoryStore,
    cold: std::sync::atomic::AtomicBool,
    waits: std::sync::atomic::AtomicU64,
    hinted: std::sync::Mutex<Vec<String>>,
}

impl ReadableStore for ColdStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        if self.cold.load(std::sync::atomic::Ordering::Relaxed) {
            self.waits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.inner.get(key)
    }
    fn prefetch(&self, key: &str) {
        self.hinted.lock().unwrap().push(key.to_string());
    }
    fn device_waits(&self) -> u64 {
        self.waits.load(std::sync::atomic::Ordering::Relaxed)
    }
}

writes_and_listing_from_inner!(ColdStore, "cold memory");

#[test]
fn reads_that_wait_prefetch_the_chunks_ahead() {
    let store = Arc::new(ColdStore::default());
    let codecs = json!([{"name": "bytes", "configuration": {"endian": "little"}},
                        {"name": "zstd", "configuration": {"level": 1, "checksum": false}}]);
    let a = Array::create(
        store.clone(),
        "a",
        metadata(&[2000], &[10], DataType::UInt16, codecs, json!(0)),
        false,
    )
    .unwrap();
    let values: Vec<u16> = (0..2000).map(|i| (i * 7 % 1000) as u16 + 1).collect();
    let all = Selection::all(&[2000]);
    a.write(&all, &to_bytes(&values), false).unwrap();
    let keys: std::collections::HashSet<String> = (0..200).map(|i| format!("a/c/{i}")).collect();

    // Cached (no read waits): no hints.
    assert_eq!(read(&a, &all), values);
    assert!(store.hinted.lock().unwrap().is_empty());

    // Every read waits: chunks ahead of each thread are hinted, each once, and the values are
    // still right.
    store.cold.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(read(&a, &all), values);
    let hinted = store.hinted.lock().unwrap().clone();
    let unique: std::collections::HashSet<String> = hinted.iter().cloned().collect();
    assert_eq!(unique.len(), hinted.len(), "a chunk hinted twice");
    assert!(unique.is_subset(&keys), "hinted a key that is not a chunk");
    // All but the few a thread starts on: the first before any read had waited, and where it
    // takes over a range of chunks from another thread (198 of 200 in practice).
    assert!(hinted.len() >= 200 - 16, "{} hinted", hinted.len());
}

#[test]
fn sharded_reads_that_wait_prefetch_the_shards_they_need() {
    let store = Arc::new(ColdStore::default());
    // 4 shards of 10 inner chunks of 10 elements.
    let codecs = json!([{"name": "sharding_indexed", "configuration": {
        "chunk_shape": [10],
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                   {"name": "zstd", "configuration": {"level": 1, "checksum": false}}],
        "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "index_location": "end"}}]);
    let a = Array::create(
        store.clone(),
        "a",
        metadata(&[400], &[100], DataType::UInt16, codecs, json!(0)),
        false,
    )
    .unwrap();
    let values: Vec<u16> = (0..400).map(|i| i as u16 + 1).collect();
    let all = Selection::all(&[400]);
    a.write(&all, &to_bytes(&values), false).unwrap();
    store.cold.store(true, std::sync::atomic::Ordering::Relaxed);

    // A read of every shard hints each shard once, whole.
    assert_eq!(read(&a, &all), values);
    let mut hinted = std::mem::take(&mut *store.hinted.lock().unwrap());
    hinted.sort();
    assert_eq!(hinted, ["a/c/0", "a/c/1", "a/c/2", "a/c/3"]);

    // A read needing all of shard 0 and 3 of the 10 inner chunks of shard 1 hints shard 0
    // only: fetching shard 1 whole would read more than twice what the read needs.
    let part = Selection(vec![DimSelection::Slice {
        start: 0,
        step: 1,
        len: 125,
    }]);
    assert_eq!(read(&a, &part), &values[..125]);
    assert_eq!(*store.hinted.lock().unwrap(), ["a/c/0"]);
}

/// A memory store that replaces the value at a key just before the `n`th request for parts of
/// it: a writer that renames a new shard into place while a read is between its requests.
#[derive(Debug, Default)]
struct ReplacingStore {
    inner: MemoryStore,
    /// The key, the requests to let through before replacing it, and its new value.
    pending: std::sync::Mutex<Option<(String, usize, Vec<u8>)>>,
}

impl ReplacingStore {
    fn replace_before(&self, key: &str, request: usize, value: Vec<u8>) {
        *self.pending.lock().unwrap() = Some((key.to_string(), request - 1, value));
    }
}

impl ReadableStore for ReplacingStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key)
    }
    fn get_range_and_version(
        &self,
        key: &str,
        range: oxzarr_core::store::ByteRange,
    ) -> Result<Option<(Vec<u8>, oxzarr_core::store::Version)>, StorageError> {
        self.inner.get_range_and_version(key, range)
    }
    fn version(&self, key: &str) -> Result<Option<oxzarr_core::store::Version>, StorageError> {
        self.inner.version(key)
    }
    fn read_parts_into(
        &self,
        key: &str,
        parts: &mut [(u64, &mut [u8])],
        expected: Option<oxzarr_core::store::Version>,
    ) -> Result<oxzarr_core::store::PartsRead, StorageError> {
        let mut pending = self.pending.lock().unwrap();
        if let Some((at, left, value)) = pending.as_mut() {
            if at == key {
                match left {
                    0 => {
                        self.inner.set(key, value)?;
                        *pending = None;
                    }
                    _ => *left -= 1,
                }
            }
        }
        drop(pending);
        self.inner.read_parts_into(key, parts, expected)
    }
}

writes_and_listing_from_inner!(ReplacingStore, "replacing memory");

/// A 32x32 uint16 array "a" of one shard of 16 zstd inner chunks (8x8), in `store`.
fn one_shard_of_16_zstd_inner_chunks(store: StoreRef) -> Array {
    let zstd = json!([{"name": "bytes", "configuration": {"endian": "little"}},
                      {"name": "zstd", "configuration": {"level": 1, "checksum": false}}]);
    Array::create(
        store,
        "a",
        metadata(
            &[32, 32],
            &[32, 32],
            DataType::UInt16,
            sharded(&[8, 8], "end", zstd),
            json!(0),
        ),
        false,
    )
    .unwrap()
}

#[test]
fn a_read_takes_a_shards_inner_chunks_from_one_version_of_it() {
    let store = Arc::new(ReplacingStore::default());
    // One shard of 16 compressed inner chunks: a read of them all makes a request for each.
    let a = one_shard_of_16_zstd_inner_chunks(store.clone());
    let all = Selection::all(&[32, 32]);
    let old = vec![1u16; 1024];
    let new = vec![2u16; 1024];
    a.write(&all, &to_bytes(&new), false).unwrap();
    let new_shard = store.get("a/c/0/0").unwrap().unwrap();
    let points: Vec<Vec<u64>> = vec![
        (0..1024).map(|i| i / 32).collect(),
        (0..1024).map(|i| i % 32).collect(),
    ];
    // Replaced before the first request, between two, or before the last: every inner chunk
    // comes from the new shard (a read taking some from each would have mixed 1s and 2s).
    for request in [1, 2, 5, 9, 16] {
        a.write(&all, &to_bytes(&old), false).unwrap();
        store.replace_before("a/c/0/0", request, new_shard.clone());
        assert_eq!(
            read(&a, &all),
            new,
            "region read, replaced before request {request}"
        );

        a.write(&all, &to_bytes(&old), false).unwrap();
        store.replace_before("a/c/0/0", request, new_shard.clone());
        let mut out = vec![0u8; 2048];
        a.read_points(&points, &mut out).unwrap();
        assert_eq!(
            from_bytes(&out),
            new,
            "points, replaced before request {request}"
        );
    }
}

/// A memory store whose every request for parts of a value finds it replaced since its
/// version was read, and which cannot hold a value whole to read them from.
#[derive(Debug, Default)]
struct NeverAgreeingStore {
    inner: MemoryStore,
}

impl ReadableStore for NeverAgreeingStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key)
    }
    fn get_range_and_version(
        &self,
        key: &str,
        range: oxzarr_core::store::ByteRange,
    ) -> Result<Option<(Vec<u8>, oxzarr_core::store::Version)>, StorageError> {
        self.inner.get_range_and_version(key, range)
    }
    fn read_parts_into(
        &self,
        _key: &str,
        _parts: &mut [(u64, &mut [u8])],
        _expected: Option<oxzarr_core::store::Version>,
    ) -> Result<oxzarr_core::store::PartsRead, StorageError> {
        Ok(oxzarr_core::store::PartsRead::Replaced)
    }
}

writes_and_listing_from_inner!(NeverAgreeingStore, "mem://never/agreeing");

#[test]
fn a_shard_that_keeps_changing_is_named_with_its_store() {
    // The error named the key alone ("c/0/0"), where the store's own errors name its URL.
    let a = one_shard_of_16_zstd_inner_chunks(Arc::new(NeverAgreeingStore::default()));
    let all = Selection::all(&[32, 32]);
    a.write(&all, &to_bytes(&[1u16; 1024]), false).unwrap();
    let mut out = vec![0u8; 2048];
    let err = a.read_into(&all, &mut out).unwrap_err().to_string();
    assert!(err.contains("mem://never/agreeing/a/c/0/0"), "{err}");
    assert!(err.contains("replaced while it was read"), "{err}");
}

/// A memory store whose requests each take a while, as over a network, and which records
/// how many were in flight at most.
#[derive(Debug, Default)]
struct SlowStore {
    inner: MemoryStore,
    in_flight: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl SlowStore {
    fn request<T>(&self, f: impl FnOnce() -> T) -> T {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(10));
        let out = f();
        self.in_flight.fetch_sub(1, SeqCst);
        out
    }
}

impl ReadableStore for SlowStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.request(|| self.inner.get(key))
    }
    fn concurrent_requests(&self) -> usize {
        8
    }
}

impl WritableStore for SlowStore {
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.request(|| self.inner.set(key, value))
    }
    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.inner.delete(key)
    }
    fn delete_prefix(&self, prefix: &str) -> Result<(), StorageError> {
        self.inner.delete_prefix(prefix)
    }
}

impl ListableStore for SlowStore {
    fn list_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.inner.list_prefix(prefix)
    }
    fn list_dir(&self, prefix: &str) -> Result<ListDir, StorageError> {
        self.inner.list_dir(prefix)
    }
}

impl Store for SlowStore {
    fn describe(&self) -> String {
        "slow memory".into()
    }
}

#[test]
fn stores_that_wait_on_requests_get_more_threads_than_cores() {
    oxzarr_core::concurrency::set_threads(2);
    let store = Arc::new(SlowStore::default());
    let codecs = json!([{"name": "bytes", "configuration": {"endian": "little"}}]);
    let a = Array::create(
        store.clone(),
        "a",
        metadata(&[640], &[10], DataType::UInt16, codecs, json!(0)),
        false,
    )
    .unwrap();
    let values: Vec<u16> = (1..=640).collect();
    let all = Selection::all(&[640]);
    a.write(&all, &to_bytes(&values), false).unwrap();
    let most_writing = store.most.swap(0, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(read(&a, &all), values);
    let most_reading = store.most.load(std::sync::atomic::Ordering::SeqCst);
    oxzarr_core::concurrency::set_threads(0);
    // 64 chunks on 2 configured threads: the store's 8 requests at once, or nearly.
    assert!(most_writing >= 6, "{most_writing} writes in flight at most");
    assert!(most_reading >= 6, "{most_reading} reads in flight at most");
}

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn v2_arrays_in_the_other_byte_order_read_and_write_their_stored_bytes() -> TestResult {
    let other = if cfg!(target_endian = "big") {
        '<'
    } else {
        '>'
    };
    let store: StoreRef = Arc::new(MemoryStore::new());
    let (shape, chunks) = ([5u64, 7], [2u64, 3]);
    let whole = Selection::all(&shape);
    let as_stored = |bits: &[u64]| -> Vec<u8> {
        bits.iter()
            .flat_map(|b| b.swap_bytes().to_ne_bytes())
            .collect()
    };
    let values: Vec<u64> = (0..35).map(|i| (i as f64 * 1.5).to_bits()).collect();
    let native: Vec<u8> = values.iter().flat_map(|b| b.to_ne_bytes()).collect();
    for order in ["C", "F"] {
        let doc = json!({
            "zarr_format": 2, "shape": shape, "chunks": chunks, "dtype": format!("{other}f8"),
            "compressor": {"id": "zstd", "level": 1}, "fill_value": "NaN", "order": order,
            "filters": [{"id": "shuffle", "elementsize": 8}],
        });
        let zarray = serde_json::to_vec(&doc)?;
        let v2 = oxzarr_core::metadata::ArrayMetadataV2::parse(&zarray, None, ".zarray")?;
        let array = Array::create(store.clone(), order, ArrayMetadata::V2(Box::new(v2)), false)?;
        let view = array
            .in_stored_byte_order()
            .ok_or("no view in the stored order")?;
        assert_eq!(view.metadata(), array.metadata());
        assert_eq!(view.fill_value(), as_stored(&[f64::NAN.to_bits()]));
        assert!(view.in_stored_byte_order().is_none());
        assert_eq!(view.stores_fortran_order(), order == "F");
        // Unwritten chunks read as the fill value, in the stored order.
        let mut out = vec![0u8; native.len()];
        view.read_into(&whole, &mut out)?;
        assert_eq!(out, as_stored(&[f64::NAN.to_bits(); 35]), "{order}");
        // What the array writes, its view reads as stored; and the other way round.
        array.write(&whole, &native, false)?;
        view.read_into(&whole, &mut out)?;
        assert_eq!(out, as_stored(&values), "{order}");
        let row = Selection(vec![
            DimSelection::Slice {
                start: 3,
                step: 1,
                len: 1,
            },
            DimSelection::Slice {
                start: 0,
                step: 1,
                len: 7,
            },
        ]);
        let twos: Vec<u64> = vec![2.0f64.to_bits(); 7];
        view.write(&row, &as_stored(&twos), false)?;
        let mut expected = values.clone();
        expected[21..28].copy_from_slice(&twos);
        array.read_into(&whole, &mut out)?;
        let expected_native: Vec<u8> = expected.iter().flat_map(|b| b.to_ne_bytes()).collect();
        assert_eq!(out, expected_native, "{order}");
        if order == "F" {
            let mut fortran = vec![0u8; native.len()];
            view.read_into_fortran(&whole, &mut fortran)?;
            let mut model = vec![0u64; 35];
            for (i, v) in expected.iter().enumerate() {
                model[(i % 7) * 5 + i / 7] = *v;
            }
            assert_eq!(fortran, as_stored(&model));
        }
        // A chunk of NaNs (any NaN) written through the view is the fill value: not stored.
        let first_chunk = Selection(vec![
            DimSelection::Slice {
                start: 0,
                step: 1,
                len: 2,
            },
            DimSelection::Slice {
                start: 0,
                step: 1,
                len: 3,
            },
        ]);
        let key = format!("{order}/0.0");
        assert!(store.get(&key)?.is_some());
        let negative_nan = 0xFFF8_0000_0000_0000u64;
        view.write_value(&first_chunk, &as_stored(&[negative_nan]), false)?;
        assert!(store.get(&key)?.is_none(), "{order}: {key} stored");
    }
    Ok(())
}
