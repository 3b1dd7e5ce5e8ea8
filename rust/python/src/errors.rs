//! Engine errors to Python exceptions, in one place.
//!
//! The exception classes live in `oxzarr.errors` (Python), where their hierarchy mirrors
//! zarr-python's: every one is also a built-in users already catch (`FileNotFoundError`,
//! `ValueError`, `IndexError`, `OSError`). A buffer that metadata or stored bytes size
//! beyond what can be allocated is a `MemoryError`, as numpy's own.

use oxzarr_core::error::{CodecError, Error, MetadataError, StorageError};
use pyo3::exceptions::{PyMemoryError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// An exception of class `name` from `oxzarr.errors` (`fallback` if that cannot be imported).
fn raise(name: &str, message: String, fallback: fn(String) -> PyErr) -> PyErr {
    Python::attach(|py| {
        let class = py.import("oxzarr.errors").and_then(|m| m.getattr(name));
        match class {
            Ok(class) => match class.call1((message.clone(),)) {
                Ok(exc) => PyErr::from_value(exc),
                Err(e) => e,
            },
            Err(_) => fallback(message),
        }
    })
}

fn unsupported_operation(message: String) -> PyErr {
    Python::attach(|py| {
        let class = py
            .import("io")
            .and_then(|m| m.getattr("UnsupportedOperation"));
        match class.and_then(|class| class.call1((message.clone(),))) {
            Ok(exc) => PyErr::from_value(exc),
            Err(_) => PyOSError::new_err(message),
        }
    })
}

fn value_error(message: String) -> PyErr {
    PyValueError::new_err(message)
}

pub fn to_py_err(err: Error) -> PyErr {
    let message = err.to_string();
    match err {
        Error::NodeNotFound { kind, .. } => {
            let class = match kind {
                "array" => "ArrayNotFoundError",
                "group" => "GroupNotFoundError",
                _ => "NodeNotFoundError",
            };
            raise(class, message, |m| {
                pyo3::exceptions::PyFileNotFoundError::new_err(m)
            })
        }
        Error::NodeExists { existing, .. } => {
            let class = if existing == "group" {
                "ContainsGroupError"
            } else {
                "ContainsArrayError"
            };
            raise(class, message, value_error)
        }
        Error::NotAnArray { .. } => raise("NodeTypeValidationError", message, value_error),
        Error::NotAGroup { .. } => raise("ContainsArrayError", message, value_error),
        Error::Metadata(e) | Error::InvalidMetadata { source: e, .. } => {
            let class = match e {
                MetadataError::Unsupported { ref field, .. } if field == "codec" => {
                    "UnknownCodecError"
                }
                _ => "MetadataValidationError",
            };
            raise(class, message, value_error)
        }
        Error::CorruptChunk { .. } => raise("CorruptChunkError", message, value_error),
        // A chunk too large to encode in the memory left (a compressor's output buffer).
        Error::EncodeChunk {
            source: CodecError::OutOfMemory { .. },
            ..
        } => PyMemoryError::new_err(message),
        Error::EncodeChunk { .. } | Error::InvalidArgument(_) => value_error(message),
        Error::OutOfBounds(_) => raise("BoundsCheckError", message, |m| {
            pyo3::exceptions::PyIndexError::new_err(m)
        }),
        Error::Storage(StorageError::Io { key, source }) => {
            // OSError(errno, strerror, filename) picks the subclass (PermissionError, ...)
            // from the errno, as the open() built-in does.
            match source.raw_os_error() {
                Some(errno) => PyOSError::new_err((errno, source.to_string(), key)),
                // No errno (a FIFO where a value should be, a file that shrank while read):
                // the same shape of message, without an "[Errno 0]".
                None => {
                    let message = format!("{source}: '{key}'");
                    // Errors of object stores carry a kind, not an errno.
                    match source.kind() {
                        std::io::ErrorKind::PermissionDenied => {
                            pyo3::exceptions::PyPermissionError::new_err(message)
                        }
                        std::io::ErrorKind::NotFound => {
                            pyo3::exceptions::PyFileNotFoundError::new_err(message)
                        }
                        // io.UnsupportedOperation: an OSError (and ValueError) that
                        // callers can tell from a failure (a web server that cannot list).
                        std::io::ErrorKind::Unsupported => unsupported_operation(message),
                        // A server that did not answer in time, as aiohttp's is.
                        std::io::ErrorKind::TimedOut => {
                            pyo3::exceptions::PyTimeoutError::new_err(message)
                        }
                        // A zip opened without ZIP64 records that a write would need: a
                        // zipfile.LargeZipFile, as zarr-python's ZipStore raises.
                        std::io::ErrorKind::FileTooLarge => {
                            raise("LargeZipFileError", message, PyOSError::new_err)
                        }
                        _ => PyOSError::new_err(message),
                    }
                }
            }
        }
        Error::Storage(StorageError::ReadOnly { .. }) => {
            raise("ReadOnlyError", message, value_error)
        }
        // Sizes from metadata or stored bytes that cannot be allocated: numpy raises the
        // same for an array too large to allocate.
        Error::OutOfMemory { .. } | Error::Storage(StorageError::OutOfMemory { .. }) => {
            PyMemoryError::new_err(message)
        }
        Error::Storage(_) => value_error(message),
        Error::Threads(_) | Error::Engine(_) => PyRuntimeError::new_err(message),
        // Stopped by a signal whose own exception is raised instead (see `gil`); this one
        // only if that was lost.
        Error::Interrupted => pyo3::exceptions::PyKeyboardInterrupt::new_err(message),
    }
}

/// A caller's numpy buffer that cannot be borrowed: a read-only output is a `ValueError`, as
/// numpy's assignment raises; memory another call of the engine is using (threads filling
/// overlapping views of one output) a `BufferError`, which the Python side meets by reading
/// apart and assigning as numpy does.
pub fn borrow_error(e: numpy::BorrowError) -> PyErr {
    match e {
        numpy::BorrowError::NotWriteable => {
            PyValueError::new_err("assignment destination is read-only")
        }
        other => pyo3::exceptions::PyBufferError::new_err(format!(
            "the buffer's memory is in use by another call ({other})"
        )),
    }
}
