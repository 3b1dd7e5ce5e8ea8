//! `blosc` (v3 core codec `blosc`; v2 numcodecs id `blosc`): c-blosc 1.x frames, as numcodecs
//! writes them. Spec: zarr-specs v3.0, codecs/blosc.
//!
//! Compressors: blosclz, lz4, lz4hc, zlib, zstd — the ones c-blosc is built with here (snappy
//! is not). Blosc's own threads are never used: the engine parallelises over chunks.

use std::borrow::Cow;
use std::ffi::{c_int, c_void, CString};

use blosc_src::{
    blosc_cbuffer_sizes, blosc_cbuffer_validate, blosc_compress_ctx, blosc_decompress_ctx,
    blosc_getitem, BLOSC_MAX_OVERHEAD,
};
use rayon::prelude::*;
use serde_json::{Map, Value};

use crate::codec::{
    check_config_keys, check_len, codec_metadata, invalid_config, BytesToBytesCodec,
};
use crate::error::{CodecError, MetadataError};
use crate::metadata::DataType;

const NAME: &str = "blosc";
const CNAMES: [&str; 5] = ["blosclz", "lz4", "lz4hc", "zlib", "zstd"];
/// c-blosc 1.x cannot compress buffers larger than this.
const MAX_BUFFER: usize = i32::MAX as usize - BLOSC_MAX_OVERHEAD as usize;
const OVERHEAD: usize = BLOSC_MAX_OVERHEAD as usize;
/// Frames at least this large decode their blocks on several threads: a lone large chunk (a
/// read of one chunk, or a few) would otherwise use one core. Below this size, waking the
/// engine's threads costs more than it saves (measured on 512 KiB frames).
const PARALLEL_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shuffle {
    NoShuffle = 0,
    Shuffle = 1,
    BitShuffle = 2,
}

impl Shuffle {
    fn name(self) -> &'static str {
        match self {
            Self::NoShuffle => "noshuffle",
            Self::Shuffle => "shuffle",
            Self::BitShuffle => "bitshuffle",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Blosc {
    cname: CString,
    clevel: u8,
    shuffle: Shuffle,
    typesize: usize,
    /// Whether `typesize` was given in the metadata (it is written back only then).
    typesize_given: bool,
    blocksize: usize,
}

impl Blosc {
    pub fn from_config(
        config: &Map<String, Value>,
        data_type: &DataType,
    ) -> Result<Self, MetadataError> {
        check_config_keys(
            NAME,
            config,
            &["cname", "clevel", "shuffle", "typesize", "blocksize"],
        )?;
        let cname = match config.get("cname") {
            None => "lz4",
            Some(Value::String(s)) if CNAMES.contains(&s.as_str()) => s.as_str(),
            Some(v) => {
                return Err(MetadataError::Unsupported {
                    field: "codecs[blosc].configuration.cname".into(),
                    value: format!("{v} (supported: {})", CNAMES.join(", ")),
                })
            }
        };
        let clevel = match config.get("clevel") {
            None => 5,
            Some(v) => v
                .as_u64()
                .filter(|l| *l <= 9)
                .ok_or_else(|| invalid_config(NAME, "clevel", v, "expected 0..=9"))?
                as u8,
        };
        // `None`: numcodecs' AUTOSHUFFLE (-1), which depends on the type size.
        let shuffle = match config.get("shuffle") {
            None => Some(Shuffle::NoShuffle),
            Some(v) => match (v.as_str(), v.as_i64()) {
                (Some("noshuffle"), _) | (_, Some(0)) => Some(Shuffle::NoShuffle),
                (Some("shuffle"), _) | (_, Some(1)) => Some(Shuffle::Shuffle),
                (Some("bitshuffle"), _) | (_, Some(2)) => Some(Shuffle::BitShuffle),
                (_, Some(-1)) => None,
                _ => {
                    return Err(invalid_config(
                        NAME,
                        "shuffle",
                        v,
                        "expected noshuffle, shuffle or bitshuffle",
                    ))
                }
            },
        };
        let typesize = match config.get("typesize") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .filter(|t| (1..=255).contains(t))
                    .ok_or_else(|| invalid_config(NAME, "typesize", v, "expected 1..=255"))?
                    as usize,
            ),
        };
        let blocksize = match config.get("blocksize") {
            None => 0,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| invalid_config(NAME, "blocksize", v, "expected an integer >= 0"))?
                as usize,
        };
        let effective_typesize = typesize.unwrap_or(data_type.size().clamp(1, 255));
        // numcodecs' AUTOSHUFFLE: bit shuffle for one-byte elements (byte shuffle would
        // leave them as they are), byte shuffle otherwise.
        let shuffle = shuffle.unwrap_or(if effective_typesize == 1 {
            Shuffle::BitShuffle
        } else {
            Shuffle::Shuffle
        });
        Ok(Self {
            cname: CString::new(cname).unwrap_or_default(),
            clevel,
            shuffle,
            typesize: effective_typesize,
            typesize_given: typesize.is_some(),
            blocksize,
        })
    }

    /// (decoded size, compressed size) from a frame's header, after checking that the frame
    /// fits in `encoded`.
    fn frame_sizes(encoded: &[u8]) -> Result<(usize, usize), CodecError> {
        if encoded.len() < OVERHEAD {
            return Err(CodecError::corrupt(NAME, "shorter than a blosc header"));
        }
        let (mut nbytes, mut cbytes, mut blocksize) = (0usize, 0usize, 0usize);
        // SAFETY: the buffer holds at least the 16-byte header these functions read.
        unsafe {
            blosc_cbuffer_sizes(
                encoded.as_ptr() as *const c_void,
                &mut nbytes,
                &mut cbytes,
                &mut blocksize,
            );
        }
        let mut checked = 0usize;
        // SAFETY: validate reads only the header and compares against the given length.
        let valid = unsafe {
            blosc_cbuffer_validate(
                encoded.as_ptr() as *const c_void,
                encoded.len(),
                &mut checked,
            )
        };
        if valid < 0 || cbytes > encoded.len() {
            return Err(CodecError::corrupt(
                NAME,
                format!(
                    "header claims {cbytes} compressed bytes, {} stored",
                    encoded.len()
                ),
            ));
        }
        Ok((nbytes, cbytes))
    }

    fn decompress(encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        if out.is_empty() {
            return Ok(());
        }
        if out.len() >= PARALLEL_BYTES && crate::concurrency::threads() > 1 {
            if let Some(result) = Self::decompress_blocks_in_parallel(encoded, out) {
                return result;
            }
        }
        // SAFETY: `out` is writable for its whole length, which is passed as the limit; the
        // frame was checked to lie within `encoded`.
        let n = unsafe {
            blosc_decompress_ctx(
                encoded.as_ptr() as *const c_void,
                out.as_mut_ptr() as *mut c_void,
                out.len(),
                1,
            )
        };
        if n < 0 {
            return Err(CodecError::corrupt(
                NAME,
                format!("decompression failed ({n})"),
            ));
        }
        check_len(NAME, n as usize, out.len())
    }
}

impl Blosc {
    /// Decodes the items from `first` on (in units of the frame's `typesize`) into `dst`, a
    /// whole number of items: only the blocks holding them are decompressed.
    fn get_items(
        encoded: &[u8],
        first: usize,
        typesize: usize,
        dst: &mut [u8],
    ) -> Result<(), CodecError> {
        // SAFETY: the caller validated the frame against `encoded`'s length (frame_sizes);
        // `dst` holds exactly `dst.len() / typesize` items, which is what blosc_getitem
        // writes. Item counts fit c_int: a blosc 1.x frame holds under 2^31 bytes.
        let n = unsafe {
            blosc_getitem(
                encoded.as_ptr() as *const c_void,
                first as c_int,
                (dst.len() / typesize) as c_int,
                dst.as_mut_ptr() as *mut c_void,
            )
        };
        if n < 0 || n as usize != dst.len() {
            return Err(CodecError::corrupt(
                NAME,
                format!("decompression failed ({n})"),
            ));
        }
        Ok(())
    }

    /// Decodes a frame's blocks on the engine's threads, each thread a run of whole blocks
    /// straight into its part of `out`. `None` when the frame does not split (one block, a
    /// stored copy, an older format).
    fn decompress_blocks_in_parallel(
        encoded: &[u8],
        out: &mut [u8],
    ) -> Option<Result<(), CodecError>> {
        const FORMAT_VERSION: u8 = 2;
        const MEMCPYED: u8 = 0x2;
        let (version, flags, typesize) = (encoded[0], encoded[2], encoded[3] as usize);
        let blocksize =
            u32::from_le_bytes([encoded[8], encoded[9], encoded[10], encoded[11]]) as usize;
        if version != FORMAT_VERSION
            || flags & MEMCPYED != 0
            || typesize == 0
            || blocksize == 0
            || blocksize % typesize != 0
        {
            return None;
        }
        let nblocks = out.len().div_ceil(blocksize);
        let threads = crate::concurrency::threads().min(nblocks);
        if threads < 2 {
            return None;
        }
        let per_thread = nblocks.div_ceil(threads) * blocksize;
        let decode = |(i, dst): (usize, &mut [u8])| {
            Self::get_items(encoded, i * per_thread / typesize, typesize, dst)
        };
        if out.len() % typesize != 0 {
            return None;
        }
        Some(
            crate::concurrency::in_pool(|| {
                out.par_chunks_mut(per_thread)
                    .enumerate()
                    .try_for_each(decode)
            })
            .map_err(|e| CodecError::corrupt(NAME, e))
            .and_then(|r| r),
        )
    }
}

impl BytesToBytesCodec for Blosc {
    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        if decoded.len() > MAX_BUFFER {
            return Err(CodecError::Encode {
                codec: NAME,
                reason: format!("chunks over {MAX_BUFFER} bytes are too large for blosc"),
            });
        }
        let mut out = vec![0u8; decoded.len() + OVERHEAD];
        // SAFETY: `out` has room for the input plus blosc's maximum overhead, so compression
        // always fits; the source and destination do not overlap.
        let n = unsafe {
            blosc_compress_ctx(
                self.clevel as c_int,
                self.shuffle as c_int,
                self.typesize,
                decoded.len(),
                decoded.as_ptr() as *const c_void,
                out.as_mut_ptr() as *mut c_void,
                out.len(),
                self.cname.as_ptr(),
                self.blocksize,
                1,
            )
        };
        if n <= 0 {
            return Err(CodecError::Encode {
                codec: NAME,
                reason: format!("compression failed ({n})"),
            });
        }
        out.truncate(n as usize);
        Ok(out)
    }

    fn decode<'a>(
        &self,
        encoded: Cow<'a, [u8]>,
        max_decoded: usize,
    ) -> Result<Cow<'a, [u8]>, CodecError> {
        let (nbytes, _) = Self::frame_sizes(&encoded)?;
        if nbytes > max_decoded {
            return Err(CodecError::TooLarge {
                codec: NAME,
                actual: nbytes,
                limit: max_decoded,
            });
        }
        let mut out = vec![0u8; nbytes];
        Self::decompress(&encoded, &mut out)?;
        Ok(Cow::Owned(out))
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let (nbytes, _) = Self::frame_sizes(encoded)?;
        check_len(NAME, nbytes, out.len())?;
        Self::decompress(encoded, out)
    }

    /// Decodes only the blocks holding `range` (blosc compresses each block on its own): a
    /// point read of a chunk decodes one block rather than the chunk. Damage confined to the
    /// other blocks goes unnoticed by such a read, as it would by any read that does not
    /// decode them: blosc frames carry no checksum (a `crc32c` codec after blosc adds one,
    /// and then chunks are decoded whole).
    fn decode_range_into(
        &self,
        encoded: &[u8],
        out: &mut [u8],
        range: std::ops::Range<usize>,
    ) -> Result<(), CodecError> {
        /// A header flag c-blosc 1.x reserves: a whole decode refuses such frames.
        const RESERVED_FLAG: u8 = 0x08;
        let (nbytes, _) = Self::frame_sizes(encoded)?;
        check_len(NAME, nbytes, out.len())?;
        let typesize = encoded[3] as usize;
        if typesize == 0
            || out.len() % typesize != 0
            || encoded[2] & RESERVED_FLAG != 0
            || range.start > range.end
            || range.end > out.len()
            || range.len() * 2 > out.len()
        {
            // Half the chunk or more (or anything unusual): decode it all, on several threads
            // if it is large.
            return Self::decompress(encoded, out);
        }
        // getitem counts in items of the frame's typesize: widen the range to whole items.
        let first = range.start / typesize;
        let last = range.end.div_ceil(typesize);
        Self::get_items(
            encoded,
            first,
            typesize,
            &mut out[first * typesize..last * typesize],
        )
    }

    fn max_encoded_size(&self, decoded_len: usize) -> usize {
        decoded_len + OVERHEAD
    }

    fn name(&self) -> &'static str {
        NAME
    }

    fn metadata(&self) -> Value {
        let mut config = Map::new();
        config.insert(
            "cname".into(),
            self.cname.to_string_lossy().into_owned().into(),
        );
        config.insert("clevel".into(), self.clevel.into());
        config.insert("shuffle".into(), self.shuffle.name().into());
        if self.typesize_given || self.shuffle != Shuffle::NoShuffle {
            config.insert("typesize".into(), self.typesize.into());
        }
        config.insert("blocksize".into(), self.blocksize.into());
        codec_metadata(NAME, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn blosc(config: Value) -> Blosc {
        Blosc::from_config(config.as_object().unwrap(), &DataType::UInt16).unwrap()
    }

    #[test]
    fn every_compressor_and_shuffle_round_trips() {
        let data: Vec<u8> = (0..40_000u32)
            .flat_map(|i| ((i % 300) as u16).to_le_bytes())
            .collect();
        for cname in CNAMES {
            for shuffle in ["noshuffle", "shuffle", "bitshuffle"] {
                let codec = blosc(json!({"cname": cname, "clevel": 5, "shuffle": shuffle,
                                         "typesize": 2, "blocksize": 0}));
                let enc = codec.encode(&data).unwrap();
                assert!(enc.len() < data.len(), "{cname} {shuffle}");
                let mut out = vec![0u8; data.len()];
                codec.decode_into(&enc, &mut out).unwrap();
                assert_eq!(out, data, "{cname} {shuffle}");
                assert!(codec.decode(Cow::Borrowed(&enc), data.len() - 1).is_err());
            }
        }
    }

    #[test]
    fn a_range_decodes_only_its_blocks() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| ((i / 5) % 700).to_le_bytes())
            .collect();
        for (cname, shuffle, typesize) in [("lz4", "shuffle", 4), ("zstd", "bitshuffle", 2)] {
            let codec = blosc(json!({"cname": cname, "clevel": 5, "shuffle": shuffle,
                                     "typesize": typesize, "blocksize": 16384}));
            let enc = codec.encode(&data).unwrap();
            for range in [
                0..1,
                3..4,
                16_383..16_385,
                700_001..700_003,
                1_199_990..1_200_000,
            ] {
                let mut out = vec![0u8; data.len()];
                codec
                    .decode_range_into(&enc, &mut out, range.clone())
                    .unwrap();
                assert_eq!(out[range.clone()], data[range.clone()], "{cname} {range:?}");
            }
            // Most of the chunk: decoded whole.
            let mut out = vec![0u8; data.len()];
            codec
                .decode_range_into(&enc, &mut out, 10..1_100_000)
                .unwrap();
            assert_eq!(out, data);
            // A frame of another length, or truncated: errors.
            let mut longer = vec![0u8; data.len() + 4];
            assert!(codec.decode_range_into(&enc, &mut longer, 0..4).is_err());
            assert!(codec
                .decode_range_into(&enc[..enc.len() / 2], &mut out, 0..4)
                .is_err());
        }
    }

    #[test]
    fn large_frames_decode_in_parallel() {
        crate::concurrency::set_threads(3);
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
            .collect();
        for blocksize in [0, 65536, 100_000] {
            let codec = blosc(json!({"cname": "lz4", "clevel": 5, "shuffle": "shuffle",
                                     "typesize": 2, "blocksize": blocksize}));
            let enc = codec.encode(&data).unwrap();
            let mut out = vec![0u8; data.len()];
            codec.decode_into(&enc, &mut out).unwrap();
            assert!(out == data, "blocksize {blocksize}");
            let mut bad = enc.clone();
            let n = bad.len();
            bad[n / 2] ^= 0x55;
            let _ = codec.decode_into(&bad, &mut out); // an error or garbage, never a crash
        }
        crate::concurrency::set_threads(0);
    }

    #[test]
    fn numcodecs_autoshuffle() {
        let auto = |dt: &DataType, config: Value| {
            Blosc::from_config(config.as_object().unwrap(), dt)
                .unwrap()
                .shuffle
        };
        assert_eq!(
            auto(&DataType::UInt8, json!({"shuffle": -1})),
            Shuffle::BitShuffle
        );
        assert_eq!(
            auto(&DataType::Int32, json!({"shuffle": -1})),
            Shuffle::Shuffle
        );
        assert_eq!(
            auto(&DataType::Int32, json!({"shuffle": -1, "typesize": 1})),
            Shuffle::BitShuffle
        );
        assert!(Blosc::from_config(
            json!({"shuffle": -2}).as_object().unwrap(),
            &DataType::UInt8
        )
        .is_err());
    }

    #[test]
    fn bad_frames_and_configs() {
        let codec = blosc(json!({"cname": "lz4"}));
        let enc = codec.encode(&[1u8; 1000]).unwrap();
        let mut out = vec![0u8; 1000];
        assert!(codec.decode_into(&enc[..enc.len() - 1], &mut out).is_err());
        assert!(codec.decode_into(&enc[..10], &mut out).is_err());
        assert!(codec.decode_into(&enc, &mut out[..999]).is_err());
        let empty = codec.encode(&[]).unwrap();
        codec.decode_into(&empty, &mut []).unwrap();
        let err = Blosc::from_config(
            json!({"cname": "snappy"}).as_object().unwrap(),
            &DataType::UInt8,
        )
        .unwrap_err();
        assert!(err.to_string().contains("snappy"));
        assert!(
            Blosc::from_config(json!({"clevel": 10}).as_object().unwrap(), &DataType::UInt8)
                .is_err()
        );
    }
}
