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

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use oxzarr_core::array::{DimSelection, Selection};
use oxzarr_core::Array;
use oxzarr_fuzz::{count, elements, pick, points_in, Box3, Setup};

#[derive(Arbitrary, Debug)]
struct Input {
    setup: Setup,
    damage: Vec<Damage>,
    reads: Vec<Read>,
    write: Option<(Box3, u8)>,
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

fuzz_target!(|input: Input| {
    let Some(fixture) = input.setup.make() else {
        return;
    };
    let (shape, size) = (fixture.shape.as_slice(), fixture.size);
    fixture
        .array
        .write(
            &Selection::all(shape),
            &elements(fixture.num_elements(), size),
            false,
        )
        .expect("write whole");
    damage(&fixture.root.join("a"), &input.damage);

    // A fresh open: no shard index cached from before the damage.
    let Ok(a) = Array::open(fixture.store.clone(), "a") else {
        return;
    };
    let mut whole = vec![0u8; fixture.num_elements() * size];
    let whole_ok = a.read_into(&Selection::all(shape), &mut whole).is_ok();

    for read in input.reads.iter().take(6) {
        let (sel, got) = match read {
            Read::Box(b) => {
                let sel = b.selection(shape);
                let mut out = vec![0u8; count(&sel) * size];
                let ok = a.read_into(&sel, &mut out).is_ok();
                (sel, ok.then_some(out))
            }
            Read::Lists(lists) => {
                let sel = Selection(
                    lists
                        .iter()
                        .zip(shape)
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
                let (points, coords) = points_in(points, shape);
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
                            pick(&whole, shape, &sel, size),
                            "point {p:?}"
                        );
                    }
                }
                continue;
            }
        };
        if let (true, Some(got)) = (whole_ok, got) {
            assert_eq!(got, pick(&whole, shape, &sel, size), "{sel:?}");
        }
    }

    if let Some((b, value)) = input.write {
        let sel = b.selection(shape);
        let values = vec![value; count(&sel) * size];
        if a.write(&sel, &values, false).is_ok() {
            let mut back = vec![0u8; values.len()];
            a.read_into(&sel, &mut back)
                .expect("a selection just written reads back");
            assert_eq!(back, values, "written {sel:?}");
        }
    }
});
