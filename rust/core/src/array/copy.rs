//! Moving elements between a decoded chunk and the caller's buffer.
//!
//! Both buffers are C order. A chunk's share of a selection is visited as rows: byte runs that
//! are contiguous in both buffers. Trailing dimensions that the selection takes whole, and that
//! have the same extent in both buffers, merge into the rows, so reading whole chunks of a
//! row-major region costs a few large copies rather than one per element.

use super::selection::PieceMap;
use crate::codec::rows::{store_fence, stream_copy};
use crate::codec::{BoxRange, ChunkRows};
use crate::metadata::DataType;

/// C-order strides, in elements.
pub(crate) fn c_strides(shape: &[u64]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1] as usize;
    }
    strides
}

/// The box of a chunk that its share of a selection reads, from its first element to its last
/// along each dimension, with the share's step there (1 for a list of positions): a codec
/// chain that can decode part of a chunk decodes only these. `None` for an empty share.
pub(crate) fn share_box(maps: &[&PieceMap]) -> Option<Vec<BoxRange>> {
    (maps.iter())
        .map(|map| {
            let (first, last) = map.chunk_bounds()?;
            let step = match map {
                PieceMap::Run { step, len, .. } if *len > 1 => step.unsigned_abs(),
                _ => 1,
            };
            Some(BoxRange { first, last, step })
        })
        .collect()
}

/// Copies a chunk's share of a selection into `out` from the chunk's bytes in `chunk`, which
/// hold the decoded chunk from byte `base` on (0: all of it). Where the share takes its last
/// dimension with a step (every other element, say), each row of the output is filled by one
/// loop over the chunk rather than one call per element. Measured, every other element along
/// each dimension (medians of three processes): 4096x8000 int16 in blosc chunks of 256x1000
/// 37.8 -> 28.3 ms, 4096x8192 float32 in zstd chunks of 512² 86 -> 75 ms, 256³ uint16 in
/// uncompressed 64³ chunks 3.6 -> 1.8 ms.
pub(crate) fn copy_share_from(
    maps: &[&PieceMap],
    chunk_shape: &[u64],
    out_shape: &[u64],
    size: usize,
    chunk: &[u8],
    base: usize,
    out: &SharedBuffer,
) {
    if let Some(&&PieceMap::Run {
        out_start,
        chunk_start,
        step,
        len,
    }) = maps.last()
    {
        if step != 1 && len > 1 {
            // The rows' first elements, then each row along its step.
            let first = PieceMap::Run {
                out_start,
                chunk_start,
                step: 1,
                len: 1,
            };
            let mut firsts = maps.to_vec();
            firsts[maps.len() - 1] = &first;
            let n = len as usize;
            let stride = step as isize * size as isize;
            for_each_row(&firsts, chunk_shape, out_shape, size, &mut |o, c, _| {
                // SAFETY: every row of this share belongs to this chunk alone.
                let row = unsafe { out.slice(o, n * size) };
                strided_copy(row, chunk, c as isize - base as isize, stride, size);
            });
            return;
        }
    }
    for_each_row(maps, chunk_shape, out_shape, size, &mut |o, c, n| {
        let c = c - base;
        // SAFETY: every row of this share belongs to this chunk alone.
        unsafe { out.copy_in(o, &chunk[c..c + n]) };
    });
    out.finish();
}

/// Fills `dst` with elements of `size` bytes from `src`, the first at byte `start`, each next
/// `stride` bytes on (negative: back).
fn strided_copy(dst: &mut [u8], src: &[u8], start: isize, stride: isize, size: usize) {
    match size {
        1 => strided_elements::<1>(dst, src, start, stride, size),
        2 => strided_elements::<2>(dst, src, start, stride, size),
        4 => strided_elements::<4>(dst, src, start, stride, size),
        8 => strided_elements::<8>(dst, src, start, stride, size),
        16 => strided_elements::<16>(dst, src, start, stride, size),
        _ => strided_elements::<0>(dst, src, start, stride, size),
    }
}

/// `strided_copy` for elements of `N` bytes (`N` = 0: of `size` bytes, known only at run time).
fn strided_elements<const N: usize>(
    dst: &mut [u8],
    src: &[u8],
    start: isize,
    stride: isize,
    size: usize,
) {
    let size = if N == 0 { size } else { N };
    let mut at = start;
    for element in dst.chunks_exact_mut(size) {
        // Every position the selection reads lies in the chunk, so `at` is never negative
        // here (a wrong one would fail the bounds check as a huge index).
        let a = at as usize;
        element.copy_from_slice(&src[a..a + size]);
        at += stride;
    }
}

/// Calls `f(out_offset, chunk_offset, nbytes)` for every row of a chunk's share of the
/// selection. `maps[d]` is the chunk's piece along dimension `d`; `size` the element size.
pub(crate) fn for_each_row(
    maps: &[&PieceMap],
    chunk_shape: &[u64],
    out_shape: &[u64],
    size: usize,
    f: &mut impl FnMut(usize, usize, usize),
) {
    let ndim = maps.len();
    if maps.iter().any(|m| m.is_empty()) {
        return;
    }
    let mut inner = ndim;
    while inner > 0 {
        let d = inner - 1;
        let whole = matches!(maps[d], PieceMap::Run { out_start: 0, chunk_start: 0, step: 1, len }
            if *len == chunk_shape[d] && *len == out_shape[d]);
        if !whole {
            break;
        }
        inner -= 1;
    }
    let block: usize = chunk_shape[inner..].iter().product::<u64>() as usize * size;
    if inner == 0 {
        f(0, 0, block);
        return;
    }
    let cs: Vec<usize> = c_strides(chunk_shape).iter().map(|s| s * size).collect();
    let os: Vec<usize> = c_strides(out_shape).iter().map(|s| s * size).collect();
    // The innermost unmerged dimension: a run in order is one row of all its elements.
    let last = inner - 1;
    let (looped, row, base) = match maps[last] {
        PieceMap::Run {
            out_start,
            chunk_start,
            step: 1,
            len,
        } => (
            last,
            *len as usize * block,
            (
                *out_start as usize * os[last],
                *chunk_start as usize * cs[last],
            ),
        ),
        _ => (inner, block, (0, 0)),
    };
    if looped == 0 {
        f(base.0, base.1, row);
        return;
    }
    // Each looped dimension's (output, chunk) byte offsets, then an odometer over them with
    // the innermost as a plain loop: a full read calls `f` for millions of short rows, and
    // walking the dimensions recursively cost as much as the copies (measured: scattering
    // 64³ chunks of u16 into a 512³ output took 17 ms on one core that way, 11.4 ms this way).
    let tables: Vec<Vec<(usize, usize)>> = (0..looped)
        .map(|d| offsets(maps[d], os[d], cs[d]))
        .collect();
    // `looped` is at least 1 here, so the innermost table exists.
    let (outer, innermost) = tables.split_at(looped - 1);
    let innermost = &innermost[0];
    let mut index = vec![0usize; outer.len()];
    loop {
        let (mut o, mut c) = base;
        for (table, &i) in outer.iter().zip(&index) {
            o += table[i].0;
            c += table[i].1;
        }
        for &(oi, ci) in innermost {
            f(o + oi, c + ci, row);
        }
        // Next index of the outer dimensions, last fastest.
        let mut d = outer.len();
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            index[d] += 1;
            if index[d] < outer[d].len() {
                break;
            }
            index[d] = 0;
        }
    }
}

/// The (output, chunk) byte offsets of each position of a piece along one dimension, whose
/// strides are `os` and `cs` bytes.
fn offsets(map: &PieceMap, os: usize, cs: usize) -> Vec<(usize, usize)> {
    match map {
        PieceMap::Run {
            out_start,
            chunk_start,
            step,
            len,
        } => (0..*len)
            .map(|j| {
                // A piece's chunk positions all lie inside the chunk, so never below 0.
                let c = *chunk_start as i64 + j as i64 * step;
                ((*out_start + j) as usize * os, c as usize * cs)
            })
            .collect(),
        PieceMap::Pairs(pairs) => pairs
            .iter()
            .map(|&(o, c)| (o as usize * os, c as usize * cs))
            .collect(),
    }
}

/// Fills `dst` with copies of the element `fill` (a trailing part shorter than an element is
/// left alone).
pub(crate) fn fill_elements(dst: &mut [u8], fill: &[u8]) {
    let Some(&first) = fill.first() else {
        return;
    };
    if fill.iter().all(|&b| b == first) {
        dst.fill(first);
        return;
    }
    // An element at a time would be one `memcpy` call per element (the element size is not
    // known when compiling): a NaN-filled float64 chunk filled 3-7x slower than a zero-filled
    // one. Instead a pattern of whole elements is built up by doubling, to a size that stays
    // in the L1 cache, and then copied over the rest in blocks of that size.
    const PATTERN_BYTES: usize = 4096;
    let len = dst.len() - dst.len() % fill.len();
    let dst = &mut dst[..len];
    if len == 0 {
        return;
    }
    dst[..fill.len()].copy_from_slice(fill);
    let pattern = len.min(PATTERN_BYTES.max(fill.len()) / fill.len() * fill.len());
    let mut done = fill.len();
    while done < pattern {
        let n = done.min(pattern - done);
        dst.copy_within(..n, done);
        done += n;
    }
    let (pattern, rest) = dst.split_at_mut(pattern);
    for block in rest.chunks_mut(pattern.len()) {
        block.copy_from_slice(&pattern[..block.len()]);
    }
}

/// Whether every element of `data` counts as the fill value `fill` of `data_type` when empty
/// chunks are left out, as zarr-python counts it: byte for byte, except that where the fill
/// value is a NaN any NaN is (numpy's `array_equal(equal_nan=True)`, where a complex number
/// is a NaN if either part is). A chunk of NaNs computed on x86 (whose NaN has the sign bit
/// set) was stored though its fill value was NaN.
pub(crate) fn all_fill_of(data: &[u8], fill: &[u8], data_type: &DataType) -> bool {
    all_fill_in_order(data, fill, data_type, false)
}

/// [`all_fill_of`] for elements (`data` and `fill`) in the other byte order than the
/// machine's when `byte_swapped`: the bytes that are a NaN differ with the order.
pub(crate) fn all_fill_in_order(
    data: &[u8],
    fill: &[u8],
    data_type: &DataType,
    byte_swapped: bool,
) -> bool {
    if all_fill(data, fill) {
        return true;
    }
    let Some((part, is_nan)) = nan_test(data_type, byte_swapped) else {
        return false;
    };
    let element_nan = |element: &[u8]| element.chunks_exact(part).any(is_nan);
    element_nan(fill) && data.chunks_exact(fill.len()).all(element_nan)
}

/// Whether the bytes of one float are a NaN.
type NanTest = fn(&[u8]) -> bool;

/// For the floating-point types: the size of a float in one element (both parts of a complex
/// number), and its NaN test for floats in the machine's byte order, or the other one when
/// `byte_swapped`.
fn nan_test(data_type: &DataType, byte_swapped: bool) -> Option<(usize, NanTest)> {
    fn f16_bits_nan(bits: u16) -> bool {
        // Exponent all ones, mantissa not zero.
        bits & 0x7c00 == 0x7c00 && bits & 0x03ff != 0
    }
    fn f16_nan(b: &[u8]) -> bool {
        <[u8; 2]>::try_from(b).is_ok_and(|a| f16_bits_nan(u16::from_ne_bytes(a)))
    }
    fn f32_nan(b: &[u8]) -> bool {
        <[u8; 4]>::try_from(b).is_ok_and(|a| f32::from_ne_bytes(a).is_nan())
    }
    fn f64_nan(b: &[u8]) -> bool {
        <[u8; 8]>::try_from(b).is_ok_and(|a| f64::from_ne_bytes(a).is_nan())
    }
    fn f16_swapped_nan(b: &[u8]) -> bool {
        <[u8; 2]>::try_from(b).is_ok_and(|a| f16_bits_nan(u16::from_ne_bytes(a).swap_bytes()))
    }
    fn f32_swapped_nan(b: &[u8]) -> bool {
        <[u8; 4]>::try_from(b)
            .is_ok_and(|a| f32::from_bits(u32::from_ne_bytes(a).swap_bytes()).is_nan())
    }
    fn f64_swapped_nan(b: &[u8]) -> bool {
        <[u8; 8]>::try_from(b)
            .is_ok_and(|a| f64::from_bits(u64::from_ne_bytes(a).swap_bytes()).is_nan())
    }
    let test: (usize, NanTest, NanTest) = match data_type {
        DataType::Float16 => (2, f16_nan, f16_swapped_nan),
        DataType::Float32 | DataType::Complex64 => (4, f32_nan, f32_swapped_nan),
        DataType::Float64 | DataType::Complex128 => (8, f64_nan, f64_swapped_nan),
        _ => return None,
    };
    Some((test.0, if byte_swapped { test.2 } else { test.1 }))
}

/// Whether every element of `data` is `fill`, byte for byte.
pub(crate) fn all_fill(data: &[u8], fill: &[u8]) -> bool {
    if fill.iter().all(|&b| b == fill[0]) {
        // A word at a time: this runs over every chunk written.
        let word = u64::from_ne_bytes([fill[0]; 8]);
        let words = data.chunks_exact(8);
        let tail = words.remainder();
        tail.iter().all(|&x| x == fill[0])
            && words
                .into_iter()
                .all(|w| <[u8; 8]>::try_from(w).is_ok_and(|a| u64::from_ne_bytes(a) == word))
    } else {
        data.chunks_exact(fill.len()).all(|e| e == fill)
    }
}

/// A buffer that parallel workers write disjoint parts of.
pub(crate) struct SharedBuffer {
    ptr: *mut u8,
    len: usize,
    /// Rows are copied in with streaming (non-temporal) stores: see `copy_in`.
    streaming: bool,
}

/// Outputs at least this large are written with streaming stores. They cannot stay in the
/// CPU's caches anyway (this is the L3 of the machines we measure on), and ordinary stores
/// would first read every line of the output in from memory.
const STREAMING_BYTES: usize = 32 << 20;

// SAFETY: workers only ever write disjoint ranges (each element of the output belongs to one
// chunk's share of the selection), and `slice` checks every range against the length.
unsafe impl Send for SharedBuffer {}
unsafe impl Sync for SharedBuffer {}

impl SharedBuffer {
    pub(crate) fn new(buf: &mut [u8]) -> Self {
        Self {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            streaming: buf.len() >= STREAMING_BYTES,
        }
    }

    /// Copies `src` to the bytes `offset..offset + src.len()`. A large output is written
    /// with streaming stores, which go to memory without reading the destination's cache
    /// lines first: scattering the short rows of chunks into a 256 MiB array costs half as
    /// much that way (measured: 13 ms against 22-28 ms on one core); `finish` must follow.
    ///
    /// # Safety
    /// As for `slice`: no other live reference may overlap the range.
    pub(crate) unsafe fn copy_in(&self, offset: usize, src: &[u8]) {
        // SAFETY: the caller's contract, passed on.
        let dst = unsafe { self.slice(offset, src.len()) };
        if self.streaming && src.len() >= 64 {
            stream_copy(dst, src);
        } else {
            dst.copy_from_slice(src);
        }
    }

    /// The rows at `offsets` (each `row_len` bytes) as a codec's destination; `None` unless
    /// they lie inside the buffer, in order and apart.
    ///
    /// # Safety
    /// As for `slice`: no other live reference may overlap the rows while they are in use.
    pub(crate) unsafe fn rows<'a>(
        &'a self,
        row_len: usize,
        offsets: &'a [usize],
    ) -> Option<ChunkRows<'a>> {
        // SAFETY: the buffer stays borrowed while this lives, and exclusive use of the rows
        // is the caller's contract, passed on.
        unsafe { ChunkRows::new(self.ptr, self.len, row_len, offsets, self.streaming) }
    }

    /// Orders this thread's streaming stores before whatever it does next (the pool's
    /// signal that its share is done): they are otherwise weakly ordered.
    pub(crate) fn finish(&self) {
        if self.streaming {
            store_fence();
        }
    }

    /// The bytes `offset..offset + n`.
    ///
    /// # Safety
    /// No other live reference may overlap the range: callers hand each range to one worker.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, offset: usize, n: usize) -> &mut [u8] {
        assert!(
            offset.checked_add(n).is_some_and(|end| end <= self.len),
            "selection row outside the output buffer"
        );
        // SAFETY: in bounds (checked above); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(offset), n) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_nan_is_a_nan_fill_values() {
        let bytes =
            |values: &[f64]| -> Vec<u8> { values.iter().flat_map(|v| v.to_ne_bytes()).collect() };
        let negative_nan = f64::from_bits(0xFFF8_0000_0000_0000);
        let payload_nan = f64::from_bits(0x7FF8_0000_0000_0001);
        let nan = bytes(&[f64::NAN]);
        let data = bytes(&[negative_nan, payload_nan]);
        assert!(!all_fill(&data, &nan));
        assert!(all_fill_of(&data, &nan, &DataType::Float64));
        assert!(!all_fill_of(&data, &bytes(&[1.0]), &DataType::Float64));
        assert!(!all_fill_of(
            &bytes(&[f64::NAN, 1.0]),
            &nan,
            &DataType::Float64
        ));
        // Not for integers with a NaN's bytes, nor -0.0 for 0.0.
        assert!(!all_fill_of(&data, &nan, &DataType::UInt64));
        assert!(!all_fill_of(
            &bytes(&[-0.0]),
            &bytes(&[0.0]),
            &DataType::Float64
        ));
        // A complex number is a NaN if either part is.
        let complex = bytes(&[f64::NAN, 0.0]);
        assert!(all_fill_of(
            &bytes(&[5.0, f64::NAN, negative_nan, 1.0]),
            &complex,
            &DataType::Complex128
        ));
        assert!(!all_fill_of(
            &bytes(&[5.0, 1.0]),
            &complex,
            &DataType::Complex128
        ));
        let halves = [0x7E01u16, 0xFE00, 0x7C01]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect::<Vec<u8>>();
        assert!(all_fill_of(
            &halves,
            &0x7E00u16.to_ne_bytes(),
            &DataType::Float16
        ));
        // Infinity is no NaN.
        assert!(!all_fill_of(
            &0x7C00u16.to_ne_bytes(),
            &0x7E00u16.to_ne_bytes(),
            &DataType::Float16
        ));
    }

    #[test]
    fn nan_fill_values_are_told_in_the_other_byte_order() {
        let swapped = |bits: &[u64]| -> Vec<u8> {
            bits.iter()
                .flat_map(|b| b.swap_bytes().to_ne_bytes())
                .collect()
        };
        let nan = swapped(&[0x7FF8_0000_0000_0000]);
        let nans = swapped(&[0xFFF8_0000_0000_0000, 0x7FF8_0000_0000_0001]);
        assert!(all_fill_in_order(&nans, &nan, &DataType::Float64, true));
        // Read in the machine's order, neither those bytes nor the fill's are NaNs.
        assert!(!all_fill_in_order(&nans, &nan, &DataType::Float64, false));
        let one = swapped(&[1.0f64.to_bits()]);
        assert!(!all_fill_in_order(&one, &nan, &DataType::Float64, true));
        let halves: Vec<u8> = [0xFE00u16, 0x7C01]
            .iter()
            .flat_map(|v| v.swap_bytes().to_ne_bytes())
            .collect();
        let half_nan = 0x7E00u16.swap_bytes().to_ne_bytes();
        assert!(all_fill_in_order(
            &halves,
            &half_nan,
            &DataType::Float16,
            true
        ));
        let floats = swapped(&[0x7FC0_0001_FFC0_0000]);
        let float_nan = 0x7FC0_0000u32.swap_bytes().to_ne_bytes();
        assert!(all_fill_in_order(
            &floats,
            &float_nan,
            &DataType::Float32,
            true
        ));
    }

    #[test]
    fn fills_match_one_element_at_a_time() {
        let element: Vec<u8> = (1..=16u8).collect();
        for size in [1, 2, 3, 4, 5, 8, 12, 16] {
            let fill = &element[..size];
            for len in [
                0,
                1,
                size - 1,
                size,
                size + 1,
                4095,
                4096,
                4097,
                3 * 4096 + 7,
                65536,
            ] {
                let mut want = vec![0xAAu8; len];
                for e in want.chunks_exact_mut(size) {
                    e.copy_from_slice(fill);
                }
                let mut got = vec![0xAAu8; len];
                fill_elements(&mut got, fill);
                assert_eq!(got, want, "element of {size} bytes, {len} bytes filled");
            }
        }
        let mut untouched = vec![9u8; 10];
        fill_elements(&mut untouched, &[]);
        assert_eq!(untouched, vec![9u8; 10]);
    }

    #[test]
    fn streaming_copies_match_plain_ones() {
        let src: Vec<u8> = (0..400u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut big = vec![0u8; STREAMING_BYTES + 512];
        let shared = SharedBuffer::new(&mut big);
        assert!(shared.streaming);
        // Every alignment of the destination and of the source, every length around the
        // 16-byte stores and the 64-byte threshold.
        for dst_at in 0..33 {
            for src_at in [0, 1, 15, 16, 17] {
                for n in (0..80).chain([127, 128, 129, 255, 256, 300]) {
                    let at = 1000 + dst_at;
                    // SAFETY: one thread, one range at a time.
                    unsafe { shared.copy_in(at, &src[src_at..src_at + n]) };
                    shared.finish();
                    // SAFETY: as above.
                    let written = unsafe { shared.slice(at, n) };
                    assert_eq!(written, &src[src_at..src_at + n], "{dst_at} {src_at} {n}");
                    written.fill(0);
                }
            }
        }
        // Bytes around a copy are left alone.
        // SAFETY: as above.
        unsafe { shared.copy_in(2001, &src[..200]) };
        shared.finish();
        assert_eq!(big[2000], 0);
        assert_eq!(big[2201], 0);
        assert_eq!(&big[2001..2201], &src[..200]);
    }
    use crate::array::selection::{dim_pieces, DimSelection};

    /// Copies a chunk's share through `for_each_row` and checks it element by element.
    fn check(sels: Vec<DimSelection>, shape: &[u64], chunk_shape: &[u64]) {
        let size = 2usize;
        let n: u64 = shape.iter().product();
        let array: Vec<u16> = (0..n as u16).collect();
        let out_shape: Vec<u64> = sels.iter().map(|s| s.len()).collect();
        let out_n: u64 = out_shape.iter().product();
        let mut out = vec![u16::MAX; out_n as usize];
        let mut copied = vec![0xffu8; out_n as usize * size];
        let pieces: Vec<_> = sels
            .iter()
            .zip(chunk_shape)
            .map(|(s, &c)| dim_pieces(s, c))
            .collect();
        let astrides = c_strides(shape);
        // Every combination of pieces = every chunk touched.
        let mut idx = vec![0usize; pieces.len()];
        'outer: loop {
            let maps: Vec<&PieceMap> = idx
                .iter()
                .enumerate()
                .map(|(d, &i)| &pieces[d][i].map)
                .collect();
            let coords: Vec<u64> = idx
                .iter()
                .enumerate()
                .map(|(d, &i)| pieces[d][i].chunk)
                .collect();
            // The chunk, cut from the array (padded with MAX beyond the edge).
            let cn: u64 = chunk_shape.iter().product();
            let cstr = c_strides(chunk_shape);
            let mut chunk = vec![u16::MAX; cn as usize];
            for (e, v) in chunk.iter_mut().enumerate() {
                let mut ok = true;
                let mut a = 0usize;
                for d in 0..shape.len() {
                    let p = coords[d] * chunk_shape[d] + ((e / cstr[d]) as u64 % chunk_shape[d]);
                    ok &= p < shape[d];
                    a += p as usize * astrides[d];
                }
                if ok {
                    *v = array[a];
                }
            }
            let chunk_bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_ne_bytes()).collect();
            let mut out_bytes: Vec<u8> = out.iter().flat_map(|v| v.to_ne_bytes()).collect();
            let mut touched: Option<(usize, usize)> = None;
            for_each_row(&maps, chunk_shape, &out_shape, size, &mut |o, c, nb| {
                out_bytes[o..o + nb].copy_from_slice(&chunk_bytes[c..c + nb]);
                let (lo, hi) = touched.unwrap_or((c, c + nb));
                touched = Some((lo.min(c), hi.max(c + nb)));
            });
            // The range partial decoding relies on is exactly the bytes the rows copy.
            let range = share_box(&maps).map_or(0..0, |part| {
                crate::codec::box_byte_range(&part, chunk_shape, size)
            });
            match touched {
                Some((lo, hi)) => assert_eq!(range, lo..hi, "chunk {coords:?}"),
                None => assert!(range.is_empty(), "{range:?} for an empty share"),
            }
            // `copy_share_from` copies the same, from the whole chunk or from the span of it
            // the share reads.
            for base in [0, range.start] {
                let shared = SharedBuffer::new(&mut copied);
                let from = &chunk_bytes[base..];
                copy_share_from(&maps, chunk_shape, &out_shape, size, from, base, &shared);
            }
            out = out_bytes
                .chunks(2)
                .map(|b| u16::from_ne_bytes([b[0], b[1]]))
                .collect();
            for d in (0..idx.len()).rev() {
                idx[d] += 1;
                if idx[d] < pieces[d].len() {
                    continue 'outer;
                }
                idx[d] = 0;
            }
            break;
        }
        let rows: Vec<u8> = out.iter().flat_map(|v| v.to_ne_bytes()).collect();
        assert_eq!(copied, rows);
        // Expected: numpy-style orthogonal indexing.
        let lists: Vec<Vec<u64>> = sels
            .iter()
            .map(|s| match s {
                DimSelection::Slice { start, step, len } => (0..*len)
                    .map(|j| (*start as i64 + j as i64 * step) as u64)
                    .collect(),
                DimSelection::Indices(v) => v.clone(),
            })
            .collect();
        let ostr = c_strides(&out_shape);
        for (e, v) in out.iter().enumerate() {
            let mut a = 0usize;
            for d in 0..shape.len() {
                a += lists[d][(e / ostr[d]) % out_shape[d] as usize] as usize * astrides[d];
            }
            assert_eq!(*v, array[a], "element {e}");
        }
    }

    #[test]
    fn rows_match_orthogonal_indexing() {
        let all = DimSelection::all;
        let sl = |start, step, len| DimSelection::Slice { start, step, len };
        check(vec![all(10), all(7)], &[10, 7], &[3, 7]);
        check(vec![all(10), all(7)], &[10, 7], &[4, 3]);
        check(vec![sl(1, 1, 8), sl(6, -2, 3)], &[10, 7], &[4, 3]);
        check(vec![sl(0, 1, 4), all(6), all(5)], &[4, 6, 5], &[4, 6, 5]);
        check(
            vec![sl(2, 3, 3), all(6), sl(4, -1, 5)],
            &[12, 6, 5],
            &[5, 2, 5],
        );
        check(
            vec![DimSelection::Indices(vec![5, 0, 5, 9]), all(7)],
            &[10, 7],
            &[3, 7],
        );
        check(
            vec![all(3), DimSelection::Indices(vec![6, 1])],
            &[3, 7],
            &[2, 2],
        );
        // Four dimensions, so the odometer carries over more than one outer dimension, with
        // a reversed run and an index list among them.
        check(
            vec![
                sl(5, -2, 3),
                DimSelection::Indices(vec![3, 0, 2]),
                all(5),
                sl(1, 2, 3),
            ],
            &[6, 4, 5, 7],
            &[2, 3, 2, 3],
        );
        check(vec![], &[], &[]);
    }

    #[test]
    fn fill_and_compare() {
        let mut buf = vec![0u8; 12];
        fill_elements(&mut buf, &[1, 2, 3]);
        assert_eq!(buf, [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
        assert!(all_fill(&buf, &[1, 2, 3]));
        assert!(!all_fill(&buf, &[1, 2, 4]));
        let zeros = vec![0u8; 1001];
        assert!(all_fill(&zeros, &[0]));
        let mut almost = zeros.clone();
        almost[1000] = 1;
        assert!(!all_fill(&almost, &[0]));
        almost[1000] = 0;
        almost[3] = 1;
        assert!(!all_fill(&almost, &[0, 0]));
    }
}
