//! numpy dtype descriptions, as Zarr v2 writes them (`"<i4"`, `"|S5"`, `">M8[ms]"`,
//! `[["a", "<i4"], ["b", ">f8"]]`) and numcodecs filters take them (`dtype`, `astype`).
//!
//! A v2 dtype carries the byte order of the stored elements, which in v3 is the bytes codec's
//! business: parsing gives the data type and, separately, that order.

use serde_json::Value;

use super::data_type::{DataType, Field, SwapRun, TimeUnit};
use crate::error::MetadataError;

/// A parsed numpy dtype.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumpyDtype {
    pub data_type: DataType,
    /// The byte order of the stored elements: `Some(true)` big, `Some(false)` little, `None`
    /// when it means nothing (`|`, one-byte types) or varies by field (records).
    pub big_endian: Option<bool>,
    /// `|O`: Python objects, which a v2 array stores through an object codec (vlen-utf8,
    /// vlen-bytes) that decides what they are.
    pub is_object: bool,
}

impl NumpyDtype {
    /// The units of an element that are stored in the other byte order than the machine's.
    pub fn swap_plan(&self) -> Vec<SwapRun> {
        let mut plan = Vec::new();
        let order = if self.data_type.has_byte_order() {
            self.big_endian
        } else {
            None
        };
        if matches!(self.data_type, DataType::Structured { .. }) || order.is_some() {
            self.data_type.push_swap_units(0, order, &mut plan);
        }
        plan
    }
}

fn invalid(value: &Value, reason: &str) -> MetadataError {
    MetadataError::invalid("dtype", value, reason)
}

/// Parses a dtype: a string, or a list of `[name, dtype]` fields for a record.
pub fn parse(value: &Value) -> Result<NumpyDtype, MetadataError> {
    match value {
        Value::String(s) => parse_str(s).ok_or_else(|| MetadataError::unsupported("dtype", value)),
        Value::Array(fields) => parse_fields(value, fields),
        _ => Err(invalid(value, "expected a string or a list of fields")),
    }
}

fn parse_fields(value: &Value, fields: &[Value]) -> Result<NumpyDtype, MetadataError> {
    if fields.is_empty() {
        return Err(invalid(value, "a record needs at least one field"));
    }
    let mut out: Vec<Field> = Vec::new();
    let mut offset = 0usize;
    for f in fields {
        let parts = f
            .as_array()
            .filter(|p| p.len() == 2 || p.len() == 3)
            .ok_or_else(|| {
                invalid(
                    value,
                    "each field is [name, dtype] (or [name, dtype, shape])",
                )
            })?;
        let name = parts[0]
            .as_str()
            .ok_or_else(|| invalid(value, "field names are strings"))?;
        if parts.len() == 3 {
            // A field that is itself an array (numpy subarray dtype).
            return Err(MetadataError::Unsupported {
                field: "dtype".into(),
                value: format!("{f} (record fields with a shape)"),
            });
        }
        if out.iter().any(|f| f.name == name) {
            return Err(invalid(value, "field names must differ"));
        }
        let field = parse(&parts[1])?;
        if field.is_object || field.data_type.is_variable() {
            return Err(invalid(value, "record fields must have a fixed size"));
        }
        let size = field.data_type.size();
        out.push(Field {
            name: name.to_string(),
            data_type: field.data_type,
            offset,
            big_endian: field.big_endian,
        });
        offset = offset.saturating_add(size);
    }
    Ok(NumpyDtype {
        data_type: DataType::Structured {
            fields: out.into(),
            size: offset,
        },
        big_endian: None,
        is_object: false,
    })
}

fn parse_str(s: &str) -> Option<NumpyDtype> {
    let (order, rest) = match s.chars().next()? {
        c @ ('<' | '>' | '|' | '=') => (Some(c), &s[1..]),
        _ => (None, s),
    };
    let big_endian = match order {
        Some('<') => Some(false),
        Some('>') => Some(true),
        Some('=') | None => Some(cfg!(target_endian = "big")),
        _ => None,
    };
    let kind = rest.chars().next()?;
    // The kind is any character a document holds, not always one byte long.
    let body = &rest[kind.len_utf8()..];
    let number = |t: &str| t.parse::<usize>().ok();
    let data_type = match kind {
        'b' if body == "1" => DataType::Bool,
        '?' if body.is_empty() => DataType::Bool,
        'i' => match number(body)? {
            1 => DataType::Int8,
            2 => DataType::Int16,
            4 => DataType::Int32,
            8 => DataType::Int64,
            _ => return None,
        },
        'u' => match number(body)? {
            1 => DataType::UInt8,
            2 => DataType::UInt16,
            4 => DataType::UInt32,
            8 => DataType::UInt64,
            _ => return None,
        },
        'f' => match number(body)? {
            2 => DataType::Float16,
            4 => DataType::Float32,
            8 => DataType::Float64,
            _ => return None,
        },
        'c' => match number(body)? {
            8 => DataType::Complex64,
            16 => DataType::Complex128,
            _ => return None,
        },
        'M' | 'm' => {
            let unit_part = body.strip_prefix('8')?;
            let (unit, scale) = if unit_part.is_empty() {
                (TimeUnit::Generic, 1)
            } else {
                let inner = unit_part.strip_prefix('[')?.strip_suffix(']')?;
                let digits: String = inner.chars().take_while(|c| c.is_ascii_digit()).collect();
                let scale = if digits.is_empty() {
                    1
                } else {
                    // numpy's limits: a positive scale below 2^31.
                    digits
                        .parse::<u32>()
                        .ok()
                        .filter(|s| (1..=i32::MAX as u32).contains(s))?
                };
                (TimeUnit::from_name(&inner[digits.len()..])?, scale)
            };
            if kind == 'M' {
                DataType::DateTime64 { unit, scale }
            } else {
                DataType::TimeDelta64 { unit, scale }
            }
        }
        'S' | 'a' => DataType::NullTerminatedBytes(number(body).filter(|n| *n > 0)?),
        // Lengths whose bytes a usize cannot count are refused here; the rest are checked
        // against what numpy holds once parsed (`DataType::checked`).
        'U' => DataType::FixedUtf32(number(body).filter(|n| *n > 0 && n.checked_mul(4).is_some())?),
        'V' => DataType::RawBytes(number(body).filter(|n| *n > 0)?),
        'O' if body.is_empty() => {
            return Some(NumpyDtype {
                data_type: DataType::String,
                big_endian: None,
                is_object: true,
            })
        }
        _ => return None,
    };
    let big_endian = if data_type.has_byte_order() {
        big_endian
    } else {
        None
    };
    Some(NumpyDtype {
        data_type,
        big_endian,
        is_object: false,
    })
}

/// The dtype description of `data_type` stored in the given byte order, as v2 writes it.
pub fn to_value(data_type: &DataType, big_endian: bool) -> Value {
    let order = if !data_type.has_byte_order() {
        '|'
    } else if big_endian {
        '>'
    } else {
        '<'
    };
    let simple = |code: String| Value::String(format!("{order}{code}"));
    match data_type {
        DataType::Bool => simple("b1".into()),
        DataType::Int8 => simple("i1".into()),
        DataType::Int16 => simple("i2".into()),
        DataType::Int32 => simple("i4".into()),
        DataType::Int64 => simple("i8".into()),
        DataType::UInt8 => simple("u1".into()),
        DataType::UInt16 => simple("u2".into()),
        DataType::UInt32 => simple("u4".into()),
        DataType::UInt64 => simple("u8".into()),
        DataType::Float16 => simple("f2".into()),
        DataType::Float32 => simple("f4".into()),
        DataType::Float64 => simple("f8".into()),
        DataType::Complex64 => simple("c8".into()),
        DataType::Complex128 => simple("c16".into()),
        DataType::DateTime64 { unit, scale } | DataType::TimeDelta64 { unit, scale } => {
            let kind = if matches!(data_type, DataType::DateTime64 { .. }) {
                'M'
            } else {
                'm'
            };
            let unit = match (unit, scale) {
                (TimeUnit::Generic, _) => String::new(),
                (u, 1) => format!("[{}]", u.name()),
                (u, s) => format!("[{s}{}]", u.name()),
            };
            simple(format!("{kind}8{unit}"))
        }
        DataType::NullTerminatedBytes(n) => simple(format!("S{n}")),
        DataType::FixedUtf32(n) => simple(format!("U{n}")),
        DataType::RawBytes(n) | DataType::RawBits(n) => simple(format!("V{n}")),
        DataType::Structured { fields, .. } => Value::Array(
            fields
                .iter()
                .map(|f| {
                    serde_json::json!([
                        f.name,
                        to_value(&f.data_type, f.big_endian.unwrap_or(big_endian))
                    ])
                })
                .collect(),
        ),
        DataType::String | DataType::Bytes => Value::String("|O".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars() {
        let d = parse(&json!("<i4")).unwrap();
        assert_eq!(
            (d.data_type.clone(), d.big_endian),
            (DataType::Int32, Some(false))
        );
        let d = parse(&json!(">f8")).unwrap();
        assert_eq!(d.big_endian, Some(true));
        assert_eq!(d.swap_plan().is_empty(), cfg!(target_endian = "big"));
        let d = parse(&json!("|u1")).unwrap();
        assert_eq!((d.data_type.clone(), d.big_endian), (DataType::UInt8, None));
        assert_eq!(parse(&json!("|b1")).unwrap().data_type, DataType::Bool);
        assert_eq!(
            parse(&json!("<M8[10ms]")).unwrap().data_type,
            DataType::DateTime64 {
                unit: TimeUnit::Milliseconds,
                scale: 10
            }
        );
        assert_eq!(
            parse(&json!("|S5")).unwrap().data_type,
            DataType::NullTerminatedBytes(5)
        );
        let u = parse(&json!(">U3")).unwrap();
        assert_eq!(
            (u.data_type.clone(), u.big_endian),
            (DataType::FixedUtf32(3), Some(true))
        );
        assert!(parse(&json!("|O")).unwrap().is_object);
        // Kinds of more than one byte in UTF-8 are refused, not sliced through (found by
        // the metadata fuzz target).
        for bad in [
            "<i3",
            "x",
            "<f16",
            "<M8[lightyears]",
            // Scales numpy cannot hold.
            "<M8[0s]",
            ">m8[2147483648ms]",
            "|S0",
            "\u{2ea}13",
            "<\u{e9}8",
            "|\u{1f600}",
        ] {
            assert!(parse(&json!(bad)).is_err(), "{bad}");
        }
        for s in [
            "<i4", ">u8", "|b1", "<c16", "<M8[ns]", ">m8[10s]", "|S7", "<U2", "|V3",
        ] {
            let d = parse(&json!(s)).unwrap();
            assert_eq!(to_value(&d.data_type, d.big_endian == Some(true)), json!(s));
        }
    }

    #[test]
    fn records() {
        let d = parse(&json!([["a", "<i4"], ["b", ">f8"], ["c", "|S2"]])).unwrap();
        assert_eq!(d.data_type.size(), 14);
        // Only the big-endian field differs from a little-endian machine.
        if cfg!(target_endian = "little") {
            assert_eq!(d.swap_plan(), vec![(4, 8, 1)]);
        }
        assert_eq!(
            to_value(&d.data_type, false),
            json!([["a", "<i4"], ["b", ">f8"], ["c", "|S2"]])
        );
        assert!(parse(&json!([["a", "<i4", [2]]])).is_err());
    }
}
