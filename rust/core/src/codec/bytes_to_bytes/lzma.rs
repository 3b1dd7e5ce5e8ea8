//! `lzma` (v2 numcodecs id `lzma`; v3 name `numcodecs.lzma`): xz or legacy `.lzma` streams, as
//! numcodecs' `LZMA(format, check, preset, filters)` writes them with Python's `lzma` module.
//!
//! The configuration keeps Python's integer codes: `format` 1 (xz, the default), 2 (alone, the
//! legacy `.lzma` container) or 0 (auto: decodes either, cannot encode, as in Python); `check`
//! -1 (the container's default: CRC-64 for xz, none for alone), 0 (none), 1 (CRC-32),
//! 4 (CRC-64) or 10 (SHA-256); `preset` null (6) or 0..=9, optionally with the extreme flag
//! 0x80000000. Custom `filters` chains (and so format 3, raw, which needs one) are not
//! supported: what numcodecs writes by default never has them.
//!
//! liblzma is built from source by liblzma-sys (feature "static", no bindgen), so nothing
//! comes from the system. Like Python's `lzma.decompress`, decoding reads stream after stream
//! and ignores trailing bytes that are not one.

use std::borrow::Cow;

use liblzma::stream::{Action, Check, LzmaOptions, Status, Stream, IGNORE_CHECK};
use serde_json::{Map, Value};

use crate::codec::{check_config_keys, codec_metadata, invalid_config, BytesToBytesCodec};
use crate::error::{CodecError, MetadataError};

const NAME: &str = "numcodecs.lzma";
const PRESET_EXTREME: u32 = 0x8000_0000;
const PRESET_DEFAULT: u32 = 6;
/// Memory a decoder may use beyond the decoded size. The dictionary is the bulk of it and its
/// size is the writer's choice: 64 MiB for presets 8 and 9, the largest. A stream asking for
/// far more than any preset and the chunk itself is refused rather than allocated.
const DECODER_MEMORY: u64 = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Auto = 0,
    Xz = 1,
    Alone = 2,
}

#[derive(Debug, Clone)]
pub struct Lzma {
    format: Format,
    /// Python's check code, -1 for the container's default.
    check: i64,
    /// `None`: Python's default preset (6).
    preset: Option<u32>,
}

fn lzma_error(e: liblzma::stream::Error) -> CodecError {
    CodecError::corrupt(NAME, e)
}

impl Lzma {
    pub fn from_config(config: &Map<String, Value>) -> Result<Self, MetadataError> {
        check_config_keys(NAME, config, &["format", "check", "preset", "filters"])?;
        let format = match config.get("format") {
            None | Some(Value::Null) => Format::Xz,
            Some(v) => match v.as_i64() {
                Some(0) => Format::Auto,
                Some(1) => Format::Xz,
                Some(2) => Format::Alone,
                // A raw stream is described by its filters chain alone, and custom chains
                // are what is not supported (see above): said so, whatever chain is given.
                Some(3) => {
                    return Err(MetadataError::Unsupported {
                        field: format!("codecs[{NAME}].configuration.format"),
                        value: "3 (raw streams, which take a custom filters chain; only the \
                                preset's own filters are supported)"
                            .into(),
                    })
                }
                _ => {
                    return Err(invalid_config(
                        NAME,
                        "format",
                        v,
                        "expected 0 (auto), 1 (xz) or 2 (alone)",
                    ))
                }
            },
        };
        let check = match config.get("check") {
            None | Some(Value::Null) => -1,
            Some(v) => v
                .as_i64()
                .filter(|c| [-1, 0, 1, 4, 10].contains(c))
                .ok_or_else(|| {
                    invalid_config(
                        NAME,
                        "check",
                        v,
                        "expected -1 (default), 0 (none), 1 (crc32), 4 (crc64) or 10 (sha256)",
                    )
                })?,
        };
        if format == Format::Alone && check > 0 {
            return Err(invalid_config(
                NAME,
                "check",
                &Value::from(check),
                "integrity checks are only supported by format 1 (xz)",
            ));
        }
        let preset = match config.get("preset") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|p| u32::try_from(p).ok())
                    .filter(|p| p & !PRESET_EXTREME <= 9)
                    .ok_or_else(|| {
                        invalid_config(
                            NAME,
                            "preset",
                            v,
                            "expected 0..=9, optionally | 0x80000000 (extreme)",
                        )
                    })?,
            ),
        };
        match config.get("filters") {
            None | Some(Value::Null) => {}
            Some(v) => {
                return Err(MetadataError::Unsupported {
                    field: format!("codecs[{NAME}].configuration.filters"),
                    value: format!("{v} (only null, the preset's own filters, is supported)"),
                })
            }
        }
        Ok(Self {
            format,
            check,
            preset,
        })
    }

    fn encoder(&self) -> Result<Stream, CodecError> {
        let preset = self.preset.unwrap_or(PRESET_DEFAULT);
        match self.format {
            Format::Xz => {
                let check = match self.check {
                    0 => Check::None,
                    1 => Check::Crc32,
                    10 => Check::Sha256,
                    _ => Check::Crc64,
                };
                Stream::new_easy_encoder(preset, check)
            }
            Format::Alone => {
                LzmaOptions::new_preset(preset).and_then(|o| Stream::new_lzma_encoder(&o))
            }
            Format::Auto => {
                return Err(CodecError::Encode {
                    codec: NAME,
                    reason: "format 0 (auto) only decodes; choose 1 (xz) or 2 (alone)".into(),
                })
            }
        }
        .map_err(|e| CodecError::Encode {
            codec: NAME,
            reason: e.to_string(),
        })
    }

    fn decoder(&self, memlimit: u64) -> Result<Stream, CodecError> {
        let flags = if crate::config::validate_checksums() {
            0
        } else {
            IGNORE_CHECK
        };
        match self.format {
            Format::Xz => Stream::new_stream_decoder(memlimit, flags),
            Format::Alone => Stream::new_lzma_decoder(memlimit),
            Format::Auto => Stream::new_auto_decoder(memlimit, flags),
        }
        .map_err(lzma_error)
    }

    /// Decodes one stream from the start of `input`, appending to `out` (which may grow to
    /// `limit` bytes, one past what is allowed); returns the input it used.
    fn decode_stream(
        &self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<usize, CodecError> {
        let mut stream = self.decoder(DECODER_MEMORY.saturating_add(limit as u64))?;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= limit {
                    return Err(CodecError::TooLarge {
                        codec: NAME,
                        actual: out.len(),
                        limit: limit - 1,
                    });
                }
                out.reserve_exact(out.capacity().max(1 << 16).min(limit - out.len()));
            }
            let (in_before, out_before) = (stream.total_in(), out.len());
            let consumed = in_before as usize;
            let status = stream
                .process_vec(&input[consumed..], out, Action::Finish)
                .map_err(|e| match e {
                    liblzma::stream::Error::MemLimit => CodecError::corrupt(
                        NAME,
                        format!(
                            "the stream needs more than {} bytes to decode",
                            stream.memlimit()
                        ),
                    ),
                    e => lzma_error(e),
                })?;
            if status == Status::StreamEnd {
                return Ok(stream.total_in() as usize);
            }
            let stalled = stream.total_in() == in_before && out.len() == out_before;
            if stalled && out.len() < out.capacity() {
                return Err(CodecError::corrupt(
                    NAME,
                    "data ended before the end-of-stream marker",
                ));
            }
        }
    }
}

impl BytesToBytesCodec for Lzma {
    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut stream = self.encoder()?;
        let mut out = Vec::with_capacity(decoded.len() / 2 + 128);
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(4096));
            }
            let consumed = stream.total_in() as usize;
            let status = stream
                .process_vec(&decoded[consumed..], &mut out, Action::Finish)
                .map_err(|e| CodecError::Encode {
                    codec: NAME,
                    reason: e.to_string(),
                })?;
            if status == Status::StreamEnd {
                return Ok(out);
            }
        }
    }

    fn decode<'a>(
        &self,
        encoded: Cow<'a, [u8]>,
        max_decoded: usize,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        let limit = max_decoded.saturating_add(1);
        let mut out = Vec::with_capacity(encoded.len().saturating_mul(4).max(4096).min(limit));
        let mut rest = &encoded[..];
        let mut first = true;
        while first || !rest.is_empty() {
            let before = out.len();
            match self.decode_stream(rest, &mut out, limit) {
                Ok(used) => rest = &rest[used..],
                // Python keeps the streams decoded so far and drops what follows them, unless
                // it is a stream that decodes to too much.
                Err(CodecError::Corrupt { .. }) if !first => {
                    out.truncate(before);
                    break;
                }
                Err(e) => return Err(e),
            }
            first = false;
        }
        if out.len() > max_decoded {
            return Err(CodecError::TooLarge {
                codec: NAME,
                actual: out.len(),
                limit: max_decoded,
            });
        }
        Ok(Cow::Owned(out))
    }

    fn max_encoded_size(&self, decoded_len: usize) -> usize {
        // Incompressible data is stored in uncompressed LZMA2 chunks (3 bytes per 64 KiB) inside
        // an xz stream of well under 1 KiB of headers, index and footer; LZMA1 (alone) can
        // expand a little more. Generous slack covers both and other writers' block headers.
        decoded_len + decoded_len / 32 + 4096
    }

    fn name(&self) -> &'static str {
        NAME
    }

    fn metadata(&self) -> Value {
        let mut config = Map::new();
        config.insert("format".into(), (self.format as i64).into());
        config.insert("check".into(), self.check.into());
        config.insert(
            "preset".into(),
            self.preset.map_or(Value::Null, Value::from),
        );
        config.insert("filters".into(), Value::Null);
        codec_metadata(NAME, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::bytes_to_bytes::stream::hex;
    use serde_json::json;

    // `numcodecs.LZMA(...).encode(np.arange(64, dtype="<u2").tobytes())` with the arguments
    // named after each constant.

    /// `LZMA()`: xz, CRC-64, preset 6.
    const NUMCODECS_DEFAULT: &str = "fd377a585a000004e6d6b4460200210116000000742fe5a3e0007f00655d\
        000060027ff3e273323ffeed1de58ddec6c79f37a5dac8de0848c4664f58463ca385c60c39f06c2e8732b3607\
        4da8dac19dca262f40c2c52888740fc499c0233467b61723e35c24d6773985908e143934796fd3a8084038388\
        1489440e9f07a7448cca7c6a0000000000376aee2339fdc16000018101800100001ce642c7b1c467fb0200000\
        00004595a";
    /// `LZMA(format=2, preset=1)`: the legacy .lzma container.
    const NUMCODECS_ALONE_PRESET1: &str = "5d00001000ffffffffffffffff0000000041fb6ed6df647a85d719\
        aef9b98b3f0ed00104731bc386a036be649f3e540a2f1794d86678e1f954f64bcfec8d9127ce3e7fcd936d112\
        488a4b8593212489e937ba81ba7b840df1826a031cf8b2131f6e7cb2c4255868ae50dc243b7c6256844c3fffc\
        a3e000";
    /// `LZMA(check=1, preset=0)`: xz with CRC-32.
    const NUMCODECS_CRC32_PRESET0: &str = "fd377a585a0000016922de36020021010c0000008f98419ce0007f\
        00645d0000000041fb6ed6df647a85d719aef9b98b3f0ed00104731bc386a036be649f3e540a2f1794d86678e\
        1f954f64bcfec8d9127ce3e7fcd936d112488a4b8593212489e937ba81ba7b840df1826a031cf8b2131f6e7cb\
        2c4255868ae50dc243b7c6079b1f0000df698d4200017c800100000090ceefb63e300d8b020000000001595a";

    fn sample() -> Vec<u8> {
        (0..64u16).flat_map(|i| i.to_le_bytes()).collect()
    }

    fn lzma(config: Value) -> Lzma {
        Lzma::from_config(config.as_object().unwrap()).unwrap()
    }

    #[test]
    fn writes_what_numcodecs_writes() {
        let cases = [
            (json!({}), NUMCODECS_DEFAULT),
            (json!({"format": 2, "preset": 1}), NUMCODECS_ALONE_PRESET1),
            (json!({"check": 1, "preset": 0}), NUMCODECS_CRC32_PRESET0),
        ];
        for (config, expected) in cases {
            let codec = lzma(config.clone());
            assert_eq!(codec.encode(&sample()).unwrap(), hex(expected), "{config}");
            let dec = codec.decode(Cow::Owned(hex(expected)), 128).unwrap();
            assert_eq!(dec.as_ref(), &sample()[..], "{config}");
            // The auto format reads either container.
            let auto = lzma(json!({"format": 0}));
            assert_eq!(
                auto.decode(Cow::Owned(hex(expected)), 128)
                    .unwrap()
                    .as_ref(),
                &sample()[..]
            );
        }
        assert_eq!(
            lzma(json!({})).metadata(),
            json!({"name": NAME, "configuration":
                   {"format": 1, "check": -1, "preset": null, "filters": null}})
        );
    }

    #[test]
    fn round_trip_bounds_and_corruption() {
        let data: Vec<u8> = (0..100_000u32)
            .map(|i| (i % 251) as u8 ^ (i >> 10) as u8)
            .collect();
        for config in [
            json!({}),
            json!({"preset": 9}),
            json!({"preset": 0x8000_0001u32}),
            json!({"check": 0}),
            json!({"check": 10}),
            json!({"format": 2}),
        ] {
            let codec = lzma(config.clone());
            let enc = codec.encode(&data).unwrap();
            assert!(enc.len() <= codec.max_encoded_size(data.len()), "{config}");
            let mut out = vec![0u8; data.len()];
            codec.decode_into(&enc, &mut out).unwrap();
            assert_eq!(out, data, "{config}");
            assert!(
                matches!(
                    codec.decode(Cow::Borrowed(&enc), data.len() - 1),
                    Err(CodecError::TooLarge { .. })
                ),
                "{config}"
            );
            assert!(codec
                .decode(Cow::Borrowed(&enc[..enc.len() - 10]), data.len())
                .is_err());
            let mut bad = enc.clone();
            bad[enc.len() / 2] ^= 0x40;
            assert!(codec.decode_into(&bad, &mut out).is_err(), "{config}");
        }
        let codec = lzma(json!({}));
        // Concatenated streams decode as one; trailing garbage after a stream is dropped.
        let mut two = codec.encode(&data[..1000]).unwrap();
        two.extend(codec.encode(&data[1000..2000]).unwrap());
        two.extend(b"trailing");
        assert_eq!(
            codec.decode(Cow::Borrowed(&two), 2000).unwrap().as_ref(),
            &data[..2000]
        );
        assert!(codec.decode(Cow::Borrowed(&two), 1999).is_err());
        assert!(codec.decode(Cow::Borrowed(b"not xz at all"), 100).is_err());
        assert!(codec.decode(Cow::Borrowed(&[]), 100).is_err());
        let random: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for format in [1, 2] {
            let c = lzma(json!({"format": format}));
            assert!(c.encode(&random).unwrap().len() <= c.max_encoded_size(random.len()));
        }
        assert!(lzma(json!({"format": 0})).encode(&data).is_err());
    }

    #[test]
    fn bad_configs() {
        for bad in [
            json!({"format": 3}),
            json!({"format": 4}),
            json!({"check": 2}),
            json!({"format": 2, "check": 1}),
            json!({"preset": 10}),
            json!({"preset": -1}),
            json!({"filters": [{"id": 33}]}),
            json!({"level": 1}),
        ] {
            let err = Lzma::from_config(bad.as_object().unwrap()).unwrap_err();
            if bad.get("filters").is_some() {
                assert!(err.to_string().contains("filters"), "{err}");
            }
        }
    }
}
