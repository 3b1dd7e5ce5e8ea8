//! Errors of the engine, one enum per layer. The Python binding maps them to exceptions in one
//! place (rust/python/src/errors.rs); each message names the store key or field involved.

use thiserror::Error;

/// Bad or unsupported metadata: names the field and the value.
#[derive(Debug, Error)]
pub enum MetadataError {
    #[error("invalid {field}: {value} ({reason})")]
    Invalid {
        field: String,
        value: String,
        reason: String,
    },
    #[error("unsupported {field}: {value}")]
    Unsupported { field: String, value: String },
    #[error("{path} is not valid JSON: {reason}")]
    NotJson { path: String, reason: String },
}

impl MetadataError {
    pub fn invalid(field: &str, value: &serde_json::Value, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_string(),
            // As the document holds it: a bare NaN as `NaN`, not as oxzarr's marker string.
            value: crate::metadata::json::to_string(value),
            reason: reason.into(),
        }
    }

    pub fn missing(field: &str) -> Self {
        Self::Invalid {
            field: field.to_string(),
            value: "nothing".to_string(),
            reason: "the field is required".to_string(),
        }
    }

    pub fn unsupported(field: &str, value: &serde_json::Value) -> Self {
        Self::Unsupported {
            field: field.to_string(),
            value: value.to_string(),
        }
    }
}

/// A codec could not encode or decode a chunk. The array layer adds the store key.
#[derive(Debug, Error)]
pub enum CodecError {
    #[error("{codec}: {reason}")]
    Corrupt { codec: &'static str, reason: String },
    #[error("{codec}: decoded size {actual} exceeds the {limit} bytes the metadata allows")]
    TooLarge {
        codec: &'static str,
        actual: usize,
        limit: usize,
    },
    #[error("{codec}: {reason}")]
    Encode { codec: &'static str, reason: String },
    /// A buffer the chunk needs (its size from metadata or stored bytes) cannot be allocated.
    #[error("cannot allocate the {bytes} bytes it needs")]
    OutOfMemory { bytes: u64 },
}

impl CodecError {
    pub fn corrupt(codec: &'static str, reason: impl ToString) -> Self {
        Self::Corrupt {
            codec,
            reason: reason.to_string(),
        }
    }
}

/// The store could not serve or accept a key.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("{key}: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid store key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("store is read-only: cannot write {key}")]
    ReadOnly { key: String },
    #[error("{key}: {range} lie outside the {size} stored bytes")]
    OutOfRange {
        key: String,
        range: String,
        size: u64,
    },
    #[error("{key}: cannot allocate the {bytes} bytes it holds")]
    OutOfMemory { key: String, bytes: u64 },
    /// A store that cannot be opened as described (an unknown option, a malformed endpoint).
    #[error("{store}: {reason}")]
    InvalidOptions { store: String, reason: String },
}

impl StorageError {
    pub fn invalid_key(key: &str, reason: &str) -> Self {
        Self::InvalidKey {
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }

    pub fn out_of_range(key: &str, range: crate::store::ByteRange, size: u64) -> Self {
        Self::OutOfRange {
            key: key.to_string(),
            range: range.to_string(),
            size,
        }
    }
}

/// Errors of array and group operations: what reaches the binding.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("corrupt chunk {key}: {source}")]
    CorruptChunk {
        key: String,
        #[source]
        source: CodecError,
    },
    #[error("cannot encode chunk {key}: {source}")]
    EncodeChunk {
        key: String,
        #[source]
        source: CodecError,
    },
    /// `kind` is what was looked for: "array", "group" or "node".
    #[error("no {kind} found at {path}")]
    NodeNotFound { kind: &'static str, path: String },
    /// `existing` is what is in the way: "array", "group" or "node".
    #[error("cannot create a node at {path}: {reason}")]
    NodeExists {
        existing: &'static str,
        path: String,
        reason: String,
    },
    #[error("{0}")]
    OutOfBounds(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{key}: {source}")]
    InvalidMetadata {
        key: String,
        #[source]
        source: MetadataError,
    },
    #[error("{path} is not an array")]
    NotAnArray { path: String },
    #[error("{path} is not a group")]
    NotAGroup { path: String },
    #[error("cannot start the engine's threads: {0}")]
    Threads(String),
    /// The engine's threads could not finish an operation (a fork in its middle, say).
    #[error("{0}")]
    Engine(String),
    /// The operation was told to stop (Ctrl-C) and ended early, between chunks.
    #[error("interrupted")]
    Interrupted,
    /// A buffer sized by metadata or stored bytes (a chunk, a shard index, a stored value)
    /// cannot be allocated.
    #[error("{what}: cannot allocate the {bytes} bytes it needs")]
    OutOfMemory { what: String, bytes: u64 },
}

impl Error {
    /// A codec's failure on the chunk at `key` (with where it is stored): the chunk is corrupt,
    /// unless what failed was allocating the memory its metadata or bytes asked for.
    pub fn chunk(key: String, source: CodecError) -> Self {
        match source {
            CodecError::OutOfMemory { bytes } => Self::OutOfMemory {
                what: format!("chunk {key}"),
                bytes,
            },
            source => Self::CorruptChunk { key, source },
        }
    }

    /// A metadata error naming its key with the store it is in (`store`: the store's
    /// description), as chunk errors name theirs; other errors as they are.
    pub(crate) fn metadata_in(self, store: &str) -> Self {
        match self {
            Self::InvalidMetadata { key, source } if !key.ends_with(&format!(" in {store}")) => {
                Self::InvalidMetadata {
                    key: format!("{key} in {store}"),
                    source,
                }
            }
            other => other,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
