//! Zarr metadata documents: v3 `zarr.json` of arrays and groups, data types and fill values.

pub mod data_type;
pub mod fill_value;
pub mod json;
pub mod numpy_dtype;
pub mod v2;
pub mod v3;

use serde_json::{Map, Value};

pub use data_type::DataType;
pub use v2::ArrayMetadataV2;
pub use v3::{ArrayMetadataV3, ChunkKeyEncoding, GroupMetadataV3, NodeMetadataV3};

use crate::codec::{ChunkRepr, CodecChain};
use crate::error::MetadataError;

/// The name of a v3 node's metadata document.
pub const ZARR_JSON: &str = "zarr.json";

/// Whether a document's `zarr_format` is `format`: the integer, or a number equal to it
/// written as a float (`3.0`), which zarr-python and TensorStore read as well. oxzarr
/// writes the integer.
pub fn is_zarr_format(value: &Value, format: u8) -> bool {
    value.as_f64() == Some(f64::from(format))
}

/// The metadata of a group of either format.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupMetadata {
    V3(GroupMetadataV3),
    V2 { attributes: Map<String, Value> },
}

impl GroupMetadata {
    pub fn zarr_format(&self) -> u8 {
        match self {
            Self::V3(_) => 3,
            Self::V2 { .. } => 2,
        }
    }

    pub fn attributes(&self) -> &Map<String, Value> {
        match self {
            Self::V3(m) => &m.attributes,
            Self::V2 { attributes } => attributes,
        }
    }

    pub fn set_attributes(&mut self, new: Map<String, Value>) {
        match self {
            Self::V3(m) => m.attributes = new,
            Self::V2 { attributes } => *attributes = new,
        }
    }

    /// The metadata from the one document [`GroupMetadata::to_value`] makes of it. `key`
    /// names the document in errors.
    pub fn parse(bytes: &[u8], key: &str) -> Result<Self, MetadataError> {
        let doc = json::parse(bytes).map_err(|e| MetadataError::NotJson {
            path: key.to_string(),
            reason: e.to_string(),
        })?;
        // (2.0 too, as every reader of documents takes it: see `is_zarr_format`.)
        if doc.get("zarr_format").is_some_and(|f| is_zarr_format(f, 2)) {
            let attributes = match doc {
                Value::Object(mut obj) => obj.remove("attributes"),
                _ => None,
            };
            return match attributes {
                Some(Value::Object(attributes)) => Ok(Self::V2 { attributes }),
                None | Some(Value::Null) => Ok(Self::V2 {
                    attributes: Map::new(),
                }),
                Some(other) => Err(MetadataError::invalid(
                    "attributes",
                    &other,
                    "expected a JSON object",
                )),
            };
        }
        // Parsed once: a consolidated group's document holds every node's below it.
        match NodeMetadataV3::from_value(doc)? {
            NodeMetadataV3::Group(meta) => Ok(Self::V3(meta)),
            NodeMetadataV3::Array(_) => Err(MetadataError::invalid(
                "node_type",
                &Value::from("array"),
                "expected \"group\"",
            )),
        }
    }

    /// The metadata as one JSON document (`zarr.json`, or `.zgroup` with `attributes`).
    pub fn to_value(&self) -> Value {
        match self {
            Self::V3(m) => m.to_value(),
            Self::V2 { attributes } => {
                serde_json::json!({"zarr_format": 2, "attributes": attributes})
            }
        }
    }
}

/// The metadata of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeMetadata {
    Array(ArrayMetadata),
    Group(GroupMetadata),
}

impl NodeMetadata {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Array(_) => "array",
            Self::Group(_) => "group",
        }
    }
}

/// The metadata of an array of either format.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayMetadata {
    V3(Box<ArrayMetadataV3>),
    V2(Box<ArrayMetadataV2>),
}

impl ArrayMetadata {
    pub fn zarr_format(&self) -> u8 {
        match self {
            Self::V3(_) => 3,
            Self::V2(_) => 2,
        }
    }

    pub fn shape(&self) -> &[u64] {
        match self {
            Self::V3(m) => &m.shape,
            Self::V2(m) => &m.shape,
        }
    }

    pub fn set_shape(&mut self, shape: Vec<u64>) {
        match self {
            Self::V3(m) => m.shape = shape,
            Self::V2(m) => m.shape = shape,
        }
    }

    /// The shape of a chunk of the grid.
    pub fn chunk_shape(&self) -> &[u64] {
        match self {
            Self::V3(m) => &m.chunk_shape,
            Self::V2(m) => &m.chunks,
        }
    }

    pub fn data_type(&self) -> &DataType {
        match self {
            Self::V3(m) => &m.data_type,
            Self::V2(m) => &m.data_type,
        }
    }

    pub fn chunk_key_encoding(&self) -> ChunkKeyEncoding {
        match self {
            Self::V3(m) => m.chunk_key_encoding,
            Self::V2(m) => ChunkKeyEncoding::V2 {
                separator: m.dimension_separator,
            },
        }
    }

    pub fn attributes(&self) -> &Map<String, Value> {
        match self {
            Self::V3(m) => &m.attributes,
            Self::V2(m) => &m.attributes,
        }
    }

    pub fn set_attributes(&mut self, attributes: Map<String, Value>) {
        match self {
            Self::V3(m) => m.attributes = attributes,
            Self::V2(m) => m.attributes = attributes,
        }
    }

    pub fn fill_value_bytes(&self) -> Result<Vec<u8>, MetadataError> {
        match self {
            Self::V3(m) => m.fill_value_bytes(),
            Self::V2(m) => m.fill_value_bytes(),
        }
    }

    /// Whether the array has a fill value: every v3 array has; a v2 array's `null` is none
    /// (unwritten elements then read as the data type's default).
    pub fn has_fill_value(&self) -> bool {
        match self {
            Self::V3(_) => true,
            Self::V2(m) => !m.fill_value.is_null(),
        }
    }

    /// The codec chain that encodes and decodes chunks of `repr`.
    pub fn codec_chain(&self, repr: &ChunkRepr) -> Result<CodecChain, MetadataError> {
        match self {
            Self::V3(m) => CodecChain::from_metadata(&m.codecs, repr),
            Self::V2(m) => CodecChain::from_v2(m, repr),
        }
    }

    /// The metadata as one JSON document: `zarr.json` for v3; `.zarray` with an `attributes`
    /// member for v2 (as zarr-python's `metadata.to_dict()`).
    pub fn to_value(&self) -> Value {
        match self {
            Self::V3(m) => m.to_value(),
            Self::V2(m) => {
                let mut doc = m.to_value();
                doc["attributes"] = Value::Object(m.attributes.clone());
                doc
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_document_of_format_2_0_parses_as_v2() {
        for doc in [
            &br#"{"zarr_format": 2, "attributes": {"a": 1}}"#[..],
            br#"{"zarr_format": 2.0, "attributes": {"a": 1}}"#,
        ] {
            match GroupMetadata::parse(doc, "g") {
                Ok(GroupMetadata::V2 { attributes }) => assert_eq!(attributes["a"], 1),
                other => panic!("{other:?}"),
            }
        }
    }
}
