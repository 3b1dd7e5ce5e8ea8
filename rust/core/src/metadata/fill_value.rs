//! Fill values: the JSON encodings of the v3 spec, to and from one element's native-endian bytes.
//!
//! Floats take a number, "NaN", "Infinity", "-Infinity", or "0x…" (the big-endian hex of the
//! IEEE bits, which carries NaN payloads exactly); complex numbers take `[re, im]`, each
//! encoded as a float. Times take an integer or "NaT"; fixed-length bytes, raw bytes and
//! records take base64; fixed-length text takes a string. For the variable-length types the
//! "element" is the value's bytes (UTF-8 for strings).

use base64::Engine;
use half::f16;
use serde_json::Value;

use super::DataType;
use crate::error::MetadataError;

fn invalid(dt: &DataType, value: &Value, reason: &str) -> MetadataError {
    MetadataError::invalid("fill_value", value, format!("{reason} for data type {dt}"))
}

/// Decodes standard base64 (as zarr-python writes byte fill values).
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

pub fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `bytes` padded with zeros (or cut) to `n`.
fn padded(mut bytes: Vec<u8>, n: usize) -> Vec<u8> {
    bytes.resize(n, 0);
    bytes
}

/// Parses a fill value into the native-endian bytes of one element of `dt`.
pub fn parse(dt: &DataType, value: &Value) -> Result<Vec<u8>, MetadataError> {
    use DataType::*;
    let n = dt.size();
    // zarr-python 2 wrote 0 as the fill value of byte and text types: all zeros.
    let is_zero = value.as_u64() == Some(0);
    match dt {
        DateTime64 { .. } | TimeDelta64 { .. } => {
            return match value {
                Value::String(s) if s == "NaT" => Ok(i64::MIN.to_ne_bytes().to_vec()),
                Value::Number(num) => num
                    .as_i64()
                    .map(|v| v.to_ne_bytes().to_vec())
                    .ok_or_else(|| invalid(dt, value, "expected a 64-bit integer or \"NaT\"")),
                _ => Err(invalid(dt, value, "expected an integer or \"NaT\"")),
            }
        }
        RawBits(_) | RawBytes(_) | NullTerminatedBytes(_) | Structured { .. } => {
            return match value {
                _ if is_zero => Ok(vec![0u8; n]),
                // Only text may be shorter (zarr-python leaves out an S fill's trailing
                // NULs); a record's or raw bytes' fill holds every byte.
                Value::String(s) => base64_decode(s)
                    .filter(|b| {
                        b.len() == n || (b.len() < n && matches!(dt, NullTerminatedBytes(_)))
                    })
                    .map(|b| padded(b, n))
                    .ok_or_else(|| {
                        invalid(dt, value, &format!("expected base64 of at most {n} bytes"))
                    }),
                // The spec's form for raw bits: one integer per byte.
                Value::Array(items) if items.len() == n => items
                    .iter()
                    .map(|v| v.as_u64().filter(|b| *b < 256).map(|b| b as u8))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| invalid(dt, value, "expected integers 0..=255")),
                _ => Err(invalid(dt, value, "expected a base64 string")),
            };
        }
        FixedUtf32(chars) => {
            return match value {
                _ if is_zero => Ok(vec![0u8; n]),
                // Lone surrogates too (a name os.fsdecode made): numpy's U strings hold them.
                // A bare NaN or Infinity is the text Python gives it, as zarr-python reads it.
                Value::String(s) if text_points(s).len() <= *chars => {
                    let points = text_points(s);
                    let units: Vec<u8> = points.iter().flat_map(|p| p.to_ne_bytes()).collect();
                    Ok(padded(units, n))
                }
                _ => Err(invalid(
                    dt,
                    value,
                    &format!("expected a string of at most {chars} characters"),
                )),
            };
        }
        String => {
            return match value {
                // UTF-8 cannot hold a lone surrogate (nor can zarr-python encode one).
                Value::String(s) => text_points(s)
                    .into_iter()
                    .map(char::from_u32)
                    .collect::<Option<std::string::String>>()
                    .map(std::string::String::into_bytes)
                    .ok_or_else(|| {
                        invalid(dt, value, "a lone surrogate cannot be stored as UTF-8")
                    }),
                Value::Number(num) => Ok(num.to_string().into_bytes()),
                Value::Null => Ok(Vec::new()),
                _ => Err(invalid(dt, value, "expected a string")),
            };
        }
        Bytes => {
            return match value {
                Value::String(s) => {
                    base64_decode(s).ok_or_else(|| invalid(dt, value, "expected a base64 string"))
                }
                // zarrs writes the bytes as a list of integers.
                Value::Array(items) => items
                    .iter()
                    .map(|v| v.as_u64().filter(|b| *b < 256).map(|b| b as u8))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| invalid(dt, value, "expected integers 0..=255")),
                Value::Null => Ok(Vec::new()),
                _ if is_zero => Ok(Vec::new()),
                _ => Err(invalid(dt, value, "expected a base64 string")),
            };
        }
        _ => {}
    }
    let int = |min: i128, max: i128| -> Result<i128, MetadataError> {
        let v = match value {
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    i as i128
                } else if let Some(u) = n.as_u64() {
                    u as i128
                } else if let Ok(i) = n.to_string().parse::<i128>() {
                    // An integer beyond 64 bits (its text is kept): out of range below, where
                    // as a double it could round into the range (-2^63 - 1 to -2^63).
                    i
                } else {
                    // Some writers store integral fill values as floats (0.0).
                    let f = super::json::number_as_f64(n);
                    if f.fract() != 0.0 || !f.is_finite() {
                        return Err(invalid(dt, value, "expected an integer"));
                    }
                    f as i128
                }
            }
            _ => return Err(invalid(dt, value, "expected an integer")),
        };
        if v < min || v > max {
            return Err(invalid(dt, value, "out of range"));
        }
        Ok(v)
    };
    Ok(match dt {
        Bool => match value {
            Value::Bool(b) => vec![*b as u8],
            Value::Number(n) if matches!(n.as_u64(), Some(0 | 1)) => {
                vec![n.as_u64().unwrap_or(0) as u8]
            }
            _ => return Err(invalid(dt, value, "expected true or false")),
        },
        Int8 => (int(i8::MIN.into(), i8::MAX.into())? as i8)
            .to_ne_bytes()
            .to_vec(),
        Int16 => (int(i16::MIN.into(), i16::MAX.into())? as i16)
            .to_ne_bytes()
            .to_vec(),
        Int32 => (int(i32::MIN.into(), i32::MAX.into())? as i32)
            .to_ne_bytes()
            .to_vec(),
        Int64 => (int(i64::MIN.into(), i64::MAX.into())? as i64)
            .to_ne_bytes()
            .to_vec(),
        UInt8 => (int(0, u8::MAX.into())? as u8).to_ne_bytes().to_vec(),
        UInt16 => (int(0, u16::MAX.into())? as u16).to_ne_bytes().to_vec(),
        UInt32 => (int(0, u32::MAX.into())? as u32).to_ne_bytes().to_vec(),
        UInt64 => (int(0, u64::MAX.into())? as u64).to_ne_bytes().to_vec(),
        Float16 => float_bits(dt, value, 2)?,
        Float32 => float_bits(dt, value, 4)?,
        Float64 => float_bits(dt, value, 8)?,
        Complex64 | Complex128 => {
            let half = dt.size() / 2;
            match value {
                Value::Array(parts) if parts.len() == 2 => {
                    let mut out = float_bits(dt, &parts[0], half)?;
                    out.extend(float_bits(dt, &parts[1], half)?);
                    out
                }
                _ => return Err(invalid(dt, value, "expected [real, imaginary]")),
            }
        }
        _ => return Err(MetadataError::unsupported("fill_value", value)),
    })
}

/// One float of `size` bytes (2, 4 or 8) from its JSON encoding, as native-endian bytes.
fn float_bits(dt: &DataType, value: &Value, size: usize) -> Result<Vec<u8>, MetadataError> {
    let f = match value {
        Value::Number(n) => super::json::number_as_f64(n),
        Value::String(s) => match s.as_str() {
            // The strings of the spec, or the bare tokens Python's json writes (read as
            // markers, see `metadata::json`).
            "NaN" | super::json::NAN => f64::NAN,
            "Infinity" | super::json::INFINITY => f64::INFINITY,
            "-Infinity" | super::json::NEG_INFINITY => f64::NEG_INFINITY,
            hex if hex.starts_with("0x") => {
                let digits = &hex[2..];
                if ![4, 8, 16].contains(&digits.len()) {
                    return Err(invalid(dt, value, "expected 0x and 4, 8 or 16 hex digits"));
                }
                // (`from_str_radix` would take a sign too.)
                if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(invalid(dt, value, "bad hex digits"));
                }
                let bits = u64::from_str_radix(digits, 16)
                    .map_err(|_| invalid(dt, value, "bad hex digits"))?;
                // The element's own bits, NaN payloads and all; or, as zarr-python reads
                // them, the bits of a float16, float32 or float64 of another width, converted.
                match (digits.len(), size) {
                    (4, 2) => return Ok((bits as u16).to_ne_bytes().to_vec()),
                    (8, 4) => return Ok((bits as u32).to_ne_bytes().to_vec()),
                    (16, 8) => return Ok(bits.to_ne_bytes().to_vec()),
                    (4, _) => f16::from_bits(bits as u16).to_f64(),
                    (8, _) => f64::from(f32::from_bits(bits as u32)),
                    _ => f64::from_bits(bits),
                }
            }
            _ => {
                return Err(invalid(
                    dt,
                    value,
                    "expected a number, NaN, Infinity or 0x…",
                ))
            }
        },
        _ => return Err(invalid(dt, value, "expected a number")),
    };
    Ok(match size {
        // Rounded once, as numpy rounds (half's from_f64 rounds twice).
        2 => crate::float16::f16_from_f64(f).to_ne_bytes().to_vec(),
        4 => (f as f32).to_ne_bytes().to_vec(),
        _ => f.to_ne_bytes().to_vec(),
    })
}

/// The JSON encoding of one element's native-endian bytes, as zarr-python writes it.
pub fn to_json(dt: &DataType, bytes: &[u8]) -> Value {
    use DataType::*;
    match dt {
        DateTime64 { .. } | TimeDelta64 { .. } => i64::from_ne_bytes(ne(bytes)).into(),
        RawBits(_) | RawBytes(_) | NullTerminatedBytes(_) | Structured { .. } | Bytes => {
            Value::String(base64_encode(bytes))
        }
        FixedUtf32(_) => {
            let points: Vec<u32> = bytes
                .chunks_exact(4)
                .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                .take_while(|&u| u != 0)
                .collect();
            super::json::string_value_of(&points)
        }
        String => {
            super::json::string_value(std::string::String::from_utf8_lossy(bytes).into_owned())
        }
        Bool => Value::Bool(bytes[0] != 0),
        Int8 => (bytes[0] as i8).into(),
        Int16 => i16::from_ne_bytes(ne(bytes)).into(),
        Int32 => i32::from_ne_bytes(ne(bytes)).into(),
        Int64 => i64::from_ne_bytes(ne(bytes)).into(),
        UInt8 => bytes[0].into(),
        UInt16 => u16::from_ne_bytes(ne(bytes)).into(),
        UInt32 => u32::from_ne_bytes(ne(bytes)).into(),
        UInt64 => u64::from_ne_bytes(ne(bytes)).into(),
        Float16 | Float32 | Float64 => float_json(bytes, dt.size()),
        Complex64 | Complex128 => {
            let half = dt.size() / 2;
            Value::Array(vec![
                float_json(&bytes[..half], half),
                float_json(&bytes[half..], half),
            ])
        }
    }
}

/// The first `N` bytes of `bytes` as an array (zero-padded if shorter).
fn ne<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    let n = N.min(bytes.len());
    a[..n].copy_from_slice(&bytes[..n]);
    a
}

fn float_json(bytes: &[u8], size: usize) -> Value {
    let f = match size {
        2 => f16::from_ne_bytes(ne(bytes)).to_f64(),
        4 => f32::from_ne_bytes(ne(bytes)) as f64,
        _ => f64::from_ne_bytes(ne(bytes)),
    };
    if f.is_nan() {
        // The canonical quiet NaN is written by name; any other payload keeps its bits.
        let canonical = match size {
            2 => f16::NAN.to_ne_bytes().to_vec(),
            4 => f32::NAN.to_ne_bytes().to_vec(),
            _ => f64::NAN.to_ne_bytes().to_vec(),
        };
        if bytes[..size] == canonical[..] {
            return Value::String("NaN".into());
        }
        let mut be = bytes[..size].to_vec();
        if cfg!(target_endian = "little") {
            be.reverse();
        }
        let hex: String = be.iter().map(|b| format!("{b:02x}")).collect();
        return Value::String(format!("0x{hex}"));
    }
    if f.is_infinite() {
        return Value::String(if f > 0.0 { "Infinity" } else { "-Infinity" }.into());
    }
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// The code points of a text fill value: a bare NaN or Infinity as the text Python gives it
/// (zarr-python reads such a fill value of a text array so), not its marker.
fn text_points(s: &str) -> Vec<u32> {
    match super::json::bare_token_text(s) {
        Some(text) => text.chars().map(u32::from).collect(),
        None => super::json::code_points(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(dt: DataType, v: Value) -> Value {
        to_json(&dt, &parse(&dt, &v).unwrap())
    }

    #[test]
    fn integers() {
        assert_eq!(
            parse(&DataType::Int16, &json!(-2)).unwrap(),
            (-2i16).to_ne_bytes()
        );
        assert_eq!(
            round_trip(DataType::UInt64, json!(u64::MAX)),
            json!(u64::MAX)
        );
        assert_eq!(
            round_trip(DataType::Int64, json!(i64::MIN)),
            json!(i64::MIN)
        );
        assert_eq!(round_trip(DataType::Int32, json!(7.0)), json!(7));
        assert!(parse(&DataType::UInt8, &json!(256)).is_err());
        assert!(parse(&DataType::Int8, &json!(-129)).is_err());
        assert!(parse(&DataType::Int8, &json!(1.5)).is_err());
        assert!(parse(&DataType::Int8, &json!("1")).is_err());
        assert_eq!(round_trip(DataType::Bool, json!(true)), json!(true));
    }

    #[test]
    fn integers_just_past_64_bits_are_out_of_range() -> Result<(), serde_json::Error> {
        // As doubles they would round to i64::MIN or u64::MAX + 1 and pass for the first.
        for text in [
            "-9223372036854775809",
            "-9223372036854776832",
            "18446744073709551616",
        ] {
            let v: Value = serde_json::from_str(text)?;
            assert!(parse(&DataType::Int64, &v).is_err(), "{text}");
            assert!(parse(&DataType::UInt64, &v).is_err(), "{text}");
        }
        Ok(())
    }

    #[test]
    fn floats() {
        assert_eq!(round_trip(DataType::Float32, json!("NaN")), json!("NaN"));
        assert_eq!(
            round_trip(DataType::Float64, json!("Infinity")),
            json!("Infinity")
        );
        assert_eq!(
            round_trip(DataType::Float16, json!("-Infinity")),
            json!("-Infinity")
        );
        assert_eq!(round_trip(DataType::Float64, json!(1.5)), json!(1.5));
        // `-0` is an integer, 0, as Python's json reads it; `-0.0` is negative zero.
        let number = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        let zero = parse(&DataType::Float64, &number("-0")).unwrap();
        assert_eq!(zero, 0.0f64.to_ne_bytes());
        let negative_zero = parse(&DataType::Float64, &number("-0.0")).unwrap();
        assert_eq!(negative_zero, (-0.0f64).to_ne_bytes());
        assert_eq!(round_trip(DataType::Float16, json!(0.5)), json!(0.5));
        assert_eq!(
            parse(&DataType::Float32, &json!("0x3f800000")).unwrap(),
            1.0f32.to_ne_bytes()
        );
        // A NaN with a payload survives as hex.
        assert_eq!(
            round_trip(DataType::Float32, json!("0x7fc00001")),
            json!("0x7fc00001")
        );
        assert_eq!(
            round_trip(DataType::Float32, json!("0x7fc00000")),
            json!("NaN")
        );
        assert!(parse(&DataType::Float32, &json!("0x123456789")).is_err());
        // Hex of another width is read as zarr-python reads it: the float of that width.
        assert_eq!(
            parse(&DataType::Float32, &json!("0x1234")).unwrap(),
            f16::from_bits(0x1234).to_f32().to_ne_bytes()
        );
        assert_eq!(
            parse(&DataType::Float64, &json!("0x3f800000")).unwrap(),
            1.0f64.to_ne_bytes()
        );
        assert_eq!(
            parse(&DataType::Float16, &json!("0x3ff8000000000000")).unwrap(),
            f16::from_f64(1.5).to_ne_bytes()
        );
        for bad in ["0x", "0x123", "0x12345", "0x+123", "0x12g4", "0x7fc000000"] {
            assert!(parse(&DataType::Float32, &json!(bad)).is_err(), "{bad}");
        }
        assert!(parse(&DataType::Float32, &json!("nan")).is_err());
    }

    #[test]
    fn complex() {
        assert_eq!(
            round_trip(DataType::Complex64, json!([1.0, "NaN"])),
            json!([1.0, "NaN"])
        );
        assert_eq!(
            round_trip(DataType::Complex128, json!(["Infinity", -2.5])),
            json!(["Infinity", -2.5])
        );
        assert!(parse(&DataType::Complex64, &json!(1.0)).is_err());
    }

    #[test]
    fn only_text_fills_may_be_shorter_than_the_element() -> Result<(), MetadataError> {
        // "AQAA": three bytes.
        assert_eq!(
            parse(&DataType::NullTerminatedBytes(5), &json!("AQAA"))?,
            [1, 0, 0, 0, 0]
        );
        assert_eq!(parse(&DataType::RawBytes(3), &json!("AQAA"))?, [1, 0, 0]);
        assert!(parse(&DataType::RawBytes(6), &json!("AQAA")).is_err());
        assert!(parse(&DataType::NullTerminatedBytes(2), &json!("AQAA")).is_err());
        Ok(())
    }
}
