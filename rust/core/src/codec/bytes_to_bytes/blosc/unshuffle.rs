//! Byte unshuffle of part of a blosc block, written where the elements go.
//!
//! A block of `n` elements of `ts` bytes, shuffled, holds byte `k` of element `i` at
//! `k * n + i`. c-blosc's own routine unshuffles a whole block into a buffer of its own; a
//! whole-chunk read that wants the elements in the rows of a larger output calls this instead,
//! once per row, and skips that buffer and the copy out of it.

/// Writes elements `first..first + count` of the shuffled block `src` (`n` elements of `ts`
/// bytes) to `dst` (`count * ts` bytes), with streaming stores when `streaming` (and `dst` is
/// 16-byte aligned; the caller fences after them). Called once per row of a read: no
/// divisions.
pub(super) fn unshuffle_part(
    src: &[u8],
    n: usize,
    ts: usize,
    first: usize,
    count: usize,
    dst: &mut [u8],
    streaming: bool,
) {
    // Callers cut `dst` to whole elements of the block; the vector loops below rely on these
    // bounds, so they are checked rather than assumed.
    assert!(
        dst.len() == count * ts && first + count <= n && src.len() >= n * ts,
        "an unshuffle outside its block"
    );
    let done = simd(src, n, ts, first, count, dst, streaming);
    for i in done..count {
        for k in 0..ts {
            dst[i * ts + k] = src[k * n + first + i];
        }
    }
}

/// The vectorised part of `unshuffle_part` for element sizes 2, 4 and 8 (SSE2, part of every
/// x86_64 CPU): the number of elements written, a multiple of 16.
#[cfg(target_arch = "x86_64")]
fn simd(
    src: &[u8],
    n: usize,
    ts: usize,
    first: usize,
    count: usize,
    dst: &mut [u8],
    streaming: bool,
) -> usize {
    use std::arch::x86_64::*;

    let whole = count / 16 * 16;
    if !matches!(ts, 2 | 4 | 8) || whole == 0 {
        return 0;
    }
    // Streaming stores only for whole cache lines (see `codec::rows::stream_copy`).
    let nt = streaming && dst.as_ptr().align_offset(64) == 0 && (whole * ts) % 64 == 0;
    let s = src.as_ptr();
    let d = dst.as_mut_ptr();
    // SAFETY (for every block below): SSE2 is part of every x86_64 CPU. Loads read 16 bytes
    // at `k * n + first + i` with `i + 16 <= whole <= count` and `first + count <= n`, inside
    // stream `k` of `src` (asserted by the caller); stores write 16 bytes at offsets below
    // `whole * ts <= dst.len()`, aligned to 64 bytes when streaming (`d` is, and every store
    // offset is a multiple of 16).
    unsafe {
        let load = |k: usize, i: usize| _mm_loadu_si128(s.add(k * n + first + i) as *const __m128i);
        let store = |at: usize, v: __m128i| {
            if nt {
                _mm_stream_si128(d.add(at) as *mut __m128i, v);
            } else {
                _mm_storeu_si128(d.add(at) as *mut __m128i, v);
            }
        };
        let mut i = 0;
        while i < whole {
            let out = i * ts;
            match ts {
                2 => {
                    let (a, b) = (load(0, i), load(1, i));
                    store(out, _mm_unpacklo_epi8(a, b));
                    store(out + 16, _mm_unpackhi_epi8(a, b));
                }
                4 => {
                    let (ab_lo, ab_hi) = pairs(load(0, i), load(1, i));
                    let (cd_lo, cd_hi) = pairs(load(2, i), load(3, i));
                    store(out, _mm_unpacklo_epi16(ab_lo, cd_lo));
                    store(out + 16, _mm_unpackhi_epi16(ab_lo, cd_lo));
                    store(out + 32, _mm_unpacklo_epi16(ab_hi, cd_hi));
                    store(out + 48, _mm_unpackhi_epi16(ab_hi, cd_hi));
                }
                _ => {
                    // Bytes 0-3 of each element, then bytes 4-7, as 4-byte groups (elements
                    // 0-3, 4-7, 8-11, 12-15), then the two halves side by side.
                    let low = quads([load(0, i), load(1, i), load(2, i), load(3, i)]);
                    let high = quads([load(4, i), load(5, i), load(6, i), load(7, i)]);
                    for (q, (l, h)) in low.into_iter().zip(high).enumerate() {
                        store(out + q * 32, _mm_unpacklo_epi32(l, h));
                        store(out + q * 32 + 16, _mm_unpackhi_epi32(l, h));
                    }
                }
            }
            i += 16;
        }
    }
    whole
}

/// Interleaves the bytes of two streams: elements 0-7 and 8-15 as byte pairs.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn pairs(
    a: std::arch::x86_64::__m128i,
    b: std::arch::x86_64::__m128i,
) -> (std::arch::x86_64::__m128i, std::arch::x86_64::__m128i) {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of every x86_64 CPU.
    unsafe { (_mm_unpacklo_epi8(a, b), _mm_unpackhi_epi8(a, b)) }
}

/// Interleaves four streams: elements 0-3, 4-7, 8-11 and 12-15 as 4-byte groups.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn quads(s: [std::arch::x86_64::__m128i; 4]) -> [std::arch::x86_64::__m128i; 4] {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of every x86_64 CPU.
    unsafe {
        let (ab_lo, ab_hi) = pairs(s[0], s[1]);
        let (cd_lo, cd_hi) = pairs(s[2], s[3]);
        [
            _mm_unpacklo_epi16(ab_lo, cd_lo),
            _mm_unpackhi_epi16(ab_lo, cd_lo),
            _mm_unpacklo_epi16(ab_hi, cd_hi),
            _mm_unpackhi_epi16(ab_hi, cd_hi),
        ]
    }
}

/// Elsewhere the scalar loop does it all.
#[cfg(not(target_arch = "x86_64"))]
fn simd(_: &[u8], _: usize, _: usize, _: usize, _: usize, _: &mut [u8], _: bool) -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shuffles `data` (elements of `ts` bytes) as blosc does.
    fn shuffle(data: &[u8], ts: usize) -> Vec<u8> {
        let n = data.len() / ts;
        let mut out = vec![0u8; data.len()];
        for i in 0..n {
            for k in 0..ts {
                out[k * n + i] = data[i * ts + k];
            }
        }
        out
    }

    #[test]
    fn every_part_of_every_element_size() {
        for ts in 1..=17 {
            for n in [1usize, 15, 16, 17, 33, 100, 256] {
                let data: Vec<u8> = (0..n * ts).map(|i| (i * 31 + ts) as u8).collect();
                let shuffled = shuffle(&data, ts);
                for first in [0, 1, n / 3, n.saturating_sub(17)] {
                    for count in [0, 1, 15, 16, 17, 40, n] {
                        if first + count > n {
                            continue;
                        }
                        for (streaming, pad) in
                            [(false, 0), (false, 1), (true, 0), (true, 3), (true, 16)]
                        {
                            // A destination on a cache line, and off one.
                            let mut buf = vec![0u8; count * ts + 96];
                            let at = buf.as_ptr().align_offset(64) + pad;
                            let dst = &mut buf[at..at + count * ts];
                            unshuffle_part(&shuffled, n, ts, first, count, dst, streaming);
                            crate::codec::rows::store_fence();
                            assert_eq!(
                                dst,
                                &data[first * ts..(first + count) * ts],
                                "ts {ts} n {n} first {first} count {count} {streaming} {pad}"
                            );
                        }
                    }
                }
            }
        }
    }
}
