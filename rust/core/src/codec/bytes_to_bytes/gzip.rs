//! `gzip` (v3 core codec `gzip`; v2 numcodecs id `gzip`): RFC 1952 gzip streams. Spec:
//! zarr-specs v3.0, codecs/gzip.

use std::borrow::Cow;
use std::io::{Read, Write};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{Map, Value};

use crate::codec::{
    check_config_keys, check_len, codec_metadata, invalid_config, BytesToBytesCodec,
};
use crate::error::{CodecError, MetadataError};

const NAME: &str = "gzip";

#[derive(Debug, Clone)]
pub struct Gzip {
    level: u32,
}

impl Gzip {
    pub fn new(level: u32) -> Self {
        Self { level }
    }

    pub fn from_config(config: &Map<String, Value>) -> Result<Self, MetadataError> {
        check_config_keys(NAME, config, &["level"])?;
        let level = match config.get("level") {
            None => 6,
            Some(v) => v
                .as_u64()
                .filter(|l| *l <= 9)
                .ok_or_else(|| invalid_config(NAME, "level", v, "expected 0..=9"))?
                as u32,
        };
        Ok(Self { level })
    }
}

impl BytesToBytesCodec for Gzip {
    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut enc = GzEncoder::new(
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
        // The trailer's ISIZE (the size mod 2^32) is a good first allocation, never trusted
        // beyond the limit.
        let hint = encoded
            .len()
            .checked_sub(4)
            .map(|i| {
                u32::from_le_bytes([encoded[i], encoded[i + 1], encoded[i + 2], encoded[i + 3]])
            })
            .unwrap_or(0) as usize;
        let mut out = crate::alloc::with_capacity(hint.min(max_decoded))?;
        MultiGzDecoder::new(&encoded[..])
            .take(max_decoded as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| CodecError::corrupt(NAME, e))?;
        if out.len() > max_decoded {
            return Err(CodecError::TooLarge {
                codec: NAME,
                actual: out.len(),
                limit: max_decoded,
            });
        }
        Ok(Cow::Owned(out))
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let mut decoder = MultiGzDecoder::new(encoded);
        let mut filled = 0;
        while filled < out.len() {
            match decoder.read(&mut out[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CodecError::corrupt(NAME, e)),
            }
        }
        check_len(NAME, filled, out.len())?;
        let mut extra = [0u8; 1];
        match decoder.read(&mut extra) {
            Ok(0) => Ok(()),
            Ok(_) => Err(CodecError::corrupt(
                NAME,
                "decodes to more bytes than expected",
            )),
            Err(e) => Err(CodecError::corrupt(NAME, e)),
        }
    }

    fn max_encoded_size(&self, decoded_len: usize) -> usize {
        // Stored deflate blocks cost 5 bytes per 16 KiB at worst, plus the gzip header and
        // trailer; generous slack covers optional header fields of other writers.
        decoded_len + 5 * (decoded_len / 16383 + 1) + 1024
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

    #[test]
    fn round_trip_and_limits() {
        let codec = Gzip::new(6);
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 13) as u8).collect();
        let enc = codec.encode(&data).unwrap();
        assert_eq!(&enc[..2], &[0x1f, 0x8b]);
        let mut out = vec![0u8; data.len()];
        codec.decode_into(&enc, &mut out).unwrap();
        assert_eq!(out, data);
        assert!(codec.decode(Cow::Borrowed(&enc), data.len() - 1).is_err());
        let mut short = vec![0u8; data.len() - 1];
        assert!(codec.decode_into(&enc, &mut short).is_err());
        assert!(codec.decode_into(b"not gzip", &mut out).is_err());
        for level in 0..=9 {
            let c = Gzip::new(level);
            let enc = c.encode(&data).unwrap();
            assert!(enc.len() <= c.max_encoded_size(data.len()));
            assert_eq!(
                c.decode(Cow::Borrowed(&enc), data.len()).unwrap().as_ref(),
                &data[..]
            );
        }
    }
}
