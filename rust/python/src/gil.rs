//! The one place the GIL is released: every call that touches a store or runs codecs goes
//! through [`without_gil`], so other Python threads run while the engine works.

use pyo3::prelude::*;

use crate::errors::to_py_err;

/// Runs `f` with the GIL released and turns its error into a Python exception. `f` must not
/// touch Python objects (the `Send` bound keeps them out).
pub fn without_gil<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> oxzarr_core::Result<T> + Send,
{
    py.detach(f).map_err(to_py_err)
}
