//! `Array`: an open array, read and written through numpy buffers.
//!
//! Buffers arrive as flat `uint8` views of C-contiguous numpy arrays (the Python layer makes
//! them), so each read or write is one call: the engine plans, fetches, decodes and copies
//! every chunk in parallel with the GIL released, straight into or out of the numpy memory.
//! The common read of ints and slices (`read_simple`) makes its numpy output here instead.

use numpy::npyffi::npy_intp;
use numpy::{PyArray1, PyArrayDescr, PyArrayDescrMethods, PyReadonlyArray1, PyUntypedArray};
use oxzarr_core::array::{DimSelection, Selection};
use oxzarr_core::codec::array_to_bytes::vlen::VlenChunk;
use oxzarr_core::metadata::{json, DataType};
use oxzarr_core::metadata::{ArrayMetadata, ArrayMetadataV2, ArrayMetadataV3};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyInt, PyList, PySlice, PySliceMethods, PyString, PyTuple, PyType};

use crate::buffers;
use crate::gil::without_gil;
use crate::output::new_output;
use crate::store::Store;

#[pyclass(frozen, module = "oxzarr._core")]
pub struct Array {
    inner: oxzarr_core::Array,
}

impl Array {
    pub(crate) fn inner(&self) -> &oxzarr_core::Array {
        &self.inner
    }
}

impl From<oxzarr_core::Array> for Array {
    fn from(inner: oxzarr_core::Array) -> Self {
        Self { inner }
    }
}

/// A selection from Python: per dimension, `(start, step, length)` or a 1-D uint64 array of
/// indices.
fn parse_selection(selection: &[Bound<'_, PyAny>]) -> PyResult<Selection> {
    selection
        .iter()
        .map(|dim| {
            if let Ok(t) = dim.cast::<PyTuple>() {
                let (start, step, len): (u64, i64, u64) = t.extract()?;
                Ok(DimSelection::Slice { start, step, len })
            } else {
                let indices: PyReadonlyArray1<'_, u64> = dim.extract()?;
                Ok(DimSelection::Indices(indices.as_array().to_vec()))
            }
        })
        .collect::<PyResult<Vec<_>>>()
        .map(Selection)
}

/// A metadata document from Python: v3 `zarr.json`, or v2 `.zarray` plus `attributes`.
/// Variable-length elements as a Python list: `str` for text (checked to be UTF-8, naming
/// `label` and the element otherwise), `bytes` otherwise.
pub(crate) fn vlen_to_list<'py>(
    py: Python<'py>,
    chunk: &VlenChunk,
    text: bool,
    label: &str,
) -> PyResult<Bound<'py, PyList>> {
    let mut items: Vec<Bound<'py, PyAny>> = Vec::with_capacity(chunk.len());
    for (i, element) in chunk.iter().enumerate() {
        if text {
            let s = std::str::from_utf8(element).map_err(|e| {
                crate::errors::to_py_err(oxzarr_core::Error::CorruptChunk {
                    key: format!("{label}, element {i}"),
                    source: oxzarr_core::error::CodecError::corrupt("vlen-utf8", e),
                })
            })?;
            items.push(PyString::new(py, s).into_any());
        } else {
            items.push(PyBytes::new(py, element).into_any());
        }
    }
    PyList::new(py, items)
}

/// Python `str` or `bytes` values as variable-length elements.
pub(crate) fn vlen_from_values(values: &[Bound<'_, PyAny>]) -> PyResult<VlenChunk> {
    let mut chunk = VlenChunk::default();
    for value in values {
        if let Ok(s) = value.cast::<PyString>() {
            chunk.push(s.to_str()?.as_bytes());
        } else if let Ok(b) = value.cast::<PyBytes>() {
            chunk.push(b.as_bytes());
        } else {
            return Err(PyValueError::new_err(format!(
                "expected str or bytes, not {}",
                value.get_type().name()?
            )));
        }
    }
    Ok(chunk)
}

pub(crate) fn parse_metadata(json: &str) -> PyResult<ArrayMetadata> {
    let to_py = |e: oxzarr_core::error::MetadataError| crate::errors::to_py_err(e.into());
    let mut doc = json::parse(json.as_bytes())
        .map_err(|e| PyValueError::new_err(format!("metadata is not JSON: {e}")))?;
    if doc
        .get("zarr_format")
        .is_some_and(|v| oxzarr_core::metadata::is_zarr_format(v, 2))
    {
        let attributes = doc
            .as_object_mut()
            .and_then(|o| o.remove("attributes"))
            .unwrap_or(serde_json::Value::Object(Default::default()));
        let zarray = json::to_string(&doc).into_bytes();
        let zattrs = json::to_string(&attributes).into_bytes();
        let meta = ArrayMetadataV2::parse(&zarray, Some(&zattrs), ".zarray").map_err(to_py)?;
        return Ok(ArrayMetadata::V2(Box::new(meta)));
    }
    let meta = ArrayMetadataV3::parse(json.as_bytes(), "zarr.json").map_err(to_py)?;
    Ok(ArrayMetadata::V3(Box::new(meta)))
}

/// numpy's integer scalar type (`numpy.integer`), looked up once: indices taken from numpy
/// arrays are those, and a loop of point reads with them should not take the general indexer.
fn numpy_integer(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static INTEGER: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    INTEGER.import(py, "numpy", "integer")
}

#[pymethods]
impl Array {
    #[staticmethod]
    #[pyo3(signature = (store, path, zarr_format = None))]
    fn open(py: Python<'_>, store: &Store, path: &str, zarr_format: Option<u8>) -> PyResult<Self> {
        let store = store.inner().clone();
        without_gil(py, || oxzarr_core::Array::open_as(store, path, zarr_format)).map(Self::from)
    }

    /// Creates an array from a complete metadata document: `zarr.json` for Zarr v3, or
    /// `.zarray` with an `attributes` member for v2.
    #[staticmethod]
    fn create(
        py: Python<'_>,
        store: &Store,
        path: &str,
        metadata_json: &str,
        overwrite: bool,
    ) -> PyResult<Self> {
        let metadata = parse_metadata(metadata_json)?;
        let store = store.inner().clone();
        without_gil(py, || {
            oxzarr_core::Array::create(store, path, metadata, overwrite)
        })
        .map(Self::from)
    }

    /// The array at `path` described by `metadata_json` (as `metadata_json()` gives it),
    /// without reading the store: a pickled array is the array as it was when pickled, as
    /// zarr-python's is, not as another writer has since left it.
    #[staticmethod]
    fn from_metadata(store: &Store, path: &str, metadata_json: &str) -> PyResult<Self> {
        let metadata = parse_metadata(metadata_json)?;
        oxzarr_core::Array::from_metadata(store.inner().clone(), path, metadata)
            .map(Self::from)
            .map_err(crate::errors::to_py_err)
    }

    #[getter]
    fn path(&self) -> &str {
        self.inner.path()
    }

    #[getter]
    fn shape(&self) -> Vec<u64> {
        self.inner.shape().to_vec()
    }

    #[getter]
    fn chunk_shape(&self) -> Vec<u64> {
        self.inner.chunk_shape().to_vec()
    }

    /// The shape of the chunks encoded on their own (inner chunks, for sharded arrays).
    #[getter]
    fn inner_chunk_shape(&self) -> Vec<u64> {
        self.inner.inner_chunk_shape().to_vec()
    }

    /// The shape of a shard, or None.
    #[getter]
    fn shard_shape(&self) -> Option<Vec<u64>> {
        self.inner.shard_shape().map(<[u64]>::to_vec)
    }

    /// The numpy dtype of the decoded elements, as JSON (a dtype string, or the dict form of a
    /// record dtype).
    #[getter]
    fn numpy_dtype(&self) -> String {
        self.inner.data_type().numpy_dtype().to_string()
    }

    /// One element of the fill value, in the byte order the elements are read in (the
    /// machine's, or the stored one for the view `in_stored_byte_order` gives).
    #[getter]
    fn fill_value_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.fill_value())
    }

    #[getter]
    fn zarr_format(&self) -> u8 {
        self.inner.zarr_format()
    }

    #[getter]
    fn nchunks(&self) -> u64 {
        self.inner.nchunks()
    }

    /// The codec chain as v3 codec metadata (for a v2 array: its filters, serializer and
    /// compressor under their v3 names).
    fn codecs_json(&self) -> String {
        json::to_string(&serde_json::Value::Array(
            self.inner.codec_chain().metadata(),
        ))
    }

    /// The document, with the attributes as they are now (see `consolidated_generation`).
    fn metadata_json(&self) -> String {
        json::to_string(&self.inner.current_metadata().to_value())
    }

    /// How many attribute writes through the nodes opened from the consolidated metadata
    /// the array was opened through have been recorded (None: opened without): the
    /// document read at one generation is current while it is the same.
    #[getter]
    fn consolidated_generation(&self) -> Option<u64> {
        self.inner.consolidated_generation()
    }

    /// Writes new attributes; returns the updated array, or None if they were made from
    /// those of generation `seen_generation` and another write has come since.
    #[pyo3(signature = (attributes_json, seen_generation = None))]
    fn with_attributes(
        &self,
        py: Python<'_>,
        attributes_json: &str,
        seen_generation: Option<u64>,
    ) -> PyResult<Option<Self>> {
        let attributes = crate::group::parse_attributes(attributes_json)?;
        let written = without_gil(py, || {
            self.inner.with_attributes(attributes, seen_generation)
        })?;
        Ok(written.map(Self::from))
    }

    /// Reads `selection` into `out`, a flat uint8 view of a C-contiguous array of the
    /// selection's shape and the array's dtype, in the byte order its elements are read in
    /// (the machine's, or the stored one for the view `in_stored_byte_order` gives).
    /// With `fortran`, `out` is the selection's bytes in F order instead, for an array that
    /// stores F order (`stores_fortran_order`).
    #[pyo3(signature = (selection, out, fortran = false))]
    fn read(
        &self,
        py: Python<'_>,
        selection: Vec<Bound<'_, PyAny>>,
        out: &Bound<'_, PyArray1<u8>>,
        fortran: bool,
    ) -> PyResult<()> {
        let selection = parse_selection(&selection)?;
        let mut out = buffers::writable(out)?;
        let out = out
            .as_slice_mut()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        without_gil(py, || match fortran {
            true => self.inner.read_into_fortran(&selection, out),
            false => self.inner.read_into(&selection, out),
        })
    }

    /// Whether the chunks are stored in F order (a v2 array of order "F" and two dimensions
    /// or more): F-order buffers are then read and written without transposing a chunk.
    #[getter]
    fn stores_fortran_order(&self) -> bool {
        self.inner.stores_fortran_order()
    }

    /// The same array with its elements in the byte order they are stored in, for a v2
    /// array of a dtype in the other byte order than the machine's whose elements only the
    /// serializer swaps (">i4" on a little-endian machine, no value filter); else None. Its
    /// reads and writes take buffers of the stored dtype (">i4") and swap nothing; its
    /// metadata is the array's.
    #[getter]
    fn in_stored_byte_order(&self) -> Option<Self> {
        self.inner
            .in_stored_byte_order()
            .map(|view| Self::from(oxzarr_core::Array::clone(view)))
    }

    /// Reads the common selection: `key` is one Python `int`, numpy integer or `slice` (any
    /// step), or a tuple of up to one per dimension (negative ints count from the end;
    /// dimensions left out are taken whole), into a new C-order array of `dtype` (the array's,
    /// in the byte order its elements are read in) and numpy's result shape: a dimension for
    /// each slice, none for each int.
    /// `None` for any other key, or an int outside the shape: the general indexer then takes
    /// it, and raises what it raises. A loop of small reads (a chunk or an element at a time)
    /// pays for this on every call, so it skips the Python-side indexer and output view.
    fn read_simple<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        dtype: Bound<'py, PyArrayDescr>,
    ) -> PyResult<Option<Bound<'py, PyUntypedArray>>> {
        let shape = self.inner.shape();
        let size = self.inner.data_type().size();
        if shape.is_empty() || self.inner.data_type().is_variable() {
            return Ok(None);
        }
        if dtype.itemsize() != size {
            return Err(PyValueError::new_err(format!(
                "a dtype of {} bytes for elements of {size}",
                dtype.itemsize()
            )));
        }
        let one;
        let items = match key.cast::<PyTuple>() {
            Ok(tuple) => tuple,
            Err(_) => {
                one = PyTuple::new(py, [key])?;
                &one
            }
        };
        if items.len() > shape.len() {
            return Ok(None);
        }
        let mut selection = Vec::with_capacity(shape.len());
        let mut dims: Vec<npy_intp> = Vec::with_capacity(shape.len());
        for (d, &n) in shape.iter().enumerate() {
            if d >= items.len() {
                selection.push(DimSelection::Slice {
                    start: 0,
                    step: 1,
                    len: n,
                });
                // Past numpy's sizes: the indexer's path says so, naming the shape.
                let Ok(len) = npy_intp::try_from(n) else {
                    return Ok(None);
                };
                dims.push(len);
                continue;
            }
            let item = items.get_item(d)?;
            // Exactly `int`, a numpy integer or a `slice`: bools, arrays and the rest go
            // through the indexer. (Slices skip the isinstance check of numpy integers.)
            let integer = item.is_exact_instance_of::<PyInt>()
                || (!item.is_exact_instance_of::<PySlice>()
                    && item.is_instance(numpy_integer(py)?)?);
            if integer {
                let Ok(i) = item.extract::<i64>() else {
                    return Ok(None);
                };
                let start = match i < 0 {
                    true => n.checked_sub(i.unsigned_abs()),
                    false => Some(i.unsigned_abs()),
                };
                match start {
                    Some(start) if start < n => selection.push(DimSelection::Slice {
                        start,
                        step: 1,
                        len: 1,
                    }),
                    _ => return Ok(None),
                }
            } else if let Ok(slice) = item.cast_exact::<PySlice>() {
                let Ok(n_signed) = isize::try_from(n) else {
                    return Ok(None);
                };
                let Ok(range) = slice.indices(n_signed) else {
                    return Ok(None);
                };
                let len = range.slicelength as u64;
                // A run of at most one element takes any step as 1, as the indexer does.
                let (start, step) = match len {
                    0 => (0, 1),
                    1 => (range.start as u64, 1),
                    _ => (range.start as u64, range.step as i64),
                };
                selection.push(DimSelection::Slice { start, step, len });
                dims.push(range.slicelength as npy_intp);
            } else {
                return Ok(None);
            }
        }
        // An array stored in F order reads into an F-order output, chunks as they are stored.
        let fortran = self.inner.stores_fortran_order();
        let out = new_output(py, dtype, &mut dims, fortran, |data| {
            let selection = Selection(selection);
            without_gil(py, || match fortran {
                true => self.inner.read_into_fortran(&selection, data),
                false => self.inner.read_into(&selection, data),
            })
        })?;
        Ok(Some(out))
    }

    /// Reads points (`coords[d]` holds every point's coordinate along dimension `d`) into
    /// `out`, a flat uint8 view of as many elements.
    fn read_points(
        &self,
        py: Python<'_>,
        coords: Vec<PyReadonlyArray1<'_, u64>>,
        out: &Bound<'_, PyArray1<u8>>,
    ) -> PyResult<()> {
        let coords: Vec<Vec<u64>> = coords.iter().map(|c| c.as_array().to_vec()).collect();
        let mut out = buffers::writable(out)?;
        let out = out
            .as_slice_mut()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        without_gil(py, || self.inner.read_points(&coords, out))
    }

    /// The variable-length elements at the points, in point order (str or bytes).
    fn read_points_vlen<'py>(
        &self,
        py: Python<'py>,
        coords: Vec<PyReadonlyArray1<'_, u64>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let coords: Vec<Vec<u64>> = coords.iter().map(|c| c.as_array().to_vec()).collect();
        let chunk = without_gil(py, || self.inner.read_points_vlen(&coords))?;
        let text = matches!(self.inner.data_type(), DataType::String);
        let label = format!("{} (the points)", self.inner.path());
        vlen_to_list(py, &chunk, text, &label)
    }

    /// Writes one element per point from `data` (a flat uint8 view).
    fn write_points(
        &self,
        py: Python<'_>,
        coords: Vec<PyReadonlyArray1<'_, u64>>,
        data: &Bound<'_, PyArray1<u8>>,
        write_empty_chunks: bool,
    ) -> PyResult<()> {
        let coords: Vec<Vec<u64>> = coords.iter().map(|c| c.as_array().to_vec()).collect();
        let data = buffers::readable(data)?;
        let data = data
            .as_slice()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        without_gil(py, || {
            self.inner.write_points(&coords, data, write_empty_chunks)
        })
    }

    /// Writes one variable-length value (str or bytes) per point from `values`.
    fn write_points_vlen(
        &self,
        py: Python<'_>,
        coords: Vec<PyReadonlyArray1<'_, u64>>,
        values: Vec<Bound<'_, PyAny>>,
        write_empty_chunks: bool,
    ) -> PyResult<()> {
        let coords: Vec<Vec<u64>> = coords.iter().map(|c| c.as_array().to_vec()).collect();
        let values = vlen_from_values(&values)?;
        without_gil(py, || {
            self.inner
                .write_points_vlen(&coords, &values, write_empty_chunks)
        })
    }

    /// Resizes the array (deleting chunks wholly outside the new shape); returns it resized.
    fn resize(&self, py: Python<'_>, shape: Vec<u64>) -> PyResult<Self> {
        without_gil(py, || self.inner.resize(&shape)).map(Self::from)
    }

    /// How many chunks are stored (inner chunks, if sharded).
    fn nchunks_initialized(&self, py: Python<'_>) -> PyResult<u64> {
        without_gil(py, || self.inner.nchunks_initialized())
    }

    /// The grid coordinates of the stored chunks (shards, if sharded).
    fn stored_chunks(&self, py: Python<'_>) -> PyResult<Vec<Vec<u64>>> {
        without_gil(py, || self.inner.stored_chunks())
    }

    /// Bytes stored for the array: chunks and metadata.
    fn nbytes_stored(&self, py: Python<'_>) -> PyResult<u64> {
        without_gil(py, || self.inner.nbytes_stored())
    }

    /// Reads the variable-length elements of `selection`, in C order: a list of str for
    /// `string` arrays, of bytes for `bytes` arrays. Decoding runs without the GIL; building
    /// the Python objects needs it.
    fn read_vlen<'py>(
        &self,
        py: Python<'py>,
        selection: Vec<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let selection = parse_selection(&selection)?;
        let chunk = without_gil(py, || self.inner.read_vlen(&selection))?;
        let text = matches!(self.inner.data_type(), DataType::String);
        let label = format!("{} (the selection)", self.inner.path());
        vlen_to_list(py, &chunk, text, &label)
    }

    /// Writes variable-length `values` (str or bytes, the selection's elements in C order).
    fn write_vlen(
        &self,
        py: Python<'_>,
        selection: Vec<Bound<'_, PyAny>>,
        values: Vec<Bound<'_, PyAny>>,
        write_empty_chunks: bool,
    ) -> PyResult<()> {
        let selection = parse_selection(&selection)?;
        let chunk = vlen_from_values(&values)?;
        without_gil(py, || {
            self.inner
                .write_vlen(&selection, &chunk, write_empty_chunks)
        })
    }

    /// Writes one variable-length value (str or bytes) into every place of `selection`,
    /// without a list of as many.
    fn write_vlen_value(
        &self,
        py: Python<'_>,
        selection: Vec<Bound<'_, PyAny>>,
        value: Bound<'_, PyAny>,
        write_empty_chunks: bool,
    ) -> PyResult<()> {
        let selection = parse_selection(&selection)?;
        let one = vlen_from_values(&[value])?;
        without_gil(py, || {
            self.inner
                .write_vlen_value(&selection, one.get(0), write_empty_chunks)
        })
    }

    /// Writes `data` (a flat uint8 view of a C-contiguous array shaped as the selection) into
    /// `selection`.
    #[pyo3(signature = (selection, data, write_empty_chunks, fortran = false))]
    fn write(
        &self,
        py: Python<'_>,
        selection: Vec<Bound<'_, PyAny>>,
        data: &Bound<'_, PyArray1<u8>>,
        write_empty_chunks: bool,
        fortran: bool,
    ) -> PyResult<()> {
        let selection = parse_selection(&selection)?;
        let data = buffers::readable(data)?;
        let data = data
            .as_slice()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        without_gil(py, || match fortran {
            true => self
                .inner
                .write_fortran(&selection, data, write_empty_chunks),
            false => self.inner.write(&selection, data, write_empty_chunks),
        })
    }

    /// Writes one element, `value` (its bytes, in the byte order the elements are read in),
    /// into every place of `selection`, without a buffer the size of the selection.
    fn write_value(
        &self,
        py: Python<'_>,
        selection: Vec<Bound<'_, PyAny>>,
        value: &[u8],
        write_empty_chunks: bool,
    ) -> PyResult<()> {
        let selection = parse_selection(&selection)?;
        without_gil(py, || {
            self.inner
                .write_value(&selection, value, write_empty_chunks)
        })
    }
}
