//! `crc32c` (v3 core codec; no v2 equivalent): appends the CRC-32C of the bytes, little endian,
//! and checks it on decode (unless checksum validation is switched off in the config). Spec:
//! zarr-specs v3.0, codecs/crc32c.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::codec::{check_config_keys, codec_metadata, BytesToBytesCodec};
use crate::error::{CodecError, MetadataError};

const NAME: &str = "crc32c";

#[derive(Debug, Clone, Default)]
pub struct Crc32c;

impl Crc32c {
    pub fn from_config(config: &Map<String, Value>) -> Result<Self, MetadataError> {
        check_config_keys(NAME, config, &[])?;
        Ok(Self)
    }

    /// The payload of `encoded` after checking its checksum.
    fn payload(encoded: &[u8]) -> Result<usize, CodecError> {
        let Some(n) = encoded.len().checked_sub(4) else {
            return Err(CodecError::corrupt(
                NAME,
                "shorter than its 4-byte checksum",
            ));
        };
        if crate::config::validate_checksums() {
            let stored =
                u32::from_le_bytes([encoded[n], encoded[n + 1], encoded[n + 2], encoded[n + 3]]);
            let actual = crc32c::crc32c(&encoded[..n]);
            if stored != actual {
                return Err(CodecError::corrupt(
                    NAME,
                    format!("checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"),
                ));
            }
        }
        Ok(n)
    }
}

impl BytesToBytesCodec for Crc32c {
    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(decoded.len() + 4);
        out.extend_from_slice(decoded);
        out.extend_from_slice(&crc32c::crc32c(decoded).to_le_bytes());
        Ok(out)
    }

    fn decode<'a>(
        &self,
        encoded: Cow<'a, [u8]>,
        max_decoded: usize,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        let n = Self::payload(&encoded)?;
        if n > max_decoded {
            return Err(CodecError::TooLarge {
                codec: NAME,
                actual: n,
                limit: max_decoded,
            });
        }
        Ok(match encoded {
            Cow::Borrowed(b) => Cow::Borrowed(&b[..n]),
            Cow::Owned(mut v) => {
                v.truncate(n);
                Cow::Owned(v)
            }
        })
    }

    fn max_encoded_size(&self, decoded_len: usize) -> usize {
        decoded_len + 4
    }

    fn name(&self) -> &'static str {
        NAME
    }

    fn metadata(&self) -> Value {
        codec_metadata(NAME, Map::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_and_checks() {
        let enc = Crc32c.encode(b"123456789").unwrap();
        // The CRC-32C check value of "123456789".
        assert_eq!(&enc[9..], &0xe306_9283u32.to_le_bytes());
        assert_eq!(
            Crc32c.decode(Cow::Borrowed(&enc), 9).unwrap().as_ref(),
            b"123456789"
        );
        let mut bad = enc.clone();
        bad[0] ^= 1;
        let err = Crc32c.decode(Cow::Borrowed(&bad), 9).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"));
        assert!(Crc32c.decode(Cow::Borrowed(&enc[..3]), 9).is_err());
    }
}
