//! The engine's thread pools: their size, and their survival across `fork`.
//!
//! Work runs on a rayon pool owned by the engine (never rayon's global pool), sized by the
//! `threads` setting (0 = all cores). A process started by `fork` inherits the memory of its
//! parent's pools but none of their threads, so a pool used there would wait forever. Every
//! pool is therefore tagged with the id of the process that built it, and a child builds fresh
//! pools of the configured size on first use. The lock guarding the pools is a spin lock that
//! a `pthread_atfork` child handler releases, so a fork that happens while another thread holds
//! it cannot leave the child locked out.

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Once};

use rayon::ThreadPool;

use crate::error::{Error, Result};

/// The id of the process that built the pools, and its pools by size.
type PoolState = Option<(u32, HashMap<usize, Arc<ThreadPool>>)>;

struct Pools(UnsafeCell<PoolState>);

// SAFETY: the cell is only accessed while LOCK is held.
unsafe impl Sync for Pools {}

static THREADS: AtomicUsize = AtomicUsize::new(0);
static LOCK: AtomicBool = AtomicBool::new(false);
static POOLS: Pools = Pools(UnsafeCell::new(None));
static ATFORK: Once = Once::new();
/// The workers that ran a piece of the most recent parallel operation, one bit each.
static LAST_WORKERS: AtomicU64 = AtomicU64::new(0);

extern "C" fn release_lock_in_child() {
    LOCK.store(false, Ordering::SeqCst);
}

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

struct Guard;

impl Guard {
    fn lock() -> Self {
        while LOCK
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        Guard
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        LOCK.store(false, Ordering::Release);
    }
}

/// The pool of the configured size for this process.
pub fn pool() -> Result<Arc<ThreadPool>> {
    ATFORK.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic.
        unsafe {
            libc::pthread_atfork(None, None, Some(release_lock_in_child));
        }
    });
    let want = threads();
    let pid = std::process::id();
    let _guard = Guard::lock();
    // SAFETY: LOCK is held, so this is the only reference to the cell's contents.
    let state = unsafe { &mut *POOLS.0.get() };
    if state.as_ref().is_some_and(|(owner, _)| *owner != pid) {
        // Built by the parent: its threads do not exist here, and dropping the pools would
        // try to talk to them. Leave them be.
        if let Some(inherited) = state.take() {
            std::mem::forget(inherited);
        }
    }
    let (_, pools) = state.get_or_insert_with(|| (pid, HashMap::new()));
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
