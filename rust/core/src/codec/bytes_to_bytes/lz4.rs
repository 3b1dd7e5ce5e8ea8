//! `lz4` (v2 numcodecs id `lz4`; v3 name `numcodecs.lz4`): one LZ4 *block* (not the LZ4 frame
//! format) behind a 4-byte little-endian uncompressed size, as numcodecs' `LZ4(acceleration)`
//! writes it.
//!
//! The block is made by liblz4 itself through lz4-sys, which c-blosc already links: no new
//! native code, and the same library and version (1.10) numcodecs bundles, so the compressed
//! bytes are numcodecs' own. (lz4_flex, pure Rust, decodes the same blocks but compresses them
//! differently.)

use std::borrow::Cow;
use std::ffi::{c_char, c_int};

use lz4_sys::{LZ4_compressBound, LZ4_compress_fast, LZ4_decompress_safe};
use serde_json::{Map, Value};

use crate::codec::{
    check_config_keys, check_len, codec_metadata, invalid_config, BytesToBytesCodec,
};
use crate::error::{CodecError, MetadataError};

const NAME: &str = "numcodecs.lz4";
const HEADER: usize = 4;
/// liblz4's LZ4_MAX_INPUT_SIZE: larger inputs cannot be one block.
const MAX_INPUT: usize = 0x7E00_0000;

#[derive(Debug, Clone)]
pub struct Lz4 {
    /// As configured; liblz4 treats values below 1 as 1 (numcodecs does the same).
    acceleration: i32,
}

impl Lz4 {
    pub fn new(acceleration: i32) -> Self {
        Self { acceleration }
    }

    pub fn from_config(config: &Map<String, Value>) -> Result<Self, MetadataError> {
        check_config_keys(NAME, config, &["acceleration"])?;
        let acceleration = match config.get("acceleration") {
            None | Some(Value::Null) => 1,
            Some(v) => v
                .as_i64()
                .and_then(|a| i32::try_from(a).ok())
                .ok_or_else(|| invalid_config(NAME, "acceleration", v, "expected an integer"))?,
        };
        Ok(Self { acceleration })
    }

    /// The decoded size from the header.
    fn decoded_size(encoded: &[u8]) -> Result<usize, CodecError> {
        match encoded {
            [a, b, c, d, ..] => Ok(u32::from_le_bytes([*a, *b, *c, *d]) as usize),
            _ => Err(CodecError::corrupt(NAME, "shorter than its 4-byte header")),
        }
    }

    fn decompress(encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let block = &encoded[HEADER..];
        let (Ok(src_len), Ok(dst_len)) = (c_int::try_from(block.len()), c_int::try_from(out.len()))
        else {
            return Err(CodecError::corrupt(NAME, "block too large for LZ4"));
        };
        // SAFETY: liblz4's safe decoder reads at most `src_len` bytes of `block` and writes at
        // most `dst_len` bytes of `out`, whatever the input.
        let n = unsafe {
            LZ4_decompress_safe(
                block.as_ptr() as *const c_char,
                out.as_mut_ptr() as *mut c_char,
                src_len,
                dst_len,
            )
        };
        if n < 0 {
            return Err(CodecError::corrupt(NAME, format!("corrupt block ({n})")));
        }
        check_len(NAME, n as usize, out.len())
    }
}

impl BytesToBytesCodec for Lz4 {
    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        if decoded.len() > MAX_INPUT {
            return Err(CodecError::Encode {
                codec: NAME,
                reason: format!("chunks over {MAX_INPUT} bytes are too large for one LZ4 block"),
            });
        }
        let src_len = decoded.len() as c_int;
        // SAFETY: a pure function of the input size, which is within LZ4's limit.
        let bound = unsafe { LZ4_compressBound(src_len) };
        let mut out = vec![0u8; HEADER + bound as usize];
        out[..HEADER].copy_from_slice(&(decoded.len() as u32).to_le_bytes());
        // SAFETY: `out` has room for the header plus LZ4_compressBound bytes, the most the
        // block can take; the source and destination do not overlap.
        let n = unsafe {
            LZ4_compress_fast(
                decoded.as_ptr() as *const c_char,
                out[HEADER..].as_mut_ptr() as *mut c_char,
                src_len,
                bound,
                self.acceleration,
            )
        };
        if n <= 0 {
            return Err(CodecError::Encode {
                codec: NAME,
                reason: format!("compression failed ({n})"),
            });
        }
        out.truncate(HEADER + n as usize);
        Ok(out)
    }

    fn decode<'a>(
        &self,
        encoded: Cow<'a, [u8]>,
        max_decoded: usize,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        let size = Self::decoded_size(&encoded)?;
        if size > max_decoded {
            return Err(CodecError::TooLarge {
                codec: NAME,
                actual: size,
                limit: max_decoded,
            });
        }
        // The header's size is the damaged chunk's word: allocated fallibly.
        let mut out = crate::alloc::zeroed(size)?;
        Self::decompress(&encoded, &mut out)?;
        Ok(Cow::Owned(out))
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        check_len(NAME, Self::decoded_size(encoded)?, out.len())?;
        Self::decompress(encoded, out)
    }

    fn max_encoded_size(&self, decoded_len: usize) -> usize {
        // LZ4_compressBound: one extra byte per 255, plus 16.
        HEADER + decoded_len + decoded_len / 255 + 16
    }

    fn name(&self) -> &'static str {
        NAME
    }

    fn metadata(&self) -> Value {
        let mut config = Map::new();
        config.insert("acceleration".into(), self.acceleration.into());
        codec_metadata(NAME, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::bytes_to_bytes::stream::hex;
    use serde_json::json;

    /// `numcodecs.LZ4().encode(np.arange(64, dtype="<u2").tobytes())`: incompressible, so
    /// one literal run (acceleration=10 writes the same).
    const NUMCODECS: &str = "80000000f07100000100020003000400050006000700080009000a000b000c000d00\
        0e000f0010001100120013001400150016001700180019001a001b001c001d001e001f0020002100220023002\
        400250026002700280029002a002b002c002d002e002f0030003100320033003400350036003700380039003a\
        003b003c003d003e003f00";

    fn sample() -> Vec<u8> {
        (0..64u16).flat_map(|i| i.to_le_bytes()).collect()
    }

    #[test]
    fn writes_what_numcodecs_writes() {
        let codec = Lz4::from_config(&Map::new()).unwrap();
        assert_eq!(codec.encode(&sample()).unwrap(), hex(NUMCODECS));
        assert_eq!(Lz4::new(10).encode(&sample()).unwrap(), hex(NUMCODECS));
        let mut out = vec![0u8; 128];
        codec.decode_into(&hex(NUMCODECS), &mut out).unwrap();
        assert_eq!(out, sample());
        assert_eq!(
            codec.metadata(),
            json!({"name": NAME, "configuration": {"acceleration": 1}})
        );
    }

    #[test]
    fn round_trip_bounds_and_corruption() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 97) as u8).collect();
        for acceleration in [-1, 0, 1, 10, 1_000_000] {
            let codec = Lz4::new(acceleration);
            let enc = codec.encode(&data).unwrap();
            // Very large accelerations skip over every match.
            assert!(acceleration > 10 || enc.len() < data.len() / 10);
            let dec = codec.decode(Cow::Borrowed(&enc), data.len()).unwrap();
            assert_eq!(dec.as_ref(), &data[..]);
        }
        let codec = Lz4::new(1);
        let enc = codec.encode(&data).unwrap();
        assert!(matches!(
            codec.decode(Cow::Borrowed(&enc), data.len() - 1),
            Err(CodecError::TooLarge { .. })
        ));
        let mut out = vec![0u8; data.len()];
        assert!(codec.decode_into(&enc[..enc.len() - 1], &mut out).is_err());
        assert!(codec.decode_into(&enc[..3], &mut out).is_err());
        // A header that lies about the size.
        let mut lying = enc.clone();
        lying[..4].copy_from_slice(&(data.len() as u32 + 1).to_le_bytes());
        let mut big = vec![0u8; data.len() + 1];
        assert!(codec.decode_into(&lying, &mut big).is_err());
        for i in (4..enc.len()).step_by(7) {
            let mut bad = enc.clone();
            bad[i] ^= 0xa5;
            let _ = codec.decode_into(&bad, &mut out); // an error or garbage, never a crash
        }
        let empty = codec.encode(&[]).unwrap();
        codec.decode_into(&empty, &mut []).unwrap();
        let random: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert!(codec.encode(&random).unwrap().len() <= codec.max_encoded_size(random.len()));
        assert!(Lz4::from_config(json!({"acceleration": "fast"}).as_object().unwrap()).is_err());
    }
}
