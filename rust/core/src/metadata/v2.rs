//! Zarr v2 metadata (spec: zarr-specs v2): `.zarray`, `.zgroup`, `.zattrs`, and the v3 view of
//! a v2 array's codecs that the engine runs.
//!
//! A v2 chunk is encoded by the `filters` in order, then the `compressor`; the dtype gives the
//! byte order of the stored elements and `order: "F"` stores each chunk in Fortran order. The
//! v3 view is: a transpose (for "F"), the filters as array→array codecs (`numcodecs.delta`,
//! ...), the serializer (the dtype's byte order, or an object codec such as vlen-utf8), then
//! bytes→bytes filters and the compressor under their v3 names.

use serde_json::{Map, Value};

use super::data_type::DataType;
use super::numpy_dtype::{self, NumpyDtype};
use crate::codec::bytes_to_bytes::numcodecs::numcodecs_defaults;
use crate::error::MetadataError;

pub const ZARRAY: &str = ".zarray";
pub const ZGROUP: &str = ".zgroup";
pub const ZATTRS: &str = ".zattrs";
pub const ZMETADATA: &str = ".zmetadata";

/// A v2 chain in v3 form: array→array codecs, the object codec if any, bytes→bytes codecs.
pub type V3Codecs = (Vec<Value>, Option<Value>, Vec<Value>);

/// The metadata of a v2 array (`.zarray`, with the attributes of `.zattrs`).
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayMetadataV2 {
    pub shape: Vec<u64>,
    pub chunks: Vec<u64>,
    /// The dtype as written (kept so that rewriting the document does not change it).
    pub dtype_json: Value,
    pub dtype: NumpyDtype,
    /// The data type of the decoded elements (for `|O`: what the object codec makes them).
    pub data_type: DataType,
    pub compressor: Option<Map<String, Value>>,
    pub fill_value: Value,
    pub order_f: bool,
    pub filters: Vec<Map<String, Value>>,
    pub dimension_separator: char,
    pub attributes: Map<String, Value>,
}

fn parse_json(bytes: &[u8], key: &str) -> Result<Value, MetadataError> {
    super::json::parse(bytes).map_err(|e| MetadataError::NotJson {
        path: key.to_string(),
        reason: e.to_string(),
    })
}

/// Parses a `.zattrs` document (an object).
pub fn parse_attributes(bytes: &[u8], key: &str) -> Result<Map<String, Value>, MetadataError> {
    match parse_json(bytes, key)? {
        Value::Object(o) => Ok(o),
        // No attributes, as zarr-python reads it (and v3's "attributes": null).
        Value::Null => Ok(Map::new()),
        other => Err(MetadataError::invalid(
            ".zattrs",
            &other,
            "expected a JSON object",
        )),
    }
}

/// Parses a `.zgroup` document.
pub fn parse_group(bytes: &[u8], key: &str) -> Result<(), MetadataError> {
    let doc = parse_json(bytes, key)?;
    check_format(&doc)
}

fn check_format(doc: &Value) -> Result<(), MetadataError> {
    if !doc.is_object() {
        return Err(MetadataError::invalid(
            "document",
            doc,
            "expected a JSON object",
        ));
    }
    match doc.get("zarr_format") {
        Some(v) if super::is_zarr_format(v, 2) => Ok(()),
        Some(v) => Err(MetadataError::invalid("zarr_format", v, "expected 2")),
        None => Err(MetadataError::missing("zarr_format")),
    }
}

/// A numcodecs configuration (`{"id": ..., ...}`) as the v3 codec zarr-python writes for it.
pub fn numcodecs_to_v3(config: &Map<String, Value>) -> Result<Value, MetadataError> {
    let id = config.get("id").and_then(Value::as_str).ok_or_else(|| {
        MetadataError::invalid("codec", &Value::Object(config.clone()), "needs an id")
    })?;
    let mut rest = config.clone();
    rest.remove("id");
    // numcodecs builds `Shuffle()` from `{"id": "shuffle"}`, whose element size is 4 whatever
    // the data type; the v3 codec's missing element size is the data type's (zarr-python
    // fills it in), so the v2 default is made explicit here.
    if id == "shuffle" && rest.get("elementsize").is_none_or(Value::is_null) {
        rest.insert("elementsize".into(), 4.into());
    }
    // numcodecs' GZip takes -1 for zlib's default level, 6; the core codec takes 0..=9.
    if id == "gzip" && rest.get("level").and_then(Value::as_i64) == Some(-1) {
        rest.insert("level".into(), 6.into());
    }
    // zstd, gzip and blosc frames are the same in both versions and their settings carry over:
    // they run as the v3 core codecs. The others are numcodecs.<id>, as zarr-python names them.
    let name = match id {
        "zstd" | "gzip" | "blosc" | "vlen-utf8" | "vlen-bytes" | "vlen-array" => id.to_string(),
        other => format!("numcodecs.{other}"),
    };
    Ok(serde_json::json!({"name": name, "configuration": rest}))
}

fn shape_field(doc: &Map<String, Value>, field: &str) -> Result<Vec<u64>, MetadataError> {
    let value = doc
        .get(field)
        .ok_or_else(|| MetadataError::missing(field))?;
    value
        .as_array()
        .and_then(|a| {
            a.iter()
                .map(super::json::as_count)
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| {
            MetadataError::invalid(field, value, "expected a list of non-negative integers")
        })
}

/// A numcodecs configuration as numcodecs gives it back (`get_config`), which is what
/// zarr-python writes: numcodecs' parameters of the codecs oxzarr runs are filled in with
/// numcodecs' defaults, in numcodecs' order (the core codecs' defaults differ: `{"id":
/// "blosc"}` shuffles bytes, gzip's level is 1), and zstd's `checksum` is left out when false
/// (tensorstore refuses the key in v2 metadata). Keys numcodecs does not know are kept, last.
fn with_numcodecs_defaults(config: Map<String, Value>) -> Map<String, Value> {
    let id = config
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut defaults = numcodecs_defaults(&id);
    defaults.extend(v2_only_defaults(&id));
    let mut out = Map::new();
    out.insert("id".into(), Value::String(id.clone()));
    for (key, default) in defaults {
        let given = config.get(key).filter(|v| !v.is_null());
        // A null default is numcodecs' None: written as null by the codecs whose get_config
        // lists it (lzma's preset and filters), left out by blosc's (its typesize).
        let value = match given {
            Some(v) => v.clone(),
            None if !default.is_null() || listed_as_none(&id, key) => default,
            None => match config.get(key) {
                Some(null) => null.clone(),
                None => continue,
            },
        };
        out.insert(key.into(), value);
    }
    for (key, value) in config {
        if !out.contains_key(&key) {
            out.insert(key, value);
        }
    }
    if id == "zstd" && out.get("checksum") == Some(&Value::Bool(false)) {
        out.remove("checksum");
    }
    out
}

/// numcodecs' defaults for the codecs oxzarr runs only under their v2 ids (their v3 names
/// come with full configurations): `Zlib`, `BZ2`, `LZ4` and `LZMA`, in numcodecs' order.
fn v2_only_defaults(id: &str) -> Vec<(&'static str, Value)> {
    match id {
        "zlib" | "bz2" => vec![("level", 1.into())],
        "lz4" => vec![("acceleration", 1.into())],
        "lzma" => vec![
            ("format", 1.into()),
            ("check", (-1).into()),
            ("preset", Value::Null),
            ("filters", Value::Null),
        ],
        _ => Vec::new(),
    }
}

fn listed_as_none(id: &str, key: &str) -> bool {
    id == "lzma" && matches!(key, "preset" | "filters")
}

fn codec_config(field: &str, value: &Value) -> Result<Map<String, Value>, MetadataError> {
    match value {
        Value::Object(o) if o.get("id").and_then(Value::as_str).is_some() => {
            Ok(with_numcodecs_defaults(o.clone()))
        }
        _ => Err(MetadataError::invalid(
            field,
            value,
            "expected a numcodecs configuration with an id",
        )),
    }
}

impl ArrayMetadataV2 {
    /// Parses `.zarray` (and `.zattrs`, if stored). `key` names `.zarray` in errors.
    pub fn parse(zarray: &[u8], zattrs: Option<&[u8]>, key: &str) -> Result<Self, MetadataError> {
        let attributes = match zattrs {
            Some(bytes) => parse_attributes(bytes, &key.replace(ZARRAY, ZATTRS))?,
            None => Map::new(),
        };
        Self::parse_with_attributes(zarray, attributes, key)
    }

    /// Parses `.zarray`, with the attributes already read from `.zattrs` (so that an error
    /// there is reported under its own key).
    pub fn parse_with_attributes(
        zarray: &[u8],
        attributes: Map<String, Value>,
        key: &str,
    ) -> Result<Self, MetadataError> {
        let doc = parse_json(zarray, key)?;
        check_format(&doc)?;
        let Value::Object(doc) = doc else {
            return Err(MetadataError::invalid(
                ".zarray",
                &doc,
                "expected a JSON object",
            ));
        };
        let shape = shape_field(&doc, "shape")?;
        let chunks = shape_field(&doc, "chunks")?;
        if chunks.len() != shape.len() {
            return Err(MetadataError::invalid(
                "chunks",
                &doc["chunks"],
                format!("has {} dimensions, the shape {}", chunks.len(), shape.len()),
            ));
        }
        if chunks.contains(&0) {
            return Err(MetadataError::invalid(
                "chunks",
                &doc["chunks"],
                "chunk sizes must be positive",
            ));
        }
        let dtype_json = doc
            .get("dtype")
            .cloned()
            .ok_or_else(|| MetadataError::missing("dtype"))?;
        let dtype = numpy_dtype::parse(&dtype_json)?;
        let compressor = match doc.get("compressor") {
            None | Some(Value::Null) => None,
            Some(v) => Some(codec_config("compressor", v)?),
        };
        let filters = match doc.get("filters") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|f| codec_config("filters", f))
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(MetadataError::invalid(
                    "filters",
                    other,
                    "expected a list or null",
                ))
            }
        };
        let order_f = match doc.get("order") {
            None => false,
            Some(Value::String(s)) if s == "C" => false,
            Some(Value::String(s)) if s == "F" => true,
            Some(other) => {
                return Err(MetadataError::invalid(
                    "order",
                    other,
                    "expected \"C\" or \"F\"",
                ))
            }
        };
        let dimension_separator = match doc.get("dimension_separator") {
            None | Some(Value::Null) => '.',
            Some(Value::String(s)) if s == "." || s == "/" => s.chars().next().unwrap_or('.'),
            Some(other) => {
                return Err(MetadataError::invalid(
                    "dimension_separator",
                    other,
                    "expected \".\" or \"/\"",
                ))
            }
        };
        let data_type = if dtype.is_object {
            // The object codec (a filter, or in older stores the compressor slot) decides.
            let ids: Vec<&str> = filters
                .iter()
                .chain(compressor.iter())
                .filter_map(|c| c.get("id").and_then(Value::as_str))
                .collect();
            if ids.contains(&"vlen-utf8") {
                DataType::String
            } else if ids.contains(&"vlen-bytes") {
                DataType::Bytes
            } else {
                return Err(MetadataError::Unsupported {
                    field: "dtype".into(),
                    value: format!(
                        "\"|O\" with object codec {:?} (supported: vlen-utf8, vlen-bytes)",
                        ids.first().copied().unwrap_or("none")
                    ),
                });
            }
        } else {
            dtype.data_type.clone().checked(&dtype_json)?
        };
        let metadata = Self {
            shape,
            chunks,
            dtype_json,
            dtype,
            data_type,
            compressor,
            fill_value: doc.get("fill_value").cloned().unwrap_or(Value::Null),
            order_f,
            filters,
            dimension_separator,
            attributes,
        };
        metadata.fill_value_bytes()?;
        Ok(metadata)
    }

    /// The fill value as one element's native-endian bytes. v2's `null` means no fill value;
    /// unwritten chunks then read as the data type's default, as zarr-python reads them:
    /// NaT for times, zeros (empty strings) for everything else.
    pub fn fill_value_bytes(&self) -> Result<Vec<u8>, MetadataError> {
        if self.fill_value.is_null() {
            return Ok(match self.data_type {
                DataType::DateTime64 { .. } | DataType::TimeDelta64 { .. } => {
                    i64::MIN.to_ne_bytes().to_vec()
                }
                _ => vec![0u8; self.data_type.size()],
            });
        }
        // v2 writes integral floats as integers and byte fill values in base64, as v3 does;
        // base64 holds the element as stored, so in the dtype's byte order.
        let mut bytes = super::fill_value::parse(&self.data_type, &self.fill_value)?;
        if self.fill_value.is_string() && matches!(self.data_type, DataType::Structured { .. }) {
            super::data_type::swap_in_place(&mut bytes, &self.dtype.swap_plan());
        }
        Ok(bytes)
    }

    /// The codec chain in v3 form, except the serializer: (array→array codecs, the object
    /// codec if any, bytes→bytes codecs).
    pub fn codecs_v3(&self) -> Result<V3Codecs, MetadataError> {
        let mut array_to_array = Vec::new();
        let mut object_codec = None;
        let mut bytes_to_bytes = Vec::new();
        if self.order_f && self.shape.len() > 1 {
            let order: Vec<usize> = (0..self.shape.len()).rev().collect();
            array_to_array
                .push(serde_json::json!({"name": "transpose", "configuration": {"order": order}}));
        }
        // The byte order of the elements the next value filter is given.
        let mut order = byte_order(&self.dtype);
        for filter in &self.filters {
            let v3 = numcodecs_to_v3(filter)?;
            let id = filter.get("id").and_then(Value::as_str).unwrap_or_default();
            match id {
                "vlen-utf8" | "vlen-bytes" | "vlen-array" => object_codec = Some(v3),
                _ if is_bytes_codec(id) => bytes_to_bytes.push(v3),
                _ if object_codec.is_some() || !bytes_to_bytes.is_empty() => {
                    bytes_to_bytes.push(v3)
                }
                _ => {
                    let (input, output) = if id == "astype" {
                        ("decode_dtype", "encode_dtype")
                    } else {
                        ("dtype", "astype")
                    };
                    // numcodecs views the bytes it is given as the filter's dtype: in the
                    // other byte order, the values it works on are the elements' bytes
                    // swapped. The engine's filters work on the elements' values, so such a
                    // filter is refused rather than read into other values than numcodecs'.
                    let given = filter.get(input).and_then(filter_byte_order);
                    if let (Some(stored), Some(given)) = (order, given) {
                        if stored != given {
                            return Err(MetadataError::invalid(
                                "filters",
                                &Value::Object(filter.clone()),
                                format!(
                                    "{input} is in the other byte order than the elements it \
                                     is given ({}-endian), which numcodecs reads as their \
                                     bytes swapped; oxzarr does not",
                                    if stored { "big" } else { "little" }
                                ),
                            ));
                        }
                    }
                    if let Some(out) = filter.get(output) {
                        order = filter_byte_order(out);
                    }
                    array_to_array.push(v3)
                }
            }
        }
        if let Some(compressor) = &self.compressor {
            let id = compressor
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if matches!(id, "vlen-utf8" | "vlen-bytes") {
                object_codec = Some(numcodecs_to_v3(compressor)?);
            } else {
                bytes_to_bytes.push(numcodecs_to_v3(compressor)?);
            }
        }
        Ok((array_to_array, object_codec, bytes_to_bytes))
    }

    /// The byte order of the stored elements after the filters: a filter that changes the
    /// data type (`astype`) also sets the byte order the serializer writes.
    pub fn stored_dtype(&self) -> Result<NumpyDtype, MetadataError> {
        let mut stored = self.dtype.clone();
        // Only the filters on the elements: those after a filter on bytes (or an object codec)
        // take the bytes as their own dtype, whatever the serializer wrote.
        for filter in &self.filters[..self.value_filters()] {
            for key in ["astype", "encode_dtype"] {
                if let Some(v) = filter.get(key) {
                    stored = numpy_dtype::parse(v)?;
                }
            }
        }
        Ok(stored)
    }

    /// Whether the elements are stored in the other byte order than the machine's and only
    /// the serializer computes with them: plain numbers, complex numbers, times or UTF-32
    /// text of the dtype's one byte order (not records, whose fields may mix orders),
    /// filtered and compressed by codecs that see nothing but their bytes (shuffle,
    /// checksums, compressors; no value filter such as delta or astype, anywhere in the
    /// chain). Decoding then swaps each element and does nothing else to it, so that the
    /// chunks read in the stored byte order are their stored bytes exactly.
    pub fn swaps_only_in_serializer(&self) -> bool {
        let bytes_only = |codec: &Map<String, Value>| {
            is_bytes_codec(codec.get("id").and_then(Value::as_str).unwrap_or_default())
        };
        !self.dtype.is_object
            && byte_order(&self.dtype) == Some(!cfg!(target_endian = "big"))
            && self.filters.iter().all(bytes_only)
            && self.compressor.iter().all(bytes_only)
    }

    /// How many filters, from the first, work on the array's elements: up to the first that
    /// works on bytes (shuffle, a checksum) or is an object codec. numcodecs hands each
    /// filter the buffer the one before it left, so the value filters after those work on
    /// their bytes (see `codec::bytes_to_bytes::value_filter`).
    fn value_filters(&self) -> usize {
        self.filters
            .iter()
            .position(|filter| {
                let id = filter.get("id").and_then(Value::as_str).unwrap_or_default();
                matches!(id, "vlen-utf8" | "vlen-bytes" | "vlen-array") || is_bytes_codec(id)
            })
            .unwrap_or(self.filters.len())
    }

    /// The `.zarray` document.
    pub fn to_value(&self) -> Value {
        let filters = if self.filters.is_empty() {
            Value::Null
        } else {
            Value::Array(self.filters.iter().cloned().map(Value::Object).collect())
        };
        serde_json::json!({
            "shape": self.shape,
            "chunks": self.chunks,
            "dtype": self.dtype_json,
            "fill_value": self.fill_value,
            "order": if self.order_f { "F" } else { "C" },
            "filters": filters,
            "dimension_separator": self.dimension_separator.to_string(),
            "compressor": self.compressor.clone().map_or(Value::Null, Value::Object),
            "zarr_format": 2,
        })
    }

    pub fn to_json(&self) -> Vec<u8> {
        super::v3::to_pretty_json(&self.to_value())
    }
}

/// The byte order of a dtype's elements (`Some(true)` big-endian); `None` where it means
/// nothing (one-byte types, records).
fn byte_order(dtype: &NumpyDtype) -> Option<bool> {
    if dtype.data_type.has_byte_order() && !matches!(dtype.data_type, DataType::Structured { .. }) {
        dtype.big_endian
    } else {
        None
    }
}

/// The byte order of a numcodecs filter's dtype field: a type string (`"<i4"`), or a name
/// (`"int32"`), which is the machine's order. `None` where order means nothing or the field
/// is not a dtype (the codec itself reports that).
fn filter_byte_order(value: &Value) -> Option<bool> {
    let name = value.as_str()?;
    if let Some(data_type) = DataType::from_name(name) {
        return data_type
            .has_byte_order()
            .then_some(cfg!(target_endian = "big"));
    }
    byte_order(&numpy_dtype::parse(value).ok()?)
}

/// Whether a numcodecs filter works on bytes (after serialization) rather than on values.
fn is_bytes_codec(id: &str) -> bool {
    matches!(
        id,
        "shuffle"
            | "crc32"
            | "crc32c"
            | "adler32"
            | "fletcher32"
            | "jenkins_lookup3"
            | "zlib"
            | "gzip"
            | "bz2"
            | "lz4"
            | "lzma"
            | "zstd"
            | "blosc"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn zarray(extra: Value) -> Vec<u8> {
        let mut doc = json!({
            "zarr_format": 2, "shape": [10, 6], "chunks": [4, 3], "dtype": ">i2",
            "compressor": {"id": "zlib", "level": 1}, "fill_value": 7, "order": "F",
            "filters": [{"id": "delta", "dtype": ">i2"}], "dimension_separator": "/",
        });
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        serde_json::to_vec(&doc).unwrap()
    }

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn numcodecs_configurations_are_read_with_numcodecs_defaults() -> TestResult {
        // As numcodecs' get_config gives them back (and zarr-python writes them).
        for (given, read) in [
            (
                json!({"id": "blosc"}),
                json!({"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}),
            ),
            (
                json!({"id": "blosc", "cname": "zstd", "shuffle": 0}),
                json!({"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": 0, "blocksize": 0}),
            ),
            (json!({"id": "gzip"}), json!({"id": "gzip", "level": 1})),
            (
                json!({"id": "gzip", "level": null}),
                json!({"id": "gzip", "level": 1}),
            ),
            (
                json!({"id": "zstd", "level": 3, "checksum": false}),
                json!({"id": "zstd", "level": 3}),
            ),
            (
                json!({"id": "zstd", "checksum": true}),
                json!({"id": "zstd", "level": 0, "checksum": true}),
            ),
            (
                json!({"id": "zlib", "level": 1}),
                json!({"id": "zlib", "level": 1}),
            ),
            (json!({"id": "zlib"}), json!({"id": "zlib", "level": 1})),
            (json!({"id": "bz2"}), json!({"id": "bz2", "level": 1})),
            (
                json!({"id": "lz4"}),
                json!({"id": "lz4", "acceleration": 1}),
            ),
            (
                json!({"id": "lzma", "preset": 3}),
                json!({"id": "lzma", "format": 1, "check": -1, "preset": 3, "filters": null}),
            ),
        ] {
            let doc = zarray(json!({"compressor": given, "filters": null}));
            let m = ArrayMetadataV2::parse(&doc, None, "x/.zarray")?;
            // In numcodecs' key order too, as zarr-python writes them.
            assert_eq!(
                m.to_value()["compressor"].to_string(),
                read.to_string(),
                "{given}"
            );
        }
        // The core codecs run them with numcodecs' settings: byte shuffle for a blosc without
        // one, zlib's default level for gzip's -1.
        let codecs = |compressor: Value| -> Result<Vec<Value>, MetadataError> {
            let doc = zarray(json!({"compressor": compressor, "filters": null}));
            Ok(ArrayMetadataV2::parse(&doc, None, "x/.zarray")?
                .codecs_v3()?
                .2)
        };
        assert_eq!(
            codecs(json!({"id": "blosc"}))?[0]["configuration"]["shuffle"],
            json!(1)
        );
        assert_eq!(
            codecs(json!({"id": "gzip", "level": -1}))?[0],
            json!({"name": "gzip", "configuration": {"level": 6}})
        );
        Ok(())
    }

    #[test]
    fn parses_and_maps_to_v3() {
        let m =
            ArrayMetadataV2::parse(&zarray(json!({})), Some(br#"{"a": 1}"#), "x/.zarray").unwrap();
        assert_eq!(m.data_type, DataType::Int16);
        assert_eq!(m.dimension_separator, '/');
        assert_eq!(m.attributes["a"], json!(1));
        let (a2a, object, b2b) = m.codecs_v3().unwrap();
        assert_eq!(a2a[0]["name"], "transpose");
        assert_eq!(a2a[1]["name"], "numcodecs.delta");
        assert!(object.is_none());
        assert_eq!(
            b2b,
            vec![json!({"name": "numcodecs.zlib", "configuration": {"level": 1}})]
        );
        let zstd = numcodecs_to_v3(json!({"id": "zstd", "level": 3}).as_object().unwrap()).unwrap();
        assert_eq!(zstd, json!({"name": "zstd", "configuration": {"level": 3}}));
        let again =
            ArrayMetadataV2::parse(&m.to_json(), Some(br#"{"a": 1}"#), "x/.zarray").unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn value_filters_in_the_other_byte_order_are_refused() {
        let codecs = |dtype: &str, filters: Value| {
            ArrayMetadataV2::parse(
                &zarray(json!({"dtype": dtype, "filters": filters})),
                None,
                "x/.zarray",
            )
            .unwrap()
            .codecs_v3()
        };
        let native = if cfg!(target_endian = "big") {
            ">"
        } else {
            "<"
        };
        let other = if cfg!(target_endian = "big") {
            "<"
        } else {
            ">"
        };
        for (dtype, filters) in [
            (
                format!("{other}i4"),
                json!([{"id": "delta", "dtype": format!("{native}i4")}]),
            ),
            (
                format!("{other}i4"),
                json!([{"id": "delta", "dtype": "int32"}]),
            ),
            (
                format!("{native}f8"),
                json!([{"id": "quantize", "digits": 2, "dtype": format!("{other}f8")}]),
            ),
            (
                format!("{other}i4"),
                json!([{"id": "astype", "encode_dtype": "|i1", "decode_dtype": format!("{native}i4")}]),
            ),
            // The second filter is given the first one's output, in its byte order.
            (
                format!("{native}i4"),
                json!([
                    {"id": "astype", "encode_dtype": format!("{other}i2"), "decode_dtype": format!("{native}i4")},
                    {"id": "delta", "dtype": format!("{native}i2")},
                ]),
            ),
        ] {
            let err = codecs(&dtype, filters.clone()).unwrap_err().to_string();
            assert!(err.contains("other byte order"), "{dtype} {filters}: {err}");
        }
        for (dtype, filters) in [
            (
                format!("{other}i4"),
                json!([{"id": "delta", "dtype": format!("{other}i4")}]),
            ),
            (format!("{other}i4"), json!([{"id": "delta"}])),
            ("|i1".to_string(), json!([{"id": "delta", "dtype": "|i1"}])),
            (
                format!("{other}i4"),
                json!([{"id": "astype", "encode_dtype": "|i1", "decode_dtype": format!("{other}i4")}, {"id": "delta", "dtype": "|i1"}]),
            ),
            (
                format!("{native}i4"),
                json!([
                    {"id": "astype", "encode_dtype": format!("{other}i2"), "decode_dtype": format!("{native}i4")},
                    {"id": "delta", "dtype": format!("{other}i2")},
                ]),
            ),
        ] {
            assert!(codecs(&dtype, filters.clone()).is_ok(), "{dtype} {filters}");
        }
    }

    #[test]
    fn only_plain_elements_with_no_value_filter_swap_in_the_serializer_alone() {
        let (native, other) = if cfg!(target_endian = "big") {
            (">", "<")
        } else {
            ("<", ">")
        };
        let swaps_only = |dtype: Value, filters: Value, compressor: Value| {
            let doc = json!({"dtype": dtype, "filters": filters, "compressor": compressor,
                             "fill_value": null});
            ArrayMetadataV2::parse(&zarray(doc), None, "x/.zarray")
                .unwrap()
                .swaps_only_in_serializer()
        };
        let zstd = json!({"id": "zstd", "level": 1});
        let shuffle = json!([{"id": "shuffle", "elementsize": 4}, {"id": "crc32"}]);
        for dtype in ["i2", "f8", "c16", "M8[s]", "m8[ms]", "U3"] {
            let dtype = json!(format!("{other}{dtype}"));
            assert!(
                swaps_only(dtype.clone(), json!(null), json!(null)),
                "{dtype}"
            );
            assert!(
                swaps_only(dtype.clone(), shuffle.clone(), zstd.clone()),
                "{dtype}"
            );
        }
        for (dtype, filters) in [
            // The machine's order, no order, a record.
            (json!(format!("{native}i4")), json!(null)),
            (json!("|i1"), json!(null)),
            (json!("|S4"), json!(null)),
            (json!([["a", format!("{other}i4")]]), json!(null)),
            // Value filters, before or after one on bytes.
            (
                json!(format!("{other}i4")),
                json!([{"id": "delta", "dtype": format!("{other}i4")}]),
            ),
            (
                json!(format!("{other}i4")),
                json!([{"id": "shuffle", "elementsize": 4},
                       {"id": "delta", "dtype": format!("{other}i4")}]),
            ),
        ] {
            assert!(
                !swaps_only(dtype.clone(), filters.clone(), zstd.clone()),
                "{dtype} {filters}"
            );
        }
    }

    #[test]
    fn shuffle_without_an_element_size_is_numcodecs_default() {
        let v3 = |config: Value| numcodecs_to_v3(config.as_object().unwrap()).unwrap();
        for config in [
            json!({"id": "shuffle"}),
            json!({"id": "shuffle", "elementsize": null}),
        ] {
            assert_eq!(
                v3(config),
                json!({"name": "numcodecs.shuffle", "configuration": {"elementsize": 4}})
            );
        }
        assert_eq!(
            v3(json!({"id": "shuffle", "elementsize": 8})),
            json!({"name": "numcodecs.shuffle", "configuration": {"elementsize": 8}})
        );
    }

    #[test]
    fn times_without_a_fill_value_read_as_nat() -> Result<(), MetadataError> {
        for dtype in ["<M8[s]", "<m8[ms]"] {
            let m = ArrayMetadataV2::parse(
                &zarray(json!({"dtype": dtype, "fill_value": null})),
                None,
                "x",
            )?;
            assert_eq!(m.fill_value_bytes()?, i64::MIN.to_ne_bytes(), "{dtype}");
        }
        Ok(())
    }

    #[test]
    fn objects_and_fill_values() {
        let m = ArrayMetadataV2::parse(
            &zarray(json!({"dtype": "|O", "filters": [{"id": "vlen-utf8"}], "fill_value": ""})),
            None,
            "x/.zarray",
        )
        .unwrap();
        assert_eq!(m.data_type, DataType::String);
        assert_eq!(m.codecs_v3().unwrap().1.unwrap()["name"], "vlen-utf8");
        let m = ArrayMetadataV2::parse(&zarray(json!({"fill_value": null})), None, "x").unwrap();
        assert_eq!(m.fill_value_bytes().unwrap(), vec![0, 0]);
        let m = ArrayMetadataV2::parse(
            &zarray(json!({"dtype": "|S3", "fill_value": 0, "filters": null})),
            None,
            "x",
        )
        .unwrap();
        assert_eq!(m.fill_value_bytes().unwrap(), vec![0, 0, 0]);
        let err = ArrayMetadataV2::parse(
            &zarray(json!({"dtype": "|O", "filters": [{"id": "pickle"}]})),
            None,
            "x",
        )
        .unwrap_err();
        assert!(err.to_string().contains("pickle"), "{err}");
        assert!(ArrayMetadataV2::parse(&zarray(json!({"zarr_format": 3})), None, "x").is_err());
        assert!(ArrayMetadataV2::parse(b"{", None, "a/.zarray")
            .unwrap_err()
            .to_string()
            .contains("a/.zarray"));
    }
}
