//! The new numpy arrays that reads fill: made here, in one place, so that every read's output
//! gets the engine's choice of memory pages (`oxzarr_core::pages`) before it is written.

use numpy::npyffi::{npy_intp, NpyTypes, PY_ARRAY_API};
use numpy::{PyArrayDescr, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use std::os::raw::c_int;

/// A new C-order array of `dtype` and shape `dims`, its bytes handed to `fill` (which may
/// release the GIL: nothing else can reach them before the array is returned).
pub(crate) fn new_output<'py>(
    py: Python<'py>,
    dtype: Bound<'py, PyArrayDescr>,
    dims: &mut [npy_intp],
    fill: impl FnOnce(&mut [u8]) -> PyResult<()>,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    let itemsize = dtype.itemsize();
    // SAFETY: NewFromDescr takes the reference `into_dtype_ptr` hands over; `dims` holds
    // `dims.len()` lengths, and null strides and data make numpy allocate a C-order array;
    // the result is checked for null (numpy raises MemoryError when it cannot).
    let out = unsafe {
        let ptr = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            PY_ARRAY_API.get_type_object(py, NpyTypes::PyArray_Type),
            dtype.into_dtype_ptr(),
            dims.len() as c_int,
            dims.as_mut_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
        );
        Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked::<PyUntypedArray>()
    };
    // SAFETY: the new array owns `len() * itemsize` bytes and nothing else can reach them yet.
    let data = unsafe {
        std::slice::from_raw_parts_mut(
            (*out.as_array_ptr()).data.cast::<u8>(),
            out.len() * itemsize,
        )
    };
    oxzarr_core::pages::prepare_output(data);
    fill(data)?;
    Ok(out)
}

/// `numpy.empty(shape, dtype)` for a read to fill (the Python layer's outputs).
#[pyfunction]
pub(crate) fn empty_output<'py>(
    py: Python<'py>,
    shape: Vec<usize>,
    dtype: Bound<'py, PyArrayDescr>,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    let mut dims = shape
        .into_iter()
        .map(npy_intp::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    new_output(py, dtype, &mut dims, |_| Ok(()))
}

/// Sets whether outputs may use huge pages: `None` (the default) avoids them where the host
/// takes free memory back, `True` leaves numpy's choice, `False` avoids them always.
#[pyfunction]
pub(crate) fn set_output_huge_pages(allowed: Option<bool>) {
    use oxzarr_core::pages::{set_policy, HugePages};
    set_policy(match allowed {
        None => HugePages::Auto,
        Some(true) => HugePages::Allowed,
        Some(false) => HugePages::Avoided,
    });
}

/// Whether this machine's balloon device reports free memory to the host.
#[pyfunction]
pub(crate) fn host_reclaims_free_memory() -> bool {
    oxzarr_core::pages::host_reclaims_free_memory()
}
