//! `ConvertJob`: one array copied into another of a different layout by the engine
//! (`oxzarr_core::convert`), with its progress readable and a way to stop it from Python while
//! it runs with the GIL released.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use oxzarr_core::convert::{self, Budget, Progress};
use pyo3::prelude::*;

use crate::array::Array;
use crate::gil::without_gil;

#[pyclass(frozen, module = "oxzarr._core")]
pub struct ConvertJob {
    src: oxzarr_core::Array,
    dst: oxzarr_core::Array,
    budget: Budget,
    write_empty_chunks: bool,
    progress: Arc<Progress>,
}

#[pymethods]
impl ConvertJob {
    #[new]
    #[pyo3(signature = (src, dst, *, cache_bytes, wave_bytes, write_empty_chunks = false))]
    fn new(
        src: &Array,
        dst: &Array,
        cache_bytes: u64,
        wave_bytes: u64,
        write_empty_chunks: bool,
    ) -> Self {
        Self {
            src: src.inner().clone(),
            dst: dst.inner().clone(),
            budget: Budget {
                cache_bytes,
                wave_bytes,
            },
            write_empty_chunks,
            progress: Arc::new(Progress::default()),
        }
    }

    /// Runs the conversion; returns (completed, units written, source chunks decoded).
    fn run(&self, py: Python<'_>) -> PyResult<(bool, u64, u64)> {
        let outcome = without_gil(py, || {
            convert::convert(
                &self.src,
                &self.dst,
                self.budget,
                self.write_empty_chunks,
                &self.progress,
            )
        })?;
        Ok((
            outcome.completed,
            outcome.units_written,
            outcome.source_decodes,
        ))
    }

    /// (units done, units in all, bytes done, bytes in all, source chunks decoded).
    fn progress(&self) -> (u64, u64, u64, u64, u64) {
        let p = &self.progress;
        (
            p.units_done.load(Ordering::Relaxed),
            p.units_total.load(Ordering::Relaxed),
            p.bytes_done.load(Ordering::Relaxed),
            p.bytes_total.load(Ordering::Relaxed),
            p.source_decodes.load(Ordering::Relaxed),
        )
    }

    /// Stops the conversion: the units being written finish, no other starts.
    fn cancel(&self) {
        self.progress.cancel();
    }
}
