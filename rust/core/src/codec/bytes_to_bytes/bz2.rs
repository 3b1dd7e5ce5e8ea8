//! `bz2` (v2 numcodecs id `bz2`; v3 name `numcodecs.bz2`): bzip2 streams, as numcodecs'
//! `BZ2(level)` writes them with Python's `bz2.compress` (level = block size in 100 kB,
//! default 1).
//!
//! The `bzip2` crate's default backend is libbz2-rs-sys, a Rust port of libbzip2 that writes
//! the same bytes, so no C library is built. Decoding accepts concatenated streams, as Python's
//! `bz2.decompress` does.

use std::borrow::Cow;
use std::io::Write;

use bzip2::read::MultiBzDecoder;
use bzip2::write::BzEncoder;
use bzip2::Compression;
use serde_json::{Map, Value};

use super::stream::{read_bounded, read_exact_to_end};
use crate::codec::{check_config_keys, codec_metadata, invalid_config, BytesToBytesCodec};
use crate::error::{CodecError, MetadataError};

const NAME: &str = "numcodecs.bz2";

#[derive(Debug, Clone)]
pub struct Bz2 {
    level: u32,
}

impl Bz2 {
    pub fn new(level: u32) -> Self {
        Self {
            level: level.clamp(1, 9),
        }
    }

    pub fn from_config(config: &Map<String, Value>) -> Result<Self, MetadataError> {
        check_config_keys(NAME, config, &["level"])?;
        let level = match config.get("level") {
            None | Some(Value::Null) => 1,
            Some(v) => v
                .as_u64()
                .filter(|l| (1..=9).contains(l))
                .ok_or_else(|| invalid_config(NAME, "level", v, "expected 1..=9"))?
                as u32,
        };
        Ok(Self { level })
    }
}

impl BytesToBytesCodec for Bz2 {
    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut enc = BzEncoder::new(
            Vec::with_capacity(decoded.len() / 2 + 64),
            Compression::new(self.level),
        );
        enc.write_all(decoded)
            .and_then(|_| enc.finish())
            .map_err(|e| CodecError::Encode {
                codec: NAME,
                reason: e.to_string(),
            })
    }

    fn decode<'a>(
        &self,
        encoded: Cow<'a, [u8]>,
        max_decoded: usize,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        let hint = encoded.len().saturating_mul(4);
        read_bounded(NAME, MultiBzDecoder::new(&encoded[..]), max_decoded, hint).map(Cow::Owned)
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        read_exact_to_end(NAME, MultiBzDecoder::new(encoded), out)
    }

    fn max_encoded_size(&self, decoded_len: usize) -> usize {
        // libbzip2's documented worst case is 1% larger plus 600 bytes; double both for
        // streams of other writers (several concatenated, say).
        decoded_len + decoded_len / 50 + 1200
    }

    fn name(&self) -> &'static str {
        NAME
    }

    fn metadata(&self) -> Value {
        let mut config = Map::new();
        config.insert("level".into(), self.level.into());
        codec_metadata(NAME, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::bytes_to_bytes::stream::hex;
    use serde_json::json;

    /// `numcodecs.BZ2(level=1).encode(np.arange(64, dtype="<u2").tobytes())`.
    const NUMCODECS_LEVEL1: &str = "425a68313141592653595dd20d17000000f8007fffffffffffffffa000546\
        7a81301180004d346000119300e6000980009800000001e01f0108310518720928b33f1a71e822926a2ab2ec3\
        2d37fdc75e7e08628e49669e8a6aaecb6ebf0c72fbfb3d3febb6fc73c00000742ee48a70a120bba41a2e";

    fn sample() -> Vec<u8> {
        (0..64u16).flat_map(|i| i.to_le_bytes()).collect()
    }

    #[test]
    fn writes_what_numcodecs_writes() {
        let codec = Bz2::from_config(&Map::new()).unwrap();
        assert_eq!(codec.encode(&sample()).unwrap(), hex(NUMCODECS_LEVEL1));
        let mut out = vec![0u8; 128];
        codec.decode_into(&hex(NUMCODECS_LEVEL1), &mut out).unwrap();
        assert_eq!(out, sample());
        // Level 9 differs from level 1 only in the block-size digit of the header.
        let mut level9 = hex(NUMCODECS_LEVEL1);
        level9[3] = b'9';
        assert_eq!(Bz2::new(9).encode(&sample()).unwrap(), level9);
        assert_eq!(
            codec.metadata(),
            json!({"name": NAME, "configuration": {"level": 1}})
        );
    }

    #[test]
    fn round_trip_bounds_and_corruption() {
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| (i % 251) as u8 ^ (i >> 9) as u8)
            .collect();
        let codec = Bz2::new(1);
        let enc = codec.encode(&data).unwrap();
        assert!(enc.len() <= codec.max_encoded_size(data.len()));
        let dec = codec.decode(Cow::Borrowed(&enc), data.len()).unwrap();
        assert_eq!(dec.as_ref(), &data[..]);
        assert!(matches!(
            codec.decode(Cow::Borrowed(&enc), data.len() - 1),
            Err(CodecError::TooLarge { .. })
        ));
        // Two concatenated streams decode as one.
        let mut two = codec.encode(&data[..1000]).unwrap();
        two.extend(codec.encode(&data[1000..3000]).unwrap());
        let mut out = vec![0u8; 3000];
        codec.decode_into(&two, &mut out).unwrap();
        assert_eq!(out, &data[..3000]);
        let mut out = vec![0u8; data.len()];
        assert!(codec.decode_into(&enc[..enc.len() / 2], &mut out).is_err());
        assert!(codec.decode_into(b"BZh9garbage", &mut out).is_err());
        let mut bad = enc.clone();
        bad[enc.len() / 2] ^= 0x10;
        assert!(codec.decode_into(&bad, &mut out).is_err());
        let random: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let enc = codec.encode(&random).unwrap();
        assert!(enc.len() <= codec.max_encoded_size(random.len()));
        for bad in [
            json!({"level": 0}),
            json!({"level": 10}),
            json!({"blocksize": 9}),
        ] {
            assert!(Bz2::from_config(bad.as_object().unwrap()).is_err(), "{bad}");
        }
    }
}
