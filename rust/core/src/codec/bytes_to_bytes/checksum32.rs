//! numcodecs' 32-bit checksum codecs: each adds four bytes (little endian) to the chunk and
//! checks them on decode, unless checksum validation is switched off in the config.
//!
//! - `crc32` (v3 name `numcodecs.crc32`): zlib's CRC-32, at the `location` "start" (default)
//!   or "end".
//! - `adler32` (`numcodecs.adler32`): zlib's Adler-32, "start" (default) or "end".
//! - `crc32c` (`numcodecs.crc32c`): CRC-32C, "end" (default, which makes it the v3 core
//!   `crc32c` codec byte for byte) or "start".
//! - `fletcher32` (`numcodecs.fletcher32`, no configuration): numcodecs' own Fletcher-32, the
//!   HDF5/netCDF variant (big-endian 16-bit words, sums folded every 360 words, an odd last
//!   byte taken as a word's high byte), always at the end. It is not the textbook Fletcher-32,
//!   so it is computed here.
//!
//! The numcodecs defaults differ (start for crc32 and adler32, end for crc32c): the location
//! is always written back explicitly.
//!
//! CRC-32 and Adler-32 come from zlib-rs, which flate2 already builds (SIMD where the CPU has
//! it); CRC-32C from the crc32c crate, as for the core codec.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::numcodecs::numcodecs_metadata;
use crate::alloc;
use crate::codec::{check_config_keys, invalid_config, BytesToBytesCodec};
use crate::error::{CodecError, MetadataError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Crc32,
    Adler32,
    Crc32c,
    Fletcher32,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "numcodecs.crc32",
            Self::Adler32 => "numcodecs.adler32",
            Self::Crc32c => "numcodecs.crc32c",
            Self::Fletcher32 => "numcodecs.fletcher32",
        }
    }

    fn default_at_start(self) -> bool {
        matches!(self, Self::Crc32 | Self::Adler32)
    }

    fn checksum(self, data: &[u8]) -> u32 {
        match self {
            Self::Crc32 => zlib_rs::crc32::crc32(0, data),
            Self::Adler32 => zlib_rs::adler32::adler32(1, data),
            Self::Crc32c => crc32c::crc32c(data),
            Self::Fletcher32 => fletcher32(data),
        }
    }
}

/// numcodecs' Fletcher-32 (from HDF5's H5_checksum_fletcher32).
fn fletcher32(data: &[u8]) -> u32 {
    let fold = |s: u32| (s & 0xffff) + (s >> 16);
    let (mut sum1, mut sum2) = (0u32, 0u32);
    let words = data.chunks_exact(2);
    let odd = words.remainder().first().copied();
    // 360 words is the most that cannot overflow sum2 between folds.
    let even = &data[..data.len() - data.len() % 2];
    for block in even.chunks(2 * 360) {
        for word in block.chunks_exact(2) {
            sum1 = sum1.wrapping_add(u32::from(u16::from_be_bytes([word[0], word[1]])));
            sum2 = sum2.wrapping_add(sum1);
        }
        sum1 = fold(sum1);
        sum2 = fold(sum2);
    }
    if let Some(last) = odd {
        sum1 = sum1.wrapping_add(u32::from(last) << 8);
        sum2 = sum2.wrapping_add(sum1);
        sum1 = fold(sum1);
        sum2 = fold(sum2);
    }
    sum1 = fold(sum1);
    sum2 = fold(sum2);
    (sum2 << 16) | sum1
}

#[derive(Debug, Clone)]
pub struct Checksum32 {
    algorithm: Algorithm,
    at_start: bool,
}

impl Checksum32 {
    pub fn new(algorithm: Algorithm, at_start: bool) -> Self {
        let at_start = at_start && algorithm != Algorithm::Fletcher32;
        Self {
            algorithm,
            at_start,
        }
    }

    pub fn from_config(
        algorithm: Algorithm,
        config: &Map<String, Value>,
    ) -> Result<Self, MetadataError> {
        let name = algorithm.name();
        if algorithm == Algorithm::Fletcher32 {
            check_config_keys(name, config, &[])?;
            return Ok(Self::new(algorithm, false));
        }
        check_config_keys(name, config, &["location"])?;
        let at_start = match config.get("location") {
            None | Some(Value::Null) => algorithm.default_at_start(),
            Some(Value::String(s)) if s == "start" => true,
            Some(Value::String(s)) if s == "end" => false,
            Some(v) => {
                return Err(invalid_config(
                    name,
                    "location",
                    v,
                    "expected \"start\" or \"end\"",
                ))
            }
        };
        Ok(Self::new(algorithm, at_start))
    }
}

/// Where the payload lies in `encoded`, a checksum of four bytes (little endian) at its start
/// or end, after checking that checksum against `checksum` of the payload (unless checksum
/// validation is off in the config).
fn checked_payload(
    name: &'static str,
    encoded: &[u8],
    at_start: bool,
    checksum: impl Fn(&[u8]) -> u32,
) -> Result<std::ops::Range<usize>, CodecError> {
    let Some(n) = encoded.len().checked_sub(4) else {
        return Err(CodecError::corrupt(
            name,
            "shorter than its 4-byte checksum",
        ));
    };
    let (sum, payload) = if at_start {
        (0..4, 4..n + 4)
    } else {
        (n..n + 4, 0..n)
    };
    if crate::config::validate_checksums() {
        let s = &encoded[sum];
        let stored = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        let actual = checksum(&encoded[payload.clone()]);
        if stored != actual {
            return Err(CodecError::corrupt(
                name,
                format!("checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"),
            ));
        }
    }
    Ok(payload)
}

/// The checked payload of `encoded` (see [`checked_payload`]), borrowed or in `encoded`'s own
/// buffer, refused if longer than `max_decoded`.
pub(crate) fn decode_payload<'a>(
    name: &'static str,
    encoded: Cow<'a, [u8]>,
    max_decoded: usize,
    at_start: bool,
    checksum: impl Fn(&[u8]) -> u32,
) -> Result<Cow<'a, [u8]>, CodecError> {
    let payload = checked_payload(name, &encoded, at_start, checksum)?;
    if payload.len() > max_decoded {
        return Err(CodecError::TooLarge {
            codec: name,
            actual: payload.len(),
            limit: max_decoded,
        });
    }
    Ok(match encoded {
        Cow::Borrowed(b) => Cow::Borrowed(&b[payload]),
        Cow::Owned(mut v) => {
            v.truncate(payload.end);
            v.drain(..payload.start);
            Cow::Owned(v)
        }
    })
}

impl BytesToBytesCodec for Checksum32 {
    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        let sum = self.algorithm.checksum(decoded).to_le_bytes();
        let mut out = alloc::with_capacity(decoded.len() + 4)?;
        if self.at_start {
            out.extend_from_slice(&sum);
            out.extend_from_slice(decoded);
        } else {
            out.extend_from_slice(decoded);
            out.extend_from_slice(&sum);
        }
        Ok(out)
    }

    fn decode<'a>(
        &self,
        encoded: Cow<'a, [u8]>,
        max_decoded: usize,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        let algorithm = self.algorithm;
        decode_payload(
            algorithm.name(),
            encoded,
            max_decoded,
            self.at_start,
            |payload| algorithm.checksum(payload),
        )
    }

    fn max_encoded_size(&self, decoded_len: usize) -> usize {
        decoded_len + 4
    }

    fn fixed_encoded_size(&self, decoded_len: usize) -> Option<usize> {
        decoded_len.checked_add(4)
    }

    fn name(&self) -> &'static str {
        self.algorithm.name()
    }

    fn metadata(&self) -> Value {
        let mut config = Map::new();
        if self.algorithm != Algorithm::Fletcher32 {
            let location = if self.at_start { "start" } else { "end" };
            config.insert("location".into(), location.into());
        }
        numcodecs_metadata(self.algorithm.name(), config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::bytes_to_bytes::stream::hex;
    use serde_json::json;

    fn codec(algorithm: Algorithm, config: Value) -> Checksum32 {
        Checksum32::from_config(algorithm, config.as_object().unwrap()).unwrap()
    }

    #[test]
    fn writes_what_numcodecs_writes() {
        // `numcodecs.<Codec>(**config).encode(b"123456789")`.
        let cases = [
            (Algorithm::Crc32, json!({}), "2639f4cb313233343536373839"),
            (
                Algorithm::Crc32,
                json!({"location": "end"}),
                "3132333435363738392639f4cb",
            ),
            (Algorithm::Adler32, json!({}), "de011e09313233343536373839"),
            (
                Algorithm::Adler32,
                json!({"location": "end"}),
                "313233343536373839de011e09",
            ),
            (Algorithm::Crc32c, json!({}), "313233343536373839839206e3"),
            (
                Algorithm::Crc32c,
                json!({"location": "start"}),
                "839206e3313233343536373839",
            ),
            (
                Algorithm::Fletcher32,
                json!({}),
                "313233343536373839d509df09",
            ),
        ];
        for (algorithm, config, expected) in cases {
            let c = codec(algorithm, config.clone());
            let enc = c.encode(b"123456789").unwrap();
            assert_eq!(enc, hex(expected), "{algorithm:?} {config}");
            assert_eq!(
                c.decode(Cow::Borrowed(&enc), 9).unwrap().as_ref(),
                b"123456789"
            );
            assert_eq!(
                c.decode(Cow::Owned(enc.clone()), 9).unwrap().as_ref(),
                b"123456789"
            );
            let back = Checksum32::from_config(
                algorithm,
                c.metadata()["configuration"]
                    .as_object()
                    .unwrap_or(&Map::new()),
            )
            .unwrap();
            assert_eq!(back.encode(b"123456789").unwrap(), enc);
        }
        // Fletcher-32 of an odd length (the HDF5 padding rule), of more than one 360-word
        // block, and of all-ones words (the folding): the last four bytes of
        // `Fletcher32().encode(...)` for bytes(range(255)) * 3, bytes(range(256)) * 10 and
        // b"\xff" * 2001.
        let odd: Vec<u8> = (0..=254u8).cycle().take(765).collect();
        let long: Vec<u8> = (0..=255u8).cycle().take(2560).collect();
        let ones = vec![0xffu8; 2001];
        for (data, expected) in [(odd, "40bf20ff"), (long, "7d82faf0"), (ones, "00ff00ff")] {
            assert_eq!(fletcher32(&data).to_le_bytes().to_vec(), hex(expected));
        }
    }

    #[test]
    fn corruption_and_bounds() {
        let c = codec(Algorithm::Crc32, json!({}));
        let enc = c.encode(b"hello world").unwrap();
        let mut bad = enc.clone();
        bad[6] ^= 1;
        let err = c.decode(Cow::Borrowed(&bad), 100).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        assert!(c.decode(Cow::Borrowed(&enc[..3]), 100).is_err());
        assert!(matches!(
            c.decode(Cow::Borrowed(&enc), 10),
            Err(CodecError::TooLarge { .. })
        ));
        let mut out = vec![0u8; 12];
        assert!(c.decode_into(&enc, &mut out).is_err());
        for algorithm in [Algorithm::Adler32, Algorithm::Crc32c, Algorithm::Fletcher32] {
            let c = Checksum32::new(algorithm, true);
            let mut enc = c.encode(&[7u8; 1001]).unwrap();
            enc[500] ^= 0x80;
            assert!(
                c.decode(Cow::Borrowed(&enc), 2000).is_err(),
                "{algorithm:?}"
            );
            assert!(c.decode(Cow::Borrowed(&[]), 2000).is_err());
        }
        for bad in [
            json!({"location": "middle"}),
            json!({"location": 0}),
            json!({"x": 1}),
        ] {
            assert!(Checksum32::from_config(Algorithm::Crc32, bad.as_object().unwrap()).is_err());
        }
        assert!(Checksum32::from_config(
            Algorithm::Fletcher32,
            json!({"location": "end"}).as_object().unwrap()
        )
        .is_err());
    }
}
