//! `ChunkCodec`: an array's codec chain applied to chunks a caller plans itself — what
//! `oxzarr.ZarrCodecPipeline` runs zarr-python's reads and writes through. Every batch is one
//! call: decoding, encoding and copying run in parallel with the GIL released.

use std::sync::Arc;

use numpy::{PyArray1, PyReadonlyArray1};
use oxzarr_core::array::chunk_ops::{self, ChunkRegion, MaskedWrite, RegionDim};
use oxzarr_core::codec::{ChunkRepr, CodecChain};
use oxzarr_core::metadata::DataType;
use pyo3::exceptions::{PyNotImplementedError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::buffers;
use crate::errors::to_py_err;
use crate::gil::without_gil;
use crate::store::Store;

/// A chunk's region from Python: per dimension (start, step, len, start in the other buffer).
type Dims = Vec<(u64, i64, u64, u64)>;

/// Stored chunk bytes from Python: a uint8 array (zarr-python's `Buffer.as_numpy_array()`,
/// taken without a copy), or None when the chunk is not stored.
type Stored<'py> = Option<PyReadonlyArray1<'py, u8>>;

fn stored_slice<'a>(stored: &'a Stored<'_>) -> PyResult<Option<&'a [u8]>> {
    stored
        .as_ref()
        .map(|a| {
            a.as_slice()
                .map_err(|e| PyValueError::new_err(e.to_string()))
        })
        .transpose()
}

fn array_slice<'a>(array: &'a PyReadonlyArray1<'_, u8>) -> PyResult<&'a [u8]> {
    array
        .as_slice()
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

#[pyclass(frozen, module = "oxzarr._core")]
pub struct ChunkCodec {
    chain: Arc<CodecChain>,
    /// The data type's elements vary in length (strings, bytes): chunks go through
    /// `decode_vlen` and `encode_vlen`, never the fixed-size methods.
    variable: bool,
    /// Its elements are text (decoded to `str`), not bytes.
    text: bool,
}

impl ChunkCodec {
    fn fixed_size(&self) -> PyResult<()> {
        if self.variable {
            return Err(PyValueError::new_err(format!(
                "{} chunks have variable-length elements: use decode_vlen and encode_vlen",
                self.chain.decoded_repr().data_type
            )));
        }
        Ok(())
    }

    fn variable_length(&self) -> PyResult<()> {
        if !self.variable {
            return Err(PyValueError::new_err(format!(
                "{} chunks have fixed-size elements: use decode and encode",
                self.chain.decoded_repr().data_type
            )));
        }
        Ok(())
    }
}

fn region(label: String, dims: Dims) -> ChunkRegion {
    ChunkRegion {
        label,
        dims: dims
            .into_iter()
            .map(|(start, step, len, other_start)| RegionDim {
                start,
                step,
                len,
                other_start,
            })
            .collect(),
    }
}

fn bytes_list<'py>(
    py: Python<'py>,
    items: Vec<Option<Vec<u8>>>,
) -> Vec<Option<Bound<'py, PyBytes>>> {
    items
        .into_iter()
        .map(|c| c.map(|c| PyBytes::new(py, &c)))
        .collect()
}

#[pymethods]
impl ChunkCodec {
    /// The chain of an array whose metadata (v3 `zarr.json`, or v2 `.zarray` with
    /// `attributes`) describes chunks of its chunk shape. With `write_empty_chunks`, shards
    /// keep their inner chunks that hold only the fill value.
    #[new]
    #[pyo3(signature = (metadata_json, write_empty_chunks = false))]
    fn new(metadata_json: &str, write_empty_chunks: bool) -> PyResult<Self> {
        let metadata = crate::array::parse_metadata(metadata_json)?;
        let invalid = |e: oxzarr_core::error::MetadataError| to_py_err(e.into());
        let data_type = metadata.data_type().clone();
        let variable = data_type.is_variable();
        let text = matches!(data_type, DataType::String);
        let fill = metadata.fill_value_bytes().map_err(invalid)?;
        let repr = ChunkRepr::with_fill(metadata.chunk_shape().to_vec(), data_type, &fill);
        let mut chain = metadata.codec_chain(&repr).map_err(invalid)?;
        if write_empty_chunks {
            chain.keep_empty_inner_chunks();
        }
        if variable && chain.sharding().is_some() {
            // This chain decodes and encodes variable-length elements of plain chunks only
            // (oxzarr's own arrays read shards of them inner chunk by inner chunk): refused
            // by name, so that zarr-python's pipeline runs these.
            return Err(PyNotImplementedError::new_err(
                "variable-length elements in shards",
            ));
        }
        Ok(Self {
            chain: Arc::new(chain),
            variable,
            text,
        })
    }

    /// Decodes chunks (uint8 arrays, or None when not stored) and copies each one's region into
    /// `out`, a flat uint8 view of a C-contiguous native-endian array of `out_shape`.
    fn decode_into(
        &self,
        py: Python<'_>,
        items: Vec<(Stored<'_>, String, Dims)>,
        out: &Bound<'_, PyArray1<u8>>,
        out_shape: Vec<u64>,
    ) -> PyResult<()> {
        self.fixed_size()?;
        let regions = items
            .iter()
            .map(|(b, label, dims)| Ok((stored_slice(b)?, region(label.clone(), dims.clone()))))
            .collect::<PyResult<Vec<_>>>()?;
        let mut out = buffers::writable(out)?;
        let out = out
            .as_slice_mut()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        without_gil(py, || {
            chunk_ops::decode_regions(&self.chain, &regions, out, &out_shape)
        })
    }

    /// Decodes whole chunks: the decoded bytes (C order, native endian) of each, or None.
    fn decode<'py>(
        &self,
        py: Python<'py>,
        items: Vec<(Stored<'py>, String)>,
    ) -> PyResult<Vec<Option<Bound<'py, PyBytes>>>> {
        self.fixed_size()?;
        let refs = items
            .iter()
            .map(|(b, label)| Ok((stored_slice(b)?, label.clone())))
            .collect::<PyResult<Vec<_>>>()?;
        let decoded = without_gil(py, || chunk_ops::decode_chunks(&self.chain, &refs))?;
        Ok(bytes_list(py, decoded))
    }

    /// Encodes whole decoded chunks.
    fn encode<'py>(
        &self,
        py: Python<'py>,
        items: Vec<(PyReadonlyArray1<'py, u8>, String)>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        self.fixed_size()?;
        let refs = items
            .iter()
            .map(|(b, label)| {
                let bytes = b
                    .as_slice()
                    .map_err(|e| PyValueError::new_err(e.to_string()))?;
                Ok((bytes, label.clone()))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let encoded = without_gil(py, || chunk_ops::encode_chunks(&self.chain, &refs))?;
        Ok(encoded.iter().map(|c| PyBytes::new(py, c)).collect())
    }

    /// Writes regions of `data` (a flat uint8 view of a C-contiguous native-endian array of
    /// `data_shape`) into chunks (their current bytes, or None), returning each chunk's new
    /// bytes, or None where it holds only the fill value and empty chunks are not written.
    fn encode_regions<'py>(
        &self,
        py: Python<'py>,
        items: Vec<(Stored<'py>, String, Dims)>,
        data: &Bound<'_, PyArray1<u8>>,
        data_shape: Vec<u64>,
        write_empty_chunks: bool,
    ) -> PyResult<Vec<Option<Bound<'py, PyBytes>>>> {
        self.fixed_size()?;
        let regions = items
            .iter()
            .map(|(b, label, dims)| Ok((stored_slice(b)?, region(label.clone(), dims.clone()))))
            .collect::<PyResult<Vec<_>>>()?;
        let data = buffers::readable(data)?;
        let data = data
            .as_slice()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let encoded = without_gil(py, || {
            chunk_ops::encode_regions(&self.chain, &regions, data, &data_shape, write_empty_chunks)
        })?;
        Ok(bytes_list(py, encoded))
    }

    /// For writes that are no region (index arrays, masks), whose values the caller places
    /// itself: encodes each chunk from its whole decoded contents after the write (a flat
    /// uint8 view, C order, native endian), its stored bytes before (or None) and which of
    /// its elements the write touched (a flat uint8 view of a C-order boolean array of the
    /// chunk's shape). Returns each chunk's new bytes, or None where nothing is to be stored,
    /// as `encode_regions` does: a shard keeps the inner chunks zarr-python keeps.
    fn encode_masked<'py>(
        &self,
        py: Python<'py>,
        items: Vec<(
            PyReadonlyArray1<'py, u8>,
            Stored<'py>,
            PyReadonlyArray1<'py, u8>,
            String,
        )>,
        write_empty_chunks: bool,
    ) -> PyResult<Vec<Option<Bound<'py, PyBytes>>>> {
        self.fixed_size()?;
        let refs = items
            .iter()
            .map(|(chunk, stored, touched, label)| {
                Ok(MaskedWrite {
                    chunk: array_slice(chunk)?,
                    stored: stored_slice(stored)?,
                    touched: array_slice(touched)?,
                    label,
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        let encoded = without_gil(py, || {
            chunk_ops::encode_masked(&self.chain, &refs, write_empty_chunks)
        })?;
        Ok(bytes_list(py, encoded))
    }

    /// Whether chunks hold variable-length elements (strings, bytes).
    #[getter]
    fn variable_length_elements(&self) -> bool {
        self.variable
    }

    /// Decodes whole chunks of variable-length elements: each one's elements in C order (str
    /// for text, bytes otherwise), or None where the chunk is not stored.
    fn decode_vlen<'py>(
        &self,
        py: Python<'py>,
        items: Vec<(Stored<'py>, String)>,
    ) -> PyResult<Vec<Option<Bound<'py, PyList>>>> {
        self.variable_length()?;
        let refs = items
            .iter()
            .map(|(b, label)| Ok((stored_slice(b)?, label.clone())))
            .collect::<PyResult<Vec<_>>>()?;
        let decoded = without_gil(py, || chunk_ops::decode_vlen_chunks(&self.chain, &refs))?;
        decoded
            .into_iter()
            .zip(&refs)
            .map(|(chunk, (_, label))| {
                chunk
                    .map(|chunk| crate::array::vlen_to_list(py, &chunk, self.text, label))
                    .transpose()
            })
            .collect()
    }

    /// Encodes whole chunks of variable-length elements (str or bytes, C order).
    fn encode_vlen<'py>(
        &self,
        py: Python<'py>,
        items: Vec<(Vec<Bound<'py, PyAny>>, String)>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        self.variable_length()?;
        let chunks = items
            .iter()
            .map(|(elements, label)| Ok((crate::array::vlen_from_values(elements)?, label.clone())))
            .collect::<PyResult<Vec<_>>>()?;
        let encoded = without_gil(py, || chunk_ops::encode_vlen_chunks(&self.chain, &chunks))?;
        Ok(encoded.iter().map(|c| PyBytes::new(py, c)).collect())
    }

    /// Reads the chunks at store keys from `store` and decodes each one's region into `out`
    /// (a flat uint8 view of a C-contiguous native-endian array of `out_shape`).
    fn read_regions(
        &self,
        py: Python<'_>,
        store: &Store,
        items: Vec<(String, Dims)>,
        out: &Bound<'_, PyArray1<u8>>,
        out_shape: Vec<u64>,
    ) -> PyResult<()> {
        self.fixed_size()?;
        let store = store.inner().clone();
        let regions: Vec<(String, ChunkRegion)> = items
            .into_iter()
            .map(|(key, dims)| (key.clone(), region(key, dims)))
            .collect();
        let mut out = buffers::writable(out)?;
        let out = out
            .as_slice_mut()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        without_gil(py, || {
            chunk_ops::read_regions(&self.chain, store.as_ref(), &regions, out, &out_shape)
        })
    }

    /// Writes regions of `data` (a flat uint8 view of a C-contiguous native-endian array of
    /// `data_shape`) into the chunks at store keys in `store`.
    fn write_regions(
        &self,
        py: Python<'_>,
        store: &Store,
        items: Vec<(String, Dims)>,
        data: &Bound<'_, PyArray1<u8>>,
        data_shape: Vec<u64>,
        write_empty_chunks: bool,
    ) -> PyResult<()> {
        self.fixed_size()?;
        let store = store.inner().clone();
        let regions: Vec<(String, ChunkRegion)> = items
            .into_iter()
            .map(|(key, dims)| (key.clone(), region(key, dims)))
            .collect();
        let data = buffers::readable(data)?;
        let data = data
            .as_slice()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        without_gil(py, || {
            chunk_ops::write_regions(
                &self.chain,
                store.as_ref(),
                &regions,
                data,
                &data_shape,
                write_empty_chunks,
            )
        })
    }
}
