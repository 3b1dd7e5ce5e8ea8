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
use oxzarr_core::array::Selection;
use oxzarr_core::Array;
use oxzarr_fuzz::{count, offsets, points_in, Box3, Setup};

#[derive(Arbitrary, Debug)]
struct Input {
    setup: Setup,
    ops: Vec<Op>,
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
    let Some(fixture) = input.setup.make() else {
        return;
    };
    let (shape, size) = (fixture.shape.clone(), fixture.size);
    let mut a = fixture.array.clone();
    // Nothing written yet: every element reads as the fill value (zero in every layout here).
    let mut model = vec![0u8; fixture.num_elements() * size];
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
                let (points, coords) = points_in(points, &shape);
                let data = values(points.len(), size, *seed);
                a.write_points(&coords, &data, false).expect("write points");
                let at: Vec<usize> = points
                    .iter()
                    .map(|p| ((p[0] * shape[1] + p[1]) * shape[2] + p[2]) as usize)
                    .collect();
                apply(&mut model, &at, &data, size);
            }
            Op::Reopen => {
                a = Array::open(fixture.store.clone(), "a").expect("the array opens again");
            }
        }
        let mut whole = vec![0u8; model.len()];
        a.read_into(&all, &mut whole).expect("read whole");
        assert_eq!(whole, model, "after {op:?}");
    }
});
