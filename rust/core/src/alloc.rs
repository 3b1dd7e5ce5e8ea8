//! Buffers whose size comes from outside the process — stored metadata (a chunk's shape, a
//! data type's size), a file's length, a shard index entry — are allocated fallibly: a corrupt
//! or hostile store must give the caller an error, not abort the process (Rust's allocation
//! failure handler aborts).
//!
//! Linux refuses little up front: it overcommits, so a terabyte asked for by a file's length
//! is granted, and found missing only as it is filled, by the out-of-memory killer ending the
//! process. So a buffer larger than the machine's memory and swap together, which could never
//! be filled, is refused here before it is asked for.

use std::alloc::Layout;
use std::sync::OnceLock;

use crate::error::CodecError;

/// Whether `n` bytes could be held in this machine's memory and swap together (always true
/// where they cannot be told).
fn fits_in_memory(n: u64) -> bool {
    static TOTAL: OnceLock<u64> = OnceLock::new();
    let total = *TOTAL.get_or_init(|| {
        // SAFETY: `sysinfo` fills the struct it is given; all-zero is a valid `sysinfo`.
        let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable `sysinfo`.
        match unsafe { libc::sysinfo(&mut info) } {
            0 => (info.totalram as u64)
                .saturating_add(info.totalswap as u64)
                .saturating_mul(u64::from(info.mem_unit.max(1))),
            _ => u64::MAX,
        }
    });
    n <= total
}

/// `n` zeroed bytes, or an error when the allocator cannot provide them. Zeroed memory comes
/// from `calloc`, so a large buffer's pages are not written twice.
pub(crate) fn zeroed(n: usize) -> Result<Vec<u8>, CodecError> {
    let refused = || CodecError::OutOfMemory { bytes: n as u64 };
    if n == 0 {
        return Ok(Vec::new());
    }
    if !fits_in_memory(n as u64) {
        return Err(refused());
    }
    let layout = Layout::array::<u8>(n).map_err(|_| refused())?;
    // SAFETY: the layout's size is not zero.
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
    if ptr.is_null() {
        return Err(refused());
    }
    // SAFETY: `ptr` comes from the global allocator with the layout of `n` bytes (a Vec<u8>'s
    // layout for capacity `n`), and all `n` bytes are initialized (zero).
    Ok(unsafe { Vec::from_raw_parts(ptr, n, n) })
}

/// An empty buffer with room for `n` bytes, or an error when the allocator cannot provide
/// them: for codecs' outputs, whose size follows the chunk's (a compressor's bound on its
/// output is as large as the chunk).
pub(crate) fn with_capacity(n: usize) -> Result<Vec<u8>, CodecError> {
    let mut buf = Vec::new();
    reserve(&mut buf, n)?;
    Ok(buf)
}

/// Makes room in `buf` for `n` bytes in all (its spare capacity left uninitialized), or leaves
/// it as it was and returns an error when the allocator cannot provide them.
pub(crate) fn reserve(buf: &mut Vec<u8>, n: usize) -> Result<(), CodecError> {
    if n > buf.len() && (!fits_in_memory(n as u64) || buf.try_reserve_exact(n - buf.len()).is_err())
    {
        return Err(CodecError::OutOfMemory { bytes: n as u64 });
    }
    Ok(())
}

/// An error unless `n` bytes could be allocated now, for work that will hold about that much
/// in many small pieces (a shard's bookkeeping for each of its inner chunks), which cannot
/// each be allocated fallibly. The probe's pages are never touched, so it costs no memory.
pub(crate) fn check_room(n: usize) -> Result<(), CodecError> {
    reserve(&mut Vec::new(), n)
}

/// Resizes `buf` to `n` bytes (new bytes zero), or leaves it as it was and returns an error
/// when the allocator cannot provide them.
pub(crate) fn resize(buf: &mut Vec<u8>, n: usize) -> Result<(), CodecError> {
    reserve(buf, n)?;
    buf.resize(n, 0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_sizes_are_refused_not_aborted() {
        assert!(zeroed(usize::MAX).is_err());
        assert!(zeroed(isize::MAX as usize).is_err());
        let mut buf = vec![1u8; 3];
        assert!(resize(&mut buf, isize::MAX as usize).is_err());
        assert_eq!(buf, [1, 1, 1]);
    }

    #[test]
    fn buffers_beyond_memory_are_refused_before_they_are_asked_for() {
        // Linux would grant these (it overcommits) and kill the process filling them.
        assert!(fits_in_memory(1 << 20));
        assert!(!fits_in_memory(1 << 50));
        assert!(zeroed(1 << 50).is_err());
        let mut buf = vec![1u8; 3];
        assert!(resize(&mut buf, 1 << 50).is_err());
        assert_eq!(buf, [1, 1, 1]);
    }

    #[test]
    fn buffers_are_zeroed() {
        assert_eq!(zeroed(0).ok(), Some(Vec::new()));
        assert!(zeroed(1 << 20).is_ok_and(|b| b.len() == 1 << 20 && b.iter().all(|&x| x == 0)));
        let mut buf = vec![7u8; 2];
        assert!(resize(&mut buf, 4).is_ok());
        assert_eq!(buf, [7, 7, 0, 0]);
        assert!(resize(&mut buf, 1).is_ok());
        assert_eq!(buf, [7]);
    }
}
