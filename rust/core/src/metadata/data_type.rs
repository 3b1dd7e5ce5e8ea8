//! Zarr v3 core data types (spec: zarr-specs v3.0 "Data types").
//!
//! The engine moves elements as opaque bytes of a fixed size; the data type only decides that
//! size, the unit that byte-order conversion swaps, and how a fill value is encoded.

use crate::error::MetadataError;

/// A Zarr v3 core data type. In memory, elements are always in the machine's native byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Float16,
    Float32,
    Float64,
    Complex64,
    Complex128,
}

impl DataType {
    /// Parses the v3 `data_type` field (a name string, or `{name, configuration}` with an
    /// empty configuration).
    pub fn from_metadata(value: &serde_json::Value) -> Result<Self, MetadataError> {
        let name = match value {
            serde_json::Value::String(s) => s.as_str(),
            serde_json::Value::Object(o) => {
                let name = o
                    .get("name")
                    .and_then(|n| n.as_str())
                    .ok_or_else(|| MetadataError::invalid("data_type", value, "expected a name"))?;
                if let Some(cfg) = o.get("configuration") {
                    if cfg.as_object().is_some_and(|c| !c.is_empty()) {
                        return Err(MetadataError::unsupported("data_type", value));
                    }
                }
                name
            }
            _ => {
                return Err(MetadataError::invalid(
                    "data_type",
                    value,
                    "expected a string",
                ))
            }
        };
        Self::from_name(name).ok_or_else(|| MetadataError::unsupported("data_type", value))
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "bool" => Self::Bool,
            "int8" => Self::Int8,
            "int16" => Self::Int16,
            "int32" => Self::Int32,
            "int64" => Self::Int64,
            "uint8" => Self::UInt8,
            "uint16" => Self::UInt16,
            "uint32" => Self::UInt32,
            "uint64" => Self::UInt64,
            "float16" => Self::Float16,
            "float32" => Self::Float32,
            "float64" => Self::Float64,
            "complex64" => Self::Complex64,
            "complex128" => Self::Complex128,
            _ => return None,
        })
    }

    /// The v3 name, which is also numpy's name for the type.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bool => "bool",
            Self::Int8 => "int8",
            Self::Int16 => "int16",
            Self::Int32 => "int32",
            Self::Int64 => "int64",
            Self::UInt8 => "uint8",
            Self::UInt16 => "uint16",
            Self::UInt32 => "uint32",
            Self::UInt64 => "uint64",
            Self::Float16 => "float16",
            Self::Float32 => "float32",
            Self::Float64 => "float64",
            Self::Complex64 => "complex64",
            Self::Complex128 => "complex128",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::Bool | Self::Int8 | Self::UInt8 => 1,
            Self::Int16 | Self::UInt16 | Self::Float16 => 2,
            Self::Int32 | Self::UInt32 | Self::Float32 => 4,
            Self::Int64 | Self::UInt64 | Self::Float64 | Self::Complex64 => 8,
            Self::Complex128 => 16,
        }
    }

    /// The width of the units whose bytes an endianness change reverses: a complex number is two
    /// floats, each swapped on its own.
    pub fn swap_unit(self) -> usize {
        match self {
            Self::Complex64 => 4,
            Self::Complex128 => 8,
            other => other.size(),
        }
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_round_trip() {
        for name in [
            "bool",
            "int8",
            "int16",
            "int32",
            "int64",
            "uint8",
            "uint16",
            "uint32",
            "uint64",
            "float16",
            "float32",
            "float64",
            "complex64",
            "complex128",
        ] {
            let dt = DataType::from_metadata(&json!(name)).unwrap();
            assert_eq!(dt.name(), name);
            assert_eq!(DataType::from_metadata(&json!({"name": name})).unwrap(), dt);
        }
        assert!(DataType::from_metadata(&json!("float128")).is_err());
        assert!(
            DataType::from_metadata(&json!({"name": "int8", "configuration": {"x": 1}})).is_err()
        );
        assert_eq!(DataType::Complex64.size(), 8);
        assert_eq!(DataType::Complex64.swap_unit(), 4);
    }
}
