//! `jenkins_lookup3` (v3 name `numcodecs.jenkins_lookup3`): numcodecs' checksum codec with Bob
//! Jenkins' lookup3 hash, as HDF5 computes it (`H5_checksum_lookup3`: the bytes taken one at a
//! time, so the result does not depend on the machine's byte order). Four bytes (little
//! endian) follow the chunk and are checked on decode, unless checksum validation is switched
//! off in the config.
//!
//! Configuration, as numcodecs': `initval` (the hash's seed, 0 to 2³²−1, default 0) and
//! `prefix` (bytes hashed before the chunk's, stored in no chunk; default none). numcodecs
//! keeps a prefix as a numpy array, which neither zarr format's JSON writer can store, so
//! arrays written by zarr-python have none; here it may be a list of byte values.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::checksum32::decode_payload;
use super::numcodecs::numcodecs_metadata;
use crate::alloc;
use crate::codec::{check_config_keys, invalid_config, BytesToBytesCodec};
use crate::error::{CodecError, MetadataError};

const NAME: &str = "numcodecs.jenkins_lookup3";

/// The lookup3 hash of `data` with the seed `initval`.
pub fn lookup3(data: &[u8], initval: u32) -> u32 {
    // lookup3 mixes in the length as a 32-bit number: longer inputs wrap, as in C.
    let seed = 0xdead_beef_u32
        .wrapping_add(data.len() as u32)
        .wrapping_add(initval);
    let (mut a, mut b, mut c) = (seed, seed, seed);
    // Every block of 12 bytes but the last is mixed in whole; the last (1 to 12 bytes, none
    // for empty data) goes through the final mix.
    let whole = data.len().saturating_sub(1) / 12;
    let le = |b: [u8; 4]| u32::from_le_bytes(b);
    for block in data[..whole * 12].chunks_exact(12) {
        // Always matches (the blocks are 12 bytes), and spares a bounds check per byte.
        if let &[a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3] = block {
            a = a.wrapping_add(le([a0, a1, a2, a3]));
            b = b.wrapping_add(le([b0, b1, b2, b3]));
            c = c.wrapping_add(le([c0, c1, c2, c3]));
            mix(&mut a, &mut b, &mut c);
        }
    }
    let last = &data[whole * 12..];
    if last.is_empty() {
        return c;
    }
    // A short last block counts as if padded with zero bytes.
    let mut padded = [0u8; 12];
    padded[..last.len()].copy_from_slice(last);
    let [a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3] = padded;
    a = a.wrapping_add(le([a0, a1, a2, a3]));
    b = b.wrapping_add(le([b0, b1, b2, b3]));
    c = c.wrapping_add(le([c0, c1, c2, c3]));
    final_mix(&mut a, &mut b, &mut c);
    c
}

fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c) ^ c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a) ^ a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b) ^ b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c) ^ c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a) ^ a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b) ^ b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

fn final_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c = (*c ^ *b).wrapping_sub(b.rotate_left(14));
    *a = (*a ^ *c).wrapping_sub(c.rotate_left(11));
    *b = (*b ^ *a).wrapping_sub(a.rotate_left(25));
    *c = (*c ^ *b).wrapping_sub(b.rotate_left(16));
    *a = (*a ^ *c).wrapping_sub(c.rotate_left(4));
    *b = (*b ^ *a).wrapping_sub(a.rotate_left(14));
    *c = (*c ^ *b).wrapping_sub(b.rotate_left(24));
}

#[derive(Debug, Clone)]
pub struct JenkinsLookup3 {
    initval: u32,
    prefix: Vec<u8>,
}

impl JenkinsLookup3 {
    pub fn from_config(config: &Map<String, Value>) -> Result<Self, MetadataError> {
        check_config_keys(NAME, config, &["initval", "prefix"])?;
        let initval = match config.get("initval") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| invalid_config(NAME, "initval", v, "expected 0 to 4294967295"))?,
        };
        let prefix = match config.get("prefix") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => v
                .as_array()
                .and_then(|items| {
                    items
                        .iter()
                        .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                        .collect::<Option<Vec<u8>>>()
                })
                .ok_or_else(|| {
                    invalid_config(NAME, "prefix", v, "expected null or a list of byte values")
                })?,
        };
        Ok(Self { initval, prefix })
    }

    fn checksum(&self, payload: &[u8]) -> u32 {
        if self.prefix.is_empty() {
            lookup3(payload, self.initval)
        } else {
            // The prefix is hashed as if it led the chunk; lookup3 needs the whole input's
            // length first, so the two are joined.
            lookup3(&[self.prefix.as_slice(), payload].concat(), self.initval)
        }
    }
}

impl BytesToBytesCodec for JenkinsLookup3 {
    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut out = alloc::with_capacity(decoded.len() + 4)?;
        out.extend_from_slice(decoded);
        out.extend_from_slice(&self.checksum(decoded).to_le_bytes());
        Ok(out)
    }

    fn decode<'a>(
        &self,
        encoded: Cow<'a, [u8]>,
        max_decoded: usize,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        decode_payload(NAME, encoded, max_decoded, false, |payload| {
            self.checksum(payload)
        })
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
        // As zarr-python writes it: the seed always, a prefix only where there is one.
        let mut config = Map::new();
        config.insert("initval".into(), self.initval.into());
        if !self.prefix.is_empty() {
            config.insert("prefix".into(), self.prefix.clone().into());
        }
        numcodecs_metadata(NAME, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::bytes_to_bytes::stream::hex;
    use serde_json::json;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn codec(config: Value) -> Result<JenkinsLookup3, Box<dyn std::error::Error>> {
        let config = config.as_object().ok_or("a configuration is an object")?;
        Ok(JenkinsLookup3::from_config(config)?)
    }

    #[test]
    fn writes_what_numcodecs_writes() -> TestResult {
        // `numcodecs.JenkinsLookup3().encode(b"123456789")`.
        let c = codec(json!({}))?;
        let enc = c.encode(b"123456789")?;
        assert_eq!(enc, hex("313233343536373839969a5d84"));
        assert_eq!(c.decode(Cow::Borrowed(&enc), 9)?.as_ref(), b"123456789");
        assert_eq!(c.decode(Cow::Owned(enc.clone()), 9)?.as_ref(), b"123456789");
        // The last four bytes of `JenkinsLookup3(initval=7).encode(bytes(range(n)))`: empty
        // data, one byte, one whole block, a block and a byte, two whole blocks.
        let seeded = codec(json!({"initval": 7}))?;
        for (n, expected) in [
            (0u8, "f6beadde"),
            (1, "bf84c158"),
            (12, "d0affb72"),
            (13, "f2a34362"),
            (24, "667cc16b"),
        ] {
            let data: Vec<u8> = (0..n).collect();
            let enc = seeded.encode(&data)?;
            assert_eq!(enc[usize::from(n)..], hex(expected), "{n} bytes");
        }
        assert_eq!(seeded.metadata()["configuration"], json!({"initval": 7}));
        assert_eq!(c.metadata()["configuration"], json!({"initval": 0}));
        Ok(())
    }

    #[test]
    fn a_prefix_is_hashed_before_the_chunk_and_not_stored() -> TestResult {
        let c = codec(json!({"initval": 3, "prefix": [97, 98]}))?;
        let enc = c.encode(b"xyz")?;
        assert_eq!(&enc[..3], b"xyz");
        assert_eq!(enc[3..], lookup3(b"abxyz", 3).to_le_bytes());
        assert_eq!(c.decode(Cow::Borrowed(&enc), 3)?.as_ref(), b"xyz");
        let back = JenkinsLookup3::from_config(
            c.metadata()["configuration"]
                .as_object()
                .ok_or("configuration")?,
        )?;
        assert_eq!(back.encode(b"xyz")?, enc);
        Ok(())
    }

    #[test]
    fn corruption_and_bad_configurations() -> TestResult {
        let c = codec(json!({"initval": null, "prefix": null}))?;
        let mut enc = c.encode(&[5u8; 1001])?;
        enc[500] ^= 0x10;
        let Err(err) = c.decode(Cow::Borrowed(&enc), 2000) else {
            return Err("a flipped bit was not found".into());
        };
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        assert!(c.decode(Cow::Borrowed(&[1, 2, 3]), 2000).is_err());
        assert!(matches!(
            c.decode(Cow::Borrowed(&c.encode(&[0; 10])?), 9),
            Err(CodecError::TooLarge { .. })
        ));
        for bad in [
            json!({"initval": -1}),
            json!({"initval": 4_294_967_296_u64}),
            json!({"initval": 1.5}),
            json!({"prefix": "ab"}),
            json!({"prefix": [256]}),
            json!({"location": "end"}),
        ] {
            assert!(
                JenkinsLookup3::from_config(bad.as_object().ok_or("configuration")?).is_err(),
                "{bad}"
            );
        }
        Ok(())
    }
}
