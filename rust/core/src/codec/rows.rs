//! A decoded chunk's rows, scattered over the caller's buffer.
//!
//! A whole chunk read into a larger output lands there as rows: byte runs contiguous in both
//! (for a 64³ chunk of a 512³ array, 4096 runs of 64 elements). Decoding the chunk into a
//! buffer of its own and then copying those rows out costs a write and a read of the whole
//! decoded chunk more than a codec that writes its output in independent pieces (blosc's
//! blocks) needs: such a codec writes each piece straight to its rows.

/// Where the rows of a decoded chunk go in a larger buffer: the chunk's bytes
/// `r * row_len..(r + 1) * row_len` go to `offsets[r]`.
pub struct ChunkRows<'a> {
    base: *mut u8,
    row_len: usize,
    offsets: &'a [usize],
    streaming: bool,
}

// SAFETY: `piece` hands out only the bytes asked for, rows never overlap (checked in `new`
// against the caller's promise of a buffer that nothing else touches), and callers on
// different threads ask for disjoint pieces (`piece`'s contract).
unsafe impl Send for ChunkRows<'_> {}
unsafe impl Sync for ChunkRows<'_> {}

impl<'a> ChunkRows<'a> {
    /// Rows of `row_len` bytes at `offsets` in the `len` bytes at `base`; `None` unless every
    /// row lies inside the buffer and the rows are in increasing order without overlap.
    /// `streaming`: write with streaming stores (a buffer too large for the caches), which
    /// the writer orders with a store fence before it signals that it is done.
    ///
    /// # Safety
    /// `base..base + len` must stay writable while this lives, and nothing else may read or
    /// write the rows meanwhile.
    pub unsafe fn new(
        base: *mut u8,
        len: usize,
        row_len: usize,
        offsets: &'a [usize],
        streaming: bool,
    ) -> Option<Self> {
        if row_len == 0 {
            return None;
        }
        let mut next_free = 0usize;
        for &o in offsets {
            let end = o.checked_add(row_len)?;
            if o < next_free || end > len {
                return None;
            }
            next_free = end;
        }
        Some(Self {
            base,
            row_len,
            offsets,
            streaming,
        })
    }

    pub fn row_len(&self) -> usize {
        self.row_len
    }

    /// The decoded chunk's length.
    pub fn nbytes(&self) -> usize {
        self.offsets.len() * self.row_len
    }

    pub fn streaming(&self) -> bool {
        self.streaming
    }

    /// The destination of bytes `within..within + n` of row `r`.
    ///
    /// # Safety
    /// No two live pieces may overlap: threads decoding at once ask for disjoint bytes.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn piece(&self, r: usize, within: usize, n: usize) -> &mut [u8] {
        // Callers cut pieces from ranges of the chunk they checked against `nbytes` (blosc:
        // the frame's decoded size), so this holds; it guards the raw pointer below all the
        // same, as a panic rather than a stray write should that ever change.
        assert!(
            r < self.offsets.len() && within + n <= self.row_len,
            "a piece outside the chunk's rows"
        );
        // SAFETY: the row lies inside the buffer (checked in `new`) and the piece inside the
        // row (checked above); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(self.offsets[r] + within), n) }
    }

    /// Calls `f(row, within, n, at)` for each row piece of the chunk's bytes `range` in
    /// order: bytes `within..within + n` of row `row` hold the range's bytes `at..at + n`
    /// (counted from the range's start). One division per call, none per row: a full read
    /// visits millions of rows.
    pub fn for_each_piece(
        &self,
        range: std::ops::Range<usize>,
        mut f: impl FnMut(usize, usize, usize, usize),
    ) {
        let mut row = range.start / self.row_len;
        let mut within = range.start % self.row_len;
        let mut at = 0;
        let len = range.end.saturating_sub(range.start);
        while at < len {
            let n = (self.row_len - within).min(len - at);
            f(row, within, n, at);
            at += n;
            row += 1;
            within = 0;
        }
    }

    /// Writes `src`, the chunk's bytes from `start` on, to their rows.
    ///
    /// # Safety
    /// As for `piece`: no other thread writes these bytes at the same time.
    pub unsafe fn write(&self, start: usize, src: &[u8]) {
        self.for_each_piece(start..start + src.len(), |row, within, n, at| {
            // SAFETY: the caller's contract, passed on.
            let dst = unsafe { self.piece(row, within, n) };
            if self.streaming {
                stream_copy(dst, &src[at..at + n]);
            } else {
                dst.copy_from_slice(&src[at..at + n]);
            }
        });
    }

    /// Orders this thread's streaming stores before whatever it does next (signalling that
    /// its part is done): they are otherwise weakly ordered.
    pub fn finish(&self) {
        if self.streaming {
            store_fence();
        }
    }
}

/// Makes the streaming stores before it visible before any store after it.
#[cfg(target_arch = "x86_64")]
pub(crate) fn store_fence() {
    // SAFETY: SSE2 (and so sfence) is part of every x86_64 CPU.
    unsafe { std::arch::x86_64::_mm_sfence() };
}

/// Elsewhere rows are copied with ordinary stores: nothing to order.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn store_fence() {}

/// Elsewhere rows are copied with ordinary stores.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn stream_copy(dst: &mut [u8], src: &[u8]) {
    dst.copy_from_slice(src);
}

/// `dst.copy_from_slice(src)` with streaming stores for the whole cache lines of `dst`, and
/// ordinary stores for the partial lines at its ends. A partial line written with streaming
/// stores leaves the CPU as a partial write, which memory completes by reading the line after
/// all: a 190x144x245 box of 128x128x16 float64 chunks (rows of 128 bytes every 1960 bytes
/// of the output, none aligned) took 44 ms into an existing array with every 16 aligned
/// bytes streamed, 14 ms this way.
#[cfg(target_arch = "x86_64")]
pub(crate) fn stream_copy(dst: &mut [u8], src: &[u8]) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
    const LINE: usize = 64;
    // Equal by construction (callers cut `dst` to `src`'s length); the streaming loop
    // below relies on it for its bounds, so it is checked rather than assumed.
    assert_eq!(dst.len(), src.len(), "rows of different lengths");
    let n = dst.len();
    let head = dst.as_ptr().align_offset(LINE).min(n);
    let body = (n - head) / LINE * LINE;
    if head > 0 {
        dst[..head].copy_from_slice(&src[..head]);
    }
    // SAFETY: SSE2 is part of every x86_64 CPU; `head + body <= n` for both slices, and
    // `dst + head` is 64-byte aligned, so every 16-byte store is aligned as it must be.
    unsafe {
        let d = dst.as_mut_ptr().add(head);
        let s = src.as_ptr().add(head);
        let mut i = 0;
        while i < body {
            _mm_stream_si128(
                d.add(i) as *mut __m128i,
                _mm_loadu_si128(s.add(i) as *const __m128i),
            );
            i += 16;
        }
    }
    if head + body < n {
        dst[head + body..].copy_from_slice(&src[head + body..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_copies_land_whole_wherever_they_start() {
        let src: Vec<u8> = (0..300).map(|i| (i * 7 + 1) as u8).collect();
        for start in 0..64 {
            for len in [0, 1, 15, 16, 63, 64, 65, 127, 128, 129, 200] {
                let mut buf = vec![0u8; 300 + 64];
                let at = buf.as_ptr().align_offset(64) + start;
                stream_copy(&mut buf[at..at + len], &src[..len]);
                store_fence();
                assert_eq!(&buf[at..at + len], &src[..len], "{start} {len}");
                assert!(buf[..at].iter().chain(&buf[at + len..]).all(|&b| b == 0));
            }
        }
    }

    #[test]
    fn rows_must_fit_and_not_overlap() {
        let mut buf = vec![0u8; 100];
        let p = buf.as_mut_ptr();
        // SAFETY: `buf` outlives every `ChunkRows` here and nothing else touches it.
        unsafe {
            assert!(ChunkRows::new(p, 100, 10, &[0, 10, 50, 90], false).is_some());
            assert!(ChunkRows::new(p, 100, 10, &[0, 91], false).is_none());
            assert!(ChunkRows::new(p, 100, 10, &[0, 5], false).is_none());
            assert!(ChunkRows::new(p, 100, 10, &[20, 0], false).is_none());
            assert!(ChunkRows::new(p, 100, 0, &[0], false).is_none());
            assert!(ChunkRows::new(p, 100, 10, &[usize::MAX - 3], false).is_none());
            let rows = ChunkRows::new(p, 100, 10, &[0, 30, 60], false).unwrap();
            assert_eq!(rows.nbytes(), 30);
            rows.piece(1, 2, 8).fill(7);
        }
        assert_eq!(&buf[30..42], &[0, 0, 7, 7, 7, 7, 7, 7, 7, 7, 0, 0]);
        // The chunk's bytes 15..22: the end of row 1, the start of row 2.
        // SAFETY: as above.
        unsafe {
            let rows = ChunkRows::new(buf.as_mut_ptr(), 100, 10, &[0, 30, 60], false).unwrap();
            rows.write(15, &[1, 2, 3, 4, 5, 6, 7]);
        }
        assert_eq!(&buf[30..42], &[0, 0, 7, 7, 7, 1, 2, 3, 4, 5, 0, 0]);
        assert_eq!(&buf[58..64], &[0, 0, 6, 7, 0, 0]);
    }

    #[test]
    #[should_panic(expected = "outside the chunk's rows")]
    fn a_piece_across_rows_is_refused() {
        let mut buf = vec![0u8; 100];
        // SAFETY: as above.
        unsafe {
            let rows = ChunkRows::new(buf.as_mut_ptr(), 100, 10, &[0, 30], false).unwrap();
            rows.piece(0, 5, 10);
        }
    }
}
