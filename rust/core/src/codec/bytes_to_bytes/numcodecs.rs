//! `numcodecs.zstd`, `numcodecs.gzip` and `numcodecs.blosc`: the v3 names zarr-python gives
//! numcodecs' `Zstd`, `GZip` and `Blosc` (v2 ids `zstd`, `gzip`, `blosc`). The bytes are those
//! of the core codecs; what differs is the configuration, which holds numcodecs' parameters
//! with numcodecs' defaults:
//!
//! - `zstd`: `level` (0), `checksum` (false) — the core codec's own.
//! - `gzip`: `level` (1, where the core codec's default is 6; -1 is zlib's default, 6).
//! - `blosc`: `cname` ("lz4"), `clevel` (5), `shuffle` as an integer (1, byte shuffle; -1 is
//!   AUTOSHUFFLE), `blocksize` (0), `typesize` (none: the data type's size, as numcodecs
//!   takes the item size of the array it is given in v2. zarr-python's v3 wrapper hands
//!   numcodecs bytes, so its own frames say 1; frames record their type size, so both read
//!   alike).
//!
//! The configuration is written back as numcodecs' (defaults filled in), so that zarr-python
//! reads what oxzarr writes.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::{blosc::Blosc, gzip::Gzip, zstd::Zstd};
use crate::codec::{check_config_keys, invalid_config, BytesToBytesCodec, ChunkRows};
use crate::error::{CodecError, MetadataError};
use crate::metadata::DataType;

/// The metadata of a numcodecs codec. zarr-python refuses a `numcodecs.*` codec without a
/// `configuration`, so it is written even when empty (fletcher32, packbits).
pub(crate) fn numcodecs_metadata(name: &str, configuration: Map<String, Value>) -> Value {
    let mut obj = Map::new();
    obj.insert("name".into(), Value::String(name.into()));
    obj.insert("configuration".into(), Value::Object(configuration));
    Value::Object(obj)
}

/// A core codec under its numcodecs name and configuration.
#[derive(Debug)]
pub struct NumcodecsAlias {
    name: &'static str,
    inner: Box<dyn BytesToBytesCodec>,
    config: Map<String, Value>,
}

/// numcodecs' parameters of `Zstd`, `GZip` and `Blosc` (v2 ids `zstd`, `gzip`, `blosc`) with
/// the defaults numcodecs takes for a missing one, in numcodecs' order (a null default: none,
/// the data type's size for blosc's `typesize`). Other ids have none here.
pub(crate) fn numcodecs_defaults(id: &str) -> Vec<(&'static str, Value)> {
    match id {
        "zstd" => vec![("level", 0.into()), ("checksum", false.into())],
        "gzip" => vec![("level", 1.into())],
        "blosc" => vec![
            ("cname", "lz4".into()),
            ("clevel", 5.into()),
            ("shuffle", 1.into()),
            ("blocksize", 0.into()),
            ("typesize", Value::Null),
        ],
        _ => Vec::new(),
    }
}

/// `config` with `defaults` for the keys it lacks (or holds as null), in numcodecs' order.
fn with_defaults(config: &Map<String, Value>, defaults: &[(&str, Value)]) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, default) in defaults {
        let value = match config.get(*key) {
            None | Some(Value::Null) => default.clone(),
            Some(v) => v.clone(),
        };
        if !value.is_null() {
            out.insert((*key).to_string(), value);
        }
    }
    out
}

impl NumcodecsAlias {
    pub fn zstd(config: &Map<String, Value>) -> Result<Self, MetadataError> {
        const NAME: &str = "numcodecs.zstd";
        check_config_keys(NAME, config, &["level", "checksum"])?;
        let config = with_defaults(config, &numcodecs_defaults("zstd"));
        let inner = Zstd::from_config(&config).map_err(|e| rename(e, NAME))?;
        Ok(Self {
            name: NAME,
            inner: Box::new(inner),
            config,
        })
    }

    pub fn gzip(config: &Map<String, Value>) -> Result<Self, MetadataError> {
        const NAME: &str = "numcodecs.gzip";
        check_config_keys(NAME, config, &["level"])?;
        let config = with_defaults(config, &numcodecs_defaults("gzip"));
        let level = &config["level"];
        let level = match level.as_i64() {
            Some(-1) => 6,
            Some(l @ 0..=9) => l as u32,
            _ => return Err(invalid_config(NAME, "level", level, "expected -1..=9")),
        };
        Ok(Self {
            name: NAME,
            inner: Box::new(Gzip::new(level)),
            config,
        })
    }

    pub fn blosc(config: &Map<String, Value>) -> Result<Self, MetadataError> {
        const NAME: &str = "numcodecs.blosc";
        check_config_keys(
            NAME,
            config,
            &["cname", "clevel", "shuffle", "blocksize", "typesize"],
        )?;
        if let Some(v) = config.get("shuffle").filter(|v| !v.is_null()) {
            if !matches!(v.as_i64(), Some(-1..=2)) {
                return Err(invalid_config(
                    NAME,
                    "shuffle",
                    v,
                    "expected -1 (auto), 0 (none), 1 (byte) or 2 (bit)",
                ));
            }
        }
        let config = with_defaults(config, &numcodecs_defaults("blosc"));
        // zarr-python hands numcodecs' bytes->bytes codecs the chunk's bytes as a uint8
        // array, from which numcodecs' Blosc takes its typesize (1) unless one is given: the
        // array's data type would shuffle otherwise, and the chunks differ from zarr-python's.
        let inner = Blosc::from_config(&config, &DataType::UInt8).map_err(|e| rename(e, NAME))?;
        Ok(Self {
            name: NAME,
            inner: Box::new(inner),
            config,
        })
    }
}

/// An error of the core codec's configuration, named as the configuration the user wrote.
fn rename(e: MetadataError, name: &str) -> MetadataError {
    match e {
        MetadataError::Invalid {
            field,
            value,
            reason,
        } => MetadataError::Invalid {
            field: field.replacen("codecs[", &format!("codecs[{name} as "), 1),
            value,
            reason,
        },
        MetadataError::Unsupported { field, value } => MetadataError::Unsupported {
            field: field.replacen("codecs[", &format!("codecs[{name} as "), 1),
            value,
        },
        other => other,
    }
}

impl BytesToBytesCodec for NumcodecsAlias {
    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.inner.encode(decoded)
    }

    fn decode<'a>(
        &self,
        encoded: Cow<'a, [u8]>,
        max_decoded: usize,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        self.inner.decode(encoded, max_decoded)
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        self.inner.decode_into(encoded, out)
    }

    fn decode_range_into(
        &self,
        encoded: &[u8],
        out: &mut [u8],
        range: std::ops::Range<usize>,
    ) -> Result<(), CodecError> {
        self.inner.decode_range_into(encoded, out, range)
    }

    fn decode_into_rows(&self, encoded: &[u8], rows: &ChunkRows<'_>) -> Result<bool, CodecError> {
        self.inner.decode_into_rows(encoded, rows)
    }

    fn fixed_encoded_size(&self, decoded_len: usize) -> Option<usize> {
        self.inner.fixed_encoded_size(decoded_len)
    }

    fn writes_rows(&self) -> bool {
        self.inner.writes_rows()
    }

    fn max_encoded_size(&self, decoded_len: usize) -> usize {
        self.inner.max_encoded_size(decoded_len)
    }

    fn name(&self) -> &'static str {
        self.name
    }

    fn metadata(&self) -> Value {
        numcodecs_metadata(self.name, self.config.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn numcodecs_defaults_and_metadata() {
        let z = NumcodecsAlias::zstd(&Map::new()).unwrap();
        assert_eq!(
            z.metadata(),
            json!({"name": "numcodecs.zstd", "configuration": {"level": 0, "checksum": false}})
        );
        let g = NumcodecsAlias::gzip(&Map::new()).unwrap();
        assert_eq!(
            g.metadata(),
            json!({"name": "numcodecs.gzip", "configuration": {"level": 1}})
        );
        let b = NumcodecsAlias::blosc(&obj(json!({"cname": "zstd", "shuffle": -1}))).unwrap();
        assert_eq!(
            b.metadata(),
            json!({"name": "numcodecs.blosc", "configuration":
                   {"cname": "zstd", "clevel": 5, "shuffle": -1, "blocksize": 0}})
        );
        let data: Vec<u8> = (0..4000u32)
            .flat_map(|i| ((i % 300) as u16).to_le_bytes())
            .collect();
        for codec in [z, g, b] {
            let enc = codec.encode(&data).unwrap();
            let mut out = vec![0u8; data.len()];
            codec.decode_into(&enc, &mut out).unwrap();
            assert_eq!(out, data, "{}", codec.name());
            assert!(codec.decode(Cow::Borrowed(&enc), data.len() - 1).is_err());
        }
    }

    #[test]
    fn blosc_frames_carry_numcodecs_settings() {
        // A missing typesize is 1, as numcodecs takes it from the uint8 buffer zarr-python
        // hands it; shuffle 1 is byte shuffle (flag bit 0).
        let b = NumcodecsAlias::blosc(&Map::new()).unwrap();
        let enc = b.encode(&[0u8; 400]).unwrap();
        assert_eq!((enc[2] & 0x1, enc[3]), (1, 1));
        let b = NumcodecsAlias::blosc(&obj(json!({"typesize": 2, "shuffle": 0}))).unwrap();
        let enc = b.encode(&[0u8; 400]).unwrap();
        assert_eq!((enc[2] & 0x5, enc[3]), (0, 2));
        assert_eq!(b.metadata()["configuration"]["typesize"], json!(2));
    }

    #[test]
    fn bad_configs() {
        // numcodecs stores any level and libzstd clamps it: such arrays open.
        assert!(NumcodecsAlias::zstd(&obj(json!({"level": 23}))).is_ok());
        assert!(NumcodecsAlias::zstd(&obj(json!({"level": 1u64 << 40}))).is_err());
        assert!(NumcodecsAlias::zstd(&obj(json!({"clevel": 1}))).is_err());
        assert!(NumcodecsAlias::gzip(&obj(json!({"level": 10}))).is_err());
        assert!(NumcodecsAlias::gzip(&obj(json!({"level": -2}))).is_err());
        for bad in [
            json!({"shuffle": "shuffle"}),
            json!({"shuffle": 3}),
            json!({"cname": "snappy"}),
        ] {
            let err = NumcodecsAlias::blosc(&obj(bad.clone())).unwrap_err();
            assert!(err.to_string().contains("numcodecs.blosc"), "{bad}: {err}");
        }
    }
}
