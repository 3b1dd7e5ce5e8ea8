//! Zarr v3 node metadata: the `zarr.json` of arrays and groups (spec: zarr-specs v3.0, "Array
//! metadata" and "Group metadata").
//!
//! Parsing validates every field it knows and refuses any field it does not, unless that field
//! is an object saying `"must_understand": false` (kept as is and written back).

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::{fill_value, DataType};
use crate::error::MetadataError;

/// The metadata of a v3 node, array or group.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeMetadataV3 {
    Array(Box<ArrayMetadataV3>),
    Group(GroupMetadataV3),
}

/// How a chunk's grid coordinates become its store key (relative to the array).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKeyEncoding {
    /// `c/1/2` (or `c.1.2`); the only chunk of a 0-d array is `c`.
    Default { separator: char },
    /// `1.2` (or `1/2`), as v2 stores name chunks; the only chunk of a 0-d array is `0`.
    V2 { separator: char },
}

impl ChunkKeyEncoding {
    /// The key of the chunk at grid coordinates `coords`, relative to the array's path.
    pub fn encode(&self, coords: &[u64]) -> String {
        use std::fmt::Write;
        let mut key = String::with_capacity(2 + coords.len() * 4);
        match *self {
            Self::Default { separator } => {
                key.push('c');
                for c in coords {
                    key.push(separator);
                    let _ = write!(key, "{c}");
                }
            }
            Self::V2 { separator } => {
                if coords.is_empty() {
                    key.push('0');
                }
                for (i, c) in coords.iter().enumerate() {
                    if i > 0 {
                        key.push(separator);
                    }
                    let _ = write!(key, "{c}");
                }
            }
        }
        key
    }

    /// The grid coordinates of the chunk a key names (relative to an array of `ndim`
    /// dimensions), or `None` if the key is not a chunk key of this encoding for it.
    pub fn decode(&self, key: &str, ndim: usize) -> Option<Vec<u64>> {
        let (rest, separator) = match *self {
            Self::Default { separator } => {
                if key == "c" {
                    return (ndim == 0).then(Vec::new);
                }
                (key.strip_prefix('c')?.strip_prefix(separator)?, separator)
            }
            // The one chunk of a 0-d array is "0", as a 1-d array's first chunk is.
            Self::V2 { .. } if ndim == 0 => return (key == "0").then(Vec::new),
            Self::V2 { separator } => (key, separator),
        };
        // Only the names the encoding writes: "00" or "+0" parse as 0 too, and a stray
        // copy so named would count as a second chunk 0 (zarr-python counts exact keys).
        let coords: Option<Vec<u64>> = rest
            .split(separator)
            .map(|p| {
                let canonical =
                    p.bytes().all(|b| b.is_ascii_digit()) && (p.len() == 1 || !p.starts_with('0'));
                p.parse::<u64>().ok().filter(|_| canonical)
            })
            .collect();
        coords.filter(|c| c.len() == ndim)
    }

    fn from_metadata(value: &Value) -> Result<Self, MetadataError> {
        let (name, config) = split_extension("chunk_key_encoding", value)?;
        let separator = match config.get("separator") {
            None => None,
            Some(Value::String(s)) if s == "/" || s == "." => s.chars().next(),
            Some(other) => {
                return Err(MetadataError::invalid(
                    "chunk_key_encoding.separator",
                    other,
                    "expected \"/\" or \".\"",
                ))
            }
        };
        for key in config.keys() {
            if key != "separator" {
                return Err(MetadataError::invalid(
                    "chunk_key_encoding",
                    value,
                    format!("unknown configuration key {key:?}"),
                ));
            }
        }
        match name {
            "default" => Ok(Self::Default {
                separator: separator.unwrap_or('/'),
            }),
            "v2" => Ok(Self::V2 {
                separator: separator.unwrap_or('.'),
            }),
            _ => Err(MetadataError::unsupported("chunk_key_encoding", value)),
        }
    }

    pub fn to_metadata(self) -> Value {
        let (name, sep) = match self {
            Self::Default { separator } => ("default", separator),
            Self::V2 { separator } => ("v2", separator),
        };
        serde_json::json!({"name": name, "configuration": {"separator": sep.to_string()}})
    }
}

/// The metadata of a v3 array.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayMetadataV3 {
    pub shape: Vec<u64>,
    pub data_type: DataType,
    /// The shape of a chunk of the regular chunk grid.
    pub chunk_shape: Vec<u64>,
    pub chunk_key_encoding: ChunkKeyEncoding,
    /// The fill value as it is written in the document.
    pub fill_value: Value,
    /// The codec chain, as written; the codec layer parses it.
    pub codecs: Vec<Value>,
    pub attributes: Map<String, Value>,
    pub dimension_names: Option<Vec<Option<String>>>,
    /// Fields marked `must_understand: false` that this version does not know, kept as they are.
    pub extra_fields: Map<String, Value>,
}

/// The metadata of a v3 group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupMetadataV3 {
    pub attributes: Map<String, Value>,
    /// Fields marked `must_understand: false` that this version does not know (inline
    /// consolidated metadata among them, for now), kept as they are.
    pub extra_fields: Map<String, Value>,
}

/// An extension's configuration, borrowed from its metadata where it has one.
pub type Configuration<'a> = Cow<'a, Map<String, Value>>;

/// Splits an extension point (`{name, configuration?}` or a bare name) into its parts.
pub fn split_extension<'a>(
    field: &str,
    value: &'a Value,
) -> Result<(&'a str, Configuration<'a>), MetadataError> {
    // The configuration is borrowed: a nested sharding codec's holds all below it, and a
    // copy at each level would cost the depth times the document.
    match value {
        Value::String(name) => Ok((name.as_str(), Cow::Owned(Map::new()))),
        Value::Object(obj) => {
            let name = obj
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| MetadataError::invalid(field, value, "expected a name"))?;
            for key in obj.keys() {
                if !matches!(key.as_str(), "name" | "configuration" | "must_understand") {
                    return Err(MetadataError::invalid(
                        field,
                        value,
                        format!("unexpected field {key:?}"),
                    ));
                }
            }
            let config = match obj.get("configuration") {
                None | Some(Value::Null) => Cow::Owned(Map::new()),
                Some(Value::Object(c)) => Cow::Borrowed(c),
                Some(other) => {
                    return Err(MetadataError::invalid(
                        field,
                        other,
                        "configuration must be an object",
                    ))
                }
            };
            Ok((name, config))
        }
        _ => Err(MetadataError::invalid(
            field,
            value,
            "expected an object or a name",
        )),
    }
}

fn is_optional_extension(value: &Value) -> bool {
    value.get("must_understand") == Some(&Value::Bool(false))
}

fn parse_shape(field: &str, value: Option<&Value>) -> Result<Vec<u64>, MetadataError> {
    let value = value.ok_or_else(|| MetadataError::missing(field))?;
    let items = value
        .as_array()
        .ok_or_else(|| MetadataError::invalid(field, value, "expected a list of integers"))?;
    items
        .iter()
        .map(|v| {
            super::json::as_count(v).ok_or_else(|| {
                MetadataError::invalid(field, value, "expected non-negative integers")
            })
        })
        .collect()
}

impl NodeMetadataV3 {
    /// Parses a `zarr.json` document. `key` names the document in errors.
    pub fn parse(bytes: &[u8], key: &str) -> Result<Self, MetadataError> {
        let doc: Value = super::json::parse(bytes).map_err(|e| MetadataError::NotJson {
            path: key.to_string(),
            reason: e.to_string(),
        })?;
        Self::from_value(doc)
    }

    /// A `zarr.json` document already parsed.
    pub fn from_value(doc: Value) -> Result<Self, MetadataError> {
        let Value::Object(obj) = doc else {
            return Err(MetadataError::invalid(
                "zarr.json",
                &doc,
                "expected a JSON object",
            ));
        };
        match obj.get("zarr_format") {
            Some(v) if super::is_zarr_format(v, 3) => {}
            Some(other) => {
                return Err(MetadataError::invalid(
                    "zarr_format",
                    other,
                    "expected 3 in zarr.json",
                ))
            }
            None => return Err(MetadataError::missing("zarr_format")),
        }
        match obj.get("node_type").and_then(Value::as_str) {
            Some("array") => Ok(Self::Array(Box::new(ArrayMetadataV3::from_object(obj)?))),
            Some("group") => Ok(Self::Group(GroupMetadataV3::from_object(obj)?)),
            _ => Err(MetadataError::invalid(
                "node_type",
                obj.get("node_type").unwrap_or(&Value::Null),
                "expected \"array\" or \"group\"",
            )),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        match self {
            Self::Array(a) => a.to_json(),
            Self::Group(g) => g.to_json(),
        }
    }
}

fn parse_attributes(obj: &Map<String, Value>) -> Result<Map<String, Value>, MetadataError> {
    match obj.get("attributes") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(a)) => Ok(a.clone()),
        Some(other) => Err(MetadataError::invalid(
            "attributes",
            other,
            "expected an object",
        )),
    }
}

fn collect_extra(
    obj: &Map<String, Value>,
    known: &[&str],
) -> Result<Map<String, Value>, MetadataError> {
    let mut extra = Map::new();
    for (key, value) in obj {
        if known.contains(&key.as_str()) {
            continue;
        }
        if !is_optional_extension(value) {
            return Err(MetadataError::Unsupported {
                field: "zarr.json field".into(),
                value: format!("{key:?} (not marked \"must_understand\": false)"),
            });
        }
        extra.insert(key.clone(), value.clone());
    }
    Ok(extra)
}

impl ArrayMetadataV3 {
    fn from_object(obj: Map<String, Value>) -> Result<Self, MetadataError> {
        let shape = parse_shape("shape", obj.get("shape"))?;
        let data_type = DataType::from_metadata(
            obj.get("data_type")
                .ok_or_else(|| MetadataError::missing("data_type"))?,
        )?;

        let grid = obj
            .get("chunk_grid")
            .ok_or_else(|| MetadataError::missing("chunk_grid"))?;
        let (grid_name, grid_config) = split_extension("chunk_grid", grid)?;
        if grid_name != "regular" {
            return Err(MetadataError::unsupported("chunk_grid", grid));
        }
        let chunk_shape = parse_shape(
            "chunk_grid.configuration.chunk_shape",
            grid_config.get("chunk_shape"),
        )?;
        if chunk_shape.len() != shape.len() {
            return Err(MetadataError::invalid(
                "chunk_grid.configuration.chunk_shape",
                grid,
                format!(
                    "has {} dimensions, the shape {}",
                    chunk_shape.len(),
                    shape.len()
                ),
            ));
        }
        if chunk_shape.contains(&0) {
            return Err(MetadataError::invalid(
                "chunk_grid.configuration.chunk_shape",
                grid,
                "chunk sizes must be positive",
            ));
        }

        let chunk_key_encoding = match obj.get("chunk_key_encoding") {
            Some(v) => ChunkKeyEncoding::from_metadata(v)?,
            None => return Err(MetadataError::missing("chunk_key_encoding")),
        };

        let fill_value = obj
            .get("fill_value")
            .ok_or_else(|| MetadataError::missing("fill_value"))?
            .clone();
        fill_value::parse(&data_type, &fill_value)?;

        let codecs = match obj.get("codecs") {
            Some(Value::Array(c)) => c.clone(),
            Some(other) => return Err(MetadataError::invalid("codecs", other, "expected a list")),
            None => return Err(MetadataError::missing("codecs")),
        };

        match obj.get("storage_transformers") {
            None | Some(Value::Null) => {}
            Some(Value::Array(t)) => {
                if let Some(t) = t.iter().find(|t| !is_optional_extension(t)) {
                    return Err(MetadataError::unsupported("storage_transformers", t));
                }
            }
            Some(other) => {
                return Err(MetadataError::invalid(
                    "storage_transformers",
                    other,
                    "expected a list",
                ))
            }
        }

        let dimension_names = match obj.get("dimension_names") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Array(names)) => {
                if names.len() != shape.len() {
                    return Err(MetadataError::invalid(
                        "dimension_names",
                        v,
                        format!("expected {} names, one per dimension", shape.len()),
                    ));
                }
                Some(
                    names
                        .iter()
                        .map(|n| match n {
                            Value::Null => Ok(None),
                            // A bare NaN (read as a marker) is no name. Other names stay as parsed
                            // (NULs and lone surrogates escaped), which is how they are
                            // written back.
                            Value::String(s) if super::json::bare_token_text(s).is_none() => {
                                Ok(Some(s.clone()))
                            }
                            _ => Err(MetadataError::invalid(
                                "dimension_names",
                                v,
                                "expected strings or null",
                            )),
                        })
                        .collect::<Result<_, _>>()?,
                )
            }
            Some(other) => {
                return Err(MetadataError::invalid(
                    "dimension_names",
                    other,
                    "expected a list",
                ))
            }
        };

        let attributes = parse_attributes(&obj)?;
        let extra_fields = collect_extra(
            &obj,
            &[
                "zarr_format",
                "node_type",
                "shape",
                "data_type",
                "chunk_grid",
                "chunk_key_encoding",
                "fill_value",
                "codecs",
                "attributes",
                "storage_transformers",
                "dimension_names",
            ],
        )?;
        Ok(Self {
            shape,
            data_type,
            chunk_shape,
            chunk_key_encoding,
            fill_value,
            codecs,
            attributes,
            dimension_names,
            extra_fields,
        })
    }

    /// Parses an array's `zarr.json`; a group's is an error.
    pub fn parse(bytes: &[u8], key: &str) -> Result<Self, MetadataError> {
        match NodeMetadataV3::parse(bytes, key)? {
            NodeMetadataV3::Array(a) => Ok(*a),
            NodeMetadataV3::Group(_) => Err(MetadataError::invalid(
                "node_type",
                &Value::String("group".into()),
                "expected an array",
            )),
        }
    }

    /// The fill value as one element's native-endian bytes.
    pub fn fill_value_bytes(&self) -> Result<Vec<u8>, MetadataError> {
        fill_value::parse(&self.data_type, &self.fill_value)
    }

    /// The document as a JSON object, in the order zarr-python writes the fields.
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("shape".into(), self.shape.clone().into());
        obj.insert("data_type".into(), self.data_type.to_metadata());
        obj.insert(
            "chunk_grid".into(),
            serde_json::json!({"name": "regular", "configuration": {"chunk_shape": self.chunk_shape}}),
        );
        obj.insert(
            "chunk_key_encoding".into(),
            self.chunk_key_encoding.to_metadata(),
        );
        obj.insert("fill_value".into(), self.fill_value.clone());
        obj.insert("codecs".into(), Value::Array(self.codecs.clone()));
        obj.insert("attributes".into(), Value::Object(self.attributes.clone()));
        if let Some(names) = &self.dimension_names {
            obj.insert("dimension_names".into(), serde_json::json!(names));
        }
        obj.insert("zarr_format".into(), 3.into());
        obj.insert("node_type".into(), "array".into());
        obj.insert("storage_transformers".into(), Value::Array(vec![]));
        for (k, v) in &self.extra_fields {
            obj.insert(k.clone(), v.clone());
        }
        Value::Object(obj)
    }

    pub fn to_json(&self) -> Vec<u8> {
        to_pretty_json(&self.to_value())
    }
}

impl GroupMetadataV3 {
    fn from_object(mut obj: Map<String, Value>) -> Result<Self, MetadataError> {
        let attributes = parse_attributes(&obj)?;
        // zarr-python 3.0.0 to 3.1.3 wrote `"consolidated_metadata": null` into every group it
        // did not consolidate; it and later versions read that as no consolidated metadata, so
        // oxzarr does too (and leaves the null out when it writes the group again).
        if obj.get("consolidated_metadata") == Some(&Value::Null) {
            obj.remove("consolidated_metadata");
        }
        // Consolidated metadata is a field oxzarr knows (zarr-python's, checked when it is
        // used), kept whatever its "must_understand" says: it is not an extension to refuse.
        let consolidated = obj
            .remove_entry("consolidated_metadata")
            .and_then(|(key, value)| match value.is_object() {
                true => Some(value),
                false => {
                    obj.insert(key, value); // not zarr-python's form: an extension field
                    None
                }
            });
        let mut extra_fields = collect_extra(&obj, &["zarr_format", "node_type", "attributes"])?;
        if let Some(consolidated) = consolidated {
            extra_fields.insert("consolidated_metadata".into(), consolidated);
        }
        Ok(Self {
            attributes,
            extra_fields,
        })
    }

    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("attributes".into(), Value::Object(self.attributes.clone()));
        obj.insert("zarr_format".into(), 3.into());
        // zarr-python's order (consolidated metadata before the node type), so that a
        // consolidated group's zarr.json is the same bytes from either library.
        if let Some(consolidated) = self.extra_fields.get("consolidated_metadata") {
            obj.insert("consolidated_metadata".into(), consolidated.clone());
        }
        obj.insert("node_type".into(), "group".into());
        for (k, v) in &self.extra_fields {
            obj.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(obj)
    }

    pub fn to_json(&self) -> Vec<u8> {
        to_pretty_json(&self.to_value())
    }
}

/// JSON indented by two spaces, as zarr-python writes it.
pub fn to_pretty_json(value: &Value) -> Vec<u8> {
    super::json::to_vec_pretty(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    type TestResult = Result<(), Box<dyn std::error::Error>>;
    use serde_json::json;

    fn array_doc() -> Value {
        json!({
            "zarr_format": 3, "node_type": "array", "shape": [10, 0], "data_type": "float32",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 3]}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "."}},
            "fill_value": "NaN",
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            "attributes": {"a": [1, 2]}, "dimension_names": ["x", null],
        })
    }

    fn parse(v: &Value) -> Result<NodeMetadataV3, MetadataError> {
        NodeMetadataV3::parse(&serde_json::to_vec(v).unwrap(), "x/zarr.json")
    }

    #[test]
    fn array_round_trip() {
        let NodeMetadataV3::Array(a) = parse(&array_doc()).unwrap() else {
            panic!("not an array")
        };
        assert_eq!(a.shape, vec![10, 0]);
        assert_eq!(a.chunk_shape, vec![4, 3]);
        assert_eq!(
            a.chunk_key_encoding,
            ChunkKeyEncoding::Default { separator: '.' }
        );
        assert_eq!(a.dimension_names, Some(vec![Some("x".into()), None]));
        let again = ArrayMetadataV3::parse(&a.to_json(), "x").unwrap();
        assert_eq!(again, *a);
    }

    #[test]
    fn unknown_fields_need_must_understand_false() {
        let mut doc = array_doc();
        doc["future"] = json!({"must_understand": false, "x": 1});
        let NodeMetadataV3::Array(a) = parse(&doc).unwrap() else {
            panic!()
        };
        assert!(a.extra_fields.contains_key("future"));
        doc["other"] = json!({"x": 1});
        let err = parse(&doc).unwrap_err().to_string();
        assert!(err.contains("other"), "{err}");
    }

    #[test]
    fn zarr_format_as_a_float() {
        let mut doc = array_doc();
        doc["zarr_format"] = json!(3.0);
        let parsed = parse(&doc).unwrap();
        // Written again as the integer.
        let written: Value = serde_json::from_slice(&parsed.to_json()).unwrap();
        assert_eq!(written["zarr_format"].to_string(), "3");
        for other in [json!(3.5), json!("3"), json!(true), json!(null), json!(-3)] {
            doc["zarr_format"] = other.clone();
            assert!(parse(&doc).is_err(), "{other}");
        }
    }

    #[test]
    fn bad_documents_name_the_field() {
        let cases = [
            ("shape", json!("x"), "shape"),
            ("data_type", json!("float128"), "data_type"),
            ("fill_value", json!("nope"), "fill_value"),
            ("zarr_format", json!(2), "zarr_format"),
            (
                "chunk_key_encoding",
                json!({"name": "weird"}),
                "chunk_key_encoding",
            ),
            ("dimension_names", json!(["x"]), "dimension_names"),
            (
                "storage_transformers",
                json!([{"name": "t"}]),
                "storage_transformers",
            ),
        ];
        for (field, value, expect) in cases {
            let mut doc = array_doc();
            doc[field] = value;
            let err = parse(&doc).unwrap_err().to_string();
            assert!(err.contains(expect), "{field}: {err}");
        }
        let err = NodeMetadataV3::parse(b"{not json", "a/zarr.json").unwrap_err();
        assert!(err.to_string().contains("a/zarr.json"));
    }

    #[test]
    fn chunk_keys() {
        let d = ChunkKeyEncoding::Default { separator: '/' };
        assert_eq!(d.encode(&[1, 20, 3]), "c/1/20/3");
        assert_eq!(d.encode(&[]), "c");
        let v2 = ChunkKeyEncoding::V2 { separator: '.' };
        assert_eq!(v2.encode(&[1, 2]), "1.2");
        assert_eq!(v2.encode(&[]), "0");
        let ce = ChunkKeyEncoding::from_metadata(&json!("v2")).unwrap();
        assert_eq!(ce, v2);
        assert_eq!(d.decode("c/1/20/3", 3), Some(vec![1, 20, 3]));
        assert_eq!(d.decode("c/1/20/3", 2), None);
        assert_eq!(d.decode("c", 0), Some(vec![]));
        assert_eq!(d.decode("c", 1), None);
        assert_eq!(d.decode("zarr.json", 1), None);
        assert_eq!(v2.decode("1.2", 2), Some(vec![1, 2]));
        assert_eq!(v2.decode(".zarray", 1), None);
        // A 0-d array's chunk key is "0", which names a 1-d array's first chunk too.
        assert_eq!(v2.decode("0", 0), Some(vec![]));
        assert_eq!(v2.decode("0", 1), Some(vec![0]));
        assert_eq!(v2.decode("1", 0), None);
        // Names that parse but are not the encoding's own: stray copies, not chunks.
        for stray in ["c/00/0", "c/+0/0", "c/0/000", "c/ 1/0", "c/0/-0"] {
            assert_eq!(d.decode(stray, 2), None, "{stray}");
        }
        for stray in ["00.0", "+0.0", "0.01"] {
            assert_eq!(v2.decode(stray, 2), None, "{stray}");
        }
        assert_eq!(d.decode("c/10/0", 2), Some(vec![10, 0]));
    }

    #[test]
    fn groups() {
        let g = parse(&json!({"zarr_format": 3, "node_type": "group", "attributes": {"k": 1}}))
            .unwrap();
        let NodeMetadataV3::Group(g) = g else {
            panic!()
        };
        assert_eq!(g.attributes["k"], json!(1));
        assert!(parse(&json!({"zarr_format": 3, "node_type": "thing"})).is_err());
    }

    #[test]
    fn groups_of_zarr_python_3_0_without_consolidated_metadata() -> TestResult {
        let doc = json!({"zarr_format": 3, "node_type": "group", "attributes": {"k": 1},
                         "consolidated_metadata": null});
        let NodeMetadataV3::Group(g) = parse(&doc)? else {
            return Err("not a group".into());
        };
        assert_eq!(g.attributes["k"], json!(1));
        assert!(g.extra_fields.is_empty(), "{:?}", g.extra_fields);
        assert!(g.to_value().get("consolidated_metadata").is_none());
        // Only null means "none": anything else still needs "must_understand": false.
        let doc = json!({"zarr_format": 3, "node_type": "group", "consolidated_metadata": 1});
        assert!(parse(&doc).is_err());
        // zarr-python's form is read whatever its "must_understand" says.
        let consolidated = json!({"kind": "inline", "must_understand": true, "metadata": {}});
        let doc = json!({"zarr_format": 3, "node_type": "group",
                         "consolidated_metadata": consolidated});
        let NodeMetadataV3::Group(g) = parse(&doc)? else {
            return Err("not a group".into());
        };
        assert_eq!(
            g.extra_fields.get("consolidated_metadata"),
            Some(&consolidated)
        );
        Ok(())
    }
}
