//! The one place the GIL is released: every call that touches a store or runs codecs goes
//! through [`without_gil`], so other Python threads run while the engine works.
//!
//! Released, the GIL also keeps Python from running its signal handlers, so Ctrl-C would wait
//! for the end of a read of many chunks. On the main thread (the only one Python delivers
//! signals to), the engine's parallel operations therefore ask Python every few milliseconds
//! whether a signal came: a handler that raises (KeyboardInterrupt) stops the operation at its
//! next chunk, and its exception is what the call raises. Chunks written before the stop stay
//! written, each whole.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

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
        return py.detach(f).map_err(to_py_err);
    }
    // The exception a signal handler raised, kept until the engine has stopped.
    let raised: Rc<RefCell<Option<PyErr>>> = Rc::default();
    let check = {
        let raised = raised.clone();
        Rc::new(move || {
            Python::attach(|py| match py.check_signals() {
                Ok(()) => false,
                Err(err) => {
                    raised.borrow_mut().get_or_insert(err);
                    true
                }
            })
        })
    };
    let result = concurrency::interruptible(check, || py.detach(f));
    // Raised even when the operation finished first: the handler has run, and its exception
    // is the user's to see.
    if let Some(err) = raised.borrow_mut().take() {
        return Err(err);
    }
    result.map_err(to_py_err)
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
