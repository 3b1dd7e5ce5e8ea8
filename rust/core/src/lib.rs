//! oxzarr-core: the engine of oxzarr.
//!
//! Zarr v3 metadata, codecs, stores and parallel chunk I/O, in pure Rust (no pyo3): the Python
//! binding in `rust/python` is a thin adapter over this crate.
//!
//! The layers, bottom up:
//! - [`store`]: key-value stores (filesystem, memory) behind capability traits;
//! - [`metadata`]: `zarr.json` documents, data types and fill values;
//! - [`codec`]: the codec chain and one module per codec;
//! - [`array`]: chunk grid, chunk keys, selections, and the parallel read and write paths;
//! - [`group`]: groups and node discovery;
//! - [`concurrency`]: the thread pool, its size and its survival across `fork`.

pub(crate) mod alloc;
pub mod array;
pub mod codec;
pub mod concurrency;
pub mod config;
pub mod convert;
pub mod error;
pub(crate) mod float16;
pub mod group;
pub mod metadata;
pub mod node;
pub mod pages;
pub(crate) mod scratch;
pub mod store;

pub use array::Array;
pub use error::{Error, Result};
pub use group::Group;
