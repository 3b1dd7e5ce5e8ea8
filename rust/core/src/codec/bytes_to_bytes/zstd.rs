//! `zstd` (v3 core codec `zstd`; v2 numcodecs id `zstd`): Zstandard frames, with the content size
//! in the frame header. Spec: zarr-specs v3.0, codecs/zstd.
//!
//! Compression and decompression contexts are kept per thread and reused: creating one costs
//! more than decoding a small chunk.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::Read;

use serde_json::{Map, Value};
use zstd::zstd_safe::{self, CCtx, CParameter, DCtx};

use crate::codec::{
    check_config_keys, check_len, codec_metadata, invalid_config, BytesToBytesCodec,
};
use crate::error::{CodecError, MetadataError};

const NAME: &str = "zstd";

thread_local! {
    static CCTX: RefCell<Option<CCtx<'static>>> = const { RefCell::new(None) };
    static DCTX: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

#[derive(Debug, Clone)]
pub struct Zstd {
    level: i32,
    checksum: bool,
}

fn zstd_error(code: usize) -> CodecError {
    CodecError::corrupt(NAME, zstd_safe::get_error_name(code))
}

impl Zstd {
    pub fn new(level: i32, checksum: bool) -> Self {
        Self { level, checksum }
    }

    pub fn from_config(config: &Map<String, Value>) -> Result<Self, MetadataError> {
        check_config_keys(NAME, config, &["level", "checksum"])?;
        let level = match config.get("level") {
            None => 0,
            Some(v) => v
                .as_i64()
                .filter(|l| (-131072..=22).contains(l))
                .ok_or_else(|| invalid_config(NAME, "level", v, "expected -131072..=22"))?
                as i32,
        };
        let checksum = match config.get("checksum") {
            None => false,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| invalid_config(NAME, "checksum", v, "expected true or false"))?,
        };
        Ok(Self { level, checksum })
    }

    /// The decoded size from the frame headers: `Ok(None)` if a frame does not record it.
    fn content_size(encoded: &[u8], max_decoded: usize) -> Result<Option<usize>, CodecError> {
        match zstd_safe::find_decompressed_size(encoded) {
            Ok(Some(n)) if n > max_decoded as u64 => Err(CodecError::TooLarge {
                codec: NAME,
                actual: n.min(usize::MAX as u64) as usize,
                limit: max_decoded,
            }),
            Ok(Some(n)) => Ok(Some(n as usize)),
            Ok(None) => Ok(None),
            Err(_) => Err(CodecError::corrupt(NAME, "not a zstd frame")),
        }
    }

    /// Decodes frames that do not record their size, stopping one byte past the limit.
    fn decode_streaming(encoded: &[u8], max_decoded: usize) -> Result<Vec<u8>, CodecError> {
        let decoder =
            zstd::stream::read::Decoder::new(encoded).map_err(|e| CodecError::corrupt(NAME, e))?;
        let mut out = Vec::new();
        decoder
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
        Ok(out)
    }

    fn with_dctx<T>(f: impl FnOnce(&mut DCtx<'static>) -> T) -> T {
        DCTX.with(|cell| {
            let mut slot = cell.borrow_mut();
            f(slot.get_or_insert_with(DCtx::create))
        })
    }
}

impl BytesToBytesCodec for Zstd {
    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        CCTX.with(|cell| {
            let mut slot = cell.borrow_mut();
            let cctx = slot.get_or_insert_with(CCtx::create);
            let setup = |cctx: &mut CCtx<'static>| -> Result<(), usize> {
                cctx.reset(zstd_safe::ResetDirective::SessionAndParameters)?;
                cctx.set_parameter(CParameter::CompressionLevel(self.level))?;
                cctx.set_parameter(CParameter::ChecksumFlag(self.checksum))?;
                Ok(())
            };
            setup(cctx).map_err(|code| CodecError::Encode {
                codec: NAME,
                reason: zstd_safe::get_error_name(code).to_string(),
            })?;
            let mut out = Vec::with_capacity(zstd_safe::compress_bound(decoded.len()));
            cctx.compress2(&mut out, decoded)
                .map_err(|code| CodecError::Encode {
                    codec: NAME,
                    reason: zstd_safe::get_error_name(code).to_string(),
                })?;
            Ok(out)
        })
    }

    fn decode<'a>(
        &self,
        encoded: Cow<'a, [u8]>,
        max_decoded: usize,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        let Some(size) = Self::content_size(&encoded, max_decoded)? else {
            return Self::decode_streaming(&encoded, max_decoded).map(Cow::Owned);
        };
        let mut out = Vec::with_capacity(size);
        let written =
            Self::with_dctx(|dctx| dctx.decompress(&mut out, &encoded)).map_err(zstd_error)?;
        check_len(NAME, written, size)?;
        Ok(Cow::Owned(out))
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        match Self::content_size(encoded, out.len())? {
            Some(size) => {
                check_len(NAME, size, out.len())?;
                let written =
                    Self::with_dctx(|dctx| dctx.decompress(out, encoded)).map_err(zstd_error)?;
                check_len(NAME, written, out.len())
            }
            None => {
                let decoded = Self::decode_streaming(encoded, out.len())?;
                check_len(NAME, decoded.len(), out.len())?;
                out.copy_from_slice(&decoded);
                Ok(())
            }
        }
    }

    fn max_encoded_size(&self, decoded_len: usize) -> usize {
        zstd_safe::compress_bound(decoded_len)
    }

    fn name(&self) -> &'static str {
        NAME
    }

    fn metadata(&self) -> Value {
        let mut config = Map::new();
        config.insert("level".into(), self.level.into());
        config.insert("checksum".into(), self.checksum.into());
        codec_metadata(NAME, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn round_trip_and_limits() {
        let codec = Zstd::new(3, true);
        let data: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        let enc = codec.encode(&data).unwrap();
        assert!(enc.len() < data.len());
        let dec = codec.decode(Cow::Borrowed(&enc), data.len()).unwrap();
        assert_eq!(dec.as_ref(), &data[..]);
        let mut out = vec![0u8; data.len()];
        codec.decode_into(&enc, &mut out).unwrap();
        assert_eq!(out, data);
        assert!(matches!(
            codec.decode(Cow::Borrowed(&enc), data.len() - 1),
            Err(CodecError::TooLarge { .. })
        ));
        // A corrupted frame fails its checksum.
        let mut bad = enc.clone();
        let n = bad.len();
        bad[n / 2] ^= 0xff;
        assert!(codec.decode_into(&bad, &mut out).is_err());
    }

    #[test]
    fn frames_without_content_size_are_bounded() {
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        enc.include_contentsize(false).unwrap();
        enc.write_all(&[7u8; 5000]).unwrap();
        let enc = enc.finish().unwrap();
        let codec = Zstd::new(1, false);
        assert_eq!(codec.decode(Cow::Borrowed(&enc), 5000).unwrap().len(), 5000);
        assert!(codec.decode(Cow::Borrowed(&enc), 4999).is_err());
        let mut out = vec![0u8; 5000];
        codec.decode_into(&enc, &mut out).unwrap();
        assert_eq!(out, vec![7u8; 5000]);
    }
}
