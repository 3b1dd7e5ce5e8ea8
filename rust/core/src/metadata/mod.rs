//! Zarr metadata documents: v3 `zarr.json` of arrays and groups, data types and fill values.

pub mod data_type;
pub mod fill_value;
pub mod numpy_dtype;
pub mod v3;

pub use data_type::DataType;
pub use v3::{ArrayMetadataV3, ChunkKeyEncoding, GroupMetadataV3, NodeMetadataV3};

/// The name of a v3 node's metadata document.
pub const ZARR_JSON: &str = "zarr.json";
