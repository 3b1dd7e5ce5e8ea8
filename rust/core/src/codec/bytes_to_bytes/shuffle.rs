//! `shuffle` (v2 numcodecs id `shuffle`; v3 name `numcodecs.shuffle`): numcodecs'
//! `Shuffle(elementsize)`, the byte shuffle on its own (blosc's, without compression): byte `b`
//! of every element, then byte `b + 1` of every element, and so on.
//!
//! A missing `elementsize` means the data type's size, as zarr-python fills it in for v3. In
//! v2 metadata numcodecs' own default of 4 applies, which the v2 reader makes explicit
//! (`metadata::v2::numcodecs_to_v3`). Sizes 0 and 1 leave the bytes as they are; a buffer that
//! is not a whole number of elements is an error, as in numcodecs.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::codec::{
    check_config_keys, check_len, codec_metadata, invalid_config, BytesToBytesCodec,
};
use crate::error::{CodecError, MetadataError};
use crate::metadata::DataType;

const NAME: &str = "numcodecs.shuffle";

#[derive(Debug, Clone)]
pub struct Shuffle {
    elementsize: usize,
}

impl Shuffle {
    pub fn new(elementsize: usize) -> Self {
        Self { elementsize }
    }

    pub fn from_config(
        config: &Map<String, Value>,
        data_type: &DataType,
    ) -> Result<Self, MetadataError> {
        check_config_keys(NAME, config, &["elementsize"])?;
        let elementsize = match config.get("elementsize") {
            None | Some(Value::Null) => data_type.size(),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    invalid_config(NAME, "elementsize", v, "expected an integer >= 0")
                })?,
        };
        Ok(Self { elementsize })
    }

    fn check_whole(&self, len: usize) -> Result<(), CodecError> {
        if self.elementsize > 1 && len % self.elementsize != 0 {
            return Err(CodecError::corrupt(
                NAME,
                format!(
                    "{len} bytes are not a whole number of {}-byte elements",
                    self.elementsize
                ),
            ));
        }
        Ok(())
    }

    /// Byte `b` of element `i` of `src` goes to `dst[b * count + i]`.
    fn shuffle(&self, src: &[u8], dst: &mut [u8]) {
        let size = self.elementsize;
        if size <= 1 || src.is_empty() {
            dst.copy_from_slice(src);
            return;
        }
        let count = src.len() / size;
        for (b, plane) in dst.chunks_exact_mut(count).enumerate() {
            for (d, element) in plane.iter_mut().zip(src.chunks_exact(size)) {
                *d = element[b];
            }
        }
    }

    fn unshuffle(&self, src: &[u8], dst: &mut [u8]) {
        let size = self.elementsize;
        if size <= 1 || src.is_empty() {
            dst.copy_from_slice(src);
            return;
        }
        let count = src.len() / size;
        for (b, plane) in src.chunks_exact(count).enumerate() {
            for (s, element) in plane.iter().zip(dst.chunks_exact_mut(size)) {
                element[b] = *s;
            }
        }
    }
}

impl BytesToBytesCodec for Shuffle {
    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.check_whole(decoded.len())
            .map_err(|_| CodecError::Encode {
                codec: NAME,
                reason: format!(
                    "{} bytes are not a whole number of {}-byte elements",
                    decoded.len(),
                    self.elementsize
                ),
            })?;
        let mut out = vec![0u8; decoded.len()];
        self.shuffle(decoded, &mut out);
        Ok(out)
    }

    fn decode<'a>(
        &self,
        encoded: Cow<'a, [u8]>,
        max_decoded: usize,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        if encoded.len() > max_decoded {
            return Err(CodecError::TooLarge {
                codec: NAME,
                actual: encoded.len(),
                limit: max_decoded,
            });
        }
        self.check_whole(encoded.len())?;
        let mut out = vec![0u8; encoded.len()];
        self.unshuffle(&encoded, &mut out);
        Ok(Cow::Owned(out))
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        check_len(NAME, encoded.len(), out.len())?;
        self.check_whole(encoded.len())?;
        self.unshuffle(encoded, out);
        Ok(())
    }

    fn max_encoded_size(&self, decoded_len: usize) -> usize {
        decoded_len
    }

    fn fixed_encoded_size(&self, decoded_len: usize) -> Option<usize> {
        Some(decoded_len)
    }

    fn name(&self) -> &'static str {
        NAME
    }

    fn metadata(&self) -> Value {
        let mut config = Map::new();
        config.insert("elementsize".into(), self.elementsize.into());
        codec_metadata(NAME, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_what_numcodecs_writes() {
        // `numcodecs.Shuffle(elementsize=n).encode(np.arange(8, dtype="<u2").tobytes())`.
        let data: Vec<u8> = (0..8u16).flat_map(|i| i.to_le_bytes()).collect();
        let expected: [(usize, [u8; 16]); 2] = [
            (2, [0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0]),
            (4, [0, 2, 4, 6, 0, 0, 0, 0, 1, 3, 5, 7, 0, 0, 0, 0]),
        ];
        for (size, bytes) in expected {
            let codec = Shuffle::new(size);
            assert_eq!(codec.encode(&data).unwrap(), bytes);
            let mut out = vec![0u8; 16];
            codec.decode_into(&bytes, &mut out).unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn round_trip_sizes_and_config() {
        let data: Vec<u8> = (0..=255u8).cycle().take(24 * 7).collect();
        for size in [0, 1, 2, 3, 4, 7, 8, 12, 24] {
            let codec = Shuffle::new(size);
            let enc = codec.encode(&data).unwrap();
            let dec = codec.decode(Cow::Borrowed(&enc), data.len()).unwrap();
            assert_eq!(dec.as_ref(), &data[..], "{size}");
        }
        let codec = Shuffle::new(8);
        assert!(codec.encode(&data[..12]).is_err());
        assert!(codec.decode(Cow::Borrowed(&data[..12]), 100).is_err());
        assert!(codec.decode(Cow::Borrowed(&data[..16]), 15).is_err());
        let mut out = vec![0u8; 15];
        assert!(codec.decode_into(&data[..16], &mut out).is_err());
        codec.decode_into(&[], &mut []).unwrap();
        // A missing element size is the data type's.
        let c = Shuffle::from_config(&Map::new(), &DataType::Float64).unwrap();
        assert_eq!(
            c.metadata(),
            json!({"name": NAME, "configuration": {"elementsize": 8}})
        );
        for bad in [
            json!({"elementsize": -1}),
            json!({"elementsize": "4"}),
            json!({"x": 1}),
        ] {
            assert!(Shuffle::from_config(bad.as_object().unwrap(), &DataType::UInt8).is_err());
        }
    }
}
