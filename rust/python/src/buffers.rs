//! The caller's numpy buffers the engine reads values from and decodes chunks into.
//!
//! They are borrowed through rust-numpy's borrow checking, which keeps two calls from holding
//! the same memory as a mutable slice at once. Taken as arguments of its borrowed types, a
//! failed borrow (a read-only output; a view of memory another thread's call holds) panics
//! inside rust-numpy; taken here, it is a Python error (see `errors::borrow_error`).

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadwriteArray1};
use pyo3::prelude::*;

use crate::errors::borrow_error;

/// `out`, borrowed to be written.
pub(crate) fn writable<'py>(
    out: &Bound<'py, PyArray1<u8>>,
) -> PyResult<PyReadwriteArray1<'py, u8>> {
    out.try_readwrite().map_err(borrow_error)
}

/// `data`, borrowed to be read.
pub(crate) fn readable<'py>(
    data: &Bound<'py, PyArray1<u8>>,
) -> PyResult<PyReadonlyArray1<'py, u8>> {
    data.try_readonly().map_err(borrow_error)
}
