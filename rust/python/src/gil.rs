//! The one place the GIL is released: every call that touches a store or runs codecs goes
//! through [`without_gil`], so other Python threads run while the engine works.
//!
//! Released, the GIL also keeps Python from running its signal handlers, so Ctrl-C would wait
//! for the end of a read of many chunks. On the main thread (the only one Python delivers
//! signals to), the engine's parallel operations therefore ask Python every few milliseconds
//! whether a signal came: a handler that raises (KeyboardInterrupt) stops the operation at its
//! next chunk, and its exception is what the call raises. Chunks written before the stop stay
//! written, each whole.
//!
//! Taking the GIL back is also where the end of the interpreter reaches a thread: see
//! [`EXITING`] for daemon threads still in the engine then.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use oxzarr_core::concurrency;
use pyo3::prelude::*;

use crate::errors::to_py_err;

/// Runs `f` with the GIL released and turns its error into a Python exception. `f` must not
/// touch Python objects (the `Send` bound keeps them out).
pub fn without_gil<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> oxzarr_core::Result<T> + Send,
{
    if !on_main_thread(py) {
        let daemon = is_daemon(py);
        let result = py.detach(move || {
            let result = f();
            // Counted before the look at EXITING, which the exit callback sets before it
            // counts: either this thread sees it, or the callback waits for this thread.
            REACQUIRING.fetch_add(1, Ordering::SeqCst);
            if daemon && EXITING.load(Ordering::SeqCst) {
                REACQUIRING.fetch_sub(1, Ordering::SeqCst);
                // Never takes the GIL back: waits here until the process is gone (as daemon
                // threads do from Python 3.14).
                loop {
                    std::thread::park();
                }
            }
            result
        });
        REACQUIRING.fetch_sub(1, Ordering::SeqCst);
        return result.map_err(to_py_err);
    }
    // A call of its own (from a signal handler run by the check) keeps this one's exception.
    let outer = RAISED.take();
    let result = concurrency::interruptible(signal_raised, || py.detach(f));
    // Raised even when the operation finished first: the handler has run, and its exception
    // is the user's to see.
    if let Some(err) = RAISED.replace(outer) {
        return Err(err);
    }
    result.map_err(to_py_err)
}

thread_local! {
    /// The exception a signal handler raised during this thread's engine call, kept until
    /// the engine has stopped.
    static RAISED: RefCell<Option<PyErr>> = const { RefCell::new(None) };
}

/// The check of engine calls on the main thread: runs Python's handlers of the signals that
/// came; true (stop) if one raised.
fn signal_raised() -> bool {
    Python::attach(|py| match py.check_signals() {
        Ok(()) => false,
        Err(err) => {
            RAISED.with_borrow_mut(|raised| {
                raised.get_or_insert(err);
            });
            true
        }
    })
}

/// Set by an `atexit` callback: the interpreter is about to finalize, after which a thread
/// taking the GIL is ended by `pthread_exit`, whose unwinding through the binding's frames
/// aborts the process ("FATAL: exception not rethrown"). Non-daemon threads are joined
/// before `atexit` callbacks run; daemon threads may still be in the engine.
static EXITING: AtomicBool = AtomicBool::new(false);
/// Threads other than the main one between the end of their engine work and taking the GIL
/// back (possibly waiting for it).
static REACQUIRING: AtomicUsize = AtomicUsize::new(0);

/// Tells engine calls that the interpreter is exiting, then lets the threads already on
/// their way back to the GIL take it while that is safe; they stay out of the engine's
/// frames from then on (a daemon thread ending an engine call later waits for the end of the
/// process instead).
#[pyfunction]
fn interpreter_exiting(py: Python<'_>) {
    EXITING.store(true, Ordering::SeqCst);
    // Bounded: a thread holding on to the GIL must not keep the process from exiting.
    let deadline = Instant::now() + Duration::from_secs(2);
    while REACQUIRING.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        py.detach(|| std::thread::sleep(Duration::from_millis(1)));
    }
}

/// Registers the callback that tells the engine's callers the interpreter is exiting. Taken
/// at import, it runs after the callbacks registered later (callbacks run last first), such as
/// a program's own that still use oxzarr on daemon threads.
pub fn register_exit_callback(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let callback = wrap_pyfunction!(interpreter_exiting, m)?;
    m.py()
        .import("atexit")?
        .call_method1("register", (callback,))?;
    Ok(())
}

thread_local! {
    /// Whether this thread is a daemon thread, asked once per thread (it cannot change).
    static DAEMON: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

fn is_daemon(py: Python<'_>) -> bool {
    if let Some(daemon) = DAEMON.get() {
        return daemon;
    }
    let daemon = py
        .import("threading")
        .and_then(|threading| threading.call_method0("current_thread"))
        .and_then(|thread| thread.getattr("daemon"))
        .and_then(|daemon| daemon.extract::<bool>())
        // Unknown (no threading module any more): treated as one that may be joined.
        .unwrap_or(false);
    DAEMON.set(Some(daemon));
    daemon
}

/// The thread Python runs signal handlers on, and the fork epoch it was looked up in (a
/// child of `fork` runs them on the thread that forked). `u64::MAX`: not looked up yet.
static MAIN_THREAD: AtomicU64 = AtomicU64::new(0);
static MAIN_THREAD_EPOCH: AtomicU64 = AtomicU64::new(u64::MAX);

fn on_main_thread(py: Python<'_>) -> bool {
    let epoch = concurrency::fork_epoch();
    if MAIN_THREAD_EPOCH.load(Ordering::Acquire) != epoch {
        let ident = py
            .import("threading")
            .and_then(|threading| threading.call_method0("main_thread"))
            .and_then(|main| main.getattr("ident"))
            .and_then(|ident| ident.extract::<u64>());
        match ident {
            Ok(ident) => {
                MAIN_THREAD.store(ident, Ordering::Release);
                MAIN_THREAD_EPOCH.store(epoch, Ordering::Release);
            }
            // Without the threading module (interpreter shutdown): no watching.
            Err(_) => return false,
        }
    }
    // SAFETY: takes no arguments and only reads the calling thread's id.
    let me = unsafe { PyThread_get_thread_ident() } as u64;
    me == MAIN_THREAD.load(Ordering::Acquire)
}

extern "C" {
    /// The id `threading` gives the calling thread (in the stable ABI; pyo3 does not bind it).
    fn PyThread_get_thread_ident() -> std::ffi::c_ulong;
}
