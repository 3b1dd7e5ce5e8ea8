//! `crc32c` (v3 core codec; no v2 equivalent): appends the CRC-32C of the bytes, little endian,
//! and checks it on decode (unless checksum validation is switched off in the config). Spec:
//! zarr-specs v3.0, codecs/crc32c.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::checksum32::decode_payload;
use crate::alloc;
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
}

impl BytesToBytesCodec for Crc32c {
    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut out = alloc::with_capacity(decoded.len() + 4)?;
        out.extend_from_slice(decoded);
        out.extend_from_slice(&crc32c::crc32c(decoded).to_le_bytes());
        Ok(out)
    }

    fn decode<'a>(
        &self,
        encoded: Cow<'a, [u8]>,
        max_decoded: usize,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        // The core codec's checksum is numcodecs' crc32c at the end: one check for both.
        decode_payload(NAME, encoded, max_decoded, false, crc32c::crc32c)
    }

    fn max_encoded_size(&self, decoded_len: usize) -> usize {
        decoded_len + 4
    }

    fn fixed_encoded_size(&self, decoded_len: usize) -> Option<usize> {
        decoded_len.checked_add(4)
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
