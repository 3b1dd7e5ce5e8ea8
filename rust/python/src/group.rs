//! `Group`: an open group.

use oxzarr_core::group::NodeKind;
use oxzarr_core::metadata::json;
use pyo3::prelude::*;

use crate::gil::without_gil;
use crate::store::Store;

#[pyclass(frozen, module = "oxzarr._core")]
pub struct Group {
    inner: oxzarr_core::Group,
}

impl From<oxzarr_core::Group> for Group {
    fn from(inner: oxzarr_core::Group) -> Self {
        Self { inner }
    }
}

/// Attributes from Python's `json.dumps` (which writes `NaN` and `Infinity` bare).
pub(crate) fn parse_attributes(text: &str) -> PyResult<serde_json::Map<String, serde_json::Value>> {
    let not_an_object = |reason: String| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "attributes are not a JSON object: {reason}"
        ))
    };
    match json::parse(text.as_bytes()).map_err(|e| not_an_object(e.to_string()))? {
        serde_json::Value::Object(attributes) => Ok(attributes),
        other => Err(not_an_object(format!("found {other}"))),
    }
}

#[pymethods]
impl Group {
    #[staticmethod]
    #[pyo3(signature = (store, path, zarr_format = None))]
    fn open(py: Python<'_>, store: &Store, path: &str, zarr_format: Option<u8>) -> PyResult<Self> {
        let store = store.inner().clone();
        without_gil(py, || oxzarr_core::Group::open_as(store, path, zarr_format)).map(Self::from)
    }

    #[staticmethod]
    #[pyo3(signature = (store, path, attributes_json, overwrite, zarr_format = 3))]
    fn create(
        py: Python<'_>,
        store: &Store,
        path: &str,
        attributes_json: &str,
        overwrite: bool,
        zarr_format: u8,
    ) -> PyResult<Self> {
        if zarr_format != 2 && zarr_format != 3 {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "zarr_format must be 2 or 3, not {zarr_format}"
            )));
        }
        let attributes = parse_attributes(attributes_json)?;
        let store = store.inner().clone();
        without_gil(py, || {
            oxzarr_core::Group::create(store, path, attributes, overwrite, zarr_format)
        })
        .map(Self::from)
    }

    /// Opens the group (of Zarr format `zarr_format`, if given) through its consolidated
    /// metadata.
    #[staticmethod]
    #[pyo3(signature = (store, path, zarr_format=None))]
    fn open_consolidated(
        py: Python<'_>,
        store: &Store,
        path: &str,
        zarr_format: Option<u8>,
    ) -> PyResult<Self> {
        let store = store.inner().clone();
        without_gil(py, || {
            oxzarr_core::Group::open_consolidated_as(store, path, zarr_format)
        })
        .map(Self::from)
    }

    /// Opens the group (of Zarr format `zarr_format`, if given) through its consolidated
    /// metadata if it has some, else without; its document is read once.
    #[staticmethod]
    #[pyo3(signature = (store, path, zarr_format=None))]
    fn open_maybe_consolidated(
        py: Python<'_>,
        store: &Store,
        path: &str,
        zarr_format: Option<u8>,
    ) -> PyResult<Self> {
        let store = store.inner().clone();
        without_gil(py, || {
            oxzarr_core::Group::open_maybe_consolidated_as(store, path, zarr_format)
        })
        .map(Self::from)
    }

    /// The group made again, reading nothing from the store, from its metadata document
    /// (`metadata_json()`) and, for a group opened through consolidated metadata, the path of
    /// the group holding that and `consolidated_documents_json()`.
    #[staticmethod]
    #[pyo3(signature = (store, path, metadata_json, consolidated_root=None, consolidated_json=None))]
    fn from_documents(
        py: Python<'_>,
        store: &Store,
        path: &str,
        metadata_json: &str,
        consolidated_root: Option<&str>,
        consolidated_json: Option<&str>,
    ) -> PyResult<Self> {
        let store = store.inner().clone();
        without_gil(py, || {
            oxzarr_core::Group::from_documents(
                store,
                path,
                metadata_json.as_bytes(),
                consolidated_root,
                consolidated_json.map(str::as_bytes),
            )
        })
        .map(Self::from)
    }

    /// The documents of the nodes below the group in the consolidated metadata it was opened
    /// through, by store key from the group; None if it was opened without, or if its own
    /// document holds them.
    fn consolidated_documents_json(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let docs = without_gil(py, || self.inner.consolidated_documents())?;
        Ok(docs.map(|docs| json::to_string(&serde_json::Value::Object(docs))))
    }

    /// Writes consolidated metadata for everything below the group; returns the group opened
    /// through it.
    fn consolidate(&self, py: Python<'_>) -> PyResult<Self> {
        without_gil(py, || self.inner.consolidate()).map(Self::from)
    }

    #[getter]
    fn zarr_format(&self) -> u8 {
        self.inner.zarr_format()
    }

    #[getter]
    fn is_consolidated(&self) -> bool {
        self.inner.is_consolidated()
    }

    /// The path of the group whose consolidated metadata this group was opened through.
    #[getter]
    fn consolidated_root(&self) -> Option<&str> {
        self.inner.consolidated_root()
    }

    /// The member (or node below) at `name`: an Array or a Group. A group there opens
    /// through consolidated metadata of its own unless not `own_consolidated`.
    #[pyo3(signature = (name, own_consolidated = true))]
    fn child(&self, py: Python<'_>, name: &str, own_consolidated: bool) -> PyResult<Py<PyAny>> {
        let node = without_gil(py, || self.inner.child_with(name, own_consolidated))?;
        crate::node_to_py(py, node)
    }

    /// "array" or "group" for what is at `name` (without opening it), None if nothing is.
    fn child_kind(&self, py: Python<'_>, name: &str) -> PyResult<Option<&'static str>> {
        let kind = without_gil(py, || self.inner.child_kind(name))?;
        Ok(kind.map(|k| match k {
            NodeKind::Array => "array",
            NodeKind::Group => "group",
        }))
    }

    /// Deletes the member (or node below) at `name` and all it holds; the updated group.
    fn delete_member(&self, py: Python<'_>, name: &str) -> PyResult<Self> {
        without_gil(py, || self.inner.delete_member(name)).map(Self::from)
    }

    #[getter]
    fn path(&self) -> &str {
        self.inner.path()
    }

    /// The document, with the attributes as they are now (see `consolidated_generation`).
    fn metadata_json(&self) -> String {
        json::to_string(&self.inner.current_metadata().to_value())
    }

    fn attributes_json(&self) -> String {
        let metadata = self.inner.current_metadata();
        json::to_string(&serde_json::Value::Object(metadata.attributes().clone()))
    }

    /// How many attribute writes through the nodes opened from the consolidated metadata
    /// the group was opened through have been recorded (None: opened without): the
    /// document read at one generation is current while it is the same.
    #[getter]
    fn consolidated_generation(&self) -> Option<u64> {
        self.inner.consolidated_generation()
    }

    /// Writes new attributes; returns the updated group, or None if they were made from
    /// those of generation `seen_generation` and another write has come since.
    #[pyo3(signature = (attributes_json, seen_generation = None))]
    fn with_attributes(
        &self,
        py: Python<'_>,
        attributes_json: &str,
        seen_generation: Option<u64>,
    ) -> PyResult<Option<Self>> {
        let attributes = parse_attributes(attributes_json)?;
        let written = without_gil(py, || {
            self.inner.with_attributes(attributes, seen_generation)
        })?;
        Ok(written.map(Self::from))
    }

    /// The direct members: (name, "array" | "group"), sorted by name.
    fn members(&self, py: Python<'_>) -> PyResult<Vec<(String, &'static str)>> {
        let members = without_gil(py, || self.inner.members())?;
        Ok(members
            .into_iter()
            .map(|(name, kind)| {
                let kind = match kind {
                    NodeKind::Array => "array",
                    NodeKind::Group => "group",
                };
                (name, kind)
            })
            .collect())
    }
}
