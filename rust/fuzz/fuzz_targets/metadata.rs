//! Array metadata documents the fuzzer writes: `zarr.json` (v3) or `.zarray` (v2, with
//! `.zattrs`), seeded by `make fuzz` with every metadata document of the shared conformance
//! corpus (tools/fuzz_seeds.py).
//!
//! The first byte picks the format; the rest is the document. An array that opens is written
//! and read back in a small box at its origin (when its chunks are small enough to hold), and
//! the box is read again through a fresh open. Nothing may crash or hang, and
//! AddressSanitizer checks every copy.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use oxzarr_core::store::{MemoryStore, StoreRef, WritableStore};
use oxzarr_core::Array;
use oxzarr_fuzz::corner;

fuzz_target!(|data: &[u8]| {
    let Some((&format, document)) = data.split_first() else {
        return;
    };
    let memory = Arc::new(MemoryStore::new());
    let written = if format % 2 == 0 {
        memory.set("a/zarr.json", document)
    } else {
        memory
            .set("a/.zarray", document)
            .and_then(|()| memory.set("a/.zattrs", b"{}"))
    };
    if written.is_err() {
        return;
    }
    let store: StoreRef = memory;
    let Ok(a) = Array::open(store.clone(), "a") else {
        return;
    };
    let Some((sel, bytes)) = corner(&a) else {
        return;
    };
    let mut fill = vec![0u8; bytes];
    if a.read_into(&sel, &mut fill).is_err() {
        return;
    }
    let values: Vec<u8> = (0..fill.len()).map(|i| (i % 7) as u8).collect();
    if a.write(&sel, &values, false).is_ok() {
        let mut back = vec![0u8; values.len()];
        let again = Array::open(store, "a").expect("an array just written opens again");
        again
            .read_into(&sel, &mut back)
            .expect("a box just written reads back");
    }
});
