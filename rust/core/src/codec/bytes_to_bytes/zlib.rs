//! `zlib` (v2 numcodecs id `zlib`; v3 name `numcodecs.zlib`): RFC 1950 zlib streams, as
//! numcodecs' `Zlib(level)` writes them with Python's `zlib.compress`.
//!
//! numcodecs' default level is 1 (not zlib's 6), and -1 means zlib's default. The streams are
//! made by zlib-rs (through flate2), which is not byte-for-byte zlib 1.2: both decode each
//! other's streams, but the compressed bytes may differ.

use std::borrow::Cow;
use std::io::Write;

use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use serde_json::{Map, Value};

use super::stream::{read_bounded, read_exact_to_end};
use crate::codec::{check_config_keys, codec_metadata, invalid_config, BytesToBytesCodec};
use crate::error::{CodecError, MetadataError};

const NAME: &str = "numcodecs.zlib";

#[derive(Debug, Clone)]
pub struct Zlib {
    /// As configured (-1..=9), written back as given.
    level: i32,
}

impl Zlib {
    pub fn new(level: i32) -> Self {
        Self { level }
    }

    pub fn from_config(config: &Map<String, Value>) -> Result<Self, MetadataError> {
        check_config_keys(NAME, config, &["level"])?;
        let level = match config.get("level") {
            None | Some(Value::Null) => 1,
            Some(v) => v
                .as_i64()
                .filter(|l| (-1..=9).contains(l))
                .ok_or_else(|| invalid_config(NAME, "level", v, "expected -1..=9"))?
                as i32,
        };
        Ok(Self { level })
    }

    fn compression(&self) -> Compression {
        if self.level < 0 {
            Compression::default()
        } else {
            Compression::new(self.level as u32)
        }
    }
}

impl BytesToBytesCodec for Zlib {
    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut enc = ZlibEncoder::new(
            Vec::with_capacity(decoded.len() / 2 + 64),
            self.compression(),
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
        read_bounded(NAME, ZlibDecoder::new(&encoded[..]), max_decoded, hint).map(Cow::Owned)
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        read_exact_to_end(NAME, ZlibDecoder::new(encoded), out)
    }

    fn max_encoded_size(&self, decoded_len: usize) -> usize {
        // Stored deflate blocks cost 5 bytes per 16 KiB at worst, plus the 2-byte header, the
        // 4-byte Adler-32 trailer and slack for a preset dictionary id.
        decoded_len + 5 * (decoded_len / 16383 + 1) + 64
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

    /// `numcodecs.Zlib(level=1).encode(np.arange(64, dtype="<u2").tobytes())`.
    const NUMCODECS_LEVEL1: &str = "780105c1830102000000b065dbb66dd7ff5fb511101412161115139790949\
        2969195935750545256515553d7d0d4d2d6d1d5d33730343236313533b7b0b4b2b6b1b5b37770747276717573\
        f7f0f4f2f6f1f5f30755cf07e1";
    /// `numcodecs.Zlib(level=0)` of the same: stored blocks, which every deflater writes alike.
    const NUMCODECS_LEVEL0: &str = "78010180007fff00000100020003000400050006000700080009000a000b0\
        00c000d000e000f0010001100120013001400150016001700180019001a001b001c001d001e001f0020002100\
        220023002400250026002700280029002a002b002c002d002e002f00300031003200330034003500360037003\
        80039003a003b003c003d003e003f0055cf07e1";

    fn sample() -> Vec<u8> {
        (0..64u16).flat_map(|i| i.to_le_bytes()).collect()
    }

    #[test]
    fn reads_what_numcodecs_writes() {
        let data = sample();
        let codec = Zlib::from_config(&Map::new()).unwrap();
        assert_eq!(
            codec.metadata(),
            json!({"name": NAME, "configuration": {"level": 1}})
        );
        for stream in [NUMCODECS_LEVEL1, NUMCODECS_LEVEL0] {
            let mut out = vec![0u8; data.len()];
            codec.decode_into(&hex(stream), &mut out).unwrap();
            assert_eq!(out, data);
        }
        assert_eq!(Zlib::new(0).encode(&data).unwrap(), hex(NUMCODECS_LEVEL0));
    }

    #[test]
    fn round_trip_bounds_and_corruption() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 13) as u8).collect();
        for level in -1..=9 {
            let codec = Zlib::new(level);
            let enc = codec.encode(&data).unwrap();
            assert!(enc.len() <= codec.max_encoded_size(data.len()));
            let dec = codec.decode(Cow::Borrowed(&enc), data.len()).unwrap();
            assert_eq!(dec.as_ref(), &data[..]);
        }
        let codec = Zlib::new(1);
        let enc = codec.encode(&data).unwrap();
        assert!(matches!(
            codec.decode(Cow::Borrowed(&enc), data.len() - 1),
            Err(CodecError::TooLarge { .. })
        ));
        let mut short = vec![0u8; data.len() - 1];
        assert!(codec.decode_into(&enc, &mut short).is_err());
        let mut out = vec![0u8; data.len()];
        assert!(codec.decode_into(&enc[..enc.len() / 2], &mut out).is_err());
        assert!(codec.decode_into(b"not zlib", &mut out).is_err());
        let mut bad = enc.clone();
        let n = bad.len();
        bad[n - 1] ^= 1; // the Adler-32 trailer
        assert!(codec.decode_into(&bad, &mut out).is_err());
        assert!(Zlib::from_config(json!({"level": 10}).as_object().unwrap()).is_err());
        assert!(Zlib::from_config(json!({"lvl": 1}).as_object().unwrap()).is_err());
    }
}
