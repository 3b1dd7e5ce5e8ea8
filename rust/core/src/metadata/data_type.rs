//! Data types (spec: zarr-specs v3.0 "Data types", and the registered extensions zarr-python
//! writes: numpy.datetime64, numpy.timedelta64, null_terminated_bytes, fixed_length_utf32,
//! raw_bytes, structured, string and bytes).
//!
//! The engine moves fixed-size elements as opaque bytes; the data type decides their size, how
//! a byte-order change swaps them (unit by unit, field by field), and how a fill value is
//! encoded. `string` and `bytes` elements have no fixed size and go through the
//! variable-length path instead.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::error::MetadataError;

/// The unit of a numpy datetime64 or timedelta64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    Years,
    Months,
    Weeks,
    Days,
    Hours,
    Minutes,
    Seconds,
    Milliseconds,
    Microseconds,
    Nanoseconds,
    Picoseconds,
    Femtoseconds,
    Attoseconds,
    Generic,
}

impl TimeUnit {
    const ALL: [(&'static str, TimeUnit); 14] = [
        ("Y", Self::Years),
        ("M", Self::Months),
        ("W", Self::Weeks),
        ("D", Self::Days),
        ("h", Self::Hours),
        ("m", Self::Minutes),
        ("s", Self::Seconds),
        ("ms", Self::Milliseconds),
        ("us", Self::Microseconds),
        ("ns", Self::Nanoseconds),
        ("ps", Self::Picoseconds),
        ("fs", Self::Femtoseconds),
        ("as", Self::Attoseconds),
        ("generic", Self::Generic),
    ];

    pub fn from_name(name: &str) -> Option<Self> {
        // numpy (and so zarr-python) also takes the Greek letter mu for microseconds.
        if name == "\u{3bc}s" {
            return Some(Self::Microseconds);
        }
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, u)| *u)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, u)| *u == self)
            .map_or("generic", |(n, _)| n)
    }
}

/// A field of a structured data type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Field {
    pub name: String,
    pub data_type: DataType,
    /// Byte offset within the element.
    pub offset: usize,
    /// For v2 dtypes, which give each field its own byte order: whether the field is stored
    /// big endian. `None` (v3): the bytes codec decides.
    pub big_endian: Option<bool>,
}

/// A data type. In memory, elements are always in the machine's native byte order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    /// numpy.datetime64: int64 counts of `scale` `unit`s since the epoch; NaT is i64::MIN.
    DateTime64 {
        unit: TimeUnit,
        scale: u32,
    },
    /// numpy.timedelta64: int64 counts of `scale` `unit`s; NaT is i64::MIN.
    TimeDelta64 {
        unit: TimeUnit,
        scale: u32,
    },
    /// `r<N>`: N bits of opaque data (N a multiple of 8).
    RawBits(usize),
    /// Fixed-length opaque bytes (zarr-python's raw_bytes, numpy `V<n>`).
    RawBytes(usize),
    /// Fixed-length bytes padded with NULs (numpy `S<n>`).
    NullTerminatedBytes(usize),
    /// Fixed-length UTF-32 text of this many characters (numpy `U<n>`).
    FixedUtf32(usize),
    /// A record of fields (numpy structured dtypes); the size may exceed the fields' (padding).
    Structured {
        fields: Arc<[Field]>,
        size: usize,
    },
    /// Variable-length UTF-8 text.
    String,
    /// Variable-length bytes.
    Bytes,
}

fn invalid(value: &Value, reason: impl Into<String>) -> MetadataError {
    MetadataError::invalid("data_type", value, reason)
}

fn length_bytes(value: &Value, config: &Map<String, Value>) -> Result<usize, MetadataError> {
    config
        .get("length_bytes")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
        .map(|n| n as usize)
        .ok_or_else(|| {
            invalid(
                value,
                "configuration.length_bytes must be a positive integer",
            )
        })
}

/// A run of units an element's byte order applies to: `count` units of `width` bytes each,
/// from byte `offset` of the element.
pub type SwapRun = (usize, usize, usize);

/// Reverses the bytes of each unit of `plan` (runs within one element) in `element`.
pub fn swap_in_place(element: &mut [u8], plan: &[SwapRun]) {
    for &(offset, width, count) in plan {
        for unit in element[offset..offset + width * count].chunks_exact_mut(width) {
            unit.reverse();
        }
    }
}

/// The largest element numpy can hold: a dtype's itemsize is a C `int`. Larger elements (a
/// `fixed_length_utf32` of 2**40 bytes, say) could never be read into an array, and their
/// fill value alone would be that large.
pub const MAX_ELEMENT_BYTES: usize = i32::MAX as usize;

impl DataType {
    /// Parses the v3 `data_type` field: a name, or `{name, configuration}`.
    pub fn from_metadata(value: &Value) -> Result<Self, MetadataError> {
        Self::parse_metadata(value)?.checked(value)
    }

    /// The data type, or an error when its elements are larger than numpy can hold.
    pub fn checked(self, value: &Value) -> Result<Self, MetadataError> {
        if self.size() > MAX_ELEMENT_BYTES {
            return Err(MetadataError::Unsupported {
                field: "data_type".into(),
                value: format!(
                    "{value} (elements of {} bytes: numpy holds at most {MAX_ELEMENT_BYTES})",
                    self.size()
                ),
            });
        }
        Ok(self)
    }

    fn parse_metadata(value: &Value) -> Result<Self, MetadataError> {
        let (name, config) = match value {
            Value::String(s) => (s.as_str(), Map::new()),
            Value::Object(o) => {
                let name = o
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(value, "expected a name"))?;
                let config = match o.get("configuration") {
                    None | Some(Value::Null) => Map::new(),
                    Some(Value::Object(c)) => c.clone(),
                    Some(_) => return Err(invalid(value, "configuration must be an object")),
                };
                (name, config)
            }
            _ => return Err(invalid(value, "expected a string or an object")),
        };
        if let Some(dt) = Self::from_name(name) {
            if !config.is_empty() {
                return Err(MetadataError::unsupported("data_type", value));
            }
            return Ok(dt);
        }
        let time = |config: &Map<String, Value>| -> Result<(TimeUnit, u32), MetadataError> {
            let unit = config
                .get("unit")
                .and_then(Value::as_str)
                .and_then(TimeUnit::from_name)
                .ok_or_else(|| invalid(value, "configuration.unit must be a numpy time unit"))?;
            let scale = match config.get("scale_factor") {
                None => 1,
                // numpy's datetime units hold a scale of up to 2^31 - 1.
                Some(v) => v
                    .as_u64()
                    .filter(|s| (1..=i32::MAX as u64).contains(s))
                    .ok_or_else(|| {
                        invalid(
                            value,
                            "configuration.scale_factor must be from 1 to 2147483647",
                        )
                    })? as u32,
            };
            Ok((unit, scale))
        };
        Ok(match name {
            "numpy.datetime64" => {
                let (unit, scale) = time(&config)?;
                Self::DateTime64 { unit, scale }
            }
            "numpy.timedelta64" => {
                let (unit, scale) = time(&config)?;
                Self::TimeDelta64 { unit, scale }
            }
            "null_terminated_bytes" => Self::NullTerminatedBytes(length_bytes(value, &config)?),
            "raw_bytes" => Self::RawBytes(length_bytes(value, &config)?),
            "fixed_length_utf32" => {
                let n = length_bytes(value, &config)?;
                if n % 4 != 0 {
                    return Err(invalid(value, "length_bytes must be a multiple of 4"));
                }
                Self::FixedUtf32(n / 4)
            }
            "structured" => Self::structured_from_v3(value, &config)?,
            "string" if config.is_empty() => Self::String,
            "bytes" | "variable_length_bytes" if config.is_empty() => Self::Bytes,
            raw if raw.starts_with('r') && config.is_empty() => {
                let bits: usize = raw[1..]
                    .parse()
                    .map_err(|_| MetadataError::unsupported("data_type", value))?;
                if bits == 0 || bits % 8 != 0 {
                    return Err(invalid(value, "raw bits must be a positive multiple of 8"));
                }
                Self::RawBits(bits / 8)
            }
            _ => return Err(MetadataError::unsupported("data_type", value)),
        })
    }

    fn structured_from_v3(
        value: &Value,
        config: &Map<String, Value>,
    ) -> Result<Self, MetadataError> {
        let fields_json = config
            .get("fields")
            .and_then(Value::as_array)
            .filter(|f| !f.is_empty())
            .ok_or_else(|| invalid(value, "configuration.fields must be a list of fields"))?;
        let mut fields: Vec<Field> = Vec::new();
        let mut offset = 0usize;
        for f in fields_json {
            let (name, dt) = match f {
                Value::Array(pair) if pair.len() == 2 => (pair[0].as_str(), &pair[1]),
                Value::Object(o) => (
                    o.get("name").and_then(Value::as_str),
                    o.get("data_type").unwrap_or(&Value::Null),
                ),
                _ => (None, &Value::Null),
            };
            let name =
                name.ok_or_else(|| invalid(value, "each field needs a name and a data type"))?;
            if fields.iter().any(|f| f.name == name) {
                return Err(invalid(value, "field names must differ"));
            }
            let data_type = Self::from_metadata(dt)?;
            if data_type.is_variable() {
                return Err(invalid(value, "fields must have a fixed size"));
            }
            let size = data_type.size();
            fields.push(Field {
                name: name.to_string(),
                data_type,
                offset,
                big_endian: None,
            });
            offset = offset.saturating_add(size);
        }
        Ok(Self::Structured {
            fields: fields.into(),
            size: offset,
        })
    }

    /// A core data type by name.
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

    /// The v3 name (also numpy's name for the core types).
    pub fn name(&self) -> &'static str {
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
            Self::DateTime64 { .. } => "numpy.datetime64",
            Self::TimeDelta64 { .. } => "numpy.timedelta64",
            Self::RawBits(_) => "raw bits",
            Self::RawBytes(_) => "raw_bytes",
            Self::NullTerminatedBytes(_) => "null_terminated_bytes",
            Self::FixedUtf32(_) => "fixed_length_utf32",
            Self::Structured { .. } => "structured",
            Self::String => "string",
            Self::Bytes => "bytes",
        }
    }

    /// The v3 `data_type` metadata.
    pub fn to_metadata(&self) -> Value {
        match self {
            Self::DateTime64 { unit, scale } | Self::TimeDelta64 { unit, scale } => json!({
                "name": self.name(),
                "configuration": {"unit": unit.name(), "scale_factor": scale},
            }),
            Self::RawBits(n) => Value::String(format!("r{}", n * 8)),
            Self::RawBytes(n) | Self::NullTerminatedBytes(n) => {
                json!({"name": self.name(), "configuration": {"length_bytes": n}})
            }
            Self::FixedUtf32(n) => {
                json!({"name": self.name(), "configuration": {"length_bytes": n * 4}})
            }
            Self::Structured { fields, .. } => {
                let fields: Vec<Value> = fields
                    .iter()
                    .map(|f| json!([f.name, f.data_type.to_metadata()]))
                    .collect();
                json!({"name": "structured", "configuration": {"fields": fields}})
            }
            _ => Value::String(self.name().to_string()),
        }
    }

    /// The numpy dtype of the decoded elements, as numpy's `np.dtype()` takes it (a string,
    /// or a list of `[name, dtype]` for records). Variable-length types give "string" and
    /// "bytes", which the Python layer maps to its string and object dtypes.
    pub fn numpy_dtype(&self) -> Value {
        let native = if cfg!(target_endian = "little") {
            '<'
        } else {
            '>'
        };
        match self {
            Self::DateTime64 { unit, scale } | Self::TimeDelta64 { unit, scale } => {
                let kind = if matches!(self, Self::DateTime64 { .. }) {
                    'M'
                } else {
                    'm'
                };
                let unit = if *unit == TimeUnit::Generic {
                    String::new()
                } else if *scale == 1 {
                    format!("[{}]", unit.name())
                } else {
                    format!("[{scale}{}]", unit.name())
                };
                Value::String(format!("{native}{kind}8{unit}"))
            }
            Self::RawBits(n) | Self::RawBytes(n) => Value::String(format!("|V{n}")),
            Self::NullTerminatedBytes(n) => Value::String(format!("|S{n}")),
            Self::FixedUtf32(n) => Value::String(format!("{native}U{n}")),
            Self::Structured { fields, size } => json!({
                "names": fields.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
                "formats": fields.iter().map(|f| f.data_type.numpy_dtype()).collect::<Vec<_>>(),
                "offsets": fields.iter().map(|f| f.offset).collect::<Vec<_>>(),
                "itemsize": size,
            }),
            _ => Value::String(self.name().to_string()),
        }
    }

    /// Whether elements have no fixed size (string, bytes).
    pub fn is_variable(&self) -> bool {
        matches!(self, Self::String | Self::Bytes)
    }

    /// Bytes per element. Variable-length types have no fixed size and report 0: the fixed-size
    /// paths refuse them before asking.
    pub fn size(&self) -> usize {
        match self {
            Self::Bool | Self::Int8 | Self::UInt8 => 1,
            Self::Int16 | Self::UInt16 | Self::Float16 => 2,
            Self::Int32 | Self::UInt32 | Self::Float32 => 4,
            Self::Int64 | Self::UInt64 | Self::Float64 | Self::Complex64 => 8,
            Self::DateTime64 { .. } | Self::TimeDelta64 { .. } => 8,
            Self::Complex128 => 16,
            Self::RawBits(n) | Self::RawBytes(n) | Self::NullTerminatedBytes(n) => *n,
            Self::FixedUtf32(n) => 4 * n,
            Self::Structured { size, .. } => *size,
            Self::String | Self::Bytes => 0,
        }
    }

    /// How a byte-order change acts on one element: runs of units whose bytes it reverses,
    /// each (offset, width, count) — `count` units of `width` bytes from `offset` — in order.
    /// Empty for types with no byte order. A run, not a unit each, so that a UTF-32 string of
    /// a million characters costs one entry.
    pub fn swap_units(&self) -> Vec<SwapRun> {
        let mut units = Vec::new();
        self.push_swap_units(0, None, &mut units);
        units
    }

    /// Like [`swap_units`](Self::swap_units), for stored bytes in `big_endian` order when that
    /// is given per field (v2 records): the units that differ from the machine's order.
    pub fn push_swap_units(&self, base: usize, big_endian: Option<bool>, out: &mut Vec<SwapRun>) {
        let native_big = cfg!(target_endian = "big");
        // With an explicit order, a unit needs swapping only if it differs from the machine's.
        if big_endian == Some(native_big) && !matches!(self, Self::Structured { .. }) {
            return;
        }
        match self {
            other if !other.has_byte_order() => {}
            Self::Complex64 => out.push((base, 4, 2)),
            Self::Complex128 => out.push((base, 8, 2)),
            Self::FixedUtf32(n) => out.push((base, 4, *n)),
            Self::Structured { fields, .. } => {
                for f in fields.iter() {
                    f.data_type
                        .push_swap_units(base + f.offset, f.big_endian.or(big_endian), out);
                }
            }
            other => out.push((base, other.size(), 1)),
        }
    }

    /// Whether a byte order means anything for this type (its elements have multi-byte units).
    pub fn has_byte_order(&self) -> bool {
        match self {
            Self::RawBits(_)
            | Self::RawBytes(_)
            | Self::NullTerminatedBytes(_)
            | Self::Bool
            | Self::Int8
            | Self::UInt8
            | Self::String
            | Self::Bytes
            | Self::FixedUtf32(0) => false,
            Self::Structured { fields, .. } => fields.iter().any(|f| f.data_type.has_byte_order()),
            _ => true,
        }
    }

    /// Whether elements of the two types are the same bytes in memory (native endian): the
    /// same type, or records whose fields differ only in the byte order v2 stores them in.
    pub fn same_in_memory(&self, other: &DataType) -> bool {
        match (self, other) {
            (
                Self::Structured { fields, size },
                Self::Structured {
                    fields: others,
                    size: other_size,
                },
            ) => {
                size == other_size
                    && fields.len() == others.len()
                    && fields.iter().zip(others.iter()).all(|(f, g)| {
                        f.name == g.name
                            && f.offset == g.offset
                            && f.data_type.same_in_memory(&g.data_type)
                    })
            }
            _ => self == other,
        }
    }

    /// Whether the type is one of the core numeric types (what numeric filters accept).
    pub fn is_numeric(&self) -> bool {
        Self::from_name(self.name()).is_some_and(|d| d != Self::Bool)
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Structured { .. }
            | Self::DateTime64 { .. }
            | Self::TimeDelta64 { .. }
            | Self::RawBytes(_)
            | Self::NullTerminatedBytes(_)
            | Self::FixedUtf32(_)
            | Self::RawBits(_) => write!(f, "{}", self.to_metadata()),
            _ => f.write_str(self.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(DataType::from_metadata(&dt.to_metadata()).unwrap(), dt);
        }
        assert!(DataType::from_metadata(&json!("float128")).is_err());
        assert!(
            DataType::from_metadata(&json!({"name": "int8", "configuration": {"x": 1}})).is_err()
        );
        assert_eq!(DataType::Complex64.size(), 8);
        assert_eq!(DataType::Complex64.swap_units(), vec![(0, 4, 2)]);
    }

    #[test]
    fn extension_types() {
        let cases = [
            (
                json!({"name": "numpy.datetime64", "configuration": {"unit": "s", "scale_factor": 1}}),
                8,
                json!("<M8[s]"),
            ),
            (
                json!({"name": "numpy.timedelta64", "configuration": {"unit": "ms", "scale_factor": 10}}),
                8,
                json!("<m8[10ms]"),
            ),
            (
                json!({"name": "null_terminated_bytes", "configuration": {"length_bytes": 5}}),
                5,
                json!("|S5"),
            ),
            (
                json!({"name": "fixed_length_utf32", "configuration": {"length_bytes": 12}}),
                12,
                json!("<U3"),
            ),
            (
                json!({"name": "raw_bytes", "configuration": {"length_bytes": 4}}),
                4,
                json!("|V4"),
            ),
            (json!("r24"), 3, json!("|V3")),
            (json!("string"), 0, json!("string")),
            (json!("variable_length_bytes"), 0, json!("bytes")),
        ];
        let micro = json!({"name": "numpy.datetime64", "configuration": {"unit": "\u{3bc}s"}});
        assert_eq!(
            DataType::from_metadata(&micro)
                .map(|dt| dt.numpy_dtype())
                .ok(),
            Some(json!("<M8[us]"))
        );
        // Scales numpy cannot hold.
        for scale in [0u64, 1 << 31] {
            let meta = json!({"name": "numpy.datetime64", "configuration": {"unit": "s", "scale_factor": scale}});
            assert!(DataType::from_metadata(&meta).is_err(), "{meta}");
        }
        for (meta, size, numpy) in cases {
            let dt = DataType::from_metadata(&meta).unwrap();
            assert_eq!(dt.size(), size, "{meta}");
            assert_eq!(dt.numpy_dtype(), numpy, "{meta}");
            assert_eq!(DataType::from_metadata(&dt.to_metadata()).unwrap(), dt);
        }
        let rec = DataType::from_metadata(
            &json!({"name": "structured", "configuration": {"fields": [["a", "int32"], ["b", "complex64"]]}}),
        )
        .unwrap();
        assert_eq!(rec.size(), 12);
        assert_eq!(rec.swap_units(), vec![(0, 4, 1), (4, 4, 2)]);
        assert_eq!(DataType::FixedUtf32(2).swap_units(), vec![(0, 4, 2)]);
        assert!(DataType::NullTerminatedBytes(3).swap_units().is_empty());
        // A run, not an entry per character: no allocation the size of the element.
        assert_eq!(
            DataType::FixedUtf32(1 << 40).swap_units(),
            vec![(0, 4, 1 << 40)]
        );
        assert!(!DataType::FixedUtf32(0).has_byte_order());
        for dt in [DataType::FixedUtf32(3), DataType::Complex64, rec.clone()] {
            assert_eq!(dt.has_byte_order(), !dt.swap_units().is_empty(), "{dt}");
        }
        assert!(DataType::from_metadata(&json!("r7")).is_err());
    }
}
