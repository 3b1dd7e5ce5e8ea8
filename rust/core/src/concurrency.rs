//! The engine's thread pools, their size, and surviving `fork`.
//!
//! Work runs on a rayon pool owned by the engine (never rayon's global pool), sized by the
//! `threads` setting (0 = all cores). A process started by `fork` inherits the memory of its
//! parent's pools but none of their threads, so a pool used there would wait forever. Every
//! pool is therefore tagged with the id of the process that built it, and a child builds fresh
//! pools of the configured size on first use.
//!
//! Shared state (the pools, caches) is guarded by [`ForkSafeMutex`]: a lock that a forked
//! child finds free even if another thread of the parent held it at the moment of the fork
//! (that thread does not exist in the child and would never release it).

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Once};

use rayon::ThreadPool;

use crate::error::{Error, Result};

static THREADS: AtomicUsize = AtomicUsize::new(0);
/// Bumped in every child process right after `fork`.
static FORK_EPOCH: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();
/// The workers that ran a piece of the most recent parallel operation, one bit each.
static LAST_WORKERS: AtomicU64 = AtomicU64::new(0);

extern "C" fn after_fork_in_child() {
    FORK_EPOCH.fetch_add(1, Ordering::SeqCst);
}

fn register_atfork() {
    ATFORK.call_once(|| {
        // SAFETY: registers a handler that only touches an atomic.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });
}

/// A mutex for short critical sections that survives `fork`: its state word records the fork
/// epoch it was taken in, so a child sees a lock held by a parent's thread as free. The value
/// it guarded may have been half-updated by that thread, so the child starts from
/// `T::default()` (leaking the old value rather than dropping it).
pub struct ForkSafeMutex<T> {
    /// `epoch << 1 | locked`.
    state: AtomicU64,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through a guard, which the lock makes exclusive.
unsafe impl<T: Send> Sync for ForkSafeMutex<T> {}
unsafe impl<T: Send> Send for ForkSafeMutex<T> {}

impl<T: Default> Default for ForkSafeMutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for ForkSafeMutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForkSafeMutex")
    }
}

impl<T: Default> ForkSafeMutex<T> {
    pub const fn new(value: T) -> Self {
        Self {
            state: AtomicU64::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, spinning (then yielding) while another thread holds it.
    pub fn lock(&self) -> ForkSafeGuard<'_, T> {
        register_atfork();
        let mut spins = 0u32;
        loop {
            let epoch = FORK_EPOCH.load(Ordering::SeqCst);
            let current = self.state.load(Ordering::Acquire);
            let held_here = current & 1 == 1 && current >> 1 == epoch;
            if !held_here
                && self
                    .state
                    .compare_exchange_weak(
                        current,
                        epoch << 1 | 1,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                if current >> 1 != epoch {
                    // First use since a fork: the value may be mid-update by a thread that is
                    // gone. Start afresh.
                    // SAFETY: the lock is held.
                    let old = std::mem::take(unsafe { &mut *self.value.get() });
                    std::mem::forget(old);
                }
                return ForkSafeGuard { mutex: self, epoch };
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

pub struct ForkSafeGuard<'a, T> {
    mutex: &'a ForkSafeMutex<T>,
    epoch: u64,
}

impl<T> Deref for ForkSafeGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T> DerefMut for ForkSafeGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T> Drop for ForkSafeGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.state.store(self.epoch << 1, Ordering::Release);
    }
}

/// The engine's pools by size.
static POOLS: ForkSafeMutex<Option<HashMap<usize, Arc<ThreadPool>>>> = ForkSafeMutex::new(None);

/// Sets the number of threads for later operations (0 = all cores).
pub fn set_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
}

/// The number of threads operations run on.
pub fn threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// The pool of the configured size for this process.
pub fn pool() -> Result<Arc<ThreadPool>> {
    let want = threads();
    // A child of fork starts with no pools: the lock hands it a fresh (empty) map, and the
    // parent's pools, whose threads do not exist here, are never touched.
    let mut pools = POOLS.lock();
    let pools = pools.get_or_insert_with(HashMap::new);
    if let Some(pool) = pools.get(&want) {
        return Ok(pool.clone());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(want)
        .thread_name(|i| format!("oxzarr-{i}"))
        .build()
        .map_err(|e| Error::Threads(e.to_string()))?;
    let pool = Arc::new(pool);
    pools.insert(want, pool.clone());
    Ok(pool)
}

/// Runs `f` on the engine's pool, recording which workers take part.
pub fn install<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let pool = pool()?;
    LAST_WORKERS.store(0, Ordering::Relaxed);
    pool.install(f)
}

/// Runs `f` on the engine's pool: in place when already on one of its workers (nested work,
/// such as the inner chunks of a shard), else by entering the pool. Never on rayon's global
/// pool, which does not survive `fork`.
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R> {
    if rayon::current_thread_index().is_some() {
        Ok(f())
    } else {
        Ok(pool()?.install(f))
    }
}

/// Notes that the current worker ran a piece of the current operation.
pub fn mark_worker() {
    if let Some(i) = rayon::current_thread_index() {
        LAST_WORKERS.fetch_or(1u64 << (i % 64), Ordering::Relaxed);
    }
}

/// How many distinct workers ran pieces of the most recent operation.
pub fn last_operation_workers() -> u32 {
    LAST_WORKERS.load(Ordering::Relaxed).count_ones()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn pools_follow_the_setting() {
        set_threads(2);
        assert_eq!(pool().unwrap().current_num_threads(), 2);
        let sum: u64 = install(|| Ok((0..1000u64).into_par_iter().sum())).unwrap();
        assert_eq!(sum, 499_500);
        set_threads(0);
        assert_eq!(
            threads(),
            std::thread::available_parallelism().unwrap().get()
        );
    }
}
