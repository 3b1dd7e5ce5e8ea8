//! `Store`: a handle to an engine store, for the Python package's store classes.

use std::sync::Arc;

use oxzarr_core::store::{
    CountingStore, FilesystemStore, MemoryStore, PrefixStore, ReadCounters, ReadOnlyStore,
    RemoteStore, StoreRef, ZipMode, ZipStore,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::to_py_err;
use crate::gil::without_gil;

#[pyclass(frozen, module = "oxzarr._core")]
pub struct Store {
    inner: StoreRef,
    read_only: bool,
    /// Set for stores made by `counting`.
    counters: Option<Arc<ReadCounters>>,
    /// Set for a zip file open for writing: what `close` finishes.
    zip: Option<Arc<ZipStore>>,
}

impl Store {
    pub fn inner(&self) -> &StoreRef {
        &self.inner
    }
}

#[pymethods]
impl Store {
    /// A store in a directory of the local filesystem.
    #[staticmethod]
    #[pyo3(signature = (root, read_only = false))]
    fn local(root: std::path::PathBuf, read_only: bool) -> Self {
        let store = Self {
            inner: Arc::new(FilesystemStore::new(root)),
            read_only: false,
            counters: None,
            zip: None,
        };
        if read_only {
            store.read_only_view()
        } else {
            store
        }
    }

    /// A zip file, read-only (its central directory is read now).
    #[staticmethod]
    fn zip(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Self> {
        let store = without_gil(py, || Ok(ZipStore::open(path)?))?;
        Ok(Self {
            inner: Arc::new(store),
            read_only: true,
            counters: None,
            zip: None,
        })
    }

    /// A zip file open for writing: `mode` "w" (a new zip, replacing any file), "x" (a new
    /// zip, the path must not exist) or "a" (add to the zip there, or start one); with
    /// `deflate`, new entries are deflated rather than stored; without `allow_zip64`, writes
    /// that would need ZIP64 records are refused.
    #[staticmethod]
    #[pyo3(signature = (path, mode, deflate = false, allow_zip64 = true))]
    fn zip_writer(
        py: Python<'_>,
        path: std::path::PathBuf,
        mode: &str,
        deflate: bool,
        allow_zip64: bool,
    ) -> PyResult<Self> {
        let mode = match mode {
            "w" => ZipMode::Create,
            "x" => ZipMode::CreateNew,
            "a" => ZipMode::Append,
            _ => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "zip mode {mode:?} is not one of 'r', 'w', 'x', 'a'"
                )))
            }
        };
        let store = Arc::new(without_gil(py, || {
            let zip = ZipStore::open_for_writing(path, mode)?;
            let zip = match deflate {
                true => zip.with_deflated_entries(),
                false => zip,
            };
            Ok(match allow_zip64 {
                true => zip,
                false => zip.without_zip64(),
            })
        })?);
        Ok(Self {
            inner: store.clone(),
            read_only: false,
            counters: None,
            zip: Some(store),
        })
    }

    /// Ends writing to a zip file, writing its central directory (reads go on). Other
    /// stores write everything at once: nothing to do.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        match &self.zip {
            Some(zip) => without_gil(py, || Ok(zip.close()?)),
            None => Ok(()),
        }
    }

    /// Ends writing to a zip file without finishing it, and lets go of the file: for a zip
    /// about to be deleted. Other stores: nothing to do.
    fn abandon(&self, py: Python<'_>) -> PyResult<()> {
        match &self.zip {
            Some(zip) => without_gil(py, || {
                zip.abandon();
                Ok(())
            }),
            None => Ok(()),
        }
    }

    /// An object store: `s3://bucket/prefix`, `gs://bucket/prefix` (read-only) or
    /// `http(s)://host/path` (read-only), with options in `object_store`'s names. Nothing is
    /// fetched yet.
    #[staticmethod]
    #[pyo3(signature = (url, options, read_only = false))]
    fn remote(
        py: Python<'_>,
        url: &str,
        options: Vec<(String, String)>,
        read_only: bool,
    ) -> PyResult<Self> {
        let store = without_gil(py, || Ok(RemoteStore::open(url, options)?))?;
        if let Some(reason) = store.read_only_reason() {
            return Ok(Self {
                inner: Arc::new(ReadOnlyStore::because(Arc::new(store), reason)),
                read_only: true,
                counters: None,
                zip: None,
            });
        }
        let store = Self {
            inner: Arc::new(store),
            read_only: false,
            counters: None,
            zip: None,
        };
        Ok(if read_only {
            store.read_only_view()
        } else {
            store
        })
    }

    /// The keys under `prefix` (a node path) of this store, as a store named `name`.
    fn prefixed(&self, prefix: &str, name: &str) -> PyResult<Self> {
        Ok(Self {
            inner: Arc::new(
                PrefixStore::new(self.inner.clone(), prefix, name)
                    .map_err(|e| to_py_err(e.into()))?,
            ),
            read_only: self.read_only,
            counters: None,
            zip: None,
        })
    }

    /// The same store, with writes refused.
    fn read_only_view(&self) -> Self {
        if self.read_only {
            return Self {
                inner: self.inner.clone(),
                read_only: true,
                counters: self.counters.clone(),
                zip: None,
            };
        }
        Self {
            inner: Arc::new(ReadOnlyStore::new(self.inner.clone())),
            read_only: true,
            counters: self.counters.clone(),
            zip: None,
        }
    }

    /// The same store, counting the read requests and bytes it serves.
    fn counting(&self) -> Self {
        let counting = CountingStore::new(self.inner.clone());
        let counters = counting.counters();
        Self {
            inner: Arc::new(counting),
            read_only: self.read_only,
            counters: Some(counters),
            zip: self.zip.clone(),
        }
    }

    /// (requests, bytes) read since the counting store was made or last reset.
    fn read_counters(&self) -> Option<(u64, u64)> {
        self.counters.as_ref().map(|c| c.get())
    }

    /// Listings served since the counting store was made or last reset.
    fn listings(&self) -> Option<u64> {
        self.counters.as_ref().map(|c| c.listings())
    }

    fn reset_counters(&self) {
        if let Some(c) = &self.counters {
            c.reset();
        }
    }

    /// A new, empty in-memory store.
    #[staticmethod]
    fn memory() -> Self {
        Self {
            inner: Arc::new(MemoryStore::new()),
            read_only: false,
            counters: None,
            zip: None,
        }
    }

    #[getter]
    fn read_only(&self) -> bool {
        self.read_only
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn get<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let value = without_gil(py, || Ok(self.inner.get(key)?))?;
        Ok(value.map(|v| PyBytes::new(py, &v)))
    }

    fn set(&self, py: Python<'_>, key: &str, value: &[u8]) -> PyResult<()> {
        without_gil(py, || Ok(self.inner.set(key, value)?))
    }

    fn delete(&self, py: Python<'_>, key: &str) -> PyResult<()> {
        without_gil(py, || Ok(self.inner.delete(key)?))
    }

    fn delete_prefix(&self, py: Python<'_>, prefix: &str) -> PyResult<()> {
        without_gil(py, || Ok(self.inner.delete_prefix(prefix)?))
    }

    fn exists(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        without_gil(py, || Ok(self.inner.exists(key)?))
    }

    /// Every key under `prefix` ("" or ending in "/"), sorted.
    fn list_prefix(&self, py: Python<'_>, prefix: &str) -> PyResult<Vec<String>> {
        without_gil(py, || Ok(self.inner.list_prefix(prefix)?))
    }

    /// (keys, prefixes) directly under `prefix`.
    fn list_dir(&self, py: Python<'_>, prefix: &str) -> PyResult<(Vec<String>, Vec<String>)> {
        let listed = without_gil(py, || Ok(self.inner.list_dir(prefix)?))?;
        Ok((listed.keys, listed.prefixes))
    }
}
