//! Per-thread scratch buffers, reused from one chunk (or blosc block) to the next.

use std::cell::RefCell;
use std::thread::LocalKey;

/// Buffers that grew past this are freed after use rather than kept: their size comes from
/// stored metadata or a frame header, and one huge chunk or block should not pin that much
/// memory on every thread that met it.
pub(crate) const KEEP_BYTES: usize = 64 << 20;

/// Runs `f` with this thread's buffer from `slot`, taken out for the duration (a nested use of
/// the same slot gets an empty buffer rather than an alias) and put back afterwards unless it
/// grew past `KEEP_BYTES`. The buffer holds whatever its last user left in it.
pub(crate) fn with<T, R>(
    slot: &'static LocalKey<RefCell<Vec<T>>>,
    f: impl FnOnce(&mut Vec<T>) -> R,
) -> R {
    let mut buf = slot.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let result = f(&mut buf);
    if buf.capacity() * std::mem::size_of::<T>() <= KEEP_BYTES {
        slot.with(|s| *s.borrow_mut() = buf);
    }
    result
}
