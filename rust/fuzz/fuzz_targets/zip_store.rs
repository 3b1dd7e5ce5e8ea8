//! Zip files the fuzzer writes, opened as stores: seeded by `make fuzz` with the zipped
//! fixtures of the shared conformance corpus and a zip of each of its small groups
//! (tools/fuzz_seeds.py).
//!
//! The input is the zip file. If it opens, every entry (up to a limit) is read whole, by byte
//! ranges and into buffers, and every array in it has a small box at its origin read. A
//! damaged directory, entry or chunk must give an error, never a crash, a hang or an
//! allocation sized by what the file claims rather than holds.
//!
//! Then the zip is opened to add to: that is refused with an error, or a value written and
//! the zip closed leave a zip that opens with every key it had and the new one.

#![no_main]

use std::path::PathBuf;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use oxzarr_core::store::{
    ByteRange, ListableStore, ReadableStore, StoreRef, WritableStore, ZipMode, ZipStore,
};
use oxzarr_core::Array;
use oxzarr_fuzz::corner;

const MAX_ENTRIES: usize = 64;

/// This process's zip file, written afresh for every input.
fn zip_path() -> PathBuf {
    std::env::temp_dir().join(format!("oxzarr-fuzz-{}.zip", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    let path = zip_path();
    std::fs::write(&path, data).expect("the fuzz zip file can be written");
    let Ok(zip) = ZipStore::open(&path) else {
        return;
    };
    let store: StoreRef = Arc::new(zip);
    let Ok(keys) = store.list_prefix("") else {
        return;
    };
    for key in keys.iter().take(MAX_ENTRIES) {
        let whole = store.get(key);
        let Ok(Some(size)) = store.size(key) else {
            continue;
        };
        let ranges = [
            ByteRange::FromStart {
                offset: size / 3,
                length: Some(size / 3),
            },
            ByteRange::Suffix(size.min(8)),
        ];
        if let (Ok(Some(value)), Ok(Some(parts))) = (&whole, store.get_ranges(key, &ranges)) {
            // What ranges read in place must be what the whole value holds.
            let third = (size / 3) as usize;
            assert_eq!(parts[0], value[third..2 * third], "{key}");
            assert_eq!(parts[1], value[value.len() - parts[1].len()..], "{key}");
        }
        let mut head = vec![0u8; size.min(4) as usize];
        let version = store.version(key).ok().flatten();
        let _ = store.read_parts_into(key, &mut [(0, &mut head[..])], version);
    }
    for key in keys.iter().take(MAX_ENTRIES) {
        let node = key
            .strip_suffix("zarr.json")
            .or_else(|| key.strip_suffix(".zarray"));
        let Some(node) = node else {
            continue;
        };
        let Ok(a) = Array::open(store.clone(), node.trim_end_matches('/')) else {
            continue;
        };
        if let Some((sel, bytes)) = corner(&a) {
            let mut out = vec![0u8; bytes];
            let _ = a.read_into(&sel, &mut out);
        }
    }
    drop(store);
    let Ok(zip) = ZipStore::open_for_writing(&path, ZipMode::Append) else {
        return;
    };
    // Half the runs add a deflated entry.
    let zip = match data.len() % 2 {
        0 => zip.with_deflated_entries(),
        _ => zip,
    };
    zip.set("fuzz/new", b"value").expect("a value can be added");
    zip.close().expect("the zip's directory can be written");
    drop(zip);
    let again = ZipStore::open(&path).expect("a zip oxzarr closed opens");
    let listed = again.list_prefix("").expect("the zip lists");
    for key in &keys {
        assert!(listed.contains(key), "{key} was lost");
    }
    let value = again.get("fuzz/new").expect("the new value reads");
    assert_eq!(value.as_deref(), Some(&b"value"[..]));
});
