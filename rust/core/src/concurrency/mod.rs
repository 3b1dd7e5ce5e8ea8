//! The engine's thread pools, their size, and surviving `fork`.
//!
//! Work runs on a rayon pool owned by the engine (never rayon's global pool), sized by the
//! `threads` setting (0 = all cores). The work of a single chunk, called from outside the pool,
//! is split with a [`team`] instead ([`split`]). A process started by `fork` inherits the memory of its
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

use rayon::prelude::*;
use rayon::ThreadPool;

use crate::error::{Error, Result};

mod team;
use team::Team;

static THREADS: AtomicUsize = AtomicUsize::new(0);
/// The cores this process may use (0: not asked yet).
static CORES: AtomicUsize = AtomicUsize::new(0);
/// Bumped in every child process right after `fork`.
static FORK_EPOCH: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();
/// The workers that ran a piece of the most recent parallel operation, one bit each.
static LAST_WORKERS: AtomicU64 = AtomicU64::new(0);

extern "C" fn after_fork_in_child() {
    FORK_EPOCH.fetch_add(1, Ordering::SeqCst);
    // The child may run with another CPU affinity: ask again.
    CORES.store(0, Ordering::SeqCst);
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

/// Runs `f` with the thread setting at `n`, then puts it back to the default, for unit tests:
/// they take turns (one lock), so that none sees another's setting.
#[cfg(test)]
pub(crate) fn with_threads<T>(n: usize, f: impl FnOnce() -> T) -> T {
    static SETTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            set_threads(0);
        }
    }
    let _turn = SETTING.lock().unwrap_or_else(|p| p.into_inner());
    let _reset = Reset;
    set_threads(n);
    f()
}

/// Counts the `fork`s between this process and the first: what was looked up about threads
/// in another epoch (which thread is the main one) is to be looked up again.
pub fn fork_epoch() -> u64 {
    register_atfork();
    FORK_EPOCH.load(Ordering::SeqCst)
}

/// Sets the number of threads for later operations (0 = all cores).
pub fn set_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
}

/// The number of cores this process may use, asked once: the standard library reads the
/// cgroup's CPU quota files on every call, tens of microseconds that a one-chunk read would pay.
fn cores() -> usize {
    match CORES.load(Ordering::Relaxed) {
        0 => {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            register_atfork();
            CORES.store(n, Ordering::Relaxed);
            n
        }
        n => n,
    }
}

/// The number of threads operations run on.
pub fn threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => cores(),
        n => n,
    }
}

/// The pool of the configured size for this process (larger while an [`AtLeast`] is held).
pub fn pool() -> Result<Arc<ThreadPool>> {
    let want = threads().max(AT_LEAST.get());
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
        .start_handler(|_| ON_ENGINE_WORKER.set(true))
        .build()
        .map_err(|e| Error::Threads(e.to_string()))?;
    let pool = Arc::new(pool);
    if pools.len() >= KEPT_POOLS {
        // Pools of other sizes no operation is in: dropped, their threads ending, so that a
        // program trying many settings does not gather thousands of idle threads.
        pools.retain(|_, kept| Arc::strong_count(kept) > 1);
    }
    pools.insert(want, pool.clone());
    Ok(pool)
}

/// How many pools of different sizes are kept for later operations.
const KEPT_POOLS: usize = 4;

/// Runs `f` on the engine's pool, recording which workers take part. `f` checks the [`Stop`]
/// it is given between its pieces (chunks, shards): it is set when the calling thread is
/// [`interruptible`] and its check says so, while `f` runs.
pub fn install<T: Send>(f: impl FnOnce(&Stop) -> Result<T> + Send) -> Result<T> {
    let pool = pool()?;
    LAST_WORKERS.store(0, Ordering::Relaxed);
    let stop = Stop::default();
    // Work nested in the pool's own jobs is never watched: a worker waiting below would hold
    // up the jobs it waits for.
    let check = match on_engine_worker() {
        true => None,
        false => INTERRUPT_CHECK.get(),
    };
    let Some(check) = check else {
        return pool.install(|| f(&stop));
    };
    if INTERRUPTED.get() {
        // An earlier part of the same call was told to stop (the check does not say so twice).
        return Err(Error::Interrupted);
    }
    // The calling thread waits beside the pool instead of in it, asking the check between
    // waits; the work ends early, at its next piece, once the check says so.
    let (done, result) = std::sync::mpsc::sync_channel(1);
    let epoch = fork_epoch();
    let stop = &stop;
    let job: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(stop)));
        // Sending is the job's last use of what it borrows.
        let _ = done.send(outcome);
    });
    // SAFETY: the job borrows from this frame (`stop`, and whatever `f` borrows). This
    // function returns only once the job has sent its outcome or been dropped unrun (the
    // channel then disconnects), with one exception: in a child process forked meanwhile,
    // where the job can never run, the pool's threads not being copied by `fork`. (A scope
    // would wait for the job even there: a handler that forks, run by the check, left its
    // child waiting forever.)
    let job = unsafe {
        std::mem::transmute::<Box<dyn FnOnce() + Send + '_>, Box<dyn FnOnce() + Send + 'static>>(
            job,
        )
    };
    pool.spawn(job);
    loop {
        match result.recv_timeout(INTERRUPT_CHECK_EVERY) {
            Ok(Ok(result)) => return result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if !stop.is_set() && check() {
                    INTERRUPTED.set(true);
                    stop.set();
                }
                if fork_epoch() != epoch {
                    return Err(Error::Engine(
                        "the process forked during this operation (in a signal handler?): its \
                         work stayed with the parent"
                            .into(),
                    ));
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Engine(
                    "the engine's pool dropped a job unrun".into(),
                ))
            }
        }
    }
}

/// Tells an operation's pieces to end early: the work of [`install`] asks it before each.
#[derive(Debug, Default)]
pub struct Stop(std::sync::atomic::AtomicBool);

impl Stop {
    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// [`Error::Interrupted`] once the operation is told to stop.
    pub fn check(&self) -> Result<()> {
        match self.is_set() {
            true => Err(Error::Interrupted),
            false => Ok(()),
        }
    }
}

/// How often a thread waiting for the pool asks its [`interruptible`] check.
const INTERRUPT_CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// Runs `f` (on this thread) with the parallel operations it starts asking `check` every few
/// milliseconds while they run; once it answers true, they end early with
/// [`Error::Interrupted`], and so do those it starts after. For the binding, whose check looks
/// for Ctrl-C: the check runs on this thread only (and may start an `interruptible` call of
/// its own: a Python signal handler using oxzarr).
pub fn interruptible<R>(check: fn() -> bool, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<fn() -> bool>, bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            INTERRUPT_CHECK.set(self.0);
            INTERRUPTED.set(self.1);
        }
    }
    let _restore = Restore(
        INTERRUPT_CHECK.replace(Some(check)),
        INTERRUPTED.replace(false),
    );
    f()
}

/// Runs `work` for each of `items` on the engine's pool, stopping at the first error, or
/// before the next item once the operation is told to stop (see [`install`]).
pub fn try_for_each<I>(items: I, work: impl Fn(I::Item) -> Result<()> + Sync) -> Result<()>
where
    I: IntoParallelIterator + Send,
{
    install(|stop| {
        items.into_par_iter().try_for_each(|item| {
            stop.check()?;
            work(item)
        })
    })
}

/// The results of `work` for each of `items`, in order, run as by [`try_for_each`].
pub fn try_map<I, T>(items: I, work: impl Fn(I::Item) -> Result<T> + Sync) -> Result<Vec<T>>
where
    I: IntoParallelIterator + Send,
    T: Send,
{
    install(|stop| {
        items
            .into_par_iter()
            .map(|item| {
                stop.check()?;
                work(item)
            })
            .collect()
    })
}

/// While held, the pools entered from this thread are at least `n` threads strong: for
/// operations on a store whose requests wait on the network, where more requests in flight
/// than there are cores keep it busy (the threads mostly wait). Dropping it restores what was.
pub struct AtLeast {
    before: usize,
    /// Tied to the thread whose setting it changed.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl AtLeast {
    pub fn new(n: usize) -> Self {
        Self {
            // Nested, the larger floor holds.
            before: AT_LEAST.replace(n.max(AT_LEAST.get())),
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Drop for AtLeast {
    fn drop(&mut self) {
        AT_LEAST.set(self.before);
    }
}

thread_local! {
    /// The fewest threads a pool entered from this thread has (see [`AtLeast`]).
    static AT_LEAST: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Set on the threads of the engine's pools (not those of other rayon pools).
    static ON_ENGINE_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Set while [`sequentially`] runs on this thread.
    static SEQUENTIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The check of the [`interruptible`] call running on this thread.
    static INTERRUPT_CHECK: std::cell::Cell<Option<fn() -> bool>> =
        const { std::cell::Cell::new(None) };
    /// Whether that check has said stop.
    static INTERRUPTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every [`split`] it makes done in sequence on this thread. For work done while
/// holding a lock that other jobs of the pool may wait for: a worker waiting for the pieces
/// of a parallel split runs other queued jobs meanwhile, and one of those could wait for the
/// lock its own thread holds.
pub(crate) fn sequentially<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SEQUENTIAL.set(self.0);
        }
    }
    let _restore = Restore(SEQUENTIAL.replace(true));
    f()
}

/// Whether the current thread is a worker of one of the engine's pools.
pub fn on_engine_worker() -> bool {
    ON_ENGINE_WORKER.get()
}

/// Runs `f` on the engine's pool: in place when already on one of its workers (nested work,
/// such as the inner chunks of a shard), else by entering the pool. Never on rayon's global
/// pool, which does not survive `fork`.
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R> {
    if on_engine_worker() {
        Ok(f())
    } else {
        Ok(pool()?.install(f))
    }
}

/// The team for the configured thread count in this process: its helper count, and the team
/// (`None` if its threads could not be started; not retried for every chunk).
static TEAM: ForkSafeMutex<Option<(usize, Option<Arc<Team>>)>> = ForkSafeMutex::new(None);

/// A chunk's work splits into a few pieces (a 512 KiB chunk into 2 to 4), so more helpers than
/// this would only wait.
const MAX_HELPERS: usize = 3;

fn team() -> Option<Arc<Team>> {
    let helpers = threads().saturating_sub(1).min(MAX_HELPERS);
    // As with the pools, a child of fork finds no team and builds its own.
    let mut slot = TEAM.lock();
    if let Some((size, team)) = slot.as_ref() {
        if *size == helpers {
            return team.clone();
        }
    }
    // A team of another size is dropped (its helpers stop once its last caller is done).
    // Threads that cannot be started leave the work to the caller alone.
    let team = match helpers {
        0 => None,
        n => Team::new(n).ok().map(Arc::new),
    };
    *slot = Some((helpers, team.clone()));
    team
}

/// Runs `work(i)` for every piece `i` in `0..pieces` — the parts of one chunk's decode or
/// read — in parallel where that pays: on the engine's pool when called from one of its
/// workers (the chunk is one of many), else on the calling thread together with the team's
/// helpers. Stops at the first error and returns it.
pub fn split<E: Send>(
    pieces: usize,
    work: impl Fn(usize) -> std::result::Result<(), E> + Sync,
) -> std::result::Result<(), E> {
    if SEQUENTIAL.get() {
        return (0..pieces).try_for_each(work);
    }
    if pieces <= 1 || rayon::current_thread_index().is_some() {
        return match pieces {
            0 => Ok(()),
            1 => work(0),
            _ => (0..pieces).into_par_iter().try_for_each(&work),
        };
    }
    LAST_WORKERS.store(1, Ordering::Relaxed);
    let Some(team) = team() else {
        return (0..pieces).try_for_each(work);
    };
    let failed: std::sync::Mutex<Option<E>> = std::sync::Mutex::new(None);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let piece = |i: usize| {
        LAST_WORKERS.fetch_or(1 << team::member(), Ordering::Relaxed);
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = work(i) {
            stop.store(true, Ordering::Relaxed);
            let mut slot = failed.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert(e);
        }
    };
    if !team.run(pieces, &piece) {
        // Another thread has the team: this call works alone.
        (0..pieces).for_each(piece);
    }
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Notes that the current worker ran a piece of the current operation.
pub fn mark_worker() {
    if let Some(i) = rayon::current_thread_index() {
        LAST_WORKERS.fetch_or(1u64 << (i % 64), Ordering::Relaxed);
    }
}

/// How many distinct threads ran pieces of the most recent parallel operation: its chunks on
/// the pool ([`install`]), or one chunk's pieces on the caller and the team ([`split`]).
pub fn last_operation_workers() -> u32 {
    LAST_WORKERS.load(Ordering::Relaxed).count_ones()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_grow_for_stores_that_wait_on_the_network() {
        with_threads(2, || {
            assert_eq!(pool().unwrap().current_num_threads(), 2);
            {
                let _five = AtLeast::new(5);
                assert_eq!(pool().unwrap().current_num_threads(), 5);
                assert_eq!(threads(), 2, "the setting itself is unchanged");
            }
            assert_eq!(pool().unwrap().current_num_threads(), 2);
            let _one = AtLeast::new(1);
            assert_eq!(pool().unwrap().current_num_threads(), 2);
        });
    }

    #[test]
    fn pools_follow_the_setting() {
        with_threads(2, || {
            assert_eq!(pool().unwrap().current_num_threads(), 2);
            let sum: u64 = install(|_| Ok((0..1000u64).into_par_iter().sum())).unwrap();
            assert_eq!(sum, 499_500);
        });
        with_threads(0, || {
            assert_eq!(
                threads(),
                std::thread::available_parallelism().unwrap().get()
            );
        });
    }

    #[test]
    fn interrupted_operations_end_at_their_next_piece() {
        use std::cell::Cell;
        thread_local! {
            static ASKED: Cell<u32> = const { Cell::new(0) };
            static ANSWER: Cell<bool> = const { Cell::new(false) };
        }
        fn check() -> bool {
            ASKED.set(ASKED.get() + 1);
            ANSWER.get()
        }
        let run = |answer: bool| -> (Result<u64>, u64) {
            ANSWER.set(answer);
            let done = AtomicU64::new(0);
            let result = interruptible(check, || {
                try_for_each(0..2000u64, |_| {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    done.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })?;
                Ok(done.load(Ordering::SeqCst))
            });
            (result, done.load(Ordering::SeqCst))
        };
        with_threads(2, || {
            let (result, done) = run(true);
            assert!(matches!(result, Err(Error::Interrupted)), "{result:?}");
            assert!(done < 1000, "{done} pieces ran after the stop");
            assert_eq!(ASKED.get(), 1, "asked until it said stop");
            // Told once, every later operation of the same call stops too (before, each
            // started afresh, and the check, its signal taken, never said so again).
            let second = interruptible(check, || {
                let first = install(|_| {
                    std::thread::sleep(std::time::Duration::from_millis(120));
                    Ok(1)
                });
                (first, install(|_| Ok(2)))
            });
            assert!(
                matches!(second, (Ok(1), Err(Error::Interrupted))),
                "{second:?}"
            );
            // A panic of the work reaches the caller, as from the pool's own install.
            ANSWER.set(false);
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                interruptible(check, || {
                    install(|_| -> Result<()> { panic!("in the work") })
                })
            }));
            let message = panicked.unwrap_err();
            assert_eq!(message.downcast_ref::<&str>(), Some(&"in the work"));
            let (result, done) = run(false);
            assert_eq!(result.unwrap(), 2000, "never told to stop");
            assert_eq!(done, 2000);
            assert!(ASKED.get() > 2, "asked while waiting");
            // Outside `interruptible`, nothing is asked.
            let before = ASKED.get();
            install(|_| Ok(())).unwrap();
            assert_eq!(ASKED.get(), before);
        });
    }

    #[test]
    fn split_runs_every_piece_and_returns_the_first_error() {
        let done: Vec<std::sync::atomic::AtomicU32> = (0..40)
            .map(|_| std::sync::atomic::AtomicU32::new(0))
            .collect();
        split(40, |i| {
            done[i].fetch_add(1, Ordering::SeqCst);
            Ok::<(), String>(())
        })
        .unwrap();
        assert!(done.iter().all(|d| d.load(Ordering::SeqCst) == 1));
        let err = split(40, |i| {
            if i == 13 {
                Err(format!("piece {i}"))
            } else {
                Ok(())
            }
        });
        assert_eq!(err.unwrap_err(), "piece 13");
        // Nested in a parallel operation: on the pool.
        let sum = install(|_| {
            let total = AtomicU64::new(0);
            split(100, |i| {
                total.fetch_add(i as u64, Ordering::SeqCst);
                Ok::<(), Error>(())
            })?;
            Ok(total.load(Ordering::SeqCst))
        })
        .unwrap();
        assert_eq!(sum, 4950);
    }

    #[test]
    fn sequential_splits_stay_on_the_calling_thread() -> Result<()> {
        with_threads(2, || {
            let here = std::thread::current().id();
            let on = install(|_| {
                let caller = std::thread::current().id();
                let others = AtomicU64::new(0);
                sequentially(|| {
                    split(64, |_| {
                        if std::thread::current().id() != caller {
                            others.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok::<(), Error>(())
                    })
                })?;
                Ok(others.load(Ordering::SeqCst))
            });
            assert_eq!(on?, 0, "on a pool worker");
            sequentially(|| {
                split(64, |_| {
                    assert_eq!(std::thread::current().id(), here, "off the pool");
                    Ok::<(), Error>(())
                })
            })?;
            assert!(!SEQUENTIAL.get(), "the flag is put back");
            Ok(())
        })
    }
}
