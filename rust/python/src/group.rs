//! `Group`: an open group.

use oxzarr_core::group::NodeKind;
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

fn parse_attributes(json: &str) -> PyResult<serde_json::Map<String, serde_json::Value>> {
    serde_json::from_str(json).map_err(|e| {
        pyo3::exceptions::PyValueError::new_err(format!("attributes are not a JSON object: {e}"))
    })
}

#[pymethods]
impl Group {
    #[staticmethod]
    fn open(py: Python<'_>, store: &Store, path: &str) -> PyResult<Self> {
        let store = store.inner().clone();
        without_gil(py, || oxzarr_core::Group::open(store, path)).map(Self::from)
    }

    #[staticmethod]
    fn create(
        py: Python<'_>,
        store: &Store,
        path: &str,
        attributes_json: &str,
        overwrite: bool,
    ) -> PyResult<Self> {
        let attributes = parse_attributes(attributes_json)?;
        let store = store.inner().clone();
        without_gil(py, || {
            oxzarr_core::Group::create(store, path, attributes, overwrite)
        })
        .map(Self::from)
    }

    #[getter]
    fn path(&self) -> &str {
        self.inner.path()
    }

    fn metadata_json(&self) -> String {
        self.inner.metadata().to_value().to_string()
    }

    fn attributes_json(&self) -> String {
        serde_json::Value::Object(self.inner.attributes().clone()).to_string()
    }

    /// Writes new attributes; returns the updated group.
    fn with_attributes(&self, py: Python<'_>, attributes_json: &str) -> PyResult<Self> {
        let attributes = parse_attributes(attributes_json)?;
        without_gil(py, || self.inner.with_attributes(attributes)).map(Self::from)
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
