//! `oxzarr._core`: the Python binding of the oxzarr engine.
//!
//! A thin adapter: it converts arguments (numpy buffers, selections, JSON documents), releases
//! the GIL around every heavy call in one place ([`gil::without_gil`]) and maps engine errors
//! to Python exceptions in one place ([`errors`]). All Zarr logic lives in `oxzarr-core`.

// The engine allocates and frees buffers of megabytes per chunk (stored bytes, decoded
// chunks, assembled shards). mimalloc reuses them within the process, where the system
// allocator maps and unmaps each one, paying a page fault per 4 KiB every time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod array;
mod buffers;
mod chunk_codec;
mod convert;
mod errors;
mod gil;
mod group;
mod output;
mod store;

use pyo3::prelude::*;

/// Sets the number of threads chunk work runs on (0 = all cores).
#[pyfunction]
fn set_threads(n: usize) {
    oxzarr_core::concurrency::set_threads(n);
}

/// The number of threads chunk work runs on.
#[pyfunction]
fn threads() -> usize {
    oxzarr_core::concurrency::threads()
}

/// Sets whether checksums (crc32c) are verified on read.
#[pyfunction]
fn set_validate_checksums(on: bool) {
    oxzarr_core::config::set_validate_checksums(on);
}

/// Sets the decoded-chunk cache budget in bytes (0 turns the cache off).
#[pyfunction]
fn set_chunk_cache_bytes(n: usize) {
    oxzarr_core::array::chunk_cache::set_budget(n);
}

/// How many distinct threads ran pieces of the most recent parallel read or write: its chunks
/// on the pool, or one chunk's pieces on the calling thread and the team.
#[pyfunction]
fn last_operation_workers() -> u32 {
    oxzarr_core::concurrency::last_operation_workers()
}

/// The array or group at `path`; a group through its own consolidated metadata, if it has
/// some, when `group_consolidated`.
#[pyfunction]
#[pyo3(signature = (store, path, zarr_format = None, group_consolidated = false))]
fn open_node(
    py: Python<'_>,
    store: &store::Store,
    path: &str,
    zarr_format: Option<u8>,
    group_consolidated: bool,
) -> PyResult<Py<PyAny>> {
    let node = gil::without_gil(py, || {
        if group_consolidated {
            oxzarr_core::node::open_node_maybe_consolidated(store.inner(), path, zarr_format)
        } else {
            oxzarr_core::node::open_node_as(store.inner(), path, zarr_format)
        }
    })?;
    node_to_py(py, node)
}

/// Refuses a path whose names no new node may take (ValueError), for the nodes of a
/// hierarchy written from zarr-python's metadata objects, which the engine does not create.
#[pyfunction]
fn check_new_node_path(path: &str, zarr_format: u8) -> PyResult<()> {
    oxzarr_core::node::check_new_path(path, zarr_format).map_err(errors::to_py_err)
}

/// The numpy dtype (as `Array.numpy_dtype` describes it) of a v3 `data_type` given as JSON,
/// so that `create_array` takes the format's own names and objects for a dtype, as
/// zarr-python does, with the engine's reading of them.
#[pyfunction]
fn numpy_dtype_of_data_type(data_type_json: &str) -> PyResult<String> {
    let value: serde_json::Value = serde_json::from_str(data_type_json)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("data type: {e}")))?;
    let data_type = oxzarr_core::metadata::DataType::from_metadata(&value)
        .map_err(|e| errors::to_py_err(e.into()))?;
    Ok(data_type.numpy_dtype().to_string())
}

/// A node as the Python object for it.
pub(crate) fn node_to_py(py: Python<'_>, node: oxzarr_core::node::Node) -> PyResult<Py<PyAny>> {
    Ok(match node {
        oxzarr_core::node::Node::Array(a) => Py::new(py, array::Array::from(*a))?.into_any(),
        oxzarr_core::node::Node::Group(g) => Py::new(py, group::Group::from(g))?.into_any(),
    })
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // NumPy's C API is fetched on its first use, which runs Python code (numpy's version
    // check); an exception there (a Ctrl-C landing in it) makes rust-numpy panic. Fetched
    // here, at import, before any command installs its handlers.
    numpy::PyArray1::<u8>::zeros(m.py(), 0, false);
    m.add_class::<store::Store>()?;
    m.add_class::<array::Array>()?;
    m.add_class::<group::Group>()?;
    m.add_class::<chunk_codec::ChunkCodec>()?;
    m.add_class::<convert::ConvertJob>()?;
    m.add_function(wrap_pyfunction!(set_threads, m)?)?;
    m.add_function(wrap_pyfunction!(threads, m)?)?;
    m.add_function(wrap_pyfunction!(set_validate_checksums, m)?)?;
    m.add_function(wrap_pyfunction!(last_operation_workers, m)?)?;
    m.add_function(wrap_pyfunction!(set_chunk_cache_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(open_node, m)?)?;
    m.add_function(wrap_pyfunction!(check_new_node_path, m)?)?;
    m.add_function(wrap_pyfunction!(numpy_dtype_of_data_type, m)?)?;
    m.add_function(wrap_pyfunction!(output::empty_output, m)?)?;
    m.add_function(wrap_pyfunction!(output::output_allocator, m)?)?;
    m.add_function(wrap_pyfunction!(output::set_output_huge_pages, m)?)?;
    m.add_function(wrap_pyfunction!(output::host_reclaims_free_memory, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    gil::register_exit_callback(m)?;
    Ok(())
}
