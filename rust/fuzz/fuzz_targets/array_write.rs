//! Sequences of writes to an array, each checked against a plain model of it.
//!
//! Each input picks a small array (element size; a v3 codec chain, sharded or not, or a v2
//! layout) and runs up to eight operations on it: writes of boxes with steps, writes of the
//! fill value (whose chunks are then not stored, or stored when asked), writes of points (a
//! point given twice takes its last value), and opening the array again. After each, the
//! whole array must read as the model says. One or two threads, chunk cache on or off.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use oxzarr_core::array::{chunk_cache, Selection};
use oxzarr_core::concurrency;
use oxzarr_core::Array;
use oxzarr_fuzz::{count, create, data_type, fresh_store, offsets, Box3};

#[derive(Arbitrary, Debug)]
struct Input {
    chain: u8,
    element: u8,
    shape: [u8; 3],
    ops: Vec<Op>,
    two_threads: bool,
    cache: bool,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Write {
        at: Box3,
        seed: u8,
        keep_empty: bool,
    },
    Fill {
        at: Box3,
        keep_empty: bool,
    },
    Points {
        points: Vec<[u8; 3]>,
        seed: u8,
    },
    Reopen,
}

/// Values for `n` elements of `size` bytes: different from element to element, never all
/// zero (the fill value) for a whole element.
fn values(n: usize, size: usize, seed: u8) -> Vec<u8> {
    (0..n * size)
        .map(|i| seed.wrapping_add((i * 29 % 251) as u8) | u8::from(i % size == 0))
        .collect()
}

/// Sets the model's elements at `at` (indices into the array) to `data`, one element each.
fn apply(model: &mut [u8], at: &[usize], data: &[u8], size: usize) {
    for (j, &e) in at.iter().enumerate() {
        model[e * size..(e + 1) * size].copy_from_slice(&data[j * size..(j + 1) * size]);
    }
}

fuzz_target!(|input: Input| {
    let shape: Vec<u64> = input.shape.iter().map(|&n| u64::from(n) % 20 + 1).collect();
    let dt = data_type(input.element);
    let size = dt.size();
    concurrency::set_threads(if input.two_threads { 2 } else { 1 });
    chunk_cache::set_budget(if input.cache { 1 << 20 } else { 0 });
    let (root, store) = fresh_store();
    let Some(mut a) = create(&root, &store, input.chain, &shape, &dt) else {
        let _ = std::fs::remove_dir_all(&root);
        return;
    };
    let n: u64 = shape.iter().product();
    // Nothing written yet: every element reads as the fill value (zero in every layout here).
    let mut model = vec![0u8; n as usize * size];
    let all = Selection::all(&shape);

    for op in input.ops.iter().take(8) {
        match op {
            Op::Write {
                at,
                seed,
                keep_empty,
            } => {
                let sel = at.selection(&shape);
                let data = values(count(&sel), size, *seed);
                a.write(&sel, &data, *keep_empty).expect("write a box");
                apply(&mut model, &offsets(&shape, &sel), &data, size);
            }
            Op::Fill { at, keep_empty } => {
                let sel = at.selection(&shape);
                let data = vec![0u8; count(&sel) * size];
                a.write(&sel, &data, *keep_empty)
                    .expect("write the fill value");
                apply(&mut model, &offsets(&shape, &sel), &data, size);
            }
            Op::Points { points, seed } => {
                let points: Vec<[u64; 3]> = points
                    .iter()
                    .take(16)
                    .map(|p| std::array::from_fn(|d| u64::from(p[d]) % shape[d]))
                    .collect();
                let coords: Vec<Vec<u64>> = (0..3)
                    .map(|d| points.iter().map(|p| p[d]).collect())
                    .collect();
                let data = values(points.len(), size, *seed);
                a.write_points(&coords, &data, false).expect("write points");
                let at: Vec<usize> = points
                    .iter()
                    .map(|p| ((p[0] * shape[1] + p[1]) * shape[2] + p[2]) as usize)
                    .collect();
                apply(&mut model, &at, &data, size);
            }
            Op::Reopen => {
                a = Array::open(store.clone(), "a").expect("the array opens again");
            }
        }
        let mut whole = vec![0u8; model.len()];
        a.read_into(&all, &mut whole).expect("read whole");
        assert_eq!(whole, model, "after {op:?}");
    }
    let _ = std::fs::remove_dir_all(&root);
});
